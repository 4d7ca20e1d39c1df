// The listen app built by webpack 5, which makes the glue's
// `new URL('overtone_bg.wasm', import.meta.url)` an asset of its own build.
import { fileURLToPath } from 'node:url';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));

export default {
  mode: 'production',
  entry: here('./main.js'),
  output: { path: here('./dist-webpack'), filename: 'main.js', clean: true },
};
