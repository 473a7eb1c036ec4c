// Shared by the specs: a customer's phone paying a code in the sandbox wallet.
import { expect, type Browser } from '@playwright/test';

/** Opens a code URL in a browser context of its own (the phone) and presses Pay. */
export async function payInWallet(browser: Browser, codeUrl: string) {
  const phone = await browser.newContext();
  const wallet = await phone.newPage();
  await wallet.goto(codeUrl);
  await wallet.getByTestId('wallet-pay').click();
  await expect(wallet.locator('[data-state=paid]')).toBeVisible();
  await phone.close();
}
