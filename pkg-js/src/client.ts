// The page's side of the wasm client. The wasm decides (connection states, backoff, channels,
// listeners, presence, typing, statuses, badges); this file does what it cannot: the socket,
// the timer, window events, storage and tabs, JSON, and everything holding JavaScript values
// (callbacks, event payloads, members' `user_info`). Only strings and numbers cross (wasm.ts):
// calls go in as `call(client, op, a, b, c, d, n)` (`Op`), answers come back as
// `out(client, kind, n, a, b)` (`Out`). Both are numbered as in client-wasm/src/web/.
import type { Features } from './features.js';
import type { PresenceDetails, ReadState } from './types.js';
import { instantiate, type Call, type Fallback } from './wasm.js';

/** client-wasm/src/web/mod.rs `op`, in order. */
const enum Op {
  New, Connect, Disconnect, Subscribe, Leave, Bind, BindUser, Unbind, Listeners, Whisper,
  AuthExtra, Authorized, AuthorizationFailed, Signin, UserAuthorized, Established, Ping, Pong,
  ServerError, SigninSuccess, PresenceMember, Subscribed, SubscriptionError, MemberAdded,
  MemberRemoved, Event, Decrypt, Closed, SocketError, Timer, Online, Visibility, PageShown, Seen,
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
// Overtone's wire extensions (server/README.md, "Wire extensions"): `overtone:reads`,
// `overtone:members`, `overtone:member_updated`.
const READS = 'overtone:reads';
const MEMBER_UPDATED = 'overtone:member_updated';

/** What the client asks of the layer beyond IO. */
export interface Hooks {
  authorize(channel: string, socketId: string): void;
  authorizeUser(socketId: string): void;
  stateChanged(state: string): void;
  error(code: number | undefined, message: string): void;
  /** After each frame from the server (the shared connection's worker mirrors the state). */
  framed?(): void;
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
  /** The WebSocket class, where the runtime has none of its own. */
  WebSocket?: typeof WebSocket;
  /** Where the features module's .wasm is, when not next to this file (the shared worker's). */
  featuresWasm?: string;
  /** `desktop` or `mobile`, as others see this client's user (default: detected). */
  device?: string;
}

type Item = [number, string, string];
type Callback = (...args: any[]) => void;
/** Whom a plain event reaches, as the core decided it: listener ids, with the event's name for `listenToAll`'s. */
type Route = [number, string?][];

/** A user id as the wasm keeps it: strings as they are, integers in decimal; else `''`. */
const id = (value: unknown): string =>
  typeof value === 'string' ? value : Number.isSafeInteger(value) ? String(value) : '';
const count = (value: unknown): number => (typeof value === 'number' && value >= 0 ? value : -1);

const clients: Client[] = [];
let call: Call;

/** Loads the client wasm (once: see index.ts); `Client`s need it. */
export async function load(url: URL, fallback: Fallback): Promise<void> {
  call = await instantiate(url, fallback, (client, kind, n, a, b) => clients[client].out(kind, n, a, b));
}

/** A wasm client doing its IO in this page. Only in a browser, once the wasm is loaded. */
export class Client {
  private readonly index_: number;
  private socket_?: WebSocket;
  private timer_?: ReturnType<typeof setTimeout>;
  /** Listener id -> callback and channel. */
  private readonly listeners_ = new Map<number, [Callback, string]>();
  /** Presence channel -> user id -> `user_info`. */
  private readonly presence_ = new Map<string, Map<string, unknown>>();
  /** This user's id on each presence channel, from its auth reply. */
  private readonly own_ = new Map<string, string>();
  /** The features module, once loaded; the calls waiting for it while it loads. */
  private features_?: Features;
  private featureCalls_?: ((features: Features) => void)[];
  /** `watch` ids -> the features module's, once it has loaded. */
  private readonly watchers_ = new Map<number, number | undefined>();
  private nextWatcher_ = 0;
  /** The payload of the frame being read; the members of the next `Members`. */
  private data_: unknown;
  private pendingMembers_: string[] = [];
  /** The member being removed: id and `user_info`, for the `leaving` listeners. */
  private departed_?: [string, unknown];
  private items_: Item[] = [];
  private thrown_?: string;
  private plain_?: string;
  private establishing_?: string;
  private socketIdNow_?: string;
  private userIdNow_?: string;
  /** Set by `visibility`, for the features module when it loads. */
  private hidden_?: boolean;
  /** The server's extensions (1 reads + 2 statuses), from `pusher:connection_established`. */
  private extensions_ = 0;
  /**
   * Each private or presence channel subscribed on this connection: what the features module
   * heard of it (`heard_`), the newest of each kind, kept for when it loads.
   */
  private readonly followed_ = new Map<string, Map<string, [string, any]>>();
  /**
   * Channel -> event name -> whom a plain event (no sender, no position, not the protocol's)
   * reaches, as recorded from the core's `Data` / `NamedData` answers to the first
   * such event. The same events then skip the wasm: its answer depends only on the channels,
   * listeners and connection, which change only in other calls, and those start a new map.
   */
  private routes_ = new Map<string, Map<string, Route>>();
  /**
   * The route being recorded, during an `Event` call. A listener's calls in the meantime add
   * nothing to it (only `Event` calls dispatch events).
   */
  private recording_?: Route;
  /** When the last event that skipped the wasm arrived (-1: none since the last call): told to it first (`Op.Seen`). */
  private seen_ = -1;

  /** Only once `load` has finished. */
  constructor(private readonly options_: Options, private readonly hooks_: Hooks) {
    const { key, host, path, namespace, wsPort, wssPort, forceTLS } = options_;
    const ports = wsPort + wssPort * 2 ** 16 + (forceTLS ? 2 ** 32 : 0);
    this.index_ = call(0, Op.New, key, host, path ?? '', namespace ?? '', ports);
    clients[this.index_] = this;
    // A page's events; other runtimes (Node, React Native) have none of them.
    if (typeof document === 'object') {
      if (document.hidden) this.run_(Op.Visibility, '', '', '', '', 0);
      // For the life of the page: the client is never torn down.
      addEventListener('online', () => this.run_(Op.Online, '', '', '', '', 1));
      addEventListener('offline', () => this.run_(Op.Online, '', '', '', '', 0));
      document.addEventListener('visibilitychange', () => this.run_(Op.Visibility, '', '', '', '', document.hidden ? 0 : 1));
      // A bfcache restore: the socket may have died while the page was frozen.
      addEventListener('pageshow', (event) => event.persisted && this.run_(Op.PageShown));
      if (!navigator.onLine) this.run_(Op.Online, '', '', '', '', 0);
    }
  }

  /** Runs an operation; throws what the wasm refused. */
  private run_(op: Op, a = '', b = '', c = '', d = '', n = -1): number {
    const seen = this.seen_;
    this.seen_ = -1;
    if (seen >= 0) call(this.index_, Op.Seen, '', '', '', '', seen);
    // Only these leave plain events' routing as it is.
    if (op !== Op.Event && op !== Op.Decrypt) this.routes_ = new Map();
    const outer = this.thrown_;
    this.thrown_ = undefined;
    const result = call(this.index_, op, a, b, c, d, n);
    const thrown = this.thrown_;
    this.thrown_ = outer;
    if (thrown) throw new Error(thrown);
    return result;
  }

  /** Runs an operation answering with `Item`s. */
  private query_(op: Op, a = '', b = '', c = ''): Item[] {
    const outer = this.items_;
    const items: Item[] = (this.items_ = []);
    this.run_(op, a, b, c);
    this.items_ = outer;
    return items;
  }

  /** What the wasm asks for. */
  out(kind: Out, n: number, a: string, b: string): void {
    const listener = this.listeners_.get(n);
    switch (kind) {
      case Out.Open:
        this.closeSocket_();
        try {
          const socket = (this.socket_ = new (this.options_.WebSocket ?? WebSocket)(a));
          socket.onmessage = (event) => {
            this.frame_(event.data, event.timeStamp);
            this.hooks_.framed?.();
          };
          socket.onclose = (event) => this.run_(Op.Closed, '', '', '', '', event.code);
          socket.onerror = () => this.run_(Op.SocketError);
        } catch {
          this.run_(Op.SocketError);
        }
        return;
      case Out.Send:
        if (this.socket_?.readyState === 1) this.socket_.send(a);
        return;
      case Out.Close:
        return this.closeSocket_();
      case Out.Timer:
        clearTimeout(this.timer_);
        if (n >= 0) this.timer_ = setTimeout(() => this.run_(Op.Timer), n);
        return;
      case Out.State:
        if (a !== 'connected') {
          // Down: no members until each presence channel is confirmed again, as in pusher-js.
          if (this.socketIdNow_) this.toFeatures_((f) => f.down());
          this.presence_.clear();
          this.followed_.clear();
          this.userIdNow_ = undefined;
        }
        this.socketIdNow_ = a === 'connected' ? this.establishing_ : undefined;
        return this.hooks_.stateChanged(a);
      case Out.Authorize:
        return this.hooks_.authorize(a, b);
      case Out.AuthorizeUser:
        return this.hooks_.authorizeUser(a);
      case Out.Error:
        this.toFeatures_((f) => f.serverError(a));
        return this.hooks_.error(n >= 0 ? n : undefined, a);
      case Out.Data:
        this.recording_?.push([n]);
        return listener && invoke(listener[0], a ? [this.data_, { user_id: a }] : [this.data_]);
      case Out.NamedData:
        this.recording_?.push([n, a]);
        return listener && invoke(listener[0], [a, this.data_]);
      case Out.Call:
        return listener && invoke(listener[0], []);
      case Out.Member:
        this.pendingMembers_.push(a);
        return;
      case Out.Members: {
        const ids = this.pendingMembers_.splice(0);
        return listener && invoke(listener[0], [ids.map((user) => this.info_(listener[1], user))]);
      }
      case Out.OneMember:
        // The user id after the `user_info`: pusher-js's `member_added` / `member_removed` carry both.
        return listener && invoke(listener[0], [this.info_(listener[1], a), a]);
      case Out.AuthError:
        return listener && invoke(listener[0], [{ type: 'AuthError', error: a, status: b ? +b : null }]);
      case Out.Drop:
        this.listeners_.delete(n);
        return;
      case Out.SignedIn:
        this.userIdNow_ = a;
        return this.toFeatures_((f) => f.signedIn());
      case Out.Item:
        this.items_.push([n, a, b]);
        return;
      case Out.Throw:
        this.thrown_ = a;
        return;
      case Out.Plain:
        this.plain_ = a;
        return;
    }
  }

  private info_(channel: string, user: string): unknown {
    return this.departed_?.[0] === user ? this.departed_[1] : this.presence_.get(channel)?.get(user);
  }

  private closeSocket_(): void {
    const socket = this.socket_;
    if (!socket) return;
    socket.onmessage = socket.onclose = socket.onerror = null;
    socket.close();
    this.socket_ = undefined;
  }

  /**
   * One socket frame: parsed here, told to the wasm by kind; its payload stays here. `stamp`:
   * when it arrived, on `performance.now()`'s clock (the event's `timeStamp`: reading it costs a
   * fifth of calling `performance.now()`), where the runtime gives one.
   */
  private frame_(text: unknown, stamp?: number): void {
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
    if (typeof event !== 'string') return this.unreadable_();
    switch (event) {
      case 'pusher:connection_established':
        if (typeof data?.socket_id !== 'string') return this.unreadable_();
        this.establishing_ = data.socket_id;
        this.extensions_ = (data.overtone?.reads ? 1 : 0) | (data.overtone?.status ? 2 : 0);
        this.run_(Op.Established, data.socket_id, '', '', '', count(data.activity_timeout));
        return this.toFeatures_((f) => f.established(this.extensions_));
      case 'pusher:ping':
        return void this.run_(Op.Ping);
      case 'pusher:pong':
        return void this.run_(Op.Pong);
      case 'pusher:error':
        return void this.run_(Op.ServerError, String(data?.message ?? ''), '', '', '', count(data?.code));
      case 'pusher:signin_success': {
        let user = '';
        try {
          user = id(JSON.parse(data?.user_data).id);
        } catch {
          // Reported below.
        }
        return user ? void this.run_(Op.SigninSuccess, user) : this.unreadable_();
      }
    }
    if (typeof channel !== 'string') return this.unreadable_();
    switch (event) {
      case 'pusher_internal:subscription_succeeded': {
        const hash = data?.presence?.hash;
        const presence = hash !== null && typeof hash === 'object';
        if (presence) {
          this.presence_.set(channel, new Map(Object.entries(hash)));
          for (const user of Object.keys(hash)) this.run_(Op.PresenceMember, user);
        }
        const recovered = typeof frame.recovered === 'boolean' ? +frame.recovered : -1;
        this.run_(Op.Subscribed, channel, position(frame), '', presence ? '1' : '', recovered);
        if (presence) this.toFeatures_((f) => this.presenceUp_(f, channel));
        if (channel.startsWith('private-') || presence) {
          this.followed_.set(channel, new Map());
          this.heard_(channel, 'subscribed', position(frame));
        }
        return;
      }
      case 'pusher:subscription_error':
        return void this.run_(Op.SubscriptionError, channel, String(data?.error ?? 'Subscription refused'), '', '', count(data?.status));
      case 'pusher_internal:member_added': {
        const user = id(data?.user_id);
        if (!user) return this.unreadable_();
        if (!this.presence_.has(channel)) this.presence_.set(channel, new Map());
        this.presence_.get(channel)!.set(user, data.user_info);
        this.run_(Op.MemberAdded, channel, user);
        return this.toFeatures_((f) => f.memberJoined(channel, user));
      }
      case 'pusher_internal:member_removed': {
        const user = id(data?.user_id);
        if (!user) return this.unreadable_();
        // Gone from `members()` before the `leaving` listeners run, as in laravel-echo.
        const members = this.presence_.get(channel);
        this.departed_ = [user, members?.get(user)];
        members?.delete(user);
        this.run_(Op.MemberRemoved, channel, user);
        this.departed_ = undefined;
        return this.toFeatures_((f) => f.memberLeft(channel, user, data.last_seen_at));
      }
    }
    if (event.startsWith('overtone:')) return this.heard_(channel, event, data);
    const protocol = event.startsWith('pusher');
    if (channel.startsWith('private-encrypted-') && !protocol) {
      this.plain_ = undefined;
      this.run_(Op.Decrypt, channel, String(data?.nonce), String(data?.ciphertext));
      if (this.plain_ === undefined) return;
      try {
        data = JSON.parse(this.plain_);
      } catch {
        return this.hooks_.error(undefined, 'Could not decrypt an event');
      }
    }
    const sender = id(frame.user_id);
    const at = position(frame);
    // Decrypted by now; the protocol's own events always go to the core.
    const plain = !sender && !at && !protocol;
    const route = plain ? this.routes_.get(channel)?.get(event) : undefined;
    if (route) {
      this.seen_ = stamp ?? performance.now();
      for (const [listener, name] of route) {
        const callback = this.listeners_.get(listener)?.[0];
        if (callback) invoke(callback, name === undefined ? [data] : [name, data]);
      }
    } else {
      const routes = this.routes_;
      const recorded: Route | undefined = (this.recording_ = plain ? [] : undefined);
      this.data_ = data;
      this.run_(Op.Event, channel, event, sender, at);
      this.data_ = this.recording_ = undefined;
      // Into the map of before the call: if a listener changed the routing meanwhile, that map
      // is gone. Bounded: a server could send any number of channel and event names.
      const names = routes.get(channel) ?? new Map<string, Route>();
      if (recorded && routes.size < 64 && names.size < 64) routes.set(channel, names.set(event, recorded));
    }
    if (at) this.heard_(channel, 'position', at);
    // What the typing, status and badge machines hear of it.
    const user = sender || id(data?.user_id);
    if (event === TYPING && user) this.toFeatures_((f) => f.typingSeen(channel, user, !!data?.typing));
    if (event === STATUS && user && typeof data?.status === 'string') this.toFeatures_((f) => f.statusSeen(channel, user, data));
    // Badges count every notification: they load the features module.
    if (event === NOTIFICATION && id(data?.id)) {
      const category = [data.category, data.type].find((c) => typeof c === 'string') ?? 'default';
      this.withFeatures_((f) => f.notification(id(data.id), category));
    }
    if (event === BADGE_COUNT && typeof data?.category === 'string' && count(data.count) >= 0) {
      this.withFeatures_((f) => f.badgeCount(data.category, data.count));
    }
  }

  private unreadable_(): void {
    this.hooks_.error(undefined, 'Unreadable frame from the server');
  }

  // ---- the app's calls ----

  connect(): void {
    this.run_(Op.Connect);
  }

  disconnect(): void {
    this.run_(Op.Disconnect);
  }

  socketId(): string | undefined {
    return this.socketIdNow_;
  }

  /** Whether any page of this client is visible: set by the shared connection's worker, where no page's events reach. */
  visibility(visible: boolean): void {
    this.hidden_ = !visible;
    this.run_(Op.Visibility, '', '', '', '', +visible);
    this.toFeatures_((f) => f.visibility(visible));
  }

  /** The signed-in user's id, once the server confirmed the sign-in. */
  userId(): string | undefined {
    return this.userIdNow_;
  }

  /** Throws on an invalid channel name. */
  subscribe(channel: string): void {
    this.run_(Op.Subscribe, channel);
  }

  leaveChannel(channel: string): void {
    this.run_(Op.Leave, channel);
    this.presence_.delete(channel);
    this.own_.delete(channel);
    this.toFeatures_((f) => f.left(channel));
  }

  /** `kind`: `event` (with `event`), `all`, `subscribed`, `error`, `here`, `joining`, `leaving`. */
  bind(channel: string, kind: string, event: string | undefined, callback: Callback): number {
    const listener = this.run_(Op.Bind, channel, kind, event ?? '');
    this.listeners_.set(listener, [callback, channel]);
    return listener;
  }

  bindUser(event: string, callback: Callback): number {
    const listener = this.run_(Op.BindUser, event);
    this.listeners_.set(listener, [callback, '']);
    return listener;
  }

  unbind(listener: number): void {
    this.run_(Op.Unbind, '', '', '', '', listener);
    this.listeners_.delete(listener);
  }

  /** Unbinds `channel`'s `kind` (+ `event`) listeners; only those calling `callback` when given. */
  unbindMatching(channel: string, kind: string, event?: string, callback?: Callback): void {
    const bound = this.query_(Op.Listeners, channel, kind, event);
    for (const [listener] of bound) {
      if (!callback || this.listeners_.get(listener)?.[0] === callback) this.unbind(listener);
    }
  }

  /**
   * Sends `client-{event}`; false when it cannot go (not subscribed yet, or reconnecting; not a
   * private or presence channel), with a warning, as pusher-js warns rather than throws.
   */
  whisper(channel: string, event: string, data: unknown): boolean {
    return this.whisperJson_(channel, event, JSON.stringify(data) ?? 'null', true);
  }

  /** `warn`: off for the typing and status hints, which just wait for the next keystroke. */
  private whisperJson_(channel: string, event: string, json: string, warn: boolean): boolean {
    try {
      this.run_(Op.Whisper, channel, event, json);
      return true;
    } catch (error) {
      if (warn) console.warn(`overtone: client-${event} on ${channel} not sent: ${(error as Error).message}`);
      return false;
    }
  }

  /** A presence channel's members: user id -> `user_info`. */
  members(channel: string): ReadonlyMap<string, unknown> {
    return this.presence_.get(channel) ?? new Map();
  }

  authorized(channel: string, socketId: string, auth: string, channelData?: string, sharedSecret?: string): void {
    let user = '';
    try {
      user = id(JSON.parse(channelData!).user_id);
    } catch {
      // Not a presence channel.
    }
    if (user) this.own_.set(channel, user);
    this.run_(Op.AuthExtra, channelData ?? '', user, sharedSecret ?? '');
    this.run_(Op.Authorized, channel, socketId, auth);
  }

  authorizationFailed(channel: string, socketId: string, status: number | undefined, error: string): void {
    this.run_(Op.AuthorizationFailed, channel, socketId, error, '', status ?? -1);
  }

  signin(): void {
    this.run_(Op.Signin);
  }

  userAuthorized(socketId: string, auth: string, userData: string): void {
    this.run_(Op.UserAuthorized, socketId, auth, userData);
  }

  // ---- typing, statuses and badges: the features module, loaded on first use ----

  typing(channel: string): void {
    this.withFeatures_((f) => f.typing(channel, this.ownId(channel)));
  }

  stopTyping(channel: string): void {
    this.withFeatures_((f) => f.stopTyping(channel, this.ownId(channel)));
  }

  /** Who is typing on `channel`, in the order they started, with `info` on presence channels. */
  typingUsers(channel: string): { id: string; info?: unknown }[] {
    return this.withFeatures_((f) => f.typingUsers(channel, this.ownId(channel))) ?? [];
  }

  /** `{userId: 'online' | 'away'}` on a presence channel. */
  statuses(channel: string): Record<string, string> {
    return this.withFeatures_((f) => f.statuses(channel)) ?? {};
  }

  /** A member's status, or this tab's own without `user`. */
  status(channel: string, user?: string): string | undefined {
    return this.withFeatures_((f) => f.status(channel, user));
  }

  /** `{category: count}` of unread notifications. */
  badgeCounts(): Record<string, number> {
    return this.withFeatures_((f) => f.badgeCounts()) ?? {};
  }

  /** `kind`: `id`, `category` or `all`. */
  markRead(kind: string, value: string): void {
    this.withFeatures_((f) => f.markRead(kind, value));
  }

  /** This user read `channel` up to `upTo` (a position or the app's id). */
  markChannelRead(channel: string, upTo: string): void {
    this.withFeatures_((f) => f.markChannelRead(channel, upTo));
  }

  /** The other users who read `channel` up to `upTo` or further. */
  readers(channel: string, upTo: string): string[] {
    return this.withFeatures_((f) => f.readers(channel, upTo)) ?? [];
  }

  readState(channel: string): ReadState {
    return this.withFeatures_((f) => f.readState(channel)) ?? { readers: {}, unread: 0 };
  }

  /** The user's status on every presence channel. */
  setStatus(status: string, message: string): void {
    this.withFeatures_((f) => f.setStatus(status, message));
  }

  memberStatuses(channel: string): PresenceDetails | undefined {
    return this.withFeatures_((f) => f.memberStatuses(channel));
  }

  /**
   * `callback(state)` on every change of `what`: `typing` or `status` on `channel`, or
   * `badges` (and once when the features module has loaded). Returns an id for `unwatch`.
   */
  watch(what: string, channel: string, callback: Callback): number {
    const watcher = this.nextWatcher_++;
    this.watchers_.set(watcher, undefined);
    this.withFeatures_((f) => {
      if (this.watchers_.has(watcher)) this.watchers_.set(watcher, f.watch(what, channel, callback, this.ownId(channel)));
    });
    return watcher;
  }

  unwatch(watcher: number): void {
    const inFeatures = this.watchers_.get(watcher);
    this.watchers_.delete(watcher);
    if (inFeatures !== undefined) this.features_!.unwatch(inFeatures);
  }

  /** This user's id on `channel`: its presence id, else the signed-in user's. */
  ownId(channel: string): string {
    return this.own_.get(channel) ?? this.userIdNow_ ?? '';
  }

  /**
   * What the features module follows of a private or presence channel: `subscribed` (at a
   * position), `position` (an event's) and the `overtone:*` frames. Told to the module once it
   * is loaded; until then kept, for it to catch up from when it loads: the newest of each kind,
   * read markers merged, updates by user.
   */
  private heard_(channel: string, event: string, data: any): void {
    const kept = this.followed_.get(channel);
    if (!kept || data === null || data === undefined) return;
    this.features_?.heard(channel, event, data, this.ownId(channel));
    const kind = event === 'position' ? 'subscribed' : event;
    const merged = event === READS ? { reads: { ...kept.get(READS)?.[1].reads, ...data.reads } } : data;
    const key = event === MEMBER_UPDATED ? event + data.user_id : kind;
    kept.delete(key);
    kept.set(key, [kind, merged]);
  }

  private presenceUp_(features: Features, channel: string): void {
    features.presenceUp(channel, this.own_.get(channel) ?? '', this.presence_.get(channel)?.keys() ?? []);
  }

  /**
   * Runs `call` on the features module, loading it first if needed; what it answers when the
   * module is loaded already (queries answer `undefined` until then).
   */
  private withFeatures_<T>(call: (features: Features) => T): T | undefined {
    if (this.features_) return call(this.features_);
    if (!this.featureCalls_) {
      this.featureCalls_ = [];
      const host = {
        ...this.options_,
        hidden: this.hidden_,
        whisper: (channel: string, event: string, json: string) => this.whisperJson_(channel, event, json, false),
        send: (frame: string) => this.socketIdNow_ && this.socket_?.readyState === 1 && this.socket_.send(frame),
        info: (channel: string, user: string): [boolean, unknown] => {
          const members = this.presence_.get(channel);
          return [!!members?.has(user), members?.get(user)];
        },
      };
      import('./features.js')
        .then(({ start }) => start(host, instantiate))
        .then((features) => {
          this.features_ = features;
          // What it missed: the connection's extensions, the presence channels this client is
          // on, and what the server said of the channels it follows.
          if (this.socketIdNow_) {
            features.established(this.extensions_);
            if (this.userIdNow_) features.signedIn();
            for (const channel of this.presence_.keys()) this.presenceUp_(features, channel);
            for (const [channel, kept] of this.followed_) {
              for (const [event, data] of kept.values()) features.heard(channel, event, data, this.ownId(channel));
            }
          }
          for (const waiting of this.featureCalls_!.splice(0)) waiting(features);
          features.changed('badges', '');
        })
        .catch((error) => console.error('overtone: could not load typing, statuses and badges', error));
    }
    this.featureCalls_.push(call);
    return undefined;
  }

  /** Runs `call` on the features module if it is loaded or loading: nobody needs them otherwise. */
  private toFeatures_(call: (features: Features) => void): void {
    if (this.features_) call(this.features_);
    else this.featureCalls_?.push(call);
  }
}

/** What the Echo layer uses of a client: this page's `Client`, or the shared connection's stand-in. */
export type ClientApi = Omit<Client, 'out'>;

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
