// The server's own /broadcasting/auth with the real pusher-js and laravel-echo: channel rules
// over JWT claims allow and deny private and presence subscriptions, presence user_info comes
// from claims, bad tokens are refused, and sign-in works from the same token (or a session
// cookie, or a token printed by `overtone token`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { clientOptions, once } from '../lib/server.mjs';
import {
  authzApp, startAuthzServer, pusherWithToken, authzSdk, subscriptionOutcome, postAuth, bearer, jwt, sessionCookie,
} from '../lib/authz.mjs';

const rsa = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

const RULES = `
[[apps.authz.keys]]
algorithm = "RS256"
public_key_pem = """
${rsa.publicKey}"""

[[apps.authz.rules]]
channel = "private-user.{id}"
claim_equals = { id = "sub" }

[[apps.authz.rules]]
channel = "presence-room.{room}"
claim_contains = { room = "rooms" }
user_info_claims = ["name", "avatar"]

[[apps.authz.rules]]
channel = "private-announcements"
`;

let server;
before(async () => { server = await startAuthzServer(RULES); });
after(async () => { await server?.stop(); });

test('a private channel whose placeholder equals the sub claim is allowed and receives events', async () => {
  const client = pusherWithToken(server, jwt({ sub: '42' }));
  try {
    const channel = client.subscribe('private-user.42');
    assert.deepEqual(await subscriptionOutcome(channel), { ok: true, data: {} });
    const received = once((cb) => channel.bind('note', cb), 5000, 'note');
    await (await authzSdk(server)).trigger('private-user.42', 'note', { text: 'for 42' });
    assert.deepEqual(await received, { text: 'for 42' });
  } finally {
    client.disconnect();
  }
});

test("another user's channel is refused with 403 and nothing reaches the client", async () => {
  const client = pusherWithToken(server, jwt({ sub: '42' }));
  try {
    const channel = client.subscribe('private-user.43');
    const unexpected = [];
    channel.bind_global((event, data) => { if (!event.startsWith('pusher:')) unexpected.push([event, data]); });
    assert.deepEqual(await subscriptionOutcome(channel), { ok: false, status: 403 });
    const sdk = await authzSdk(server);
    await sdk.trigger('private-user.43', 'note', { text: 'for 43' });
    const info = await (await sdk.get({ path: '/channels/private-user.43' })).json();
    assert.equal(info.occupied, false);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(unexpected, []);

    const refused = await postAuth(server, '/broadcasting/auth',
      { socket_id: client.connection.socket_id, channel_name: 'private-user.43' }, bearer(jwt({ sub: '42' })));
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /sub claim/);
    const unmatched = await postAuth(server, '/broadcasting/auth',
      { socket_id: '1.1', channel_name: 'private-secrets' }, bearer(jwt()));
    assert.deepEqual([unmatched.status, unmatched.body], [403, { error: 'No rule allows private-secrets' }]);
  } finally {
    client.disconnect();
  }
});

test('a rule without conditions admits any authenticated user, and only them', async () => {
  const client = pusherWithToken(server, jwt({ sub: 'someone' }));
  const anonymous = pusherWithToken(server, null);
  try {
    assert.equal((await subscriptionOutcome(client.subscribe('private-announcements'))).ok, true);
    assert.deepEqual(await subscriptionOutcome(anonymous.subscribe('private-announcements')), { ok: false, status: 401 });
  } finally {
    client.disconnect();
    anonymous.disconnect();
  }
});

test('an RS256 token from the configured key pair is accepted', async () => {
  const client = pusherWithToken(server, jwt({ sub: '42' }, { alg: 'RS256', privateKey: rsa.privateKey }));
  try {
    assert.equal((await subscriptionOutcome(client.subscribe('private-user.42'))).ok, true);
  } finally {
    client.disconnect();
  }
});

test('expired, wrong-key, alg none, wrong-audience and algorithm-confused tokens are refused with 401', async () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const bad = {
    expired: [jwt({ exp: Math.floor(Date.now() / 1000) - 3600 }), /expired/],
    'wrong key': [jwt({}, { secret: 'not-the-configured-secret-at-all-32b' }), /signature/],
    'alg none': [jwt({}, { alg: 'none' }), /Invalid token/],
    'wrong audience': [jwt({ aud: 'someone-else' }), /audience/],
    'wrong issuer': [jwt({ iss: 'https://evil.test' }), /issuer/],
    'RS256 from another key pair': [jwt({}, { alg: 'RS256', privateKey }), /signature/],
    // HS256 "signed" with the RS256 public key, hoping it is used as an HMAC secret.
    'algorithm confusion': [jwt({}, { secret: rsa.publicKey }), /signature/],
  };
  for (const [what, [token, message]] of Object.entries(bad)) {
    const client = pusherWithToken(server, token);
    try {
      const outcome = await subscriptionOutcome(client.subscribe('private-user.42'));
      assert.deepEqual(outcome, { ok: false, status: 401 }, what);
      const direct = await postAuth(server, '/broadcasting/auth', { socket_id: '1.1', channel_name: 'private-user.42' }, bearer(token));
      assert.equal(direct.status, 401, what);
      assert.match(direct.body.error, message, what);
    } finally {
      client.disconnect();
    }
  }
});

test('laravel-echo joins a presence channel with bearerToken; user_info comes from the claims', async () => {
  // Each Echo gets its own `auth` object: laravel-echo 2.5 writes bearerToken into a static
  // default `auth.headers` shared by every instance, so the last token would win for all.
  const echoFor = (token) => new Echo({
    broadcaster: 'pusher', Pusher, key: authzApp.key, ...clientOptions(server),
    authEndpoint: server.authEndpoint, auth: { headers: {} }, bearerToken: token,
  });
  const ana = echoFor(jwt({ sub: '1', name: 'Ana', avatar: 'a.png', email: 'ana@x.test', rooms: ['lobby'] }));
  const bo = echoFor(jwt({ sub: '2', name: 'Bo', rooms: ['lobby', 7] }));
  const eve = echoFor(jwt({ sub: '3', name: 'Eve', rooms: ['kitchen'] }));
  try {
    const here = await once((cb) => ana.join('room.lobby').here(cb), 5000, 'here');
    assert.deepEqual(here, [{ name: 'Ana', avatar: 'a.png' }]);
    const joining = once((cb) => ana.join('room.lobby').joining(cb), 5000, 'joining');
    await once((cb) => bo.join('room.lobby').here(cb), 5000, 'here (Bo)');
    assert.deepEqual(await joining, { name: 'Bo' });
    const members = ana.connector.pusher.channel('presence-room.lobby').members;
    assert.deepEqual(Object.keys(members.members).sort(), ['1', '2']);
    const refused = await once((cb) => eve.join('room.lobby').error(cb), 5000, 'error (Eve)');
    assert.equal(refused.status, 403);
  } finally {
    [ana, bo, eve].forEach((echo) => echo.disconnect());
  }
});

test("the presence auth is what pusher-http-node would sign for the same member", async () => {
  const token = jwt({ sub: '5', name: 'Cy', avatar: 'c.png', rooms: ['lobby'] });
  const answer = await postAuth(server, '/broadcasting/auth', { socket_id: '123.456', channel_name: 'presence-room.lobby' }, bearer(token));
  assert.equal(answer.status, 200);
  const member = JSON.parse(answer.body.channel_data);
  assert.deepEqual(member, { user_id: '5', user_info: { name: 'Cy', avatar: 'c.png' } });
  // JSON.parse keeps the server's key order, so the SDK signs the very same channel_data.
  const sdk = await authzSdk(server);
  assert.deepEqual(answer.body, sdk.authorizeChannel('123.456', 'presence-room.lobby', member));
});

test('pusher-js signs in with the same token and gets its user data', async () => {
  const client = pusherWithToken(server, jwt({ sub: '42', name: 'Ana' }));
  try {
    client.signin();
    await client.user.signinDonePromise;
    assert.deepEqual(client.user.user_data, { id: '42', user_info: { name: 'Ana' } });
    const refused = await postAuth(server, '/broadcasting/user-auth', { socket_id: '1.1' });
    assert.equal(refused.status, 401);
  } finally {
    client.disconnect();
  }
});

test('a signed session cookie identifies the user; a forged one is refused', async () => {
  const form = { socket_id: '1.1', channel_name: 'private-user.9' };
  const cookie = sessionCookie({ sub: 9 });
  const allowed = await postAuth(server, '/broadcasting/auth', form, { Cookie: `theme=dark; overtone_session=${cookie}` });
  assert.deepEqual(allowed.body, (await authzSdk(server)).authorizeChannel('1.1', 'private-user.9'));
  const forged = `${Buffer.from(JSON.stringify({ sub: 9, exp: 9999999999 })).toString('base64url')}.${cookie.split('.')[1]}`;
  const refused = await postAuth(server, '/broadcasting/auth', form, { Cookie: `overtone_session=${forged}` });
  assert.deepEqual([refused.status, refused.body], [401, { error: 'The session cookie is invalid' }]);
});

test('a token printed by `overtone token` works as is', async () => {
  const binary = server.process.spawnfile;
  const { stdout } = await promisify(execFile)(binary, [
    'token', '--config', server.configFile, '--sub', '42', '--claim', 'name=Ana', '--claim', 'rooms=["lobby"]',
  ]);
  const client = pusherWithToken(server, stdout.trim());
  try {
    assert.equal((await subscriptionOutcome(client.subscribe('private-user.42'))).ok, true);
    const presence = await subscriptionOutcome(client.subscribe('presence-room.lobby'));
    assert.deepEqual(presence.data.me, { id: '42', info: { name: 'Ana' } });
  } finally {
    client.disconnect();
  }
});

test('malformed requests get 400 with a JSON error; JSON bodies are accepted too', async () => {
  const token = jwt({ sub: '42' });
  const cases = [
    [{ channel_name: 'private-user.42' }, /socket_id is missing/],
    [{ socket_id: 'abc', channel_name: 'private-user.42' }, /socket_id/],
    [{ socket_id: '1.1' }, /channel_name is missing/],
    [{ socket_id: '1.1', channel_name: 'private-user.42!' }, /may only contain/],
    [{ socket_id: '1.1', channel_name: 'news' }, /needs no authorization/],
  ];
  for (const [form, message] of cases) {
    const answer = await postAuth(server, '/broadcasting/auth', form, bearer(token));
    assert.equal(answer.status, 400, JSON.stringify(form));
    assert.match(answer.body.error, message);
  }
  const broken = await fetch(server.authEndpoint, { method: 'POST', headers: { 'Content-Type': 'application/json', ...bearer(token) }, body: '{' });
  assert.equal(broken.status, 400);
  assert.match((await broken.json()).error, /Invalid JSON/);
  const json = await fetch(server.authEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...bearer(token) },
    body: JSON.stringify({ socket_id: '1.1', channel_name: 'private-user.42' }),
  });
  assert.deepEqual(await json.json(), (await authzSdk(server)).authorizeChannel('1.1', 'private-user.42'));
  const unknownApp = await postAuth(server, '/broadcasting/auth?app_key=nope', { socket_id: '1.1', channel_name: 'private-user.42' }, bearer(token));
  assert.equal(unknownApp.status, 404);
});
