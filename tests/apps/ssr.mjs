// Server-side rendering in plain Node, as a Next/Nuxt-style server would: imports overtone (and
// overtone/with-encryption) and both bindings by name and renders a component using the hooks. Prints the two HTML strings;
// any touch of `window` or of the wasm would throw instead.
import 'overtone';
import 'overtone/with-encryption';
import { createElement } from 'react';
import { renderToString as renderReact } from 'react-dom/server';
import * as react from 'overtone/react';
import { createSSRApp, h } from 'vue';
import { renderToString as renderVue } from 'vue/server-renderer';
import * as vue from 'overtone/vue';

const options = { broadcaster: 'reverb', key: 'ssr-key', wsHost: '127.0.0.1', wsPort: 1, forceTLS: false };

react.configureEcho(options);
function Live() {
  react.useEcho('orders', 'OrderShipped', () => {});
  const status = react.useConnectionStatus();
  const { typingUsers } = react.useTyping('chat');
  return createElement('p', null, `${status} ${typingUsers.length}`);
}

vue.configureEcho(options);
const VueLive = {
  setup() {
    vue.useEcho('orders', 'OrderShipped', () => {});
    const status = vue.useConnectionStatus();
    const { typingUsers } = vue.useTyping('chat');
    return () => h('p', `${status.value} ${typingUsers.value.length}`);
  },
};

console.log(JSON.stringify({
  react: renderReact(createElement(Live)),
  vue: await renderVue(createSSRApp(VueLive)),
}));
