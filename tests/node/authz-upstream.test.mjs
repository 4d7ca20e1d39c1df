// Rules delegated to the app: the server forwards the user's token and the channel to a tiny
// upstream on 127.0.0.1 and does what it answers (allow, deny with a message, presence
// user_info); a slow or broken upstream is the upstream's failure (504 / 502), not the client's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { clientOptions, once } from '../lib/server.mjs';
import {
  authzApp, startAuthzServer, pusherWithToken, subscriptionOutcome, postAuth, bearer, jwt,
} from '../lib/authz.mjs';

/** What the upstream was asked: its Authorization header and JSON body, per request. */
const asked = [];

/** The app's authorization endpoint: orders it owns, team membership, a slow and a broken path. */
function upstreamHandler(req, res) {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    const question = JSON.parse(body);
    asked.push({ path: req.url, authorization: req.headers.authorization, question });
    const reply = (status, answer) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(answer));
    };
    if (req.url === '/slow') return setTimeout(() => reply(200, { allow: true }), 2000).unref();
    if (req.url === '/broken') return reply(500, { oops: true });
    if (question.channel_name.startsWith('presence-team.')) return reply(200, { allow: true, user_info: { role: 'captain' } });
    if (question.params.order === '1') return reply(200, { allow: true });
    return reply(200, { allow: false, message: `Order ${question.params.order} is not yours` });
  });
}

let upstream, server;
before(async () => {
  upstream = http.createServer(upstreamHandler);
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${upstream.address().port}`;
  server = await startAuthzServer(`
[[apps.authz.rules]]
channel = "private-orders.{order}"
upstream = "${base}/authorize"

[[apps.authz.rules]]
channel = "presence-team.{team}"
upstream = "${base}/authorize"

[[apps.authz.rules]]
channel = "private-slow"
upstream = "${base}/slow"
upstream_timeout_ms = 300

[[apps.authz.rules]]
channel = "private-broken"
upstream = "${base}/broken"
`);
});
after(async () => {
  await server?.stop();
  upstream?.closeAllConnections();
  await new Promise((resolve) => upstream?.close(resolve));
});

test('the upstream receives the token and the channel, and its allow lets pusher-js subscribe', async () => {
  const token = jwt({ sub: '42', name: 'Ana' });
  const client = pusherWithToken(server, token);
  try {
    asked.length = 0;
    assert.equal((await subscriptionOutcome(client.subscribe('private-orders.1'))).ok, true);
    assert.equal(asked.length, 1);
    const [{ authorization, question }] = asked;
    assert.equal(authorization, `Bearer ${token}`);
    const { claims, ...rest } = question;
    assert.deepEqual(rest, {
      app_id: authzApp.id, socket_id: client.connection.socket_id, channel_name: 'private-orders.1',
      user_id: '42', params: { order: '1' },
    });
    assert.equal(claims.name, 'Ana');
  } finally {
    client.disconnect();
  }
});

test("the upstream's deny is a 403 carrying its message", async () => {
  const client = pusherWithToken(server, jwt());
  try {
    assert.deepEqual(await subscriptionOutcome(client.subscribe('private-orders.2')), { ok: false, status: 403 });
    const direct = await postAuth(server, '/broadcasting/auth', { socket_id: '1.1', channel_name: 'private-orders.2' }, bearer(jwt()));
    assert.deepEqual([direct.status, direct.body], [403, { error: 'Order 2 is not yours' }]);
  } finally {
    client.disconnect();
  }
});

test("presence user_info comes from the upstream's answer", async () => {
  const echo = new Echo({
    broadcaster: 'pusher', Pusher, key: authzApp.key, ...clientOptions(server),
    authEndpoint: server.authEndpoint, auth: { headers: {} }, bearerToken: jwt({ sub: '7', name: 'Ana' }),
  });
  try {
    assert.deepEqual(await once((cb) => echo.join('team.red').here(cb), 5000, 'here'), [{ role: 'captain' }]);
  } finally {
    echo.disconnect();
  }
});

test('no credentials never reach the upstream; slow and broken upstreams are 504 and 502', async () => {
  asked.length = 0;
  const anonymous = await postAuth(server, '/broadcasting/auth', { socket_id: '1.1', channel_name: 'private-orders.1' });
  assert.equal(anonymous.status, 401);
  assert.equal(asked.length, 0);

  const started = Date.now();
  const slow = await postAuth(server, '/broadcasting/auth', { socket_id: '1.1', channel_name: 'private-slow' }, bearer(jwt()));
  assert.deepEqual([slow.status, slow.body], [504, { error: "The app's authorization upstream did not answer within 300 ms" }]);
  assert.ok(Date.now() - started < 1500, 'the timeout cut the wait short');

  const broken = await postAuth(server, '/broadcasting/auth', { socket_id: '1.1', channel_name: 'private-broken' }, bearer(jwt()));
  assert.equal(broken.status, 502);
  assert.match(broken.body.error, /500/);
});
