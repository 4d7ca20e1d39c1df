// `import Echo from 'overtone/with-encryption'`: the same API as `overtone`, with the wasm build
// that also decrypts `private-encrypted-` channels (XSalsa20-Poly1305), as pusher-js ships
// `pusher-js/with-encryption`. The Echo class and the wasm glue are the ones in `overtone` (the
// React and Vue bindings share them): importing this entry once, anywhere in the app, switches
// every client to this build's .wasm (loaded on first use, like the other).
import { useEncryptionBuild } from './index';

useEncryptionBuild(new URL('overtone_encryption_bg.wasm', import.meta.url), () => import('./overtone_encryption_wasm2js.js'));

export * from './index';
export { default } from './index';
