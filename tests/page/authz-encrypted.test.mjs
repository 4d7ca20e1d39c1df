// The browser path of the authorization service: a page on another origin (localhost vs the
// server's 127.0.0.1) loads pusher-js/with-encryption, or overtone/with-encryption (the built
// package, served as files), authorizes a private-encrypted channel at the server's
// /broadcasting/auth with a bearer token (a real CORS preflight), and decrypts an event the
// `pusher` SDK encrypted with encryptionMasterKeyBase64.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';
import { startAuthzServer, authzSdk, jwt, authzApp, MASTER_KEY_BASE64 } from '../lib/authz.mjs';
import { startPackageSite } from '../lib/client-page.mjs';

const require = createRequire(import.meta.url);
const PUSHER_WITH_ENCRYPTION = require.resolve('pusher-js/dist/web/pusher-with-encryption.min.js');

let server, site, browser;
before(async () => {
  server = await startAuthzServer('[[apps.authz.rules]]\nchannel = "private-encrypted-vault.{id}"\nclaim_equals = { id = "sub" }\n');
  const script = await readFile(PUSHER_WITH_ENCRYPTION);
  // The app's own site: an empty page, the pusher-js/with-encryption bundle and the built
  // overtone package under /pkg/.
  site = await startPackageSite({
    host: '127.0.0.1',
    head: '<script src="/pusher.js"></script>',
    answer: async (req, res) => {
      if (req.url !== '/pusher.js') return false;
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(script);
      return true;
    },
  });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await new Promise((resolve) => site?.close(resolve));
  await server?.stop();
});

/** Once `page` is subscribed to `private-encrypted-vault.42`: an encrypted event triggered there
 * reaches `window.received` as plaintext, and the page logged no problem. */
async function expectDecrypted(page) {
  await retryUntil(async () => {}, () => page.evaluate(() => window.subscribed === true), { what: 'the subscription' });
  const sdk = await authzSdk(server, { encryptionMasterKeyBase64: MASTER_KEY_BASE64 });
  await sdk.trigger('private-encrypted-vault.42', 'secret', { pin: '1234' });
  await retryUntil(async () => {}, () => page.evaluate(() => window.received.length > 0), { what: 'the decrypted event' });
  assert.deepEqual(await page.evaluate(() => window.received), [{ pin: '1234' }]);
  assert.deepEqual(page.problems, []);
}

test('a page on another origin subscribes to an encrypted channel and reads the plaintext', async () => {
  const context = await browser.newContext();
  const page = await strictPage(context);
  await page.goto(`http://localhost:${site.address().port}/`);
  await page.evaluate(({ key, port, token }) => {
    window.received = [];
    const client = new window.Pusher(key, {
      cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'],
      disableStats: true, authEndpoint: `http://127.0.0.1:${port}/broadcasting/auth`,
      auth: { headers: { Authorization: `Bearer ${token}` } },
    });
    const channel = client.subscribe('private-encrypted-vault.42');
    channel.bind('pusher:subscription_succeeded', () => { window.subscribed = true; });
    channel.bind('secret', (data) => window.received.push(data));
  }, { key: authzApp.key, port: server.port, token: jwt({ sub: '42' }) });
  await expectDecrypted(page);
  await context.close();
});

test('overtone/with-encryption on a page on another origin reads the plaintext of an encrypted channel', async () => {
  const context = await browser.newContext();
  const page = await strictPage(context);
  await page.goto(`http://localhost:${site.address().port}/`);
  await page.evaluate(async ({ key, port, token }) => {
    const { default: Echo } = await import('/pkg/with-encryption.js');
    window.received = [];
    const echo = new Echo({
      broadcaster: 'reverb', key, wsHost: '127.0.0.1', wsPort: port, forceTLS: false,
      authEndpoint: `http://127.0.0.1:${port}/broadcasting/auth`, bearerToken: token,
    });
    echo.encryptedPrivate('vault.42')
      .subscribed(() => { window.subscribed = true; })
      .listen('.secret', (data) => window.received.push(data));
  }, { key: authzApp.key, port: server.port, token: jwt({ sub: '42' }) });
  await expectDecrypted(page);
  await context.close();
});
