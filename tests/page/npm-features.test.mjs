// Overtone's own hooks — useTyping, usePresenceStatus, useBadge, useReads, useMemberStatus — in
// React (under StrictMode)
// and Vue pages whose Echo class is a fake driven by the test (tests/apps/features): they show
// each change of the feeds, pass typing() and markRead() on, subscribe each channel once, and
// on unmount leave every channel and drop every change callback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, strictPage } from '../lib/browser.mjs';
import { appDir, serveApp } from '../apps/harness.mjs';

let browser, served;
before(async () => {
  browser = await launchBrowser();
  served = await serveApp(appDir('features', 'fake'));
});
after(async () => {
  await browser?.close();
  await served?.stop();
});

for (const framework of ['react', 'vue']) {
  test(`${framework}: typing, statuses, read receipts and badges follow their feeds and are released on unmount`, async () => {
    const page = await strictPage(await browser.newContext());
    await page.goto(`${served.server.url}/${framework}.html`);
    const shows = (id, text) => page.locator(`#${id}`, { hasText: new RegExp(`^${text}$`) }).waitFor({ timeout: 5000 });
    await shows('badge', '0/0');

    await page.evaluate(() => window.fake.setTyping('presence-chat', [{ id: 'bob' }, { id: 'cy' }]));
    await shows('typing', 'bob,cy');
    await page.evaluate(() => window.fake.setStatuses('presence-room', { bob: 'away', ann: 'online' }));
    await shows('statuses', 'ann:online,bob:away');
    await page.evaluate(() => { window.fake.setBadge('messages', 3); window.fake.setBadge('alerts', 2); });
    await shows('badge', '3/5');

    await page.evaluate(() => window.fake.setReads('private-dm', { readers: { bob: '41' }, unread: 2 }));
    await shows('reads', 'bob:41/2');
    await page.evaluate(() => window.fake.setDetails('presence-room', { members: { bob: { status: 'busy', message: 'Lunch' } }, left: {}, own: {} }));
    await shows('details', 'bob:busy:Lunch');

    await page.evaluate(() => {
      window.app.typing();
      window.app.markRead();
      window.app.readUpTo(42);
      window.app.setStatus('busy', 'In a meeting');
    });
    const calls = () => page.evaluate(() => [...window.fake.calls]);
    assert.deepEqual(await calls(), [
      'subscribe presence-chat', 'subscribe presence-room', 'subscribe private-dm',
      'typing presence-chat', 'markRead messages', 'markRead private-dm 42', 'setStatus busy In a meeting',
    ]);

    await page.evaluate(() => window.app.unmount());
    await page.locator('#gone').waitFor({ timeout: 5000 });
    await page.waitForFunction(() => window.fake.calls.length === 10, null, { timeout: 5000 });
    assert.deepEqual((await calls()).slice(7).sort(), ['leaveChannel presence-chat', 'leaveChannel presence-room', 'leaveChannel private-dm']);
    assert.equal(await page.evaluate(() => window.fake.listeners()), 0);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
}
