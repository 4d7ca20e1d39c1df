// Signed-in users across nodes on one real redis-server: watchlists hear a user come online
// with their first sign-in anywhere and go offline after their last one anywhere, and a
// connection signing in is told which watched users are online on any node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  serverSdk, signedClientOptions, connected, once, useCluster,
} from '../lib/server.mjs';

const nodes = [];
const clients = [];
const cluster = useCluster(2, { nodes, clients });

/** A pusher-js client on `server` signed in as `user`; resolves once signed in. */
async function signedIn(server, user, beforeSignIn = () => {}) {
  const sdk = await serverSdk(server);
  const client = new Pusher(server.app.key, signedClientOptions(server, sdk, { user: { info: {}, ...user } }));
  clients.push(client);
  await connected(client);
  beforeSignIn(client);
  const done = once((cb) => client.connection.bind('message', (m) => m.event === 'pusher:signin_success' && cb()), 5000, `sign-in of ${user.id}`);
  client.signin();
  await done;
  return client;
}

test('watchlists hear online and offline cluster-wide, once per user', async () => {
  const [a, b] = nodes;
  const heard = [];
  const watcher = await signedIn(a, { id: 'watcher', watchlist: ['friend'] });
  watcher.user.watchlist.bind('online', (e) => heard.push(`online:${e.user_ids}`));
  watcher.user.watchlist.bind('offline', (e) => heard.push(`offline:${e.user_ids}`));

  // Online on B: the watcher on A hears it.
  const online = once((cb) => watcher.user.watchlist.bind('online', cb), 5000, 'online');
  const friendB = await signedIn(b, { id: 'friend' });
  assert.deepEqual((await online).user_ids, ['friend']);
  // A second connection on A, then the first one leaving B: still online, nothing to hear.
  // The last one leaving (whichever node applies it last): offline, once.
  const friendA = await signedIn(a, { id: 'friend' });
  const offline = once((cb) => watcher.user.watchlist.bind('offline', cb), 5000, 'offline');
  friendB.disconnect();
  friendA.disconnect();
  assert.deepEqual((await offline).user_ids, ['friend']);
  assert.deepEqual(heard, ['online:friend', 'offline:friend']);
});

test('pusher:signin_success comes once Redis has the sign-in, so a connection closing on another node cannot make the user seem offline', async () => {
  const [a] = nodes;
  const sdk = await serverSdk(a);
  const client = new Pusher(a.app.key, signedClientOptions(a, sdk, { user: { id: 'patient', info: {} } }));
  clients.push(client);
  await connected(client);
  const online = `overtone:{${a.app.id}}:online`;
  const shard = await cluster.redis.ownerOf(online);
  // Redis takes no writes for a while: the sign-in cannot be recorded before that ends.
  await shard.cli('CLIENT', 'PAUSE', '700', 'WRITE');
  const done = once((cb) => client.connection.bind('message', (m) => m.event === 'pusher:signin_success' && cb()), 5000, 'sign-in');
  client.signin();
  await done;
  assert.equal((await shard.cli('HGET', online, 'patient')).trim(), '1');
});

test('signing in tells a watcher which watched users are online on other nodes', async () => {
  const [a, b] = nodes;
  await signedIn(a, { id: 'pal' });
  let told;
  await signedIn(b, { id: 'late', watchlist: ['pal', 'nobody'] }, (c) => {
    told = once((cb) => c.user.watchlist.bind('online', cb), 5000, 'online list');
  });
  assert.deepEqual((await told).user_ids, ['pal']);
});
