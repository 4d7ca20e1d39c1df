// The authorization service under test: a config file with an [apps.authz] table written to a
// temp dir, a server started with it, JWTs minted with node:crypto, and clients pointed at it.
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { createHmac, createSign } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Pusher from 'pusher-js';
import { startServer, clientOptions } from './server.mjs';

export const authzApp = { id: 'authz-app', key: 'authz-key', secret: 'authz-secret' };
export const HS_SECRET = 'overtone-tests-hs256-secret-32-bytes-long';
export const COOKIE = { name: 'overtone_session', secret: 'overtone-tests-cookie-secret-32-bytes' };
export const ISSUER = 'https://login.test';
export const AUDIENCE = 'overtone-tests';
export const ORIGIN = 'https://app.test';
// 32 bytes, base64: what the pusher SDK takes as encryptionMasterKeyBase64.
export const MASTER_KEY_BASE64 = Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');

const base64url = (data) => Buffer.from(data).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/**
 * A JWT for `claims` (defaults: sub 42, our issuer and audience, 10 minutes to live).
 * `alg: 'none'` makes an unsigned token; `privateKey` signs RS256; else HS256 with `secret`.
 */
export function jwt(claims = {}, { alg = 'HS256', secret = HS_SECRET, privateKey } = {}) {
  const body = { sub: '42', iss: ISSUER, aud: AUDIENCE, exp: now() + 600, ...claims };
  const signingInput = `${base64url(JSON.stringify({ alg, typ: 'JWT' }))}.${base64url(JSON.stringify(body))}`;
  let signature = '';
  if (alg === 'HS256') signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  if (alg === 'RS256') signature = createSign('RSA-SHA256').update(signingInput).sign(privateKey, 'base64url');
  return `${signingInput}.${signature}`;
}

/** A session cookie value: base64url(claims JSON) "." hex HMAC-SHA256 of that part. */
export function sessionCookie(claims) {
  const payload = base64url(JSON.stringify({ exp: now() + 600, ...claims }));
  return `${payload}.${createHmac('sha256', COOKIE.secret).update(payload).digest('hex')}`;
}

/** The config file: the app, its authz settings, and `rules` (TOML text) appended. */
function configToml(rules) {
  return `
[[apps]]
id = "${authzApp.id}"
key = "${authzApp.key}"
secret = "${authzApp.secret}"
allowed_origins = ["${ORIGIN}", "localhost"]

[apps.authz]
issuer = "${ISSUER}"
audience = "${AUDIENCE}"
user_info_claims = ["name"]
encryption_master_key_base64 = "${MASTER_KEY_BASE64}"

[apps.authz.cookie]
name = "${COOKIE.name}"
secret = "${COOKIE.secret}"

[[apps.authz.keys]]
algorithm = "HS256"
secret = "${HS_SECRET}"

${rules}
`;
}

/** Starts a server whose config file declares the authz app with `rules`. */
export async function startAuthzServer(rules) {
  const dir = await mkdtemp(path.join(tmpdir(), 'overtone-authz-'));
  const file = path.join(dir, 'overtone.toml');
  await writeFile(file, configToml(rules));
  const server = await startServer({ args: ['--config', file] });
  const stop = server.stop;
  return {
    ...server,
    configFile: file,
    authEndpoint: `${server.url}/broadcasting/auth`,
    stop: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** pusher-js for the authz app, sending `token` as a bearer token to the server's endpoints. */
export function pusherWithToken(server, token, extra = {}) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return new Pusher(authzApp.key, clientOptions(server, {
    authEndpoint: server.authEndpoint,
    auth: { headers },
    userAuthentication: { endpoint: `${server.url}/broadcasting/user-auth`, transport: 'ajax', headers },
    ...extra,
  }));
}

/** The `pusher` server SDK for the authz app. */
export async function authzSdk(server, extra = {}) {
  const { default: PusherSdk } = await import('pusher');
  return new PusherSdk({
    appId: authzApp.id, key: authzApp.key, secret: authzApp.secret,
    host: server.host, port: String(server.port), useTLS: false, ...extra,
  });
}

/** Resolves with how a subscription ended: `{ok: true, data}` or `{ok: false, status}`. */
export function subscriptionOutcome(channel, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no subscription outcome for ${channel.name}`)), ms);
    channel.bind('pusher:subscription_succeeded', (data) => { clearTimeout(timer); resolve({ ok: true, data }); });
    channel.bind('pusher:subscription_error', (err) => { clearTimeout(timer); resolve({ ok: false, status: err.status }); });
  });
}

/** POSTs a form to one of the server's auth endpoints; resolves with status, headers and JSON. */
export async function postAuth(server, pathAndQuery, form, headers = {}) {
  const response = await fetch(`${server.url}${pathAndQuery}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

export const bearer = (token) => ({ Authorization: `Bearer ${token}` });
