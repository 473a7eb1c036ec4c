// The demo posture, as `make run` starts it with no credentials: every page a customer, a
// wallet user or a merchant sees says that no real money moves here.
import { expect, test } from '@playwright/test';

test('the demo posture shows the sandbox banner on checkout, wallet and board pages', async ({ page, request }, testInfo) => {
  const res = await request.post('/api/demo_order', {
    form: { amount: '8.80', subject: 'Banner check', expires_in: '900' },
    headers: { accept: 'text/html' },
    maxRedirects: 0,
  });
  expect(res.status()).toBe(302);
  const checkout = res.headers()['location'];

  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${checkout}?wallet=alipay`);
  await page.locator('body[data-hydrated]').waitFor();
  const banner = page.getByTestId('sandbox-banner');
  await expect(banner).toBeVisible();
  await expect(banner).toContainText('no real money');
  // Hydration kept it, and it sits above the page, not under the fold.
  const box = await banner.boundingBox();
  expect(box?.y).toBe(0);
  await page.screenshot({ path: testInfo.outputPath('demo-checkout-banner.png') });

  // The wallet the code opens.
  const code = await page.getByTestId('qr').getAttribute('data-code-url');
  expect(code).toBeTruthy();
  await page.goto(code!);
  await expect(page.getByTestId('sandbox-banner')).toBeVisible();

  // The home page and the merchant's board, signed in as the demo shop.
  await page.goto('/login');
  await page.locator('body[data-hydrated]').waitFor();
  await expect(page.getByTestId('sandbox-banner')).toBeVisible();
  await page.getByTestId('login-demo').click();
  await expect(page).toHaveURL(/\/board/);
  await expect(page.getByTestId('sandbox-banner')).toBeVisible();
  await expect(page.getByTestId('sandbox-banner')).toHaveCount(1);
});
