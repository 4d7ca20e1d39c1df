// Several apps from a config file, each with its own rules: a disabled app (4003), a
// connection quota (4004), subscription counts, client events switched off, a presence member
// limit; and a Laravel `.env`'s REVERB_* variables read as they are.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startServer, startServerWithoutApp, serverSdk, clientOptions, signedClientOptions, connected,
  nextPusherError, once, pause, writeConfig,
} from '../lib/server.mjs';

const off = { id: 'off', key: 'off-key', secret: 'off-secret' };
const solo = { id: 'solo', key: 'solo-key', secret: 'solo-secret' };
const strict = { id: 'strict', key: 'strict-key', secret: 'strict-secret' };

let config;
let server;
const clients = [];

before(async () => {
  config = writeConfig(`
[[apps]]
id = "off"
key = "off-key"
secret = "off-secret"
enabled = false

[[apps]]
id = "solo"
key = "solo-key"
secret = "solo-secret"
max_connections = 1

[[apps]]
id = "strict"
key = "strict-key"
secret = "strict-secret"
client_events = false
subscription_count = true
max_presence_members = 1
`);
  server = await startServer({ args: ['--config', config.path] });
});
after(async () => {
  clients.forEach((c) => c.disconnect());
  await server?.stop();
  config?.remove();
});

/** The started server as seen by one of its apps. */
const as = (app) => ({ ...server, app });

function client(app, options = clientOptions(as(app))) {
  const c = new Pusher(app.key, options);
  clients.push(c);
  return c;
}

const refusal = (c) => once((cb) => c.connection.bind('error', (e) => cb(e.error.data.code)), 5000, 'refusal');

test('a disabled app refuses connections with 4003 and API calls with 403', async () => {
  assert.equal(await refusal(client(off)), 4003);
  const sdk = await serverSdk(as(off));
  await assert.rejects(sdk.trigger('a', 'e', {}), (err) => err.status === 403);
});

test('connections over the app quota are refused with 4004 until one leaves', async () => {
  const first = client(solo);
  await connected(first);
  assert.equal(await refusal(client(solo)), 4004);
  first.disconnect();
  await pause(100);
  await connected(client(solo));
});

test('subscription counts are sent to subscribers when the app enables them', async () => {
  const sdk = await serverSdk(as(strict));
  const a = client(strict);
  const b = client(strict);
  await Promise.all([connected(a), connected(b)]);
  const counts = [];
  const channel = a.subscribe('counted');
  channel.bind('pusher:subscription_count', (data) => counts.push(data.subscription_count));
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
  b.subscribe('counted');
  await pause(100);
  b.unsubscribe('counted');
  await pause(100);
  assert.deepEqual(counts, [1, 2, 1]);
  assert.equal(channel.subscriptionCount, 1);
  const info = await (await sdk.get({ path: '/channels/counted', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, subscription_count: 1 });
});

test('client events are refused when the app disables them', async () => {
  const sdk = await serverSdk(as(strict));
  const c = client(strict, signedClientOptions(as(strict), sdk, { user: { id: '1', info: {} } }));
  const channel = c.subscribe('private-quiet');
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
  const error = nextPusherError(c);
  channel.trigger('client-psst', {});
  assert.match((await error).message, /disabled/);
});

test('a presence channel at its member limit refuses new users but not new sockets', async () => {
  const sdk = await serverSdk(as(strict));
  const user = (id) => client(strict, signedClientOptions(as(strict), sdk, { user: { id, info: {} } }));
  const subscribe = (c) => once((cb) => {
    const ch = c.subscribe('presence-small');
    ch.bind('pusher:subscription_succeeded', () => cb('ok'));
    ch.bind('pusher:subscription_error', (e) => cb(e.type));
  });
  assert.equal(await subscribe(user('ann')), 'ok');
  assert.equal(await subscribe(user('ann')), 'ok');
  assert.equal(await subscribe(user('bob')), 'LimitReached');
});

test('REVERB_* variables from a Laravel .env configure the app', async () => {
  const reverb = { id: 'reverb-id', key: 'reverb-key', secret: 'reverb-secret' };
  const reverbServer = await startServerWithoutApp({
    env: { REVERB_APP_ID: reverb.id, REVERB_APP_KEY: reverb.key, REVERB_APP_SECRET: reverb.secret, REVERB_SERVER_HOST: '127.0.0.1' },
    serverApp: reverb,
  });
  const c = new Pusher(reverb.key, clientOptions(reverbServer));
  try {
    const channel = c.subscribe('env');
    await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
    const got = once((cb) => channel.bind('hello', cb));
    await (await serverSdk(reverbServer)).trigger('env', 'hello', { from: 'reverb env' });
    assert.deepEqual(await got, { from: 'reverb env' });
  } finally {
    c.disconnect();
    await reverbServer.stop();
  }
});
