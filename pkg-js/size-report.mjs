// Prints what an app ships for Overtone (the wasm, the TypeScript layer, each entry and each
// framework binding on top, and the features module fetched on use) in gzip -9 and brotli bytes,
// against what the same app ships with laravel-echo + pusher-js, and fails when a row is over its
// budget.
//
// Budgets: what laravel-echo 2.5 + pusher-js 8.6 weigh bundled and minified (esbuild --bundle
// --minify, one file, gzip -9), measured with those packages from npm:
//   overtone                  laravel-echo + pusher-js                            21.7 KB
//   overtone/with-encryption  laravel-echo + pusher-js/with-encryption            32.9 KB
//   overtone + react          + what @laravel/echo-react 2.5 adds on top (1.4 KB)  23.1 KB
//   overtone + vue            + what @laravel/echo-vue 2.5 adds on top (1.3 KB)    23.0 KB
// (@laravel/echo-react and -vue carry their own copy of laravel-echo's Echo: an app using them
// ships echo-react + pusher-js, 23.0 KB, 1.4 KB more than laravel-echo + pusher-js; -vue 22.9 KB.)
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET_GZIP = {
  overtone: 21_700,
  'overtone/with-encryption': 32_900,
  'overtone + react': 23_100,
  'overtone + vue': 23_000,
};

const gzip = (buf) => gzipSync(buf, { level: 9 }).length;
const brotli = (buf) =>
  brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;

/** Compressed sizes of a set of files, each compressed on its own as a server would send it. */
function measure(files) {
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    console.error(`not built: ${missing.join(', ')} (run build_package)`);
    process.exit(1);
  }
  const bufs = files.map((f) => readFileSync(f));
  return {
    raw: bufs.reduce((n, b) => n + b.length, 0),
    gzip: bufs.reduce((n, b) => n + gzip(b), 0),
    brotli: bufs.reduce((n, b) => n + brotli(b), 0),
  };
}

// The wasm is loaded on first use, from the entry's own build: `overtone` (and the bindings on
// it) fetch overtone_bg.wasm, `overtone/with-encryption` overtone_encryption_bg.wasm. Typing,
// statuses and badges are a module of their own (a chunk and its .wasm), fetched only by apps
// that use them, on first use: shown on its own row, outside the budgets.
/** `file` and the chunks it imports statically (not `import()`), as a browser loads them. */
function withChunks(file) {
  const chunks = [...readFileSync(`dist/${file}`, 'utf8').matchAll(/from\s*"\.\/(chunk-\w+\.js)"/g)];
  return [`dist/${file}`, ...chunks.flatMap(([, chunk]) => withChunks(chunk))];
}
const index = withChunks('index.js');
const core = ['dist/overtone_bg.wasm', ...index];
const featureChunks = readdirSync('dist').filter((f) => /^features-\w+\.js$/.test(f));
if (featureChunks.length !== 1) {
  console.error(`expected one features chunk in dist/, found ${featureChunks.length}`);
  process.exit(1);
}
// What the features add: their .wasm and chunk, and none of the chunks `overtone` has already.
const featuresModule = ['dist/overtone_features_bg.wasm', ...withChunks(featureChunks[0]).filter((f) => !index.includes(f))];
// What `shareConnection` adds, fetched only by apps that turn it on: the tab's side (a chunk) and
// the worker (one file, with the client's layer; the .wasm is the one above).
const sharedChunks = readdirSync('dist').filter((f) => /^shared-\w+\.js$/.test(f) && f !== 'shared-worker.js');
if (sharedChunks.length !== 1) {
  console.error(`expected one shared-connection chunk in dist/, found ${sharedChunks.length}`);
  process.exit(1);
}
const sharedConnection = [...withChunks(sharedChunks[0]).filter((f) => !index.includes(f)), 'dist/shared-worker.js'];
/**
 * What the pusher-js facade (`echo.connector.pusher`, src/pusher.ts) adds to the layer: the
 * layer bundled as one minified file (as build.mjs minifies it) with it, less the same with the
 * module stubbed out.
 */
async function facadeShare() {
  const stub = {
    name: 'without-facade',
    setup(b) {
      const contents = 'export class Pusher {} export class PusherChannel {} export const named = (t) => t;';
      b.onLoad({ filter: /src[\\/]pusher\.ts$/ }, () => ({ contents, loader: 'js' }));
    },
  };
  const bundle = async (plugins) => {
    // The wasm2js twins are files of their own (build.mjs), never in the layer.
    const options = { entryPoints: ['src/index.ts'], bundle: true, format: 'esm', target: 'es2020', minify: true, mangleProps: /_$/, external: ['./*_wasm2js.js'] };
    return (await build({ ...options, write: false, plugins })).outputFiles[0].contents;
  };
  const [full, without] = await Promise.all([bundle([]), bundle([stub])]);
  return { raw: full.length - without.length, gzip: gzip(full) - gzip(without), brotli: brotli(full) - brotli(without) };
}

const rows = [
  ['wasm', measure(['dist/overtone_bg.wasm'])],
  ['wasm (with encryption)', measure(['dist/overtone_encryption_bg.wasm'])],
  ['layer (js)', measure(index)],
  ['  of which connector.pusher', await facadeShare()],
  ['overtone', measure(core)],
  ['overtone/with-encryption', measure(['dist/overtone_encryption_bg.wasm', ...index, 'dist/with-encryption.js'])],
  ...['react', 'vue'].map((binding) => [`overtone + ${binding}`, measure([...core, `dist/${binding}.js`])]),
  ['typing/status/badges, on use', measure(featuresModule)],
  ['shareConnection, on use', measure(sharedConnection)],
  ['  of which the worker', measure(['dist/shared-worker.js'])],
  // Where WebAssembly cannot run (a CSP without 'wasm-unsafe-eval', a runtime without it): the
  // JavaScript twin instead of the .wasm, fetched only there.
  ['overtone without wasm (CSP)', measure([...index, 'dist/overtone_wasm2js.js'])],
];

const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
console.log(
  'what an app ships'.padEnd(30),
  ...['raw', 'gzip -9', 'brotli', 'budget'].map((h) => h.padStart(10)),
);
const over = [];
for (const [name, m] of rows) {
  const budget = BUDGET_GZIP[name];
  console.log(name.padEnd(30), ...[m.raw, m.gzip, m.brotli, budget].map((n) => (n ? kb(n) : '').padStart(10)));
  if (budget !== undefined && m.gzip > budget) over.push(`${name} ${m.gzip} B > ${budget} B`);
}
if (over.length > 0) {
  console.error(`over the budget (laravel-echo + pusher-js): ${over.join('; ')}`);
  process.exit(1);
}
console.log('every entry weighs less than laravel-echo + pusher-js');
