// End-to-end tests: Debian's Chromium (Playwright's own browser download does not work here)
// against the debug `scanpay` binary and site that `make build` made (scripts/site.sh), on a
// free loopback port with a fresh SQLite database in a temporary directory.
import { defineConfig } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The config is evaluated in the runner and again in each worker; the runner picks the port
// and data directory once and the workers inherit them through the environment.
if (!process.env.SCANPAY_E2E_PORT) {
  process.env.SCANPAY_E2E_PORT = execFileSync(process.execPath, [
    '-e',
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})",
  ]).toString();
}
if (!process.env.SCANPAY_E2E_DATA) {
  process.env.SCANPAY_E2E_DATA = mkdtempSync(path.join(tmpdir(), 'scanpay-e2e-'));
}

const repoRoot = path.resolve(__dirname, '..');
const port = process.env.SCANPAY_E2E_PORT;
const baseURL = `http://127.0.0.1:${port}`;
const binary = process.env.SCANPAY_E2E_BIN ?? path.join(repoRoot, 'target', 'debug', 'scanpay');

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  workers: 2,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
  webServer: {
    command: `"${binary}" serve`,
    cwd: repoRoot,
    url: `${baseURL}/readyz`,
    timeout: 120_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      SCANPAY_LISTEN: `127.0.0.1:${port}`,
      SCANPAY_DATA_DIR: process.env.SCANPAY_E2E_DATA,
      SCANPAY_LOG: 'warn',
    },
  },
});
