// A React app on overtone/react, written as one would for @laravel/echo-react. The test drives
// it through window.app and reads what it shows.
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import {
  configureEcho,
  echo,
  useConnectionStatus,
  useEcho,
  useEchoNotification,
  useEchoModel,
  useEchoPresence,
  useEchoPublic,
  useSocketId,
} from 'overtone/react';

// Where the test's server and auth endpoint are, and who this page signs in as.
const params = new URLSearchParams(location.search);
const user = params.get('user') ?? '';

configureEcho({
  broadcaster: 'reverb',
  key: params.get('key') ?? '',
  wsHost: params.get('host') ?? '',
  wsPort: Number(params.get('port')),
  wssPort: Number(params.get('port')),
  forceTLS: false,
  enabledTransports: ['ws', 'wss'],
  authEndpoint: params.get('auth') ?? '',
});

type Log = (kind: string, data: unknown) => void;

function Orders({ log }: { log: Log }) {
  // The payload type comes from the app's Events declaration (src/events.d.ts).
  useEcho('orders', 'OrderShipped', (order) => {
    const total: number = order.total;
    // @ts-expect-error OrderShipped declares no `customer`: the payload is typed, not `any`.
    void order.customer;
    log('order', { id: order.id, total });
  }, [], 'public');
  return null;
}

/** Re-renders every few ms, passing a new callback and new deps each time, while events flow. */
function Counter({ name }: { name: string }) {
  const [renders, setRenders] = useState(0);
  const [counted, setCounted] = useState<number[]>([]);
  useEffect(() => {
    const timer = setInterval(() => setRenders((r) => r + 1), 2);
    return () => clearInterval(timer);
  }, []);
  useEchoPublic<{ n: number }>('counter', '.counted', (event) => setCounted((c) => [...c, event.n]), [renders]);
  return (
    <p>
      {name}: <output id={`counted-${name}`}>{counted.join(',')}</output> after{' '}
      <output id={`renders-${name}`}>{renders}</output> renders
    </p>
  );
}

function Room() {
  const [members, setMembers] = useState<Record<string, string>>({});
  const { channel } = useEchoPresence('room');
  useEffect(() => {
    type Member = { id: string; name: string };
    channel()
      ?.here((here) => setMembers(Object.fromEntries((here as Member[]).map((m) => [m.id, m.name]))))
      .joining((m) => setMembers((all) => ({ ...all, [(m as Member).id]: (m as Member).name })))
      .leaving((m) => setMembers(({ [(m as Member).id]: _gone, ...rest }) => rest));
  }, [channel]);
  return <p>Members: <output id="members">{Object.values(members).sort().join(',')}</output></p>;
}

function App() {
  const [entries, setEntries] = useState<string[]>([]);
  const [counters, setCounters] = useState(['a', 'b']);
  const log: Log = (kind, data) => setEntries((all) => [...all, `${kind}: ${JSON.stringify(data)}`]);
  const status = useConnectionStatus();
  const socketId = useSocketId();
  const chat = useEcho<{ text: string; user: string }>('chat', '.client-typing', (whisper) => log('whisper', whisper));
  useEchoNotification(`App.Models.User.${user}`, (notification) => log('notification', notification));
  useEchoModel<{ name: string }, 'App.Models.User'>('App.Models.User', user, 'UserUpdated', (event) => log('model', event.model));

  useEffect(() => {
    Object.assign(window, {
      app: {
        whisper: (text: string) => chat.channel()?.whisper('typing', { text, user }),
        disconnect: () => echo().disconnect(),
        showCounters: (names: string[]) => setCounters(names),
      },
    });
  }, [chat]);

  return (
    <>
      <p>Connection: <output id="status">{status}</output> as <output id="socket">{socketId}</output></p>
      <Orders log={log} />
      <Room />
      {counters.map((name) => <Counter key={name} name={name} />)}
      <ol id="log">{entries.map((entry, i) => <li key={i}>{entry}</li>)}</ol>
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
