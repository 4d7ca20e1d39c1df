// Bundles the TypeScript layer into dist/, next to the .wasm modules (found with
// `new URL('overtone_bg.wasm', import.meta.url)` and the like), the React and Vue bindings and
// the with-encryption entry on top of it, and the declarations of every entry.
import { build, transform } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist', { recursive: true });

// mangleProps: the layer's internal members are named with a trailing `_` (nothing else in the
// bundle is: the public API, the glue and the DOM never are), and esbuild cannot shorten
// property names otherwise. Each build mangles only its own: no such member crosses entries.
const common = { bundle: true, format: 'esm', target: 'es2020', sourcemap: true, logLevel: 'warning', mangleProps: /_$/ };

// The bindings import the Echo class from the built entry next to them, so an app holds one copy.
const sharedEntry = {
  name: 'shared-entry',
  setup(build) {
    build.onResolve({ filter: /^\.\/index$/ }, () => ({ path: './index.js', external: true }));
  },
};

// Each .wasm's JavaScript twin (wasm2js) is imported only where the .wasm cannot run: it stays a
// file of its own next to the entries, never bundled into them.
const TWINS = ['overtone', 'overtone_encryption', 'overtone_features'].map((name) => `${name}_wasm2js.js`);
const twinsApart = {
  name: 'wasm2js-twins',
  setup(build) {
    build.onResolve({ filter: /_wasm2js\.js$/ }, ({ path }) => ({ path, external: true }));
  },
};

// Dev servers pre-bundle dependencies elsewhere (Vite: node_modules/.vite/deps/), away from the
// .wasm files the URLs point at. They resolve the `development` export condition, whose entries
// (dist/dev/) carry each wasm inline as a data: URL, so no app needs configuring; production
// builds and plain pages get the lean entries, with the .wasm as files.
const WASM = ['overtone_bg.wasm', 'overtone_encryption_bg.wasm', 'overtone_features_bg.wasm'];
const urlOf = (file) => `new URL('${file}', import.meta.url)`;
const inlineWasm = {
  name: 'inline-wasm',
  setup(build) {
    build.onLoad({ filter: /src[\\/](index|with-encryption|features|worker|shared)\.ts$/ }, ({ path }) => {
      let source = readFileSync(path, 'utf8');
      for (const file of WASM) {
        const data = `new URL('data:application/wasm;base64,${readFileSync(`wasm/${file}`).toString('base64')}')`;
        source = source.replace(urlOf(file), data);
      }
      return { contents: source, loader: 'ts' };
    });
  },
};

for (const [outdir, minify, inline] of [['dist', true, false], ['dist/dev', false, true]]) {
  const plugins = inline ? [inlineWasm, twinsApart] : [twinsApart];
  // Split: the features module's page side is a chunk of its own, imported on first use.
  await build({
    ...common,
    outdir,
    minify,
    splitting: true,
    chunkNames: '[name]-[hash]',
    entryPoints: { index: 'src/index.ts' },
    plugins,
  });
  // The shared connection's worker (`shareConnection`): one file, loaded only by apps that turn it on.
  await build({ ...common, outdir, minify, entryPoints: { 'shared-worker': 'src/worker.ts' }, plugins });
  await build({
    ...common,
    outdir,
    minify,
    entryPoints: { react: 'src/react.ts', vue: 'src/vue.ts', 'with-encryption': 'src/with-encryption.ts' },
    external: ['react', 'vue'],
    plugins: [sharedEntry, ...plugins],
  });
}

// Each wasm URL must still be in the sources, or the files below would be orphans.
const sources = ['index', 'with-encryption', 'features'].map((name) => readFileSync(`src/${name}.ts`, 'utf8')).join('');
for (const file of WASM) {
  if (!sources.includes(urlOf(file))) throw new Error(`no source loads ${file} with ${urlOf(file)}`);
  copyFileSync(`wasm/${file}`, `dist/${file}`);
}
// wasm2js writes a module importing `o` and exporting the instance's exports; the loader
// (wasm.ts) wants the function that instantiates it with the page's imports.
for (const twin of TWINS) {
  const source = readFileSync(`wasm/${twin}`, 'utf8')
    .replace(/^import \* as o from 'o';$/m, '')
    .replace(/^var retasmFunc = [\s\S]*$/m, 'export default asmFunc;\n');
  if (!source.includes('export default asmFunc')) throw new Error(`wasm/${twin} is not wasm2js output as expected`);
  const { code } = await transform(source, { format: 'esm', minify: true, target: 'es2020' });
  for (const dir of ['dist', 'dist/dev']) writeFileSync(`${dir}/${twin}`, code);
}
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
