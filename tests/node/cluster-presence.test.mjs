// Presence across nodes on one real redis-server: here() lists every node's members, a user on
// two nodes joins once and leaves once, the API's user lists and channel counts agree on every
// node, and a killed
// node's members leave the others' lists within the heartbeat timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';
import {
  serverSdk, signedClientOptions, connected, once, pause, useCluster, eventually,
} from '../lib/server.mjs';

const nodes = [];
const clients = [];
const cluster = useCluster(3, { nodes, clients });

async function echoOn(server, user) {
  const sdk = await serverSdk(server);
  const client = new Pusher(server.app.key, signedClientOptions(server, sdk, { user }));
  clients.push(client);
  await connected(client);
  return new Echo({ broadcaster: 'pusher', client });
}

/** Joins `room` on `server` as `user`; resolves with the channel and here()'s member ids. */
async function join(server, user, room) {
  const echo = await echoOn(server, user);
  const channel = echo.join(room);
  const here = await once((cb) => channel.here(cb), 5000, `here() for ${user.id}`);
  return { echo, channel, here: here.map((m) => m.id).sort() };
}

/** A user whose user_info carries the id (here/joining/leaving hand out user_info). */
const user = (id) => ({ id, info: { id } });

const usersOn = async (server, channel) => {
  const res = await (await serverSdk(server)).get({ path: `/channels/${channel}/users` });
  return (await res.json()).users.map((u) => u.id).sort();
};

test('here(), joining and leaving are cluster-wide; one user on two nodes is one member', async () => {
  const [a, b, c] = nodes;
  const ann = user('ann');
  const bob = user('bob');
  const first = await join(a, ann, 'room.1');
  assert.deepEqual(first.here, ['ann']);
  const joins = [];
  const leaves = [];
  first.channel.joining((m) => joins.push(m.id));
  first.channel.leaving((m) => leaves.push(m.id));

  const onB = await join(b, bob, 'room.1');
  assert.deepEqual(onB.here, ['ann', 'bob']);
  const bobJoins = [];
  onB.channel.joining((m) => bobJoins.push(m.id));
  await eventually(async () => assert.deepEqual(joins, ['bob']));

  // Ann again, on a third node: everyone already has her, nobody hears a join.
  const annAgain = await join(c, ann, 'room.1');
  assert.deepEqual(annAgain.here, ['ann', 'bob']);
  for (const node of nodes) assert.deepEqual(await usersOn(node, 'presence-room.1'), ['ann', 'bob']);
  // Every node answers the channel queries with the cluster's counts.
  const expected = { 'presence-room.1': { user_count: 2, subscription_count: 3 } };
  for (const node of nodes) {
    await eventually(async () => {
      const sdk = await serverSdk(node);
      const list = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count,subscription_count' } })).json();
      assert.deepEqual(list.channels, expected);
      const one = await (await sdk.get({ path: '/channels/presence-room.1', params: { info: 'user_count,subscription_count' } })).json();
      assert.deepEqual(one, { occupied: true, ...expected['presence-room.1'] });
    });
  }
  await pause(300);
  assert.deepEqual(bobJoins, []);

  // Ann leaves on A but is still on C: no leave; then she leaves C too: one leave.
  const bobLeaves = [];
  onB.channel.leaving((m) => bobLeaves.push(m.id));
  first.echo.leave('room.1');
  await pause(500);
  assert.deepEqual(bobLeaves, []);
  annAgain.echo.leave('room.1');
  await eventually(async () => assert.deepEqual(bobLeaves, ['ann']));
  for (const node of nodes) assert.deepEqual(await usersOn(node, 'presence-room.1'), ['bob']);
});

test('a killed node\'s members leave the other nodes\' lists within the heartbeat timeout', async () => {
  const [a, b, c] = nodes;
  const watcher = await join(a, user('watcher'), 'room.2');
  const left = once((cb) => watcher.channel.leaving((m) => m.id === 'doomed' && cb(m)), 15000, 'leaving after the kill');
  const doomed = await join(c, user('doomed'), 'room.2');
  assert.deepEqual(doomed.here, ['doomed', 'watcher']);
  await eventually(async () => assert.deepEqual(await usersOn(b, 'presence-room.2'), ['doomed', 'watcher']));
  const killedAt = Date.now();
  c.process.kill('SIGKILL');
  await left;
  assert.ok(Date.now() - killedAt < 10000, 'removed within the timeout');
  assert.deepEqual(await usersOn(a, 'presence-room.2'), ['watcher']);
  assert.deepEqual(await usersOn(b, 'presence-room.2'), ['watcher']);
});

test('after a Redis restart the nodes re-register their members: here() is whole again', async () => {
  const [a, b] = nodes;
  await join(a, user('stays'), 'room.3');
  await cluster.redis.restart();
  // The nodes notice on their next heartbeat and put their members back.
  await eventually(async () => assert.deepEqual(await usersOn(b, 'presence-room.3'), ['stays']), 10000);
  const late = await join(b, user('late'), 'room.3');
  assert.deepEqual(late.here, ['late', 'stays']);
});
