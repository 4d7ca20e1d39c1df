// The overtone package in Chromium, driven as an app drives laravel-echo: events through the
// HTTP API on public, private and presence channels, auth refusals, a server restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serverSdk } from '../lib/server.mjs';
import { launchBrowser, strictPage } from '../lib/browser.mjs';
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

/** Subscribes the page to `channel` (an Echo method call) and records its `event`s in `window.got`. */
async function listen(page, method, name, event) {
  await page.evaluate(({ method, name, event }) => {
    window.got ??= [];
    window.subscribed ??= [];
    window.echo[method](name)
      .subscribed(() => window.subscribed.push(name))
      .listen(event, (data) => window.got.push(data));
  }, { method, name, event });
}

test('events triggered through the HTTP API reach public, private and presence listeners', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  await listen(page, 'channel', 'orders', '.shipped');
  await listen(page, 'private', 'user.1', 'OrderShipped');
  await listen(page, 'join', 'room', '.said');
  await until(page, () => window.subscribed.length === 3);
  await sdk.trigger('orders', 'shipped', { n: 1 });
  await sdk.trigger('private-user.1', 'App\\Events\\OrderShipped', { n: 2 });
  await sdk.trigger('presence-room', 'said', { n: 3 });
  await until(page, () => window.got.length === 3);
  assert.deepEqual(await page.evaluate(() => window.got.map((d) => d.n).sort()), [1, 2, 3]);
  assert.equal(await page.evaluate(() => window.echo.connectionStatus()), 'connected');
  assert.match(await page.evaluate(() => window.echo.socketIdHeaders()['X-Socket-ID']), /^\d+\.\d+$/);
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('a 401 from the auth endpoint reaches the channel error callback with the status', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  // Registered last, so it answers before the signing route.
  await page.route('**/broadcasting/auth', (route) => route.fulfill({ status: 401, body: 'Unauthenticated.' }));
  const error = await page.evaluate(
    () => new Promise((resolve) => window.echo.private('secret').error(resolve)),
  );
  assert.equal(error.type, 'AuthError');
  assert.equal(error.status, 401);
  await context.close();
});

test('listeners stop with stopListening and here/joining/leaving can be unbound', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  await page.evaluate(() => {
    window.got = [];
    const shout = (data) => window.got.push(data.n);
    window.joined = [];
    const onJoin = (info) => window.joined.push(info.name);
    window.room = window.echo.join('lobby').joining(onJoin).stopListeningForJoining(onJoin);
    window.echo.channel('news').subscribed(() => (window.ready = true)).listen('.shout', shout);
    window.stop = () => window.echo.channel('news').stopListening('.shout', shout);
  });
  await until(page, () => window.ready);
  await sdk.trigger('news', 'shout', { n: 1 });
  await until(page, () => window.got.length === 1);
  await page.evaluate(() => window.stop());
  await sdk.trigger('news', 'shout', { n: 2 });
  const other = await openEchoPage(context, server, { user: { id: '2', info: { name: 'two' } } });
  await other.evaluate(() => new Promise((resolve) => window.echo.join('lobby').here(resolve)));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(await page.evaluate(() => [window.got, window.joined]), [[1], []]);
  await context.close();
});

test('after the server is killed and restarted the page reconnects and resubscribes every channel', async () => {
  const own = await startPageServer();
  const ownSdk = await serverSdk(own);
  const context = await browser.newContext();
  const page = await openEchoPage(context, own);
  await page.evaluate(() => {
    window.statuses = [];
    window.echo.connector.onConnectionChange((status) => window.statuses.push(status));
  });
  await listen(page, 'channel', 'feed', '.item');
  await listen(page, 'private', 'inbox', '.item');
  await until(page, () => window.subscribed.length === 2);

  own.process.kill('SIGKILL');
  await until(page, () => window.echo.connectionStatus() === 'reconnecting');
  const restarted = await startPageServer({ port: own.port });
  try {
    await page.waitForFunction(() => window.subscribed.length === 4, null, { timeout: 15000, polling: 100 });
    await ownSdk.trigger(['feed', 'private-inbox'], 'item', { n: 1 });
    await until(page, () => window.got.length === 2);
    const statuses = await page.evaluate(() => window.statuses);
    assert.deepEqual(statuses.slice(-2), ['reconnecting', 'connected']);
  } finally {
    await context.close();
    await restarted.stop();
  }
});

/** The `pusher` server SDK with an encryption master key, which encrypts for encrypted channels. */
async function encryptingSdk() {
  const { default: Pusher } = await import('pusher');
  const encryptionMasterKeyBase64 = Buffer.alloc(32, 7).toString('base64');
  return new Pusher({
    appId: server.app.id, key: server.app.key, secret: server.app.secret,
    host: server.host, port: String(server.port), useTLS: false, encryptionMasterKeyBase64,
  });
}

test('encrypted private channels deliver what the server SDK encrypted, decrypted (overtone/with-encryption)', async () => {
  const encrypting = await encryptingSdk();
  const context = await browser.newContext();
  const page = await openEchoPage(context, server, { sdk: encrypting, entry: 'with-encryption' });
  await listen(page, 'encryptedPrivate', 'vault', '.opened');
  await until(page, () => window.subscribed.length === 1);
  await encrypting.trigger('private-encrypted-vault', 'opened', { secret: 'é☃ 42' });
  await until(page, () => window.got.length === 1);
  assert.deepEqual(await page.evaluate(() => window.got), [{ secret: 'é☃ 42' }]);
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('encrypted private channels on the base entry fail clearly, naming overtone/with-encryption', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server, { sdk: await encryptingSdk() });
  await page.evaluate(() => {
    window.errors = [];
    window.echo.encryptedPrivate('vault').error((error) => window.errors.push(error));
  });
  await until(page, () => window.errors.length === 1);
  const [error] = await page.evaluate(() => window.errors);
  assert.equal(error.type, 'AuthError');
  assert.match(error.error, /overtone\/with-encryption/);
  assert.equal(page.problems.length, 1);
  assert.match(page.problems[0], /private-encrypted-vault: .*import Echo from 'overtone\/with-encryption'/);
  await context.close();
});

test('a signed-in user receives events sent to them', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server, { user: { id: '42', info: {} } });
  await page.evaluate(() => {
    window.got = [];
    window.echo.user.listen('.ping', (data) => window.got.push(data));
    window.echo.signin();
  });
  await until(page, () => window.echo.user.id() === '42');
  await retrySend(() => sdk.sendToUser('42', 'ping', { n: 1 }), page);
  assert.deepEqual(await page.evaluate(() => window.got[0]), { n: 1 });
  await context.close();
});

/** Sends until the page got something: the user channel subscribes just after sign-in. */
async function retrySend(send, page) {
  for (let i = 0; i < 20; i++) {
    await send();
    if (await page.evaluate(() => window.got.length > 0)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the user event never arrived');
}

test('the X-Socket-ID helpers: headers for the app, and a fetch interceptor for same-origin calls', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  await until(page, () => window.echo.connectionStatus() === 'connected');
  const sent = new Promise((resolve) => page.on('request', (r) => r.url().endsWith('/demo/config.json') && resolve(r.headers())));
  const id = await page.evaluate(async () => {
    window.echo.interceptFetch();
    await fetch('/demo/config.json');
    return window.echo.socketId();
  });
  assert.equal((await sent)['x-socket-id'], id);
  assert.deepEqual(await page.evaluate(() => window.echo.socketIdHeaders()), { 'X-Socket-ID': id });
  await context.close();
});

test('auth headers given as a function are read on every request (token refresh)', async () => {
  const context = await browser.newContext();
  const page = await strictPage(context);
  await page.route('**/broadcasting/auth', async (route) => {
    const form = new URLSearchParams(route.request().postData() ?? '');
    if (route.request().headers().authorization !== 'Bearer fresh') return route.fulfill({ status: 401, body: '' });
    await route.fulfill({ json: sdk.authorizeChannel(form.get('socket_id'), form.get('channel_name')) });
  });
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => window.Echo);
  const outcomes = await page.evaluate(async ({ key, port }) => {
    window.token = 'stale';
    const echo = new window.Echo({ key, wsHost: '127.0.0.1', wsPort: port, forceTLS: false, auth: { headers: () => ({ Authorization: `Bearer ${window.token}` }) } });
    const outcome = (name) => new Promise((resolve) => echo.private(name).subscribed(() => resolve('subscribed')).error((e) => resolve(e.status)));
    const first = await outcome('before-refresh');
    window.token = 'fresh';
    return [first, await outcome('after-refresh')];
  }, { key: server.app.key, port: server.port });
  assert.deepEqual(outcomes, [401, 'subscribed']);
  await context.close();
});

test('text that is not ASCII crosses the wasm intact: user ids, event names, whispers', async () => {
  const context = await browser.newContext();
  const zoe = await openEchoPage(context, server, { user: { id: 'zoë-😀', info: { name: 'Zoë' } } });
  const two = await openEchoPage(context, server, { user: { id: '2', info: { name: 'two' } } });
  for (const page of [zoe, two]) {
    await page.evaluate(() => {
      window.all = [];
      window.whispers = [];
      window.room = window.echo
        .join('unicode')
        .listenToAll((event, data) => window.all.push([event, data]))
        .listenForWhisper('grüße', (data, meta) => window.whispers.push([data, meta]))
        .here(() => (window.ready = true));
    });
  }
  await until(zoe, () => window.ready && window.room.members().length === 2);
  await until(two, () => window.ready && window.room.members().length === 2);
  await zoe.evaluate(() => window.room.whisper('grüße', { text: 'héllo ✓ 😀 你好' }));
  await until(two, () => window.whispers.length === 1);
  assert.deepEqual(await two.evaluate(() => window.whispers[0]), [{ text: 'héllo ✓ 😀 你好' }, { user_id: 'zoë-😀' }]);
  await sdk.trigger('presence-unicode', 'événement', { n: 'ü' });
  await until(two, () => window.all.some(([event]) => event === '.événement'));
  assert.deepEqual(await two.evaluate(() => window.all.find(([event]) => event === '.événement')[1]), { n: 'ü' });
  assert.deepEqual((await two.evaluate(() => window.room.members().map((m) => m.name))).sort(), ['Zoë', 'two']);
  assert.deepEqual([...zoe.problems, ...two.problems], []);
  await context.close();
});

test('while reconnecting, whisper and typing drop their hint with a warning, and never throw', async () => {
  const context = await browser.newContext();
  const page = await openEchoPage(context, server);
  const warnings = [];
  page.on('console', (message) => message.type() === 'warning' && warnings.push(message.text()));
  await listen(page, 'private', 'chat.1', '.said');
  await until(page, () => window.subscribed.length === 1);
  await page.evaluate(() => window.echo.disconnect());
  await until(page, () => window.echo.connectionStatus() === 'disconnected');
  await page.evaluate(() => {
    const chat = window.echo.private('chat.1');
    chat.whisper('hello', { text: 'lost' });
    chat.typing();
  });
  // Unsent: the typing hint silently, the whisper said on the console.
  await page.waitForTimeout(300);
  assert.deepEqual(page.problems, []);
  assert.equal(warnings.filter((w) => w.includes('client-hello on private-chat.1 not sent')).length, 1, warnings.join('\n'));
  await context.close();
});
