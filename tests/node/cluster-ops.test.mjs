// Operating a cluster: /up, /ready and /metrics answer; /ready reports a node cut off from
// Redis; SIGTERM closes clients with 4200 and they reconnect through the load balancer to
// another node, as they do when a node is killed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  clientOptions, connected, once, pause, serverSdk, startRedis, startCluster, startBalancer, eventually,
} from '../lib/server.mjs';

let redis;
let nodes = [];
let balancer;
const clients = [];
/** Every WebSocket the clients opened: pusher-js's bundled faye-websocket arms a 30 s timer
 * when it closes a socket the server already closed (see server-channels), cleared in after(). */
const sockets = [];

/** Tracks `client` (and each socket it opens) for after(). */
function track(client) {
  clients.push(client);
  client.connection.bind('connected', () => sockets.push(client.connection.connection.transport.socket));
  return client;
}

before(async () => {
  redis = await startRedis();
  nodes = await startCluster(redis, 3, { args: ['--shutdown-grace', '3', '--metrics-token', METRICS_TOKEN] });
  balancer = await startBalancer(nodes);
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  sockets.forEach((socket) => clearTimeout(socket._closeTimer));
  await balancer?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

const METRICS_TOKEN = 'cluster-ops-metrics';
const get = (server, path) => fetch(`${server.url}${path}`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });

test('/up, /ready and /metrics answer', async () => {
  const [a, b] = nodes;
  assert.equal((await get(a, '/up')).status, 200);
  await eventually(async () => assert.equal((await get(a, '/ready')).status, 200));
  const client = track(new Pusher(a.app.key, clientOptions(a)));
  await connected(client);
  const channel = client.subscribe('metrics-channel');
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');
  client.connection.send_event('pusher:subscribe', { channel: 'bad name!' });
  // An event from another node, for the cluster delivery histogram.
  const got = once((cb) => channel.bind('ping', cb), 10000, 'event from B');
  let done = false;
  got.then(() => { done = true; }, () => {});
  const sdkB = await serverSdk(b);
  while (!done) {
    await sdkB.trigger('metrics-channel', 'ping', {});
    await Promise.race([got, pause(200)]);
  }
  const text = await eventually(async () => {
    const body = await (await get(a, '/metrics')).text();
    assert.match(body, /^overtone_connections\{app="test-app"\} 1$/m);
    assert.match(body, /^overtone_frames_received_total [1-9]/m);
    assert.match(body, /^overtone_bytes_sent_total [1-9]/m);
    assert.match(body, /^overtone_redis_connected 1$/m);
    assert.match(body, /^overtone_channels\{app="test-app"\} 1$/m);
    assert.match(body, /^overtone_cluster_delivery_seconds_count [1-9]/m);
    assert.match(body, /^overtone_cluster_delivery_seconds_bucket\{le="\+Inf"\} [1-9]/m);
    return body;
  });
  assert.match(text, /# TYPE overtone_frames_sent_total counter/);
  client.disconnect();
});

test('a node cut off from Redis for longer than the grace period is not ready, then is again', async () => {
  const [a] = nodes;
  await redis.stop();
  await eventually(async () => assert.equal((await get(a, '/ready')).status, 503), 15000);
  assert.equal((await get(a, '/up')).status, 200);
  assert.match(await (await get(a, '/metrics')).text(), /^overtone_redis_connected 0$/m);
  await redis.restart();
  await eventually(async () => assert.equal((await get(a, '/ready')).status, 200), 15000);
});

/** A connected pusher-js client through the balancer. */
async function clientThroughBalancer() {
  const client = track(new Pusher(balancer.app.key, clientOptions(balancer)));
  await connected(client);
  return client;
}

/** The node a connected client is on, asked of each node's /metrics. */
async function nodeOf() {
  for (const node of nodes) {
    if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
    const body = await (await get(node, '/metrics')).text();
    if (/^overtone_connections\{app="test-app"\} [1-9]/m.test(body)) return node;
  }
  return null;
}

test('SIGTERM: clients see 4200 and reconnect to another node', async () => {
  const client = await clientThroughBalancer();
  const first = await eventually(async () => {
    const node = await nodeOf();
    assert.ok(node);
    return node;
  });
  const socket = client.connection.connection.transport.socket;
  const closed = once((cb) => socket.addEventListener('close', (e) => cb(e.code)), 5000, 'close');
  const reconnected = once((cb) => client.connection.bind('connected', cb), 10000, 'reconnection');
  first.process.kill('SIGTERM');
  assert.equal(await closed, 4200);
  await reconnected;
  const exited = await once((cb) => (first.process.exitCode !== null ? cb(first.process.exitCode) : first.process.once('exit', cb)), 5000, 'exit');
  assert.equal(exited, 0);
  const second = await eventually(async () => {
    const node = await nodeOf();
    assert.ok(node && node !== first);
    return node;
  });
  assert.notEqual(second.port, first.port);
});

test('SIGKILL: the killed node\'s clients reconnect to another node', async () => {
  const client = await clientThroughBalancer();
  const victim = await eventually(async () => {
    const node = await nodeOf();
    assert.ok(node);
    return node;
  });
  const reconnected = once((cb) => client.connection.bind('connected', cb), 15000, 'reconnection');
  victim.process.kill('SIGKILL');
  await reconnected;
  await eventually(async () => {
    const node = await nodeOf();
    assert.ok(node && node !== victim);
  });
});
