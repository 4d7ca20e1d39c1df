// The app's presence grace period: a member's page reloads (its socket closes, a new one joins
// again) and the other members hear nothing of it with a 3 s grace; without one they hear a
// `leaving` + `joining` pair. A member who does not come back leaves once the grace is over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from '../lib/browser.mjs';
import { openEchoPage, until } from '../lib/client-page.mjs';
import { app, appToml, pause, startServerWithoutApp, writeConfig } from '../lib/server.mjs';

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'fixture');
let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A server serving the fixture page, its app with `presence_grace_ms = grace`. */
async function serverWithGrace(grace) {
  const config = writeConfig(appToml(app, `presence_grace_ms = ${grace}\n`));
  const server = await startServerWithoutApp({ args: ['--config', config.path], demo: { site: fixture } });
  return { ...server, stop: () => server.stop().then(config.remove) };
}

/** Joins `presence-room` from `page`'s `window.echo`; what it hears goes to `window.heard`. */
function joinRoom(page) {
  return page.evaluate(() => {
    window.heard = [];
    window.echo.join('room')
      .here((members) => window.heard.push(`here ${members.length}`))
      .joining((member) => window.heard.push(`joining ${member.name}`))
      .leaving((member) => window.heard.push(`leaving ${member.name}`));
  });
}

/** What `watcher` hears while `member`'s page reloads and joins again, then closes for good. */
async function reloadThenClose(grace) {
  const server = await serverWithGrace(grace);
  const watcherContext = await browser.newContext();
  const memberContext = await browser.newContext();
  try {
    const watcher = await openEchoPage(watcherContext, server, { user: { id: '1', info: { name: 'watcher' } } });
    await joinRoom(watcher);
    await until(watcher, () => window.heard.includes('here 1'));
    const options = { user: { id: '2', info: { name: 'member' } } };
    const member = await openEchoPage(memberContext, server, options);
    await joinRoom(member);
    await until(watcher, () => window.heard.includes('joining member'));
    await watcher.evaluate(() => window.heard.splice(0));

    await member.reload();
    await member.waitForFunction(() => window.Echo);
    await member.evaluate(({ port, key }) => {
      window.echo = new window.Echo({ broadcaster: 'reverb', key, wsHost: '127.0.0.1', wsPort: port, forceTLS: false });
    }, { port: server.port, key: app.key });
    await joinRoom(member);
    await until(member, () => window.heard.includes('here 2'));
    await pause(grace + 1000);
    const duringReload = await watcher.evaluate(() => window.heard.splice(0));

    await memberContext.close();
    await until(watcher, () => window.heard.includes('leaving member'));
    return duringReload;
  } finally {
    await memberContext.close();
    await watcherContext.close();
    await server.stop();
  }
}

test('with a 3 s presence grace, a member reloading their page is no leave and join for the others', async () => {
  assert.deepEqual(await reloadThenClose(3000), []);
});

test('without a grace, the same reload is a leave and a join', async () => {
  assert.deepEqual(await reloadThenClose(0), ['leaving member', 'joining member']);
});
