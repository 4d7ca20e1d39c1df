// Read receipts and member status across two nodes on one real redis-server: the reader on
// one node, the writer on the other; markers kept in Redis (the map on subscribe, the
// monotonic rule, the per-channel bound, the backend feed through either node); a status reaching a presence
// channel's members on the other node; the presence endpoint answered alike by both nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, serverSdk, pause, eventually } from '../lib/server.mjs';
import { rawUser, dataOf } from '../lib/raw-user.mjs';

const nodes = [];
const open = [];
useCluster(2, { nodes, clients: [] });
const person = (id) => ({ id, info: { name: id } });

async function user(node, id, { signin = true } = {}) {
  const client = await rawUser(node, await serverSdk(node), person(id));
  open.push(client);
  if (signin) await client.signin();
  return client;
}

const readsOn = (channel) => (m) => m.event === 'overtone:reads' && m.channel === channel;

test.after(() => open.forEach((c) => c.close()));

test('a read on one node reaches the other, coalesced, and is kept in Redis', async () => {
  const [a, b] = nodes;
  const channel = 'private-chat.1.2';
  const writer = await user(a, 'ann');
  const reader = await user(b, 'bob');
  await writer.subscribe(channel);
  await reader.subscribe(channel);
  const times = [];
  for (let i = 1; i <= 5; i++) {
    const started = process.hrtime.bigint();
    const seen = reader.next(readsOn(channel), 2000, 'the read on the other node');
    writer.send('overtone:read', { channel, up_to: `e1:${i}` });
    assert.deepEqual(dataOf(await seen), { reads: { ann: `e1:${i}` } });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const median = times.sort((x, y) => x - y)[2];
  console.log(`# cluster: read on node A -> delivered on node B: median ${median.toFixed(1)} ms of ${times.map((t) => t.toFixed(1))}`);
  assert.ok(median < 100, `${times} ms`);

  const before = reader.got('overtone:reads', channel).length;
  for (let i = 6; i <= 200; i++) writer.send('overtone:read', { channel, up_to: `e1:${i}` });
  await reader.waitFor((m) => readsOn(channel)(m) && dataOf(m).reads.ann === 'e1:200', 3000, 'the newest');
  await pause(150);
  const frames = reader.got('overtone:reads', channel).length - before;
  console.log(`# cluster: 195 reads on node A -> ${frames} frames on node B`);
  assert.ok(frames <= 8, `${frames} frames`);

  // Older: not stored, not announced; the map a new subscriber on either node gets says so.
  const count = reader.got('overtone:reads', channel).length;
  writer.send('overtone:read', { channel, up_to: 'e1:150' });
  reader.send('overtone:read', { channel, up_to: 'e1:190' });
  await reader.waitFor((m) => readsOn(channel)(m) && dataOf(m).reads.bob === 'e1:190');
  await pause(100);
  assert.equal(reader.got('overtone:reads', channel).length, count + 1);
  for (const node of [a, b]) {
    const fresh = await user(node, 'cy');
    await fresh.subscribe(channel);
    const map = await fresh.waitFor(readsOn(channel), 2000, 'the map');
    assert.deepEqual(dataOf(map), { reads: { ann: 'e1:200', bob: 'e1:190' } });
  }
});

test('a backend feeds markers through either node', async () => {
  const [a, b] = nodes;
  const channel = 'private-feed.2';
  const onA = await user(a, 'ann');
  await onA.subscribe(channel);
  const got = onA.next(readsOn(channel));
  const res = await (await serverSdk(b)).post({ path: '/reads', body: { channel, user_id: 'bob', up_to: '7' } });
  assert.equal(res.status, 200);
  assert.deepEqual(dataOf(await got).reads, { bob: '7' });
  const fed = onA.next(readsOn(channel));
  await (await serverSdk(b)).trigger(channel, 'overtone-read', { user_id: 'bob', up_to: '8' });
  assert.deepEqual(dataOf(await fed).reads, { bob: '8' });
  await pause(100);
  assert.equal(onA.got('overtone-read').length, 0);
});

test('a status set on one node reaches members on the other; the snapshot and the endpoint agree', async () => {
  const [a, b] = nodes;
  const ann = await user(a, 'dee');
  await ann.subscribe('presence-team.1');
  const bob = await user(b, 'eli');
  await bob.subscribe('presence-team.1');
  // Dee also joins a second channel through another connection on the other node.
  const annTwo = await user(b, 'dee');
  await annTwo.subscribe('presence-team.2');
  const cy = await user(a, 'fox');
  await cy.subscribe('presence-team.2');

  const atBob = bob.next((m) => m.event === 'overtone:member_updated' && m.channel === 'presence-team.1');
  const atCy = cy.next((m) => m.event === 'overtone:member_updated' && m.channel === 'presence-team.2');
  ann.send('overtone:status', { status: 'busy', message: 'In a meeting', device: 'desktop' });
  const expected = { user_id: 'dee', status: 'busy', message: 'In a meeting', device: 'desktop', away_since: null };
  assert.deepEqual(dataOf(await atBob), expected);
  assert.deepEqual(dataOf(await atCy), expected, 'the channel joined only on the other node too');

  const removed = ann.next((m) => m.event === 'pusher_internal:member_removed');
  bob.close();
  assert.ok(dataOf(await removed).last_seen_at > 0);

  const late = await user(b, 'gil');
  await late.subscribe('presence-team.1');
  const snapshot = dataOf(await late.waitFor((m) => m.event === 'overtone:members', 2000, 'members'));
  assert.deepEqual(snapshot.members.dee, { status: 'busy', message: 'In a meeting', device: 'desktop', away_since: null });
  assert.deepEqual(Object.keys(snapshot.members).sort(), ['dee', 'gil']);
  assert.ok(snapshot.left.eli > 0, 'eli left');

  const answers = await eventually(async () => {
    const all = await Promise.all([a, b].map(async (node) => (await (await serverSdk(node)).get({ path: '/users/dee/presence' })).json()));
    assert.deepEqual(all[0].channels, ['presence-team.1', 'presence-team.2']);
    return all;
  }, 3000);
  assert.deepEqual(answers[0], answers[1]);
  assert.equal(answers[0].status, 'busy');
  assert.equal(answers[0].online, true);
  const gone = await (await (await serverSdk(a)).get({ path: '/users/eli/presence' })).json();
  assert.equal(gone.online, false);
  assert.ok(gone.last_seen_at > 0);
});

test('Redis keeps at most 1,000 readers per channel, dropping the least recently written', async () => {
  const [a, b] = nodes;
  const channel = 'private-crowd.1';
  const sdk = await serverSdk(a);
  for (let batch = 0; batch < 11; batch++) {
    const reads = Array.from({ length: 100 }, (_, i) => ({ channel, user_id: `u${batch * 100 + i}`, up_to: '1' }));
    assert.equal((await sdk.post({ path: '/reads', body: { reads } })).status, 200);
    await pause(30); // one window each, so the first batch is the least recently written
  }
  await pause(100); // the last window stored
  const fresh = await user(b, 'zed');
  await fresh.subscribe(channel);
  const map = dataOf(await fresh.waitFor(readsOn(channel), 2000, 'the map')).reads;
  assert.equal(Object.keys(map).length, 1000);
  assert.ok(!('u0' in map) && 'u1099' in map);
});
