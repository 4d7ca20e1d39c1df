// Bad input answered correctly: an unknown app key is refused once (pusher-js does not retry),
// malformed frames on a live pusher-js connection get the protocol's error frames without
// breaking it, and the HTTP API answers bad requests with the right status and a JSON error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  useServer, clientOptions, connected, nextPusherError, once, pause,
} from '../lib/server.mjs';

const clients = [];
const fixture = useServer(clients);

async function connect() {
  const client = new Pusher(fixture.server.app.key, clientOptions(fixture.server));
  clients.push(client);
  await connected(client);
  return client;
}

/** Resolves with the next frame whose event is `event` (and channel, if given). */
const nextMessage = (client, event, channel) => once((cb) => client.connection.bind('message',
  (m) => m.event === event && (channel === undefined || m.channel === channel) && cb(m)), 5000, event);

test('an unknown app key gets error 4001 and pusher-js stops without reconnecting', async () => {
  const client = new Pusher('no-such-key', clientOptions(fixture.server));
  clients.push(client);
  const states = [client.connection.state];
  client.connection.bind('state_change', ({ current }) => states.push(current));
  const error = await once((cb) => client.connection.bind('error', cb), 5000, 'refusal');
  assert.equal(error.error.data.code, 4001);
  await pause(1500);
  assert.deepEqual(states, ['connecting', 'disconnected']);
});

test('malformed frames get pusher:error and the connection keeps working', async () => {
  const client = await connect();
  const cases = [
    ['not json', /Invalid message format/],
    ['{"data":{}}', /Invalid message format/],
    ['{"event":42}', /Invalid message format/],
    ['{"event":"pusher:nonsense","data":{}}', /Unknown event/],
    ['{"event":"pusher:subscribe","data":{"channel":123}}', /pusher:subscribe needs/],
    ['{"event":"pusher:subscribe"}', /pusher:subscribe needs/],
    ['{"event":"pusher:unsubscribe","data":{"channel":"never-joined"}}', /Not subscribed/],
    ['{"event":"pusher:signin","data":{"auth":"x","user_data":"{}"}}', /Invalid signin/],
    ['{"event":"client-x","channel":"private-not-joined","data":{}}', /Subscribe to the channel/],
  ];
  for (const [raw, message] of cases) {
    const error = nextPusherError(client);
    client.connection.send(raw);
    assert.match((await error).message, message, raw);
  }
  const invalid = nextMessage(client, 'pusher:subscription_error', 'bad channel!');
  client.send_event('pusher:subscribe', { channel: 'bad channel!' });
  assert.equal((await invalid).data.status, 400);

  const tooLong = nextMessage(client, 'pusher:subscription_error', 'x'.repeat(165));
  client.send_event('pusher:subscribe', { channel: 'x'.repeat(165) });
  await tooLong;

  const channel = client.subscribe('still-alive');
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
  const twice = nextPusherError(client);
  client.send_event('pusher:subscribe', { channel: 'still-alive' });
  assert.match((await twice).message, /Already subscribed/);

  const delivered = once((cb) => channel.bind('ok', cb), 5000, 'event after bad input');
  await fixture.sdk.trigger('still-alive', 'ok', { fine: true });
  assert.deepEqual(await delivered, { fine: true });
  assert.equal(client.connection.state, 'connected');
});

test('a presence subscription needs a signature over valid channel_data', async () => {
  const client = await connect();
  const socketId = client.connection.socket_id;
  const crypto = await import('node:crypto');
  const sign = (channelData) => `${fixture.server.app.key}:${crypto.createHmac('sha256', fixture.server.app.secret)
    .update(`${socketId}:presence-x${channelData === undefined ? '' : `:${channelData}`}`).digest('hex')}`;
  const noUser = '{"user_info":{}}';
  const cases = [
    [{ channel_data: noUser, auth: sign('{"user_id":"a"}') }, /Invalid signature/],
    [{ channel_data: noUser, auth: sign(noUser) }, /channel_data must be JSON/],
    [{ channel_data: `{"user_id":"${'u'.repeat(129)}"}`, auth: sign(`{"user_id":"${'u'.repeat(129)}"}`) }, /user_id/],
    [{ auth: sign() }, /need channel_data or a signed-in user/],
  ];
  for (const [data, message] of cases) {
    const refusal = nextMessage(client, 'pusher:subscription_error', 'presence-x');
    client.send_event('pusher:subscribe', { channel: 'presence-x', ...data });
    const { data: error } = await refusal;
    assert.equal(error.type, 'AuthError');
    assert.match(error.error, message);
  }
});

test('only the signed-in user may subscribe to their #server-to-user channel', async () => {
  const client = await connect();
  const refusal = nextMessage(client, 'pusher:subscription_error', '#server-to-user-42');
  client.send_event('pusher:subscribe', { channel: '#server-to-user-42' });
  assert.equal((await refusal).data.type, 'AuthError');
});

/** Asserts the SDK request fails with `status` and a JSON body whose error matches `pattern`. */
async function refused(request, status, pattern) {
  await assert.rejects(request, (err) => {
    assert.equal(err.status, status, err.body);
    assert.match(JSON.parse(err.body).error, pattern);
    return true;
  });
}

test('the HTTP API answers bad requests with a status and a JSON error', async () => {
  const event = { name: 'e', data: '{}', channel: 'a' };
  await refused(fixture.sdk.post({ path: '/events', body: { ...event, data: 'x'.repeat(10 * 1024 + 1) } }), 413, /larger than/);
  const channels = Array.from({ length: 101 }, (_, i) => `c${i}`);
  await refused(fixture.sdk.post({ path: '/events', body: { name: 'e', data: '{}', channels } }), 400, /100 channels/);
  await refused(fixture.sdk.post({ path: '/events', body: { ...event, channel: 'bad channel' } }), 400, /Channel name/);
  await refused(fixture.sdk.post({ path: '/events', body: { data: '{}', channel: 'a' } }), 400, /Invalid JSON body/);
  await refused(fixture.sdk.post({ path: '/events', body: { ...event, channels: 'a' } }), 400, /Invalid JSON body/);
  await refused(fixture.sdk.post({ path: '/events', body: 'just a string' }), 400, /Invalid JSON body/);
  await refused(fixture.sdk.post({ path: '/events', body: { name: 'e', data: '{}' } }), 400, /at least one channel/);
  await refused(fixture.sdk.post({ path: '/events', body: { ...event, socket_id: 'abc' } }), 400, /socket_id/);
  await refused(fixture.sdk.get({ path: '/channels/public-one', params: { info: 'user_count' } }), 400, /presence/);
  await refused(fixture.sdk.get({ path: '/channels', params: { info: 'bogus' } }), 400, /Unknown info/);

  const { default: PusherSdk } = await import('pusher');
  const otherApp = new PusherSdk({
    appId: 'no-such-app', key: fixture.server.app.key, secret: fixture.server.app.secret,
    host: fixture.server.host, port: String(fixture.server.port), useTLS: false,
  });
  await refused(otherApp.trigger('a', 'e', {}), 404, /Unknown app/);
});

test('an HTTP API request with a tampered body is refused with 401', async () => {
  // Sign one body, send another: the recomputed body_md5 no longer matches.
  const token = { key: fixture.server.app.key, secret: fixture.server.app.secret };
  const signedUrl = new URL(`${fixture.server.url}/apps/${fixture.server.app.id}/events`);
  const crypto = await import('node:crypto');
  const body = JSON.stringify({ name: 'e', data: '{}', channel: 'a' });
  const params = {
    auth_key: token.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: crypto.createHash('md5').update(body).digest('hex'),
  };
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const signature = crypto.createHmac('sha256', token.secret).update(`POST\n${signedUrl.pathname}\n${query}`).digest('hex');
  const url = `${signedUrl}?${query}&auth_signature=${signature}`;
  const send = (payload) => fetch(url, { method: 'POST', body: payload, headers: { 'content-type': 'application/json' } });
  assert.equal((await send(body)).status, 200);
  const tampered = await send(body.replace('"a"', '"b"'));
  assert.equal(tampered.status, 401);
  assert.match((await tampered.json()).error, /body_md5/);
});
