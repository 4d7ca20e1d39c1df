// What the app tests share: the built apps served by `overtone serve`, a channel-auth endpoint
// signing with the app secret (the `pusher` SDK's authorizeChannel), and the page URL that tells
// an app where both are and who its user is.
import http from 'node:http';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { before, after, afterEach } from 'node:test';
import { startServer, serverSdk } from '../lib/server.mjs';
import { strictPage } from '../lib/browser.mjs';

const apps = path.dirname(fileURLToPath(import.meta.url));

/** The built app, `ECHO` being whose Echo class it runs on: 'overtone' or 'laravel-echo'. */
export function appDir(app, echo) {
  const dir = path.join(apps, app, `dist-${echo}`);
  if (!existsSync(dir)) {
    throw new Error(`${dir} is not built: run scripts/test, or node tests/apps/prepare.mjs after building pkg-js`);
  }
  return dir;
}

/**
 * Whether overtone's Echo class has every method the apps call. Until it does (the skeleton
 * has only channel().listen), the tests of the apps on overtone are skipped, saying why.
 */
export async function overtoneEchoIsComplete() {
  const { default: Echo } = await import(path.join(apps, 'node_modules/overtone/dist/index.js'));
  const methods = ['channel', 'private', 'join', 'leave', 'leaveChannel', 'socketId', 'connectionStatus', 'disconnect'];
  return methods.every((method) => typeof Echo.prototype[method] === 'function');
}

/**
 * Signs private and presence channels (`/broadcasting/auth`) and user sign-ins
 * (`/broadcasting/user-auth`) for the user named in the query (`?user=`), with CORS. Each
 * request's channel (or `#signin`) and Authorization header go into `requests`.
 */
function startAuthEndpoint(sdk, requests) {
  const server = http.createServer(async (req, res) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', '*');
    if (req.method === 'OPTIONS') return res.end();
    let body = '';
    for await (const chunk of req) body += chunk;
    const form = new URLSearchParams(body);
    const url = new URL(req.url, 'http://x');
    const user = url.searchParams.get('user');
    const channel = form.get('channel_name');
    requests.push({ channel: channel ?? '#signin', authorization: req.headers.authorization });
    res.setHeader('Content-Type', 'application/json');
    if (url.pathname.endsWith('/user-auth')) {
      return res.end(JSON.stringify(sdk.authenticateUser(form.get('socket_id'), { id: user, name: user })));
    }
    const member = channel.startsWith('presence-') ? { user_id: user, user_info: { id: user, name: user } } : undefined;
    res.end(JSON.stringify(sdk.authorizeChannel(form.get('socket_id'), channel, member)));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The package as installed from its tarball, for pages that load it with no bundler. */
export const installedPackage = path.join(apps, 'node_modules/overtone/dist');

/**
 * For a describe block: the built app served (`serveApp`) while its tests run, and `open(user)`:
 * the app's page for `user` in a browser context of its own, once `ready(page)` resolves. Each
 * test's contexts close with it: presence must see only that test's users. `browser()` gives
 * the browser the file launched.
 */
export function servedApp(app, echo, browser, ready) {
  let served;
  let contexts = [];
  before(async () => { served = await serveApp(appDir(app, echo)); });
  afterEach(async () => {
    await Promise.all(contexts.map((c) => c.close()));
    contexts = [];
  });
  after(async () => { await served?.stop(); });
  return {
    get sdk() { return served.sdk; },
    get authRequests() { return served.authRequests; },
    /** The app's page for `user`. */
    url: (user) => served.url(user),
    async open(user) {
      const context = await browser().newContext();
      contexts.push(context);
      const page = await strictPage(context);
      await page.goto(served.url(user));
      await ready(page);
      return page;
    },
  };
}

/**
 * `overtone-demo` serving the app in `dir` at `/` (and `packageDir` at `/pkg/`), its auth
 * endpoint, and the `pusher` SDK for both.
 */
export async function serveApp(dir, packageDir = installedPackage) {
  const server = await startServer({ demo: { site: dir, packageDir } });
  const sdk = await serverSdk(server);
  const authRequests = [];
  const auth = await startAuthEndpoint(sdk, authRequests);
  const authUrl = `http://127.0.0.1:${auth.address().port}/broadcasting`;
  return {
    server,
    sdk,
    /** What the auth endpoint was asked: `{channel, authorization}`, in order. */
    authRequests,
    /** The app's page (`page`, default its index) for `user`. */
    url: (user, page = '') => {
      const who = `?user=${encodeURIComponent(user)}`;
      const query = new URLSearchParams({
        key: server.app.key, host: server.host, port: String(server.port), user,
        auth: `${authUrl}/auth${who}`, userAuth: `${authUrl}/user-auth${who}`,
      });
      return `${server.url}/${page}?${query}`;
    },
    stop: async () => {
      auth.close();
      await server.stop();
    },
  };
}
