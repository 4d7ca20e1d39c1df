// Starts a real `overtone serve` on a free loopback port for one test file, and stops it; or,
// for pages served from the same origin, `overtone-demo`: the same server with the demo added.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { before, after } from 'node:test';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The `overtone` binary the tests run. */
export const binary = process.env.OVERTONE_BIN ?? path.join(root, 'target/debug/overtone');
const demoBinary = process.env.OVERTONE_DEMO_BIN ?? path.join(root, 'target/debug/overtone-demo');

export const app = { id: 'test-app', key: 'test-key', secret: 'test-secret' };

/**
 * Starts the server; resolves once it prints its address.
 * @param {{args?: string[], env?: Record<string,string>, port?: number, fdLimit?: number, demo?: {site?: string, packageDir?: string}}} [options]
 *   `port`: 0 (any free one) unless given, e.g. to restart a server where its clients expect
 *   it; `fdLimit`: the server's open-file limit (`ulimit -n`), if given; `demo`: run
 *   `overtone-demo` instead, serving the demo site (or the folder `site`) at `/` and the built
 *   package (or `packageDir`) at `/pkg/`
 * `url` is the HTTP API's base (https:// when the server serves TLS).
 * @returns {Promise<{host: string, port: number, url: string, app: typeof app, stop: () => Promise<void>, process: import('node:child_process').ChildProcess}>}
 */
export async function startServer({ args = [], env = {}, port = 0, fdLimit, demo } = {}) {
  const appArgs = ['--app-id', app.id, '--app-key', app.key, '--app-secret', app.secret];
  return spawnServer([...appArgs, ...args], env, app, port, demo, fdLimit);
}

/**
 * Starts the server with only `args` and `env` (no `--app-*` flags), e.g. to read apps from a
 * config file or Reverb's environment; `serverApp` is the app the returned handle reports.
 */
export async function startServerWithoutApp({ args = [], env = {}, serverApp = app, port = 0, demo } = {}) {
  return spawnServer(args, env, serverApp, port, demo);
}

async function spawnServer(args, env, serverApp, listenPort, demo, fdLimit = undefined) {
  const server = demo
    ? [demoBinary, ...(demo.site ? ['--site-dir', demo.site] : []), ...(demo.packageDir ? ['--package-dir', demo.packageDir] : [])]
    : [binary, 'serve'];
  const command = [...server, '--port', String(listenPort), ...args];
  const child = spawn(
    ...(fdLimit === undefined
      ? [command[0], command.slice(1)]
      : ['bash', ['-c', `ulimit -n ${Number(fdLimit)} && exec "$@"`, 'overtone', ...command]]),
    { cwd: root, env: { ...process.env, OVERTONE_LOG: 'overtone_server=warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [scheme, port] = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`overtone did not start: ${out}`)), 15000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/listening on (wss?):\/\/[\d.]+:(\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve([match[1], Number(match[2])]);
      }
    });
    child.on('exit', (code) => reject(new Error(`overtone exited with ${code}: ${out}`)));
  });
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
  const http = scheme === 'wss' ? 'https' : 'http';
  return { host: '127.0.0.1', port, url: `${http}://127.0.0.1:${port}`, app: serverApp, stop, process: child };
}

/** A `pusher` (server SDK) client pointed at the started server. */
export async function serverSdk(server) {
  const { default: Pusher } = await import('pusher');
  return new Pusher({
    appId: server.app.id,
    key: server.app.key,
    secret: server.app.secret,
    host: server.host,
    port: String(server.port),
    useTLS: false,
  });
}

/** pusher-js options for the started server (plain ws, no stats, no fallbacks). */
export function clientOptions(server, extra = {}) {
  return {
    cluster: 'mt1',
    wsHost: server.host,
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...extra,
  };
}

/** Resolves with the first argument `register` hands to its callback, or rejects after `ms`. */
export function once(register, ms = 5000, what = 'event') {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * pusher-js options whose channel authorization (and user sign-in) is signed in-process with
 * the `pusher` server SDK, so no HTTP auth endpoint is needed. `user` ({id, info, watchlist?})
 * is who the client joins presence channels and signs in as.
 */
export function signedClientOptions(server, sdk, { user, ...extra } = {}) {
  const attempt = (sign, callback) => {
    try {
      callback(null, sign());
    } catch (err) {
      callback(err, null);
    }
  };
  return clientOptions(server, {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) =>
        attempt(() => sdk.authorizeChannel(
          socketId,
          channelName,
          channelName.startsWith('presence-') && user ? { user_id: user.id, user_info: user.info } : undefined,
        ), callback),
    },
    userAuthentication: {
      customHandler: ({ socketId }, callback) =>
        attempt(() => sdk.authenticateUser(socketId, { id: user.id, user_info: user.info, watchlist: user.watchlist }), callback),
    },
    ...extra,
  });
}

/** Resolves once a pusher-js client is connected. */
export function connected(client, ms = 5000) {
  if (client.connection.state === 'connected') return Promise.resolve();
  return once((cb) => client.connection.bind('connected', cb), ms, 'connection');
}

/** Resolves with the next `pusher:error` data ({code, message}) a pusher-js client receives. */
export function nextPusherError(client, ms = 5000) {
  return once((cb) => client.connection.bind('message', (m) => m.event === 'pusher:error' && cb(m.data)), ms, 'pusher:error');
}

/** Resolves when `ms` have passed; for checking that something did NOT happen. */
export const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free loopback TCP port (bound, read, released). */
export async function freePort() {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts what the cluster tests meet on: one throwaway Redis, or with
 * `OVERTONE_TEST_REDIS=cluster` a 3-master Redis Cluster ([`startRedisCluster`]). Both handles
 * have `url` (what `--redis-url` takes), `stop()`, `restart()` (everything stopped and started
 * again, empty, on the same ports), `signal(name)` and `cli(...args)` (redis-cli's output; on a
 * cluster, following redirections).
 */
export function startRedis() {
  return process.env.OVERTONE_TEST_REDIS === 'cluster' ? startRedisCluster() : startRedisServer();
}

/** Whether the cluster tests run on a Redis Cluster (`OVERTONE_TEST_REDIS=cluster`). */
export const onRedisCluster = process.env.OVERTONE_TEST_REDIS === 'cluster';

/** Runs redis-cli against `port`; resolves with its output. */
async function redisCli(port, args) {
  const { stdout } = await promisify(execFile)('redis-cli', ['-p', String(port), ...args]);
  return stdout;
}

/**
 * Starts a throwaway `redis-server` (no persistence) on a free loopback port (`extra`: more
 * options); resolves once it accepts connections. `restart()` stops it and starts a fresh one
 * on the same port; `signal(name)` sends it a signal (SIGSTOP / SIGCONT: Redis stalled, then
 * back).
 */
export async function startRedisServer(extra = []) {
  const port = await freePort();
  let child;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10000);
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
    });
  };
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  await start();
  const handle = {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    signal: (name) => child.kill(name),
    cli: (...args) => redisCli(port, args),
    /** Every Redis server of it: this one. */
    shards: () => [handle],
    /** The server owning `key`: this one. */
    ownerOf: async () => handle,
  };
  return handle;
}

/**
 * Starts a throwaway 3-master Redis Cluster (no replicas, no persistence) on free loopback
 * ports; resolves once `cluster_state:ok`. Its `url` lists the three masters (comma-separated,
 * as `--redis-url` takes a cluster); `masters` are their handles (`port`, `stop()`, `start()`:
 * a master restarted keeps its cluster config file, so it rejoins with its slots, empty).
 */
export async function startRedisCluster() {
  const dir = mkdtempSync(path.join(tmpdir(), 'overtone-redis-cluster-'));
  // Kept while the test file runs: a cluster stopped can be started again.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const masters = [];
  for (let i = 0; i < 3; i += 1) {
    const bus = await freePort();
    // The config file is named after the bus port: the master's own port is only known inside.
    masters.push(await startRedisServer(['--cluster-enabled', 'yes', '--cluster-port', String(bus),
      '--cluster-config-file', path.join(dir, `nodes-${bus}.conf`), '--dir', dir]));
  }
  const [first] = masters;
  await first.cli('--cluster', 'create', ...masters.map((m) => `127.0.0.1:${m.port}`), '--cluster-replicas', '0', '--cluster-yes');
  const ready = async () => {
    for (const master of masters) await eventually(async () => {
      if (!(await master.cli('cluster', 'info')).includes('cluster_state:ok')) throw new Error(`cluster not ok on ${master.port}`);
    }, 20000, 50);
  };
  await ready();
  const stop = async () => {
    await Promise.all(masters.map((m) => m.stop()));
  };
  return {
    url: masters.map((m) => `redis://127.0.0.1:${m.port}`).join(','),
    port: first.port,
    masters,
    stop,
    restart: async () => {
      await stop();
      await Promise.all(masters.map((m) => m.start()));
      await ready();
    },
    signal: (name) => masters.forEach((m) => m.signal(name)),
    cli: (...args) => redisCli(first.port, ['-c', ...args]),
    shards: () => masters,
    /** The master owning `key`'s slot (from `CLUSTER NODES`: `id host:port@bus flags ... ranges`). */
    ownerOf: async (key) => {
      const slot = Number(await first.cli('cluster', 'keyslot', key));
      for (const line of (await first.cli('cluster', 'nodes')).trim().split('\n')) {
        const [, address, flags, , , , , , ...ranges] = line.split(' ');
        const port = Number(address.split('@')[0].split(':').at(-1));
        const owns = ranges.some((range) => {
          const [lo, hi = lo] = range.split('-').map(Number);
          return slot >= lo && slot <= hi;
        });
        if (flags.includes('master') && owns) return masters.find((m) => m.port === port);
      }
      throw new Error(`no master owns slot ${slot}`);
    },
  };
}

/** Starts `count` nodes of one cluster on `redis` (extra `args` for each). */
export async function startCluster(redis, count, { args = [], env = {} } = {}) {
  return Promise.all(Array.from({ length: count }, () => startServer({ args: ['--redis-url', redis.url, ...args], env })));
}

/**
 * A test file's server: `before` its tests, one `overtone serve` with the default test app and
 * a `pusher` SDK for it (the fixture's `server` and `sdk`); `after` them, `clients`
 * disconnected and the server stopped.
 */
export function useServer(clients) {
  const fixture = { server: null, sdk: null };
  before(async () => {
    fixture.server = await startServer();
    fixture.sdk = await serverSdk(fixture.server);
  });
  after(async () => {
    clients.forEach((c) => c.disconnect());
    await fixture.server?.stop();
  });
  return fixture;
}

/**
 * A test file's cluster: `before` its tests, a Redis and `count` nodes (pushed into `nodes`);
 * `after` them, `clients` disconnected and everything stopped. The returned fixture's `redis`
 * is set once started.
 */
export function useCluster(count, { nodes, clients }) {
  const fixture = { redis: null };
  before(async () => {
    fixture.redis = await startRedis();
    nodes.push(...(await startCluster(fixture.redis, count)));
  });
  after(async () => {
    clients.forEach((c) => c.disconnect());
    await Promise.all(nodes.map((n) => n.stop()));
    await fixture.redis?.stop();
  });
  return fixture;
}

/** Retries `attempt` (an async function that throws until it succeeds) for up to `ms`. */
export async function eventually(attempt, ms = 10000, every = 200) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, every));
    }
  }
}

/**
 * A TCP load balancer on a free loopback port in front of `servers`: each connection goes to
 * the first server that accepts it, so a stopped or killed node's clients reconnect to another.
 */
export async function startBalancer(servers) {
  const net = await import('node:net');
  const sockets = new Set();
  const proxy = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const tryFrom = (i) => {
      if (i >= servers.length) return client.destroy();
      const upstream = net.connect(servers[i].port, '127.0.0.1');
      upstream.once('error', () => tryFrom(i + 1));
      upstream.once('connect', () => {
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
      });
    };
    tryFrom(0);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: proxy.address().port,
    app: servers[0].app,
    stop: () => new Promise((resolve) => {
      sockets.forEach((s) => s.destroy());
      proxy.close(() => resolve());
    }),
  };
}

/** Writes `toml` to a config file in a fresh temporary folder; `remove()` deletes the folder. */
export function writeConfig(toml) {
  const dir = mkdtempSync(path.join(tmpdir(), 'overtone-config-'));
  const file = path.join(dir, 'overtone.toml');
  writeFileSync(file, toml);
  return { path: file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An `[[apps]]` table for `app` ({id, key, secret}) followed by `extra` TOML lines. */
export function appToml(app, extra = '') {
  return `[[apps]]\nid = "${app.id}"\nkey = "${app.key}"\nsecret = "${app.secret}"\n${extra}`;
}

/** `[[apps.history]]` rules, first match first: `[channel pattern, max_events, max_age_secs?]`. */
export function historyToml(rules) {
  return rules
    .map(([channel, maxEvents, maxAgeSecs]) => `\n[[apps.history]]\nchannel = "${channel}"\nmax_events = ${maxEvents}\n`
      + (maxAgeSecs === undefined ? '' : `max_age_secs = ${maxAgeSecs}\n`))
    .join('');
}

/**
 * An HTTP endpoint on 127.0.0.1 that records every POST (`{headers, rawBody}`, the shape the
 * `pusher` SDK's `webhook()` takes) in `posts` and calls `onPost` after each.
 */
export async function startWebhookReceiver() {
  const receiver = {
    posts: [],
    onPost: () => {},
    url: (urlPath) => `http://127.0.0.1:${server.address().port}${urlPath}`,
    stop: () => server.close(),
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      receiver.posts.push({ headers: req.headers, rawBody: body });
      res.end('ok');
      receiver.onPost();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return receiver;
}

