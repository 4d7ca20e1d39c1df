// Interest-based routing on a real redis-server: a node subscribes in Redis to a channel only
// while it has subscribers of it, so a node receives (and spends on) only its own channels'
// events; a subscriber is confirmed only once its node receives the channel, so the first event
// triggered after `subscription_succeeded`, on any node, reaches it.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startServerWithoutApp, startRedis, serverSdk, signedClientOptions, connected, once, eventually,
  writeConfig, appToml, historyToml, app, onRedisCluster,
} from '../lib/server.mjs';

const METRICS_TOKEN = 'cluster-interest-metrics';
let redis;
let config;
let nodes = [];
const clients = [];

before(async () => {
  redis = await startRedis();
  // `plain-*` keeps no history: its subscribers are held for the subscription alone.
  config = writeConfig(appToml(app, historyToml([['plain-*', 0], ['*', 100]])));
  const args = ['--config', config.path, '--redis-url', redis.url, '--metrics-token', METRICS_TOKEN];
  nodes = await Promise.all([0, 1, 2].map(() => startServerWithoutApp({ args })));
});

after(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  config?.remove();
});

/** How many nodes subscribe to `channel`'s Redis channel (a shard channel on a Redis Cluster). */
async function watchers(channel) {
  const name = `overtone:{${app.id}:${channel}}:channel`;
  const shard = await redis.ownerOf(name);
  const out = await shard.cli('PUBSUB', onRedisCluster ? 'SHARDNUMSUB' : 'NUMSUB', name);
  return Number(out.trim().split('\n')[1]);
}

/** Messages `node` took from Redis (its cluster delivery histogram's count). */
async function received(node) {
  const res = await fetch(`${node.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
  return Number((await res.text()).match(/^overtone_cluster_delivery_seconds_count (\d+)$/m)[1]);
}

/** A pusher-js client on `node`, authorized in-process (as user 7 on presence channels). */
async function clientOn(node) {
  const sdk = await serverSdk(node);
  const client = new Pusher(node.app.key, signedClientOptions(node, sdk, { user: { id: '7', info: {} } }));
  clients.push(client);
  await connected(client);
  return client;
}

const subscribed = (channel) => once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');

test('a node subscribes to a channel in Redis only while it has subscribers of it', async () => {
  const [a, b] = nodes;
  assert.equal(await watchers('orders'), 0);
  const onA = await clientOn(a);
  await subscribed(onA.subscribe('orders'));
  assert.equal(await watchers('orders'), 1, 'the node with a subscriber');
  const onB = await clientOn(b);
  await subscribed(onB.subscribe('orders'));
  assert.equal(await watchers('orders'), 2);
  onA.unsubscribe('orders');
  await eventually(async () => assert.equal(await watchers('orders'), 1), 5000);
  onB.disconnect();
  await eventually(async () => assert.equal(await watchers('orders'), 0), 5000);
});

test('the first event after subscription_succeeded reaches a subscriber on another node', async () => {
  const [a, b] = nodes;
  const sdkB = await serverSdk(b);
  const onA = await clientOn(a);
  // Public with history, private, a cache channel, one without history and a presence
  // channel (confirmed by the presence task): each a fresh channel on A, each triggered once,
  // through B, right after A confirmed it.
  const names = ['first-1', 'private-first-2', 'cache-first-3', 'plain-first-4', 'presence-first-5'];
  for (const [i, name] of names.entries()) {
    const channel = onA.subscribe(name);
    await subscribed(channel);
    const got = once((cb) => channel.bind('hello', cb), 5000, `the first event on ${name}`);
    await sdkB.trigger(name, 'hello', { i });
    assert.deepEqual(await got, { i });
  }
});

test('a node receives nothing from Redis for channels it does not serve', async () => {
  const [a, b, c] = nodes;
  const onA = await clientOn(a);
  const watched = onA.subscribe('mine');
  await subscribed(watched);
  const [aBefore, cBefore] = [await received(a), await received(c)];
  const sdkB = await serverSdk(b);
  let got = 0;
  watched.bind('tick', () => { got += 1; });
  for (let i = 0; i < 50; i++) {
    await sdkB.trigger(['mine', `elsewhere-${i}`], 'tick', { i });
  }
  await eventually(() => assert.equal(got, 50), 5000);
  // A took the 50 events of its channel; C, serving neither, took none of the 100.
  assert.equal(await received(a) - aBefore, 50);
  assert.equal(await received(c) - cBefore, 0);
});
