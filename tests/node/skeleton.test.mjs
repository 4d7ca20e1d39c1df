// One event end to end with the real npm clients: pusher-js subscribes, the `pusher` server
// SDK triggers through the signed HTTP API, the callback receives it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import { startServer, serverSdk, clientOptions, once } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

test('pusher-js receives an event triggered by the pusher server SDK', async () => {
  const client = new Pusher(server.app.key, clientOptions(server));
  try {
    const channel = client.subscribe('news');
    await once((cb) => channel.bind('pusher:subscription_succeeded', cb), 5000, 'subscription');
    const received = once((cb) => channel.bind('headline', cb), 5000, 'headline');
    const sdk = await serverSdk(server);
    const response = await sdk.trigger('news', 'headline', { title: 'Hello from Overtone' });
    assert.equal(response.status, 200);
    assert.deepEqual(await received, { title: 'Hello from Overtone' });
  } finally {
    client.disconnect();
  }
});

test('a trigger with a bad signature is refused with 401 and a JSON message', async () => {
  const { default: PusherSdk } = await import('pusher');
  const wrong = new PusherSdk({
    appId: server.app.id, key: server.app.key, secret: 'not-the-secret',
    host: server.host, port: String(server.port), useTLS: false,
  });
  await assert.rejects(wrong.trigger('news', 'headline', {}), (err) => {
    assert.equal(err.status, 401);
    assert.ok(JSON.parse(err.body).error);
    return true;
  });
});
