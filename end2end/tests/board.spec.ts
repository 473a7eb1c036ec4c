// The merchant's order board against the running server and its sandbox gateways: a merchant
// made with `scanpay merchant create` signs in through its one-time link, watches an order
// created through the API appear and turn paid without a reload, refunds part of it, reads the
// timeline, exports CSV, signs out and back in with the password; a second merchant sees none
// of it.
import { expect, test, type Page } from '@playwright/test';
import { payInWallet } from './wallet';
import { createMerchant, signInByLink } from './merchant';

test('a merchant watches a payment turn paid live, refunds part of it, exports; another merchant sees none of it', async ({ page, browser, request }, testInfo) => {
  const stamp = Date.now();
  const a = createMerchant('Tea House', `ann+${stamp}@tea.example`);
  const b = createMerchant('Noodle Bar', `bo+${stamp}@noodle.example`);
  await signInByLink(page, a, 'a long enough password');
  await expect(page.getByTestId('merchant-name')).toHaveText('Tea House');
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));

  // The shop creates an order through the API: it appears on the open board by itself.
  const created = await request.post('/api/v1/orders', {
    headers: { authorization: `Bearer ${a.api_key}` },
    data: { amount: 1234, currency: 'CNY', subject: 'Longjing 50 g', channel: 'wechat' },
  });
  expect(created.status()).toBe(201);
  const order = await created.json();
  const row = page.locator(`[data-testid=order-row][data-order="${order.id}"]`);
  await expect(row).toHaveAttribute('data-status', 'pending');
  await expect(row).toContainText('¥12.34');

  // The customer pays in the sandbox wallet: the row turns paid, and today's total counts it.
  await payInWallet(browser, order.code_url);
  await expect(row).toHaveAttribute('data-status', 'paid');
  await expect(page.getByTestId('today-wechat')).toContainText('¥12.34');
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
  await page.screenshot({ path: testInfo.outputPath('board-paid.png'), fullPage: true });

  // The order: refund ¥3.00 of it, then read the timeline.
  await row.getByRole('link').click();
  await expect(page.getByTestId('order-detail')).toHaveAttribute('data-status', 'paid');
  await expect(page.getByTestId('refundable')).toHaveText('¥12.34');
  await page.getByTestId('refund-amount').fill('3.00');
  await page.getByTestId('refund-reason').fill('one cup short');
  // Another of the merchant's orders changes meanwhile: the page re-reads the order and
  // redraws it, and what the merchant typed stays (it once went back to the full amount).
  const meanwhile = await request.post('/api/v1/orders', {
    headers: { authorization: `Bearer ${a.api_key}` },
    data: { amount: 100, currency: 'CNY', subject: 'Meanwhile' },
  });
  expect(meanwhile.status()).toBe(201);
  await page.waitForTimeout(1000);
  await expect(page.getByTestId('refund-amount')).toHaveValue('3.00');
  await expect(page.getByTestId('refund-reason')).toHaveValue('one cup short');
  await page.getByTestId('refund-submit').click();
  await expect(page.getByTestId('action-done')).toContainText('succeeded');
  await expect(page.getByTestId('order-detail')).toHaveAttribute('data-status', 'partially_refunded');
  await expect(page.getByTestId('detail-refunded')).toHaveText('¥3.00');
  await expect(page.getByTestId('refundable')).toHaveText('¥9.34');
  const timeline = page.getByTestId('timeline');
  await expect(timeline).toContainText('status.paid');
  await expect(timeline).toContainText('wechat accepted');
  await expect(timeline).toContainText('refund.succeeded');
  await page.screenshot({ path: testInfo.outputPath('order-detail.png'), fullPage: true });

  // Too much is refused with the field named, and nothing changes.
  await page.getByTestId('refund-amount').fill('9.35');
  await page.getByTestId('refund-submit').click();
  await expect(page.getByTestId('action-error')).toContainText('Refund amount');
  await expect(page.getByTestId('detail-refunded')).toHaveText('¥3.00');

  // The CSV export of the board's filtered orders.
  await page.goto('/board?status=partially_refunded');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
  const csv = (await import('node:fs')).readFileSync(await download.path(), 'utf8');
  expect(csv).toContain(`${order.id},`);
  expect(csv).toContain(',Longjing 50 g,12.34,3.00,CNY,partially_refunded,false,wechat,');
  expect(csv.trim().split('\n')).toHaveLength(2);

  // Signing out ends the session; the password chosen through the link signs back in.
  await page.goto('/board');
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByTestId('sign-out').click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/board');
  await expect(page).toHaveURL(/\/login\?next=%2Fboard$/);
  await page.getByTestId('login-email').fill(`ANN+${stamp}@tea.example`);
  await page.getByTestId('login-password').fill('a long enough password');
  await page.getByTestId('login-submit').click();
  await expect(page).toHaveURL(/\/board$/);
  await expect(page.locator(`[data-testid=order-row][data-order="${order.id}"]`)).toBeVisible();

  // The second merchant: an empty board, "no such order" for the first one's, and an empty export.
  const other = await browser.newContext();
  const bPage = await other.newPage();
  await signInByLink(bPage, b, 'another long password');
  await expect(bPage.getByTestId('merchant-name')).toHaveText('Noodle Bar');
  await expect(bPage.getByTestId('orders')).toContainText('No orders match');
  await expect(bPage.locator('[data-testid=order-row]')).toHaveCount(0);
  await bPage.goto(`/board/orders/${order.id}`);
  await expect(bPage.getByTestId('order-missing')).toBeVisible();
  const bCsv = await bPage.context().request.get('/board/orders.csv');
  expect(bCsv.status()).toBe(200);
  expect(await bCsv.text()).not.toContain(order.id);
  await other.close();
});

test('the board speaks Chinese and the sign-in page explains a wrong password', async ({ page }) => {
  const anonymous = await page.request.get('/board', { maxRedirects: 0 });
  expect(anonymous.status()).toBe(303);
  expect(anonymous.headers()['location']).toBe('/login?next=%2Fboard');
  await page.goto('/login?lang=zh');
  await page.getByTestId('login-email').fill('nobody@nowhere.example');
  await page.getByTestId('login-password').fill('not a password at all');
  await page.getByTestId('login-submit').click();
  await expect(page.getByTestId('login-error')).toHaveText('邮箱或密码错误。');
  // The demo shop's board opens without a password (the demo is on in this server).
  await page.getByTestId('login-demo').click();
  await expect(page).toHaveURL(/\/board$/);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('订单看板');
  await expect(page.getByTestId('merchant-name')).toHaveText('ScanPay Demo Shop');
  // The demo user is an operator: the cluster page lists this node, ready, re-read live.
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByTestId('cluster-link').click();
  await expect(page).toHaveURL(/\/board\/cluster$/);
  const node = page.locator('[data-testid=node-row]');
  await expect(node).toHaveCount(1);
  await expect(node).toHaveAttribute('data-state', 'ready');
  await expect(page.getByTestId('cluster-mode')).toContainText('本节点');
});

test('a merchant who is not an operator has no cluster page', async ({ page }) => {
  const made = createMerchant('Plain Shop', `plain+${Date.now()}@shop.example`);
  await signInByLink(page, made, 'a long enough password');
  await expect(page.getByTestId('cluster-link')).toHaveCount(0);
  await page.goto('/board/cluster');
  await expect(page.getByTestId('cluster')).toContainText('No such page.');
});

test('a merchant connects their shop on the developers page: a key shown once, revoked; a webhook endpoint and its secret', async ({ page, request }, testInfo) => {
  const made = createMerchant('Dumpling Stall', `dee+${Date.now()}@dumpling.example`);
  await signInByLink(page, made, 'a long enough password');
  await page.getByTestId('developers-link').click();
  await expect(page).toHaveURL(/\/board\/developers$/);
  await expect(page.getByTestId('api-reference-link')).toHaveAttribute('href', '/docs/api.html');
  await expect(page.locator('[data-testid=key-row]')).toHaveCount(1); // the key `merchant create` made

  // A new key, shown this once; the shop's first call with it works.
  await page.getByTestId('key-name').fill('web shop');
  await page.getByTestId('create-key').click();
  await expect(page.getByTestId('setting-done')).toContainText('not shown again');
  const key = (await page.getByTestId('shown-secret').textContent())!.trim();
  expect(key).toMatch(/^sk_[A-Za-z0-9]{32}$/);
  await expect(page.locator('[data-testid=key-row]')).toHaveCount(2);
  const auth = { authorization: `Bearer ${key}` };
  expect((await request.get('/api/v1/orders', { headers: auth })).status()).toBe(200);
  await page.screenshot({ path: testInfo.outputPath('developers.png'), fullPage: true });

  // Revoked: the row greys out and the key stops working.
  const row = page.locator('[data-testid=key-row]', { hasText: 'web shop' });
  await row.getByTestId('revoke-key').click();
  await expect(row).toHaveAttribute('data-revoked', 'true');
  expect((await request.get('/api/v1/orders', { headers: auth })).status()).toBe(401);

  // The webhook endpoint: saving shows its signing secret once; rotating shows a new one.
  await page.getByTestId('webhook-url').fill('https://dumpling.example/scanpay/events');
  await page.getByTestId('save-webhook').click();
  await expect(page.getByTestId('webhook-current')).toHaveText('https://dumpling.example/scanpay/events');
  const secret = (await page.getByTestId('shown-secret').textContent())!.trim();
  expect(secret.length).toBeGreaterThan(20);
  await page.getByTestId('rotate-secret').click();
  await expect(page.getByTestId('setting-done')).toContainText('New signing secret');
  await expect(page.getByTestId('shown-secret')).not.toHaveText(secret);

  // After a reload nothing secret is on the page.
  await page.reload();
  await page.locator('body[data-hydrated]').waitFor();
  await expect(page.getByTestId('shown-secret')).toHaveCount(0);
  expect(await page.content()).not.toContain(key);
});
