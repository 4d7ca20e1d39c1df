// Overtone's JavaScript entry: laravel-echo 2.5's API (`import Echo from 'overtone'`) over the
// Rust/wasm client. Importing touches no browser global (SSR-safe); the wasm is loaded on first
// use and calls made before it is ready are queued. Channel auth and sign-in are done here
// with `fetch` (or the app's own handlers) and answered to the wasm client.
import { mayCompile, type Fallback } from './wasm.js';
import { Client, load, type ClientApi, type Hooks, type Options } from './client.js';
import { Channel, PresenceChannel, watch, type Callback, type ClientRunner } from './channel.js';
import { Pusher } from './pusher.js';

export { Channel, PresenceChannel };
/** laravel-echo's private channels: here the one `Channel` class, whispers included. */
export type PrivateChannel = Channel;
export type { Callback, Status, TypingUser } from './channel.js';
export type { PresenceDetails, ReadState, StatusDetails } from './types.js';
export type { Pusher, PusherChannel } from './pusher.js';

export type ConnectionStatus = 'connected' | 'connecting' | 'reconnecting' | 'disconnected' | 'failed';

/** laravel-echo's broadcasters that speak the Pusher protocol; `'null'` connects nowhere (tests, unconfigured). */
export type BroadcastDriver = 'reverb' | 'pusher' | 'ably' | 'null';

/** laravel-echo's `Broadcaster` map (`Echo<'reverb'>`, `Broadcaster['reverb']['private']`), with this package's classes. */
export type Broadcaster = {
  [B in BroadcastDriver]: {
    connector: Echo<B>;
    public: Channel;
    private: PrivateChannel;
    encrypted: PrivateChannel;
    presence: PresenceChannel;
    options: EchoOptions<B>;
  };
};

type Headers = Record<string, string>;
/** pusher-js's callback shape: `(error, {auth, channel_data?, shared_secret?} | {auth, user_data})`. */
type AuthCallback = (error: { status?: number; message?: string } | Error | null, data: any) => void;

/** pusher-js 8's `channelAuthorization` and `userAuthentication` (any `transport`: requests are `fetch`es). */
type AuthOptions<Request> = {
  endpoint?: string;
  transport?: 'ajax' | 'jsonp';
  /** Read on every request (JavaScript may give a function, called then). */
  headers?: Headers;
  params?: Record<string, string>;
  headersProvider?: () => Headers;
  paramsProvider?: () => Record<string, string>;
  customHandler?: (request: Request, callback: AuthCallback) => void;
};

export interface EchoOptions<B extends BroadcastDriver = BroadcastDriver> {
  broadcaster?: B;
  key?: string | null;
  /** Hosted Pusher's cluster: the host is `ws-{cluster}.pusher.com` unless `wsHost` is given (as pusher-js). */
  cluster?: string;
  wsHost?: string;
  /** Default 80. */
  wsPort?: number;
  /** Default 443. */
  wssPort?: number;
  /** TLS unless false, and always on an https page (as pusher-js). */
  forceTLS?: boolean;
  /** Only WebSocket exists here: accepted and ignored. */
  enabledTransports?: string[];
  /** Prefix before `/app/{key}`. */
  wsPath?: string;
  /** Default `/broadcasting/auth`. */
  authEndpoint?: string;
  /** laravel-echo's type; the headers are read on every request (JavaScript may give a function, called then). */
  auth?: { headers: Headers; params?: Record<string, string> };
  bearerToken?: string;
  csrfToken?: string | null;
  /** Default `App.Events`; `false` for none. */
  namespace?: string | false;
  /** laravel-echo / pusher-js's custom channel authorizer. */
  authorizer?: (channel: { name: string }, options: EchoOptions) => {
    authorize(socketId: string, callback: AuthCallback): void;
  };
  channelAuthorization?: AuthOptions<{ socketId: string; channelName: string }>;
  userAuthentication?: AuthOptions<{ socketId: string }>;
  /** Hidden this long makes this user `away` on presence channels (default 30000). */
  awayAfterMs?: number;
  /** This client's device as others see it on presence channels (default: detected). */
  device?: 'desktop' | 'mobile';
  /** Tabs sharing a scope share their unread badges (default: the app key; use the user id). */
  badgeScope?: string;
  /**
   * Outside a browser (Node, workers), the WebSocket class to connect with, e.g. npm `ws`'s; the
   * client connects without a window only when given one, so server-side rendering never does.
   */
  WebSocket?: typeof WebSocket;
  /**
   * One WebSocket for every tab of the origin: a SharedWorker owns it, each tab uses it through
   * this same API (off by default; where SharedWorker or Web Locks are missing, each tab connects
   * on its own). Every tab then has the same `socketId()`, so `toOthers()` skips them all.
   */
  shareConnection?: boolean;
  /** Do not add `X-Socket-ID` to axios requests. */
  withoutInterceptors?: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [option: string]: any;
}

/** The options as Echo keeps them (`echo.options`, `echo.connector.options`): defaults filled in. */
export type EchoOptionsWithDefaults<B extends BroadcastDriver = BroadcastDriver> = EchoOptions<B> & {
  auth: { headers: Headers; params?: Record<string, string> };
  authEndpoint: string;
  userAuthentication: { endpoint: string; headers: Headers };
  namespace: string | false;
};

/** Most channels in one authorization request (Overtone's endpoint takes up to 100). */
const MAX_BATCH = 100;

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

/** The client's .wasm and its JavaScript twin: the encryption build's, or the one next to this file. */
function clientBuild(): [URL, Fallback] {
  return encryptionBuild ?? [new URL('overtone_bg.wasm', import.meta.url), () => import('./overtone_wasm2js.js')];
}

/** Loads the wasm module once. */
function loadWasm(): Promise<void> {
  return (wasm ??= load(...clientBuild()));
}

/** The wasm's (and pusher-js's) connection states that `connectionStatus()` names differently. */
const RENAMED_STATES: Record<string, ConnectionStatus> = { initialized: 'connecting', unavailable: 'reconnecting' };

const headersOf = (headers?: Headers | (() => Headers)): Headers =>
  typeof headers === 'function' ? headers() : { ...headers };

/** A request's headers and form fields from `AuthOptions`, read at the time of the request. */
const requestOf = (o?: AuthOptions<never>): [Headers, Record<string, string>] => [
  { ...headersOf(o?.headers), ...o?.headersProvider?.() },
  { ...o?.params, ...o?.paramsProvider?.() },
];

/** POSTs a form to an auth endpoint; a non-2xx status becomes an error carrying it. */
async function post(endpoint: string, headers: Headers, body: Record<string, string> | string[][], callback: AuthCallback) {
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

/** `T`: laravel-echo's broadcaster type argument (`Echo<'reverb'>`). */
export default class Echo<T extends BroadcastDriver = BroadcastDriver> implements ClientRunner {
  /**
   * The app's options with the defaults added, as laravel-echo's connector keeps them: the app's
   * `auth` and `userAuthentication` objects themselves, so a header set on them later (a new
   * token) goes with the next request.
   */
  readonly options: EchoOptionsWithDefaults<T>;
  /** laravel-echo's `echo.connector`: here the Echo itself. */
  readonly connector: this = this;
  readonly channels: Record<string, Channel> = {};
  /** pusher-js's API over this client, as laravel-echo's `echo.connector.pusher`. */
  readonly pusher: Pusher = new Pusher(this);
  private client_?: ClientApi;
  private queue_: ((client: ClientApi) => void)[] = [];
  private startFailed_ = false;
  /** Channels waiting for this task's authorization request, by socket id. */
  private readonly authWaiting_ = new Map<string, string[]>();
  /** Whether the auth endpoint answers batches; unknown until it has answered one. */
  private batches_?: boolean;

  constructor(options: EchoOptions<T>) {
    this.options = {
      authEndpoint: '/broadcasting/auth',
      namespace: 'App.Events',
      ...options,
      auth: options.auth ?? { headers: {} },
      userAuthentication: options.userAuthentication ?? { headers: {} },
    } as EchoOptionsWithDefaults<T>;
    this.options.userAuthentication.endpoint ??= '/broadcasting/user-auth';
    const csrf = csrfToken(this.options);
    for (const target of [this.options.auth, this.options.userAuthentication]) {
      // Added to the app's own headers object, as laravel-echo does (a function is read per request).
      if (typeof target.headers === 'function') continue;
      target.headers ??= {};
      if (csrf) target.headers['X-CSRF-TOKEN'] = csrf;
      if (options.bearerToken) target.headers.Authorization = `Bearer ${options.bearerToken}`;
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
    // As pusher-js: `connecting` at once, not once the wasm has loaded.
    if (!this.client_ && !this.isNull_()) this.pusher.changed_('connecting');
    this.use((c) => c.connect());
  }

  disconnect(): void {
    this.use((c) => c.disconnect());
  }

  socketId(): string | undefined {
    return this.isNull_() ? 'fake-socket-id' : this.client_?.socketId();
  }

  connectionStatus(): ConnectionStatus {
    const state = this.pusher.connection.state;
    return this.isNull_() ? 'connected' : (RENAMED_STATES[state] ?? (state as ConnectionStatus));
  }

  /** `callback(status)` on every change; returns the unsubscribe function. */
  onConnectionChange(callback: (status: ConnectionStatus) => void): () => void {
    let last = this.connectionStatus();
    const changed = () => {
      if (last !== (last = this.connectionStatus())) callback(last);
    };
    this.pusher.connection.bind('state_change', changed);
    return () => this.pusher.connection.unbind('state_change', changed);
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

  private(name: string): PrivateChannel {
    return this.subscribe_(`private-${name}`, Channel);
  }

  encryptedPrivate(name: string): PrivateChannel {
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

  // ---- presence statuses ----

  /**
   * This user's status on every presence channel at once (`busy`, `'In a meeting'`): a
   * lowercase word of at most 16 bytes and a message of at most 100 characters; `setStatus('online')` goes back to
   * online/away by visibility. Servers with Overtone's extension carry it; others get a whisper.
   */
  setStatus(status: string, message = ''): void {
    this.use((c) => c.setStatus(status, message));
  }

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

  /** Runs `call` now if the wasm is loaded, else once it is (in order). In SSR, or with the `null` broadcaster, never. */
  use(call: (client: ClientApi) => void): void {
    if (this.client_) return call(this.client_);
    if (this.isNull_() || this.startFailed_) return;
    this.queue_.push(call);
    if (this.queue_.length === 1 && (typeof window !== 'undefined' || this.options.WebSocket)) {
      this.load_().catch((error) => this.cannotStart_(error));
    }
  }

  loaded(): ClientApi | undefined {
    return this.client_;
  }

  /**
   * Neither the .wasm nor its JavaScript twin could run: said once on the console, and where the
   * app listens (the connection `failed`, each channel's error callbacks).
   */
  private cannotStart_(error: unknown): void {
    const cause = mayCompile()
      ? `overtone: the client could not load: ${error}`
      : "overtone: WebAssembly is not allowed here (add 'wasm-unsafe-eval' to the Content-Security-Policy's " +
        `script-src) and the client's JavaScript build could not load either: ${error}`;
    console.error(cause);
    this.startFailed_ = true;
    this.queue_ = [];
    this.pusher.changed_('failed');
    for (const channel of Object.values(this.channels)) channel.unloadable_(cause);
  }

  private isNull_(): boolean {
    return this.options.broadcaster === 'null';
  }

  private async load_(): Promise<void> {
    const o = this.options;
    // The URL pusher-js opens for these options (laravel-echo gives it `cluster: ''` for reverb and ably).
    const cluster = o.broadcaster === 'reverb' || o.broadcaster === 'ably' ? '' : o.cluster;
    const key = String(o.key);
    const options: Options = {
      key,
      host: o.wsHost || `ws-${cluster}.pusher.com`,
      wsPort: o.wsPort || 80,
      wssPort: o.wssPort || 443,
      forceTLS: globalThis.location?.protocol === 'https:' || o.forceTLS !== false,
      path: o.wsPath,
      namespace: o.namespace || null,
      awayAfterMs: o.awayAfterMs,
      device: o.device,
      badgeScope: o.badgeScope ?? key,
      WebSocket: o.WebSocket,
    };
    const hooks: Hooks = {
      authorize: (channel, socketId) => this.authorize_(channel, socketId),
      authorizeUser: (socketId) => this.authorizeUser_(socketId),
      stateChanged: (state) => this.pusher.changed_(state),
      error: (code, message) => {
        console.warn('overtone:', code ?? '', message);
        this.pusher.connection.emit_('error', [{ type: 'PusherError', data: { code, message } }]);
      },
    };
    // One connection for every tab of the origin, where the browser can share one (else, silently, this tab's own).
    const shared =
      o.shareConnection && typeof document === 'object'
        ? await import('./shared.js').then(({ connectShared }) => connectShared(options, hooks, clientBuild()[0], !!encryptionBuild))
        : undefined;
    if (!shared) await loadWasm();
    this.client_ = shared ?? new Client(options, hooks);
    for (const call of this.queue_.splice(0)) {
      try {
        call(this.client_);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** @internal The channel named `name` (its kind from the name unless given), subscribing it if new. */
  subscribe_<C extends Channel>(
    name: string,
    Kind: new (runner: ClientRunner, name: string) => C = (name.startsWith('presence-') ? PresenceChannel : Channel) as any,
  ): C {
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

  /** What answers the wasm client for `channel`'s authorization, from pusher-js's callback shape. */
  private authorized_(channel: string, socketId: string): AuthCallback {
    return (error, data) => {
      const client = this.client_!;
      if (error || !data?.auth) {
        const status = error && 'status' in error ? error.status : undefined;
        return client.authorizationFailed(channel, socketId, status, String(error?.message ?? 'No auth in the reply'));
      }
      const channelData = typeof data.channel_data === 'string' ? data.channel_data : undefined;
      client.authorized(channel, socketId, data.auth, channelData, data.shared_secret);
    };
  }

  private authorize_(channel: string, socketId: string): void {
    const o = this.options;
    const done = this.authorized_(channel, socketId);
    if (o.authorizer) return o.authorizer({ name: channel }, o).authorize(socketId, done);
    const custom = o.channelAuthorization;
    if (custom?.customHandler) return custom.customHandler({ socketId, channelName: channel }, done);
    // The channels asked for in one go (at connect, after a reconnect) share one request.
    const waiting = this.authWaiting_.get(socketId);
    if (waiting) return void waiting.push(channel);
    this.authWaiting_.set(socketId, [channel]);
    queueMicrotask(() => {
      const channels = this.authWaiting_.get(socketId)!;
      this.authWaiting_.delete(socketId);
      for (let i = 0; i < channels.length; i += MAX_BATCH) this.authorizeBatch_(channels.slice(i, i + MAX_BATCH), socketId);
    });
  }

  /**
   * One request for `channels` (README, "Batched channel authorization"): `channel_name` is the
   * first, `channel_names[]` all of them. An endpoint answering `{channels: {..}}` batches; one
   * answering as for a single channel does not, and the others are asked one by one.
   */
  private authorizeBatch_(channels: string[], socketId: string): void {
    const o = this.options;
    const [headers, params] = requestOf(o.channelAuthorization);
    const endpoint = o.channelAuthorization?.endpoint ?? o.authEndpoint;
    const allHeaders = { ...headersOf(o.auth.headers), ...headers };
    const form = (channel: string) => ({ ...o.auth.params, ...params, socket_id: socketId, channel_name: channel });
    const single = (channel: string) => void post(endpoint, allHeaders, form(channel), this.authorized_(channel, socketId));
    const [first, ...rest] = channels;
    if (!rest.length || this.batches_ === false) return channels.forEach(single);
    const body = [...Object.entries(form(first)), ...channels.map((channel) => ['channel_names[]', channel])];
    void post(endpoint, allHeaders, body, (error, data) => {
      const answers = data?.channels;
      if (!error && answers && typeof answers === 'object') {
        this.batches_ = true;
        for (const channel of channels) {
          const answer = answers[channel];
          const refused = answer?.auth ? null : { status: answer?.status, message: String(answer?.error ?? 'No answer for the channel') };
          this.authorized_(channel, socketId)(refused, answer);
        }
        return;
      }
      // Answered for `first` alone (a failure proves nothing: a batch endpoint may refuse it all).
      if (!error) this.batches_ = false;
      this.authorized_(first, socketId)(error, data);
      rest.forEach(single);
    });
  }

  private authorizeUser_(socketId: string): void {
    const done: AuthCallback = (error, data) => {
      if (error || !data?.auth) return console.warn('overtone: user sign-in failed', error);
      this.client_!.userAuthorized(socketId, data.auth, data.user_data);
    };
    const user = this.options.userAuthentication;
    if (user.customHandler) return user.customHandler({ socketId }, done);
    const [headers, params] = requestOf(user);
    void post(user.endpoint, headers, { ...params, socket_id: socketId }, done);
  }

}

export { Echo };
