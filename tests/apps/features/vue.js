// Overtone's typing, status, read-receipt and badge composables in a Vue page, on the fake Echo.
import { createApp, h, ref } from 'vue';
import { configureEcho, useBadge, useMemberStatus, usePresenceStatus, useReads, useTyping } from 'overtone/vue';

configureEcho({ broadcaster: 'reverb', key: 'features' });

const Features = {
  setup() {
    const { typingUsers, typing } = useTyping('chat');
    const statuses = usePresenceStatus('room');
    const { count, total, markRead } = useBadge('messages');
    const { reads, markRead: readUpTo } = useReads('dm');
    const { statuses: details, setStatus } = useMemberStatus('room');
    Object.assign(window.app, { typing, markRead, readUpTo, setStatus });
    return () => [
      h('output', { id: 'typing' }, typingUsers.value.map((user) => user.id).join(',')),
      h('output', { id: 'statuses' }, Object.entries(statuses.value).map(([id, status]) => `${id}:${status}`).sort().join(',')),
      h('output', { id: 'badge' }, `${count.value}/${total.value}`),
      h('output', { id: 'reads' }, `${Object.entries(reads.value.readers).map(([id, upTo]) => `${id}:${upTo}`).join(',')}/${reads.value.unread}`),
      h('output', { id: 'details' }, Object.entries(details.value?.members ?? {}).map(([id, m]) => `${id}:${m.status}:${m.message}`).join(',')),
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
