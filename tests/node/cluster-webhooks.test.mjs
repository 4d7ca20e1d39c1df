// Webhooks from a cluster: channel_occupied / member_added when the first connection anywhere
// subscribes, channel_vacated / member_removed only after the last one anywhere left (3 s
// later, and not at all after a quick return), each sent once, signed, checked by the `pusher`
// SDK's own validation; a node shut down loses none of its members' departures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startServer, serverSdk, signedClientOptions, connected, once, pause, startRedis, eventually,
  writeConfig, startWebhookReceiver,
} from '../lib/server.mjs';

const hooked = { id: 'hooked', key: 'hooked-key', secret: 'hooked-secret' };
const counted = { id: 'counted', key: 'counted-key', secret: 'counted-secret' };

let config;
let receiver;
let countReceiver;
let redis;
let nodes = [];
const clients = [];

before(async () => {
  receiver = await startWebhookReceiver();
  countReceiver = await startWebhookReceiver();
  config = writeConfig(`
[[apps]]
id = "${hooked.id}"
key = "${hooked.key}"
secret = "${hooked.secret}"
webhooks = [{ url = "${receiver.url('/hook')}", event_types = ["member_added", "member_removed", "channel_occupied", "channel_vacated"] }]

[[apps]]
id = "${counted.id}"
key = "${counted.key}"
secret = "${counted.secret}"
webhooks = [{ url = "${countReceiver.url('/count')}", event_types = ["subscription_count"] }]
`);
  redis = await startRedis();
  nodes = await Promise.all([0, 1].map(() => startServer({ args: ['--config', config.path, '--redis-url', redis.url] })));
  nodes = nodes.map((n) => ({ ...n, app: hooked }));
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  receiver?.stop();
  countReceiver?.stop();
  config?.remove();
});

/** Webhook events so far, as `name:user_id` (or `name` for channel events), each post's
 * signature checked; sorted, as concurrent POSTs may arrive in any order. */
async function hookEvents() {
  const sdk = await serverSdk(nodes[0]);
  return receiver.posts.flatMap((post) => sdk.webhook(post).getEvents())
    .map((e) => (e.user_id ? `${e.name}:${e.user_id}` : e.name))
    .sort();
}

async function joinOn(server, id, name = 'presence-hooks') {
  const sdk = await serverSdk(server);
  const client = new Pusher(server.app.key, signedClientOptions(server, sdk, { user: { id, info: {} } }));
  clients.push(client);
  await connected(client);
  const channel = client.subscribe(name);
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');
  return client;
}

test('member and channel webhooks are cluster-wide: one added, one removed after the last node, none on a quick return', async () => {
  const [a, b] = nodes;
  const annA = await joinOn(a, 'ann');
  await eventually(async () => assert.deepEqual(await hookEvents(), ['channel_occupied', 'member_added:ann']));
  const annB = await joinOn(b, 'ann');
  // Ann leaves A but is still on B: nothing, even after the grace period.
  annA.unsubscribe('presence-hooks');
  await pause(3500);
  assert.deepEqual(await hookEvents(), ['channel_occupied', 'member_added:ann']);
  // Ann leaves B and comes back on A within the grace period: still nothing.
  annB.unsubscribe('presence-hooks');
  await pause(500);
  const annAgain = await joinOn(a, 'ann');
  await pause(3500);
  assert.deepEqual(await hookEvents(), ['channel_occupied', 'member_added:ann']);
  // Gone for good: one member_removed, about 3 s later.
  annAgain.unsubscribe('presence-hooks');
  await pause(1000);
  assert.deepEqual(await hookEvents(), ['channel_occupied', 'member_added:ann']);
  await eventually(async () => assert.deepEqual(await hookEvents(), ['channel_occupied', 'channel_vacated', 'member_added:ann', 'member_removed:ann']), 6000);
});

test('subscription_count webhooks carry the cluster total', async () => {
  const [a, b] = nodes.map((n) => ({ ...n, app: counted }));
  const subscribeOn = async (server) => {
    const client = new Pusher(counted.key, signedClientOptions(server, await serverSdk(server), {}));
    clients.push(client);
    await connected(client);
    const channel = client.subscribe('tally');
    await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');
    return client;
  };
  const counts = async () => {
    const sdk = await serverSdk(a);
    return countReceiver.posts.flatMap((post) => sdk.webhook(post).getEvents())
      .filter((e) => e.name === 'subscription_count' && e.channel === 'tally')
      .map((e) => e.subscription_count);
  };
  await subscribeOn(a);
  await eventually(async () => assert.ok((await counts()).includes(1)));
  // One subscriber on each node: the node that saw the second reports 2, not its own 1.
  await subscribeOn(b);
  await eventually(async () => assert.ok((await counts()).includes(2), `reported ${await counts()}`));
  assert.ok((await counts()).every((n) => n === 1 || n === 2), `reported ${await counts()}`);
});

test('a node shut down: the departures of its members, and of one who left just before, are reported once', async () => {
  const leaving = { ...(await startServer({ args: ['--config', config.path, '--redis-url', redis.url, '--shutdown-drain', '0'] })), app: hooked };
  const name = 'presence-shutdown';
  const onChannel = async () => {
    const sdk = await serverSdk(nodes[0]);
    return receiver.posts.flatMap((post) => sdk.webhook(post).getEvents())
      .filter((e) => e.channel === name)
      .map((e) => (e.user_id ? `${e.name}:${e.user_id}` : e.name))
      .sort();
  };
  try {
    const cleo = await joinOn(leaving, 'cleo', name);
    const dan = await joinOn(leaving, 'dan', name);
    await eventually(async () => assert.deepEqual(await onChannel(), ['channel_occupied', 'member_added:cleo', 'member_added:dan']));
    dan.disconnect();
    await pause(1000);
    await leaving.stop();
    cleo.disconnect(); // it would reconnect to the stopped node's port: nobody comes back
  } finally {
    await leaving.stop(); // a failure above would otherwise keep the test file from ending
  }
  const all = ['channel_occupied', 'channel_vacated', 'member_added:cleo', 'member_added:dan', 'member_removed:cleo', 'member_removed:dan'];
  await eventually(async () => assert.deepEqual(await onChannel(), all), 15000, 200);
  await pause(1000);
  assert.deepEqual(await onChannel(), all, 'each once');
});
