// Run by hand: what each node of a cluster spends on events, when each node serves its own
// channels. Starts a throwaway redis-server and NODES nodes of OVERTONE_BIN (default: the debug
// build), subscribes CHANNELS channels on each node (one WebSocket per node, nobody else
// subscribed to them), triggers EVENTS events spread evenly over every channel through the HTTP
// API of every node in turn, waits for all of them to arrive, and prints one JSON line per node:
// CPU time (/proc, user+system) and the messages it took from Redis during the triggering
// (its `overtone_cluster_delivery_seconds_count`), then Redis's own totals. IDLE more nodes
// (default 1) join the cluster with no subscribers and no API calls: what a node spends on
// channels it does not serve. With routing by interest a node takes only its own channels'
// events; without it, every event.
//
//   OVERTONE_BIN=target/release/overtone node tests/bench/cluster-interest.mjs
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startServer, startRedis, serverSdk, app } from '../lib/server.mjs';

const NODES = Number(process.env.NODES ?? 4);
const CHANNELS = Number(process.env.CHANNELS ?? 1000);
const EVENTS = Number(process.env.EVENTS ?? 20000);
const IDLE = Number(process.env.IDLE ?? 1);
const TOKEN = 'bench';

const cpuMs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
};
const relayed = async (node) => {
  const res = await fetch(`${node.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return Number((await res.text()).match(/^overtone_cluster_delivery_seconds_count (\d+)$/m)[1]);
};

const redis = await startRedis();
// Per Redis server (each master of a Redis Cluster, with OVERTONE_TEST_REDIS=cluster).
const redisInfo = async () => Promise.all(redis.shards().map(async (shard) => {
  const stdout = await shard.cli('INFO', 'stats');
  const field = (name) => Number(stdout.match(new RegExp(`${name}:(\\d+)`))[1]);
  return { commands: field('total_commands_processed'), bytesOut: field('total_net_output_bytes') };
}));
const nodes = [];
const sockets = [];
try {
  for (let i = 0; i < NODES + IDLE; i++) {
    nodes.push(await startServer({ args: ['--redis-url', redis.url, '--metrics-token', TOKEN] }));
  }
  // One connection per node subscribing to that node's channels; counts what arrives.
  let arrived = 0;
  await Promise.all(nodes.slice(0, NODES).map((node, n) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/app/${app.key}?protocol=7`);
    sockets.push(ws);
    let confirmed = 0;
    ws.on('message', (data) => {
      const frame = JSON.parse(data);
      if (frame.event === 'pusher:connection_established') {
        for (let c = 0; c < CHANNELS; c++) {
          ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: `node${n}-c${c}` } }));
        }
      } else if (frame.event === 'pusher_internal:subscription_succeeded') {
        confirmed += 1;
        if (confirmed === CHANNELS) resolve();
      } else if (frame.event === 'tick') {
        arrived += 1;
      }
    });
    ws.on('error', reject);
  })));
  const channels = nodes.slice(0, NODES).flatMap((_, n) => Array.from({ length: CHANNELS }, (_, c) => `node${n}-c${c}`));
  const sdks = await Promise.all(nodes.map((node) => serverSdk(node)));
  const before = await Promise.all(nodes.map(async (node) => ({ cpu: cpuMs(node.process.pid), relayed: await relayed(node) })));
  const redisBefore = await redisInfo();
  const started = Date.now();
  // Batches of 10 (the API's limit), each through the next node in turn, 8 in flight.
  const batches = [];
  for (let e = 0; e < EVENTS; e += 10) {
    batches.push(Array.from({ length: Math.min(10, EVENTS - e) }, (_, k) => ({
      channel: channels[(e + k) % channels.length], name: 'tick', data: '{}',
    })));
  }
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < batches.length) {
      const b = next++;
      const res = await sdks[b % NODES].triggerBatch(batches[b]);
      if (res.status !== 200) throw new Error(`batch ${b}: ${res.status}`);
    }
  }));
  while (arrived < EVENTS && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 50));
  const seconds = (Date.now() - started) / 1000;
  const redisAfter = await redisInfo();
  for (const [n, node] of nodes.entries()) {
    console.log(JSON.stringify({
      node: n,
      own_channels: n < NODES ? CHANNELS : 0,
      cpu_ms: Math.round(cpuMs(node.process.pid) - before[n].cpu),
      redis_messages_received: (await relayed(node)) - before[n].relayed,
    }));
  }
  console.log(JSON.stringify({
    nodes: NODES,
    events: EVENTS,
    arrived,
    seconds,
    redis_commands: redisAfter.map((after, i) => after.commands - redisBefore[i].commands),
    redis_bytes_out: redisAfter.map((after, i) => after.bytesOut - redisBefore[i].bytesOut),
  }));
} finally {
  sockets.forEach((ws) => ws.terminate());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
}
