// laravel-echo + pusher-js behind overtone's one-argument Echo constructor: with it in place of
// overtone's class (ECHO=laravel-echo, see vite-echo.js), the React and Vue apps run our
// bindings on the reference implementation of the API they are written against.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

export default class extends Echo {
  constructor(options) {
    super({ Pusher, ...options });
  }
}
