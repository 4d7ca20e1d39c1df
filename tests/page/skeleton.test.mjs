// The skeleton path in a real browser: the demo page loads the wasm package, subscribes to a
// public channel, and shows an event triggered through the signed HTTP API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, serverSdk } from '../lib/server.mjs';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';

let server, browser;
before(async () => {
  server = await startServer({ demo: {} });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the demo page shows an event triggered through the HTTP API', async () => {
  const context = await browser.newContext();
  const page = await strictPage(context);
  await page.goto(`${server.url}/?channel=page-skeleton&event=greeting`);
  const sdk = await serverSdk(server);
  const items = page.locator('#events li');
  // The page subscribes asynchronously; trigger until the first event arrives.
  await retryUntil(
    () => sdk.trigger('page-skeleton', 'greeting', { text: 'hello, browser' }),
    async () => (await items.count()) > 0,
    { what: 'the event on the page' },
  );
  assert.equal(await items.first().textContent(), 'greeting: {"text":"hello, browser"}');
  assert.deepEqual(page.problems, []);
  await context.close();
});
