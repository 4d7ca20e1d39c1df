// The page's side of the wasm client. The wasm decides (connection states, backoff, channels,
// listeners, presence, typing, statuses, badges); this file does what it cannot: the socket,
// the timer, window events, storage and tabs, JSON, and everything holding JavaScript values
// (callbacks, event payloads, members' `user_info`). Only strings and numbers cross (wasm.ts):
// calls go in as `call(client, op, a, b, c, d, n)` (`Op`), answers come back as
// `out(client, kind, n, a, b)` (`Out`). Both are numbered as in client-wasm/src/web/.
import type { Features } from './features.js';
import { instantiate, type Call } from './wasm.js';

/** client-wasm/src/web/mod.rs `op`, in order. */
const enum Op {
  New, Connect, Disconnect, Subscribe, Leave, Bind, BindUser, Unbind, Listeners, Whisper,
  AuthExtra, Authorized, AuthorizationFailed, Signin, UserAuthorized, Established, Ping, Pong,
  ServerError, SigninSuccess, PresenceMember, Subscribed, SubscriptionError, MemberAdded,
  MemberRemoved, Event, Decrypt, Closed, SocketError, Timer, Online, Visibility, PageShown,
}

/** client-wasm/src/web/shell.rs `Out`, in order. */
const enum Out {
  Open, Send, Close, Timer, State, Authorize, AuthorizeUser, Error, Data, NamedData, Call, Member,
  Members, OneMember, AuthError, Drop, SignedIn, Item, Throw, Plain,
}

// The events the typing, status and badge machines follow (client-wasm/src/features/).
const TYPING = 'client-typing';
const STATUS = 'client-overtone-status';
const NOTIFICATION = 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
const BADGE_COUNT = 'overtone.badge-count';

/** What the client asks of the layer beyond IO. */
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

type Item = [number, string, string];
type Callback = (...args: any[]) => void;

/** A user id as the wasm keeps it: strings as they are, integers in decimal; else `''`. */
const id = (value: unknown): string =>
  typeof value === 'string' ? value : Number.isSafeInteger(value) ? String(value) : '';
const count = (value: unknown): number => (typeof value === 'number' && value >= 0 ? value : -1);

const clients: Client[] = [];
let call: Call;

/** Loads the client wasm (once: see index.ts); `Client`s need it. */
export async function load(url: URL): Promise<void> {
  call = await instantiate(url, (client, kind, n, a, b) => clients[client].out(kind, n, a, b));
}

/** A wasm client doing its IO in this page. Only in a browser, once the wasm is loaded. */
export class Client {
  private readonly index: number;
  private socket?: WebSocket;
  private timer?: ReturnType<typeof setTimeout>;
  /** Listener id -> callback and channel. */
  private readonly listeners = new Map<number, [Callback, string]>();
  /** Presence channel -> user id -> `user_info`. */
  private readonly presence = new Map<string, Map<string, unknown>>();
  /** This user's id on each presence channel, from its auth reply. */
  private readonly own = new Map<string, string>();
  /** The features module, once loaded; the calls waiting for it while it loads. */
  private features?: Features;
  private featureCalls?: ((features: Features) => void)[];
  /** `watch` ids -> the features module's, once it has loaded. */
  private readonly watchers = new Map<number, number | undefined>();
  private nextWatcher = 0;
  /** The payload of the frame being read; the members of the next `Members`. */
  private data: unknown;
  private pendingMembers: string[] = [];
  /** The member being removed: id and `user_info`, for the `leaving` listeners. */
  private departed?: [string, unknown];
  private items: Item[] = [];
  private thrown?: string;
  private plain?: string;
  private establishing?: string;
  private socketIdNow?: string;
  private userIdNow?: string;

  /** Only once `load` has finished. */
  constructor(private readonly options: Options, private readonly hooks: Hooks) {
    const ports = options.wsPort + options.wssPort * 2 ** 16 + (options.forceTLS ? 2 ** 32 : 0);
    this.index = call(0, Op.New, options.key, options.host, options.path ?? '', options.namespace ?? '', ports);
    clients[this.index] = this;
    if (document.hidden) this.run(Op.Visibility, '', '', '', '', 0);
    // For the life of the page: the client is never torn down.
    addEventListener('online', () => this.run(Op.Online, '', '', '', '', 1));
    addEventListener('offline', () => this.run(Op.Online, '', '', '', '', 0));
    document.addEventListener('visibilitychange', () => this.run(Op.Visibility, '', '', '', '', document.hidden ? 0 : 1));
    // A bfcache restore: the socket may have died while the page was frozen.
    addEventListener('pageshow', (event) => event.persisted && this.run(Op.PageShown));
    if (!navigator.onLine) this.run(Op.Online, '', '', '', '', 0);
  }

  /** Runs an operation; throws what the wasm refused. */
  private run(op: Op, a = '', b = '', c = '', d = '', n = -1): number {
    const outer = this.thrown;
    this.thrown = undefined;
    const result = call(this.index, op, a, b, c, d, n);
    const thrown = this.thrown;
    this.thrown = outer;
    if (thrown) throw new Error(thrown);
    return result;
  }

  /** Runs an operation answering with `Item`s. */
  private query(op: Op, a = '', b = '', c = ''): Item[] {
    const outer = this.items;
    const items: Item[] = (this.items = []);
    this.run(op, a, b, c);
    this.items = outer;
    return items;
  }

  /** What the wasm asks for. */
  out(kind: Out, n: number, a: string, b: string): void {
    const listener = this.listeners.get(n);
    switch (kind) {
      case Out.Open:
        this.closeSocket();
        try {
          const socket = (this.socket = new WebSocket(a));
          socket.onmessage = (event) => this.frame(event.data);
          socket.onclose = (event) => this.run(Op.Closed, '', '', '', '', event.code);
          socket.onerror = () => this.run(Op.SocketError);
        } catch {
          this.run(Op.SocketError);
        }
        return;
      case Out.Send:
        if (this.socket?.readyState === 1) this.socket.send(a);
        return;
      case Out.Close:
        return this.closeSocket();
      case Out.Timer:
        clearTimeout(this.timer);
        if (n >= 0) this.timer = setTimeout(() => this.run(Op.Timer), n);
        return;
      case Out.State:
        if (this.socketIdNow && a !== 'connected') this.toFeatures((f) => f.down());
        this.socketIdNow = a === 'connected' ? this.establishing : undefined;
        if (a !== 'connected') this.userIdNow = undefined;
        return this.hooks.stateChanged(a);
      case Out.Authorize:
        return this.hooks.authorize(a, b);
      case Out.AuthorizeUser:
        return this.hooks.authorizeUser(a);
      case Out.Error:
        this.toFeatures((f) => f.serverError(a));
        return this.hooks.error(n >= 0 ? n : undefined, a);
      case Out.Data:
        return listener && invoke(listener[0], a ? [this.data, { user_id: a }] : [this.data]);
      case Out.NamedData:
        return listener && invoke(listener[0], [a, this.data]);
      case Out.Call:
        return listener && invoke(listener[0], []);
      case Out.Member:
        this.pendingMembers.push(a);
        return;
      case Out.Members: {
        const ids = this.pendingMembers.splice(0);
        return listener && invoke(listener[0], [ids.map((user) => this.info(listener[1], user))]);
      }
      case Out.OneMember:
        return listener && invoke(listener[0], [this.info(listener[1], a)]);
      case Out.AuthError:
        return listener && invoke(listener[0], [{ type: 'AuthError', error: a, status: b ? +b : null }]);
      case Out.Drop:
        this.listeners.delete(n);
        return;
      case Out.SignedIn:
        this.userIdNow = a;
        return;
      case Out.Item:
        this.items.push([n, a, b]);
        return;
      case Out.Throw:
        this.thrown = a;
        return;
      case Out.Plain:
        this.plain = a;
        return;
    }
  }

  private info(channel: string, user: string): unknown {
    return this.departed?.[0] === user ? this.departed[1] : this.presence.get(channel)?.get(user);
  }

  private closeSocket(): void {
    const socket = this.socket;
    if (!socket) return;
    socket.onmessage = socket.onclose = socket.onerror = null;
    socket.close();
    this.socket = undefined;
  }

  /** One socket frame: parsed here, told to the wasm by kind; its payload stays here. */
  private frame(text: unknown): void {
    let frame: any;
    try {
      frame = JSON.parse(text as string);
    } catch {
      // Reported below.
    }
    const event = frame?.event;
    const channel = frame?.channel;
    let data = frame?.data;
    // The protocol double-encodes data; undo it when it is a JSON string.
    if (typeof data === 'string') {
      try {
        data = JSON.parse(data);
      } catch {
        // Kept as the string it is.
      }
    }
    const unreadable = () => this.hooks.error(undefined, 'Unreadable frame from the server');
    if (typeof event !== 'string') return unreadable();
    switch (event) {
      case 'pusher:connection_established':
        if (typeof data?.socket_id !== 'string') return unreadable();
        this.establishing = data.socket_id;
        this.run(Op.Established, data.socket_id, '', '', '', count(data.activity_timeout));
        return;
      case 'pusher:ping':
        return void this.run(Op.Ping);
      case 'pusher:pong':
        return void this.run(Op.Pong);
      case 'pusher:error':
        return void this.run(Op.ServerError, String(data?.message ?? ''), '', '', '', count(data?.code));
      case 'pusher:signin_success': {
        let user = '';
        try {
          user = id(JSON.parse(data?.user_data).id);
        } catch {
          // Reported below.
        }
        return user ? void this.run(Op.SigninSuccess, user) : unreadable();
      }
    }
    if (typeof channel !== 'string') return unreadable();
    switch (event) {
      case 'pusher_internal:subscription_succeeded': {
        const hash = data?.presence?.hash;
        const presence = hash !== null && typeof hash === 'object';
        if (presence) {
          this.presence.set(channel, new Map(Object.entries(hash)));
          for (const user of Object.keys(hash)) this.run(Op.PresenceMember, user);
        }
        const recovered = typeof frame.recovered === 'boolean' ? +frame.recovered : -1;
        this.run(Op.Subscribed, channel, position(frame), '', presence ? '1' : '', recovered);
        if (presence) this.toFeatures((f) => this.presenceUp(f, channel));
        return;
      }
      case 'pusher:subscription_error':
        return void this.run(Op.SubscriptionError, channel, String(data?.error ?? 'Subscription refused'), '', '', count(data?.status));
      case 'pusher_internal:member_added': {
        const user = id(data?.user_id);
        if (!user) return unreadable();
        if (!this.presence.has(channel)) this.presence.set(channel, new Map());
        this.presence.get(channel)!.set(user, data.user_info);
        this.run(Op.MemberAdded, channel, user);
        return this.toFeatures((f) => f.memberJoined(channel, user));
      }
      case 'pusher_internal:member_removed': {
        const user = id(data?.user_id);
        if (!user) return unreadable();
        // Gone from `members()` before the `leaving` listeners run, as in laravel-echo.
        const members = this.presence.get(channel);
        this.departed = [user, members?.get(user)];
        members?.delete(user);
        this.run(Op.MemberRemoved, channel, user);
        this.departed = undefined;
        return this.toFeatures((f) => f.memberLeft(channel, user));
      }
    }
    if (channel.startsWith('private-encrypted-') && !event.startsWith('pusher')) {
      this.plain = undefined;
      this.run(Op.Decrypt, channel, String(data?.nonce), String(data?.ciphertext));
      if (this.plain === undefined) return;
      try {
        data = JSON.parse(this.plain);
      } catch {
        return this.hooks.error(undefined, 'Could not decrypt an event');
      }
    }
    const sender = id(frame.user_id);
    this.data = data;
    this.run(Op.Event, channel, event, sender, position(frame));
    this.data = undefined;
    // What the typing, status and badge machines hear of it.
    const user = sender || id(data?.user_id);
    if (event === TYPING && user) this.toFeatures((f) => f.typingSeen(channel, user, !!data?.typing));
    if (event === STATUS && user && typeof data?.status === 'string') this.toFeatures((f) => f.statusSeen(channel, user, data.status));
    // Badges count every notification: they load the features module.
    if (event === NOTIFICATION && id(data?.id)) {
      const category = [data.category, data.type].find((c) => typeof c === 'string') ?? 'default';
      this.withFeatures((f) => f.notification(id(data.id), category));
    }
    if (event === BADGE_COUNT && typeof data?.category === 'string' && count(data.count) >= 0) {
      this.withFeatures((f) => f.badgeCount(data.category, data.count));
    }
  }

  // ---- the app's calls ----

  connect(): void {
    this.run(Op.Connect);
  }

  disconnect(): void {
    this.run(Op.Disconnect);
  }

  socketId(): string | undefined {
    return this.socketIdNow;
  }

  /** The signed-in user's id, once the server confirmed the sign-in. */
  userId(): string | undefined {
    return this.userIdNow;
  }

  /** Throws on an invalid channel name. */
  subscribe(channel: string): void {
    this.run(Op.Subscribe, channel);
  }

  leaveChannel(channel: string): void {
    this.run(Op.Leave, channel);
    this.presence.delete(channel);
    this.own.delete(channel);
    this.toFeatures((f) => f.left(channel));
  }

  /** `kind`: `event` (with `event`), `all`, `subscribed`, `error`, `here`, `joining`, `leaving`. */
  bind(channel: string, kind: string, event: string | undefined, callback: Callback): number {
    const listener = this.run(Op.Bind, channel, kind, event ?? '');
    this.listeners.set(listener, [callback, channel]);
    return listener;
  }

  bindUser(event: string, callback: Callback): number {
    const listener = this.run(Op.BindUser, event);
    this.listeners.set(listener, [callback, '']);
    return listener;
  }

  unbind(listener: number): void {
    this.run(Op.Unbind, '', '', '', '', listener);
    this.listeners.delete(listener);
  }

  /** Unbinds `channel`'s `kind` (+ `event`) listeners; only those calling `callback` when given. */
  unbindMatching(channel: string, kind: string, event?: string, callback?: Callback): void {
    const bound = this.query(Op.Listeners, channel, kind, event);
    for (const [listener] of bound) {
      if (!callback || this.listeners.get(listener)?.[0] === callback) this.unbind(listener);
    }
  }

  whisper(channel: string, event: string, data: unknown): void {
    this.whisperJson(channel, event, JSON.stringify(data) ?? 'null');
  }

  private whisperJson(channel: string, event: string, json: string): void {
    this.run(Op.Whisper, channel, event, json);
  }

  /** A presence channel's members' `user_info`, one per user. */
  members(channel: string): unknown[] {
    return [...(this.presence.get(channel)?.values() ?? [])];
  }

  authorized(channel: string, socketId: string, auth: string, channelData?: string, sharedSecret?: string): void {
    let user = '';
    try {
      user = id(JSON.parse(channelData!).user_id);
    } catch {
      // Not a presence channel.
    }
    if (user) this.own.set(channel, user);
    this.run(Op.AuthExtra, channelData ?? '', user, sharedSecret ?? '');
    this.run(Op.Authorized, channel, socketId, auth);
  }

  authorizationFailed(channel: string, socketId: string, status: number | undefined, error: string): void {
    this.run(Op.AuthorizationFailed, channel, socketId, error, '', status ?? -1);
  }

  signin(): void {
    this.run(Op.Signin);
  }

  userAuthorized(socketId: string, auth: string, userData: string): void {
    this.run(Op.UserAuthorized, socketId, auth, userData);
  }

  // ---- typing, statuses and badges: the features module, loaded on first use ----

  typing(channel: string): void {
    this.withFeatures((f) => f.typing(channel, this.ownId(channel)));
  }

  stopTyping(channel: string): void {
    this.withFeatures((f) => f.stopTyping(channel, this.ownId(channel)));
  }

  /** Who is typing on `channel`, in the order they started, with `info` on presence channels. */
  typingUsers(channel: string): { id: string; info?: unknown }[] {
    this.withFeatures(() => {});
    return this.features?.typingUsers(channel, this.ownId(channel)) ?? [];
  }

  /** `{userId: 'online' | 'away'}` on a presence channel. */
  statuses(channel: string): Record<string, string> {
    this.withFeatures(() => {});
    return this.features?.statuses(channel) ?? {};
  }

  /** A member's status, or this tab's own without `user`. */
  status(channel: string, user?: string): string | undefined {
    this.withFeatures(() => {});
    return this.features?.status(channel, user);
  }

  /** `{category: count}` of unread notifications. */
  badgeCounts(): Record<string, number> {
    this.withFeatures(() => {});
    return this.features?.badgeCounts() ?? {};
  }

  /** `kind`: `id`, `category` or `all`. */
  markRead(kind: string, value: string): void {
    this.withFeatures((f) => f.markRead(kind, value));
  }

  /**
   * `callback(state)` on every change of `what`: `typing` or `status` on `channel`, or
   * `badges` (and once when the features module has loaded). Returns an id for `unwatch`.
   */
  watch(what: string, channel: string, callback: Callback): number {
    const watcher = this.nextWatcher++;
    this.watchers.set(watcher, undefined);
    this.withFeatures((f) => {
      if (this.watchers.has(watcher)) this.watchers.set(watcher, f.watch(what, channel, callback, this.ownId(channel)));
    });
    return watcher;
  }

  unwatch(watcher: number): void {
    const inFeatures = this.watchers.get(watcher);
    this.watchers.delete(watcher);
    if (inFeatures !== undefined) this.features!.unwatch(inFeatures);
  }

  /** This user's id on `channel`: its presence id, else the signed-in user's. */
  private ownId(channel: string): string {
    return this.own.get(channel) ?? this.userIdNow ?? '';
  }

  private presenceUp(features: Features, channel: string): void {
    features.presenceUp(channel, this.own.get(channel) ?? '', this.presence.get(channel)?.keys() ?? []);
  }

  /** Runs `call` on the features module, loading it first if needed. */
  private withFeatures(call: (features: Features) => void): void {
    if (this.features) return call(this.features);
    if (!this.featureCalls) {
      this.featureCalls = [];
      const host = {
        ...this.options,
        whisper: (channel: string, event: string, json: string) => this.whisperJson(channel, event, json),
        info: (channel: string, user: string): [boolean, unknown] => {
          const members = this.presence.get(channel);
          return [!!members?.has(user), members?.get(user)];
        },
      };
      import('./features.js')
        .then(({ start }) => start(host))
        .then((features) => {
          this.features = features;
          // What it missed: the presence channels this client is on.
          if (this.socketIdNow) for (const channel of this.presence.keys()) this.presenceUp(features, channel);
          for (const waiting of this.featureCalls!.splice(0)) waiting(features);
          features.changed('badges', '');
        })
        .catch((error) => console.error('overtone: could not load typing, statuses and badges', error));
    }
    this.featureCalls.push(call);
  }

  /** Runs `call` on the features module if it is loaded or loading: nobody needs them otherwise. */
  private toFeatures(call: (features: Features) => void): void {
    if (this.features) call(this.features);
    else this.featureCalls?.push(call);
  }
}

/** A frame's history position, `''` without one. */
const position = (frame: any): string => (typeof frame.position === 'string' ? frame.position : '');

/** Calls an app callback; what it throws is logged, not thrown into the wasm. */
function invoke(callback: Callback, args: unknown[]): void {
  try {
    callback(...args);
  } catch (error) {
    console.error(error);
  }
}
