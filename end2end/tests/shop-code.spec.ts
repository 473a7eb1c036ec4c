// A shop's fixed code (the 收款码 at the counter) against the running server and its sandbox:
// the merchant creates and prints it on the board; phones scan it, type the amount and pay
// through their wallet's own way; the board shows the order marked with the code; a
// disabled code takes nothing.
import { expect, test } from '@playwright/test';
import { createMerchant, signInByLink } from './merchant';

const PHONE = { width: 390, height: 844 };
const WECHAT = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36 MicroMessenger/8.0.50';
const ALIPAY = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 AlipayClient/10.6.0';
const PLAIN = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Mobile/15E148 Safari/604.1';

test('a merchant prints a fixed code; phones scan it, type the amount and pay; a disabled code takes nothing', async ({ page, browser }, testInfo) => {
  test.setTimeout(60_000);
  const made = createMerchant('Bao Bakery', `bao+${Date.now()}@bakery.example`);
  await signInByLink(page, made, 'a long enough password');
  await page.getByTestId('developers-link').click();
  await page.getByTestId('code-name-input').fill('Counter 1');
  await page.getByTestId('create-code').click();
  const row = page.locator('[data-testid=code-row]', { hasText: 'Counter 1' });
  await expect(row).toHaveAttribute('data-active', 'true');
  const code = (await row.getAttribute('data-code'))!;
  expect(code).toMatch(/^[0-9A-Za-z]{16}$/);

  // The printable card: the QR of the code's link, the shop, the wallets.
  const card = await page.context().newPage();
  await card.goto(`/p/${code}/card`);
  await expect(card.getByTestId('shop-card')).toContainText('Bao Bakery');
  await expect(card.locator('[data-url]')).toHaveAttribute('data-url', new RegExp(`/p/${code}$`));
  await card.screenshot({ path: testInfo.outputPath('shop-code-card.png'), fullPage: true });
  await card.close();

  // Inside WeChat: type the amount, sign in silently, pay in the page.
  const wechat = await browser.newContext({ viewport: PHONE, userAgent: WECHAT, locale: 'zh-CN' });
  const phone = await wechat.newPage();
  await phone.goto(`/p/${code}`);
  await expect(phone.getByTestId('merchant')).toHaveText('Bao Bakery');
  await phone.getByTestId('shop-amount').fill('1.2.3');
  await phone.getByTestId('shop-pay').click();
  await expect(phone.getByTestId('shop-error')).not.toBeEmpty();
  await phone.getByTestId('shop-amount').fill('18.80');
  await phone.getByTestId('shop-note').fill('two buns');
  await phone.screenshot({ path: testInfo.outputPath('shop-code-phone.png'), fullPage: true });
  await phone.getByTestId('shop-pay').click();
  await expect(phone.getByTestId('amount')).toHaveText('¥18.80');
  await expect(phone.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
  await phone.screenshot({ path: testInfo.outputPath('shop-code-wechat-paid.png'), fullPage: true });
  await wechat.close();

  // Inside Alipay: the same code, the amount, a silent sign-in, tradePay in the page.
  const alipay = await browser.newContext({ viewport: PHONE, userAgent: ALIPAY });
  const inAlipay = await alipay.newPage();
  await inAlipay.goto(`/p/${code}`);
  await inAlipay.getByTestId('shop-amount').fill('7.00');
  await inAlipay.getByTestId('shop-pay').click();
  await expect(inAlipay.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
  await alipay.close();

  // A plain phone browser: the amount, then the wallet's mobile cashier.
  const plain = await browser.newContext({ viewport: PHONE, userAgent: PLAIN });
  const other = await plain.newPage();
  await other.goto(`/p/${code}`);
  await other.getByTestId('shop-amount').fill('5');
  await other.getByTestId('shop-pay').click();
  await other.getByTestId('pay-alipay').click();
  await expect(other).toHaveURL(/\/sandbox\/pay\//);
  await other.getByTestId('wallet-pay').click();
  await expect(other.getByTestId('paid')).toBeVisible({ timeout: 15_000 });
  await plain.close();

  // The board shows both orders; then the code is disabled and takes nothing more.
  await page.getByRole('link', { name: /Order board|订单看板/ }).first().click();
  const paidHere = page.locator('[data-testid=order-row]', { hasText: 'Counter 1 · two buns' });
  await expect(paidHere).toBeVisible();
  await expect(page.locator('[data-testid=order-row]', { hasText: 'Counter 1' })).toHaveCount(3);
  await paidHere.getByRole('link').first().click();
  await expect(page.getByTestId('order-shop-code')).toContainText(`Counter 1 ${code}`);
  await expect(page.getByTestId('attempt-method')).toHaveText('jsapi');
  await page.goto('/board/developers');
  // The button acts once the page is hydrated; a click before that is lost.
  await page.locator('body[data-hydrated]').waitFor();
  await page.locator('[data-testid=code-row]', { hasText: 'Counter 1' }).getByTestId('disable-code').click();
  await expect(page.locator('[data-testid=code-row]', { hasText: 'Counter 1' })).toHaveAttribute('data-active', 'false');
  const late = await browser.newContext({ viewport: PHONE, userAgent: PLAIN });
  const latePage = await late.newPage();
  await latePage.goto(`/p/${code}`);
  await expect(latePage.getByTestId('shop-disabled')).toBeVisible();
  await expect(latePage.getByTestId('shop-pay')).toHaveCount(0);
  await late.close();
});
