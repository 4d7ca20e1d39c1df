// End-to-end encrypted channels authorized by the server itself: /broadcasting/auth answers the
// channel's shared_secret derived from the app's master key exactly as pusher-http-node does;
// the `pusher` SDK encrypts with encryptionMasterKeyBase64, the server relays ciphertext, and
// pusher-js (whose Node build carries the with-encryption code) decrypts it in the callback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from '../lib/server.mjs';
import {
  startAuthzServer, pusherWithToken, authzSdk, subscriptionOutcome, postAuth, bearer, jwt, MASTER_KEY_BASE64,
} from '../lib/authz.mjs';

const RULES = `
[[apps.authz.rules]]
channel = "private-encrypted-vault.{id}"
claim_equals = { id = "sub" }
`;

let server;
before(async () => { server = await startAuthzServer(RULES); });
after(async () => { await server?.stop(); });

test("the auth answer carries pusher-http-node's shared_secret for the channel", async () => {
  const answer = await postAuth(server, '/broadcasting/auth',
    { socket_id: '123.456', channel_name: 'private-encrypted-vault.42' }, bearer(jwt({ sub: '42' })));
  assert.equal(answer.status, 200);
  const sdk = await authzSdk(server, { encryptionMasterKeyBase64: MASTER_KEY_BASE64 });
  assert.deepEqual(answer.body, sdk.authorizeChannel('123.456', 'private-encrypted-vault.42'));
  assert.ok(answer.body.shared_secret);
});

test('an encrypted event travels as ciphertext and arrives as plaintext', async () => {
  const client = pusherWithToken(server, jwt({ sub: '42' }));
  try {
    const channel = client.subscribe('private-encrypted-vault.42');
    assert.equal((await subscriptionOutcome(channel)).ok, true);
    const onTheWire = once((cb) => client.connection.bind('message', (m) => { if (m.event === 'secret') cb(m); }), 5000, 'frame');
    const received = once((cb) => channel.bind('secret', cb), 5000, 'decrypted event');
    const sdk = await authzSdk(server, { encryptionMasterKeyBase64: MASTER_KEY_BASE64 });
    await sdk.trigger('private-encrypted-vault.42', 'secret', { pin: '1234' });

    const frame = await onTheWire;
    assert.deepEqual(Object.keys(frame.data).sort(), ['ciphertext', 'nonce']);
    assert.ok(!JSON.stringify(frame).includes('1234'));
    assert.deepEqual(await received, { pin: '1234' });

    const other = await subscriptionOutcome(client.subscribe('private-encrypted-vault.43'));
    assert.deepEqual(other, { ok: false, status: 403 });
  } finally {
    client.disconnect();
  }
});
