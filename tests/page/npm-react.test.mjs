// What @laravel/echo-react gets wrong, checked on overtone/react in the React test app (under
// StrictMode, two counters holding the same public channel): a callback whose deps change on
// every render while 200 events flow loses and doubles none, and the channel is left only when
// its last holder unmounts. Runs with laravel-echo's class under the bindings, and with ours.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';
import { appDir, overtoneEchoIsComplete, serveApp } from '../apps/harness.mjs';

const skipOvertone = (await overtoneEchoIsComplete())
  ? false
  : "awaits overtone's full Echo class (private, join, leaveChannel, connectionStatus, ...)";

const EVENTS = 200;

for (const echo of ['laravel-echo', 'overtone']) {
  describe(`React bindings on ${echo}`, { skip: echo === 'overtone' && skipOvertone }, () => {
    let browser, served, page;
    before(async () => {
      browser = await launchBrowser();
      served = await serveApp(appDir('react', echo));
      page = await strictPage(await browser.newContext());
      await page.goto(served.url('erin'));
      await page.locator('#status', { hasText: /^connected$/ }).waitFor({ timeout: 10000 });
    });
    after(async () => {
      await browser?.close();
      await served?.stop();
    });

    const counted = async (name) => {
      const text = await page.locator(`#counted-${name}`).textContent();
      return text === '' ? [] : text.split(',').map(Number);
    };
    const renders = async (name) => Number(await page.locator(`#renders-${name}`).textContent());
    const occupancy = async () =>
      (await served.sdk.get({ path: '/channels/counter', params: { info: 'subscription_count' } })).json();

    test(`a callback with new deps on every render gets all ${EVENTS} events once, in order`, async () => {
      // Both counters are listening once a warm-up event (-1) reaches them.
      await retryUntil(
        () => served.sdk.trigger('counter', 'counted', { n: -1 }),
        async () => (await counted('a')).length > 0 && (await counted('b')).length > 0,
        { what: 'the counters listening' },
      );
      const rendersBefore = await renders('a');
      for (let first = 0; first < EVENTS; first += 10) {
        const batch = Array.from({ length: 10 }, (_, i) => ({ channel: 'counter', name: 'counted', data: { n: first + i } }));
        await served.sdk.triggerBatch(batch);
      }
      const expected = Array.from({ length: EVENTS }, (_, n) => n);
      for (const name of ['a', 'b']) {
        await retryUntil(async () => {}, async () => (await counted(name)).includes(EVENTS - 1), { what: `the last event at ${name}` });
        assert.deepEqual((await counted(name)).filter((n) => n >= 0), expected, `counter ${name}`);
      }
      // A few re-renders are enough to prove the callback changed mid-flow; how many fit in the
      // flow depends on the machine's load, so the bar stays low.
      assert.ok((await renders('a')) - rendersBefore > 2, 'the counters re-rendered while the events flowed');
      assert.deepEqual(page.problems, []);
    });

    test('the channel stays while one holder is mounted and is left with the last', async () => {
      assert.deepEqual(await occupancy(), { occupied: true, subscription_count: 1 });
      await page.evaluate(() => window.app.showCounters(['b']));
      const before = (await counted('b')).length;
      await retryUntil(
        () => served.sdk.trigger('counter', 'counted', { n: -2 }),
        async () => (await counted('b')).length > before,
        { what: 'an event at the remaining counter' },
      );
      assert.deepEqual(await occupancy(), { occupied: true, subscription_count: 1 });
      await page.evaluate(() => window.app.showCounters([]));
      await retryUntil(async () => {}, async () => !(await occupancy()).occupied, { what: 'the channel left' });
      assert.deepEqual(page.problems, []);
    });
  });
}
