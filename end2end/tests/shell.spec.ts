// The UI shell: server rendering, hydration with a server-function round trip, client-side
// navigation, and real 404s.
import { expect, test } from '@playwright/test';

test('the home page is rendered on the server', async ({ request }) => {
  const res = await request.get('/');
  expect(res.status()).toBe(200);
  const html = await res.text();
  // Present in the raw HTML, before any WASM runs.
  expect(html).toContain('Take Alipay and WeChat Pay by QR code');
  expect(html).toContain('data-testid="check-server"');
  expect(html).toContain('/pkg/scanpay.js');
});

test('a click runs a server function and updates the page without a reload', async ({ page }) => {
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  // A marker that a full page load would wipe out.
  await page.evaluate(() => ((window as unknown as { scanpayMarker: number }).scanpayMarker = 42));
  await expect(page.getByTestId('server-info')).toHaveText('Not checked yet.');

  const call = page.waitForResponse((r) => r.url().endsWith('/api/info') && r.request().method() === 'POST');
  await page.getByTestId('check-server').click();
  expect((await call).status()).toBe(200);

  await expect(page.getByTestId('server-database')).toHaveText('SQLite (reachable)');
  await expect(page.getByTestId('server-version')).toHaveText(/^\d+\.\d+\.\d+$/);
  expect(await page.evaluate(() => (window as unknown as { scanpayMarker?: number }).scanpayMarker)).toBe(42);
});

test('navigation between pages happens in the browser once hydrated', async ({ page }) => {
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  await page.evaluate(() => ((window as unknown as { scanpayMarker: number }).scanpayMarker = 7));
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Order board' }).click();
  await expect(page).toHaveURL(/\/board$/);
  await expect(page.getByRole('heading', { name: 'Order board' })).toBeVisible();
  await expect(page).toHaveTitle('Order board · ScanPay');
  expect(await page.evaluate(() => (window as unknown as { scanpayMarker?: number }).scanpayMarker)).toBe(7);
});

test('an unknown route shows the 404 page with status 404', async ({ page }) => {
  const res = await page.goto('/no/such/page');
  expect(res?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await expect(page).toHaveTitle('Page not found · ScanPay');
});

test('the pages fit a phone screen', async ({ page }, testInfo) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: testInfo.outputPath('home-phone.png'), fullPage: true });
});

test('the API reference renders the served OpenAPI document, with nothing from elsewhere', async ({ page }) => {
  const outside: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith('http://127.0.0.1')) outside.push(r.url());
  });
  await page.goto('/docs/api.html');
  const reference = page.getByTestId('api-reference');
  await expect(reference.locator('.info .title')).toContainText('ScanPay');
  // Every operation of the document is listed, the refunds one among them.
  await expect(reference.locator('.opblock-summary-path', { hasText: '/orders/{id}/refunds' }).first()).toBeVisible();
  // Calls need the merchant's key and move money: the page has no "Try it out".
  await expect(reference.getByRole('button', { name: 'Try it out' })).toHaveCount(0);
  expect(outside).toEqual([]);
});
