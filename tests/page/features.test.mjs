// Issue #6 in the browser, with two pages: away status when a tab is hidden, typing shown and
// cleared, unread badges equal in two tabs of one user and kept across a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serverSdk } from '../lib/server.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { startPageServer, openEchoPage, until } from '../lib/client-page.mjs';

let server, browser, sdk;
before(async () => {
  server = await startPageServer();
  sdk = await serverSdk(server);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const ann = { id: '1', info: { name: 'ann' } };
const bob = { id: '2', info: { name: 'bob' } };

/** Joins presence-`room` and waits until `count` members are there. */
async function join(page, room, count) {
  await page.evaluate((room) => {
    window.room = window.echo.join(room);
    window.changes = { status: [], typing: [] };
    window.room.onStatusChange((s) => window.changes.status.push(s));
    window.room.onTypingChange((t) => window.changes.typing.push(t));
  }, room);
  await until(page, (count) => window.room.members().length === count, count);
}

/** A real tab switch as the page sees it: `document.hidden` and `visibilitychange`. */
function setHidden(page, hidden) {
  return page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('a hidden tab is seen away by the other page, then online when it comes back', async () => {
  const options = { awayAfterMs: 300 };
  const a = await openEchoPage(await browser.newContext(), server, { user: ann, options });
  const b = await openEchoPage(await browser.newContext(), server, { user: bob, options });
  await join(a, 'status-room', 1);
  await join(b, 'status-room', 2);
  await until(b, () => window.room.status('1') === 'online');

  await setHidden(a, true);
  await until(b, () => window.room.statuses()['1'] === 'away');
  assert.equal(await a.evaluate(() => window.room.status()), 'away');
  assert.ok(await b.evaluate(() => window.changes.status.some((s) => s['1'] === 'away')));

  await setHidden(a, false);
  await until(b, () => window.room.status('1') === 'online');
  assert.equal(await a.evaluate(() => window.room.status()), 'online');
  assert.deepEqual([...a.problems, ...b.problems], []);
  await a.context().close();
  await b.context().close();
});

test('typing is shown on the other page and cleared when the message is sent', async () => {
  const a = await openEchoPage(await browser.newContext(), server, { user: ann });
  const b = await openEchoPage(await browser.newContext(), server, { user: bob });
  await join(a, 'typing-room', 1);
  await join(b, 'typing-room', 2);

  await a.evaluate(() => window.room.typing().typing());
  await until(b, () => window.room.typingUsers().map((u) => u.id).join() === '1');
  assert.deepEqual(await b.evaluate(() => window.room.typingUsers()), [{ id: '1', info: { name: 'ann' } }]);
  await a.evaluate(() => window.room.stopTyping());
  await until(b, () => window.room.typingUsers().length === 0);
  assert.deepEqual(await b.evaluate(() => window.changes.typing.map((users) => users.map((u) => u.id))), [['1'], []]);
  await a.context().close();
  await b.context().close();
});

test('unread badges are equal in two tabs of one user, after a notification, a reload and markRead', async () => {
  const context = await browser.newContext();
  const options = { badgeScope: 'user-1' };
  const tabs = [];
  for (let i = 0; i < 2; i++) {
    const tab = await openEchoPage(context, server, { user: ann, options });
    await tab.evaluate(() => {
      window.notified = [];
      window.echo.private('App.Models.User.1')
        .subscribed(() => (window.ready = true))
        .notification((n) => window.notified.push(n));
    });
    await until(tab, () => window.ready);
    tabs.push(tab);
  }
  const [first, second] = tabs;
  const notification = { id: 'n-1', type: 'messages' };
  await sdk.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', notification);
  for (const tab of tabs) {
    // The other tab's broadcast may count it here before this tab's own copy arrives.
    await until(tab, () => window.notified.length === 1 && window.echo.badges.count('messages') === 1);
    assert.deepEqual(await tab.evaluate(() => window.notified), [notification]);
  }

  await second.reload();
  await second.waitForFunction(() => window.Echo);
  await second.evaluate(
    ({ key, port }) => (window.echo = new window.Echo({ key, wsHost: '127.0.0.1', wsPort: port, forceTLS: false, badgeScope: 'user-1' })),
    { key: server.app.key, port: server.port },
  );
  await until(second, () => window.echo.badges.total() === 1);

  await first.evaluate(() => window.echo.badges.markRead('all'));
  for (const tab of tabs) await until(tab, () => window.echo.badges.total() === 0);
  assert.deepEqual([...first.problems, ...second.problems], []);
  await context.close();
});
