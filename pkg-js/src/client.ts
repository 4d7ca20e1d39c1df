// The page's side of the wasm client. The wasm decides (connection states, backoff, channels,
// listeners, presence, typing, statuses, badges); this file does what it cannot: the socket,
// the timer, window events, storage and tabs, JSON, and everything holding JavaScript values
// (callbacks, event payloads, members' `user_info`). Only strings and numbers cross: calls go in
// through the wasm's one export, `call(client, op, a, b, c, d, n)` (`Op`), answers come back
// through `out(client, kind, n, a, b)` (`Out`). Both are numbered as in client-wasm/src/web/.
import { call } from '../wasm/overtone.js';

type Callback = (...args: any[]) => void;

/** client-wasm/src/web/mod.rs `op`, in order. */
const enum Op {
  New, Options, Connect, Disconnect, Subscribe, Leave, Bind, BindUser, Unbind, Listeners,
  Whisper, AuthExtra, Authorized, AuthorizationFailed, Signin, UserAuthorized, Typing, StopTyping,
  TypingUsers, Statuses, Status, BadgeCounts, MarkRead, Established, Ping, Pong, ServerError,
  SigninSuccess, PresenceMember, Subscribed, SubscriptionError, MemberAdded, MemberRemoved, Event,
  Decrypt, TypingSeen, StatusSeen, Notification, BadgeCount, Closed, SocketError, Timer, Online,
  Visibility, PageShown, BadgesRemote,
}

/** client-wasm/src/web/shell.rs `Out`, in order. */
const enum Out {
  Open, Send, Close, Timer, State, Authorize, AuthorizeUser, Error, StoreBadges, PostBadges, Data,
  NamedData, Call, Member, Members, OneMember, AuthError, Drop, SignedIn, Changed, Item, Throw, Plain,
}

// The events the typing, status and badge machines follow (client-wasm/src/features/).
const TYPING = 'client-typing';
const STATUS = 'client-overtone-status';
const NOTIFICATION = 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
const BADGE_COUNT = 'overtone.badge-count';
const WATCHED = ['typing', 'status', 'badges'];

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

/** A user id as the wasm keeps it: strings as they are, integers in decimal; else `''`. */
const id = (value: unknown): string =>
  typeof value === 'string' ? value : Number.isSafeInteger(value) ? String(value) : '';
const count = (value: unknown): number => (typeof value === 'number' && value >= 0 ? value : -1);

const clients: Client[] = [];

/** The wasm's one import (`raw_module = "overtone-io"`, resolved to this file by build.mjs). */
export function out(client: number, kind: Out, n: number, a: string, b: string): void {
  clients[client].out(kind, n, a, b);
}

/** A wasm client doing its IO in this page. Only in a browser, once the wasm is loaded. */
export class Client {
  private readonly index: number;
  private readonly storageKey: string;
  private readonly tabs?: BroadcastChannel;
  private socket?: WebSocket;
  private timer?: ReturnType<typeof setTimeout>;
  /** Listener id -> callback and channel. */
  private readonly listeners = new Map<number, [Callback, string]>();
  /** Presence channel -> user id -> `user_info`. */
  private readonly presence = new Map<string, Map<string, unknown>>();
  private readonly watchers = new Map<number, [string, string, Callback]>();
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

  constructor(options: Options, private readonly hooks: Hooks) {
    this.storageKey = `overtone-badges:${options.badgeScope}`;
    let stored: string | null = null;
    try {
      stored = localStorage.getItem(this.storageKey);
    } catch {
      // Disabled storage: the badges still work for this page's life.
    }
    const ports = options.wsPort + options.wssPort * 2 ** 16 + (options.forceTLS ? 2 ** 32 : 0);
    this.index = call(0, Op.New, options.key, options.host, options.path ?? '', options.namespace ?? '', ports);
    clients[this.index] = this;
    this.run(Op.Options, stored ?? '', document.hidden ? '1' : '', '', String(options.awayAfterMs ?? ''));
    if (typeof BroadcastChannel === 'function') {
      this.tabs = new BroadcastChannel(this.storageKey);
      this.tabs.onmessage = (event) => typeof event.data === 'string' && this.run(Op.BadgesRemote, event.data);
    }
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
        this.socketIdNow = a === 'connected' ? this.establishing : undefined;
        if (a !== 'connected') this.userIdNow = undefined;
        return this.hooks.stateChanged(a);
      case Out.Authorize:
        return this.hooks.authorize(a, b);
      case Out.AuthorizeUser:
        return this.hooks.authorizeUser(a);
      case Out.Error:
        return this.hooks.error(n >= 0 ? n : undefined, a);
      case Out.StoreBadges:
        try {
          localStorage.setItem(this.storageKey, a);
        } catch {
          // Full or disabled storage: the badges still work for this page's life.
        }
        return;
      case Out.PostBadges:
        return this.tabs?.postMessage(a);
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
      case Out.Changed: {
        const what = WATCHED[n];
        for (const [watched, channel, callback] of this.watchers.values()) {
          if (watched !== what || (what !== 'badges' && channel !== a)) continue;
          const value = what === 'typing' ? this.typingUsers(a) : what === 'status' ? this.statuses(a) : this.badgeCounts();
          invoke(callback, [value]);
        }
        return;
      }
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
        return;
      }
      case 'pusher:subscription_error':
        return void this.run(Op.SubscriptionError, channel, String(data?.error ?? 'Subscription refused'), '', '', count(data?.status));
      case 'pusher_internal:member_added': {
        const user = id(data?.user_id);
        if (!user) return unreadable();
        if (!this.presence.has(channel)) this.presence.set(channel, new Map());
        this.presence.get(channel)!.set(user, data.user_info);
        return void this.run(Op.MemberAdded, channel, user);
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
        return;
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
    if (event === TYPING && user) this.run(Op.TypingSeen, channel, user, '', '', data?.typing ? 1 : 0);
    if (event === STATUS && user && typeof data?.status === 'string') this.run(Op.StatusSeen, channel, user, data.status);
    if (event === NOTIFICATION && id(data?.id)) {
      const category = [data.category, data.type].find((c) => typeof c === 'string') ?? 'default';
      this.run(Op.Notification, id(data.id), category);
    }
    if (event === BADGE_COUNT && typeof data?.category === 'string' && count(data.count) >= 0) {
      this.run(Op.BadgeCount, data.category, '', '', '', data.count);
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
    this.run(Op.Whisper, channel, event, JSON.stringify(data) ?? 'null');
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

  typing(channel: string): void {
    this.run(Op.Typing, channel);
  }

  stopTyping(channel: string): void {
    this.run(Op.StopTyping, channel);
  }

  /** Who is typing on `channel`, in the order they started, with `info` on presence channels. */
  typingUsers(channel: string): { id: string; info?: unknown }[] {
    return this.query(Op.TypingUsers, channel).map(([, user]) => {
      const members = this.presence.get(channel);
      return members?.has(user) ? { id: user, info: members.get(user) } : { id: user };
    });
  }

  /** `{userId: 'online' | 'away'}` on a presence channel. */
  statuses(channel: string): Record<string, string> {
    return Object.fromEntries(this.query(Op.Statuses, channel).map(([, user, status]) => [user, status]));
  }

  /** A member's status, or this tab's own without `user`. */
  status(channel: string, user?: string): string | undefined {
    return ['online', 'away'][this.run(Op.Status, channel, user ?? '')];
  }

  /** `{category: count}` of unread notifications. */
  badgeCounts(): Record<string, number> {
    return Object.fromEntries(this.query(Op.BadgeCounts).map(([n, category]) => [category, n]));
  }

  /** `kind`: `id`, `category` or `all`. */
  markRead(kind: string, value: string): void {
    this.run(Op.MarkRead, kind, value);
  }

  /**
   * `callback(state)` on every change of `what`: `typing` or `status` on `channel`, or
   * `badges`. Returns an id for `unwatch`.
   */
  watch(what: string, channel: string, callback: Callback): number {
    // Typing is followed from the first look on.
    if (what === 'typing') this.query(Op.TypingUsers, channel);
    this.watchers.set(this.nextWatcher, [what, channel, callback]);
    return this.nextWatcher++;
  }

  unwatch(watcher: number): void {
    this.watchers.delete(watcher);
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
