// `import Echo from 'overtone/with-encryption'`: the same API as `overtone`, with the wasm build
// that also decrypts `private-encrypted-` channels (XSalsa20-Poly1305), as pusher-js ships
// `pusher-js/with-encryption`. The Echo class is the one in `overtone` (the React and Vue
// bindings share it): importing this entry once, anywhere in the app, switches every client to
// this build (loaded on first use, like the other).
import { useEncryptionBuild } from './index';

useEncryptionBuild(() => import('../wasm-encryption/overtone.js'));

export * from './index';
export { default } from './index';
