// Draining a node of a cluster: on SIGTERM /ready turns 503 at once while the node keeps
// serving (a new WebSocket still connects and still gets events from another node) for the
// drain delay; then it closes its clients with 4200 and exits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  clientOptions, connected, once, serverSdk, startRedis, startServer, eventually,
} from '../lib/server.mjs';

let redis;
let draining;
let other;
const clients = [];
const sockets = [];

before(async () => {
  redis = await startRedis();
  [draining, other] = await Promise.all([
    startServer({ args: ['--redis-url', redis.url, '--shutdown-drain', '5', '--shutdown-grace', '3'] }),
    startServer({ args: ['--redis-url', redis.url] }),
  ]);
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  // pusher-js's faye-websocket arms a 30 s timer when it closes a socket the server closed.
  sockets.forEach((socket) => clearTimeout(socket._closeTimer));
  await Promise.all([draining, other].map((n) => n?.stop()));
  await redis?.stop();
});

const get = (server, path) => fetch(`${server.url}${path}`);

/** A connected pusher-js client on `server`, and the close code its socket will see. */
async function clientOn(server) {
  const client = new Pusher(server.app.key, clientOptions(server, { activityTimeout: 60000 }));
  clients.push(client);
  await connected(client);
  const socket = client.connection.connection.transport.socket;
  sockets.push(socket);
  const closed = once((cb) => socket.addEventListener('close', (e) => cb(e.code)), 15000, 'close');
  closed.catch(() => {});
  return { client, closed };
}

test('SIGTERM: /ready is 503 during the drain while the node still serves, then 4200', async () => {
  await eventually(async () => assert.equal((await get(draining, '/ready')).status, 200));
  const early = await clientOn(draining);
  draining.process.kill('SIGTERM');
  await eventually(async () => {
    const res = await get(draining, '/ready');
    assert.equal(res.status, 503);
  }, 2000, 50);
  assert.equal((await get(draining, '/up')).status, 200);

  // Still accepting: a new client connects, subscribes, and hears an event sent through the
  // other node, all while /ready says 503.
  const late = await clientOn(draining);
  const channel = late.client.subscribe('drain');
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 3000, 'subscription');
  const got = once((cb) => channel.bind('news', cb), 3000, 'event through the other node');
  const sdk = await serverSdk(other);
  await eventually(async () => {
    await sdk.trigger('drain', 'news', { n: 1 });
    await Promise.race([got, new Promise((resolve, reject) => setTimeout(() => reject(new Error('not yet')), 300))]);
  }, 3000, 0);
  assert.deepEqual(await got, { n: 1 });
  assert.equal((await get(draining, '/ready')).status, 503);
  assert.ok(draining.process.exitCode === null, 'still running during the drain');

  // After the drain: both clients are closed with 4200 and the node exits cleanly.
  assert.equal(await early.closed, 4200);
  assert.equal(await late.closed, 4200);
  const code = await once((cb) => (draining.process.exitCode !== null ? cb(draining.process.exitCode) : draining.process.once('exit', cb)), 10000, 'exit');
  assert.equal(code, 0);
});
