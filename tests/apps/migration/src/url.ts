// Constructs Echo with the options in the query (`?options=<json>`), as an app's echo.js does:
// the test records the URL of the WebSocket it opens.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

window.Pusher = Pusher;
window.Echo = new Echo(JSON.parse(new URLSearchParams(location.search).get('options')!));
