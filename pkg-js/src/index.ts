// Overtone's JavaScript entry: laravel-echo 2.5's API (`import Echo from 'overtone'`) over the
// Rust/wasm client. Importing touches no browser global (SSR-safe); the wasm is loaded on first
// use and calls made before it is ready are queued. Channel auth and sign-in are done here
// with `fetch` (or the app's own handlers) and answered to the wasm client.
import type { Fallback } from './wasm.js';
import { Client, load } from './client.js';
import { Channel, PresenceChannel, watch, type Callback, type ClientRunner } from './channel.js';

export { Channel, PresenceChannel };
export type { Callback, Status, TypingUser } from './channel.js';

export type ConnectionStatus = 'connected' | 'connecting' | 'reconnecting' | 'disconnected' | 'failed';

type Headers = Record<string, string>;
/** pusher-js's callback shape: `(error, {auth, channel_data?, shared_secret?} | {auth, user_data})`. */
type AuthCallback = (error: { status?: number; message?: string } | Error | null, data: any) => void;

export interface EchoOptions {
  broadcaster?: 'reverb' | 'pusher';
  key: string;
  wsHost?: string;
  wsPort?: number;
  wssPort?: number;
  /** Default: true when the page is served over https. */
  forceTLS?: boolean;
  /** Only WebSocket exists here: accepted and ignored. */
  enabledTransports?: string[];
  /** Prefix before `/app/{key}`. */
  wsPath?: string;
  /** Default `/broadcasting/auth`. */
  authEndpoint?: string;
  /** Headers may be a function: read on every request (token refresh). */
  auth?: { headers?: Headers | (() => Headers); params?: Record<string, string> };
  bearerToken?: string;
  csrfToken?: string | null;
  /** Default `App.Events`; `false` for none. */
  namespace?: string | false;
  /** laravel-echo / pusher-js's custom channel authorizer. */
  authorizer?: (channel: { name: string }, options: EchoOptions) => {
    authorize(socketId: string, callback: AuthCallback): void;
  };
  channelAuthorization?: {
    endpoint?: string;
    headers?: Headers | (() => Headers);
    customHandler?: (params: { socketId: string; channelName: string }, callback: AuthCallback) => void;
  };
  userAuthentication?: {
    endpoint?: string;
    headers?: Headers | (() => Headers);
    customHandler?: (params: { socketId: string }, callback: AuthCallback) => void;
  };
  /** Hidden this long makes this user `away` on presence channels (default 30000). */
  awayAfterMs?: number;
  /** Tabs sharing a scope share their unread badges (default: the app key; use the user id). */
  badgeScope?: string;
  /**
   * Outside a browser (Node, workers), the WebSocket class to connect with, e.g. npm `ws`'s; the
   * client connects without a window only when given one, so server-side rendering never does.
   */
  WebSocket?: typeof WebSocket;
  /** Do not add `X-Socket-ID` to axios requests. */
  withoutInterceptors?: boolean;
  [option: string]: unknown;
}

let wasm: Promise<void> | undefined;
/** The build that decrypts `private-encrypted-` channels, set by `overtone/with-encryption`. */
let encryptionBuild: [URL, Fallback] | undefined;

/**
 * @internal `overtone/with-encryption` loads this .wasm (or, where WebAssembly cannot run, its
 * JavaScript twin) instead of the one without decryption.
 */
export function useEncryptionBuild(url: URL, fallback: Fallback): void {
  encryptionBuild = [url, fallback];
}

/** Loads the wasm module once, from next to this file. */
function loadWasm(): Promise<void> {
  const [url, fallback] = encryptionBuild ?? [new URL('overtone_bg.wasm', import.meta.url), () => import('./overtone_wasm2js.js')];
  return (wasm ??= load(url, fallback));
}

/** The wasm's connection states that laravel-echo's `connectionStatus()` names differently. */
const RENAMED_STATES: Record<string, ConnectionStatus> = { initialized: 'connecting', unavailable: 'reconnecting' };

const headersOf = (headers?: Headers | (() => Headers)): Headers =>
  typeof headers === 'function' ? headers() : { ...headers };

/** POSTs a form to an auth endpoint; a non-2xx status becomes an error carrying it. */
async function post(endpoint: string, headers: Headers, body: Record<string, string>, callback: AuthCallback) {
  try {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...headers },
      // fetch's default credentials, 'same-origin', send the session cookie.
      body: new URLSearchParams(body),
    });
    if (!response.ok) return callback({ status: response.status, message: `${endpoint} answered ${response.status}` }, null);
    callback(null, await response.json());
  } catch (error) {
    callback(error as Error, null);
  }
}

// Internal members end in `_`: build.mjs has esbuild shorten those names (`mangleProps`).
/** The page's CSRF token, found where laravel-echo looks for it. */
function csrfToken(options: EchoOptions): string | null | undefined {
  if (typeof window === 'undefined') return options.csrfToken;
  return (
    (window as any).Laravel?.csrfToken ??
    options.csrfToken ??
    document.querySelector('meta[name="csrf-token"]')?.getAttribute('content')
  );
}

export default class Echo implements ClientRunner {
  readonly options: EchoOptions;
  /** laravel-echo's `echo.connector`: here the Echo itself. */
  readonly connector: this = this;
  readonly channels: Record<string, Channel> = {};
  private client_?: Client;
  private queue_: ((client: Client) => void)[] = [];
  private statusListeners_ = new Set<(status: ConnectionStatus) => void>();
  private status_: ConnectionStatus = 'connecting';

  constructor(options: EchoOptions) {
    const auth = { headers: {}, ...options.auth };
    const userAuthentication = { endpoint: '/broadcasting/user-auth', headers: {}, ...options.userAuthentication };
    this.options = { authEndpoint: '/broadcasting/auth', namespace: 'App.Events', ...options, auth, userAuthentication };
    const csrf = csrfToken(this.options);
    const extra: Headers = {};
    if (csrf) extra['X-CSRF-TOKEN'] = csrf;
    if (options.bearerToken) extra.Authorization = `Bearer ${options.bearerToken}`;
    for (const target of [auth, userAuthentication]) {
      if (typeof target.headers !== 'function') target.headers = { ...target.headers, ...extra };
    }
    this.connect();
    // As laravel-echo: `X-Socket-ID` on axios requests when a global axios exists.
    if (!options.withoutInterceptors) {
      (globalThis as any).axios?.interceptors?.request.use((config: any) => {
        const id = this.socketId();
        if (id) config.headers['X-Socket-Id'] = id;
        return config;
      });
    }
  }

  // ---- connection ----

  connect(): void {
    this.use((c) => c.connect());
  }

  disconnect(): void {
    this.use((c) => c.disconnect());
  }

  socketId(): string | undefined {
    return this.client_?.socketId();
  }

  connectionStatus(): ConnectionStatus {
    return this.status_;
  }

  /** `callback(status)` on every change; returns the unsubscribe function. */
  onConnectionChange(callback: (status: ConnectionStatus) => void): () => void {
    this.statusListeners_.add(callback);
    return () => this.statusListeners_.delete(callback);
  }

  /** `{'X-Socket-ID': id}` while connected, for the app's own requests (`toOthers()`). */
  socketIdHeaders(): Headers {
    const id = this.socketId();
    return id ? { 'X-Socket-ID': id } : {};
  }

  /** Adds `X-Socket-ID` to this page's same-origin `fetch` calls; returns the undo function. */
  interceptFetch(): () => void {
    const original = globalThis.fetch;
    globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : String(input), location.href);
      const id = this.socketId();
      if (!id || url.origin !== location.origin) return original(input, init);
      const headers = new globalThis.Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      if (!headers.has('X-Socket-ID')) headers.set('X-Socket-ID', id);
      return original(input, { ...init, headers });
    };
    return () => {
      globalThis.fetch = original;
    };
  }

  // ---- channels ----

  channel(name: string): Channel {
    return this.subscribe_(name, Channel);
  }

  private(name: string): Channel {
    return this.subscribe_(`private-${name}`, Channel);
  }

  encryptedPrivate(name: string): Channel {
    return this.subscribe_(`private-encrypted-${name}`, Channel);
  }

  join(name: string): PresenceChannel {
    return this.subscribe_(`presence-${name}`, PresenceChannel);
  }

  listen(channel: string, event: string, callback: Callback): Channel {
    return this.channel(channel).listen(event, callback);
  }

  leave(name: string): void {
    for (const prefix of ['', 'private-', 'private-encrypted-', 'presence-']) this.leaveChannel(prefix + name);
  }

  leaveChannel(name: string): void {
    if (!this.channels[name]) return;
    delete this.channels[name];
    this.use((c) => c.leaveChannel(name));
  }

  leaveAllChannels(): void {
    for (const name of Object.keys(this.channels)) this.leaveChannel(name);
  }

  // ---- user sign-in ----

  /** Signs the user in (userAuthentication endpoint) now and after every reconnect. */
  signin(): void {
    this.use((c) => c.signin());
  }

  /** Events sent to the signed-in user (`#server-to-user-{id}`). */
  readonly user = {
    signin: () => this.signin(),
    id: (): string | undefined => this.client_?.userId(),
    listen: (event: string, callback: Callback) => {
      this.use((c) => c.bindUser(event, callback));
      return this.user;
    },
    stopListening: (event: string, callback?: Callback) => {
      this.use((c) => c.unbindMatching('#server-to-user-', 'event', event, callback));
      return this.user;
    },
  };

  // ---- unread badges ----

  /** Unread counts by category, from `notification()` events, shared by the user's tabs. */
  readonly badges = {
    counts: (): Record<string, number> => (this.client_?.badgeCounts() ?? {}) as Record<string, number>,
    count: (category: string): number => this.badges.counts()[category] ?? 0,
    total: (): number => Object.values(this.badges.counts()).reduce((sum, n) => sum + n, 0),
    /** `'all'`, a category, `{category}` or `{id}` (one notification). */
    markRead: (target: string | { id: string } | { category: string }) => {
      this.use((c) => {
        if (target === 'all') c.markRead('all', '');
        else if (typeof target === 'string') c.markRead('category', target);
        else if ('id' in target) c.markRead('id', String(target.id));
        else c.markRead('category', target.category);
      });
    },
    /** `callback(counts)` on every change, from this tab or another; returns the unsubscribe. */
    onChange: (callback: (counts: Record<string, number>) => void): (() => void) => watch(this, 'badges', '', callback),
  };

  // ---- the wasm client ----

  /** Runs `call` now if the wasm is loaded, else once it is (in order). In SSR, never. */
  use(call: (client: Client) => void): void {
    if (this.client_) return call(this.client_);
    this.queue_.push(call);
    if (this.queue_.length === 1 && (typeof window !== 'undefined' || this.options.WebSocket)) {
      this.load_().catch((error) => console.error('overtone: could not load the client', error));
    }
  }

  loaded(): Client | undefined {
    return this.client_;
  }

  private async load_(): Promise<void> {
    await loadWasm();
    const o = this.options;
    const tls = o.forceTLS ?? globalThis.location?.protocol === 'https:';
    this.client_ = new Client(
      {
        key: o.key,
        host: o.wsHost ?? globalThis.location?.hostname ?? '',
        wsPort: o.wsPort ?? 80,
        wssPort: o.wssPort ?? 443,
        forceTLS: tls,
        path: o.wsPath,
        namespace: o.namespace || null,
        awayAfterMs: o.awayAfterMs,
        badgeScope: o.badgeScope ?? o.key,
        WebSocket: o.WebSocket,
      },
      {
        authorize: (channel, socketId) => this.authorize_(channel, socketId),
        authorizeUser: (socketId) => this.authorizeUser_(socketId),
        stateChanged: (state) => {
          const status = RENAMED_STATES[state] ?? (state as ConnectionStatus);
          if (status === this.status_) return;
          this.status_ = status;
          for (const listener of this.statusListeners_) listener(status);
        },
        error: (code, message) => console.warn('overtone:', code ?? '', message),
      },
    );
    for (const call of this.queue_.splice(0)) {
      try {
        call(this.client_);
      } catch (error) {
        console.error(error);
      }
    }
  }

  private subscribe_<C extends Channel>(name: string, Kind: new (runner: ClientRunner, name: string) => C): C {
    if (!this.channels[name]) {
      if (!encryptionBuild && name.startsWith('private-encrypted-')) {
        // The wasm refuses the subscription (the channel's error listeners hear it); say so here.
        console.error(`overtone: ${name}: private-encrypted channels need the encryption build: import Echo from 'overtone/with-encryption'`);
      }
      this.use((c) => c.subscribe(name));
      this.channels[name] = new Kind(this, name);
    }
    return this.channels[name] as C;
  }

  private authorize_(channel: string, socketId: string): void {
    const done: AuthCallback = (error, data) => {
      const client = this.client_!;
      if (error || !data?.auth) {
        const status = error && 'status' in error ? error.status : undefined;
        return client.authorizationFailed(channel, socketId, status, String(error?.message ?? 'No auth in the reply'));
      }
      const channelData = typeof data.channel_data === 'string' ? data.channel_data : undefined;
      client.authorized(channel, socketId, data.auth, channelData, data.shared_secret);
    };
    const o = this.options;
    if (o.authorizer) return o.authorizer({ name: channel }, o).authorize(socketId, done);
    const custom = o.channelAuthorization;
    if (custom?.customHandler) return custom.customHandler({ socketId, channelName: channel }, done);
    const headers = { ...headersOf(o.auth!.headers), ...headersOf(custom?.headers) };
    const params = { ...o.auth!.params, socket_id: socketId, channel_name: channel };
    void post(custom?.endpoint ?? o.authEndpoint!, headers, params, done);
  }

  private authorizeUser_(socketId: string): void {
    const done: AuthCallback = (error, data) => {
      if (error || !data?.auth) return console.warn('overtone: user sign-in failed', error);
      this.client_!.userAuthorized(socketId, data.auth, data.user_data);
    };
    const user = this.options.userAuthentication!;
    if (user.customHandler) return user.customHandler({ socketId }, done);
    void post(user.endpoint!, headersOf(user.headers), { socket_id: socketId }, done);
  }

}

export { Echo };
