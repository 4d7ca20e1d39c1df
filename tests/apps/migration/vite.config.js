import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';
import { outDir, plainAlias } from '../vite-echo.js';

const page = (file) => fileURLToPath(new URL(file, import.meta.url));

export default defineConfig({
  resolve: { alias: plainAlias },
  build: { outDir, emptyOutDir: true, rollupOptions: { input: [page('index.html'), page('url.html')] } },
  logLevel: 'warn',
});
