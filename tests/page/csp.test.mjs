// The package on pages whose Content-Security-Policy forbids compiling WebAssembly (no
// 'wasm-unsafe-eval', as `default-src 'self'` alone): the client runs from the module's JavaScript
// twin (wasm2js) and connects, subscribes and hears events; with 'wasm-unsafe-eval' the same page
// runs the .wasm and never fetches the twin; without WebAssembly at all, the twin again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serverSdk } from '../lib/server.mjs';
import { startPageServer } from '../lib/client-page.mjs';
import { launchBrowser } from '../lib/browser.mjs';

let server, sdk, browser;
before(async () => {
  server = await startPageServer();
  sdk = await serverSdk(server);
  // A page whose response the test rewrote (to add the CSP header) counts as public for
  // Chromium's Local Network Access checks, which would then block its socket to 127.0.0.1.
  browser = await launchBrowser(['--disable-features=LocalNetworkAccessChecks']);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * Opens the CSP fixture page served with `policy` (in a runtime without WebAssembly when
 * `noWasm`); records which client files it fetched.
 */
async function openUnder(policy, { noWasm = false, noTwin = false } = {}) {
  const page = await browser.newPage();
  if (noWasm) await page.addInitScript(() => delete globalThis.WebAssembly);
  if (noTwin) await page.route('**/*_wasm2js.js', (route) => route.abort());
  const consoleErrors = [];
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
  const fetched = [];
  page.on('request', (request) => fetched.push(new URL(request.url()).pathname));
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.route('**/csp.html*', async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, headers: { ...response.headers(), 'content-security-policy': policy } });
  });
  await page.route('**/broadcasting/auth', async (route) => {
    const form = new URLSearchParams(route.request().postData() ?? '');
    await route.fulfill({ json: sdk.authorizeChannel(form.get('socket_id'), form.get('channel_name')) });
  });
  await page.goto(`${server.url}/csp.html?port=${server.port}&key=${server.app.key}`);
  return { page, fetched, errors, consoleErrors };
}

async function receivesEvents(page) {
  await page.waitForFunction(() => window.seen?.subscribed.length === 2, null, { timeout: 10000 });
  await sdk.trigger(['news', 'private-orders.1'], 'posted', { id: 1 });
  await page.waitForFunction(() => window.seen.events.length === 2, null, { timeout: 5000 });
  const seen = await page.evaluate(() => window.seen);
  assert.deepEqual(seen.events.map(([channel]) => channel).sort(), ['news', 'private-orders.1']);
  assert.deepEqual(seen.errors, []);
  assert.equal(seen.statuses.at(-1), 'connected');
}

test("default-src 'self': the JavaScript twin connects, subscribes and hears events", async () => {
  const { page, fetched, errors } = await openUnder("default-src 'self'; connect-src *");
  await receivesEvents(page);
  assert.ok(fetched.includes('/pkg/overtone_wasm2js.js'), `fetched: ${fetched.join(', ')}`);
  // The page's policy is known before any download: the .wasm is never fetched.
  assert.ok(!fetched.some((path) => path.endsWith('.wasm')), `fetched: ${fetched.join(', ')}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test("with 'wasm-unsafe-eval' the same page runs the .wasm and never fetches the twin", async () => {
  const { page, fetched, errors } = await openUnder("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src *");
  await receivesEvents(page);
  assert.ok(fetched.includes('/pkg/overtone_bg.wasm'));
  assert.ok(!fetched.some((path) => path.endsWith('_wasm2js.js')), `fetched: ${fetched.join(', ')}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('without WebAssembly at all the twin runs, and no .wasm is fetched', async () => {
  const { page, fetched, errors } = await openUnder("default-src 'self'; connect-src *", { noWasm: true });
  await receivesEvents(page);
  assert.ok(fetched.includes('/pkg/overtone_wasm2js.js'));
  assert.ok(!fetched.some((path) => path.endsWith('.wasm')), `fetched: ${fetched.join(', ')}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('when neither can run, the app hears why: the connection fails, each channel errors, one console error', async () => {
  const { page, consoleErrors } = await openUnder("default-src 'self'; connect-src *", { noTwin: true });
  await page.waitForFunction(() => window.seen?.errors.length === 2, null, { timeout: 10000 });
  const seen = await page.evaluate(() => window.seen);
  assert.deepEqual(seen.statuses, ['failed']);
  for (const [, error] of seen.errors) {
    assert.equal(error.type, 'AuthError');
    assert.match(error.error, /add 'wasm-unsafe-eval' to the Content-Security-Policy's script-src/);
  }
  assert.equal(consoleErrors.filter((text) => text.startsWith('overtone:')).length, 1, consoleErrors.join('\n'));
  await page.close();
});
