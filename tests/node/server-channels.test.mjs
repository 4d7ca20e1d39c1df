// Channels end to end with the real npm clients: laravel-echo on pusher-js subscribes, the
// `pusher` server SDK triggers and queries through the signed HTTP API and signs channel auth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';
import {
  useServer, clientOptions, signedClientOptions, connected, nextPusherError, once, pause,
} from '../lib/server.mjs';

const clients = [];
const fixture = useServer(clients);

/** A connected laravel-echo on a pusher-js client signed in-process as `user`. */
async function echoFor(user = { id: '1', info: { name: 'Ann' } }) {
  const client = new Pusher(fixture.server.app.key, signedClientOptions(fixture.server, fixture.sdk, { user }));
  clients.push(client);
  await connected(client);
  return new Echo({ broadcaster: 'pusher', client });
}

const subscribed = (channel) => once((cb) => channel.subscribed(cb), 5000, 'subscription');

test('public, private and presence channels receive events triggered by the SDK', async () => {
  const echo = await echoFor();
  const pub = echo.channel('orders');
  const priv = echo.private('orders.1');
  const pres = echo.join('room.1');
  await Promise.all([subscribed(pub), subscribed(priv), subscribed(pres)]);

  const got = Promise.all([
    once((cb) => pub.listen('OrderShipped', cb), 5000, 'public event'),
    once((cb) => priv.listen('.order.updated', cb), 5000, 'private event'),
    once((cb) => pres.listen('.moved', cb), 5000, 'presence event'),
  ]);
  await fixture.sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 7 });
  await fixture.sdk.trigger(['private-orders.1', 'presence-room.1'], 'order.updated', { id: 8 });
  await fixture.sdk.trigger('presence-room.1', 'moved', { to: 'b' });
  assert.deepEqual(await got, [{ id: 7 }, { id: 8 }, { to: 'b' }]);
});

test('toOthers: the socket_id given to the SDK does not get its own event', async () => {
  const sender = await echoFor();
  const other = await echoFor();
  const senderChannel = sender.private('chat.2');
  const otherChannel = other.private('chat.2');
  await Promise.all([subscribed(senderChannel), subscribed(otherChannel)]);

  let echoed = false;
  senderChannel.listen('.message', () => { echoed = true; });
  const delivered = once((cb) => otherChannel.listen('.message', cb), 5000, 'message');
  await fixture.sdk.trigger('private-chat.2', 'message', { text: 'hi' }, { socket_id: sender.socketId() });
  assert.deepEqual(await delivered, { text: 'hi' });
  await pause(200);
  assert.equal(echoed, false);
});

test('batch events are delivered in order and a batch over 10 is refused', async () => {
  const echo = await echoFor();
  const channel = echo.channel('batch-feed');
  await subscribed(channel);
  const seen = [];
  const all = once((cb) => channel.listen('.tick', (d) => { seen.push(d.n); if (seen.length === 3) cb(); }), 5000, 'ticks');
  const response = await fixture.sdk.triggerBatch([1, 2, 3].map((n) => ({ channel: 'batch-feed', name: 'tick', data: { n } })));
  assert.equal(response.status, 200);
  await all;
  assert.deepEqual(seen, [1, 2, 3]);

  const tooMany = Array.from({ length: 11 }, (_, n) => ({ channel: 'batch-feed', name: 'tick', data: { n } }));
  await assert.rejects(fixture.sdk.triggerBatch(tooMany), (err) => {
    assert.equal(err.status, 400);
    assert.match(JSON.parse(err.body).error, /10/);
    return true;
  });
});

test('a private subscription with a bad signature is refused with an AuthError', async () => {
  const client = new Pusher(fixture.server.app.key, clientOptions(fixture.server, {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, { auth: `${fixture.server.app.key}:${'0'.repeat(64)}` }),
    },
  }));
  clients.push(client);
  const echo = new Echo({ broadcaster: 'pusher', client });
  const error = await once((cb) => echo.private('secret').error(cb), 5000, 'subscription error');
  assert.equal(error.type, 'AuthError');
  assert.equal(error.status, 401);
});

test('notification() receives BroadcastNotificationCreated on the private user channel', async () => {
  const echo = await echoFor();
  const channel = echo.private('App.Models.User.1');
  await subscribed(channel);
  const notified = once((cb) => channel.notification(cb), 5000, 'notification');
  await fixture.sdk.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', {
    id: 'n-1', type: 'App\\Notifications\\InvoicePaid', amount: 10,
  });
  const notification = await notified;
  assert.equal(notification.type, 'App\\Notifications\\InvoicePaid');
  assert.equal(notification.amount, 10);
});

test('after leave() the client gets no more events and the channel is vacated', async () => {
  const echo = await echoFor();
  const channel = echo.channel('leaving');
  await subscribed(channel);
  let after = 0;
  channel.listen('.late', () => { after += 1; });
  echo.leave('leaving');
  await pause(200);
  const info = await (await fixture.sdk.get({ path: '/channels/leaving', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(info, { occupied: false, subscription_count: 0 });
  await fixture.sdk.trigger('leaving', 'late', {});
  await pause(200);
  assert.equal(after, 0);
});

test('channel and user queries through the SDK have the shapes pusher-http-php expects', async () => {
  const ann = await echoFor({ id: 'ann', info: { name: 'Ann' } });
  const annAgain = await echoFor({ id: 'ann', info: { name: 'Ann' } });
  const bob = await echoFor({ id: 'bob', info: { name: 'Bob' } });
  await Promise.all([ann, annAgain, bob].map((e) => subscribed(e.join('lobby'))));
  await subscribed(ann.channel('query-public'));

  const list = await (await fixture.sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-lobby', info: 'user_count' } })).json();
  assert.deepEqual(list, { channels: { 'presence-lobby': { user_count: 2 } } });
  const none = await (await fixture.sdk.get({ path: '/channels', params: { filter_by_prefix: 'nothing-here' } })).json();
  assert.deepEqual(none, { channels: {} });

  const one = await (await fixture.sdk.get({ path: '/channels/presence-lobby', params: { info: 'user_count,subscription_count' } })).json();
  assert.deepEqual(one, { occupied: true, user_count: 2, subscription_count: 3 });

  const users = await (await fixture.sdk.get({ path: '/channels/presence-lobby/users' })).json();
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['ann', 'bob']);

  await assert.rejects(fixture.sdk.get({ path: '/channels/query-public/users' }), (err) => err.status === 400);
  await assert.rejects(fixture.sdk.get({ path: '/channels', params: { info: 'user_count' } }), (err) => err.status === 400);

  const triggered = await (await fixture.sdk.trigger('presence-lobby', 'ping', {}, { info: 'user_count,subscription_count' })).json();
  assert.deepEqual(triggered, { channels: { 'presence-lobby': { user_count: 2, subscription_count: 3 } } });
});

test('a signed-in user receives sendToUser events and can be disconnected by the app', async () => {
  const client = new Pusher(fixture.server.app.key, signedClientOptions(fixture.server, fixture.sdk, { user: { id: 'u-42', info: {} } }));
  clients.push(client);
  client.signin();
  await connected(client);
  // The user channel's subscription confirms the sign-in went through.
  await once((cb) => client.connection.bind('message', (m) =>
    m.event === 'pusher_internal:subscription_succeeded' && m.channel === '#server-to-user-u-42' && cb()), 5000, 'user channel');
  const got = once((cb) => client.user.bind('greeting', cb), 5000, 'user event');
  await fixture.sdk.sendToUser('u-42', 'greeting', { hello: 'you' });
  assert.deepEqual(await got, { hello: 'you' });

  // pusher-js on Node closes the socket the server already closed a second time, which arms
  // a 30 s timer in its bundled faye-websocket that keeps the process alive; cleared below.
  const socket = client.connection.connection.transport.socket;
  const closed = once((cb) => client.connection.bind('error', (e) => e.data?.code === 4009 && cb(e)), 5000, 'termination');
  const response = await fixture.sdk.terminateUserConnections('u-42');
  assert.equal(response.status, 200);
  assert.equal((await closed).data.message, 'Connection terminated by the app');
  await pause(50);
  assert.equal(client.connection.state, 'disconnected');
  clearTimeout(socket._closeTimer);
});

test('an event to a cache channel is replayed to a later subscriber', async () => {
  await fixture.sdk.trigger('cache-scores', 'score', { home: 2, away: 1 });
  const echo = await echoFor();
  const channel = echo.channel('cache-scores');
  const replayed = once((cb) => channel.listen('.score', cb), 5000, 'cached event');
  assert.deepEqual(await replayed, { home: 2, away: 1 });
  const info = await (await fixture.sdk.get({ path: '/channels/cache-scores', params: { info: 'cache' } })).json();
  assert.equal(info.occupied, true);
  assert.equal(info.cache.event, 'score');
  assert.deepEqual(JSON.parse(info.cache.data), { home: 2, away: 1 });

  const miss = echo.channel('cache-empty');
  await once((cb) => miss.listen('.pusher:cache_miss', cb), 5000, 'cache miss');
});

test('private-encrypted channels relay ciphertext the SDK encrypted and refuse client events', async () => {
  const { default: PusherSdk } = await import('pusher');
  const encrypting = new PusherSdk({
    appId: fixture.server.app.id, key: fixture.server.app.key, secret: fixture.server.app.secret,
    host: fixture.server.host, port: String(fixture.server.port), useTLS: false,
    encryptionMasterKeyBase64: Buffer.alloc(32, 7).toString('base64'),
  });
  const client = new Pusher(fixture.server.app.key, signedClientOptions(fixture.server, encrypting));
  clients.push(client);
  await connected(client);
  const echo = new Echo({ broadcaster: 'pusher', client });
  const channel = echo.encryptedPrivate('vault');
  await subscribed(channel);
  const got = once((cb) => channel.listen('.secret', cb), 5000, 'decrypted event');
  await encrypting.trigger('private-encrypted-vault', 'secret', { pin: 1234 });
  assert.deepEqual(await got, { pin: 1234 });

  const refused = nextPusherError(client);
  client.send_event('client-leak', { pin: 1234 }, 'private-encrypted-vault');
  assert.match((await refused).message, /private and presence/);
});

test('a watchlist reports watched users coming online and going offline', async () => {
  const signedIn = (user) => {
    const c = new Pusher(fixture.server.app.key, signedClientOptions(fixture.server, fixture.sdk, { user }));
    clients.push(c);
    c.signin();
    return c;
  };
  const watcher = signedIn({ id: 'watcher', info: {}, watchlist: ['friend'] });
  await connected(watcher);
  await once((cb) => watcher.connection.bind('message', (m) => m.event === 'pusher:signin_success' && cb()), 5000, 'sign-in');
  const online = once((cb) => watcher.user.watchlist.bind('online', cb), 5000, 'online');
  const friend = signedIn({ id: 'friend', info: {} });
  assert.deepEqual((await online).user_ids, ['friend']);
  const offline = once((cb) => watcher.user.watchlist.bind('offline', cb), 5000, 'offline');
  friend.disconnect();
  assert.deepEqual((await offline).user_ids, ['friend']);
});
