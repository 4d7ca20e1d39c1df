// Read receipts on one node (README, "Wire extensions"): the capability advertised, markers
// stored and announced to the channel's subscribers only, refused where they do not belong,
// coalesced (200 reads are a handful of frames), the current map on (re)subscribe, the
// monotonic rule, and the backend feed through `POST /reads` and `overtone-read` events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, pause } from '../lib/server.mjs';
import { rawUser, dataOf } from '../lib/raw-user.mjs';

const fixture = useServer([]);
const open = [];
const ann = { id: 'ann', info: { name: 'Ann' } };
const bob = { id: 'bob', info: { name: 'Bob' } };

async function user(who, { signin = true } = {}) {
  const client = await rawUser(fixture.server, fixture.sdk, who);
  open.push(client);
  if (signin) await client.signin();
  return client;
}

const readsOn = (channel) => (m) => m.event === 'overtone:reads' && m.channel === channel;

test.after(() => open.forEach((c) => c.close()));

test('connection_established advertises the extensions', async () => {
  const a = await user(ann, { signin: false });
  assert.deepEqual(a.established.overtone, { reads: 1, status: 1 });
});

test('a read reaches the channel subscribers (the reader too) and no other channel', async () => {
  const channel = 'private-chat.1.2';
  const [a, b, other] = [await user(ann), await user(bob), await user({ id: 'cy' })];
  await a.subscribe(channel);
  await b.subscribe(channel);
  await other.subscribe('private-chat.3.4');
  // The median of five reads, so one scheduling hiccup on a busy machine does not decide.
  const times = [];
  for (let i = 1; i <= 5; i++) {
    const started = process.hrtime.bigint();
    const seen = b.next(readsOn(channel), 1000, 'reads at bob');
    a.send('overtone:read', { channel, up_to: `e1:${i}` });
    assert.deepEqual(dataOf(await seen), { reads: { ann: `e1:${i}` } });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const median = times.sort((x, y) => x - y)[2];
  assert.ok(median < 100, `delivered in ${times} ms`);
  console.log(`# read -> delivered to another subscriber: median ${median.toFixed(1)} ms of ${times.map((t) => t.toFixed(1))}`);
  await a.waitFor(readsOn(channel), 1000, 'reads at ann');
  await pause(100);
  assert.equal(other.frames.filter((m) => m.event === 'overtone:reads').length, 0);
});

test('reads are refused on public channels, unsigned on private ones, unsubscribed or malformed', async () => {
  const a = await user(ann);
  const anon = await user({ id: 'anon' }, { signin: false });
  await a.subscribe('lobby');
  await a.subscribe('private-x.1');
  await anon.subscribe('private-x.1');
  const cases = [
    [a, { channel: 'lobby', up_to: '1' }, /only allowed on private and presence/],
    [anon, { channel: 'private-x.1', up_to: '1' }, /signed-in user/],
    [a, { channel: 'private-x.2', up_to: '1' }, /Subscribe to private-x.2/],
    [a, { channel: 'private-x.1' }, /needs data \{channel, up_to\}/],
    [a, { channel: 'private-x.1', up_to: 7 }, /needs data/],
    [a, { channel: 'private-x.1', up_to: 'x'.repeat(65) }, /1 to 64 characters/],
    [a, { channel: 'private-x.1', up_to: '' }, /1 to 64 characters/],
  ];
  for (const [client, data, message] of cases) {
    const error = client.error();
    client.send('overtone:read', data);
    assert.match(await error, message, JSON.stringify(data));
  }
  await pause(100);
  assert.equal(a.got('overtone:reads').length, 0, 'nothing was stored');
  const pong = a.next((m) => m.event === 'pusher:pong');
  a.send('pusher:ping', {});
  await pong;
});

test('200 reads at once are a handful of frames, ending on the newest', async () => {
  const channel = 'private-burst.1';
  const [a, b] = [await user(ann), await user(bob)];
  await a.subscribe(channel);
  await b.subscribe(channel);
  for (let i = 1; i <= 200; i++) a.send('overtone:read', { channel, up_to: `e1:${i}` });
  await b.waitFor((m) => readsOn(channel)(m) && dataOf(m).reads.ann === 'e1:200', 2000, 'the newest read');
  await pause(100);
  const frames = b.got('overtone:reads', channel);
  console.log(`# 200 reads -> ${frames.length} overtone:reads frames on the wire`);
  assert.ok(frames.length <= 5, `${frames.length} frames`);
});

test('a new subscriber gets the current map right after its confirmation, also after reconnecting', async () => {
  const channel = 'private-map.1';
  const [a, b] = [await user(ann), await user(bob)];
  await a.subscribe(channel);
  await b.subscribe(channel);
  a.send('overtone:read', { channel, up_to: '41' });
  b.send('overtone:read', { channel, up_to: 'msg-9' });
  await a.waitFor((m) => readsOn(channel)(m) && dataOf(m).reads.bob === 'msg-9');
  a.close();
  const again = await user(ann);
  await again.subscribe(channel);
  const map = await again.waitFor(readsOn(channel), 1000, 'the map');
  assert.deepEqual(dataOf(map), { reads: { ann: '41', bob: 'msg-9' } });
  const confirmed = again.frames.findIndex((m) => m.channel === channel && m.event === 'pusher_internal:subscription_succeeded');
  assert.ok(again.frames.indexOf(map) > confirmed, 'after subscription_succeeded');
  const empty = await user({ id: 'dee' });
  await empty.subscribe('private-map.2');
  await pause(100);
  assert.equal(empty.got('overtone:reads').length, 0, 'none for a channel without markers');
});

test('markers only move forward when comparable; otherwise the last write wins', async () => {
  const channel = 'private-mono.1';
  const [a, b] = [await user(ann), await user(bob)];
  await a.subscribe(channel);
  await b.subscribe(channel);
  const latest = async (upTo) => {
    a.send('overtone:read', { channel, up_to: upTo });
    await pause(80);
    const fresh = await user({ id: `peek-${upTo}` });
    await fresh.subscribe(channel);
    return dataOf(await fresh.waitFor(readsOn(channel))).reads.ann;
  };
  assert.equal(await latest('e1:20'), 'e1:20');
  const before = b.got('overtone:reads', channel).length;
  assert.equal(await latest('e1:7'), 'e1:20', 'an older position of the same epoch');
  assert.equal(b.got('overtone:reads', channel).length, before, 'and nothing announced');
  assert.equal(await latest('e2:3'), 'e2:3', 'a new epoch');
  assert.equal(await latest('10'), '10');
  assert.equal(await latest('9'), '10', 'a smaller integer');
  assert.equal(await latest('msg-a'), 'msg-a', 'ids the app chose');
});

test('on a presence channel, a connection that is not signed in reads as its member id', async () => {
  const channel = 'presence-room.reads';
  const a = await user(ann, { signin: false });
  const b = await user(bob, { signin: false });
  await a.subscribe(channel);
  await b.subscribe(channel);
  a.send('overtone:read', { channel, up_to: '3' });
  assert.deepEqual(dataOf(await b.waitFor(readsOn(channel))), { reads: { ann: '3' } });
});

test('a backend feeds markers through POST /reads and overtone-read events', async () => {
  const channel = 'private-feed.1';
  const b = await user(bob);
  await b.subscribe(channel);
  const one = b.next(readsOn(channel));
  let res = await fixture.sdk.post({ path: '/reads', body: { channel, user_id: 'ann', up_to: '12' } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  assert.deepEqual(dataOf(await one).reads, { ann: '12' });

  const many = b.next((m) => readsOn(channel)(m) && dataOf(m).reads.cy === '3');
  res = await fixture.sdk.post({
    path: '/reads',
    body: { reads: [{ channel, user_id: 'ann', up_to: '13' }, { channel, user_id: 'cy', up_to: '3' }] },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(dataOf(await many).reads, { ann: '13', cy: '3' }, 'one frame for the batch');

  for (const bad of [
    { channel: 'lobby', user_id: 'ann', up_to: '1' },
    { channel, user_id: 'ann' },
    { reads: [{ channel, user_id: 'ann', up_to: '99' }, { channel: 'private-encrypted-x', user_id: 'a', up_to: '1' }] },
  ]) {
    const refused = await fixture.sdk.post({ path: '/reads', body: bad }).catch((e) => e);
    assert.equal(refused.status, 400, JSON.stringify(bad));
    assert.ok(JSON.parse(refused.body).error, 'a JSON error');
  }

  const fed = b.next(readsOn(channel));
  await fixture.sdk.trigger(channel, 'overtone-read', { user_id: 'ann', up_to: '20' });
  assert.deepEqual(dataOf(await fed).reads, { ann: '20' });
  const batched = b.next(readsOn(channel));
  await fixture.sdk.triggerBatch([{ channel, name: 'overtone-read', data: { user_id: 'ann', up_to: '21' } }]);
  assert.deepEqual(dataOf(await batched).reads, { ann: '21' });
  await pause(100);
  assert.equal(b.got('overtone-read').length, 0, 'the raw event is not delivered');
  const refused = await fixture.sdk.trigger(channel, 'overtone-read', { up_to: '1' }).catch((e) => e);
  assert.equal(refused.status, 400);
  assert.match(JSON.parse(refused.body).error, /overtone-read data/);
});
