import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { bindingsOnLaravelEcho, outDir } from '../vite-echo.js';

export default defineConfig({
  plugins: [react(), bindingsOnLaravelEcho],
  build: { outDir, emptyOutDir: true },
  logLevel: 'warn',
});
