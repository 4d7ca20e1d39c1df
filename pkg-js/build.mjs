// Bundles the TypeScript layer with the wasm-bindgen glue into dist/, next to the .wasm
// (the glue finds it with `new URL('overtone_bg.wasm', import.meta.url)`), the React and Vue
// bindings and the with-encryption entry on top of it, and the declarations of every entry.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist/types/wasm', { recursive: true });

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

/**
 * The glue with the one-letter import, export and module names wasm-opt gave the .wasm
 * (`--minify-imports-and-exports-and-modules`, whose mapping scripts/lib.sh saved as names.json).
 * Throws unless every import, the module and every export the glue uses were renamed.
 */
function renameWasmNames(glue, { imports, exports }) {
  const fail = (what) => {
    throw new Error(`renaming the wasm's names in the wasm-bindgen glue: ${what}`);
  };
  const MODULE = '"./overtone_bg.js": import0';
  if (glue.split(MODULE).length !== 2 || imports.some(([module]) => module !== './overtone_bg.js')) fail('not one module');
  glue = glue.replace(MODULE, '"a": import0');
  for (const [, name, short] of imports) {
    const key = new RegExp(`^(\\s+)${name.replace(/\$/g, '\\$')}:`, 'm');
    if (!key.test(glue)) fail(`import ${name} not found`);
    glue = glue.replace(key, (_, indent) => `${indent}${JSON.stringify(short)}:`);
  }
  if (/^\s+__wbg\w*:/m.test(glue)) fail('an import was not renamed');
  const byName = new Map(exports);
  return glue.replace(/\bwasm\.(\w+)\b/g, (_, name) => `wasm.${byName.get(name) ?? fail(`export ${name} not found`)}`);
}

// Dev servers pre-bundle dependencies elsewhere (Vite: node_modules/.vite/deps/), away from the
// .wasm the glue's URL points at. They resolve the `development` export condition, whose entries
// (dist/dev/) carry the wasm inline as a data: URL, so no app needs configuring; production builds
// and plain pages get the lean entries, with the .wasm as a file.
const WASM_URL = "new URL('overtone_bg.wasm', import.meta.url)";
// with-encryption.js points the same glue at the encryption build.
const ENCRYPTION_URL = "new URL('overtone_encryption_bg.wasm', import.meta.url)";
const dataUrl = (file) => `new URL('data:application/wasm;base64,${readFileSync(file).toString('base64')}')`;
const wasmGlue = (inline) => ({
  name: 'wasm-glue',
  setup(build) {
    // The wasm's one import, `out`, lives in the layer (client-wasm/src/web/shell.rs).
    build.onResolve({ filter: /^overtone-io$/ }, () => ({ path: resolve('src/client.ts') }));
    build.onLoad({ filter: /wasm[\\/]overtone\.js$/ }, ({ path }) => {
      const glue = renameWasmNames(readFileSync(path, 'utf8'), JSON.parse(readFileSync('wasm/names.json', 'utf8')));
      if (!glue.includes(WASM_URL)) throw new Error(`the wasm-bindgen glue no longer loads the wasm with ${WASM_URL}`);
      return { contents: inline ? glue.replace(WASM_URL, dataUrl('wasm/overtone_bg.wasm')) : glue, loader: 'js' };
    });
    build.onLoad({ filter: /src[\\/]with-encryption\.ts$/ }, ({ path }) => {
      const source = readFileSync(path, 'utf8');
      if (!source.includes(ENCRYPTION_URL)) throw new Error(`src/with-encryption.ts no longer names ${ENCRYPTION_URL}`);
      const url = inline ? dataUrl('wasm-encryption/overtone_bg.wasm') : ENCRYPTION_URL;
      return { contents: source.replace(ENCRYPTION_URL, url), loader: 'ts' };
    });
  },
});

for (const [outdir, minify, inline] of [['dist', true, false], ['dist/dev', false, true]]) {
  await build({ ...common, outdir, minify, entryPoints: { index: 'src/index.ts' }, plugins: [wasmGlue(inline)] });
  await build({
    ...common,
    outdir,
    minify,
    entryPoints: { react: 'src/react.ts', vue: 'src/vue.ts', 'with-encryption': 'src/with-encryption.ts' },
    external: ['react', 'vue'],
    plugins: [sharedEntry, wasmGlue(inline)],
  });
}

copyFileSync('wasm/overtone_bg.wasm', 'dist/overtone_bg.wasm');
copyFileSync('wasm-encryption/overtone_bg.wasm', 'dist/overtone_encryption_bg.wasm');
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
// wasm-bindgen's declarations use Symbol.dispose: name the lib they need, so apps type-check
// without skipLibCheck whatever their own `lib` setting.
writeFileSync(
  'dist/types/wasm/overtone.d.ts',
  `/// <reference lib="esnext.disposable" />\n${readFileSync('wasm/overtone.d.ts', 'utf8')}`,
);
