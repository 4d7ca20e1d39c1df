// Presence and client events with laravel-echo on pusher-js: members counted by user id
// (one user on two sockets joins once and leaves once), whispers relayed to others but never
// echoed, refused on public channels, and rate limited per connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';
import {
  useServer, signedClientOptions, connected, nextPusherError, once, pause,
} from '../lib/server.mjs';

const clients = [];
const fixture = useServer(clients);

async function connect(user) {
  const client = new Pusher(fixture.server.app.key, signedClientOptions(fixture.server, fixture.sdk, { user }));
  clients.push(client);
  await connected(client);
  return { client, echo: new Echo({ broadcaster: 'pusher', client }) };
}

const ann = { id: 'ann', info: { name: 'Ann' } };
const bob = { id: 'bob', info: { name: 'Bob' } };

test('here, joining and leaving count one user on two sockets once', async () => {
  const watcher = await connect(ann);
  const joined = [];
  const left = [];
  const room = watcher.echo.join('team')
    .joining((info) => joined.push(info.name))
    .leaving((info) => left.push(info.name));
  assert.deepEqual(await once((cb) => room.here(cb), 5000, 'here'), [{ name: 'Ann' }]);

  const bob1 = await connect(bob);
  const bob2 = await connect(bob);
  await once((cb) => bob1.echo.join('team').here(cb), 5000, 'bob1 here');
  const bobSees = await once((cb) => bob2.echo.join('team').here(cb), 5000, 'bob2 here');
  assert.deepEqual(bobSees.map((m) => m.name).sort(), ['Ann', 'Bob']);
  await pause(150);
  assert.deepEqual(joined, ['Bob']);

  const users = await (await fixture.sdk.get({ path: '/channels/presence-team', params: { info: 'user_count' } })).json();
  assert.deepEqual(users, { occupied: true, user_count: 2 });

  bob1.echo.leave('team');
  await pause(150);
  assert.deepEqual(left, [], 'Bob is still here on his second socket');
  bob2.client.disconnect();
  await once((cb) => room.leaving(cb), 5000, 'leaving');
  assert.deepEqual(left, ['Bob']);
});

test('whispers reach others on private and presence channels and are not echoed', async () => {
  const a = await connect(ann);
  const b = await connect(bob);
  for (const [join, name] of [[(e) => e.private('doc.1'), 'private'], [(e) => e.join('doc.2'), 'presence']]) {
    const mine = join(a.echo);
    const theirs = join(b.echo);
    await Promise.all([once((cb) => mine.subscribed(cb)), once((cb) => theirs.subscribed(cb))]);
    let echoed = false;
    mine.listenForWhisper('typing', () => { echoed = true; });
    const heard = once((cb) => theirs.listenForWhisper('typing', cb), 5000, `${name} whisper`);
    mine.whisper('typing', { who: 'Ann' });
    assert.deepEqual(await heard, { who: 'Ann' });
    await pause(100);
    assert.equal(echoed, false, `${name} whisper echoed to its sender`);
  }
});

test('a presence whisper carries the sender user_id', async () => {
  const a = await connect(ann);
  const b = await connect(bob);
  const mine = a.client.subscribe('presence-meta');
  const theirs = b.client.subscribe('presence-meta');
  await Promise.all([mine, theirs].map((c) => once((cb) => c.bind('pusher:subscription_succeeded', cb))));
  const heard = once((cb) => theirs.bind('client-wave', (data, meta) => cb({ data, meta })), 5000, 'wave');
  mine.trigger('client-wave', { hi: 1 });
  assert.deepEqual(await heard, { data: { hi: 1 }, meta: { user_id: 'ann' } });
});

test('client events on a public channel are refused with pusher:error', async () => {
  const a = await connect(ann);
  const channel = a.client.subscribe('lobby');
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
  const refused = nextPusherError(a.client);
  a.client.send_event('client-shout', { loud: true }, 'lobby');
  assert.match((await refused).message, /private and presence/);
});

test('more than 10 client events a second get pusher:error 4301, the connection stays', async () => {
  const a = await connect(ann);
  const b = await connect(bob);
  const mine = a.client.subscribe('private-burst');
  const theirs = b.client.subscribe('private-burst');
  await Promise.all([mine, theirs].map((c) => once((cb) => c.bind('pusher:subscription_succeeded', cb))));
  let heard = 0;
  theirs.bind('client-n', () => { heard += 1; });
  const limited = nextPusherError(a.client);
  for (let n = 0; n < 15; n += 1) mine.trigger('client-n', { n });
  assert.equal((await limited).code, 4301);
  await pause(200);
  assert.equal(heard, 10);
  assert.equal(a.client.connection.state, 'connected');
});
