// Picks whose Echo class an app's build runs on, from the ECHO variable: 'overtone' (the
// default), 'laravel-echo', or 'fake' (features/); each build goes to dist-<ECHO>/ so they can
// be served side by side.
import { fileURLToPath } from 'node:url';

export const echo = process.env.ECHO ?? 'overtone';

export const outDir = `dist-${echo}`;

/** The plain app imports laravel-echo: on overtone that is the one import a user changes. */
export const plainAlias = echo === 'overtone' ? { 'laravel-echo': 'overtone' } : {};

/** For the React and Vue apps: the bindings' Echo class (their `./index.js`) from laravel-echo. */
export const bindingsOnLaravelEcho = {
  name: 'bindings-on-laravel-echo',
  enforce: 'pre',
  resolveId(source, importer) {
    if (echo === 'laravel-echo' && source === './index.js' && importer?.includes('/node_modules/overtone/dist/')) {
      return fileURLToPath(new URL('./laravel-echo-class.js', import.meta.url));
    }
  },
};
