// Accessibility, checked rather than hoped for: axe-core (WCAG 2.1 A and AA rules) on every
// page, in English and in Chinese, hydrated: the home page, the checkout while payable, paid
// and expired, the aggregate code's page, the sandbox wallet, sign-in, the board, an order,
// the developers page and the cluster page. No serious or critical violation is allowed.
import AxeBuilder from '@axe-core/playwright';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { payInWallet } from './wallet';

const LOCALES = ['en-US', 'zh-CN'] as const;

async function demoOrder(request: APIRequestContext, amount: string, subject: string, expiresIn = '900') {
  const res = await request.post('/api/demo_order', {
    form: { amount, subject, expires_in: expiresIn },
    headers: { accept: 'text/html' },
    maxRedirects: 0,
  });
  expect(res.status()).toBe(302);
  return res.headers()['location'].split('/').pop()!;
}

/** The serious and critical violations on the page as it is now, one line each. */
async function serious(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

async function check(page: Page, url: string, what: string, ready?: (page: Page) => Promise<void>) {
  await page.goto(url);
  await page.locator('body[data-hydrated]').waitFor();
  if (ready) await ready(page);
  expect.soft(await serious(page), `${what} (${url})`).toEqual([]);
}


for (const locale of LOCALES) {
  test(`every page passes axe's serious and critical checks (${locale})`, async ({ browser, request }) => {
    test.setTimeout(120_000);
    const context = await browser.newContext({ locale });
    const page = await context.newPage();
    // An order that expires while the others are checked.
    const soon = await demoOrder(request, '2.00', 'Expires soon', '5');
    const expiresAt = Date.now() + 5_000;

    await check(page, '/', 'home');
    const id = await demoOrder(request, '12.34', 'Oolong');
    await check(page, `/checkout/${id}?wallet=alipay`, 'checkout, payable', async (p) => {
      await expect(p.getByTestId('qr')).toBeVisible();
    });
    const codeUrl = (await page.getByTestId('qr').getAttribute('data-code-url'))!;
    await check(page, `/checkout/${id}?wallet=any`, 'checkout, any wallet');
    const aggregate = (await page.getByTestId('qr').getAttribute('data-code-url'))!;
    await check(page, new URL(aggregate).pathname, 'aggregate code');
    // The sandbox wallet renders without WASM: no hydration marker to wait for.
    await page.goto(codeUrl);
    expect.soft(await serious(page), `sandbox wallet (${codeUrl})`).toEqual([]);
    await payInWallet(browser, codeUrl);
    await check(page, `/checkout/${id}`, 'checkout, paid', async (p) => {
      await expect(p.getByTestId('paid')).toBeVisible();
    });
    await page.waitForTimeout(Math.max(0, expiresAt - Date.now() + 1_500));
    await check(page, `/checkout/${soon}`, 'checkout, expired', async (p) => {
      await expect(p.getByTestId('checkout')).toHaveAttribute('data-status', 'expired');
    });

    await check(page, '/login', 'sign-in');
    await page.getByTestId('login-demo').click();
    await expect(page).toHaveURL(/\/board$/);
    await check(page, '/board', 'board', async (p) => {
      await expect(p.getByTestId('board-live')).toHaveAttribute('data-live', 'live');
    });
    await check(page, `/board/orders/${id}`, 'order', async (p) => {
      await expect(p.getByTestId('order-detail')).toBeVisible();
    });
    await check(page, '/board/developers', 'developers');
    await check(page, '/board/cluster', 'cluster', async (p) => {
      await expect(p.locator('[data-testid=node-row]')).toHaveCount(1);
    });
    await context.close();
  });
}
