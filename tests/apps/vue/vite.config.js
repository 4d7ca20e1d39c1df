import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';
import { bindingsOnLaravelEcho, outDir } from '../vite-echo.js';

export default defineConfig({
  plugins: [vue(), bindingsOnLaravelEcho],
  build: { outDir, emptyOutDir: true },
  logLevel: 'warn',
});
