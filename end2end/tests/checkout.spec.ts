// The customer's checkout against the running server and its built-in sandbox gateways:
// the code in the server's HTML, paying in the sandbox wallet on a "phone", and the still-open
// checkout turning paid by itself; expiry, switching wallet, a dropped live channel, and the
// aggregate code scanned by each kind of phone.
import { expect, test, type APIRequestContext, type Browser, type Page } from '@playwright/test';

const PHONE = { width: 390, height: 844 };
const UA = {
  alipay: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 AlipayClient/10.6.0',
  wechat: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36 MicroMessenger/8.0.50',
  plain: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Mobile/15E148 Safari/604.1',
};

/** Creates a demo-shop order through the form's server function; returns its id. */
async function createOrder(request: APIRequestContext, amount: string, subject: string, expiresIn = '900') {
  const res = await request.post('/api/demo_order', {
    form: { amount, subject, expires_in: expiresIn },
    headers: { accept: 'text/html' },
    maxRedirects: 0,
  });
  expect(res.status()).toBe(302);
  const location = res.headers()['location'];
  expect(location).toMatch(/^\/checkout\/[0-9A-Za-z_]{26}$/);
  return location.split('/').pop()!;
}

/** Marks the window, so a later check can tell that no reload happened. */
async function markWindow(page: Page) {
  await page.locator('body[data-hydrated]').waitFor();
  await page.evaluate(() => ((window as unknown as { scanpayMarker: number }).scanpayMarker = 1));
}
async function expectNoReload(page: Page) {
  expect(await page.evaluate(() => (window as unknown as { scanpayMarker?: number }).scanpayMarker)).toBe(1);
}

/** Opens a code URL on a phone (a separate browser context) and presses Pay in the wallet. */
async function payOnPhone(browser: Browser, codeUrl: string, screenshot?: string) {
  const phone = await browser.newContext({ viewport: PHONE, locale: 'zh-CN' });
  const wallet = await phone.newPage();
  await wallet.goto(codeUrl);
  await wallet.getByTestId('wallet-pay').click();
  await expect(wallet.locator('[data-state=paid]')).toBeVisible();
  if (screenshot) await wallet.screenshot({ path: screenshot });
  await phone.close();
}

for (const wallet of ['alipay', 'wechat'] as const) {
  test(`full ${wallet} path: the open checkout turns paid without a reload`, async ({ page, request, browser }, testInfo) => {
    const id = await createOrder(request, '12.34', `Flat white (${wallet})`);
    await page.setViewportSize(PHONE);
    const response = await page.goto(`/checkout/${id}?wallet=${wallet}`);
    const html = await response!.text();
    // The server's HTML already holds the amount, the shop and the QR code.
    expect(html).toContain('¥12.34');
    expect(html).toContain('ScanPay Demo Shop');
    expect(html).toMatch(/<div [^>]*aria-label="QR code to pay ¥12\.34 to ScanPay Demo Shop"[^>]*><svg /);
    const qr = page.getByTestId('qr');
    await expect(qr).toHaveAttribute('data-choice', wallet);
    const codeUrl = (await qr.getAttribute('data-code-url'))!;
    expect(html).toContain(codeUrl.replaceAll('&', '&amp;'));
    expect(codeUrl).toContain('/sandbox/pay/');
    await markWindow(page);
    await expect(page.getByTestId('live')).toHaveAttribute('data-live', 'live');
    await page.screenshot({ path: testInfo.outputPath(`checkout-${wallet}-phone.png`), fullPage: true });

    await payOnPhone(browser, codeUrl, testInfo.outputPath(`wallet-${wallet}-phone.png`));

    await expect(page.getByTestId('paid')).toBeVisible();
    await expect(page.getByTestId('checkout')).toHaveAttribute('data-status', 'paid');
    // Announced through the live region that was there before the change.
    await expect(page.getByTestId('announcer')).toHaveText('Paid. Thank you.');
    await expect(page.getByTestId('announcer')).toHaveAttribute('aria-live', 'polite');
    await expect(page.getByTestId('paid-at')).toContainText(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/);
    await expectNoReload(page);
    await page.screenshot({ path: testInfo.outputPath(`paid-${wallet}-phone.png`), fullPage: true });
  });
}

test('a phone-sized checkout in Chinese, kept as a screenshot', async ({ browser, request }, testInfo) => {
  const id = await createOrder(request, '88.00', '年货礼盒 Gift box');
  const phone = await browser.newContext({ viewport: PHONE, locale: 'zh-CN', deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const page = await phone.newPage();
  await page.goto(`/checkout/${id}`);
  await expect(page.locator('html')).toHaveAttribute('lang', 'zh-CN');
  await expect(page.getByTestId('qr')).toHaveAttribute('data-choice', 'any');
  await expect(page.getByText('请使用支付宝或微信扫码')).toBeVisible();
  await page.locator('body[data-hydrated]').waitFor();
  // The QR code fits the phone's screen.
  const box = (await page.getByTestId('qr').locator('svg').boundingBox())!;
  expect(box.width).toBeGreaterThan(150);
  expect(box.x + box.width).toBeLessThanOrEqual(PHONE.width);
  const shot = testInfo.outputPath('checkout-phone-zh.png');
  await page.screenshot({ path: shot, fullPage: true });
  await testInfo.attach('checkout-phone-zh', { path: shot, contentType: 'image/png' });
  // The language switch works in place, and is remembered.
  await page.getByTestId('switch-lang').click();
  await expect(page.getByText('Scan with Alipay or WeChat')).toBeVisible();
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await phone.close();
});

test('an order that expires shows so, and a new code can be had', async ({ page, request }) => {
  const id = await createOrder(request, '5.00', 'Short-lived', '5');
  await page.goto(`/checkout/${id}?wallet=alipay`);
  await expect(page.getByTestId('countdown')).toBeVisible();
  await markWindow(page);
  await expect(page.getByTestId('expired')).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId('checkout')).toHaveAttribute('data-status', 'expired');
  await expect(page.getByTestId('qr')).toHaveCount(0);
  await expectNoReload(page);
  await page.getByTestId('renew').click();
  await expect(page).toHaveURL(/\/checkout\/[0-9A-Za-z_]{26}$/);
  expect(page.url()).not.toContain(id);
  await expect(page.getByTestId('checkout')).toHaveAttribute('data-status', /created|pending/);
  await expect(page.getByTestId('amount')).toHaveText('¥5.00');
});

test('switching wallet closes the previous code at its provider', async ({ page, request, browser }) => {
  const id = await createOrder(request, '3.20', 'Switcher');
  await page.goto(`/checkout/${id}?wallet=alipay`);
  const alipayUrl = (await page.getByTestId('qr').getAttribute('data-code-url'))!;
  await markWindow(page);
  // The customer scans the Alipay code, then changes their mind on the checkout.
  const phone = await browser.newContext({ viewport: PHONE });
  const old = await phone.newPage();
  await old.goto(alipayUrl);
  await expect(old.getByTestId('wallet-pay')).toBeVisible();
  await page.getByTestId('choose-wechat').click();
  await expect(page.getByTestId('qr')).toHaveAttribute('data-choice', 'wechat');
  const wechatUrl = (await page.getByTestId('qr').getAttribute('data-code-url'))!;
  expect(wechatUrl).not.toBe(alipayUrl);
  await expectNoReload(page);
  // The Alipay code can no longer be paid: its wallet page now says closed.
  await old.reload();
  await expect(old.locator('[data-state=closed]')).toBeVisible();
  await expect(old.getByTestId('wallet-pay')).toHaveCount(0);
  await phone.close();
  // The new one can.
  await payOnPhone(browser, wechatUrl);
  await expect(page.getByTestId('paid')).toBeVisible();
});

test('after the live channel drops, the page reconnects and shows the payment it missed', async ({ page, request, browser }) => {
  let allow = true;
  const sockets: { close: () => Promise<void> }[] = [];
  await page.routeWebSocket(/\/api\/watch/, (ws) => {
    if (!allow) {
      // The network is down: the reconnection fails at once.
      void ws.close();
      return;
    }
    ws.connectToServer();
    sockets.push(ws);
  });
  const id = await createOrder(request, '7.77', 'Flaky network');
  await page.goto(`/checkout/${id}?wallet=wechat`);
  const codeUrl = (await page.getByTestId('qr').getAttribute('data-code-url'))!;
  await markWindow(page);
  await expect(page.getByTestId('live')).toHaveAttribute('data-live', 'live');

  allow = false;
  for (const ws of sockets) await ws.close();
  await expect(page.getByTestId('live')).toHaveAttribute('data-live', 'reconnecting');
  await payOnPhone(browser, codeUrl);
  // Paid on the server, but this page has not heard of it.
  await page.waitForTimeout(1500);
  await expect(page.getByTestId('checkout')).toHaveAttribute('data-status', 'pending');

  allow = true;
  await expect(page.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
  await expect(page.getByTestId('live')).toHaveCount(0);
  await expectNoReload(page);
});

test.describe('the scanning phone', () => {
  async function aggregateUrl(request: APIRequestContext, amount = '42.00') {
    const id = await createOrder(request, amount, 'Any wallet');
    const html = await (await request.get(`/checkout/${id}?wallet=any`)).text();
    const match = html.match(/data-code-url="([^"]*\/q\/[0-9A-Za-z]{22})"/);
    expect(match).not.toBeNull();
    return match![1];
  }

  // Inside the wallet's own browser: a silent sign-in, back to our page, and the page pays
  // through the wallet's JS bridge (the sandbox's stand-in in the demo posture), then turns
  // paid from the order itself.
  for (const wallet of ['wechat', 'alipay'] as const) {
    test(`${wallet}'s own browser signs in and pays in the page`, async ({ browser, request }, testInfo) => {
      const url = await aggregateUrl(request);
      const phone = await browser.newContext({ viewport: PHONE, userAgent: UA[wallet], locale: 'zh-CN' });
      const page = await phone.newPage();
      await page.goto(url);
      await expect(page).toHaveURL(wallet === 'wechat' ? /\/q\/[0-9A-Za-z]{22}\?code=[^#]*&state=/ : /\/q\/[0-9A-Za-z]{22}\?.*auth_code=/);
      await expect(page.getByTestId('inapp')).toBeVisible();
      await expect(page.getByTestId('amount')).toHaveText('¥42.00');
      await expect(page.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
      await expect(page.getByTestId('paid')).toContainText('支付成功');
      await page.screenshot({ path: testInfo.outputPath(`phone-${wallet}-in-app-paid.png`), fullPage: true });
      // A reload replays the spent sign-in: the receipt again, no second payment.
      await page.reload();
      await expect(page.getByTestId('paid')).toBeVisible();
      await expect(page.getByTestId('inapp-pay')).toHaveCount(0);
      await phone.close();
    });
  }

  test('a buyer who closes the wallet\'s pay sheet is told so and can pay again', async ({ browser, request, baseURL }, testInfo) => {
    for (const wallet of ['wechat', 'alipay'] as const) {
      const url = await aggregateUrl(request);
      const phone = await browser.newContext({ viewport: PHONE, userAgent: UA[wallet], locale: 'zh-CN' });
      // The sandbox's bridge answers as the wallet does when the buyer cancels.
      await phone.addCookies([{ name: 'sandbox_wallet', value: 'cancel', url: baseURL! }]);
      const page = await phone.newPage();
      await page.goto(url);
      await expect(page.getByTestId('inapp-hint')).toHaveAttribute('data-hint', 'cancelled', { timeout: 15_000 });
      await expect(page.getByTestId('inapp-hint')).toContainText('已取消付款');
      await expect(page.getByTestId('paid')).toHaveCount(0);
      await page.screenshot({ path: testInfo.outputPath(`phone-${wallet}-cancelled.png`), fullPage: true });
      // The same call, tapped again once the buyer means it: paid, from the order itself.
      await phone.clearCookies({ name: 'sandbox_wallet' });
      await page.getByTestId('inapp-pay').click();
      await expect(page.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
      await phone.close();
    }
  });

  test('a changed or spent sign-in gives a clear page in the phone\'s language', async ({ browser, request }, testInfo) => {
    const url = await aggregateUrl(request);
    const phone = await browser.newContext({ viewport: PHONE, userAgent: UA.wechat, locale: 'zh-CN' });
    const page = await phone.newPage();
    // Follow the sign-in by hand to the way back, then open it with its state changed.
    const headers = { 'user-agent': UA.wechat };
    const authorize = (await phone.request.get(url, { headers, maxRedirects: 0 })).headers()['location'];
    expect(authorize).toContain('#wechat_redirect');
    const back = (await phone.request.get(authorize.split('#')[0], { headers, maxRedirects: 0 })).headers()['location'];
    expect(back).toMatch(/\?code=[^#]*&state=/);
    await page.goto(back.replace('state=', 'state=X'));
    await page.screenshot({ path: testInfo.outputPath('phone-sign-in-invalid.png'), fullPage: true });
    await expect(page.getByTestId('pay-problem')).toHaveAttribute('data-kind', 'SignInInvalid');
    await expect(page.getByTestId('pay-problem')).toContainText('此链接无效');
    // The real way back, opened once elsewhere (a double redirect), then here: spent.
    await phone.request.get(back, { headers, maxRedirects: 0 });
    await page.goto(back);
    await expect(page.getByTestId('pay-problem')).toHaveAttribute('data-kind', 'SignInUsed');
    await expect(page.getByTestId('pay-problem')).toContainText('未发生扣款');
    await page.screenshot({ path: testInfo.outputPath('phone-sign-in-used.png'), fullPage: true });
    // Starting again signs in anew and pays.
    await page.getByTestId('start-again').click();
    await expect(page.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
    await phone.close();
  });

  for (const [wallet, cashier] of [['alipay', 'WAP'], ['wechat', 'H5']] as const) {
    test(`a plain phone browser pays through the ${cashier} cashier and comes back paid`, async ({ browser, request }, testInfo) => {
      const url = await aggregateUrl(request);
      const phone = await browser.newContext({ viewport: PHONE, userAgent: UA.plain });
      const page = await phone.newPage();
      await page.goto(url);
      await expect(page.getByTestId('aggregate')).toContainText('Pay ¥42.00 to ScanPay Demo Shop');
      await page.screenshot({ path: testInfo.outputPath(`phone-plain-choose.png`), fullPage: true });
      await page.getByTestId(`pay-${wallet}`).click();
      await expect(page).toHaveURL(/\/sandbox\/pay\//);
      await page.getByTestId('wallet-pay').click();
      await expect(page).toHaveURL(new RegExp(`/q/[0-9A-Za-z]{22}\\?back=${wallet}`));
      await expect(page.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
      await page.screenshot({ path: testInfo.outputPath(`phone-plain-${wallet}-paid.png`), fullPage: true });
      await phone.close();
    });
  }

  test('a desktop browser keeps the QR code', async ({ browser, request }) => {
    const url = await aggregateUrl(request);
    const desktop = await browser.newContext();
    const page = await desktop.newPage();
    await page.goto(url);
    await page.getByTestId('pay-wechat').click();
    await expect(page).toHaveURL(/\/checkout\/[0-9A-Za-z_]{26}\?wallet=wechat$/);
    await expect(page.getByTestId('qr')).toBeVisible();
    await desktop.close();
  });
});

test('the home page form creates a demo order and opens its checkout', async ({ page }) => {
  await page.goto('/');
  await page.locator('body[data-hydrated]').waitFor();
  await page.getByTestId('amount-input').fill('12.3.4');
  await page.getByTestId('subject-input').fill('Latte');
  await page.getByTestId('create-payment').click();
  await expect(page.getByTestId('create-error')).toContainText('Amount');
  await expect(page).toHaveURL(/\/$/);
  await page.getByTestId('amount-input').fill('9.9');
  await page.getByTestId('create-payment').click();
  await expect(page).toHaveURL(/\/checkout\/[0-9A-Za-z_]{26}$/);
  await expect(page.getByTestId('amount')).toHaveText('¥9.90');
  await expect(page.getByTestId('subject')).toHaveText('Latte');
});
