// Replies to a connection's own requests are not slow reading: pusher-js subscribes to every
// channel of an app in one burst when it connects (and on every reconnect); with 5,000
// channels (the per-connection limit) every one is confirmed and the connection stays, on a
// lone node and on a cluster (where each confirmation waits for Redis).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  useServer, clientOptions, once, startRedis, startCluster, serverSdk,
} from '../lib/server.mjs';

const clients = [];
const fixture = useServer(clients);

const CHANNELS = 5_000;

/** Subscribes a pusher-js client on `server` to 5,000 channels before it connects; checks that
 * every one is confirmed on the first connection and that it still gets events. */
async function burst(server, sdk) {
  const client = new Pusher(server.app.key, clientOptions(server));
  clients.push(client);
  const states = [];
  client.connection.bind('state_change', ({ current }) => states.push(current));
  const closes = [];
  client.connection.bind('connected', () => {
    client.connection.connection.transport.socket.addEventListener('close', (e) => closes.push(e.code));
  });
  const confirmed = new Set();
  const started = Date.now();
  await once((done) => {
    for (let i = 0; i < CHANNELS; i += 1) {
      // Subscribed before the connection opens: pusher-js sends all 5,000 at once on connect.
      client.subscribe(`burst-${i}`).bind('pusher:subscription_succeeded', () => {
        confirmed.add(i);
        if (confirmed.size === CHANNELS) done();
      });
    }
  }, 30_000, `${CHANNELS} confirmations`).catch((err) => {
    throw new Error(`${err.message}: ${confirmed.size} confirmed, states ${states.join(' > ')}, closes ${closes.join()}`);
  });
  console.log(`# ${CHANNELS} subscriptions confirmed in ${Date.now() - started} ms`);
  assert.deepEqual(states, ['connected'], 'no reconnect');
  assert.deepEqual(closes, []);
  // Still one live connection that gets what is published.
  const delivered = once((cb) => client.channel(`burst-${CHANNELS - 1}`).bind('after', cb), 5000, 'event after the burst');
  await sdk.trigger(`burst-${CHANNELS - 1}`, 'after', { ok: true });
  assert.deepEqual(await delivered, { ok: true });
  client.disconnect();
}

test('pusher-js with 5,000 channels gets every one confirmed and never reconnects', async () => {
  await burst(fixture.server, fixture.sdk);
});

test('on a cluster too, where confirmations wait for Redis', async () => {
  const redis = await startRedis();
  const [node] = await startCluster(redis, 1);
  try {
    await burst(node, await serverSdk(node));
  } finally {
    await node.stop();
    await redis.stop();
  }
});
