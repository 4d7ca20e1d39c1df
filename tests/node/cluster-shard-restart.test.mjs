// A Redis Cluster shard restarted under load, on two nodes (OVERTONE_TEST_REDIS=cluster; on one
// Redis, cluster-redis-restart covers the same): the master owning a watched channel's slot is
// killed and started again on its port (its cluster config file kept, so it rejoins with its
// slots, empty) while both nodes publish on the channel. The loss is what the Redis restart test
// accepts: none. Events published while the shard is down reach every node, in order, once it
// is back, and delivery goes on by itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startRedis, startCluster, serverSdk, clientOptions, connected, once, pause, eventually, onRedisCluster,
} from '../lib/server.mjs';

const skip = !onRedisCluster && 'a Redis Cluster shard: OVERTONE_TEST_REDIS=cluster';
let redis;
let nodes = [];
const clients = [];

before(async () => {
  if (skip) return;
  redis = await startRedis();
  nodes = await startCluster(redis, 2);
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

/** A pusher-js client on `node` subscribed to `name`; resolves with the events it receives (and when). */
async function feed(node, name) {
  const client = new Pusher(node.app.key, clientOptions(node));
  clients.push(client);
  await connected(client);
  const channel = client.subscribe(name);
  const events = [];
  channel.bind('e', (data) => events.push({ ...data, at: Date.now() }));
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 10000, `subscription to ${name}`);
  return events;
}

test('a shard restarted under load: delivery resumes, nothing published meanwhile is lost', { skip }, async () => {
  const [a, b] = nodes;
  const name = 'shard-restart';
  const shard = await redis.ownerOf(`overtone:{${a.app.id}:${name}}:channel`);
  const received = [await feed(a, name), await feed(b, name)];
  const sdks = [await serverSdk(a), await serverSdk(b)];
  const sent = { a: 0, b: 0 };
  let publishing = true;
  // Both nodes publish, one event each every 20 ms, until told to stop.
  const load = (async () => {
    while (publishing) {
      await Promise.all([['a', sdks[0]], ['b', sdks[1]]].map(([from, sdk]) => {
        const n = sent[from];
        sent[from] += 1;
        return sdk.trigger(name, 'e', { from, n });
      }));
      await pause(20);
    }
  })();
  await pause(500);
  const killedAt = { a: sent.a, b: sent.b };
  await shard.stop();
  await pause(1000);
  await shard.start();
  const back = Date.now();
  const backAt = { a: sent.a, b: sent.b };
  await pause(1500);
  publishing = false;
  await load;
  const sequence = (events, from) => events.filter((e) => e.from === from).map((e) => e.n);
  // On failure, what every client misses of every node's events: where a loss happened.
  const missing = () => received.flatMap((events, i) => ['a', 'b'].map((from) => {
    const got = new Set(sequence(events, from));
    const lost = Array.from({ length: sent[from] }, (_, n) => n).filter((n) => !got.has(n));
    return `node ${'AB'[i]}'s client misses node ${from.toUpperCase()}'s [${lost}]`;
  })).join('; ') + ` (shard down from a=${killedAt.a}, b=${killedAt.b} to a=${backAt.a}, b=${backAt.b})`;
  await eventually(() => {
    for (const [i, events] of received.entries()) {
      for (const from of ['a', 'b']) {
        assert.deepEqual(sequence(events, from), Array.from({ length: sent[from] }, (_, n) => n),
          `node ${from.toUpperCase()}'s events on node ${'AB'[i]}'s client: ${missing()}`);
      }
    }
  }, 15000, 50);
  const held = received.flat().filter((e) => e.n >= killedAt[e.from] && e.n < backAt[e.from]);
  const heldIn = Math.max(...held.map((e) => e.at)) - back;
  const next = received.flat().filter((e) => e.n >= backAt[e.from]);
  const nextIn = Math.min(...next.map((e) => e.at)) - back;
  const total = 2 * (sent.a + sent.b);
  const during = 2 * (backAt.a - killedAt.a + backAt.b - killedAt.b);
  console.log(`# shard restart: ${total} deliveries expected, ${total} made, 0 lost; ${during} of them `
    + `of events published while the shard was down (1 s), in order, the last ${heldIn} ms after it was back; `
    + `the first published after it was back delivered ${nextIn} ms after`);
});
