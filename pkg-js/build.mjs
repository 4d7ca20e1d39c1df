// Bundles the TypeScript layer with the wasm-bindgen glue into dist/, next to the .wasm
// (the glue finds it with `new URL('overtone_bg.wasm', import.meta.url)`), the React and Vue
// bindings on top of it, and the declarations of all three entries.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist/types/wasm', { recursive: true });

const common = { outdir: 'dist', bundle: true, format: 'esm', target: 'es2020', minify: true, sourcemap: true, logLevel: 'warning' };

await build({ ...common, entryPoints: { index: 'src/index.ts' } });

// The bindings import the Echo class from the built entry, so an app holds one copy of it.
const sharedEntry = {
  name: 'shared-entry',
  setup(build) {
    build.onResolve({ filter: /^\.\/index$/ }, () => ({ path: './index.js', external: true }));
  },
};
await build({
  ...common,
  entryPoints: { react: 'src/react.ts', vue: 'src/vue.ts' },
  external: ['react', 'vue'],
  plugins: [sharedEntry],
});

copyFileSync('wasm/overtone_bg.wasm', 'dist/overtone_bg.wasm');
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
// wasm-bindgen's declarations use Symbol.dispose: name the lib they need, so apps type-check
// without skipLibCheck whatever their own `lib` setting.
writeFileSync(
  'dist/types/wasm/overtone.d.ts',
  `/// <reference lib="esnext.disposable" />\n${readFileSync('wasm/overtone.d.ts', 'utf8')}`,
);
