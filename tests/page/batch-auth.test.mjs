// Batched channel authorization: a page of the built package subscribes to 40 private channels
// (one of them refused by the rules), then reconnects. Against Overtone's /broadcasting/auth
// that costs one request per round; against an endpoint that authorizes one channel per request
// (as Laravel's: it reads `channel_name` and ignores `channel_names[]`) one per channel, with the
// same outcome for every channel. The page's site forwards both to the server and counts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';
import { startAuthzServer, authzApp, jwt } from '../lib/authz.mjs';
import { startPackageSite } from '../lib/client-page.mjs';

const CHANNELS = [...Array.from({ length: 39 }, (_, i) => `room.${i}`), 'closed'];

let server, site, browser;
/** Requests each endpoint of the site received. */
const requests = { batch: 0, single: 0 };

before(async () => {
  server = await startAuthzServer('[[apps.authz.rules]]\nchannel = "private-room.{n}"\n');
  // localhost: an origin the authz app allows.
  site = await startPackageSite({ host: 'localhost', answer: forward });
  browser = await launchBrowser();
});

/** The site's auth endpoints: both forward to the server's, `single` without the batch. */
async function forward(req, res) {
  const endpoint = req.url.match(/^\/(batch|single)\/broadcasting\/auth$/)?.[1];
  if (!endpoint) return false;
  requests[endpoint]++;
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const form = new URLSearchParams(Buffer.concat(chunks).toString());
  if (endpoint === 'single') form.delete('channel_names[]');
  const answer = await fetch(server.authEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: req.headers.authorization },
    body: form,
  });
  res.writeHead(answer.status, { 'Content-Type': 'application/json' });
  res.end(await answer.text());
  return true;
}

after(async () => {
  await browser?.close();
  await new Promise((resolve) => site?.close(resolve));
  await server?.stop();
});

/** Each channel's outcomes (`ok` or the refusal's status) over a connect and a reconnect. */
async function connectAndReconnect(endpoint) {
  const context = await browser.newContext();
  const page = await strictPage(context);
  await page.goto(`http://localhost:${site.address().port}/`);
  await page.evaluate(async ({ key, port, token, channels, endpoint }) => {
    const { default: Echo } = await import('/pkg/index.js');
    window.outcomes = {};
    window.echo = new Echo({
      broadcaster: 'reverb', key, wsHost: '127.0.0.1', wsPort: port, forceTLS: false,
      authEndpoint: `/${endpoint}/broadcasting/auth`, bearerToken: token,
    });
    for (const name of channels) {
      const seen = (window.outcomes[`private-${name}`] = []);
      echo.private(name).subscribed(() => seen.push('ok')).error((error) => seen.push(error.status));
    }
  }, { key: authzApp.key, port: server.port, token: jwt({ sub: '7' }), channels: CHANNELS, endpoint });
  const rounds = (n) => () => page.evaluate((n) => Object.values(window.outcomes).every((seen) => seen.length === n), n);
  await retryUntil(async () => {}, rounds(1), { what: 'every channel answered' });
  await page.evaluate(() => {
    echo.disconnect();
    echo.connect();
  });
  await retryUntil(async () => {}, rounds(2), { what: 'every channel answered again' });
  const outcomes = await page.evaluate(() => window.outcomes);
  // The refusal is logged as pusher-js does; nothing else is.
  assert.deepEqual(page.problems.filter((p) => !/closed|403/.test(p)), []);
  await context.close();
  return outcomes;
}

test('40 private channels over a connect and a reconnect: 2 batched requests, or 80 single ones, same outcomes', async () => {
  const batched = await connectAndReconnect('batch');
  const single = await connectAndReconnect('single');
  assert.deepEqual(requests, { batch: 2, single: 80 });
  assert.deepEqual(batched, single);
  const refused = Object.entries(batched).filter(([, seen]) => seen.some((s) => s !== 'ok'));
  assert.deepEqual(refused, [['private-closed', [403, 403]]], 'the refused channel errors alone');
});
