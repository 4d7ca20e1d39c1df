// Run by hand: CONNECTIONS idle connections across NODES nodes of one cluster on this machine,
// each subscribed to one channel and each receiving one broadcast triggered through one node.
// Starts a throwaway redis-server and the nodes (OVERTONE_BIN, default the release build; each
// node's open-file limit 20,000, so CONNECTIONS / NODES must stay below it), then one
// `overtone-bench connect` per node (BENCH_BIN, default the release build; IN_FLIGHT connection
// attempts at once, default 50) connecting from 127.0.0.2-127.0.0.9 in turn: a port bound
// before connecting is unique per source address, whatever the destination. Once the cluster counts every subscription it triggers the
// broadcast; each bench holds HOLD seconds, reads its node's memory, closes and reads it again.
// Prints each bench's JSON line, then the totals: events received, memory per connection
// (the nodes' RSS with the connections open minus before, summed, over CONNECTIONS) and the
// share of it returned after they closed.
//
//   CONNECTIONS=100000 NODES=6 node tests/bench/many-nodes.mjs
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Before the library reads it.
process.env.OVERTONE_BIN ??= path.join(root, 'target/release/overtone');
const { startServer, startRedis, serverSdk, app } = await import('../lib/server.mjs');

const TOTAL = Number(process.env.CONNECTIONS ?? 100000);
const NODES = Number(process.env.NODES ?? 6);
const HOLD = Number(process.env.HOLD ?? 60);
const BENCH = process.env.BENCH_BIN ?? path.join(root, 'target/release/overtone-bench');
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 50);
const SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`).join(',');
const CHANNEL = 'broadcast';

const per = Math.ceil(TOTAL / NODES);
const redis = await startRedis();
const nodes = [];
try {
  for (let i = 0; i < NODES; i++) {
    nodes.push(await startServer({ args: ['--redis-url', redis.url], fdLimit: 20000 }));
  }
  const benches = nodes.map((node) => {
    const child = spawn(BENCH, [
      '--url', `ws://127.0.0.1:${node.port}`, '--app-id', app.id, '--app-key', app.key,
      '--app-secret', app.secret, '--server-pid', String(node.process.pid), '--source-addrs', SOURCES,
      'connect', '-n', String(per), '--channel', CHANNEL, '--hold', String(HOLD), '--in-flight', String(IN_FLIGHT),
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    return new Promise((resolve, reject) => child.on('exit', (code) => (code === 0
      ? resolve(JSON.parse(out.trim().split('\n').pop()))
      : reject(new Error(`overtone-bench exited with ${code}: ${out}`)))));
  });
  const failed = Promise.race(benches).then(() => { throw new Error('a bench finished before the broadcast'); });
  const sdk = await serverSdk(nodes[0]);
  const started = Date.now();
  const allSubscribed = (async () => {
    for (;;) {
      const res = await sdk.get({ path: `/channels/${CHANNEL}`, params: { info: 'subscription_count' } });
      if (res.status === 200 && (await res.json()).subscription_count >= per * NODES) return;
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  await Promise.race([allSubscribed, failed]);
  const subscribedSeconds = (Date.now() - started) / 1000;
  const res = await sdk.trigger(CHANNEL, 'hello', { at: Date.now() });
  if (res.status !== 200) throw new Error(`trigger: ${res.status}`);
  const results = await Promise.all(benches);
  results.forEach((r, i) => console.log(JSON.stringify({ node: i, ...r })));
  const sum = (key) => results.reduce((total, r) => total + (r[key] ?? 0), 0);
  const grown = sum('server_rss_open_kib') - sum('server_rss_before_kib');
  console.log(JSON.stringify({
    nodes: NODES,
    connections: per * NODES,
    subscribed_seconds: subscribedSeconds,
    dropped: sum('dropped'),
    events_received: sum('events_received'),
    rss_before_kib: sum('server_rss_before_kib'),
    rss_open_kib: sum('server_rss_open_kib'),
    rss_closed_kib: sum('server_rss_closed_kib'),
    kib_per_connection: Math.round((grown / (per * NODES)) * 100) / 100,
    memory_returned: Math.round(((sum('server_rss_open_kib') - sum('server_rss_closed_kib')) / grown) * 100) / 100,
  }));
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
}
