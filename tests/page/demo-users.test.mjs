// What two people trying the demo side by side ran into (issue #19), each in two browser
// contexts: typing while the page reconnects, mentioning someone who only signed in (and after
// a server restart), the bell's list in a second tab, after a reload and a reconnect, and
// "Mark read" keeping the list open. The phone layout is demo-phone.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  demoSuite, until, openDemo, membersAre, send, shows, messageTexts, badgeIs, connectionIs, problemsButOutage,
} from '../lib/demo-page.mjs';

const demo = demoSuite();
const { newVisitor } = demo;

/** The notifications the bell lists, newest first: `[text, read]`. */
const bellList = (page) =>
  page.locator('#notification-list li').evaluateAll((items) =>
    items.map((li) => [li.querySelector('p').textContent, li.classList.contains('read')]));

/** Two people in their own contexts on their own server (restarted by the test). */
async function twoOnOwnServer(first, second) {
  const own = await startServer({ demo: {} });
  const contexts = [await newVisitor(), await newVisitor()];
  const pages = [await openDemo(contexts[0], own, first), await openDemo(contexts[1], own, second)];
  await membersAre(pages[1], [first, second].map((n) => n.toLowerCase()));
  const servers = [own];
  return {
    pages,
    /** Kills the server (no goodbye to the pages) and waits until both pages say so. */
    kill: async () => {
      servers.at(-1).process.kill('SIGKILL');
      for (const page of pages) await connectionIs(page, 'reconnecting');
    },
    /** Starts the server again where the pages expect it and waits until both are back. */
    restart: async () => {
      servers.push(await startServer({ demo: {}, port: own.port }));
      for (const page of pages) {
        await connectionIs(page, 'connected');
        await membersAre(page, [first, second].map((n) => n.toLowerCase()));
      }
    },
    close: async () => {
      for (const context of contexts) await context.close();
      for (const s of servers) if (s.process.exitCode === null && s.process.signalCode === null) await s.stop();
    },
  };
}

test('1. while the page reconnects, what is typed waits with the reason on the button, and is sent once connected', async () => {
  const { pages: [ana, bob], kill, restart, close } = await twoOnOwnServer('Ana', 'Bob');
  try {
    await ana.locator('[data-seat="C7"]').click();
    await until(ana, () => document.querySelector('[data-seat="C7"]').dataset.holder === 'ana');
    await kill();
    const sendButton = ana.locator('#chat-send');
    await ana.locator('#chat-input').pressSequentially('sent after the outage');
    assert.match(await sendButton.textContent(), /when connected/i);
    await ana.locator('#chat-input').press('Enter');
    const pending = ana.locator('#messages li[data-pending]');
    await pending.waitFor();
    assert.match(await pending.textContent(), /sent after the outage.*waiting for the connection/i);
    assert.equal(await ana.locator('#chat-input').inputValue(), '');
    // A seat clicked meanwhile says why nothing happens, in words.
    await ana.locator('[data-seat="C9"]').click();
    await until(ana, () => /connect/i.test(document.querySelector('#seat-status').textContent));
    assert.doesNotMatch(await ana.locator('#seat-status').textContent(), /fetch/i);

    await restart();
    await shows(bob, 'sent after the outage');
    await until(ana, () => !document.querySelector('#messages li[data-pending]'));
    assert.deepEqual(await messageTexts(ana), ['sent after the outage']);
    assert.deepEqual(await messageTexts(bob), ['sent after the outage']);
    assert.match(await sendButton.textContent(), /^Send$/);
    // The restarted server forgot Ana's hold: her page says so instead of letting it vanish.
    await until(ana, () => /C7/.test(document.querySelector('#seat-status').textContent));
    assert.match(await ana.locator('#seat-status').textContent(), /restart/i);
    for (const page of [ana, bob]) assert.deepEqual(problemsButOutage(page), []);
  } finally {
    await close();
  }
});

test('1. a message that cannot be sent says so, and stays in the box to send again', async () => {
  const context = await newVisitor();
  const other = await newVisitor();
  const ana = await openDemo(context, demo.server, 'Ana');
  const bob = await openDemo(other, demo.server, 'Bob');
  // The page is connected, but the demo's API does not answer (a proxy or the backend down).
  await ana.route('**/demo/api/chat/messages', (route) =>
    route.request().method() === 'POST' ? route.abort('connectionrefused') : route.continue());
  await send(ana, 'lost in the post');
  await until(ana, () => /not sent/i.test(document.querySelector('#chat-error').textContent));
  assert.equal(await ana.locator('#chat-input').inputValue(), 'lost in the post');
  assert.doesNotMatch(await ana.locator('#chat-error').textContent(), /fetch/i);
  await ana.unroute('**/demo/api/chat/messages');
  await ana.locator('#chat-input').press('Enter');
  await shows(bob, 'lost in the post');
  await context.close();
  await other.close();
});

test('2. someone who only signed in can be mentioned, an unknown @name gets a reply, and mentions work after a restart', async () => {
  const { pages: [ana, bob], kill, restart, close } = await twoOnOwnServer('Ana', 'Bob');
  try {
    await send(ana, '@bob row C is free');
    await badgeIs(bob, 1);
    await send(ana, 'hi @zed');
    await until(ana, () => document.querySelector('#chat-note').textContent.includes('@zed'));
    assert.match(await ana.locator('#chat-note').textContent(), /nobody.*@zed.*not notified/i);

    await kill();
    await restart();
    await send(ana, '@bob still there?');
    await badgeIs(bob, 2);
    await bob.locator('#bell').click();
    await until(bob, () => document.querySelector('#notification-list').textContent.includes('still there?'));
    for (const page of [ana, bob]) assert.deepEqual(problemsButOutage(page), []);
  } finally {
    await close();
  }
});

/**
 * `from` and `to` (typed names) in contexts of their own on the file's server: `to` says hello
 * (so this does not also test item 2), then `from` sends each of `mentions`, which ring `to`.
 */
async function mentioned(from, to, mentions) {
  const contexts = [await newVisitor(), await newVisitor()];
  const pages = [await openDemo(contexts[0], demo.server, from, { typed: true }), await openDemo(contexts[1], demo.server, to, { typed: true })];
  await send(pages[1], 'hello');
  await shows(pages[0], 'hello');
  for (const text of mentions) await send(pages[0], text);
  await badgeIs(pages[1], mentions.length);
  return { pages, contexts, close: () => Promise.all(contexts.map((c) => c.close())) };
}

test('3. the bell lists the same notifications in a second tab, after a reload and after a reconnect', async () => {
  const { pages: [gil, hana], contexts: [, hanaContext], close } = await mentioned('Gil', 'Hana', ['@hana one', '@hana two']);
  const hanaTab2 = await openDemo(hanaContext, demo.server);
  await badgeIs(hanaTab2, 2);
  const expected = [['Gil mentioned you: @hana two', false], ['Gil mentioned you: @hana one', false]];
  await hanaTab2.locator('#bell').click();
  await until(hanaTab2, () => document.querySelectorAll('#notification-list li').length === 2);
  assert.deepEqual(await bellList(hanaTab2), expected);

  await hanaTab2.reload();
  await hanaTab2.locator('#seat-map[data-ready="true"]').waitFor();
  await hanaTab2.locator('#bell').click();
  await until(hanaTab2, () => document.querySelectorAll('#notification-list li').length === 2);
  assert.deepEqual(await bellList(hanaTab2), expected);

  // Reading one in a tab reads it in the other; a mention while a tab is offline shows once back.
  await hanaTab2.getByRole('button', { name: 'Mark read: Gil mentioned you: @hana one' }).click();
  await hana.locator('#bell').click();
  await until(hana, () => document.querySelector('#notification-list li.read'));
  await hana.evaluate(() => window.demoEcho.disconnect());
  await send(gil, '@hana three');
  await until(hanaTab2, () => document.querySelectorAll('#notification-list li').length === 3);
  await hana.evaluate(() => window.demoEcho.connect());
  await until(hana, () => document.querySelectorAll('#notification-list li').length === 3);
  const now = [['Gil mentioned you: @hana three', false], expected[0], [expected[1][0], true]];
  assert.deepEqual(await bellList(hana), now);
  assert.deepEqual(await bellList(hanaTab2), now);
  for (const page of [gil, hana, hanaTab2]) assert.deepEqual(page.problems, []);
  await close();
});

test('4. "Mark read" on one notification keeps the list open, and focus in it', async () => {
  const { pages: [ivo, jo], close } = await mentioned('Ivo', 'Jo', ['@jo first', '@jo second']);
  await jo.locator('#bell').click();
  await jo.getByRole('button', { name: 'Mark read: Ivo mentioned you: @jo second' }).click();
  await badgeIs(jo, 1);
  assert.equal(await jo.locator('#notifications').isVisible(), true);
  assert.equal(await jo.evaluate(() => document.querySelector('#notifications').contains(document.activeElement)), true);
  assert.equal(await jo.locator('#bell').getAttribute('aria-expanded'), 'true');
  // Clicking elsewhere still closes it.
  await jo.locator('#chat-title').click();
  assert.equal(await jo.locator('#notifications').isVisible(), false);
  assert.deepEqual([...ivo.problems, ...jo.problems], []);
  await close();
});
