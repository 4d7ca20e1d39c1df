// The operator's console (`--console`) in Chromium: refused without the admin token; with it,
// the connection count follows 50 connections opened here, an event published from the page
// shows in the channel's view (and reaches a subscriber), a presence member shows with its
// user info, and terminating that user closes its connection. Screenshots (desktop and phone)
// go to tests/artifacts/ for a person to look at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher-js';
import {
  startServer, serverSdk, clientOptions, signedClientOptions, connected, once, pause,
} from '../lib/server.mjs';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';

const TOKEN = 'console-token-for-the-tests';
const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../artifacts');
mkdirSync(artifacts, { recursive: true });

let server, browser, sdk;
const clients = [];
before(async () => {
  server = await startServer({ args: ['--console', '--console-token', TOKEN] });
  sdk = await serverSdk(server);
  browser = await launchBrowser();
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  await browser?.close();
  await server?.stop();
});

function client(options = clientOptions(server)) {
  const c = new Pusher(server.app.key, options);
  clients.push(c);
  return c;
}

/** Waits until `locator`'s text is `expected`, then returns it. */
async function text(locator, expected, what) {
  await retryUntil(async () => {}, async () => (await locator.textContent()) === expected, { ms: 15000, what });
}

test('without the admin token the console API and page refuse', async () => {
  assert.equal((await fetch(`${server.url}/console/api/overview`)).status, 401);
  const wrong = await fetch(`${server.url}/console/api/overview`, { headers: { Authorization: 'Bearer app-secret' } });
  assert.equal(wrong.status, 401);
  assert.match((await wrong.json()).error, /Bearer/);
  const elsewhere = await fetch(`${server.url}/console/api/overview`, {
    headers: { Authorization: `Bearer ${TOKEN}`, Origin: 'http://evil.test' },
  });
  assert.equal(elsewhere.status, 403);

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/console`);
  await page.locator('#sign-in').waitFor();
  assert.equal(await page.locator('#console').isHidden(), true);
  await page.fill('#token', 'not-the-token');
  await page.click('#sign-in button');
  await text(page.locator('#refused'), 'The console needs Authorization: Bearer {admin token}', 'the refusal');
  assert.equal(await page.locator('#console').isHidden(), true);
  await context.close();
});

test('with the token: connections move, a published event shows, a user is terminated', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await strictPage(context);
  await page.goto(`${server.url}/console#token=${TOKEN}`);
  const connections = page.locator('[data-value="connections-open"]');
  await text(connections, '0', 'no connections');
  assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');

  // 49 subscribers of a public channel and one signed-in presence member.
  const watchers = Array.from({ length: 49 }, () => client());
  await Promise.all(watchers.map((c) => connected(c)));
  const news = watchers.map((c) => c.subscribe('console-news'));
  await Promise.all(news.map((ch) => once((cb) => ch.bind('pusher:subscription_succeeded', cb))));
  const alice = client(signedClientOptions(server, sdk, { user: { id: 'alice', info: { name: 'Alice' } } }));
  // Listened for first: the sign-in's confirmation may come before the presence channel's.
  const signedIn = once((cb) => alice.connection.bind('message', (m) =>
    m.event === 'pusher_internal:subscription_succeeded' && m.channel === '#server-to-user-alice' && cb()), 5000, 'sign-in');
  alice.signin();
  await connected(alice);
  const room = alice.subscribe('presence-console');
  await once((cb) => room.bind('pusher:subscription_succeeded', cb), 5000, 'presence subscription');
  await signedIn;
  await text(connections, '50', 'the connection count at 50');

  // The busiest channel first; clicking it opens its view.
  const busiest = page.locator('#busiest tbody tr').first();
  await text(busiest.locator('td').first(), 'console-news', 'the busiest channel');
  await busiest.click();
  await text(page.locator('#subscribers'), '49', 'the channel view');

  // Publishing asks first: dismissed, nothing is sent.
  const received = once((cb) => news[0].bind('console-test', cb), 10000, 'the published event');
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.click('#publish button');
  await pause(300);
  assert.equal(await page.locator('#history li').count(), 0);
  await page.fill('#publish-data', '{"from":"the console test"}');
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('#publish button');
  await text(page.locator('#history li').first(), 'console-test {"from":"the console test"}', 'the event in the history');
  assert.deepEqual(await received, { from: 'the console test' });
  await page.screenshot({ path: path.join(artifacts, 'console-desktop.png'), fullPage: true });

  // The presence member with its user info, then terminated (after a dismissed confirmation).
  await page.fill('#channel', 'presence-console');
  await page.click('#open-channel button');
  await text(page.locator('#members li').first(), 'alice {"name":"Alice"}', 'the member');
  await page.fill('#terminate-user', 'alice');
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.click('#terminate button');
  await pause(300);
  assert.equal(alice.connection.state, 'connected');
  // pusher-js on Node arms a 30 s timer when closing a socket the server closed (see
  // tests/node/server-channels.test.mjs); cleared below.
  const socket = alice.connection.connection.transport.socket;
  const terminated = once((cb) => alice.connection.bind('error', (e) => e.data?.code === 4009 && cb()), 5000, 'termination');
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('#terminate button');
  await terminated;
  clearTimeout(socket._closeTimer);
  await text(page.locator('#outcome'), "Terminated alice's connections.", 'the outcome');
  await text(connections, '49', 'the connection count after the termination');
  await text(page.locator('#member-count'), '0', 'no members left');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('on a phone the console fits the screen', async () => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  const page = await strictPage(context);
  await page.goto(`${server.url}/console#token=${TOKEN}`);
  await text(page.locator('[data-value="connections-open"]'), '49', 'the connection count');
  await page.locator('#busiest tbody tr').first().click();
  await text(page.locator('#subscribers'), '49', 'the channel view');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await page.screenshot({ path: path.join(artifacts, 'console-phone.png'), fullPage: true });
  assert.deepEqual(page.problems, []);
  await context.close();
});
