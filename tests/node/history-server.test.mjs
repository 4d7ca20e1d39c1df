// Channel history and resume on one node (the wire format of /work/history-wire.md): event
// frames carry "position", a subscribe with a position is replayed what it missed with no gap
// and no duplicate, a client away longer than the history is told recovered:false, the signed
// HTTP history read, and the real pusher-js connected alongside gets exactly the same events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startServerWithoutApp, serverSdk, clientOptions, connected, once, eventually, writeConfig, appToml, historyToml, app,
} from '../lib/server.mjs';
import { rawConnect, resumingClient, offsetOf } from '../lib/raw-ws.mjs';

let config;
let server;
let sdk;
const clients = [];
const sockets = [];

before(async () => {
  config = writeConfig(appToml(app, 'max_batch_size = 10\n')
    + historyToml([['short-*', 5], ['nohistory-*', 0], ['*', 2000, 300]]));
  server = await startServerWithoutApp({ args: ['--config', config.path] });
  sdk = await serverSdk(server);
});
after(async () => {
  resumingClient.all.forEach((c) => c.stop());
  clients.forEach((c) => c.disconnect());
  sockets.forEach((socket) => clearTimeout(socket._closeTimer));
  await server?.stop();
  config?.remove();
});

/** A pusher-js client subscribed to `channel`, recording the `data.n` of every `seq` event. */
async function pusherJs(channel) {
  const client = new Pusher(app.key, clientOptions(server));
  clients.push(client);
  client.connection.bind('connected', () => sockets.push(client.connection.connection.transport.socket));
  await connected(client);
  const ch = client.subscribe(channel);
  const got = [];
  ch.bind('seq', (data) => got.push(data.n));
  await once((cb) => ch.bind('pusher:subscription_succeeded', cb), 5000, 'pusher-js subscription');
  return { client, got };
}

/** Triggers `seq` events `from..to-1` on `channel`, 10 per batch request, in order. */
async function triggerRange(channel, from, to) {
  for (let n = from; n < to; n += 10) {
    const batch = [];
    for (let i = n; i < Math.min(n + 10, to); i++) batch.push({ channel, name: 'seq', data: { n: i } });
    await sdk.triggerBatch(batch);
  }
}

const seqs = (client) => client.events.map((e) => JSON.parse(e.data).n);
const range = (n) => Array.from({ length: n }, (_, i) => i);

/** Every event exactly once and in order, with consecutive offsets in one epoch. */
function assertExactlyOnce(client, count) {
  assert.deepEqual(seqs(client), range(count));
  const epochs = new Set(client.events.map((e) => e.position.split(':')[0]));
  assert.equal(epochs.size, 1, 'one epoch');
  const offsets = client.events.map((e) => offsetOf(e.position));
  offsets.forEach((o, i) => assert.equal(o, offsets[0] + i, 'consecutive offsets'));
}

const subscribed = (client) => once((cb) => { client.onSubscribed = cb; }, 10000, 'subscription');

test('terminate_connections while 1,000 events are triggered: after resuming, every event once, in order', async () => {
  const channel = 'resume-terminate';
  const js = await pusherJs(channel);
  let reopen;
  const closedWhile = new Promise((r) => { reopen = r; });
  const client = resumingClient(server, channel, { user: 'cut-me', sdk, gate: () => closedWhile });
  await subscribed(client);
  await triggerRange(channel, 0, 300);
  await sdk.terminateUserConnections('cut-me');
  // While it is away: 200 more.
  await eventually(() => assert.equal(client.closes, 1));
  await triggerRange(channel, 300, 500);
  const resubscribed = subscribed(client);
  reopen();
  const triggered = triggerRange(channel, 500, 1000);
  const succeeded = await resubscribed;
  assert.equal(succeeded.recovered, true);
  await triggered;
  await eventually(() => assert.equal(client.events.length, 1000), 15000, 50);
  assertExactlyOnce(client, 1000);
  assert.ok(client.connections >= 2, 'it was cut and came back');
  await eventually(() => assert.equal(js.got.length, 1000), 15000, 50);
  assert.deepEqual(js.got, range(1000), 'pusher-js alongside got the same events, in order');
  client.stop();
});

test('a client away longer than the history is told recovered:false, and gets no replay', async () => {
  const channel = 'short-away';
  await triggerRange(channel, 0, 2);
  const frames = [];
  const raw = await rawConnect(server, (m) => frames.push(m));
  raw.send({ event: 'pusher:subscribe', data: { channel } });
  await eventually(() => assert.ok(frames.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  const first = frames.find((m) => m.event === 'pusher_internal:subscription_succeeded');
  assert.equal(first.recovered, undefined, 'no position asked, no recovered field');
  assert.match(first.position, /^[A-Za-z0-9]{1,16}:2$/);
  raw.close();
  await raw.closed;
  await triggerRange(channel, 2, 12); // 10 more; only 5 are kept
  const again = [];
  const raw2 = await rawConnect(server, (m) => again.push(m));
  raw2.send({ event: 'pusher:subscribe', data: { channel, position: first.position } });
  await eventually(() => assert.ok(again.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  const succeeded = again.find((m) => m.event === 'pusher_internal:subscription_succeeded');
  assert.equal(succeeded.recovered, false);
  assert.equal(succeeded.position, `${first.position.split(':')[0]}:12`);
  // A later event arrives, and nothing was replayed before it.
  await triggerRange(channel, 12, 13);
  await eventually(() => assert.ok(again.some((m) => m.event === 'seq')));
  const events = again.filter((m) => m.event === 'seq');
  assert.deepEqual(events.map((e) => JSON.parse(e.data).n), [12]);
  assert.equal(events[0].position, `${first.position.split(':')[0]}:13`);
  raw2.close();
});

test('malformed positions and unknown epochs are not recoverable, never an error', async () => {
  const channel = 'resume-bad';
  await triggerRange(channel, 0, 3);
  const frames = [];
  const raw = await rawConnect(server, (m) => frames.push(m));
  const asks = ['garbage', 'x:-1', 42, 'toolongepochtoolong:1', 'nosuchepoch:1', 'a:99999999999999999999999'];
  asks.forEach((position, i) => raw.send({ event: 'pusher:subscribe', data: { channel: `${channel}-${i}`, position } }));
  await eventually(() => assert.equal(frames.filter((m) => m.event === 'pusher_internal:subscription_succeeded').length, asks.length));
  for (const m of frames.filter((f) => f.event === 'pusher_internal:subscription_succeeded')) {
    assert.equal(m.recovered, false, m.channel);
    assert.match(m.position, /^[A-Za-z0-9]+:0$/);
  }
  assert.ok(!frames.some((m) => m.event === 'pusher:error'), 'no error frame');
  // The connection is still there.
  raw.send({ event: 'pusher:ping', data: {} });
  await eventually(() => assert.ok(frames.some((m) => m.event === 'pusher:pong')));
  // A position from the future of the current epoch is not recoverable either.
  const current = [];
  const raw2 = await rawConnect(server, (m) => current.push(m));
  raw2.send({ event: 'pusher:subscribe', data: { channel } });
  await eventually(() => assert.ok(current.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  const epoch = current[1].position.split(':')[0];
  raw2.send({ event: 'pusher:unsubscribe', data: { channel } });
  raw2.send({ event: 'pusher:subscribe', data: { channel, position: `${epoch}:99` } });
  await eventually(() => assert.equal(current.filter((m) => m.event === 'pusher_internal:subscription_succeeded').length, 2));
  assert.equal(current.filter((m) => m.event === 'pusher_internal:subscription_succeeded')[1].recovered, false);
  raw.close();
  raw2.close();
});

test('channels without history: no position anywhere, as before', async () => {
  const channel = 'nohistory-x';
  const frames = [];
  const raw = await rawConnect(server, (m) => frames.push(m));
  raw.send({ event: 'pusher:subscribe', data: { channel, position: 'abc:1' } });
  await eventually(() => assert.ok(frames.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  await triggerRange(channel, 0, 1);
  await eventually(() => assert.ok(frames.some((m) => m.event === 'seq')));
  const [succeeded, event] = [frames[1], frames[2]];
  assert.deepEqual(Object.keys(succeeded).sort(), ['channel', 'data', 'event']);
  assert.deepEqual(Object.keys(event).sort(), ['channel', 'data', 'event']);
  raw.close();
});

test('GET /channels/{name}/history: signed, limited, complete or not, 404 and 400', async () => {
  const channel = 'http-history';
  await triggerRange(channel, 0, 30);
  // The SDK throws on a status other than 2xx, with the status and body.
  const get = async (path, params) => {
    try {
      const res = await sdk.get({ path, params });
      return { status: res.status, body: await res.json() };
    } catch (err) {
      return { status: err.status, body: JSON.parse(err.body) };
    }
  };
  const all = await get(`/channels/${channel}/history`, {});
  assert.equal(all.status, 200);
  assert.equal(all.body.complete, true);
  assert.equal(all.body.events.length, 30);
  const [epoch] = all.body.position.split(':');
  assert.equal(all.body.position, `${epoch}:30`);
  assert.deepEqual(all.body.events[0], { event: 'seq', channel, data: JSON.stringify({ n: 0 }), position: `${epoch}:1` });

  const newest = await get(`/channels/${channel}/history`, { limit: 5 });
  assert.deepEqual(newest.body.events.map((e) => offsetOf(e.position)), [26, 27, 28, 29, 30]);
  assert.equal(newest.body.complete, false);

  const after = await get(`/channels/${channel}/history`, { after: `${epoch}:20`, limit: 4 });
  assert.deepEqual(after.body.events.map((e) => offsetOf(e.position)), [21, 22, 23, 24]);
  assert.equal(after.body.complete, false, 'limited');
  const rest = await get(`/channels/${channel}/history`, { after: `${epoch}:20` });
  assert.equal(rest.body.events.length, 10);
  assert.equal(rest.body.complete, true);
  const otherEpoch = await get(`/channels/${channel}/history`, { after: 'old:3' });
  assert.equal(otherEpoch.body.complete, false);

  // Trimmed history (max_events 5) no longer reaches back.
  await triggerRange('short-http', 0, 8);
  const short = await get('/channels/short-http/history', {});
  const shortEpoch = short.body.position.split(':')[0];
  const behind = await get('/channels/short-http/history', { after: `${shortEpoch}:1` });
  assert.equal(behind.body.complete, false);
  assert.deepEqual(behind.body.events.map((e) => offsetOf(e.position)), [4, 5, 6, 7, 8]);

  for (const [params, status] of [
    [{ limit: 1001 }, 400], [{ limit: 0 }, 400], [{ limit: 'ten' }, 400], [{ after: 'nope' }, 400],
  ]) {
    const res = await get(`/channels/${channel}/history`, params);
    assert.equal(res.status, status, JSON.stringify(params));
    assert.equal(typeof res.body.error, 'string');
  }
  const missing = await get('/channels/nohistory-x/history', {});
  assert.equal(missing.status, 404);
  assert.equal(typeof missing.body.error, 'string');
  const never = await get('/channels/never-published/history', {});
  assert.equal(never.status, 404);
  const unsigned = await fetch(`${server.url}/apps/${app.id}/channels/${channel}/history`);
  assert.equal(unsigned.status, 401);
});

test('randomized: 10,000 events with repeated random disconnects, zero lost and zero duplicated', async () => {
  const channel = 'resume-random';
  const js = await pusherJs(channel);
  const client = resumingClient(server, channel, {
    user: 'random-user',
    sdk,
    gate: () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 30))),
  });
  await subscribed(client);
  let cuts = 0;
  for (let n = 0; n < 10000; n += 10) {
    const batch = [];
    for (let i = n; i < n + 10; i++) batch.push({ channel, name: 'seq', data: { n: i } });
    await sdk.triggerBatch(batch);
    const roll = Math.random();
    if (roll < 0.015) {
      cuts += 1;
      client.current?.destroy(); // the TCP connection just goes
    } else if (roll < 0.03) {
      cuts += 1;
      client.current?.close(); // a clean close from the client
    } else if (roll < 0.04) {
      cuts += 1;
      sdk.terminateUserConnections('random-user'); // the server cuts it
    }
  }
  await eventually(() => assert.equal(client.events.length, 10000), 20000, 100);
  assert.ok(cuts >= 5, `cut ${cuts} times`);
  const got = seqs(client);
  const seen = new Set(got);
  assert.equal(seen.size, got.length, 'zero duplicated');
  assert.equal(seen.size, 10000, 'zero lost');
  assertExactlyOnce(client, 10000);
  assert.ok(client.succeeded.slice(1).every((s) => s.recovered === true), 'every resume recovered');
  await eventually(() => assert.equal(js.got.length, 10000), 20000, 100);
  assert.deepEqual(js.got, range(10000));
  client.stop();
});

test('a server restarted without Redis starts a new epoch: recovered:false', async () => {
  const channel = 'resume-restart-memory';
  await triggerRange(channel, 0, 3);
  const frames = [];
  const raw = await rawConnect(server, (m) => frames.push(m));
  raw.send({ event: 'pusher:subscribe', data: { channel } });
  await eventually(() => assert.ok(frames.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  const { position } = frames.find((m) => m.event === 'pusher_internal:subscription_succeeded');
  raw.close();
  const port = server.port;
  await server.stop();
  server = await startServerWithoutApp({ args: ['--config', config.path], port });
  sdk = await serverSdk(server);
  await triggerRange(channel, 3, 5);
  const again = [];
  const raw2 = await rawConnect(server, (m) => again.push(m));
  raw2.send({ event: 'pusher:subscribe', data: { channel, position } });
  await eventually(() => assert.ok(again.some((m) => m.event === 'pusher_internal:subscription_succeeded')));
  const succeeded = again.find((m) => m.event === 'pusher_internal:subscription_succeeded');
  assert.equal(succeeded.recovered, false);
  assert.notEqual(succeeded.position.split(':')[0], position.split(':')[0]);
  raw2.close();
});
