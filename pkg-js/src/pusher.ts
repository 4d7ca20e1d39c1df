// `echo.connector.pusher`: the part of pusher-js 8's API that Echo apps reach into (connection
// state and its events, channels with bind/trigger/members, user sign-in), over the wasm client.
// Names, event names and callback arguments are pusher-js's; members it does not cover log an
// error naming them (see README, "Migrating").
import type { Callback, ClientRunner } from './channel.js';
import type Echo from './index.js';

/** pusher-js's EventsDispatcher: callbacks by event name, and global ones called with every event. */
class Dispatcher {
  private bound_: [string, Callback][] = [];
  private global_: Callback[] = [];

  bind(event: string, callback: Callback): this {
    this.bound_.push([event, callback]);
    return this;
  }

  /** All of `event`'s callbacks, or `callback` under every event, or both, or everything. */
  unbind(event?: string | null, callback?: Callback): this {
    this.bound_ = this.bound_.filter(([e, c]) => (event && e !== event) || (callback && c !== callback));
    return this;
  }

  bind_global(callback: Callback): this {
    this.global_.push(callback);
    return this;
  }

  unbind_global(callback?: Callback): this {
    this.global_ = callback ? this.global_.filter((c) => c !== callback) : [];
    return this;
  }

  unbind_all(): this {
    return this.unbind().unbind_global();
  }

  /** Calls `event`'s callbacks with `args` (and, unless `toGlobal` is false, the global ones). */
  emit_(event: string, args: unknown[], toGlobal = true): void {
    if (toGlobal) this.callGlobal_(event, args[0]);
    for (const [e, c] of this.bound_) if (e === event) call(c, args);
  }

  callGlobal_(event: string, data: unknown): void {
    for (const c of this.global_) call(c, [event, data]);
  }
}

function call(callback: Callback, args: unknown[]): void {
  try {
    callback(...args);
  } catch (error) {
    console.error(error);
  }
}

/** `target`, logging an error that names any member read that it lacks (pusher-js has it). */
function named<T extends object>(target: T, path: string): T {
  return new Proxy(target, {
    get(object, member, receiver) {
      // Symbols, promise checks and framework probes (`__v_skip`, `$$typeof`) are not app calls.
      if (typeof member === 'string' && !(member in object) && !/^(then|toJSON|[_$@])/.test(member)) {
        console.error(`overtone: ${path}.${member} is not part of overtone's pusher-js API (README: Migrating)`);
      }
      return Reflect.get(object, member, receiver);
    },
  });
}

/** pusher-js's `connection`: its state names and events (`state_change` `{previous, current}`, each state, `error`). */
class Connection extends Dispatcher {
  state = 'initialized';

  constructor(private readonly runner_: ClientRunner) {
    super();
  }

  /** Typed as pusher-js types it; undefined while not connected. */
  get socket_id(): string {
    return this.runner_.loaded()?.socketId() as string;
  }

  /** The client's state changed to `current` (see `Pusher.changed_`). */
  changed_(current: string): void {
    const previous = this.state;
    if (current === previous) return;
    this.state = current;
    this.emit_('state_change', [{ previous, current }]);
    this.emit_(current, current === 'connected' ? [{ socket_id: this.socket_id }] : []);
  }
}

/** A presence channel's pusher-js `members`. */
class Members {
  constructor(
    private readonly runner_: ClientRunner,
    private readonly channel_: string,
  ) {}

  private map_(): ReadonlyMap<string, unknown> {
    return this.runner_.loaded()?.members(this.channel_) ?? new Map();
  }

  /** `{userId: userInfo}`. */
  get members(): Record<string, unknown> {
    return Object.fromEntries(this.map_());
  }

  get count(): number {
    return this.map_().size;
  }

  get myID(): string | null {
    return this.runner_.loaded()?.ownId(this.channel_) || null;
  }

  get me(): { id: string; info: unknown } | null {
    return this.get(this.myID ?? '');
  }

  get(id: string | number): { id: string; info: unknown } | null {
    const map = this.map_();
    return map.has(String(id)) ? { id: String(id), info: map.get(String(id)) } : null;
  }

  each(callback: (member: { id: string; info: unknown }) => void): void {
    for (const id of this.map_().keys()) callback(this.get(id)!);
  }
}

/** The client's listener kinds behind pusher-js's own channel events. */
const KINDS: Record<string, string> = {
  'pusher:subscription_succeeded': 'subscribed',
  'pusher:subscription_error': 'error',
  'pusher:member_added': 'joining',
  'pusher:member_removed': 'leaving',
};

/**
 * A pusher-js channel (laravel-echo's `channel.subscription`). Its callbacks are kept here; the
 * client is asked once per event name for what it dispatches.
 */
export class PusherChannel extends Dispatcher {
  /** Set by the Echo channel's bookkeeping; false again once the connection is down. */
  subscribed = false;
  /** On presence channels; an own `undefined` elsewhere (no console error on reading it). */
  readonly members: Members | undefined;
  private tapped_ = new Set<string>();

  constructor(
    private readonly runner_: ClientRunner,
    readonly name: string,
  ) {
    super();
    this.members = name.startsWith('presence-') ? new Members(runner_, name) : undefined;
  }

  bind(event: string, callback: Callback): this {
    this.tap_(event);
    return super.bind(event, callback);
  }

  bind_global(callback: Callback): this {
    this.tap_('');
    return super.bind_global(callback);
  }

  /**
   * Sends a client event: `event` must start with `client-`, as in pusher-js. False when it could
   * not be sent (not subscribed); pusher-js too returns rather than throws.
   */
  trigger(event: string, data: unknown): boolean {
    if (!event.startsWith('client-')) throw new Error(`Event '${event}' does not start with 'client-'`);
    let sent = true;
    this.runner_.use((c) => (sent = c.whisper(this.name, event.slice(7), data)));
    return sent;
  }

  /** Asks the client for `event` (`''`: every event, for the global callbacks), once. */
  private tap_(event: string): void {
    if (this.tapped_.has(event)) return;
    this.tapped_.add(event);
    const kind = KINDS[event];
    const emit = (...args: unknown[]) => this.emit_(event, args, !!kind);
    const listener: Callback = !event
      ? (name: string, data) => this.callGlobal_(this.wireName_(name), data)
      : kind === 'subscribed'
        ? () => emit(this.members ?? {})
        : kind === 'joining' || kind === 'leaving'
          ? (info, id) => emit({ id, info })
          : (data, metadata) => emit(data, metadata ?? {});
    this.runner_.use((c) => c.bind(this.name, kind ?? (event ? 'event' : 'all'), `.${event}`, listener));
  }

  /** The wire name of an event as `listenToAll` names it (relative to the namespace, or `.` + wire). */
  private wireName_(name: string): string {
    const namespace = this.runner_.options.namespace || '';
    return name[0] === '.' ? name.slice(1) : `${namespace.replace(/\./g, '\\')}\\${name}`;
  }
}

/** `echo.connector.pusher`. */
export class Pusher {
  readonly connection: Connection;
  /** pusher-js's `user`: sign-in and the events sent to the signed-in user. */
  readonly user: { signin(): void; bind(event: string, callback: Callback): unknown; unbind(event: string, callback?: Callback): unknown };

  constructor(private readonly echo_: Echo<any>) {
    this.connection = named(new Connection(echo_), 'echo.connector.pusher.connection');
    this.user = named(
      {
        signin: () => echo_.signin(),
        bind: (event: string, callback: Callback) => echo_.user.listen(`.${event}`, callback),
        unbind: (event: string, callback?: Callback) => echo_.user.stopListening(`.${event}`, callback),
      },
      'echo.connector.pusher.user',
    );
    return named(this, 'echo.connector.pusher');
  }

  /** The client's state changed: down, no channel is subscribed until confirmed again. */
  changed_(state: string): void {
    if (state !== 'connected') for (const channel of this.allChannels()) channel.subscribed = false;
    this.connection.changed_(state);
  }

  get key(): string {
    return String(this.echo_.options.key);
  }

  /** The options it was made with (laravel-echo gives it the connector's). */
  get options(): Echo['options'] {
    return this.echo_.options;
  }

  /** The subscribed channel named `name`, else undefined (as pusher-js, typed as found). */
  channel(name: string): PusherChannel {
    return this.echo_.channels[name]?.subscription as PusherChannel;
  }

  allChannels(): PusherChannel[] {
    return Object.values(this.echo_.channels).map((channel) => channel.subscription);
  }

  subscribe(name: string): PusherChannel {
    return this.echo_.subscribe_(name).subscription;
  }

  unsubscribe(name: string): void {
    this.echo_.leaveChannel(name);
  }

  connect(): void {
    this.echo_.connect();
  }

  disconnect(): void {
    this.echo_.disconnect();
  }

  signin(): void {
    this.echo_.signin();
  }
}

export { named };
