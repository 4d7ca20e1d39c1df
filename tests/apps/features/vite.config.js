import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import vue from '@vitejs/plugin-vue';
import { fileURLToPath } from 'node:url';
import { outDir } from '../vite-echo.js';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));

// The bindings' Echo class (their `./index.js`) is the fake one.
const fakeEcho = {
  name: 'fake-echo',
  enforce: 'pre',
  resolveId(source, importer) {
    if (source === './index.js' && importer?.includes('/node_modules/overtone/dist/')) {
      return here('./fake-echo.js');
    }
  },
};

export default defineConfig({
  plugins: [react(), vue(), fakeEcho],
  build: { outDir, emptyOutDir: true, rollupOptions: { input: { react: here('./react.html'), vue: here('./vue.html') } } },
  logLevel: 'warn',
});
