// The same user-level checks on three apps — plain laravel-echo style, React on overtone/react,
// Vue on overtone/vue — each built by Vite from the packed overtone tarball and served by
// `overtone serve`, in headless Chromium: listen, whisper, presence, notification, connection
// status. Each app also runs on laravel-echo + pusher-js (the plain app as written, the
// bindings with laravel-echo's class under them), which checks the apps and the bindings
// against the reference; on overtone the plain app differs only by its `laravel-echo` import.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, retryUntil } from '../lib/browser.mjs';
import { overtoneEchoIsComplete, servedApp } from '../apps/harness.mjs';

const skipOvertone = (await overtoneEchoIsComplete())
  ? false
  : "awaits overtone's full Echo class (private, join, leaveChannel, connectionStatus, ...)";

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const logItems = (page, kind) =>
  page.locator('#log li').evaluateAll((items, prefix) =>
    items.map((li) => li.textContent).filter((text) => text.startsWith(prefix)), `${kind}: `);

for (const app of ['plain', 'react', 'vue']) {
  for (const echo of ['laravel-echo', 'overtone']) {
    describe(`${app} app on ${echo}`, { skip: echo === 'overtone' && skipOvertone }, () => {
      // The app open for a user once it shows it is connected.
      const served = servedApp(app, echo, () => browser, (page) =>
        page.locator('#status', { hasText: /^connected$/ }).waitFor({ timeout: 10000 }));
      const open = (user) => served.open(user);

      test('shows the connection status and socket id, and the change on disconnect', async () => {
        const page = await open('carol');
        assert.match(await page.locator('#socket').textContent(), /^\d+\.\d+$/);
        await page.evaluate(() => window.app.disconnect());
        await page.locator('#status', { hasText: /^disconnected$/ }).waitFor({ timeout: 10000 });
        assert.deepEqual(page.problems, []);
      });

      test('receives an event on a public channel, namespaced as App\\Events', async () => {
        const page = await open('alice');
        await retryUntil(
          () => served.sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 7, total: 42 }),
          async () => (await logItems(page, 'order')).length > 0,
          { what: 'the order on the page' },
        );
        assert.deepEqual(JSON.parse((await logItems(page, 'order'))[0].slice('order: '.length)), { id: 7, total: 42 });
        assert.deepEqual(page.problems, []);
      });

      test('a whisper on a private channel reaches the other user', async () => {
        const [alice, bob] = [await open('alice'), await open('bob')];
        await retryUntil(
          () => alice.evaluate(() => window.app.whisper('hello bob')),
          async () => (await logItems(bob, 'whisper')).length > 0,
          { what: "alice's whisper at bob's" },
        );
        assert.deepEqual(JSON.parse((await logItems(bob, 'whisper'))[0].slice('whisper: '.length)), { text: 'hello bob', user: 'alice' });
        assert.deepEqual(await logItems(alice, 'whisper'), [], 'never echoed to the sender');
        assert.deepEqual([...alice.problems, ...bob.problems], []);
      });

      test('presence shows who is here, who joins and who leaves', async () => {
        const alice = await open('alice');
        await alice.locator('#members', { hasText: /^alice$/ }).waitFor({ timeout: 10000 });
        const bob = await open('bob');
        await bob.locator('#members', { hasText: /^alice,bob$/ }).waitFor({ timeout: 10000 });
        await alice.locator('#members', { hasText: /^alice,bob$/ }).waitFor({ timeout: 10000 });
        await bob.context().close();
        await alice.locator('#members', { hasText: /^alice$/ }).waitFor({ timeout: 10000 });
        assert.deepEqual(alice.problems, []);
      });

      test('a notification and a model event reach the user on their private model channel', async () => {
        const page = await open('dave');
        const notification = { id: 'n-1', type: 'App\\Notifications\\InvoicePaid', amount: 10 };
        await retryUntil(
          () => served.sdk.trigger('private-App.Models.User.dave', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', notification),
          async () => (await logItems(page, 'notification')).length > 0,
          { what: 'the notification on the page' },
        );
        assert.deepEqual(JSON.parse((await logItems(page, 'notification'))[0].slice('notification: '.length)), notification);
        const model = { id: 4, name: 'Dave' };
        await served.sdk.trigger('private-App.Models.User.dave', 'UserUpdated', { model, connection: null, queue: null, afterCommit: false });
        await page.locator('#log li', { hasText: /^model: / }).waitFor({ timeout: 5000 });
        assert.deepEqual(JSON.parse((await logItems(page, 'model'))[0].slice('model: '.length)), model);
        assert.deepEqual(page.problems, []);
      });

      test('with shareConnection, the tabs of the Vite-built app share one socket', { skip: app !== 'plain' || echo !== 'overtone' }, async () => {
        const context = await browser.newContext();
        const tabs = [];
        for (let i = 0; i < 2; i++) {
          const page = await context.newPage();
          await page.goto(`${served.url('dora')}&share`);
          await page.locator('#status', { hasText: /^connected$/ }).waitFor({ timeout: 10000 });
          tabs.push(page);
        }
        const [first, second] = await Promise.all(tabs.map((page) => page.locator('#socket').textContent()));
        assert.match(first, /^\d+\.\d+$/);
        assert.equal(second, first, 'one socket for both tabs');
        await context.close();
      });
    });
  }
}
