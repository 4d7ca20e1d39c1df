// The demo site (`overtone-demo`, demo/) as visitors use it: two users in two browser contexts
// (and a second tab for one of them) chatting, typing, going away, holding seats and getting
// notifications; then the server killed and restarted under a chat. Screenshots of each panel
// go to tests/artifacts/ for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { strictPage } from '../lib/browser.mjs';
import {
  artifact, demoSuite, until, openDemo, membersAre, send, messageTexts, problemsButOutage,
} from '../lib/demo-page.mjs';

const shot = (locator, name) => locator.screenshot({ path: artifact(name) });

const demo = demoSuite();
const { newVisitor } = demo;

/** Opens the demo (on `at`, the file's server unless told) as `name`; see openDemo. */
const open = (context, name, { at = demo.server, typed = false } = {}) => openDemo(context, at, name, { typed });

/** A tab switch as the page sees it: `document.hidden`, `visibilityState` and the event. */
function setHidden(page, hidden) {
  return page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** Asks the server (from Node, with the page's session) to hold `seat` for that visitor. */
async function hold(page, seat) {
  const { token } = await page.evaluate(() => JSON.parse(localStorage.getItem('overtone-demo:session')));
  return fetch(`${demo.server.url}/demo/api/seats/${seat}/hold`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
}

test('signed out, the page offers the demo users and a name field', async () => {
  const context = await newVisitor();
  const page = await strictPage(context);
  await page.goto(`${demo.server.url}/`);
  await until(page, () => document.querySelector('#connection').dataset.state === 'connected');
  await page.locator('#name').fill('!!!');
  await page.locator('#name').press('Enter');
  await until(page, () => document.querySelector('#sign-in-error').textContent.includes('letter or digit'));
  await shot(page, 'sign-in');
  assert.deepEqual(page.problems.filter((p) => !p.includes('400')), []);
  await context.close();
});

test('two people chat both ways, see each other typing and away, and a mention rings both tabs of the bell', async () => {
  const anaContext = await newVisitor();
  const bobContext = await newVisitor();
  const ana = await open(anaContext, 'Ana');
  const bob = await open(bobContext, 'Bob');
  const anaTab2 = await open(anaContext); // same person: the session is in localStorage
  await membersAre(ana, ['ana', 'bob']);
  await membersAre(bob, ['ana', 'bob']);

  // Count the chat's broadcasts each page's connection gets (the page's own listener dedupes).
  for (const page of [ana, bob]) {
    await page.evaluate(() => {
      window.broadcasts = 0;
      window.demoEcho.join('demo.chat').listen('.message', () => window.broadcasts++);
    });
  }

  // Typing shows on the other page, then clears when the message is sent.
  await ana.locator('#chat-input').pressSequentially('hello B');
  await until(bob, () => document.querySelector('#typing').textContent === 'Ana is typing…');
  await shot(bob.locator('#chat-panel'), 'typing');
  await ana.locator('#chat-input').pressSequentially('ob');
  await ana.locator('#chat-input').press('Enter');
  await until(bob, () => [...document.querySelectorAll('#messages .text')].some((p) => p.textContent === 'hello Bob'));
  await until(bob, () => document.querySelector('#typing').textContent === '');

  // The other way, with a mention: Ana's two tabs both count it.
  await send(bob, 'hi @ana, seats are open');
  await until(ana, () => [...document.querySelectorAll('#messages .text')].some((p) => p.textContent.startsWith('hi @ana')));
  for (const tab of [ana, anaTab2]) {
    await until(tab, () => document.querySelector('#badge').textContent === '1' && !document.querySelector('#badge').hidden);
  }
  assert.deepEqual(await messageTexts(ana), ['hello Bob', 'hi @ana, seats are open']);
  assert.deepEqual(await messageTexts(bob), ['hello Bob', 'hi @ana, seats are open']);
  // The sender's own connection is left out (X-Socket-ID); its page shows the API's reply.
  assert.equal(await ana.evaluate(() => window.broadcasts), 1);
  assert.equal(await bob.evaluate(() => window.broadcasts), 1);
  // A page opened now shows what was said before.
  const bobTab2 = await open(bobContext);
  await until(bobTab2, () => document.querySelectorAll('#messages .text').length === 2);
  assert.deepEqual(await messageTexts(bobTab2), ['hello Bob', 'hi @ana, seats are open']);
  await bobTab2.close();
  await shot(ana.locator('#chat-panel'), 'chat');

  // Marking it read in one tab clears the badge in the other.
  await anaTab2.locator('#bell').click();
  await anaTab2.locator('#notification-list li').first().waitFor();
  assert.match(await anaTab2.locator('#notification-list li').first().textContent(), /Bob mentioned you/);
  await anaTab2.screenshot({ path: artifact('bell'), clip: { x: 680, y: 0, width: 600, height: 300 } });
  await anaTab2.getByRole('button', { name: /^Mark read/ }).click();
  await until(ana, () => document.querySelector('#badge').hidden);
  await until(anaTab2, () => document.querySelector('#badge').hidden);

  // Bob's tab hidden: Ana sees him away, then online again.
  await setHidden(bob, true);
  await until(ana, () => document.querySelector('#members li[data-user="bob"]').dataset.status === 'away');
  await shot(ana.locator('#members'), 'away');
  await setHidden(bob, false);
  await until(ana, () => document.querySelector('#members li[data-user="bob"]').dataset.status === 'online');

  assert.deepEqual([...ana.problems, ...anaTab2.problems, ...bob.problems], []);
  await anaContext.close();
  await bobContext.close();
});

test('a seat held by one is shown held to the other within a second, refused to them, and freed when the holder leaves', async () => {
  const chenContext = await newVisitor();
  const daraContext = await newVisitor();
  const chen = await open(chenContext, 'Chen');
  const dara = await open(daraContext, 'Dara');
  await until(dara, () => document.querySelector('#viewers').textContent === '2 viewing');
  const seatOf = (page) => page.locator('[data-seat="C7"]');

  await seatOf(chen).click();
  await until(chen, () => document.querySelector('[data-seat="C7"]').className === 'seat held mine');
  await until(dara, () => document.querySelector('[data-seat="C7"]').dataset.holder === 'chen', undefined, 1000);
  assert.equal(await seatOf(dara).getAttribute('aria-label'), 'Row C, seat 7, held by Chen');

  // The server refuses it to Dara; her page does not even ask, it asks to hear when it frees.
  const refused = await hold(dara, 'C7');
  assert.equal(refused.status, 409);
  assert.deepEqual(await refused.json(), { error: 'Seat C7 is held by Chen' });
  await seatOf(dara).click();
  await until(dara, () => document.querySelector('#seat-status').textContent.startsWith('Seat C7 is held by Chen: you will be notified'));
  assert.equal(await seatOf(dara).getAttribute('data-holder'), 'chen');
  await dara.locator('[data-seat="C8"]').click();
  await until(dara, () => document.querySelector('[data-seat="C8"]').dataset.holder === 'dara');
  await until(chen, () => document.querySelector('[data-seat="C8"]').dataset.holder === 'dara');
  await shot(dara.locator('#seats-panel'), 'seats');

  // Chen closes the page: the hold ends, and Dara, who wanted it, is told.
  await chenContext.close();
  await until(dara, () => document.querySelector('[data-seat="C7"]').dataset.state === 'free', undefined, 8000);
  await until(dara, () => document.querySelector('#viewers').textContent === '1 viewing');
  await until(dara, () => document.querySelector('#badge').textContent === '1');

  // Dara buys hers.
  await dara.getByRole('button', { name: 'Buy' }).click();
  await until(dara, () => document.querySelector('[data-seat="C8"]').dataset.state === 'sold');
  assert.deepEqual(dara.problems, []);
  await daraContext.close();
});

test('the seat map works from the keyboard: one tab stop, arrow keys move, Enter holds and releases', async () => {
  const context = await newVisitor();
  const page = await open(context, 'Eve Online', { typed: true });
  assert.equal(await page.locator('#me-name').textContent(), 'Eve Online');
  await page.locator('[data-seat="A1"]').focus();
  for (const key of ['ArrowRight', 'ArrowRight', 'ArrowDown', 'Enter']) await page.keyboard.press(key);
  await until(page, () => document.querySelector('[data-seat="B3"]').className === 'seat held mine');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.seat), 'B3');
  assert.equal(await page.locator('#seat-map [tabindex="0"]').count(), 1);
  await page.keyboard.press('Enter');
  await until(page, () => document.querySelector('[data-seat="B3"]').dataset.state === 'free');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('the demo API answers bad requests with a 4xx and a JSON error', async () => {
  const post = (path, body, headers = {}) =>
    fetch(`${demo.server.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
  const { token } = await (await post('/demo/api/session', JSON.stringify({ name: 'Fay' }))).json();
  const auth = { Authorization: `Bearer ${token}` };
  const cases = [
    [await post('/demo/api/session', 'not json'), 400, /Invalid JSON/],
    [await post('/demo/api/session', JSON.stringify({ name: 'x'.repeat(25) })), 400, /1 to 24/],
    [await post('/demo/api/chat/messages', JSON.stringify({ text: 'hi' })), 401, /No credentials/],
    [await post('/demo/api/chat/messages', JSON.stringify({ text: 'hi' }), { Authorization: 'Bearer nope' }), 401, /Invalid token/],
    [await post('/demo/api/chat/messages', JSON.stringify({ text: ' ' }), auth), 400, /1 to 500/],
    [await post('/demo/api/chat/messages', JSON.stringify({ text: 'hi' }), { ...auth, 'X-Socket-ID': 'x' }), 400, /X-Socket-ID/],
    [await fetch(`${demo.server.url}/demo/api/chat/messages?after=-1`), 400, /message id/],
    [await post('/demo/api/seats/Q99/hold', '', auth), 404, /No seat Q99/],
    [await post('/demo/api/seats/A1/hold', '', auth), 409, /Join the hall/],
    [await post('/demo/api/seats/buy', '', auth), 400, /Hold a seat first/],
    [await post('/demo/api/nothing', '', auth), 404, /Not found/],
  ];
  for (const [response, status, error] of cases) {
    assert.equal(response.status, status, response.url);
    assert.match((await response.json()).error, error);
  }
});

test('two people clicking the same free seat at once: one holds it, both pages agree who', async () => {
  const contexts = [await newVisitor(), await newVisitor()];
  const pages = [await open(contexts[0], 'Ana'), await open(contexts[1], 'Bob')];
  await until(pages[1], () => document.querySelector('#viewers').textContent === '2 viewing');
  await Promise.all(pages.map((page) => page.locator('[data-seat="F10"]').click()));
  const holders = [];
  for (const page of pages) {
    await until(page, () => document.querySelector('[data-seat="F10"]').dataset.state === 'held');
    holders.push(await page.locator('[data-seat="F10"]').getAttribute('data-holder'));
  }
  assert.ok(['ana', 'bob'].includes(holders[0]));
  assert.equal(holders[1], holders[0]);
  const loser = pages[holders[0] === 'ana' ? 1 : 0];
  await until(loser, () => /^Seat F10 is held by (Ana|Bob)/.test(document.querySelector('#seat-status').textContent));
  // The loser's refused request is the one error the browser logs (a 409 it shows as such).
  for (const page of pages) {
    assert.deepEqual(page.problems.filter((p) => !(page === loser && p.includes('409 (Conflict)'))), []);
  }
  for (const context of contexts) await context.close();
});

test('the server restarted mid-chat: the indicator shows reconnecting, then connected, and the chat goes on', async () => {
  const own = await startServer({ demo: {} });
  let restarted;
  const anaContext = await newVisitor();
  const bobContext = await newVisitor();
  try {
    const ana = await open(anaContext, 'Ana', { at: own });
    const bob = await open(bobContext, 'Bob', { at: own });
    await membersAre(bob, ['ana', 'bob']);
    for (const page of [ana, bob]) {
      await page.evaluate(() => {
        const indicator = document.querySelector('#connection');
        window.states = [indicator.dataset.state];
        new MutationObserver(() => window.states.push(indicator.dataset.state)).observe(indicator, { attributes: true });
      });
    }
    await send(ana, 'before the restart');
    await until(bob, () => document.querySelector('#messages').textContent.includes('before the restart'));

    own.process.kill('SIGKILL');
    for (const page of [ana, bob]) await until(page, () => window.states.at(-1) === 'reconnecting');
    await shot(bob.locator('.topbar'), 'reconnecting');
    restarted = await startServer({ demo: {}, port: own.port });
    for (const page of [ana, bob]) {
      await until(page, () => window.states.at(-1) === 'connected', undefined, 15000);
      await membersAre(page, ['ana', 'bob']);
    }
    await send(ana, 'after the restart');
    await until(bob, () => document.querySelector('#messages').textContent.includes('after the restart'));
    await send(bob, 'still here');
    await until(ana, () => document.querySelector('#messages').textContent.includes('still here'));

    // What is said while a page is offline shows up once it is back (fetched since its last id).
    await bob.evaluate(() => window.demoEcho.disconnect());
    await membersAre(ana, ['ana']);
    await send(ana, 'while you were out');
    await bob.evaluate(() => window.demoEcho.connect());
    await until(bob, () => document.querySelector('#messages').textContent.includes('while you were out'));
    assert.deepEqual(await messageTexts(bob), ['before the restart', 'after the restart', 'still here', 'while you were out']);
    for (const page of [ana, bob]) {
      const states = await page.evaluate(() => window.states);
      assert.ok(states.includes('reconnecting') && states.at(-1) === 'connected', states.join(' -> '));
      // While the server was down the browser logs its failed connection attempts; nothing else.
      assert.deepEqual(problemsButOutage(page), []);
    }
  } finally {
    await anaContext.close();
    await bobContext.close();
    await restarted?.stop();
    // stop() waits for an exit; a killed server has already had its own.
    if (own.process.signalCode === null) await own.stop();
  }
});
