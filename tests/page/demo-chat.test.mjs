// Read receipts, direct messages and statuses in the demo (issue #22), each person in their own
// browser context on the real server: a status reaching the others without a reconnect, "last
// seen" for who closed the page, a direct message only its two people may open, "Seen" within
// 100 ms of the other side reading (measured), the same in a second tab and after a reload,
// and 200 messages read at once costing a handful of frames on the wire (counted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demoSuite, until, openDemo, membersAre } from '../lib/demo-page.mjs';

const demo = demoSuite();
const { newVisitor } = demo;

/**
 * `page` again from its start, counting the WebSocket frames it sends and the sockets it
 * opens from here on: `frames` (texts sent), `sockets` (how many opened).
 */
async function watched(page) {
  const seen = { frames: [], sockets: 0 };
  page.on('websocket', (socket) => {
    seen.sockets += 1;
    socket.on('framesent', ({ payload }) => seen.frames.push(String(payload)));
  });
  await page.reload();
  await page.locator('#seat-map[data-ready="true"]').waitFor();
  return seen;
}

/** What `user` shows beyond their name in `page`'s member list. */
const noteOf = (page, user) => page.locator(`#members li[data-user="${user}"] .member-note`).textContent();

/** The unread count `page`'s conversation list shows for `peer`. */
const unreadFor = (page, peer) =>
  page.locator(`#dm-list button[data-peer="${peer}"]`).getAttribute('data-unread').then(Number);

const unreadIs = (page, peer, count) =>
  until(page, ([peer, count]) => document.querySelector(`#dm-list button[data-peer="${peer}"]`)?.dataset.unread === String(count), [peer, count]);

/** Sends `text` to `peer` from `page` through the conversation's form. */
async function directMessage(page, peer, text) {
  await page.locator(`#dm-list button[data-peer="${peer}"]`).click();
  await page.locator('#dm-input').fill(text);
  await page.locator('#dm-input').press('Enter');
  await until(page, (text) => [...document.querySelectorAll('#dm-messages .text')].some((p) => p.textContent === text), text);
}

const seenShown = (page) => until(page, () => document.querySelector('#dm-seen').textContent === 'Seen');

test('a status set by one reaches the others at once without a reconnect; who closes the page is last seen', async () => {
  const contexts = [await newVisitor(), await newVisitor(), await newVisitor()];
  const ana = await openDemo(contexts[0], demo.server, 'Ana');
  const bob = await openDemo(contexts[1], demo.server, 'Bob');
  const chen = await openDemo(contexts[2], demo.server, 'Chen');
  const sockets = [await watched(bob), await watched(chen)];
  for (const page of [ana, bob, chen]) await membersAre(page, ['ana', 'bob', 'chen']);

  await ana.locator('#status-pick').selectOption('busy');
  await ana.locator('#status-message').fill('In a meeting');
  await ana.locator('#status-set').click();
  for (const page of [bob, chen]) {
    await until(page, () => document.querySelector('#members li[data-user="ana"]')?.dataset.status === 'busy');
    assert.equal(await noteOf(page, 'ana'), 'busy — In a meeting');
  }
  assert.deepEqual(sockets.map((s) => s.sockets), [1, 1], 'no reconnect');

  await contexts[2].close();
  for (const page of [ana, bob]) {
    await membersAre(page, ['ana', 'bob']);
    await until(page, () => /last seen/.test(document.querySelector('#left-members li[data-user="chen"]')?.textContent ?? ''));
  }
  assert.deepEqual([...ana.problems, ...bob.problems], []);
  for (const context of contexts.slice(0, 2)) await context.close();
});

test('a direct message: a third person is refused, Seen within 100 ms, in a second tab and after a reload', async () => {
  const contexts = [await newVisitor(), await newVisitor(), await newVisitor()];
  const [ana, bob, dara] = [
    await openDemo(contexts[0], demo.server, 'Ana'),
    await openDemo(contexts[1], demo.server, 'Bob'),
    await openDemo(contexts[2], demo.server, 'Dara'),
  ];
  for (const page of [ana, bob, dara]) await membersAre(page, ['ana', 'bob', 'dara']);

  // Dara may not open Ana and Bob's conversation: the server asked the demo, which said no.
  const refused = await dara.evaluate(() => new Promise((resolve) => {
    window.demoEcho.private('chat.ana.bob').error(resolve);
  }));
  assert.equal(refused.status, 403);

  // The server's overtone:* frames are the SDK's: an app's listenToAll never sees them.
  await bob.evaluate(() => {
    window.heardAll = [];
    window.demoEcho.private('chat.ana.bob').listenToAll((event) => window.heardAll.push(event));
  });
  // Three times: Bob writes while Ana looks at her conversation with Dara, then Ana opens his,
  // which reads it. The median of the three, as this machine is shared (both clocks are its).
  const latencies = [];
  for (const text of ['Lunch at noon?', 'Or at one?', 'Say when']) {
    await ana.locator('#dm-list button[data-peer="dara"]').click();
    await directMessage(bob, 'ana', text);
    await unreadIs(ana, 'bob', 1);
    assert.equal(await bob.locator('#dm-seen').textContent(), '');
    await ana.evaluate(() => addEventListener('click', () => { window.readAt = Date.now(); }, { capture: true, once: true }));
    await ana.locator('#dm-list button[data-peer="bob"]').click();
    await seenShown(bob);
    latencies.push(Number(await bob.locator('#dm-seen').getAttribute('data-seen-at')) - (await ana.evaluate(() => window.readAt)));
    await unreadIs(ana, 'bob', 0);
  }
  const latency = latencies.sort((a, b) => a - b)[1];
  console.log(`# Seen shown ${latency} ms (median of ${latencies.join(', ')}) after the other side read`);
  assert.ok(latency >= 0 && latency < 100, `Seen after ${latencies} ms`);

  // Seen came with an overtone:reads frame; listenToAll did not hear it.
  const heard = await bob.evaluate(() => window.heardAll);
  assert.deepEqual(heard.filter((event) => event.startsWith('overtone:')), []);

  // A second tab of each agrees, from the markers the server keeps.
  const bob2 = await openDemo(contexts[1], demo.server);
  await bob2.locator('#dm-list button[data-peer="ana"]').click();
  await seenShown(bob2);
  const ana2 = await openDemo(contexts[0], demo.server);
  await unreadIs(ana2, 'bob', 0);

  // A reload keeps it.
  await bob.reload();
  await bob.locator('#dm-list button[data-peer="ana"]').click();
  await seenShown(bob);
  await ana2.reload();
  await unreadIs(ana2, 'bob', 0);
  assert.deepEqual([...ana.problems, ...bob.problems, ...bob2.problems], []);
  for (const context of contexts) await context.close();
});

test('200 messages read at once cost a handful of frames', async () => {
  const contexts = [await newVisitor(), await newVisitor()];
  const ana = await openDemo(contexts[0], demo.server, 'Ana');
  const bob = await openDemo(contexts[1], demo.server, 'Bob');
  const wire = await watched(ana);
  await bob.locator('#dm-list button[data-peer="ana"]').waitFor();
  // Bob writes 200 messages (through the demo's API, as his page sends them) while Ana looks elsewhere.
  await bob.evaluate(async () => {
    const { token } = JSON.parse(localStorage.getItem('overtone-demo:session'));
    for (let i = 1; i <= 200; i++) {
      const response = await fetch('/demo/api/dm/ana', {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ text: `message ${i}` }),
      });
      if (!response.ok) throw new Error(await response.text());
    }
  });
  await unreadIs(ana, 'bob', 200);
  const before = wire.frames.length;
  // One click: the page marks each of the 200 messages it shows read.
  await ana.locator('#dm-list button[data-peer="bob"]').click();
  await bob.locator('#dm-list button[data-peer="ana"]').click();
  await unreadIs(ana, 'bob', 0);
  // The 200 (and what the conversation had before).
  await until(bob, () => document.querySelectorAll('#dm-messages li').length >= 200);
  await seenShown(bob);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const reads = wire.frames.slice(before).filter((frame) => frame.includes('"overtone:read"'));
  console.log(`# 200 messages read: ${reads.length} overtone:read frame(s)`);
  assert.ok(reads.length >= 1 && reads.length <= 3, `${reads.length} frames`);
  assert.equal(await unreadFor(ana, 'bob'), 0);
  assert.deepEqual([...ana.problems, ...bob.problems], []);
  for (const context of contexts) await context.close();
});
