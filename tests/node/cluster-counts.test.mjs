// Counts and limits across nodes on one real redis-server: subscription_count frames carry the
// cluster's total to subscribers on every node, max_presence_members holds for the cluster with
// the error a lone node gives, and API queries share one Redis connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  serverSdk, clientOptions, signedClientOptions, connected, once, startRedis, startCluster,
  eventually, writeConfig, nextPusherError,
} from '../lib/server.mjs';

const counted = { id: 'counted', key: 'counted-key', secret: 'counted-secret' };

let redis;
let config;
let nodes = [];
const clients = [];

before(async () => {
  redis = await startRedis();
  config = writeConfig(`
[[apps]]
id = "counted"
key = "counted-key"
secret = "counted-secret"
subscription_count = true
max_presence_members = 2
`);
  nodes = await startCluster(redis, 2, { args: ['--config', config.path] });
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  config?.remove();
});

/** A node as seen by the `counted` app. */
const as = (node) => ({ ...node, app: counted });

async function client(node, options = clientOptions(as(node))) {
  const c = new Pusher(counted.key, options);
  clients.push(c);
  await connected(c);
  return c;
}

/** Subscribes; resolves with the channel once the subscription succeeded. */
async function subscribe(c, name) {
  const channel = c.subscribe(name);
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, `subscription to ${name}`);
  return channel;
}

test('subscription_count carries the cluster total to subscribers on every node', async () => {
  const [a, b] = nodes;
  const watcherA = await client(a);
  const watcherB = await client(b);
  const seenA = [];
  const seenB = [];
  const onA = await subscribe(watcherA, 'tally');
  onA.bind('pusher:subscription_count', (d) => seenA.push(d.subscription_count));
  const onB = await subscribe(watcherB, 'tally');
  onB.bind('pusher:subscription_count', (d) => seenB.push(d.subscription_count));
  const last = (seen) => seen[seen.length - 1];
  await eventually(async () => {
    assert.equal(last(seenA), 2);
    assert.equal(last(seenB), 2);
  });

  // A burst of 20 on B: A's watcher hears the total, and fewer frames than subscriptions.
  const heardBefore = seenA.length;
  const burst = await Promise.all(Array.from({ length: 20 }, () => client(b)));
  await Promise.all(burst.map((c) => subscribe(c, 'tally')));
  await eventually(async () => {
    assert.equal(last(seenA), 22);
    assert.equal(last(seenB), 22);
    assert.equal(onA.subscriptionCount, 22);
  });
  assert.ok(seenA.length - heardBefore < 20, `A heard ${seenA.slice(heardBefore).join(',')}`);

  // Leaves on B are heard on A, and a subscription on A is heard on B.
  burst.slice(0, 19).forEach((c) => c.unsubscribe('tally'));
  await eventually(async () => {
    assert.equal(last(seenA), 3);
    assert.equal(last(seenB), 3);
  });
  await subscribe(await client(a), 'tally');
  await eventually(async () => {
    assert.equal(last(seenA), 4);
    assert.equal(last(seenB), 4);
  });
  const info = await (await (await serverSdk(as(a))).get({ path: '/channels/tally', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, subscription_count: 4 });
});

/** Joins `room` on `node` as `id`: 'ok' or the subscription error's data. */
async function join(node, id, room) {
  const sdk = await serverSdk(as(node));
  const c = await client(node, signedClientOptions(as(node), sdk, { user: { id, info: { id } } }));
  return once((cb) => {
    const channel = c.subscribe(room);
    channel.bind('pusher:subscription_succeeded', () => cb({ result: 'ok', client: c, channel }));
    channel.bind('pusher:subscription_error', (error) => cb({ result: error, client: c, channel }));
  }, 5000, `join of ${id}`);
}

test('max_presence_members holds across nodes, with the error one node gives', async () => {
  const [a, b] = nodes;
  // On one node: two members, a third refused by that node's own check.
  assert.equal((await join(a, 'ann', 'presence-full')).result, 'ok');
  const bob = await join(a, 'bob', 'presence-full');
  assert.equal(bob.result, 'ok');
  const local = (await join(a, 'carol', 'presence-full')).result;
  assert.deepEqual(local, { type: 'LimitReached', error: 'The presence channel already has 2 members', status: 403 });
  // On the other node, which has no member of its own: refused by the cluster, same error.
  const remote = await join(b, 'carol', 'presence-full');
  assert.deepEqual(remote.result, local);
  // A member already in may open another connection anywhere.
  assert.equal((await join(b, 'ann', 'presence-full')).result, 'ok');
  // The refused connection is not subscribed: it may not whisper and is in no count.
  const whisper = nextPusherError(remote.client);
  remote.client.send_event('client-psst', {}, 'presence-full');
  assert.match((await whisper).message, /Subscribe to the channel before sending client events/);
  const users = async (node) => (await (await (await serverSdk(as(node))).get({ path: '/channels/presence-full/users' })).json()).users.map((u) => u.id).sort();
  assert.deepEqual(await users(b), ['ann', 'bob']);
  const info = await (await (await serverSdk(as(b))).get({ path: '/channels/presence-full', params: { info: 'user_count,subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, user_count: 2, subscription_count: 3 });

  // Once a member leaves, carol gets in on the node that refused her.
  bob.client.unsubscribe('presence-full');
  await eventually(async () => assert.deepEqual(await users(b), ['ann']));
  // (pusher-js keeps a refused channel pending, so she comes back on a new connection.)
  const again = await join(b, 'carol', 'presence-full');
  assert.equal(again.result, 'ok');
  assert.deepEqual(Object.keys(again.channel.members.members).sort(), ['ann', 'carol']);
});

/** Connections Redis (every shard of a Redis Cluster) has accepted since it started. */
async function connectionsReceived() {
  let total = 0;
  for (const shard of redis.shards()) {
    total += Number((await shard.cli('INFO', 'stats')).match(/total_connections_received:(\d+)/)[1]);
  }
  return total;
}

test('API queries share one Redis connection instead of opening one each', async () => {
  const sdk = await serverSdk(as(nodes[0]));
  await sdk.get({ path: '/channels' }); // the shared connection may open now
  const before = await connectionsReceived();
  for (let i = 0; i < 50; i++) {
    const res = await sdk.get({ path: '/channels', params: { info: 'subscription_count' } });
    assert.equal(res.status, 200);
    await sdk.get({ path: '/channels/tally', params: { info: 'subscription_count' } });
  }
  const after = await connectionsReceived();
  // One of them per shard is redis-cli's own second connection.
  const cli = redis.shards().length;
  assert.ok(after - before <= 1 + cli, `${after - before - cli} new Redis connections for 100 queries`);
});
