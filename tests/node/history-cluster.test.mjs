// Channel history in Redis: positions assigned by Redis are one sequence whichever node
// publishes, a client whose node is killed resumes on another node with every event once, a
// node restarted finds its history in Redis, and cache channels' last event is cluster-wide.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startServerWithoutApp, serverSdk, clientOptions, connected, once, eventually, writeConfig, appToml, historyToml, app,
  startRedis, startBalancer,
} from '../lib/server.mjs';
import { rawConnect, resumingClient, offsetOf } from '../lib/raw-ws.mjs';

let config;
let redis;
let nodes = [];
let balancer;
const clients = [];
const sockets = [];

const startNode = (port = 0) => startServerWithoutApp({ args: ['--config', config.path, '--redis-url', redis.url], port });

before(async () => {
  config = writeConfig(appToml(app) + historyToml([['cache-plain-*', 0], ['*', 2000, 300]]));
  redis = await startRedis();
  nodes = [await startNode(), await startNode()];
  balancer = await startBalancer(nodes);
});
after(async () => {
  resumingClient.all.forEach((c) => c.stop());
  clients.forEach((c) => c.disconnect());
  sockets.forEach((socket) => clearTimeout(socket._closeTimer));
  await balancer?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  config?.remove();
});

async function pusherJs(server, channel, event = 'seq') {
  const client = new Pusher(app.key, clientOptions(server));
  clients.push(client);
  client.connection.bind('connected', () => sockets.push(client.connection.connection.transport.socket));
  await connected(client);
  const ch = client.subscribe(channel);
  const got = [];
  ch.bind(event, (data) => got.push(data.n ?? data));
  ch.bind('pusher:cache_miss', () => got.push('cache_miss'));
  await once((cb) => ch.bind('pusher:subscription_succeeded', cb), 5000, 'pusher-js subscription');
  return { client, got };
}

async function triggerRange(sdk, channel, from, to) {
  for (let n = from; n < to; n += 10) {
    const batch = [];
    for (let i = n; i < Math.min(n + 10, to); i++) batch.push({ channel, name: 'seq', data: { n: i } });
    await sdk.triggerBatch(batch);
  }
}

const range = (n) => Array.from({ length: n }, (_, i) => i);
const subscribed = (client) => once((cb) => { client.onSubscribed = cb; }, 10000, 'subscription');

function assertExactlyOnce(client, count) {
  assert.deepEqual(client.events.map((e) => JSON.parse(e.data).n), range(count));
  assert.equal(new Set(client.events.map((e) => e.position.split(':')[0])).size, 1, 'one epoch');
  const offsets = client.events.map((e) => offsetOf(e.position));
  offsets.forEach((o, i) => assert.equal(o, offsets[0] + i, 'consecutive offsets'));
}

test('events published on either node share one sequence of positions', async () => {
  const channel = 'shared-sequence';
  const [a, b] = nodes;
  const frames = [];
  const raw = await rawConnect(a, (m) => frames.push(m));
  raw.send({ event: 'pusher:subscribe', data: { channel } });
  await eventually(() => assert.ok(frames.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  const succeeded = frames.find((m) => m.event === 'pusher_internal:subscription_succeeded');
  assert.match(succeeded.position, /^[A-Za-z0-9]+:0$/);
  const [sdkA, sdkB] = [await serverSdk(a), await serverSdk(b)];
  await triggerRange(sdkA, channel, 0, 10);
  // Node A's events in Redis before node B's (the API answers before it publishes them; on a
  // Redis Cluster, A's first publish may open its connection to the channel's shard).
  await eventually(() => assert.equal(frames.filter((m) => m.event === 'seq').length, 10));
  await triggerRange(sdkB, channel, 10, 20);
  await eventually(() => assert.equal(frames.filter((m) => m.event === 'seq').length, 20));
  const events = frames.filter((m) => m.event === 'seq');
  assert.deepEqual(events.map((e) => JSON.parse(e.data).n), range(20));
  assert.deepEqual(events.map((e) => e.position), range(20).map((i) => `${succeeded.position.split(':')[0]}:${i + 1}`));
  // The HTTP read answers the same on the other node.
  const res = await sdkB.get({ path: `/channels/${channel}/history`, params: { limit: 3 } });
  const body = await res.json();
  assert.equal(body.position, events[19].position);
  assert.deepEqual(body.events.map((e) => e.position), events.slice(17).map((e) => e.position));
  raw.close();
});

test("cache channels' last event is served cluster-wide, even by a node started after it", async () => {
  const [a] = nodes;
  const sdkA = await serverSdk(a);
  for (const channel of ['cache-history-x', 'cache-plain-x']) {
    await sdkA.trigger(channel, 'seq', { n: 7 });
  }
  // This node was not there when they were published: only Redis knows them.
  const late = await startNode();
  try {
    for (const channel of ['cache-history-x', 'cache-plain-x']) {
      const js = await pusherJs(late, channel);
      await eventually(() => assert.deepEqual(js.got, [7], channel), 5000, 50);
      js.client.disconnect();
    }
    const miss = await pusherJs(late, 'cache-never');
    await eventually(() => assert.deepEqual(miss.got, ['cache_miss']));
    // The HTTP API's info=cache too.
    const res = await (await serverSdk(late)).get({ path: '/channels/cache-plain-y', params: { info: 'cache' } });
    assert.equal((await res.json()).cache, undefined);
    await sdkA.trigger('cache-plain-y', 'seq', { n: 8 });
    await eventually(async () => {
      const info = await (await (await serverSdk(late)).get({ path: '/channels/cache-plain-y', params: { info: 'cache' } })).json();
      assert.equal(info.cache.data, JSON.stringify({ n: 8 }));
      assert.ok(info.cache.ttl > 1700);
    });
  } finally {
    await late.stop();
  }
});

test('presence channels on a cluster resume too: members in the confirmation, every event once', async () => {
  const channel = 'presence-resume';
  const [a, b] = nodes;
  const sdkA = await serverSdk(a);
  let reopen;
  const gate = new Promise((r) => { reopen = r; });
  const client = resumingClient(b, channel, { sdk: sdkA, user: 'p1', gate: () => gate });
  const first = await subscribed(client);
  assert.match(first.position, /^[A-Za-z0-9]+:0$/);
  assert.deepEqual(JSON.parse(first.data).presence.ids, ['p1']);
  await triggerRange(sdkA, channel, 0, 50);
  await eventually(() => assert.equal(client.events.length, 50));
  client.current.close();
  await eventually(() => assert.equal(client.closes, 1));
  await triggerRange(sdkA, channel, 50, 100);
  const resubscribed = subscribed(client);
  reopen();
  const triggered = triggerRange(sdkA, channel, 100, 150);
  const succeeded = await resubscribed;
  assert.equal(succeeded.recovered, true);
  assert.deepEqual(JSON.parse(succeeded.data).presence.ids, ['p1']);
  await triggered;
  await eventually(() => assert.equal(client.events.length, 150), 15000, 50);
  assertExactlyOnce(client, 150);
  client.stop();
});

test('a node killed while 1,000 events are triggered: the client resumes on the other node, every event once', async () => {
  const channel = 'resume-killed-node';
  const [a, b] = nodes;
  const sdkB = await serverSdk(b);
  const js = await pusherJs(b, channel);
  let reopen;
  const gate = new Promise((r) => { reopen = r; });
  // Through the balancer, which sends it to A while A is up, then to B.
  const client = resumingClient(balancer, channel, { gate: () => gate });
  await subscribed(client);
  await triggerRange(sdkB, channel, 0, 300);
  await eventually(() => assert.equal(client.events.length, 300));
  a.process.kill('SIGKILL');
  await eventually(() => assert.equal(client.closes, 1));
  await triggerRange(sdkB, channel, 300, 500);
  const resubscribed = subscribed(client);
  reopen();
  const triggered = triggerRange(sdkB, channel, 500, 1000);
  const succeeded = await resubscribed;
  assert.equal(succeeded.recovered, true);
  await triggered;
  await eventually(() => assert.equal(client.events.length, 1000), 15000, 50);
  assertExactlyOnce(client, 1000);
  await eventually(() => assert.equal(js.got.length, 1000), 15000, 50);
  assert.deepEqual(js.got, range(1000), 'pusher-js on B got the same events, in order');
  client.stop();
});

test('a node restarted finds the history in Redis: the client resumes with recovered:true', async () => {
  const channel = 'resume-restarted';
  const node = nodes[1];
  let reopen;
  const gate = new Promise((r) => { reopen = r; });
  const client = resumingClient(node, channel, { gate: () => gate });
  await subscribed(client);
  await triggerRange(await serverSdk(node), channel, 0, 100);
  await eventually(() => assert.equal(client.events.length, 100));
  await node.stop();
  await eventually(() => assert.equal(client.closes, 1));
  nodes[1] = await startNode(node.port);
  await triggerRange(await serverSdk(nodes[1]), channel, 100, 200);
  const resubscribed = subscribed(client);
  reopen();
  const succeeded = await resubscribed;
  assert.equal(succeeded.recovered, true);
  await eventually(() => assert.equal(client.events.length, 200), 15000, 50);
  assertExactlyOnce(client, 200);
  client.stop();
});

test("a node whose Redis subscription was cut gets what its feed missed, in order, once, the excluded socket left out", async () => {
  const channel = 'feed-gap';
  // A node on its own Redis user, whose pub/sub rights are taken away (Redis then drops its
  // subscription, and refuses it again) while another node publishes.
  const acl = (...rules) => Promise.all(redis.shards().map((shard) => shard.cli('ACL', 'SETUSER', 'cut', ...rules)));
  await acl('on', '>pw', '~*', '&*', '+@all');
  const url = redis.url.replaceAll('redis://', 'redis://cut:pw@');
  const cut = await startServerWithoutApp({ args: ['--config', config.path, '--redis-url', url] });
  const pubsubClients = async () => (await Promise.all(redis.shards().map((shard) => shard.cli('CLIENT', 'LIST', 'TYPE', 'pubsub')))).join('');
  try {
    const { client, got } = await pusherJs(cut, channel);
    // Node B: node A was killed above.
    const sdk = await serverSdk(nodes[1]);
    const trigger = (n, params) => sdk.trigger(channel, 'seq', { n }, params);
    for (const n of [0, 1, 2]) await trigger(n);
    await eventually(() => assert.deepEqual(got, [0, 1, 2]));
    await acl('resetchannels');
    await eventually(async () => assert.ok(!(await pubsubClients()).includes('user=cut'), 'subscription dropped'));
    for (const n of [3, 4, 5]) await trigger(n);
    await trigger(6, { socket_id: client.connection.socket_id });
    await trigger(7);
    await acl('allchannels');
    await eventually(() => assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 7]), 10000, 50);
    await trigger(8);
    await eventually(() => assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 7, 8]));
  } finally {
    await cut.stop();
  }
});

test('an event missing from the feed (Redis published it to nobody) is read from the stream before the next one', async () => {
  const channel = 'feed-gap-live';
  const { got } = await pusherJs(nodes[1], channel);
  const sdk = await serverSdk(nodes[1]);
  for (const n of [0, 1]) await sdk.trigger(channel, 'seq', { n });
  await eventually(() => assert.deepEqual(got, [0, 1]));
  // Event 2 as a node whose PUBLISH never reached this one: positioned and stored, not sent.
  const key = (rest) => `overtone:{${app.id}:${channel}}:${rest}`;
  const frame = JSON.stringify({ event: 'seq', channel, data: JSON.stringify({ n: 2 }) });
  const stored = "local o = redis.call('HINCRBY', KEYS[2], 'offset', 1) redis.call('XADD', KEYS[1], o .. '-1', 'f', ARGV[1], 't', ARGV[2]) return o";
  await redis.cli('EVAL', stored, '2', key('history'), key('history-meta'), frame, String(Date.now()));
  await sdk.trigger(channel, 'seq', { n: 3 });
  await eventually(() => assert.deepEqual(got, [0, 1, 2, 3]));
});

test("a publish Redis refuses for good reaches the node's own clients, and does not hold up the node's later ones", async () => {
  const bad = await pusherJs(nodes[1], 'refused');
  const good = await pusherJs(nodes[1], 'not-refused');
  // The channel's history key of another type: its publish script fails with WRONGTYPE.
  await redis.cli('SET', `overtone:{${app.id}:refused}:history-meta`, 'not a hash');
  const sdk = await serverSdk(nodes[1]);
  await sdk.trigger('refused', 'seq', { n: 0 });
  await sdk.trigger('not-refused', 'seq', { n: 1 });
  await eventually(() => assert.deepEqual([bad.got, good.got], [[0], [1]]));
});

test('Redis away: the node keeps serving its clients, with positions a later resume will not trust', async () => {
  const channel = 'redis-away';
  const node = nodes[1];
  const sdk = await serverSdk(node);
  const client = resumingClient(node, channel);
  await subscribed(client);
  await triggerRange(sdk, channel, 0, 10);
  await eventually(() => assert.equal(client.events.length, 10));
  const [redisEpoch] = client.events[0].position.split(':');
  await redis.stop();
  await triggerRange(sdk, channel, 10, 20);
  await eventually(() => assert.equal(client.events.length, 20), 15000, 50);
  assert.deepEqual(client.events.map((e) => JSON.parse(e.data).n), range(20));
  const [hereEpoch] = client.events[10].position.split(':');
  assert.notEqual(hereEpoch, redisEpoch, 'positioned on this node, in another epoch');
  // Resuming from the Redis epoch while Redis is away: not recoverable, but served.
  const frames = [];
  const raw = await rawConnect(node, (m) => frames.push(m));
  raw.send({ event: 'pusher:subscribe', data: { channel, position: client.events[9].position } });
  await eventually(() => assert.ok(frames.some((m) => m.event === 'pusher_internal:subscription_succeeded')), 10000);
  assert.equal(frames.find((m) => m.event === 'pusher_internal:subscription_succeeded').recovered, false);
  raw.close();
  client.stop();
  await redis.restart();
});
