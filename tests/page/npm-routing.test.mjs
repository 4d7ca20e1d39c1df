// Plain events skip the wasm once the core has routed their channel and name
// (pkg-js/src/client.ts `routes_`): the built package in Chromium, on a socket the test plays
// the server on (a WebSocket class given in the options), gets every kind of frame twice or
// more, so that the second goes wherever the first was routed, and must dispatch exactly as the
// core does: nothing for a channel it is not on, the sender on whispers, the protocol's events
// only to their own listeners, positions recorded (duplicates dropped, resume from the last one),
// encrypted events decrypted, and a stream of such events still counting as activity (no ping
// while they flow). With OVERTONE_NO_WASM=1, the same through the JavaScript twin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { launchBrowser, strictPage } from '../lib/browser.mjs';
import { startPackageSite } from '../lib/client-page.mjs';

let browser, site;
before(async () => {
  browser = await launchBrowser();
  site = await startPackageSite({ host: '127.0.0.1' });
});
after(async () => {
  await browser?.close();
  site?.close();
});

const KEY = nacl.randomBytes(32);

/**
 * A page with `window.echo` (the package entry `entry`) on a fake socket: `feed(frame)` plays
 * a server frame (its `data` JSON-encoded when not a string already), `sent(event)` lists the
 * `data` of the frames the client sent with that event name. Connected, with `activity`
 * seconds as the server's activity timeout.
 */
async function openClient({ entry = 'index', activity = 120 } = {}) {
  const page = await strictPage(await browser.newContext());
  await page.goto(`http://127.0.0.1:${site.address().port}/`);
  await page.evaluate(
    async ({ entry, secret, activity }) => {
      const { default: Echo } = await import(`/pkg/${entry}.js`);
      window.sockets = [];
      class FakeSocket {
        constructor(url) {
          this.url = url;
          this.readyState = 1;
          this.frames = [];
          window.sockets.push(this);
        }
        send(text) {
          this.frames.push(JSON.parse(text));
        }
        close() {
          this.readyState = 3;
        }
      }
      // A MessageEvent as a socket's: its timeStamp says when it arrived.
      window.feed = (frame) => window.sockets.at(-1).onmessage(new MessageEvent('message', { data: JSON.stringify(frame) }));
      window.sent = (event) => window.sockets.at(-1).frames.filter((f) => f.event === event).map((f) => f.data);
      window.established = () =>
        window.feed({ event: 'pusher:connection_established', data: JSON.stringify({ socket_id: '1.1', activity_timeout: activity }) });
      window.echo = new Echo({
        broadcaster: 'reverb', key: 'key', wsHost: '127.0.0.1', wsPort: 1, forceTLS: false, WebSocket: FakeSocket,
        authorizer: (channel) => ({
          authorize: (socketId, done) => done(null, { auth: 'key:signature', shared_secret: secret }),
        }),
      });
      // Echo connects once the wasm has loaded.
      while (!window.sockets.length) await new Promise((resolve) => setTimeout(resolve, 10));
      window.established();
    },
    { entry, secret: Buffer.from(KEY).toString('base64'), activity },
  );
  return page;
}

/** Subscribes `name` (Echo's `method`) and confirms it with `fields` on the succeeded frame. */
async function join(page, name, fields = {}, method = 'channel') {
  await page.evaluate(
    async ({ name, fields, method }) => {
      const wire = method === 'channel' ? name : `private-encrypted-${name}`;
      window.channels ??= {};
      window.channels[name] = window.echo[method](name);
      while (!window.sent('pusher:subscribe').some((d) => d.channel === wire)) await new Promise((resolve) => setTimeout(resolve, 10));
      window.feed({ event: 'pusher_internal:subscription_succeeded', channel: wire, data: '{}', ...fields });
    },
    { name, fields, method },
  );
}

test('plain events reach whom the core routed them to, and the routing follows subscribe, bind, unbind and leave', async () => {
  const page = await openClient();
  await join(page, 'news');
  const heard = await page.evaluate(async () => {
    const heard = [];
    const tick = (channel, n, extra = {}) => window.feed({ event: 'tick', channel, data: JSON.stringify({ n }), ...extra });
    const a = (data, meta) => heard.push(meta ? ['a', data.n, meta.user_id] : ['a', data.n]);
    const news = window.channels.news.listen('.tick', a).listenToAll((event, data) => heard.push(['all', event, data?.n]));
    heard.push('twice');
    tick('news', 1);
    tick('news', 2);
    heard.push('data not a string');
    window.feed({ event: 'tick', channel: 'news', data: { n: 3 } });
    window.feed({ event: 'tick', channel: 'news', data: { n: 4 } });
    heard.push('from a sender');
    tick('news', 5, { user_id: '9' });
    tick('news', 6, { user_id: 9 });
    heard.push('a channel it is not on');
    tick('other', 7);
    tick('other', 8);
    heard.push('the protocol');
    news.listen('.pusher:cache_miss', () => heard.push('cache_miss'));
    window.feed({ event: 'pusher:cache_miss', channel: 'news' });
    window.feed({ event: 'pusher:cache_miss', channel: 'news' });
    heard.push('subscribed since');
    window.echo.channel('other').listen('.tick', (data) => heard.push(['b', data.n]));
    window.feed({ event: 'pusher_internal:subscription_succeeded', channel: 'other', data: '{}' });
    tick('other', 9);
    tick('other', 10);
    heard.push('unbound');
    news.stopListening('.tick', a);
    tick('news', 11);
    heard.push('left');
    window.echo.leave('other');
    tick('other', 12);
    heard.push('rebound by a listener');
    const later = () => heard.push('later');
    const once = () => {
      heard.push('once');
      news.stopListening('.tick', once).listen('.tick', later);
    };
    news.listen('.tick', once);
    tick('news', 13);
    tick('news', 14);
    return heard;
  });
  assert.deepEqual(heard, [
    'twice', ['a', 1], ['all', '.tick', 1], ['a', 2], ['all', '.tick', 2],
    'data not a string', ['a', 3], ['all', '.tick', 3], ['a', 4], ['all', '.tick', 4],
    'from a sender', ['a', 5, '9'], ['all', '.tick', 5], ['a', 6, '9'], ['all', '.tick', 6],
    'a channel it is not on',
    'the protocol', 'cache_miss', 'cache_miss',
    'subscribed since', ['b', 9], ['b', 10],
    'unbound', ['all', '.tick', 11],
    'left',
    // The listeners of the event first, then `listenToAll`'s.
    'rebound by a listener', 'once', ['all', '.tick', 13], 'later', ['all', '.tick', 14],
  ]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('positioned events are recorded among plain ones: duplicates dropped, the resubscribe asks from the last', async () => {
  const page = await openClient();
  await join(page, 'feed', { position: 'ep:1' });
  const heard = await page.evaluate(async () => {
    const heard = [];
    window.channels.feed.listen('.tick', (data) => heard.push(data.n));
    const tick = (n, position) => window.feed({ event: 'tick', channel: 'feed', data: JSON.stringify({ n }), ...(position && { position }) });
    tick(2, 'ep:2');
    tick(0);
    tick(3, 'ep:3');
    tick(0);
    tick(3, 'ep:3');
    tick(4, 'ep:4');
    tick(2, 'ep:2');
    return heard;
  });
  assert.deepEqual(heard, [2, 0, 3, 0, 4]);
  // The socket drops; on the next one the subscribe asks for what came after ep:4.
  const resubscribe = await page.evaluate(async () => {
    window.sockets.at(-1).onclose({ code: 1006 });
    while (window.sockets.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    window.established();
    return window.sent('pusher:subscribe');
  });
  assert.deepEqual(resubscribe, [{ channel: 'feed', position: 'ep:4' }]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('events on an encrypted channel are decrypted every time', async () => {
  const page = await openClient({ entry: 'with-encryption' });
  await join(page, 'vault', {}, 'encryptedPrivate');
  const encrypted = [1, 2, 3].map((n) => {
    const nonce = nacl.randomBytes(24);
    const ciphertext = nacl.secretbox(Buffer.from(JSON.stringify({ n })), nonce, KEY);
    const data = JSON.stringify({ nonce: Buffer.from(nonce).toString('base64'), ciphertext: Buffer.from(ciphertext).toString('base64') });
    return { event: 'tick', channel: 'private-encrypted-vault', data };
  });
  const heard = await page.evaluate(async (frames) => {
    const heard = [];
    window.channels.vault.listen('.tick', (data) => heard.push(data.n));
    for (const frame of frames) window.feed(frame);
    return heard;
  }, encrypted);
  assert.deepEqual(heard, [1, 2, 3]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

for (const [clock, stamp] of [['timeStamp', 'event'], ['epoch timeStamp, as old browsers give', 'epoch']]) {
  test(`a stream of events that skip the wasm still counts as activity (${clock}): no ping while it flows, one after`, async () => {
    // The server's activity timeout, 1 s: a ping after 1 s without any frame.
    const page = await openClient({ activity: 1 });
    await join(page, 'news');
    const pings = await page.evaluate(async (stamp) => {
      let heard = 0;
      window.channels.news.listen('.tick', () => heard++);
      const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
      const data = JSON.stringify({ event: 'tick', channel: 'news', data: '{}' });
      for (let n = 0; n < 12; n++) {
        const event = stamp === 'event' ? new MessageEvent('message', { data }) : { data, timeStamp: Date.now() };
        window.sockets.at(-1).onmessage(event);
        await wait(200);
      }
      const during = window.sent('pusher:ping').length;
      // A timeStamp on another clock counts as the time it is told to the wasm: the ping may
      // come up to 2 s after the last event.
      await wait(2200);
      return { heard, during, after: window.sent('pusher:ping').length };
    }, stamp);
    assert.deepEqual(pings, { heard: 12, during: 0, after: 1 });
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
}
