// History and resume (issue #11) end to end: the overtone package in Chromium remembers each
// channel's position and, whenever its socket was cut (terminated through the HTTP API, its node
// killed in a two-node Redis cluster, its server restarted on Redis), gets every missed event
// back exactly once and in order; a client away longer than the history, or whose server lost
// its history, hears `recoveryFailed`; pusher-js connected alongside sees the same events as
// always; channels without history behave as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher-js';
import {
  app, startServerWithoutApp, startRedis, startBalancer, serverSdk, clientOptions, connected, writeConfig, appToml, historyToml,
} from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { openEchoPage, until } from '../lib/client-page.mjs';

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'fixture');

// `short-*`: 5 events of history; `plain-*`: none (as a server without the extension);
// everything else: 2000 events.
const config = writeConfig(appToml(app) + historyToml([['short-*', 5], ['plain-*', 0], ['*', 2000, 300]]));

/** A server of the test app serving the fixture page, with the history rules above. */
const startHistoryServer = (args = [], port = 0) =>
  startServerWithoutApp({ args: ['--config', config.path, ...args], port, demo: { site: fixture } });

let server, sdk, browser;
before(async () => {
  server = await startHistoryServer();
  sdk = await serverSdk(server);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  config.remove();
});

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Triggers `tick` {n} for n in from..=to on `channel`, in order, ten per request. */
async function publish(sdk, channel, from, to) {
  for (let n = from; n <= to; n += 10) {
    const batch = range(n, Math.min(n + 9, to)).map((i) => ({ channel, name: 'tick', data: { n: i } }));
    await sdk.triggerBatch(batch);
  }
}

/**
 * Subscribes the page to `name` and records, per channel, the `tick` numbers (`got`), how many
 * subscriptions succeeded (`subs`) and recoveries failed (`failed`); signs in as user 1 so that
 * `terminateUserConnections('1')` cuts the socket.
 */
async function follow(page, ...names) {
  await page.evaluate((names) => {
    window.echo.signin();
    window.feeds ??= {};
    for (const name of names) {
      const feed = (window.feeds[name] = { got: [], subs: 0, failed: 0 });
      // `private-x` and `presence-x` through Echo's own methods.
      const [, kind, rest] = name.match(/^(private|presence)-(.*)$/) ?? [];
      const channel = kind === 'private' ? window.echo.private(rest) : kind ? window.echo.join(rest) : window.echo.channel(name);
      feed.channel = channel
        .subscribed(() => feed.subs++)
        .recoveryFailed(() => feed.failed++)
        .listen('.tick', (data) => feed.got.push(data.n));
    }
  }, names);
  await page.waitForFunction((names) => names.every((n) => window.feeds[n].subs === 1) && window.echo.user.id() === '1',
    names, { timeout: 5000, polling: 50 });
}

const feed = (page, name) =>
  page.evaluate((name) => {
    const { got, subs, failed, channel } = window.feeds[name];
    return { got, subs, failed, recovered: channel.recovered };
  }, name);

/** Waits until `name` got `count` events (or more). */
async function received(page, name, count, timeout = 15000) {
  try {
    await page.waitForFunction(({ name, count }) => window.feeds[name].got.length >= count, { name, count }, { timeout, polling: 50 });
  } catch (error) {
    const { got, ...rest } = await feed(page, name);
    const gaps = got.filter((n, i) => i > 0 && n !== got[i - 1] + 1).slice(0, 5);
    throw new Error(`${name}: ${got.length} of ${count} events (last ${got.at(-1)}, first breaks at ${gaps}), ${JSON.stringify(rest)}`, { cause: error });
  }
}

/** Cuts the page's socket with the HTTP API; the client stops (4009), as pusher-js does. */
async function terminate(page) {
  await sdk.terminateUserConnections('1');
  await until(page, () => window.echo.connectionStatus() === 'failed');
}

/**
 * From now on: the data of the subscribe frames the page sends for `channel`, and the
 * subscription_succeeded frames it receives for it.
 */
function watchFrames(page, channel) {
  const frames = { subscribes: [], succeeded: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', ({ payload }) => {
      const frame = JSON.parse(String(payload));
      if (frame.event === 'pusher:subscribe' && frame.data.channel === channel) frames.subscribes.push(frame.data);
    });
    ws.on('framereceived', ({ payload }) => {
      const frame = JSON.parse(String(payload));
      if (frame.event === 'pusher_internal:subscription_succeeded' && frame.channel === channel) frames.succeeded.push(frame);
    });
  });
  return frames;
}

test('a terminated client gets the 1,000 events it missed exactly once and in order; pusher-js alongside as before', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  const alongside = new Pusher(server.app.key, clientOptions(server));
  const pusherGot = [];
  const pusherErrors = [];
  alongside.connection.bind('error', (e) => pusherErrors.push(e));
  const channel = alongside.subscribe('feed');
  channel.bind('tick', (data) => pusherGot.push(data.n));
  await connected(alongside);
  await new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve));
  try {
    await follow(page, 'feed');
    await publish(sdk, 'feed', 1, 10);
    await received(page, 'feed', 10);

    await terminate(page);
    const frames = watchFrames(page, 'feed');
    await publish(sdk, 'feed', 11, 1010);
    await page.evaluate(() => window.echo.connect());
    await page.waitForFunction(() => window.feeds.feed.subs === 2, null, { timeout: 5000, polling: 50 });
    await publish(sdk, 'feed', 1011, 1020);
    await received(page, 'feed', 1020);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const { got, subs, failed, recovered } = await feed(page, 'feed');
    assert.deepEqual(got, range(1, 1020), 'every event once, in order');
    assert.deepEqual([subs, failed, recovered], [2, 0, true]);
    assert.equal(frames.subscribes.length, 1);
    const [epoch] = frames.subscribes[0].position.split(':');
    assert.equal(frames.subscribes[0].position, `${epoch}:10`, 'the resubscribe asked for what came after event 10');
    assert.match(epoch, /^[A-Za-z0-9]{1,16}$/);
    assert.deepEqual(frames.succeeded.map((f) => [f.position, f.recovered]), [[`${epoch}:1010`, true]]);
    assert.deepEqual(pusherGot, range(1, 1020), 'pusher-js: every event, once, in order');
    assert.deepEqual(pusherErrors, []);
    assert.deepEqual(page.problems, []);
  } finally {
    alongside.disconnect();
    await context.close();
  }
});

test('a client away longer than the history hears recoveryFailed; channels without history behave as before', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  try {
    await follow(page, 'short-feed', 'plain-feed');
    await publish(sdk, 'short-feed', 1, 3);
    await publish(sdk, 'plain-feed', 1, 3);
    await received(page, 'short-feed', 3);
    await received(page, 'plain-feed', 3);

    await terminate(page);
    const short = watchFrames(page, 'short-feed');
    const plain = watchFrames(page, 'plain-feed');
    await publish(sdk, 'short-feed', 4, 20);
    await publish(sdk, 'plain-feed', 4, 20);
    await page.evaluate(() => window.echo.connect());
    await page.waitForFunction(() => window.feeds['short-feed'].subs === 2 && window.feeds['plain-feed'].subs === 2,
      null, { timeout: 5000, polling: 50 });
    await publish(sdk, 'short-feed', 21, 21);
    await publish(sdk, 'plain-feed', 21, 21);
    await received(page, 'short-feed', 4);
    await received(page, 'plain-feed', 4);

    assert.deepEqual(await feed(page, 'short-feed'), { got: [1, 2, 3, 21], subs: 2, failed: 1, recovered: false });
    assert.match(short.subscribes[0].position, /:3$/);
    assert.match(short.succeeded[0].position, /:20$/);
    assert.equal(short.succeeded[0].recovered, false);
    assert.deepEqual(await feed(page, 'plain-feed'), { got: [1, 2, 3, 21], subs: 2, failed: 0, recovered: true },
      'no history: missed events stay missed, as before');
    assert.deepEqual(plain.subscribes, [{ channel: 'plain-feed' }], 'nothing to recover from: no position sent');
    assert.equal(plain.succeeded[0].position, undefined);

    // The next drop within the history recovers again.
    await terminate(page);
    await publish(sdk, 'short-feed', 22, 24);
    await page.evaluate(() => window.echo.connect());
    await received(page, 'short-feed', 7);
    assert.deepEqual(await feed(page, 'short-feed'), { got: [1, 2, 3, 21, 22, 23, 24], subs: 3, failed: 1, recovered: true });
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('a killed node of a two-node Redis cluster: the client reconnects to the other and misses nothing of 1,000 events', async () => {
  const redis = await startRedis();
  const nodes = await Promise.all([0, 1].map(() => startHistoryServer(['--redis-url', redis.url])));
  // Node 1 joins the balancer only once the events are published, so that the client misses
  // them all and gets every one from the history in Redis.
  const upstream = [nodes[0]];
  const balancer = await startBalancer(upstream);
  const context = await browser.newContext();
  try {
    // The page comes from the node that stays; its socket goes through the balancer to node 0.
    const page = await openEchoPage(context, nodes[1], { options: { wsPort: balancer.port } });
    const survivor = await serverSdk(nodes[1]);
    await follow(page, 'cluster-feed');
    await publish(survivor, 'cluster-feed', 1, 10);
    await received(page, 'cluster-feed', 10);

    const frames = watchFrames(page, 'cluster-feed');
    nodes[0].process.kill('SIGKILL');
    await publish(survivor, 'cluster-feed', 11, 1010);
    upstream.push(nodes[1]);
    await page.waitForFunction(() => window.feeds['cluster-feed'].subs === 2, null, { timeout: 15000, polling: 50 });
    await publish(survivor, 'cluster-feed', 1011, 1020);
    await received(page, 'cluster-feed', 1020);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const { got, failed, recovered } = await feed(page, 'cluster-feed');
    assert.deepEqual(got, range(1, 1020), 'every event once, in order');
    assert.deepEqual([failed, recovered], [0, true]);
    const [epoch] = frames.subscribes[0].position.split(':');
    assert.deepEqual(frames.subscribes.map((data) => data.position), [`${epoch}:10`]);
    assert.deepEqual(frames.succeeded.map((f) => [f.position, f.recovered]), [[`${epoch}:1010`, true]],
      'all 1,000 replayed by the other node');
  } finally {
    await context.close();
    await balancer.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
  }
});

test('a restarted server: with Redis the client resumes where it was; without, it hears recoveryFailed', async () => {
  const redis = await startRedis();
  const servers = [];
  const context = await browser.newContext();
  try {
    for (const withRedis of [true, false]) {
      const args = withRedis ? ['--redis-url', redis.url] : [];
      const first = await startHistoryServer(args);
      servers.push(first);
      const page = await openEchoPage(context, first);
      const frames = watchFrames(page, 'restart-feed');
      const own = await serverSdk(first);
      await follow(page, 'restart-feed');
      await publish(own, 'restart-feed', 1, 10);
      await received(page, 'restart-feed', 10);

      const exited = new Promise((resolve) => first.process.once('exit', resolve));
      first.process.kill('SIGKILL');
      await exited;
      const second = await startHistoryServer(args, first.port);
      servers.push(second);
      // Published while the client is still backing off from the refused reconnects.
      await publish(own, 'restart-feed', 11, 510);
      await page.waitForFunction(() => window.feeds['restart-feed'].subs === 2, null, { timeout: 15000, polling: 50 });
      await publish(own, 'restart-feed', 511, 520);
      const [epoch] = frames.succeeded[0].position.split(':');
      assert.equal(frames.subscribes[0].position, undefined, 'a first subscribe has nothing to resume');
      const resumed = frames.subscribes[1].position;
      if (withRedis) {
        await received(page, 'restart-feed', 520);
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual(await feed(page, 'restart-feed'), { got: range(1, 520), subs: 2, failed: 0, recovered: true });
        assert.equal(resumed, `${epoch}:10`);
        assert.equal(frames.succeeded[1].recovered, true, 'the epoch lives in Redis');
      } else {
        // The history died with the process: a new epoch, and the app is told.
        await page.waitForFunction(() => window.feeds['restart-feed'].got.includes(520), null, { timeout: 5000, polling: 50 });
        const { got, failed, recovered } = await feed(page, 'restart-feed');
        assert.deepEqual([failed, recovered], [1, false]);
        assert.deepEqual(got.slice(0, 10), range(1, 10));
        assert.equal(new Set(got).size, got.length, 'no duplicates');
        assert.equal(resumed, `${epoch}:10`);
        assert.equal(frames.succeeded[1].recovered, false);
        assert.notEqual(frames.succeeded[1].position.split(':')[0], epoch);
      }
      await page.close();
    }
  } finally {
    await context.close();
    await Promise.all(servers.map((s) => s.stop()));
    await redis.stop();
  }
});

test('10,000 events with random disconnects: nothing lost, nothing duplicated', async (t) => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  try {
    await follow(page, 'random-feed');
    // Back after a random pause whenever the socket was terminated.
    await page.evaluate(() => window.echo.connector.onConnectionChange((status) => {
      if (status === 'failed') setTimeout(() => window.echo.connect(), Math.random() * 100);
    }));
    let seed = 11;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const state = () => page.evaluate(() => ({ subs: window.feeds['random-feed'].subs, signedIn: window.echo.user.id() === '1' }));
    let cuts = 0;
    let cut; // {at, subs}: the last cut, until the page subscribed again
    for (let n = 1; n <= 10_000; n += 10) {
      await publish(sdk, 'random-feed', n, n + 9);
      // The server replays at most 1,000 events: let no cut miss more than a few hundred.
      if (cut && n - cut.at >= 300) {
        await page.waitForFunction((subs) => window.feeds['random-feed'].subs > subs, cut.subs, { timeout: 5000, polling: 20 });
        cut = undefined;
      }
      if (random() < 1 / 40) {
        const now = await state();
        if (cut && now.subs > cut.subs) cut = undefined;
        if (cut || !now.signedIn) continue;
        await sdk.terminateUserConnections('1');
        cut = { at: n, subs: now.subs };
        cuts++;
      }
    }
    await received(page, 'random-feed', 10_000, 20000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { got, subs, failed } = await feed(page, 'random-feed');
    const duplicates = got.length - new Set(got).size;
    const lost = 10_000 - new Set(got).size;
    assert.deepEqual({ lost, duplicates, failed }, { lost: 0, duplicates: 0, failed: 0 });
    assert.deepEqual(got, range(1, 10_000), 'in order');
    t.diagnostic(`${cuts} cuts, ${subs} subscriptions`);
    assert.ok(cuts >= 10 && subs >= 5, `the socket was really cut: ${cuts} cuts, ${subs} subscriptions`);
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('private and presence channels recover the same way', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  try {
    const names = ['private-orders', 'presence-room'];
    await follow(page, ...names);
    for (const name of names) await publish(sdk, name, 1, 5);
    for (const name of names) await received(page, name, 5);
    await terminate(page);
    for (const name of names) await publish(sdk, name, 6, 105);
    await page.evaluate(() => window.echo.connect());
    for (const name of names) await received(page, name, 105);
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const name of names) {
      assert.deepEqual(await feed(page, name), { got: range(1, 105), subs: 2, failed: 0, recovered: true }, name);
    }
    assert.deepEqual(await page.evaluate(() => window.echo.join('room').members().length), 1);
    assert.deepEqual(page.problems, []);
  } finally {
    await context.close();
  }
});

test('cache channels still replay their last event on subscribe, and on resubscribe nothing twice', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  try {
    await publish(sdk, 'cache-feed', 1, 2);
    await follow(page, 'cache-feed');
    await received(page, 'cache-feed', 1);
    await publish(sdk, 'cache-feed', 3, 3);
    await received(page, 'cache-feed', 2);
    await terminate(page);
    await page.evaluate(() => window.echo.connect());
    await page.waitForFunction(() => window.feeds['cache-feed'].subs === 2, null, { timeout: 5000, polling: 50 });
    await publish(sdk, 'cache-feed', 4, 4);
    await received(page, 'cache-feed', 3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(await feed(page, 'cache-feed'), { got: [2, 3, 4], subs: 2, failed: 0, recovered: true });
  } finally {
    await context.close();
  }
});
