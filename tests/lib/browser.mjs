// Headless Debian Chromium through playwright-core (never a downloaded browser).
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** Opens a page that fails the test on any console error or uncaught exception. */
export async function strictPage(context) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
  page.on('pageerror', (err) => problems.push(String(err)));
  page.problems = problems;
  return page;
}

/** Calls `attempt` every `interval` ms until `done()` resolves true, or fails after `ms`. */
export async function retryUntil(attempt, done, { ms = 10000, interval = 250, what = 'condition' } = {}) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    await attempt();
    if (await done()) return;
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out waiting for ${what}`);
}
