// TLS on the server itself (--tls-cert, --tls-key): with a self-signed certificate made here by
// openssl, pusher-js (forceTLS, wss://) and the `pusher` SDK (useTLS, https://) talk to one port;
// a new certificate is taken on SIGHUP and on a file change while the connected client stays
// connected; a pair that does not load is refused at start and kept out on reload; clients that
// never finish their handshake are dropped at the request-head deadline without starving the
// port; SIGTERM still closes wss:// clients with 4200.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher';
import {
  app, binary, eventually, once, startServer,
} from '../lib/server.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'overtone-tls-'));
const files = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
const tlsArgs = ['--tls-cert', files.cert, '--tls-key', files.key];

/** A fresh self-signed certificate for 127.0.0.1 and localhost: {cert, key} PEM texts. */
function selfSigned(name) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

/** Puts a pair where the server reads it. */
function install({ cert, key }) {
  writeFileSync(files.cert, cert);
  writeFileSync(files.key, key);
}

const fingerprint = (pem) => new X509Certificate(pem).fingerprint256;

/** The fingerprint of the certificate a new handshake on `port` is shown. */
function presented(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

/** GET over https trusting `ca`: resolves with the status. */
function httpsStatus(url, ca, ms = 2000) {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { ca, timeout: ms }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** The `pusher` SDK over https, trusting the certificates in `ca`. */
const sdkFor = (server, ca) => new Pusher({
  appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(server.port),
  useTLS: true, agent: new https.Agent({ ca }),
});

/** pusher-js in a child process trusting `caFile`; `lines` collects what it reports. */
function tlsClient(server, caFile, channel) {
  const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../lib/tls-client.mjs');
  const child = spawn(process.execPath, [script, String(server.port), app.key, channel], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile, NODE_NO_WARNINGS: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = [];
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const complete = buffered.split('\n');
    buffered = complete.pop();
    lines.push(...complete.map((line) => JSON.parse(line)));
  });
  const seen = (match, ms = 5000) => eventually(() => assert.ok(lines.some(match), JSON.stringify(lines)), ms, 50);
  return { lines, seen, stop: () => child.stdin.end() };
}

const first = selfSigned('first');
let server;
let client;

before(async () => {
  install(first);
  writeFileSync(path.join(dir, 'first-ca.pem'), first.cert);
  server = await startServer({ args: tlsArgs });
});
after(async () => {
  client?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('pusher-js with forceTLS and the pusher SDK with useTLS share the one port', async () => {
  assert.match(server.url, /^https:/);
  assert.equal(await httpsStatus(`${server.url}/ready`, first.cert), 200);
  client = tlsClient(server, path.join(dir, 'first-ca.pem'), 'secure-news');
  await client.seen((l) => l.subscribed === 'secure-news');
  await sdkFor(server, first.cert).trigger('secure-news', 'update', { n: 1 });
  await client.seen((l) => l.event === 'update' && l.data.n === 1);
  // Plain HTTP on the TLS port gets no answer, only a closed connection.
  await assert.rejects(fetch(`http://127.0.0.1:${server.port}/up`, { signal: AbortSignal.timeout(3000) }));
});

test('a new certificate is served after SIGHUP and after a file change; connections stay', async () => {
  assert.equal(await presented(server.port), fingerprint(first.cert));
  const second = selfSigned('second');
  install(second);
  server.process.kill('SIGHUP');
  await eventually(async () => assert.equal(await presented(server.port), fingerprint(second.cert)), 1500, 50);

  const third = selfSigned('third');
  install(third);
  await eventually(async () => assert.equal(await presented(server.port), fingerprint(third.cert)), 6000, 200);

  // The client connected under the first certificate is still there and still hears events.
  const sdk = sdkFor(server, [first.cert, third.cert]);
  await sdk.trigger('secure-news', 'update', { n: 2 });
  await client.seen((l) => l.event === 'update' && l.data.n === 2);
  assert.ok(!client.lines.some((l) => 'closed' in l), JSON.stringify(client.lines));

  // A key that is not the certificate's is refused: the third pair stays in use.
  writeFileSync(files.key, selfSigned('stray').key);
  server.process.kill('SIGHUP');
  await new Promise((resolve) => setTimeout(resolve, 2500));
  assert.equal(await presented(server.port), fingerprint(third.cert));
  assert.equal(await httpsStatus(`${server.url}/up`, third.cert), 200);
  install(third);
});

test('SIGTERM closes wss:// clients with 4200 and the server exits 0', async () => {
  const exited = once((cb) => server.process.once('exit', cb), 15000, 'exit');
  server.process.kill('SIGTERM');
  await client.seen((l) => l.closed === 4200, 10000);
  assert.equal(await exited, 0);
});

test('a pair that does not load stops the start with a clear error', () => {
  const run = (args) => spawnSync(binary, ['serve', '--port', '0', ...args], { encoding: 'utf8', timeout: 10000 });
  const alone = run(['--tls-cert', files.cert]);
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /--tls-key/);
  writeFileSync(files.key, selfSigned('mismatch').key);
  const mismatched = run(tlsArgs);
  assert.notEqual(mismatched.status, 0);
  assert.match(mismatched.stderr, /TLS: .*cert\.pem with .*key\.pem/);
  const missing = run(['--tls-cert', path.join(dir, 'absent.pem'), '--tls-key', files.key]);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /cannot read .*absent\.pem/);
});

test('without TLS, SIGHUP (systemctl reload) does not end the server', async () => {
  const plain = await startServer();
  try {
    plain.process.kill('SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(plain.process.exitCode, null);
    assert.equal((await fetch(`${plain.url}/up`)).status, 200);
  } finally {
    await plain.stop();
  }
});

const FD_LIMIT = 256;
const STALLED = 400;

test(`${STALLED} handshakes never finished under ulimit -n ${FD_LIMIT} do not starve the TLS port`, async () => {
  const pair = selfSigned('stalled');
  install(pair);
  const stalledServer = await startServer({ args: tlsArgs, fdLimit: FD_LIMIT });
  const sockets = [];
  try {
    const closed = [];
    // Half send nothing, half the first bytes of a ClientHello and nothing more.
    await Promise.all(Array.from({ length: STALLED }, (_, i) => new Promise((resolve) => {
      const socket = net.connect(stalledServer.port, '127.0.0.1', () => {
        if (i % 2) socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        resolve();
      });
      socket.on('error', () => resolve());
      socket.on('close', () => closed.push(socket));
      sockets.push(socket);
    })));
    const started = Date.now();
    await eventually(async () => assert.equal(await httpsStatus(`${stalledServer.url}/up`, pair.cert, 2000), 200), 25_000, 250);
    const upAfter = Date.now() - started;
    await eventually(() => assert.equal(closed.length, STALLED, `${closed.length} of ${STALLED} closed`), 25_000, 250);
    console.log(`# https /up answered after ${upAfter} ms; all ${STALLED} stalled handshakes closed after ${Date.now() - started} ms`);
  } finally {
    sockets.forEach((s) => s.destroy());
    await stalledServer.stop();
  }
});
