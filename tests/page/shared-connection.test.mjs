// `shareConnection: true`: five tabs of one origin (pages of one browser context, the built
// package) share one SharedWorker and so one WebSocket: the server counts one connection and one
// presence member; events reach every tab; `echo.leave` in one tab keeps the channel for the
// others; the user is away only when all five are hidden; closing tabs, the one that started
// the worker first, leaves the others working. Another user's page (its own socket)
// watches what the server and the other members see.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, retryUntil } from '../lib/browser.mjs';
import { openEchoPage, startPageServer, until } from '../lib/client-page.mjs';
import { serverSdk } from '../lib/server.mjs';

const METRICS_TOKEN = 'shared-connection-metrics';
let server, sdk, browser;
before(async () => {
  server = await startPageServer({ args: ['--metrics-token', METRICS_TOKEN] });
  sdk = await serverSdk(server);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The server's open connections for the app, from /metrics. */
async function connections() {
  const response = await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
  return Number((await response.text()).match(/^overtone_connections\{app="[^"]+"\} (\d+)$/m)?.[1]);
}

/** Members of `presence-room` and subscriptions of `news`, as the server's API reports them. */
async function counts() {
  const users = await (await sdk.get({ path: '/channels/presence-room/users' })).json();
  const news = await (await sdk.get({ path: '/channels/news', params: { info: 'subscription_count' } })).json();
  return { connections: await connections(), members: users.users.length, news: news.subscription_count ?? 0 };
}

/** In a tab: joins `presence-room` and `news`, keeping what arrives in `window.got`. */
function joinBoth(page) {
  return page.evaluate(() => {
    window.got = [];
    // Statuses followed: the features module runs (in the worker), whispering away and back.
    window.room = window.echo.join('room').here((members) => (window.here = members));
    window.room.onStatusChange(() => {});
    window.echo.channel('news').subscribed(() => (window.newsUp = true)).listen('.headline', (data) => window.got.push(data.n));
  });
}

/** Publishes headline `n` and waits for each of `tabs` to have it. */
async function headlineReaches(tabs, n) {
  await sdk.trigger('news', 'headline', { n });
  for (const tab of tabs) await until(tab, (n) => window.got.includes(n), n);
}

/** Makes a tab hidden or visible as a browser does when it goes to the background. */
function setHidden(page, hidden) {
  return page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { value: hidden, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: hidden ? 'hidden' : 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

test('five tabs share one connection, one member and every event', async () => {
  const other = await browser.newContext();
  const watcher = await openEchoPage(other, server, { user: { id: '2', info: { name: 'two' } } });
  await watcher.evaluate(() => {
    window.room = window.echo.join('room');
    window.room.here(() => {}).onStatusChange(() => {});
  });

  const context = await browser.newContext();
  const tabs = [];
  for (let i = 0; i < 5; i++) {
    const tab = await openEchoPage(context, server, { options: { shareConnection: true, awayAfterMs: 300 } });
    await joinBoth(tab);
    tabs.push(tab);
  }
  for (const tab of tabs) await until(tab, () => window.newsUp && window.here?.length === 2);
  // Every tab has the one socket's id.
  const ids = await Promise.all(tabs.map((tab) => tab.evaluate(() => window.echo.socketId())));
  assert.equal(new Set(ids).size, 1);
  assert.match(ids[0], /^\d+\.\d+$/);
  // The watcher's own connection and the tabs' one; one member for the tabs' user.
  await retryUntil(async () => {}, async () => (await counts()).connections === 2, { what: 'two connections' });
  assert.deepEqual(await counts(), { connections: 2, members: 2, news: 1 });
  await headlineReaches(tabs, 1);

  // `echo.leave` in one tab: the others keep the channel.
  await tabs[1].evaluate(() => window.echo.leave('news'));
  await headlineReaches([tabs[0], ...tabs.slice(2)], 2);
  assert.equal((await counts()).news, 1);
  assert.deepEqual(await tabs[1].evaluate(() => window.got), [1]);

  // Away only when all five are hidden.
  const status = () => watcher.evaluate(() => window.room.statuses()['1']);
  await until(watcher, () => window.room.statuses()['1'] === 'online');
  for (const tab of tabs.slice(0, 4)) await setHidden(tab, true);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(await status(), 'online', 'one tab is still visible');
  await setHidden(tabs[4], true);
  await until(watcher, () => window.room.statuses()['1'] === 'away');
  await setHidden(tabs[2], false);
  await until(watcher, () => window.room.statuses()['1'] === 'online');

  // The tab that started the worker goes without a word (the worker hears it from the tab's Web
  // Lock, as it would a crash; Page.crash cannot be used: same-site tabs share a renderer
  // process here, and it would take the others down too): nothing changes for the others.
  await tabs[0].close({ runBeforeUnload: false });
  await headlineReaches(tabs.slice(2), 3);
  // Closing three more leaves the fifth working, still one member, still one connection.
  for (const tab of tabs.slice(1, 4)) await tab.close();
  await headlineReaches([tabs[4]], 4);
  assert.deepEqual(await counts(), { connections: 2, members: 2, news: 1 });

  // The last tab gone, the connection goes and the member leaves.
  await tabs[4].close();
  await retryUntil(async () => {}, async () => (await counts()).connections === 1, { what: 'the shared connection closed' });
  assert.deepEqual(await counts(), { connections: 1, members: 1, news: 0 });
  await context.close();
  await other.close();
});
