import { defineConfig } from 'vite';
import { outDir } from '../vite-echo.js';

export default defineConfig({ build: { outDir, emptyOutDir: true }, logLevel: 'warn' });
