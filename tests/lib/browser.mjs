// Headless Debian Chromium through playwright-core (never a downloaded browser).
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/**
 * `args`: more Chromium flags. With OVERTONE_NO_WASM=1 every page of the browser runs without
 * WebAssembly (as a runtime without it), so the package falls back to its JavaScript twin.
 */
export async function launchBrowser(args = []) {
  const browser = await launch(args);
  if (process.env.OVERTONE_NO_WASM === '1') {
    const newContext = browser.newContext.bind(browser);
    browser.newContext = async (options) => {
      const context = await newContext(options);
      await context.addInitScript(() => delete globalThis.WebAssembly);
      return context;
    };
    browser.newPage = async (options) => (await browser.newContext(options)).newPage();
  }
  return browser;
}

function launch(args) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args,
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
