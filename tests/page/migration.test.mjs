// "Change one import" for Echo apps that reach below Echo into pusher-js: the TypeScript app in
// tests/apps/migration (written against laravel-echo 2.5's and pusher-js 8's types) compiles with
// tsc --strict against either package, and runs — built by Vite from the packed overtone tarball —
// once on laravel-echo + pusher-js (the control) and once with `laravel-echo` resolved to
// overtone, with the same checks. Then the URL each client opens for a table of options.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';
import { appDir, serveApp, servedApp } from '../apps/harness.mjs';

const apps = fileURLToPath(new URL('../apps/', import.meta.url));
const ECHOS = ['laravel-echo', 'overtone'];

for (const [echo, config] of [['laravel-echo', 'tsconfig.json'], ['overtone', 'tsconfig.overtone.json']]) {
  test(`the TypeScript app compiles with tsc --strict against ${echo}'s declarations`, async () => {
    await promisify(execFile)(process.execPath, [path.join(apps, 'node_modules/typescript/bin/tsc'), '-p', `migration/${config}`], { cwd: apps });
  });
}

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The `kind: json` lines the app logged, as values. */
const logged = (page, kind) =>
  page.locator('#log li').evaluateAll((items, prefix) =>
    items.map((li) => li.textContent).filter((text) => text.startsWith(prefix)).map((text) => JSON.parse(text.slice(prefix.length))), `${kind}: `);

/** Waits until the app has logged `value` under `kind`. */
async function waitForLog(page, kind, value, what = `${kind} ${JSON.stringify(value)}`) {
  await retryUntil(async () => {}, async () => (await logged(page, kind)).some((v) => JSON.stringify(v) === JSON.stringify(value)), { what });
}

for (const echo of ECHOS) {
  describe(`the app reaching into pusher-js, on ${echo}`, () => {
    // The app open for a user once its connection indicator says connected.
    const served = servedApp('migration', echo, () => browser, (page) => waitForLog(page, 'state', 'connected'));
    const open = (user) => served.open(user);
    const app = (page, method, ...args) => page.evaluate(([m, a]) => window.app[m](...a), [method, args]);

    test('connection.bind: state_change {previous, current} and each state; state and socket_id; connect/disconnect', async () => {
      const page = await open('carol');
      // pusher-js is connecting from the constructor on: the app's binds see the rest.
      assert.deepEqual(await logged(page, 'initial-state'), ['connecting']);
      assert.deepEqual(await logged(page, 'state_change'), ['connecting>connected']);
      assert.deepEqual(await logged(page, 'state'), ['connected']);
      assert.deepEqual(await app(page, 'connection'), { driver: 'reverb', state: 'connected', sameSocketId: true, status: 'connected' });
      assert.deepEqual(await logged(page, 'resend'), [{ connects: 1, sameSocketId: true }]);
      await app(page, 'disconnect');
      await waitForLog(page, 'state', 'disconnected');
      assert.deepEqual((await logged(page, 'state_change')).slice(-1), ['connected>disconnected']);
      assert.equal((await app(page, 'connection')).state, 'disconnected');
      assert.ok((await app(page, 'channels')).pusher.every((c) => c.endsWith(':false')), 'no channel subscribed while disconnected');
      await app(page, 'connect');
      // Re-sent after the reconnection, with the new socket id.
      await waitForLog(page, 'resend', { connects: 2, sameSocketId: true });
      assert.deepEqual((await logged(page, 'state_change')).slice(-2), ['disconnected>connecting', 'connecting>connected']);
      assert.deepEqual(await logged(page, 'connection-error'), []);
      assert.deepEqual(page.problems, []);
    });

    test('a token set on connector.options.auth.headers (or echo.options, or the options given) goes with the next authorization', async () => {
      const page = await open('dave');
      const authorization = (channel) => served.authRequests.find((r) => r.channel === channel)?.authorization;
      await retryUntil(async () => {}, async () => authorization('private-chat') !== undefined, { what: 'the chat authorization' });
      assert.equal(authorization('private-chat'), 'Bearer guest');
      await app(page, 'login', 'token-1');
      await retryUntil(async () => {}, async () => authorization('private-orders.dave') !== undefined, { what: 'the orders authorization' });
      assert.equal(authorization('private-orders.dave'), 'Bearer token-1');
      await app(page, 'refresh', 'token-2');
      await retryUntil(async () => {}, async () => authorization('private-invoices.dave') !== undefined, { what: 'the invoices authorization' });
      assert.equal(authorization('private-invoices.dave'), 'Bearer token-2');
      await app(page, 'rotate', 'token-3');
      await retryUntil(async () => {}, async () => authorization('private-receipts.dave') !== undefined, { what: 'the receipts authorization' });
      assert.equal(authorization('private-receipts.dave'), 'Bearer token-3');
      // The channel joined after the login works.
      await retryUntil(
        () => served.sdk.trigger('private-orders.dave', 'App\\Events\\OrderShipped', { id: 3 }),
        async () => (await logged(page, 'private-order')).length > 0,
        { what: 'the order on the private channel' },
      );
      assert.deepEqual((await logged(page, 'private-order'))[0], { id: 3 });
      assert.deepEqual(page.problems, []);
    });

    test('channel(name).bind, bind_global and Echo listeners on the same channel; allChannels, connector.channels; subscribe, unsubscribe', async () => {
      const page = await open('erin');
      await retryUntil(
        () => served.sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 7 }),
        async () => (await logged(page, 'raw-order')).length > 0,
        { what: 'the order on the page' },
      );
      assert.deepEqual((await logged(page, 'raw-order'))[0], { id: 7 });
      assert.deepEqual((await logged(page, 'echo-order'))[0], { id: 7 });
      assert.deepEqual((await logged(page, 'global'))[0], { event: 'App\\Events\\OrderShipped', data: { id: 7 } });
      await retryUntil(async () => {}, async () => (await app(page, 'channels')).pusher.every((c) => c.endsWith(':true')), { what: 'every channel subscribed' });
      assert.deepEqual(await app(page, 'channels'), {
        pusher: ['orders:true', 'presence-room:true', 'private-chat:true'],
        connector: ['orders', 'presence-room', 'private-chat'],
      });
      assert.equal(await app(page, 'leave', 'orders'), true, 'channel() is undefined once unsubscribed');
      assert.equal(await app(page, 'subscribeRaw', 'news'), true, 'a public channel has no members');
      await retryUntil(
        () => served.sdk.trigger('news', 'headline', { title: 'subscribed by pusher-js' }),
        async () => (await logged(page, 'raw-headline')).length > 0,
        { what: 'the headline on the channel pusher.subscribe() joined' },
      );
      assert.deepEqual((await logged(page, 'raw-headline'))[0], { title: 'subscribed by pusher-js' });
      assert.deepEqual(page.problems, []);
    });

    test("channel('private-chat').trigger('client-typing') reaches the other user's bind and listenForWhisper", async () => {
      const [alice, bob] = [await open('alice'), await open('bob')];
      for (const page of [alice, bob]) {
        await retryUntil(async () => {}, async () => (await app(page, 'channels')).pusher.includes('private-chat:true'), { what: 'chat subscribed' });
      }
      await retryUntil(
        () => app(alice, 'trigger', 'hello bob'),
        async () => (await logged(bob, 'raw-whisper')).length > 0,
        { what: "alice's client event at bob's" },
      );
      assert.deepEqual((await logged(bob, 'raw-whisper'))[0], { text: 'hello bob', user: 'alice' });
      assert.deepEqual((await logged(bob, 'echo-whisper'))[0], { text: 'hello bob', user: 'alice' });
      assert.deepEqual(await logged(alice, 'raw-whisper'), [], 'never echoed to the sender');
      assert.deepEqual([...alice.problems, ...bob.problems], []);
    });

    test('presence members: count, me, myID, get, each; member_added and member_removed', async () => {
      const alice = await open('alice');
      await waitForLog(alice, 'members', { count: 1, me: 'alice' });
      const bob = await open('bob');
      await waitForLog(alice, 'member_added', { id: 'bob', info: { id: 'bob', name: 'bob' } });
      await waitForLog(bob, 'members', { count: 2, me: 'bob' });
      assert.deepEqual(await app(alice, 'members'), {
        count: 2, me: 'alice', myID: 'alice', bob: { id: 'bob', name: 'bob' }, list: ['alice:alice', 'bob:bob'],
      });
      await bob.context().close();
      await waitForLog(alice, 'member_removed', { id: 'bob', info: { id: 'bob', name: 'bob' } });
      assert.deepEqual(await app(alice, 'members'), { count: 1, me: 'alice', myID: 'alice', bob: null, list: ['alice:alice'] });
      assert.deepEqual(alice.problems, []);
    });

    test('user.signin() and user.bind(): an event sent to the user', async () => {
      const page = await open('frank');
      await app(page, 'signin');
      await retryUntil(
        () => served.sdk.sendToUser('frank', 'notice', { text: 'hi frank' }),
        async () => (await logged(page, 'user-notice')).length > 0,
        { what: 'the notice to the signed-in user' },
      );
      assert.deepEqual((await logged(page, 'user-notice'))[0], { text: 'hi frank' });
      assert.deepEqual(page.problems, []);
    });

    test("new Echo({ broadcaster: 'null' }) runs and connects nowhere", async () => {
      const page = await open('gina');
      assert.deepEqual(await logged(page, 'null'), [{ socketId: 'fake-socket-id', status: 'connected' }]);
      assert.deepEqual(page.problems, []);
    });

    if (echo === 'overtone') {
      test("a member of pusher-js's API that overtone lacks is named in a console error", async () => {
        const page = await open('hana');
        // pusher-js has a `timeline`.
        assert.equal(await page.evaluate(() => typeof window.Echo.connector.pusher.timeline), 'undefined');
        assert.deepEqual(page.problems, [
          "overtone: echo.connector.pusher.timeline is not part of overtone's pusher-js API (README: Migrating)",
        ]);
      });
    }
  });
}

/**
 * Option sets and the URL pusher-js opens for them from an http page (its defaults: cluster
 * host, TLS unless `forceTLS: false`, ports 80/443); only the first URL is compared (pusher-js
 * may try wss after 2 s when ws does not connect; overtone does not).
 */
const QUERY = '?protocol=7&client=js&version=8.6.0&flash=false';
const URLS = [
  [{ broadcaster: 'pusher', key: 'k1', cluster: 'eu', forceTLS: true }, `wss://ws-eu.pusher.com:443/app/k1${QUERY}`],
  [{ broadcaster: 'pusher', key: 'k2', cluster: 'mt1' }, `wss://ws-mt1.pusher.com:443/app/k2${QUERY}`],
  [{ broadcaster: 'pusher', key: 'k3', cluster: 'ap2', forceTLS: false }, `ws://ws-ap2.pusher.com:80/app/k3${QUERY}`],
  [{ broadcaster: 'pusher', key: 'k4', cluster: 'us2', wsHost: 'socket.example.test', wsPath: '/ws' }, `wss://socket.example.test:443/ws/app/k4${QUERY}`],
  [
    { broadcaster: 'reverb', key: 'k5', wsHost: 'reverb.example.test', wsPort: 8080, wssPort: 8443, forceTLS: false, enabledTransports: ['ws', 'wss'] },
    `ws://reverb.example.test:8080/app/k5${QUERY}`,
  ],
  [
    { broadcaster: 'reverb', key: 'k6', wsHost: 'reverb.example.test', wsPort: 8080, wssPort: 8443, forceTLS: true, enabledTransports: ['ws', 'wss'] },
    `wss://reverb.example.test:8443/app/k6${QUERY}`,
  ],
  [{ broadcaster: 'reverb', key: 'k7', wsHost: 'reverb.example.test' }, `wss://reverb.example.test:443/app/k7${QUERY}`],
  [{ broadcaster: 'reverb', key: 'k8', wsHost: 'reverb.example.test', wsPort: 6001, forceTLS: false, enabledTransports: ['ws'] }, `ws://reverb.example.test:6001/app/k8${QUERY}`],
  // laravel-echo gives reverb `cluster: ''`: with no wsHost, pusher-js's host is `ws-.pusher.com`.
  [{ broadcaster: 'reverb', key: 'k9', cluster: 'eu' }, `wss://ws-.pusher.com:443/app/k9${QUERY}`],
];

describe('the URL each client opens, for a table of options', () => {
  const served = {};
  before(async () => {
    for (const echo of ECHOS) served[echo] = await serveApp(appDir('migration', echo));
  });
  after(async () => {
    for (const echo of ECHOS) await served[echo]?.stop();
  });

  /** The first WebSocket URL the page opens with `options` (sockets are recorded, never opened). */
  async function firstUrl(echo, options) {
    const context = await browser.newContext();
    try {
      await context.addInitScript(() => {
        window.opened = [];
        window.WebSocket = class {
          constructor(url) {
            window.opened.push(url);
            this.readyState = 0;
          }
          send() {}
          close() {}
        };
      });
      const page = await strictPage(context);
      await page.goto(`${served[echo].server.url}/url.html?${new URLSearchParams({ options: JSON.stringify(options) })}`);
      await page.waitForFunction(() => window.opened.length > 0, null, { timeout: 10000 });
      assert.deepEqual(page.problems, []);
      return await page.evaluate(() => window.opened[0]);
    } finally {
      await context.close();
    }
  }

  for (const [options, expected] of URLS) {
    test(JSON.stringify(options), async () => {
      const opened = {};
      for (const echo of ECHOS) opened[echo] = await firstUrl(echo, options);
      assert.deepEqual(opened, { 'laravel-echo': expected, overtone: expected });
    });
  }
});
