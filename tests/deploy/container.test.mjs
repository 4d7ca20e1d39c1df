// The container image as users run it: scripts/image builds it (a static binary FROM scratch;
// it starts dockerd and installs what is missing), then two containers on the host network
// share a Redis on the host, one configured by Reverb's environment names, one by a mounted
// TOML file. A pusher-js client on one hears an event sent through the other; the image's
// health check turns healthy; `docker stop` closes the client with 4200 and the container exits
// 0. Prints the image's size and the time from `docker run` to /up answering.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import PusherJs from 'pusher-js';
import {
  app, clientOptions, connected, eventually, freePort, once, serverSdk, startRedis,
} from '../lib/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const IMAGE = 'overtone:test';
const names = [`overtone-test-a-${process.pid}`, `overtone-test-b-${process.pid}`];
const docker = async (...args) => (await promisify(execFile)('docker', args)).stdout.trim();
const dir = mkdtempSync(path.join(tmpdir(), 'overtone-container-'));

let redis;
const nodes = [];
const clients = [];

before(async () => {
  execFileSync(path.join(root, 'scripts/image'), [IMAGE], { stdio: ['ignore', 'inherit', 'inherit'] });
  redis = await startRedis();
}, { timeout: 30 * 60_000 });

after(async () => {
  clients.forEach((c) => c.disconnect());
  await Promise.all(names.map((name) => docker('rm', '--force', name).catch(() => {})));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a container of the image on the host network; resolves once its /up answers 200. */
async function run(name, port, flags) {
  const started = Date.now();
  await docker('run', '--detach', '--name', name, '--network', 'host', '--health-interval', '1s',
    ...flags, IMAGE);
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => assert.equal((await fetch(`${url}/up`)).status, 200), 10_000, 10);
  const node = { name, host: '127.0.0.1', port, url, app, startup: Date.now() - started };
  nodes.push(node);
  return node;
}

test('the image: static, unprivileged, small', async () => {
  const [user, size] = (await docker('image', 'inspect', IMAGE, '--format', '{{.Config.User}} {{.Size}}')).split(' ');
  assert.equal(user, '10001:10001');
  console.log(`# image ${IMAGE}: ${(Number(size) / 1024 / 1024).toFixed(1)} MiB`);
  assert.ok(Number(size) < 30 * 1024 * 1024, `${size} bytes`);
});

test('two containers on one Redis: configured by REVERB_* and by a TOML file', async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await run(names[0], portA, [
    '--env', 'OVERTONE_HOST=127.0.0.1', '--env', `OVERTONE_PORT=${portA}`,
    '--env', `REVERB_APP_ID=${app.id}`, '--env', `REVERB_APP_KEY=${app.key}`,
    '--env', `REVERB_APP_SECRET=${app.secret}`, '--env', `OVERTONE_REDIS_URL=${redis.url}`,
  ]);
  const config = path.join(dir, 'overtone.toml');
  writeFileSync(config, `[server]\nhost = "127.0.0.1"\nport = ${portB}\nredis_url = "${redis.url}"\n\n`
    + `[[apps]]\nid = "${app.id}"\nkey = "${app.key}"\nsecret = "${app.secret}"\n`);
  chmodSync(config, 0o644);
  chmodSync(dir, 0o755);
  const b = await run(names[1], portB, [
    '--volume', `${config}:/etc/overtone.toml:ro`, '--env', 'OVERTONE_CONFIG=/etc/overtone.toml',
    // The image's OVERTONE_HOST (0.0.0.0) would win over the file's host.
    '--env', 'OVERTONE_HOST=127.0.0.1',
  ]);
  console.log(`# docker run to /up answering: ${a.startup} ms and ${b.startup} ms`);

  const client = new PusherJs(app.key, clientOptions(a, { activityTimeout: 60000 }));
  clients.push(client);
  await connected(client);
  const channel = client.subscribe('containers');
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');
  const got = once((cb) => channel.bind('news', cb), 10000, 'event through the other container');
  const sdk = await serverSdk(b);
  await eventually(async () => {
    await sdk.trigger('containers', 'news', { from: 'b' });
    await Promise.race([got, new Promise((resolve, reject) => setTimeout(() => reject(new Error('not yet')), 300))]);
  }, 5000, 0);
  assert.deepEqual(await got, { from: 'b' });

  await eventually(async () => assert.equal(
    await docker('inspect', '--format', '{{.State.Health.Status}}', a.name), 'healthy',
  ), 10_000, 250);
});

test('docker stop: the client is closed with 4200, the container exits 0', async () => {
  const [a] = nodes;
  const socket = clients[0].connection.connection.transport.socket;
  const closed = once((cb) => socket.addEventListener('close', (e) => cb(e.code)), 15000, 'close');
  const stopped = docker('stop', '--time', '20', a.name);
  assert.equal(await closed, 4200);
  clearTimeout(socket._closeTimer);
  await stopped;
  assert.equal(await docker('inspect', '--format', '{{.State.ExitCode}}', a.name), '0');
});
