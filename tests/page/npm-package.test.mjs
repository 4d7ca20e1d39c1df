// The packed overtone package as a user gets it (installed in tests/apps from its tarball):
// SSR imports and renders in plain Node without touching `window`, the declarations type an
// app's event payloads, and a Vite build, Vite's dev server, a webpack build and a page with no
// bundler each load the wasm with no step of the user's (the dev server pre-bundles the package
// away from its .wasm: it gets the `development` entries, which carry the wasm inline; see
// pkg-js/build.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { launchBrowser, strictPage, retryUntil } from '../lib/browser.mjs';
import { appDir, serveApp } from '../apps/harness.mjs';

const run = promisify(execFile);
const apps = fileURLToPath(new URL('../apps/', import.meta.url));

test('SSR in plain Node: overtone, overtone/react and overtone/vue import and render', async () => {
  const { stdout } = await run(process.execPath, ['ssr.mjs'], { cwd: apps });
  assert.deepEqual(JSON.parse(stdout), { react: '<p>connecting 0</p>', vue: '<p>connecting 0</p>' });
});

test("the declarations type a payload by the app's Events interface", async () => {
  // The React app reads order.total as a number and expects an error on an undeclared field.
  await run(process.execPath, [path.join(apps, 'node_modules/typescript/bin/tsc'), '-p', 'react/tsconfig.json'], { cwd: apps });
});

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Opens `url` and waits for a headline triggered on the page's server to show. */
async function receivesHeadline(url, served) {
  const page = await strictPage(await browser.newContext());
  await page.goto(url);
  const items = page.locator('#log li');
  await retryUntil(
    () => served.sdk.trigger('news', 'headline', { title: 'wasm loaded' }),
    async () => (await items.count()) > 0,
    { what: 'the headline on the page' },
  );
  assert.equal(await items.first().textContent(), 'headline: {"title":"wasm loaded"}');
  assert.deepEqual(page.problems, []);
  await page.context().close();
}

test('a Vite build loads the wasm', async () => {
  const served = await serveApp(appDir('listen', 'overtone'));
  try {
    await receivesHeadline(served.url('reader'), served);
  } finally {
    await served.stop();
  }
});

test('a webpack build loads the wasm', async () => {
  const served = await serveApp(appDir('listen', 'webpack'));
  try {
    await receivesHeadline(served.url('reader'), served);
  } finally {
    await served.stop();
  }
});

test('a <script type="module"> page with no bundler loads the wasm', async () => {
  const served = await serveApp(path.join(apps, 'listen'));
  try {
    await receivesHeadline(served.url('reader'), served);
  } finally {
    await served.stop();
  }
});

test("Vite's dev server loads the wasm", async () => {
  const { createServer } = await import(path.join(apps, 'node_modules/vite/dist/node/index.js'));
  const served = await serveApp(appDir('listen', 'overtone'));
  const vite = await createServer({
    root: path.join(apps, 'listen'),
    server: { host: '127.0.0.1', port: 0 },
    // Pre-bundle afresh: the cache may hold an earlier build of the package.
    optimizeDeps: { force: true },
    logLevel: 'warn',
  });
  try {
    await vite.listen();
    const { port } = vite.httpServer.address();
    const query = new URL(served.url('reader')).search;
    await receivesHeadline(`http://127.0.0.1:${port}/${query}`, served);
  } finally {
    await vite.close();
    await served.stop();
  }
});
