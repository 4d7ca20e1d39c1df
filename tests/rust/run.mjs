// Runs the Rust API's browser tests (client-wasm/tests/browser.rs) in headless Chromium through
// wasm-bindgen-test-runner and chromedriver, against real servers: two `overtone serve` nodes
// on one Redis (the clients use node A; node B publishes while A is down, into the history A
// replays when it is back). The tests drive this harness over HTTP:
//   GET  /config            -> {wsPort, key}: node A
//   POST /auth?user=N       -> a channel signature for user N (401 for channels naming
//                              "forbidden"), as a Laravel auth endpoint answers
//   POST /publish           {channel, event, data} through node B
//   POST /kill, POST /start node A: SIGKILL, then started again on its port
// Exits with cargo's status; its output carries cargo's "test result:" line.
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, freePort, serverSdk, startRedis, startServer } from '../lib/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const redis = await startRedis();
const nodeArgs = ['--redis-url', redis.url];
let nodeA = await startServer({ args: nodeArgs });
const nodeB = await startServer({ args: nodeArgs });
const sdk = await serverSdk(nodeB);

/** Reads a request's body as text. */
const body = (request) =>
  new Promise((resolve) => {
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => resolve(text));
  });

async function answer(request, url) {
  switch (`${request.method} ${url.pathname}`) {
    case 'GET /config':
      return [200, { wsPort: nodeA.port, key: app.key }];
    case 'POST /auth': {
      const form = new URLSearchParams(await body(request));
      const channel = form.get('channel_name');
      const user = url.searchParams.get('user');
      if (channel.includes('forbidden')) return [401, { message: 'Forbidden' }];
      if (channel.startsWith('presence-')) {
        return [200, sdk.authorizeChannel(form.get('socket_id'), channel, { user_id: user, user_info: { name: `user-${user}` } })];
      }
      return [200, sdk.authorizeChannel(form.get('socket_id'), channel)];
    }
    case 'POST /publish': {
      const { channel, event, data } = JSON.parse(await body(request));
      await sdk.trigger(channel, event, data);
      return [200, {}];
    }
    case 'POST /kill':
      nodeA.process.kill('SIGKILL');
      await new Promise((resolve) => (nodeA.process.exitCode !== null || nodeA.process.signalCode !== null ? resolve() : nodeA.process.once('exit', resolve)));
      return [200, {}];
    case 'POST /start':
      nodeA = await startServer({ args: nodeArgs, port: nodeA.port });
      return [200, {}];
    default:
      return [404, { message: 'no such harness route' }];
  }
}

const harness = http.createServer(async (request, response) => {
  const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': '*', 'Access-Control-Allow-Methods': 'GET, POST' };
  if (request.method === 'OPTIONS') return response.writeHead(204, cors).end();
  let status, reply;
  try {
    [status, reply] = await answer(request, new URL(request.url, 'http://harness'));
  } catch (error) {
    [status, reply] = [500, { message: String(error) }];
  }
  response.writeHead(status, { ...cors, 'Content-Type': 'application/json' }).end(JSON.stringify(reply));
});
const harnessPort = await freePort();
await new Promise((resolve) => harness.listen(harnessPort, '127.0.0.1', resolve));

const cargo = spawn(
  'cargo',
  ['test', '-p', 'overtone-client', '--features', 'web', '--target', 'wasm32-unknown-unknown', '--test', 'browser'],
  {
    // webdriver.json (Chromium's flags for running as root, headless) is read from here.
    cwd: path.join(root, 'client-wasm'),
    stdio: 'inherit',
    env: {
      ...process.env,
      OVERTONE_HARNESS: `http://127.0.0.1:${harnessPort}`,
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER: 'wasm-bindgen-test-runner',
      CHROMEDRIVER: process.env.CHROMEDRIVER ?? '/usr/bin/chromedriver',
      WASM_BINDGEN_TEST_TIMEOUT: '180',
    },
  },
);
const status = await new Promise((resolve) => cargo.on('exit', (code) => resolve(code ?? 1)));

harness.close();
await Promise.all([nodeA.stop(), nodeB.stop()]);
await redis.stop();
process.exit(status);
