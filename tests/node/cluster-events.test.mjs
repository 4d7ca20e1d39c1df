// Several `overtone serve --redis-url` nodes on one real redis-server: what is triggered on one
// node reaches clients on the others, toOthers() and client events exclude the sender wherever
// it is connected, terminate_connections reaches every node, apps and prefixes stay apart, and
// delivery resumes by itself after Redis restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';
import {
  startServerWithoutApp, serverSdk, signedClientOptions, connected, once, pause,
  useCluster, startCluster, eventually,
} from '../lib/server.mjs';

const nodes = [];
const clients = [];
const cluster = useCluster(2, { nodes, clients });

/** A connected laravel-echo on node `server`, signed in-process as `user`. */
async function echoOn(server, user = { id: '1', info: { name: 'Ann' } }) {
  const sdk = await serverSdk(server);
  const client = new Pusher(server.app.key, signedClientOptions(server, sdk, { user }));
  clients.push(client);
  await connected(client);
  return new Echo({ broadcaster: 'pusher', client });
}

const subscribed = (channel) => once((cb) => channel.subscribed(cb), 5000, 'subscription');

/** Triggers through node `server` until `received` resolves (the nodes subscribe to Redis
 * asynchronously, so the first events after a start or a restart may precede them). */
async function triggerUntil(server, channel, event, received) {
  const sdk = await serverSdk(server);
  let done = false;
  received.then(() => { done = true; }, () => {});
  while (!done) {
    await sdk.trigger(channel, event, { at: Date.now() });
    await Promise.race([received, pause(200)]);
  }
  return received;
}

test('a client on node A receives what the API triggers on node B', async () => {
  const [a, b] = nodes;
  const echo = await echoOn(a);
  const channel = echo.channel('orders');
  await subscribed(channel);
  const got = once((cb) => channel.listen('.shipped', cb), 10000, 'event from the other node');
  await triggerUntil(b, 'orders', 'shipped', got);
});

test('toOthers and client events exclude the sender wherever it is connected', async () => {
  const [a, b] = nodes;
  const onA = await echoOn(a);
  const onB = await echoOn(b);
  const channelA = onA.private('chat.1');
  const channelB = onB.private('chat.1');
  await Promise.all([subscribed(channelA), subscribed(channelB)]);
  const warm = once((cb) => channelA.listen('.warm', cb), 10000, 'warm-up');
  await triggerUntil(b, 'private-chat.1', 'warm', warm);

  let echoed = 0;
  channelA.listen('.message', () => { echoed += 1; });
  const received = once((cb) => channelB.listen('.message', cb), 5000, 'message on B');
  // Triggered on B with A's socket id, and on A: the sender on A is skipped both times.
  const sdkB = await serverSdk(b);
  await sdkB.trigger('private-chat.1', 'message', { n: 1 }, { socket_id: onA.socketId() });
  assert.deepEqual(await received, { n: 1 });
  const sdkA = await serverSdk(a);
  const again = once((cb) => channelB.listen('.message', cb), 5000, 'second message on B');
  await sdkA.trigger('private-chat.1', 'message', { n: 2 }, { socket_id: onA.socketId() });
  assert.deepEqual(await again, { n: 2 });
  await pause(300);
  assert.equal(echoed, 0, 'the sender got its own event');

  let whisperEchoed = false;
  channelA.listenForWhisper('typing', () => { whisperEchoed = true; });
  const whisper = once((cb) => channelB.listenForWhisper('typing', cb), 5000, 'whisper on B');
  channelA.whisper('typing', { who: 'ann' });
  assert.deepEqual(await whisper, { who: 'ann' });
  await pause(300);
  assert.equal(whisperEchoed, false);
});

test('sendToUser and terminate_connections reach the user on another node', async () => {
  const [a, b] = nodes;
  const sdkA = await serverSdk(a);
  const client = new Pusher(a.app.key, signedClientOptions(a, sdkA, { user: { id: 'zed', info: {} } }));
  clients.push(client);
  client.signin();
  await connected(client);
  await once((cb) => client.connection.bind('message', (m) =>
    m.event === 'pusher_internal:subscription_succeeded' && m.channel === '#server-to-user-zed' && cb()), 5000, 'user channel');
  const sdkB = await serverSdk(b);
  const greeted = once((cb) => client.user.bind('greeting', cb), 10000, 'user event from B');
  let done = false;
  greeted.then(() => { done = true; }, () => {});
  while (!done) {
    await sdkB.sendToUser('zed', 'greeting', { from: 'B' });
    await Promise.race([greeted, pause(200)]);
  }
  assert.deepEqual(await greeted, { from: 'B' });

  // See server-channels: pusher-js's bundled faye-websocket arms a 30 s timer on this close.
  const socket = client.connection.connection.transport.socket;
  const closed = once((cb) => client.connection.bind('error', (e) => e.data?.code === 4009 && cb(e)), 5000, 'termination');
  assert.equal((await sdkB.terminateUserConnections('zed')).status, 200);
  assert.equal((await closed).data.message, 'Connection terminated by the app');
  await pause(50);
  clearTimeout(socket._closeTimer);
});

test('two apps on one Redis, and two prefixes, never see each other\'s events', async () => {
  const other = { id: 'other-app', key: 'other-key', secret: 'other-secret' };
  const otherApp = await startServerWithoutApp({
    args: ['--app-id', other.id, '--app-key', other.key, '--app-secret', other.secret, '--redis-url', cluster.redis.url],
    serverApp: other,
  });
  const otherPrefix = (await startCluster(cluster.redis, 1, { args: ['--redis-prefix', 'elsewhere'] }))[0];
  nodes.push(otherApp, otherPrefix);
  const [a, b] = nodes;
  const listening = await echoOn(a);
  const foreignApp = await echoOn(otherApp);
  const foreignPrefix = await echoOn(otherPrefix);
  const channels = [listening, foreignApp, foreignPrefix].map((e) => e.channel('news'));
  await Promise.all(channels.map(subscribed));
  let leaked = 0;
  channels.slice(1).forEach((c) => c.listen('.story', () => { leaked += 1; }));
  const got = once((cb) => channels[0].listen('.story', cb), 10000, 'story');
  await triggerUntil(b, 'news', 'story', got);
  // Same app id, other prefix: a node of another deployment triggering reaches only its own.
  let crossed = false;
  channels[0].listen('.local', () => { crossed = true; });
  await (await serverSdk(otherPrefix)).trigger('news', 'local', {});
  await pause(500);
  assert.equal(leaked, 0);
  assert.equal(crossed, false);
});

test('Redis restarted: delivery across nodes resumes without restarting any node', async () => {
  const [a, b] = nodes;
  const echo = await echoOn(a);
  const channel = echo.channel('after-restart');
  await subscribed(channel);
  await cluster.redis.restart();
  const got = once((cb) => channel.listen('.back', cb), 15000, 'event after the restart');
  await triggerUntil(b, 'after-restart', 'back', got);
  assert.equal(echo.connector.pusher.connection.state, 'connected', 'local clients stayed connected');
});
