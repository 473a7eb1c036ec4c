// Shared by the specs: a merchant made with `scanpay merchant create`, signed in on the board.
import { expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const repoRoot = path.resolve(__dirname, '..', '..');
const binary = process.env.SCANPAY_E2E_BIN ?? path.join(repoRoot, 'target', 'debug', 'scanpay');

export type Made = { merchant_id: string; api_key: string; login_url: string };

/** `scanpay merchant create --json` against the server's own database. */
export function createMerchant(name: string, email: string): Made {
  const out = execFileSync(binary, ['merchant', 'create', '--name', name, '--email', email, '--json'], {
    cwd: repoRoot,
    env: { ...process.env, SCANPAY_DATA_DIR: process.env.SCANPAY_E2E_DATA!, SCANPAY_LOG: 'warn' },
  });
  return JSON.parse(out.toString());
}

/** Follows the one-time link, chooses a password, and lands on the hydrated board. */
export async function signInByLink(page: Page, made: Made, password: string) {
  await page.goto(new URL(made.login_url).pathname);
  await page.getByTestId('link-password').fill(password);
  await page.getByTestId('link-submit').click();
  await expect(page).toHaveURL(/\/board$/);
  await page.locator('body[data-hydrated]').waitFor();
  await expect(page.getByTestId('board-live')).toHaveAttribute('data-live', 'live');
}
