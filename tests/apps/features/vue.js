// Overtone's typing, status and badge composables in a Vue page, on the fake Echo.
import { createApp, h, ref } from 'vue';
import { configureEcho, useBadge, usePresenceStatus, useTyping } from 'overtone/vue';

configureEcho({ broadcaster: 'reverb', key: 'features' });

const Features = {
  setup() {
    const { typingUsers, typing } = useTyping('chat');
    const statuses = usePresenceStatus('room');
    const { count, total, markRead } = useBadge('messages');
    Object.assign(window.app, { typing, markRead });
    return () => [
      h('output', { id: 'typing' }, typingUsers.value.map((user) => user.id).join(',')),
      h('output', { id: 'statuses' }, Object.entries(statuses.value).map(([id, status]) => `${id}:${status}`).sort().join(',')),
      h('output', { id: 'badge' }, `${count.value}/${total.value}`),
    ];
  },
};

const App = {
  setup() {
    const shown = ref(true);
    window.app = { unmount: () => (shown.value = false) };
    return () => (shown.value ? h(Features) : h('p', { id: 'gone' }, 'gone'));
  },
};

createApp(App).mount('#root');
