// The sandbox wallet page as a phone sees it: an order created through Alipay's official SDK
// against the running server's built-in sandbox gateway, its QR code URL opened on a
// phone-sized screen in Chinese, paid, and shown as paid on the sandbox's own listing.
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AlipaySdk } from 'alipay-sdk';

test.use({ locale: 'zh-CN' });

const keys = path.join(process.env.SCANPAY_E2E_DATA ?? '', 'sandbox', 'keys');
const key = (name: string) => readFileSync(path.join(keys, name), 'utf8');

test('a phone opens a sandbox Alipay code and pays', async ({ page, baseURL }, testInfo) => {
  const sdk = new AlipaySdk({
    appId: '9021000000000001',
    privateKey: key('alipay-merchant-private.pem'),
    keyType: 'PKCS8',
    alipayPublicKey: key('alipay-gateway-public.pem'),
    gateway: `${baseURL}/sandbox/alipay/gateway.do`,
    camelcase: false,
  });
  const outTradeNo = `E2E_${Date.now()}`;
  const created = (await sdk.exec(
    'alipay.trade.precreate',
    { bizContent: { out_trade_no: outTradeNo, total_amount: '12.34', subject: '扫码测试 Scan test' } },
    { validateSign: true },
  )) as Record<string, string>;
  expect(created.code).toBe('10000');

  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(created.qr_code);
  await expect(page.getByTestId('wallet-amount')).toHaveText('¥12.34');
  await expect(page.getByTestId('wallet-subject')).toHaveText('扫码测试 Scan test');
  await page.screenshot({ path: testInfo.outputPath('wallet-phone.png') });
  await page.getByTestId('wallet-pay').click();
  await expect(page.locator('[data-state=paid]')).toHaveText('✓ 支付成功');

  const queried = (await sdk.exec('alipay.trade.query', { bizContent: { out_trade_no: outTradeNo } }, { validateSign: true })) as Record<string, string>;
  expect(queried.trade_status).toBe('TRADE_SUCCESS');
  await page.goto('/sandbox/');
  await expect(page.getByRole('row', { name: new RegExp(outTradeNo) })).toContainText('paid');
});
