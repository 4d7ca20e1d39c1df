// Webhooks as Pusher sends them, checked by the `pusher` SDK's own webhook validation:
// channel_occupied, member_added, client_event, then member_removed and channel_vacated once
// the 3 s grace period has passed, or at once when the server shuts down; with the app's
// presence grace, only once that is over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import {
  startServer, serverSdk, signedClientOptions, connected, once, writeConfig, startWebhookReceiver, appToml, pause,
} from '../lib/server.mjs';

const hooked = { id: 'hooked', key: 'hooked-key', secret: 'hooked-secret' };

let config;
let receiver;
let server;
const startHooked = () => startServer({ args: ['--config', config.path, '--shutdown-drain', '0'] });

before(async () => {
  receiver = await startWebhookReceiver();
  config = writeConfig(`
[[apps]]
id = "${hooked.id}"
key = "${hooked.key}"
secret = "${hooked.secret}"
webhooks = [{ url = "${receiver.url('/pusher/webhook')}" }]
`);
  server = await startHooked();
});
after(async () => {
  await server?.stop();
  receiver?.stop();
  config?.remove();
});

/** Resolves once the webhook events received so far include every name in `names`. */
function eventsNamed(sdk, names, ms) {
  const seen = () => receiver.posts.flatMap((post) => sdk.webhook(post).getEvents()).map((e) => e.name);
  return once((cb) => {
    receiver.onPost = () => names.every((n) => seen().includes(n)) && cb(seen());
    receiver.onPost();
  }, ms, `webhooks ${names.join(', ')}`);
}

/** A pusher-js client of the hooked app on `running`, joined to presence channel `name` as `id`. */
async function joined(running, id, name) {
  const handle = { ...running, app: hooked };
  const sdk = await serverSdk(handle);
  const client = new Pusher(hooked.key, signedClientOptions(handle, sdk, { user: { id, info: {} } }));
  await connected(client);
  const channel = client.subscribe(name);
  await once((cb) => channel.bind('pusher:subscription_succeeded', cb));
  return { sdk, client, channel };
}

test('signed webhooks report occupancy, members and client events', async () => {
  const { sdk, client, channel } = await joined(server, 'ann', 'presence-hooked');
  try {
    channel.trigger('client-wave', { hi: 1 });
    const joinedNames = ['channel_occupied', 'member_added', 'subscription_count', 'client_event'];
    const joined = await eventsNamed(sdk, joinedNames, 5000);
    assert.deepEqual([...new Set(joined)].sort(), [...joinedNames].sort());

    const clientEvent = receiver.posts.flatMap((p) => sdk.webhook(p).getEvents()).find((e) => e.name === 'client_event');
    assert.equal(clientEvent.channel, 'presence-hooked');
    assert.equal(clientEvent.event, 'client-wave');
    assert.deepEqual(JSON.parse(clientEvent.data), { hi: 1 });
    assert.equal(clientEvent.user_id, 'ann');
    assert.equal(clientEvent.socket_id, client.connection.socket_id);

    client.disconnect();
    await eventsNamed(sdk, ['member_removed', 'channel_vacated'], 6000);
    for (const post of receiver.posts) {
      const webhook = sdk.webhook(post);
      assert.ok(webhook.isValid(), 'signed with the app secret');
      assert.equal(post.headers['x-pusher-key'], hooked.key);
      assert.ok(webhook.getTime() instanceof Date);
    }
  } finally {
    client.disconnect();
  }
});

test('shutdown delivers the departures of the connections it closes before the process exits', async () => {
  const stopping = await startHooked();
  const { sdk, client } = await joined(stopping, 'bob', 'presence-closing');
  try {
    const forChannel = () => receiver.posts.flatMap((post) => sdk.webhook(post).getEvents())
      .filter((e) => e.channel === 'presence-closing').map((e) => e.name);
    await once((cb) => {
      receiver.onPost = () => forChannel().includes('member_added') && cb();
      receiver.onPost();
    }, 5000, 'member_added');
    const started = Date.now();
    await stopping.stop(); // SIGTERM; resolves when the process has exited
    assert.ok(Date.now() - started < 4000, 'stopped well within the grace period');
    assert.ok(forChannel().includes('member_removed'), forChannel().join());
    assert.ok(forChannel().includes('channel_vacated'), forChannel().join());
  } finally {
    client.disconnect();
  }
});

test('a member back within the app\'s presence grace, after the webhooks\' own 3 s, is never reported gone', async () => {
  const lingering = writeConfig(appToml(hooked, `webhooks = [{ url = "${receiver.url('/pusher/webhook')}" }]\npresence_grace_ms = 5000\n`));
  const running = await startServer({ args: ['--config', lingering.path] });
  try {
    const first = await joined(running, 'cy', 'presence-lingering');
    first.client.disconnect();
    await pause(4000);
    const back = await joined(running, 'cy', 'presence-lingering');
    await pause(6000);
    const members = receiver.posts.flatMap((post) => back.sdk.webhook(post).getEvents())
      .filter((e) => e.channel === 'presence-lingering' && e.name.startsWith('member_')).map((e) => e.name);
    assert.deepEqual(members, ['member_added']);
    back.client.disconnect();
  } finally {
    await running.stop();
    lingering.remove();
  }
});
