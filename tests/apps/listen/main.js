// The smallest overtone app: one public channel, one event. It checks that Vite's dev server,
// its build, and a page with no bundler at all each load the wasm with no step of the user's.
import Echo from 'overtone';

const params = new URLSearchParams(location.search);
const echo = new Echo({
  broadcaster: 'reverb',
  key: params.get('key'),
  wsHost: params.get('host'),
  wsPort: Number(params.get('port')),
  forceTLS: false,
});

echo.channel('news').listen('.headline', (data) => {
  const item = document.createElement('li');
  item.textContent = `headline: ${JSON.stringify(data)}`;
  document.getElementById('log').append(item);
});
