// CORS of the auth endpoints: browsers on the app's allowed origins get their preflight and
// answers (with credentials allowed); other origins are refused with 403. Requests without an
// Origin are not from browsers and need no CORS. Session-cookie authorization needs a list of
// allowed origins, and no site outside one is ever allowed credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startAuthzServer, postAuth, bearer, jwt, authzApp, ORIGIN, COOKIE, HS_SECRET,
} from '../lib/authz.mjs';
import { spawnSync } from 'node:child_process';
import { startServerWithoutApp, writeConfig, appToml, binary } from '../lib/server.mjs';

let server;
before(async () => { server = await startAuthzServer('[[apps.authz.rules]]\nchannel = "private-news"\n'); });
after(async () => { await server?.stop(); });

const preflight = (path, origin) => fetch(`${server.url}${path}`, {
  method: 'OPTIONS',
  headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
});

test('a preflight from an allowed origin is answered for both endpoints', async () => {
  for (const path of ['/broadcasting/auth', '/broadcasting/user-auth', `/broadcasting/auth?app_key=${authzApp.key}`]) {
    const response = await preflight(path, ORIGIN);
    assert.equal(response.status, 204, path);
    assert.equal(response.headers.get('access-control-allow-origin'), ORIGIN);
    assert.equal(response.headers.get('access-control-allow-credentials'), 'true');
    assert.match(response.headers.get('access-control-allow-methods'), /POST/);
    assert.equal(response.headers.get('access-control-allow-headers'), 'authorization,content-type');
  }
  // A host entry ("localhost") allows that host on any port.
  assert.equal((await preflight('/broadcasting/auth', 'http://localhost:5173')).status, 204);
});

test('other origins are refused, in the preflight and in the request itself', async () => {
  const response = await preflight('/broadcasting/auth', 'https://evil.test');
  assert.equal(response.status, 403);
  assert.equal(response.headers.get('access-control-allow-origin'), null);
  const post = await postAuth(server, '/broadcasting/auth', { socket_id: '1.1', channel_name: 'private-news' },
    { ...bearer(jwt()), Origin: 'https://evil.test' });
  assert.deepEqual([post.status, post.body], [403, { error: 'Origin is not allowed for this app' }]);
});

test('answers to allowed origins carry the CORS headers, errors included', async () => {
  const form = { socket_id: '1.1', channel_name: 'private-news' };
  const allowed = await postAuth(server, '/broadcasting/auth', form, { ...bearer(jwt()), Origin: ORIGIN });
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), ORIGIN);
  const refused = await postAuth(server, '/broadcasting/auth', form, { Origin: ORIGIN });
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get('access-control-allow-origin'), ORIGIN);
  const noOrigin = await postAuth(server, '/broadcasting/auth', form, bearer(jwt()));
  assert.equal(noOrigin.status, 200);
  assert.equal(noOrigin.headers.get('access-control-allow-origin'), null);
});

const cookieToml = `[apps.authz.cookie]\nname = "${COOKIE.name}"\nsecret = "${COOKIE.secret}"\n`;
const keyToml = `[[apps.authz.keys]]\nalgorithm = "HS256"\nsecret = "${HS_SECRET}"\n[[apps.authz.rules]]\nchannel = "private-news"\n`;

test('session-cookie authorization refuses to start without explicit allowed origins', () => {
  for (const origins of [[], ['*']]) {
    const config = writeConfig(appToml(authzApp, `allowed_origins = ${JSON.stringify(origins)}\n\n[apps.authz]\n${cookieToml}`));
    const run = spawnSync(binary, ['serve', '--port', '0', '--config', config.path], { encoding: 'utf8', timeout: 5000 });
    config.remove();
    assert.equal(run.status, 2, `${JSON.stringify(origins)}: ${run.stderr}`);
    assert.match(run.stderr, /\[apps\.authz\.cookie\] needs allowed_origins/);
  }
});

test('with every origin allowed, a token-only app answers any site without allowing credentials', async () => {
  const config = writeConfig(appToml(authzApp, `\n[apps.authz]\n${keyToml}`));
  const open = await startServerWithoutApp({ args: ['--config', config.path], serverApp: authzApp });
  try {
    const form = { socket_id: '1.1', channel_name: 'private-news' };
    const answer = await postAuth(open, '/broadcasting/auth', form, { ...bearer(jwt()), Origin: 'https://evil.test' });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('access-control-allow-origin'), 'https://evil.test');
    assert.equal(answer.headers.get('access-control-allow-credentials'), null);
  } finally {
    await open.stop();
    config.remove();
  }
});
