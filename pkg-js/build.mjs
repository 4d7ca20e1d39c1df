// Bundles the TypeScript layer with the wasm-bindgen glue into dist/, next to the .wasm
// (the glue finds it with `new URL('overtone_bg.wasm', import.meta.url)`).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: { index: 'src/index.ts' },
  outdir: 'dist',
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});
copyFileSync('wasm/overtone_bg.wasm', 'dist/overtone_bg.wasm');
