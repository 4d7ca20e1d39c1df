#!/usr/bin/env node
// Browser client benchmark (by hand, not part of the test suites): how many events per second
// get from the socket to the app's callback, and how much main-thread time each costs, for
//   bare  - a bare WebSocket whose onmessage only counts (Chromium's own floor),
//   parse - a bare WebSocket that reads each frame's text and JSON.parses it and its data
//           (the least a Pusher client does per event),
//   echo  - laravel-echo 2.5 + pusher-js 8.6 (tests/node_modules),
//   ours  - the overtone package as built in pkg-js/dist (scripts/lib.sh build_package),
//   twin  - the same package where WebAssembly cannot run: its wasm2js JavaScript twin,
//   base  - another build of the package (`--base DIR`, e.g. a copy of pkg-js/dist made before a
//           change), for a before/after in one sitting; `basetwin`: its twin,
// in the same headless Debian Chromium, at normal speed and with the page's CPU throttled
// (CDP Emulation.setCPUThrottlingRate). A stub server (a child process) answers the Pusher
// handshake and then writes pre-built event frames as fast as the socket drains, so the
// server is never the bottleneck.
//
//   node tests/bench/browser.mjs [--events 50000] [--size 100] [--runs 3] [--throttle 1,4]
//                                [--pages bare,parse,echo,ours,twin] [--time-domain timeTicks|threadTicks]
//                                [--base DIR] [--profile] [--quick]
//
// Prints one JSON line per run on stdout, then a table of medians (progress on stderr).
//
// Chromium is driven over its DevTools pipe directly, not through Playwright: Playwright
// enables the Network domain on every page, and DevTools network tracking copies every
// WebSocket frame, which halves the event rate. Nothing here enables it.
//
// Main-thread time is CDP Performance.getMetrics TaskDuration (every task on the renderer's
// main thread: WebSocket message dispatch, parsing, the libraries, the callback) and
// ScriptDuration (JavaScript alone), taken right before the stub starts sending and after the
// last event reached the callback, divided by the events. Events/s is first to last callback.
import { spawn, fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const MODULES = path.join(ROOT, 'tests/node_modules');
const PACKAGE = path.join(ROOT, 'pkg-js/dist');
// `--base DIR`, passed on to the stub: the package the `base` page loads.
const BASE = process.env.OVERTONE_BENCH_BASE;
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const KEY = 'bench-key';
const CHANNEL = 'bench';
const EVENT = 'bench-event';

if (process.argv[2] === '--stub') {
  stub();
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

// ---------------------------------------------------------------------------------------------
// The stub server: static files for the pages, and a Pusher handshake followed by a blast.

function stub() {
  let plan = null; // {events, size}
  let waiting = null; // resolves when the runner says go
  const files = {
    '/lib/pusher.min.js': path.join(MODULES, 'pusher-js/dist/web/pusher.min.js'),
    '/lib/echo.iife.js': path.join(MODULES, 'laravel-echo/dist/echo.iife.js'),
  };
  const types = { '.js': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.map': 'application/json' };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let file = files[url.pathname];
    for (const [prefix, dir] of [['/pkg/', PACKAGE], ['/base/', BASE]]) {
      if (dir && url.pathname.startsWith(prefix)) {
        file = path.join(dir, path.normalize(url.pathname.slice(prefix.length)).replace(/^(\.\.[/\\])+/, ''));
      }
    }
    if (url.pathname.startsWith('/page/')) {
      res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' });
      return res.end(page(url.pathname.slice(6), server.address().port, Number(url.searchParams.get('events'))));
    }
    if (!file || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });

  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1')
      .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
      .digest('base64');
    socket.setNoDelay(true);
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const send = (obj) => socket.write(wsFrame(Buffer.from(JSON.stringify(obj))));
    send({ event: 'pusher:connection_established', data: JSON.stringify({ socket_id: '1.1', activity_timeout: 120 }) });
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      let message;
      while ((message = readClientFrame(pending))) {
        pending = pending.subarray(message.used);
        if (message.opcode === 8) return socket.end();
        if (message.opcode !== 1) continue;
        const frame = JSON.parse(message.payload.toString());
        if (frame.event === 'pusher:subscribe') {
          send({ event: 'pusher_internal:subscription_succeeded', channel: frame.data.channel, data: '{}' });
          new Promise((resolve) => {
            waiting = resolve;
            process.send({ subscribed: true });
          }).then(() => blast(socket, plan));
        } else if (frame.event === 'pusher:ping') {
          send({ event: 'pusher:pong', data: '{}' });
        }
      }
    });
    socket.on('error', () => {});
  });

  process.on('disconnect', () => process.exit());
  process.on('message', (message) => {
    if (message.plan) plan = message.plan;
    if (message.go) waiting?.();
  });
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

/** An unmasked server text frame. */
function wsFrame(payload) {
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x81, length]) : Buffer.from([0x81, 126, length >> 8, length & 0xff]);
  return Buffer.concat([header, payload]);
}

/** One masked client frame from the front of `buf`, or null if it is not all there. */
function readClientFrame(buf) {
  if (buf.length < 2) return null;
  const opcode = buf[0] & 0x0f;
  let length = buf[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    length = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = buf[1] & 0x80;
  const mask = masked ? buf.subarray(offset, offset + 4) : null;
  if (masked) offset += 4;
  if (buf.length < offset + length) return null;
  const payload = Buffer.from(buf.subarray(offset, offset + length));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return { opcode, payload, used: offset + length };
}

/** Writes `events` identical event frames (data of `size` bytes) as fast as the socket drains. */
async function blast(socket, { events, size }) {
  const data = JSON.stringify({ n: 1, text: 'x'.repeat(Math.max(0, size - 19)) });
  const frame = wsFrame(Buffer.from(JSON.stringify({ event: EVENT, channel: CHANNEL, data })));
  const perChunk = Math.max(1, Math.floor(65536 / frame.length));
  const chunk = Buffer.concat(Array(perChunk).fill(frame));
  let sent = 0;
  while (sent < events && !socket.destroyed) {
    const n = Math.min(perChunk, events - sent);
    const ok = socket.write(n === perChunk ? chunk : chunk.subarray(0, n * frame.length));
    sent += n;
    if (!ok) await new Promise((resolve) => socket.once('drain', resolve));
  }
}

/** The page for one client; `window.bench.done` resolves when `events` reached the callback. */
function page(kind, port, events) {
  const common = `
    const bench = (window.bench = { count: 0, first: 0, last: 0 });
    bench.done = new Promise((resolve) => (bench.resolve = resolve));
    bench.ready = new Promise((resolve) => (bench.subscribed = resolve));
    window.onEvent = () => {
      const now = performance.now();
      if (bench.count++ === 0) bench.first = now;
      bench.last = now;
      if (bench.count === ${events}) bench.resolve();
    };`;
  const options = `{ broadcaster: 'reverb', key: '${KEY}', wsHost: '127.0.0.1', wsPort: ${port}, forceTLS: false, enabledTransports: ['ws'] }`;
  const ours = (dir) => `<script type="module">${common}
      import Echo from '/${dir}/index.js';
      const echo = new Echo(${options});
      echo.channel('${CHANNEL}').subscribed(() => bench.subscribed()).listen('.${EVENT}', onEvent);
    </script>`;
  const clients = {
    // Counts messages after the handshake; sends the subscribe by hand.
    bare: `<script>${common}
      let seen = 0;
      const ws = new WebSocket('ws://127.0.0.1:${port}/app/${KEY}?protocol=7');
      ws.onmessage = () => {
        if (++seen > 2) return onEvent();
        if (seen === 1) ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: '${CHANNEL}' } }));
        else bench.subscribed();
      };
    </script>`,
    // The least any Pusher client does per event: read the text, parse the frame and its
    // double-encoded data, call the callback.
    parse: `<script>${common}
      let seen = 0;
      const ws = new WebSocket('ws://127.0.0.1:${port}/app/${KEY}?protocol=7');
      ws.onmessage = (message) => {
        const frame = JSON.parse(message.data);
        if (++seen > 2) return onEvent(JSON.parse(frame.data));
        if (seen === 1) ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: '${CHANNEL}' } }));
        else bench.subscribed();
      };
    </script>`,
    echo: `<script src="/lib/pusher.min.js"></script><script src="/lib/echo.iife.js"></script><script>${common}
      const echo = new Echo.default(${options});
      echo.channel('${CHANNEL}').subscribed(() => bench.subscribed()).listen('.${EVENT}', onEvent);
    </script>`,
    ours: ours('pkg'),
    // As on a page whose CSP forbids WebAssembly: the package falls back to the twin.
    twin: `<script>delete globalThis.WebAssembly;</script>${ours('pkg')}`,
    base: ours('base'),
    basetwin: `<script>delete globalThis.WebAssembly;</script>${ours('base')}`,
  };
  return `<!doctype html><meta charset="utf-8"><title>${kind}</title>${clients[kind]}`;
}

// ---------------------------------------------------------------------------------------------
// Chromium over the DevTools pipe (fd 3 to the browser, fd 4 from it; messages end in \0).

class Browser {
  constructor() {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'overtone-bench-'));
    this.proc = spawn(
      CHROMIUM,
      [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
        '--disable-backgrounding-occluded-windows', '--disable-extensions', '--mute-audio',
        `--user-data-dir=${this.dir}`, '--remote-debugging-pipe', 'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
    );
    this.next = 1;
    this.calls = new Map();
    this.events = [];
    let buffered = '';
    this.proc.stdio[4].on('data', (chunk) => {
      buffered += chunk.toString();
      let end;
      while ((end = buffered.indexOf('\0')) >= 0) {
        const message = JSON.parse(buffered.slice(0, end));
        buffered = buffered.slice(end + 1);
        const call = this.calls.get(message.id);
        if (call) {
          this.calls.delete(message.id);
          if (message.error) call.reject(new Error(`${call.method}: ${message.error.message}`));
          else call.resolve(message.result);
        }
      }
    });
  }

  send(method, params = {}, sessionId) {
    const id = this.next++;
    this.proc.stdio[3].write(JSON.stringify({ id, method, params, sessionId }) + '\0');
    return new Promise((resolve, reject) => this.calls.set(id, { resolve, reject, method }));
  }

  /** A new tab and a session attached to it. */
  async newPage() {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const call = (method, params) => this.send(method, params, sessionId);
    const evaluate = async (expression) => {
      const { result, exceptionDetails } = await call('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
      if (exceptionDetails) throw new Error(`page: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
      return result.value;
    };
    const close = () => this.send('Target.closeTarget', { targetId });
    return { call, evaluate, close };
  }

  async close() {
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill();
    await exited;
    // Chromium's helper processes may still write its profile for a moment after it exits.
    for (let attempt = 1; ; attempt += 1) {
      try {
        return rmSync(this.dir, { recursive: true, force: true });
      } catch (err) {
        if (attempt === 20) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const args = { timeDomain: 'timeTicks', profile: false, events: 50000, size: 100, runs: 3, throttle: [1, 4], pages: ['bare', 'parse', 'echo', 'ours', 'twin'] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    if (flag === '--events') args.events = Number(value());
    else if (flag === '--size') args.size = Number(value());
    else if (flag === '--runs') args.runs = Number(value());
    else if (flag === '--throttle') args.throttle = value().split(',').map(Number);
    else if (flag === '--pages') args.pages = value().split(',');
    else if (flag === '--base') args.base = path.resolve(value());
    else if (flag === '--profile') args.profile = true;
    else if (flag === '--quick') Object.assign(args, { events: 2000, runs: 1, throttle: [1] });
    else if (flag === '--time-domain') args.timeDomain = value();
    else throw new Error(`unknown flag ${flag}`);
  }
  return args;
}

const metric = (metrics, name) => metrics.find((m) => m.name === name).value;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const withTimeout = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if ((args.pages.includes('ours') || args.pages.includes('twin')) && !existsSync(path.join(PACKAGE, 'index.js'))) {
    throw new Error('pkg-js/dist is not built: source scripts/lib.sh and run build_package');
  }
  if (args.pages.some((page) => page.startsWith('base')) && !existsSync(path.join(args.base ?? '', 'index.js'))) {
    throw new Error('the base page needs --base DIR, a built package (a copy of pkg-js/dist)');
  }
  const server = fork(fileURLToPath(import.meta.url), ['--stub'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, OVERTONE_BENCH_BASE: args.base ?? '' },
  });
  const messages = [];
  let wake = () => {};
  server.on('message', (m) => {
    messages.push(m);
    wake();
  });
  const nextMessage = async (key) => {
    for (;;) {
      const i = messages.findIndex((m) => key in m);
      if (i >= 0) return messages.splice(i, 1)[0];
      await new Promise((resolve) => (wake = resolve));
    }
  };
  const { port } = await nextMessage('port');
  const browser = new Browser();
  const results = [];
  try {
    for (let run = 1; run <= args.runs; run++) {
      for (const throttle of args.throttle) {
        for (const kind of args.pages) {
          server.send({ plan: { events: args.events, size: args.size } });
          const tab = await browser.newPage();
          await tab.call('Performance.enable', { timeDomain: args.timeDomain });
          await tab.call('Emulation.setCPUThrottlingRate', { rate: throttle });
          await tab.call('Page.navigate', { url: `http://127.0.0.1:${port}/page/${kind}?events=${args.events}` });
          await withTimeout(nextMessage('subscribed'), 20000, `${kind} subscribing`);
          await withTimeout(tab.evaluate('window.bench.ready'), 20000, `${kind} subscribed callback`);
          if (args.profile) {
            await tab.call('Profiler.enable');
            await tab.call('Profiler.setSamplingInterval', { interval: 100 });
            await tab.call('Profiler.start');
          }
          const before = (await tab.call('Performance.getMetrics')).metrics;
          server.send({ go: true });
          await withTimeout(tab.evaluate('window.bench.done'), 120000, `${kind} receiving ${args.events} events`);
          const after = (await tab.call('Performance.getMetrics')).metrics;
          if (args.profile) printProfile(kind, throttle, (await tab.call('Profiler.stop')).profile);
          const page = await tab.evaluate('({ count: bench.count, first: bench.first, last: bench.last })');
          await tab.close();
          const per1k = (name) => ((metric(after, name) - metric(before, name)) * 1000 * 1000) / page.count;
          const result = {
            page: kind,
            throttle,
            events: page.count,
            size: args.size,
            events_per_s: Math.round((page.count - 1) / ((page.last - page.first) / 1000)),
            task_ms_per_1k: round(per1k('TaskDuration'), 2),
            script_ms_per_1k: round(per1k('ScriptDuration'), 2),
            run,
          };
          results.push(result);
          console.log(JSON.stringify(result));
        }
      }
    }
  } finally {
    await browser.close();
    server.kill();
  }
  table(results, args);
}

/** The functions with the most samples of their own in a CDP CPU profile (--profile). */
function printProfile(kind, throttle, profile) {
  const self = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const name = `${functionName || '(anonymous)'} ${url.split('/').pop()}:${lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + (node.hitCount ?? 0));
    total += node.hitCount ?? 0;
  }
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.error(`\nprofile of ${kind} at ${throttle}x: share of ${total} samples`);
  for (const [name, hits] of top) console.error(`${((hits * 100) / total).toFixed(1).padStart(6)} %  ${name}`);
}

function table(results, args) {
  const rows = [];
  for (const throttle of args.throttle) {
    for (const kind of args.pages) {
      const runs = results.filter((r) => r.page === kind && r.throttle === throttle);
      rows.push({
        page: kind,
        throttle: `${throttle}x`,
        'events/s': Math.round(median(runs.map((r) => r.events_per_s))),
        'main-thread ms / 1k': round(median(runs.map((r) => r.task_ms_per_1k)), 2),
        'script ms / 1k': round(median(runs.map((r) => r.script_ms_per_1k)), 2),
        runs: runs.map((r) => r.events_per_s).join(' '),
      });
    }
  }
  console.error(`\n${args.events} events of ${args.size} B data, medians of ${args.runs} run(s):`);
  // On stderr with the rest of the progress: stdout is the JSON lines.
  new console.Console(process.stderr).table(rows);
}
