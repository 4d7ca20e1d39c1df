// Overtone's typing, status, read-receipt and badge hooks in a React page under StrictMode, on
// the fake Echo.
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { configureEcho, useBadge, useMemberStatus, usePresenceStatus, useReads, useTyping } from 'overtone/react';

configureEcho({ broadcaster: 'reverb', key: 'features' });

function Features() {
  const { typingUsers, typing } = useTyping('chat');
  const statuses = usePresenceStatus('room');
  const { count, total, markRead } = useBadge('messages');
  const { reads, markRead: readUpTo } = useReads('dm');
  const { statuses: details, setStatus } = useMemberStatus('room');
  useEffect(() => {
    Object.assign(window.app, { typing, markRead, readUpTo, setStatus });
  });
  return (
    <>
      <output id="typing">{typingUsers.map((user) => user.id).join(',')}</output>
      <output id="statuses">{Object.entries(statuses).map(([id, status]) => `${id}:${status}`).sort().join(',')}</output>
      <output id="badge">{count}/{total}</output>
      <output id="reads">{Object.entries(reads.readers).map(([id, upTo]) => `${id}:${upTo}`).join(',')}/{reads.unread}</output>
      <output id="details">{Object.entries(details?.members ?? {}).map(([id, m]) => `${id}:${m.status}:${m.message}`).join(',')}</output>
    </>
  );
}

function App() {
  const [shown, setShown] = useState(true);
  window.app = { unmount: () => setShown(false) };
  return shown ? <Features /> : <p id="gone">gone</p>;
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
