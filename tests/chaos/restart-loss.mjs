// By hand, not a suite: reproduces events lost (or delivered twice) on the publishing node's own
// client while Redis restarts. Two nodes on one Redis (OVERTONE_TEST_REDIS=cluster: a 3-master
// Redis Cluster), one pusher-js subscriber on node A, three `pusher` SDKs publishing 3,000
// events through node A as fast as it answers, Redis restarted three times meanwhile. Prints
// what the subscriber missed and got twice; exits 1 if anything. On 2026-12-07 an earlier
// version of this script (one run per process) lost 1-3 consecutive events in 5 of 24 runs
// between 17:45 and 17:52 UTC, on main and on a build of c4a99be alike, and on a Redis Cluster
// one run got 168 events twice; 0 of 11 runs without restarts lost any. Between 18:03 and
// 18:05 this script lost nothing in 22 runs: the fault is real but its trigger is not pinned.
// What such a loss needs is an event Redis stored whose pub/sub copy missed the node (a publish
// racing its resubscription); since then a node reads what its feed missed back from the stream
// (tests/node/history-cluster.test.mjs: the "feed" tests fail without it), and the socket's
// hand-back between writer and publishers has tests that fail when it is broken
// (connection.rs, wire.rs). 0 of 12 runs lost anything before that change and 0 of 12 after,
// 18:47-19:01 UTC.
//
//   node tests/chaos/restart-loss.mjs [--runs 8]
import Pusher from 'pusher-js';
import { startRedis, startCluster, serverSdk, clientOptions, connected, once, pause } from '../lib/server.mjs';

const EVENTS = 3000;
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 8;

async function run() {
  const redis = await startRedis();
  const nodes = await startCluster(redis, 2);
  const [a] = nodes;
  const client = new Pusher(a.app.key, clientOptions(a));
  await connected(client);
  const channel = client.subscribe('restart-loss');
  const got = [];
  channel.bind('e', (data) => got.push(data.n));
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 10000, 'subscription');
  const sdks = await Promise.all([serverSdk(a), serverSdk(a), serverSdk(a)]);
  let sent = 0;
  const publishers = sdks.map(async (sdk) => {
    while (sent < EVENTS) await sdk.trigger('restart-loss', 'e', { n: sent++ });
  });
  const restarts = (async () => {
    for (let i = 0; i < 3; i += 1) {
      await pause(300);
      await redis.restart();
    }
  })();
  await Promise.all([...publishers, restarts]);
  await pause(2000);
  const times = new Map();
  for (const n of got) times.set(n, (times.get(n) ?? 0) + 1);
  const missing = Array.from({ length: EVENTS }, (_, n) => n).filter((n) => !times.has(n));
  const twice = [...times].filter(([, count]) => count > 1).map(([n]) => n);
  client.disconnect();
  await Promise.all(nodes.map((node) => node.stop()));
  await redis.stop();
  return { missing, twice };
}

let bad = 0;
for (let i = 1; i <= runs; i += 1) {
  const { missing, twice } = await run();
  if (missing.length || twice.length) bad += 1;
  console.log(`run ${i}: missing ${missing.length} [${missing.slice(0, 10)}], twice ${twice.length} [${twice.slice(0, 10)}]`);
}
console.log(`${bad} of ${runs} runs lost or repeated events`);
process.exit(bad ? 1 : 0);
