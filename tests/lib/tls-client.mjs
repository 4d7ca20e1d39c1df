// A pusher-js client over wss:// (forceTLS) in its own process, since pusher-js takes no CA
// option: its parent starts it with NODE_EXTRA_CA_CERTS naming the test's self-signed
// certificate. Usage: node tls-client.mjs PORT KEY CHANNEL. It prints one JSON line per thing
// that happens ({state}, {subscribed}, {event, data}, {closed: code}) and exits when stdin ends.
import Pusher from 'pusher-js';

const [port, key, channelName] = process.argv.slice(2);
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const client = new Pusher(key, {
  cluster: 'mt1',
  wsHost: '127.0.0.1',
  wssPort: Number(port),
  forceTLS: true,
  enabledTransports: ['ws'],
  disableStats: true,
  activityTimeout: 60000,
});
client.connection.bind('state_change', ({ current }) => {
  say({ state: current });
  if (current === 'connected') {
    client.connection.connection.transport.socket.addEventListener('close', (e) => say({ closed: e.code }));
  }
});
const channel = client.subscribe(channelName);
channel.bind('pusher:subscription_succeeded', () => say({ subscribed: channelName }));
channel.bind_global((event, data) => !event.startsWith('pusher:') && say({ event, data }));
process.stdin.on('end', () => {
  client.disconnect();
  process.exit(0);
});
process.stdin.resume();
