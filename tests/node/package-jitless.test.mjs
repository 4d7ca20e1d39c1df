// The built package in Node without WebAssembly (`node --jitless`, as runtimes like React
// Native's Hermes): given npm `ws` as its WebSocket, the client runs from the wasm's JavaScript
// twin, connects, subscribes and receives an event published through the HTTP API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverSdk, startServer } from '../lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageEntry = path.resolve(here, '../../pkg-js/dist/index.js');

// The app, run in a child `node --jitless`: prints one JSON line per thing it hears.
const app = `
  const { default: Echo } = await import(${JSON.stringify(packageEntry)});
  const { WebSocket } = await import('ws');
  const print = (line) => console.log(JSON.stringify(line));
  print({ webAssembly: typeof WebAssembly });
  const [port, key] = process.argv.slice(-2);
  const echo = new Echo({ broadcaster: 'reverb', key, wsHost: '127.0.0.1', wsPort: Number(port), forceTLS: false, WebSocket });
  echo.channel('news')
    .subscribed(() => print({ subscribed: 'news' }))
    .listen('.posted', (data) => { print({ event: data }); echo.disconnect(); });
`;

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

test('node --jitless receives an event through the JavaScript twin', async () => {
  const sdk = await serverSdk(server);
  const child = spawn(process.execPath, ['--jitless', '--input-type=module', '-e', app, '--', String(server.port), server.app.key], {
    cwd: here,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = [];
  let buffered = '';
  const heard = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no event; heard ${JSON.stringify(lines)}`)), 15000);
    child.stdout.on('data', async (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        if (line.subscribed) await sdk.trigger('news', 'posted', { id: 7 });
        if (line.event) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  try {
    await heard;
  } finally {
    child.kill();
  }
  assert.deepEqual(lines, [{ webAssembly: 'undefined' }, { subscribed: 'news' }, { event: { id: 7 } }]);
});
