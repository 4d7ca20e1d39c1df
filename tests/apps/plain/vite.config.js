import { defineConfig } from 'vite';
import { outDir, plainAlias } from '../vite-echo.js';

export default defineConfig({
  resolve: { alias: plainAlias },
  build: { outDir, emptyOutDir: true },
  logLevel: 'warn',
});
