// Idle sockets cannot starve the server: with its open-file limit at 256, 400 TCP connections
// that never send a byte do not stop /up or new WebSockets for longer than the request-head
// deadline (10 s), and the server closes every one of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import Pusher from 'pusher-js';
import {
  startServer, clientOptions, connected, once, eventually,
} from '../lib/server.mjs';

const FD_LIMIT = 256;
const IDLE = 400;

test(`${IDLE} silent sockets under ulimit -n ${FD_LIMIT} do not stop /up or new WebSockets`, async () => {
  const server = await startServer({ fdLimit: FD_LIMIT });
  const sockets = [];
  let client;
  try {
    const closed = [];
    await Promise.all(Array.from({ length: IDLE }, () => new Promise((resolve) => {
      const socket = net.connect(server.port, '127.0.0.1', resolve);
      socket.on('error', () => resolve());
      socket.on('close', () => closed.push(socket));
      sockets.push(socket);
    })));
    const started = Date.now();
    await eventually(async () => {
      const up = await fetch(`${server.url}/up`, { signal: AbortSignal.timeout(1000) });
      assert.equal(up.status, 200);
    }, 15_000, 250);
    const upAfter = Date.now() - started;
    client = new Pusher(server.app.key, clientOptions(server));
    await connected(client, 15_000);
    const channel = client.subscribe('after-the-flood');
    await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');
    // Those beyond the fd limit wait in the backlog for a slot, then for their own deadline: two
    // rounds of 10 s, more on a loaded machine.
    await eventually(() => assert.equal(closed.length, IDLE, `${closed.length} of ${IDLE} closed`), 40_000, 250);
    console.log(`# /up answered after ${upAfter} ms; all ${IDLE} silent sockets closed after ${Date.now() - started} ms`);
  } finally {
    client?.disconnect();
    sockets.forEach((s) => s.destroy());
    await server.stop();
  }
});
