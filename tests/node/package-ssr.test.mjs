// The built package imports and constructs on a server (no window, no document): the wasm is
// only loaded in a browser, and reads before it answer empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';

test('the package imports and builds an Echo without window (SSR)', async () => {
  const { default: Echo } = await import('../../pkg-js/dist/index.js');
  assert.equal(typeof globalThis.window, 'undefined');
  const echo = new Echo({ broadcaster: 'reverb', key: 'app-key' });
  const channel = echo.private('orders').listen('OrderShipped', () => {});
  assert.equal(channel.name, 'private-orders');
  assert.equal(echo.socketId(), undefined);
  assert.equal(echo.connectionStatus(), 'connecting');
  assert.deepEqual(echo.badges.counts(), {});
});
