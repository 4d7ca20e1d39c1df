// Member status on one node (README, "Wire extensions"): a status reaches every presence
// channel its user is in without re-subscribing, a new member gets every member's status and
// who left recently, member_removed carries last_seen_at, the signed presence endpoint, and
// real pusher-js (with laravel-echo) still counts members right with the new frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';
import { useServer, signedClientOptions, connected, once, pause } from '../lib/server.mjs';
import { rawUser, dataOf } from '../lib/raw-user.mjs';

const clients = [];
const fixture = useServer(clients);
const open = [];
const person = (id) => ({ id, info: { name: id } });

async function user(id, { signin = true } = {}) {
  const client = await rawUser(fixture.server, fixture.sdk, person(id));
  open.push(client);
  if (signin) await client.signin();
  return client;
}

const updatedOn = (channel, userId) => (m) =>
  m.event === 'overtone:member_updated' && m.channel === channel && dataOf(m).user_id === userId;

test.after(() => open.forEach((c) => c.close()));

test('a status reaches every presence channel of its user at once, without re-subscribing', async () => {
  const [ann, bob, cy] = [await user('ann'), await user('bob'), await user('cy')];
  await ann.subscribe('presence-team.1');
  await ann.subscribe('presence-team.2');
  await bob.subscribe('presence-team.1');
  await cy.subscribe('presence-team.2');
  const atBob = bob.next(updatedOn('presence-team.1', 'ann'));
  const atCy = cy.next(updatedOn('presence-team.2', 'ann'));
  ann.send('overtone:status', { status: 'busy', message: 'In a meeting', device: 'desktop' });
  const expected = { user_id: 'ann', status: 'busy', message: 'In a meeting', device: 'desktop', away_since: null };
  assert.deepEqual(dataOf(await atBob), expected);
  assert.deepEqual(dataOf(await atCy), expected);

  const before = Date.now();
  const away = bob.next(updatedOn('presence-team.1', 'ann'));
  ann.send('overtone:status', { status: 'away' });
  const data = dataOf(await away);
  assert.equal(data.status, 'away');
  assert.equal(data.message, 'In a meeting', 'an absent field keeps its value');
  assert.ok(data.away_since >= before - 5 && data.away_since <= Date.now(), `away_since ${data.away_since}`);

  const count = bob.got('overtone:member_updated').length;
  ann.send('overtone:status', { status: 'away' });
  await pause(100);
  assert.equal(bob.got('overtone:member_updated').length, count, 'an unchanged status is not announced');
});

test('status is refused without a user, or malformed, with a clear error', async () => {
  const anon = await user('anon', { signin: false });
  const signed = await user('dee');
  let error = anon.error();
  anon.send('overtone:status', { status: 'busy' });
  assert.match(await error, /needs a signed-in user/);
  for (const [data, message] of [
    [{ status: 'Busy!' }, /status must be 1 to 16/],
    [{ message: 'x'.repeat(101) }, /at most 100 characters/],
    [{ device: 42 }, /device must be/],
    ['nope', /must be JSON|must be an object/],
  ]) {
    error = signed.error();
    signed.send('overtone:status', data);
    assert.match(await error, message, JSON.stringify(data));
  }
});

test('status changes count against the client-event rate limit', async () => {
  const spammer = await user('spam');
  await spammer.subscribe('presence-spam');
  const limited = spammer.next((m) => m.event === 'pusher:error' && dataOf(m).code === 4301, 2000, '4301');
  for (let i = 0; i < 30; i++) spammer.send('overtone:status', { status: i % 2 ? 'busy' : 'online' });
  assert.match(dataOf(await limited).message, /overtone:status rate limit/);
});

test('a new member gets every member status and who left, and member_removed says when', async () => {
  const channel = 'presence-room.snap';
  const [ann, bob, cy] = [await user('ann'), await user('bob'), await user('cy')];
  await ann.subscribe(channel);
  await bob.subscribe(channel);
  await cy.subscribe(channel);
  await ann.waitFor((m) => m.channel === channel && m.event === 'overtone:members');
  ann.send('overtone:status', { status: 'busy', message: 'In a meeting', device: 'mobile' });
  await bob.waitFor(updatedOn(channel, 'ann'));

  const removed = ann.next((m) => m.channel === channel && m.event === 'pusher_internal:member_removed');
  const before = Date.now();
  cy.close();
  const gone = dataOf(await removed);
  assert.equal(gone.user_id, 'cy');
  assert.ok(gone.last_seen_at >= before - 5 && gone.last_seen_at <= Date.now(), `last_seen_at ${gone.last_seen_at}`);

  const dee = await user('dee');
  await dee.subscribe(channel);
  const snapshot = await dee.waitFor((m) => m.channel === channel && m.event === 'overtone:members', 1000, 'members');
  const confirmed = dee.frames.findIndex((m) => m.channel === channel && m.event === 'pusher_internal:subscription_succeeded');
  assert.ok(dee.frames.indexOf(snapshot) > confirmed, 'after subscription_succeeded');
  const data = dataOf(snapshot);
  assert.deepEqual(data.members, {
    ann: { status: 'busy', message: 'In a meeting', device: 'mobile', away_since: null },
    bob: { status: 'online', message: null, device: null, away_since: null },
    dee: { status: 'online', message: null, device: null, away_since: null },
  });
  assert.deepEqual(Object.keys(data.left), ['cy']);
  assert.ok(Math.abs(data.left.cy - gone.last_seen_at) <= 50, `${data.left.cy} vs ${gone.last_seen_at}`);
});

test('GET /users/{id}/presence answers a backend, signed', async () => {
  const ann = await user('eve');
  await ann.subscribe('presence-p.1');
  await ann.subscribe('presence-p.2');
  await ann.subscribe('private-p.3');
  const watcher = await user('fay');
  await watcher.subscribe('presence-p.1');
  ann.send('overtone:status', { status: 'away', message: 'Lunch', device: 'mobile' });
  await watcher.waitFor(updatedOn('presence-p.1', 'eve'));
  let res = await fixture.sdk.get({ path: '/users/eve/presence' });
  const eve = await res.json();
  assert.ok(eve.away_since > 0);
  assert.deepEqual({ ...eve, away_since: 1 }, {
    user_id: 'eve', online: true, status: 'away', message: 'Lunch', device: 'mobile', away_since: 1,
    last_seen_at: null, channels: ['presence-p.1', 'presence-p.2'],
  });

  const removed = watcher.next((m) => m.event === 'pusher_internal:member_removed');
  ann.close();
  await removed;
  res = await fixture.sdk.get({ path: '/users/eve/presence' });
  const left = await res.json();
  assert.equal(left.online, false);
  assert.deepEqual(left.channels, []);
  assert.ok(left.last_seen_at > 0);
  assert.equal(left.status, 'away', 'kept after leaving');

  res = await fixture.sdk.get({ path: '/users/nobody/presence' });
  assert.deepEqual(await res.json(), {
    user_id: 'nobody', online: false, status: 'online', message: null, device: null, away_since: null,
    last_seen_at: null, channels: [],
  });

  const unsigned = await fetch(`${fixture.server.url}/apps/${fixture.server.app.id}/users/eve/presence?auth_key=${fixture.server.app.key}&auth_timestamp=${Math.floor(Date.now() / 1000)}&auth_version=1.0&auth_signature=00`);
  assert.equal(unsigned.status, 401);
  assert.ok((await unsigned.json()).error);
});

test('pusher-js and laravel-echo count presence members right among the new frames', async () => {
  const connect = async (id) => {
    const client = new Pusher(fixture.server.app.key, signedClientOptions(fixture.server, fixture.sdk, { user: person(id) }));
    clients.push(client);
    await connected(client);
    return client;
  };
  const a = await connect('gus');
  const echo = new Echo({ broadcaster: 'pusher', client: a });
  const leaving = [];
  const room = echo.join('lounge').leaving((m) => leaving.push(m.name));
  await once((cb) => room.here(cb), 5000, 'here');
  const raw = await user('hal');
  raw.send('overtone:status', { status: 'busy' });
  await raw.subscribe('presence-lounge');
  raw.send('overtone:read', { channel: 'presence-lounge', up_to: '1' });
  const channel = a.channel('presence-lounge');
  const extensions = [];
  channel.bind_global((event) => event.startsWith('overtone:') && extensions.push(event));
  raw.send('overtone:status', { status: 'away' });
  await pause(200);
  assert.equal(channel.members.count, 2);
  assert.ok(extensions.includes('overtone:member_updated'), `pusher-js emitted ${extensions}`);
  raw.close();
  await once((cb) => room.leaving(cb), 5000, 'leaving');
  assert.equal(channel.members.count, 1);
  assert.deepEqual(leaving, ['hal']);
  assert.equal(a.connection.state, 'connected');
});
