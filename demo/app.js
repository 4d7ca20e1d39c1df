// The demo page: uses the overtone package exactly as an app would.
import Echo from '/pkg/index.js';

const params = new URLSearchParams(location.search);
const channel = params.get('channel') ?? 'demo';
const event = params.get('event') ?? 'greeting';
document.getElementById('channel-name').textContent = channel;

const { key } = await (await fetch('/demo/config.json')).json();
const echo = new Echo({
  broadcaster: 'reverb',
  key,
  wsHost: location.hostname,
  wsPort: Number(location.port || 80),
  forceTLS: location.protocol === 'https:',
});

echo.channel(channel).listen(`.${event}`, (data) => {
  const item = document.createElement('li');
  item.textContent = `${event}: ${JSON.stringify(data)}`;
  document.getElementById('events').append(item);
});
