// An app written for laravel-echo + pusher-js, as Laravel's resources/js/echo.js sets it up.
// The tests build it as is, and with `laravel-echo` resolved to `overtone` (../vite-echo.js):
// the one-import change a user makes.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

window.Pusher = Pusher;

// Where the test's server and auth endpoint are, and who this page signs in as.
const params = new URLSearchParams(location.search);
const user = params.get('user');

const echo = new Echo({
  broadcaster: 'reverb',
  key: params.get('key'),
  wsHost: params.get('host'),
  wsPort: Number(params.get('port')),
  wssPort: Number(params.get('port')),
  forceTLS: false,
  enabledTransports: ['ws', 'wss'],
  authEndpoint: params.get('auth'),
  // overtone's one connection for every tab (`?share`); laravel-echo passes it on, pusher-js ignores it.
  shareConnection: params.has('share'),
});

const log = (kind, data) => {
  const item = document.createElement('li');
  item.textContent = `${kind}: ${JSON.stringify(data)}`;
  document.getElementById('log').append(item);
};

const showStatus = (status) => {
  document.getElementById('status').textContent = status;
  document.getElementById('socket').textContent = echo.socketId() ?? '';
};
showStatus(echo.connectionStatus());
echo.connector.onConnectionChange(showStatus);

echo.channel('orders').listen('OrderShipped', (order) => log('order', order));

echo.private('chat').listenForWhisper('typing', (whisper) => log('whisper', whisper));

let members = [];
const showMembers = () =>
  (document.getElementById('members').textContent = members.map((m) => m.name).sort().join(','));
echo
  .join('room')
  .here((here) => { members = here; showMembers(); })
  .joining((member) => { members = [...members, member]; showMembers(); })
  .leaving((member) => { members = members.filter((m) => m.id !== member.id); showMembers(); });

echo
  .private(`App.Models.User.${user}`)
  .notification((notification) => log('notification', notification))
  .listen('.UserUpdated', (event) => log('model', event.model));

// What the test does as the user.
window.app = {
  whisper: (text) => echo.private('chat').whisper('typing', { text, user }),
  disconnect: () => echo.disconnect(),
  socketId: () => echo.socketId(),
};
