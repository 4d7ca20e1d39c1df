// Pages that use the built overtone package against a started server (overtone-demo, serving
// tests/page/fixture): the page's `/broadcasting/auth` requests are answered here, signed with
// the app secret by the `pusher` server SDK, as a Laravel backend would.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, serverSdk } from './server.mjs';
import { strictPage } from './browser.mjs';

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../page/fixture');
const PACKAGE = fileURLToPath(new URL('../../pkg-js/dist/', import.meta.url));
const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm' };

/**
 * An app's own site, listening on `host` (an origin of its own): `answer(req, res)` first (it
 * returns true when it answered), then the built package under /pkg/, else an empty page with
 * `head` in it.
 */
export async function startPackageSite({ host, head = '', answer = async () => false }) {
  const site = http.createServer(async (req, res) => {
    if (await answer(req, res)) return;
    if (req.url.startsWith('/pkg/') && /^[\w.-]+$/.test(req.url.slice(5))) {
      const file = req.url.slice(5);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      return res.end(await readFile(path.join(PACKAGE, file)));
    }
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>app</title>${head}`);
  });
  await new Promise((resolve) => site.listen(0, host, resolve));
  return site;
}

/** A server serving the fixture page and the built package (`/pkg/`). */
export function startPageServer(options = {}) {
  return startServer({ ...options, demo: { site: fixture } });
}

/**
 * Opens the fixture page in `context` and creates `window.echo` with `options` on top of the
 * server's address. `user` ({id, info}) is who the auth endpoints say joins presence channels
 * and signs in; `sdk` signs (pass one with an encryption master key for encrypted channels).
 * `entry`: the package entry the page imports, `index` (`overtone`) or `with-encryption`.
 */
export async function openEchoPage(context, server, { user = { id: '1', info: { name: 'one' } }, options = {}, sdk, entry = 'index' } = {}) {
  const page = await strictPage(context);
  sdk ??= await serverSdk(server);
  const form = (route) => new URLSearchParams(route.request().postData() ?? '');
  await page.route('**/broadcasting/auth', async (route) => {
    const channel = form(route).get('channel_name');
    const presence = channel.startsWith('presence-') ? { user_id: user.id, user_info: user.info } : undefined;
    await route.fulfill({ json: sdk.authorizeChannel(form(route).get('socket_id'), channel, presence) });
  });
  await page.route('**/broadcasting/user-auth', (route) =>
    route.fulfill({ json: sdk.authenticateUser(form(route).get('socket_id'), { id: user.id, user_info: user.info }) }),
  );
  await page.goto(`${server.url}/?entry=${entry}`);
  await page.waitForFunction(() => window.Echo);
  await page.evaluate(
    ({ port, key, options }) => {
      window.echo = new window.Echo({ broadcaster: 'reverb', key, wsHost: '127.0.0.1', wsPort: port, forceTLS: false, ...options });
    },
    { port: server.port, key: server.app.key, options },
  );
  return page;
}

/** Waits until `fn(arg)` is truthy in the page (5 s). */
export function until(page, fn, arg) {
  return page.waitForFunction(fn, arg, { timeout: 5000, polling: 50 });
}
