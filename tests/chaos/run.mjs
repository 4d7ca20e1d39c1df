// One seeded fault-injection run against a cluster: three `overtone serve` nodes on one real
// redis-server, continuous publishing through every node's HTTP API, resuming subscribers on
// every node, presence churn, and faults drawn from the seed (Redis restarted, a node killed
// with SIGKILL and started again, a node paused with SIGSTOP, client TCP connections cut).
// Then recovery, and the invariants: every event published after recovery reaches every
// subscriber exactly once, in position order; a client resuming from before them gets them all
// (recovered:true); every node's presence list equals the truth; no node needed a restart
// (besides the killed ones); memory back near its baseline. The same seed draws the same
// faults at the same moments.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Pusher from 'pusher';
import {
  app, startRedis, startServerWithoutApp, freePort, writeConfig, appToml, historyToml, pause, eventually,
} from '../lib/server.mjs';
import { rawConnect, resumingClient } from '../lib/raw-ws.mjs';

const FEED = 'chaos-feed';
const ROOM = 'presence-chaos';
const NODES = 3;
const METRICS_TOKEN = 'chaos';
const AFTER_RECOVERY = 30;

/** A small seeded PRNG (mulberry32): the same seed, the same draws. */
export function random(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

const FAULTS = ['redis-restart', 'kill-node', 'pause-node', 'cut-clients'];

/** Resident memory of a process, in MiB. */
function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+)/m)[1]) / 1024;
}

/**
 * Runs one seed with `faults` faults; resolves with a summary, or rejects with the invariant
 * that broke (the message names the seed).
 */
export async function runChaos({ seed, faults = 3 }) {
  // Faults draw from their own stream, so the traffic's draws (which depend on timing) never
  // move them: a seed always injects the same faults, at the same moments.
  const rng = random(seed);
  const traffic = random(seed ^ 0x5bd1e995);
  const redis = await startRedis();
  const config = writeConfig(appToml(app, historyToml([['chaos-*', 5000, 600]])));
  const ports = [];
  for (let i = 0; i < NODES; i += 1) ports.push(await freePort());
  const args = ['--config', config.path, '--redis-url', redis.url, '--metrics-token', METRICS_TOKEN, '--shutdown-drain', '0'];
  const start = (i) => startServerWithoutApp({ args, port: ports[i] });
  const nodes = await Promise.all(ports.map((_, i) => start(i)));
  const handle = (i) => ({ host: '127.0.0.1', port: ports[i], app });
  const sdks = ports.map((port) => new Pusher({
    appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(port), useTLS: false, timeout: 2000,
  }));
  const down = new Set();
  const subscribers = [];
  const members = new Map();
  const summary = { seed, faults: [], published: 0, publishFailed: 0 };
  let publishing = true;
  try {
    const allConnected = () => eventually(async () => {
      for (let i = 0; i < NODES; i += 1) {
        const metrics = await (await fetch(`http://127.0.0.1:${ports[i]}/metrics`, {
          headers: { Authorization: `Bearer ${METRICS_TOKEN}` }, signal: AbortSignal.timeout(1000),
        })).text();
        assert.match(metrics, /^overtone_redis_connected 1$/m, `node ${i} on Redis`);
      }
    }, 20000, 100);
    await allConnected();
    for (let i = 0; i < NODES; i += 1) {
      subscribers.push(resumingClient(handle(i), FEED), resumingClient(handle(i), FEED));
    }
    let nextUser = 0;
    const join = (i) => {
      const user = `u${nextUser++}`;
      members.set(user, resumingClient(handle(i), ROOM, { user, sdk: sdks[i] }));
    };
    for (let i = 0; i < NODES; i += 1) { join(i); join(i); }
    await eventually(() => assert.ok(subscribers.every((s) => s.succeeded.length > 0), 'subscribed'), 10000, 50);
    await pause(1000);
    const baseline = nodes.map((n) => rssMiB(n.process.pid));

    // Continuous publishing through the live nodes, and presence churn.
    const live = () => [...Array(NODES).keys()].filter((i) => !down.has(i));
    const sent = [];
    let seq = 0;
    const publisher = (async () => {
      while (publishing) {
        const i = traffic.pick(live());
        const n = seq++;
        try {
          await sdks[i].trigger(FEED, 'e', { n, node: i });
          sent.push(n);
        } catch {
          summary.publishFailed += 1;
        }
        await pause(20);
      }
    })();
    const churn = setInterval(() => {
      if (traffic.next() < 0.5 && members.size > 2) {
        const [user, client] = [...members.entries()][traffic.int(0, members.size - 1)];
        client.stop();
        members.delete(user);
      } else {
        join(traffic.pick(live()));
      }
    }, 700);

    for (let f = 0; f < faults; f += 1) {
      await pause(rng.int(500, 2000));
      const fault = rng.pick(FAULTS);
      const i = rng.int(0, NODES - 1);
      summary.faults.push(fault.endsWith('-node') ? `${fault}:${i}` : fault);
      if (fault === 'redis-restart') {
        await redis.restart();
      } else if (fault === 'kill-node') {
        down.add(i);
        const exited = new Promise((r) => nodes[i].process.once('exit', r));
        nodes[i].process.kill('SIGKILL');
        await exited;
        await pause(rng.int(300, 1500));
        nodes[i] = await start(i);
        down.delete(i);
      } else if (fault === 'pause-node') {
        down.add(i);
        nodes[i].process.kill('SIGSTOP');
        await pause(rng.int(500, 2500));
        nodes[i].process.kill('SIGCONT');
        down.delete(i);
      } else {
        for (let k = 0; k < 2; k += 1) subscribers[rng.int(0, subscribers.length - 1)].current?.destroy();
      }
    }
    clearInterval(churn);
    publishing = false;
    await publisher;
    summary.published = sent.length;

    // Recovery: every node back on Redis, and settled (queries whole again).
    await allConnected();
    await pause(3000);
    const during = subscribers.map((s) => s.events.map((e) => JSON.parse(e.data).n));
    const sentSet = new Set(sent);
    summary.lostDuringFaults = during.map((got) => sent.filter((n) => !got.includes(n)).length);
    summary.duplicatesDuringFaults = during.map((got) => got.length - new Set(got).size);
    summary.unexpected = during.map((got) => got.filter((n) => !sentSet.has(n)).length);

    // Invariant 1: after recovery, every event reaches every subscriber exactly once, in order.
    const marks = subscribers.map((s) => s.events.length);
    const after = [];
    for (let k = 0; k < AFTER_RECOVERY; k += 1) {
      const i = k % NODES;
      const n = seq++;
      await sdks[i].trigger(FEED, 'e', { n, node: i });
      after.push(n);
    }
    const fresh = (s, idx) => s.events.slice(marks[idx]);
    const freshNumbers = (s, idx) => fresh(s, idx).map((e) => JSON.parse(e.data).n);
    await eventually(() => {
      subscribers.forEach((s, idx) => {
        const got = freshNumbers(s, idx);
        assert.deepEqual([...got].sort((x, y) => x - y), after, `seed ${seed}: subscriber ${idx} after recovery got ${got.join()}`);
      });
    }, 15000, 100).catch((err) => { throw new Error(`seed ${seed}: not every event after recovery reached every subscriber exactly once: ${err.message}`); });
    subscribers.forEach((s, idx) => {
      const offsets = fresh(s, idx).map((e) => Number(e.position.split(':')[1]));
      assert.ok(offsets.every((o, k) => k === 0 || o > offsets[k - 1]), `seed ${seed}: subscriber ${idx} out of position order`);
      for (let i = 0; i < NODES; i += 1) {
        const fromNode = freshNumbers(s, idx).filter((n) => after.indexOf(n) % NODES === i);
        assert.deepEqual(fromNode, after.filter((_, k) => k % NODES === i), `seed ${seed}: node ${i}'s events out of order`);
      }
    });

    // Invariant 2: history resumes complete, on every node, from just before recovery.
    const first = fresh(subscribers[0], 0)[0].position;
    const [epoch, offset] = first.split(':');
    for (let i = 0; i < NODES; i += 1) {
      const replay = [];
      let succeeded;
      const raw = await rawConnect(handle(i), (message, socket) => {
        if (message.event === 'pusher:connection_established') {
          socket.send({ event: 'pusher:subscribe', data: { channel: FEED, position: `${epoch}:${Number(offset) - 1}` } });
        } else if (message.event === 'pusher_internal:subscription_succeeded') {
          succeeded = message;
        } else if (message.channel === FEED && !message.event.startsWith('pusher')) {
          replay.push(JSON.parse(message.data).n);
        }
      });
      await eventually(() => assert.ok(succeeded && replay.length >= AFTER_RECOVERY), 5000, 50)
        .catch(() => { throw new Error(`seed ${seed}: resuming on node ${i}: ${JSON.stringify(succeeded)}, ${replay.length} replayed; faults ${summary.faults}; positions seen ${subscribers.map((s, idx) => fresh(s, idx).map((e) => e.position).join(' ')).join(' | ')}`); });
      raw.close();
      assert.equal(succeeded.recovered, true, `seed ${seed}: resume on node ${i} not recovered`);
      assert.deepEqual([...replay].sort((x, y) => x - y), after, `seed ${seed}: resume on node ${i} replayed ${replay.join()}`);
    }

    // Invariant 3: every node's presence list is the truth.
    const truth = [...members.keys()].sort();
    await eventually(async () => {
      for (let i = 0; i < NODES; i += 1) {
        const users = (await (await sdks[i].get({ path: `/channels/${ROOM}/users` })).json()).users.map((u) => u.id).sort();
        assert.deepEqual(users, truth, `seed ${seed}: node ${i}'s presence list`);
      }
    }, 15000, 200);

    // Invariant 4: memory back near its baseline (the ring of 5,000 events allowed for).
    summary.rssMiB = nodes.map((n, i) => ({ baseline: Math.round(baseline[i]), end: Math.round(rssMiB(n.process.pid)) }));
    summary.rssMiB.forEach(({ baseline: b, end }, i) => assert.ok(end < b + 64, `seed ${seed}: node ${i} grew from ${b} to ${end} MiB`));
    summary.deliveredAfterRecovery = AFTER_RECOVERY * subscribers.length;
    return summary;
  } finally {
    publishing = false;
    subscribers.forEach((s) => s.stop());
    members.forEach((c) => c.stop());
    nodes.forEach((n) => n.process.kill('SIGCONT')); // a node paused when a check failed
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
    config.remove();
  }
}
