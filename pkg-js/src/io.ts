// The page's side of the wasm client: its IO and its JSON. The wasm asks for everything through
// one function, `out(kind, a, b)` (the kinds are `Out` in client-wasm/src/web/shell.rs), and
// hears back through its one entry point: the socket's frames (parsed here with JSON.parse),
// closes and errors, the one timer, window events, and the badges kept in localStorage and
// shared with the user's other tabs over a BroadcastChannel.
import type { Client as Wasm } from '../wasm/overtone.js';
import { wrap, type Client } from './client.js';

/** What the wasm asks of the layer beyond IO. */
export interface Hooks {
  authorize(channel: string, socketId: string): void;
  authorizeUser(socketId: string): void;
  stateChanged(state: string): void;
  error(code: number | undefined, message: string): void;
}

export interface Options {
  key: string;
  host: string;
  wsPort: number;
  wssPort: number;
  forceTLS: boolean;
  path?: string;
  namespace: string | null;
  awayAfterMs?: number;
  /** Tabs with the same scope share their badges. */
  badgeScope: string;
}

/** A wasm client doing its IO in this page. Only in a browser. */
export function start(Client: typeof Wasm, options: Options, hooks: Hooks): Client {
  const storageKey = `overtone-badges:${options.badgeScope}`;
  let stored: string | null = null;
  try {
    stored = localStorage.getItem(storageKey);
  } catch {
    // Disabled storage: the badges still work for this page's life.
  }
  let socket: WebSocket | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tabs = typeof BroadcastChannel === 'function' ? new BroadcastChannel(storageKey) : undefined;

  const closeSocket = () => {
    if (!socket) return;
    socket.onmessage = socket.onclose = socket.onerror = null;
    socket.close();
    socket = undefined;
  };
  const frame = (text: unknown) => {
    if (typeof text !== 'string') return;
    let parsed: any;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Unreadable: the wasm reports a frame without an event.
    }
    let data = parsed?.data;
    // The protocol double-encodes data; undo it when it is a JSON string.
    if (typeof data === 'string') {
      try {
        data = JSON.parse(data);
      } catch {
        // Kept as the string it is.
      }
    }
    client.frame(parsed?.event, parsed?.channel, data, parsed);
  };
  const out = (kind: number, a: any, b: any) => {
    switch (kind) {
      case 0: {
        closeSocket();
        try {
          const opened = (socket = new WebSocket(a));
          opened.onmessage = (event) => frame(event.data);
          opened.onclose = (event) => client.closed(event.code);
          opened.onerror = () => client.socketError();
        } catch {
          client.socketError();
        }
        return;
      }
      case 1:
        if (socket?.readyState === 1) socket.send(a);
        return;
      case 2:
        return closeSocket();
      case 3:
        clearTimeout(timer);
        if (a >= 0) timer = setTimeout(() => client.timer(), a);
        return;
      case 4:
        return hooks.stateChanged(a);
      case 5:
        return hooks.authorize(a, b);
      case 6:
        return hooks.authorizeUser(a);
      case 7:
        return hooks.error(a, b);
      case 8:
        try {
          localStorage.setItem(storageKey, a);
        } catch {
          // Full or disabled storage: the badges still work for this page's life.
        }
        return;
      case 9:
        return tabs?.postMessage(a);
    }
  };

  const client = wrap(new Client({ ...options, badges: stored ?? '', hidden: document.hidden }, out));
  if (tabs) tabs.onmessage = (event) => typeof event.data === 'string' && client.badgesRemote(event.data);
  // For the life of the page: the client is never torn down.
  addEventListener('online', () => client.online(true));
  addEventListener('offline', () => client.online(false));
  document.addEventListener('visibilitychange', () => client.visibility(!document.hidden));
  // A bfcache restore: the socket may have died while the page was frozen.
  addEventListener('pageshow', (event) => event.persisted && client.pageShown());
  if (!navigator.onLine) client.online(false);
  return client;
}
