// The Leptos example (examples/leptos-presence, on Overtone's Rust API) in Chromium: two users
// in two browser contexts; one sees the other join, type, go away (tab hidden) and come back,
// and gets a notification badge. scripts/test builds the example into target/examples/ first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverSdk, startServer } from '../lib/server.mjs';
import { launchBrowser, strictPage } from '../lib/browser.mjs';

const built = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../target/examples/leptos-presence');

let server, sdk, browser;
before(async () => {
  assert.ok(existsSync(path.join(built, 'build')), `build the example first (scripts/test does): ${built}`);
  // overtone-demo serves a folder: here the built example.
  server = await startServer({ demo: { site: built } });
  sdk = await serverSdk(server);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const until = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: 10000, polling: 50 });

/** The example as user `id`, in a browser context of its own; its auth requests signed here. */
async function open(id) {
  const context = await browser.newContext();
  const page = await strictPage(context);
  const form = (route) => new URLSearchParams(route.request().postData() ?? '');
  await page.route('**/broadcasting/auth', async (route) => {
    const channel = form(route).get('channel_name');
    const presence = channel.startsWith('presence-') ? { user_id: id, user_info: { name: `user-${id}` } } : undefined;
    await route.fulfill({ json: sdk.authorizeChannel(form(route).get('socket_id'), channel, presence) });
  });
  await page.goto(`${server.url}/?user=${id}&host=127.0.0.1&port=${server.port}&key=${server.app.key}`);
  return page;
}

/** A tab switch as the page sees it: `document.hidden` and the event. */
function setHidden(page, hidden) {
  return page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

const statusOf = (page, user) =>
  page.evaluate((user) => document.querySelector(`#members li[data-user="${user}"] .status`)?.textContent, user);

test('one user sees the other join, type, go away and come back, and gets a badge', async () => {
  const ann = await open('1');
  await until(ann, () => document.querySelector('#members li[data-user="1"]'));
  const bob = await open('2');
  await until(ann, () => document.querySelector('#members li[data-user="2"] .name')?.textContent === 'user-2');
  await until(bob, () => document.querySelectorAll('#members li').length === 2);

  await bob.locator('#message').pressSequentially('hello');
  await until(ann, () => document.querySelector('#typing').textContent === 'user-2 is typing…');

  await setHidden(bob, true);
  await until(ann, () => document.querySelector('#members li[data-user="2"] .status').textContent === 'away');
  await setHidden(bob, false);
  await until(ann, () => document.querySelector('#members li[data-user="2"] .status').textContent === 'online');
  assert.equal(await statusOf(ann, '1'), 'online');

  await sdk.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', { id: 'n-1', type: 'messages' });
  await until(ann, () => document.querySelector('#badge').textContent === '1');
  assert.equal(await ann.locator('#latest').textContent(), 'n-1');

  await bob.context().close();
  await until(ann, () => !document.querySelector('#members li[data-user="2"]'));
  assert.deepEqual(ann.problems, []);
});
