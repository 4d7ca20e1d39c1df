// Overtone's typing, status and badge hooks in a React page under StrictMode, on the fake Echo.
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { configureEcho, useBadge, usePresenceStatus, useTyping } from 'overtone/react';

configureEcho({ broadcaster: 'reverb', key: 'features' });

function Features() {
  const { typingUsers, typing } = useTyping('chat');
  const statuses = usePresenceStatus('room');
  const { count, total, markRead } = useBadge('messages');
  useEffect(() => {
    Object.assign(window.app, { typing, markRead });
  });
  return (
    <>
      <output id="typing">{typingUsers.map((user) => user.id).join(',')}</output>
      <output id="statuses">{Object.entries(statuses).map(([id, status]) => `${id}:${status}`).sort().join(',')}</output>
      <output id="badge">{count}/{total}</output>
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
