// Webhooks as Pusher sends them, checked by the `pusher` SDK's own webhook validation:
// channel_occupied, member_added, client_event, then member_removed and channel_vacated once
// the 3 s grace period has passed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Pusher from 'pusher-js';
import { startServer, serverSdk, signedClientOptions, connected, once } from '../lib/server.mjs';

const hooked = { id: 'hooked', key: 'hooked-key', secret: 'hooked-secret' };

let dir;
let receiver;
let server;
const posts = [];
let onPost = () => {};

before(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      posts.push({ headers: req.headers, rawBody: body });
      res.end('ok');
      onPost();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  dir = mkdtempSync(path.join(tmpdir(), 'overtone-webhooks-'));
  const config = path.join(dir, 'overtone.toml');
  writeFileSync(config, `
[[apps]]
id = "${hooked.id}"
key = "${hooked.key}"
secret = "${hooked.secret}"
webhooks = [{ url = "http://127.0.0.1:${receiver.address().port}/pusher/webhook" }]
`);
  server = await startServer({ args: ['--config', config] });
});
after(async () => {
  await server?.stop();
  receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves once the webhook events received so far include every name in `names`. */
function eventsNamed(sdk, names, ms) {
  const seen = () => posts.flatMap((post) => sdk.webhook(post).getEvents()).map((e) => e.name);
  return once((cb) => {
    onPost = () => names.every((n) => seen().includes(n)) && cb(seen());
    onPost();
  }, ms, `webhooks ${names.join(', ')}`);
}

test('signed webhooks report occupancy, members and client events', async () => {
  const handle = { ...server, app: hooked };
  const sdk = await serverSdk(handle);
  const client = new Pusher(hooked.key, signedClientOptions(handle, sdk, { user: { id: 'ann', info: {} } }));
  try {
    await connected(client);
    const channel = client.subscribe('presence-hooked');
    await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
    channel.trigger('client-wave', { hi: 1 });
    const joinedNames = ['channel_occupied', 'member_added', 'subscription_count', 'client_event'];
    const joined = await eventsNamed(sdk, joinedNames, 5000);
    assert.deepEqual([...new Set(joined)].sort(), [...joinedNames].sort());

    const clientEvent = posts.flatMap((p) => sdk.webhook(p).getEvents()).find((e) => e.name === 'client_event');
    assert.equal(clientEvent.channel, 'presence-hooked');
    assert.equal(clientEvent.event, 'client-wave');
    assert.deepEqual(JSON.parse(clientEvent.data), { hi: 1 });
    assert.equal(clientEvent.user_id, 'ann');
    assert.equal(clientEvent.socket_id, client.connection.socket_id);

    client.disconnect();
    await eventsNamed(sdk, ['member_removed', 'channel_vacated'], 6000);
    for (const post of posts) {
      const webhook = sdk.webhook(post);
      assert.ok(webhook.isValid(), 'signed with the app secret');
      assert.equal(post.headers['x-pusher-key'], hooked.key);
      assert.ok(webhook.getTime() instanceof Date);
    }
  } finally {
    client.disconnect();
  }
});
