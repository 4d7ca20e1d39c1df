import { createApp } from 'vue';
import { configureEcho } from 'overtone/vue';
import App from './App.vue';

// Where the test's server and auth endpoint are.
const params = new URLSearchParams(location.search);

configureEcho({
  broadcaster: 'reverb',
  key: params.get('key'),
  wsHost: params.get('host'),
  wsPort: Number(params.get('port')),
  wssPort: Number(params.get('port')),
  forceTLS: false,
  enabledTransports: ['ws', 'wss'],
  authEndpoint: params.get('auth'),
});

createApp(App).mount('#app');
