// Channel objects with laravel-echo's chainable API, over the wasm Client. Every call is
// queued by Echo until the wasm is loaded, then runs in order.
import type { ClientApi as Client } from './client.js';
import type { PresenceDetails, ReadState, StatusDetails } from './types.js';
import { named, PusherChannel } from './pusher.js';

export type Callback = (...args: any[]) => void;

export type TypingUser = { id: string; info?: unknown };

/** What a channel needs from Echo: run a call on the client (now or once loaded). */
export interface ClientRunner {
  use(call: (client: Client) => void): void;
  loaded(): Client | undefined;
  readonly options: { namespace?: string | false };
}

const NOTIFICATION = '.Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
/** The reserved event the wasm dispatches when a resubscription could not recover. */
const RECOVERY_FAILED = '.pusher:recovery_failed';

// Internal members end in `_`: build.mjs has esbuild shorten those names (`mangleProps`).
export class Channel {
  /**
   * False from a resubscription that could not recover the events missed while disconnected
   * (the server's history no longer reached back) until the next one that lost nothing.
   */
  recovered = true;
  private failing_ = false;
  /** The error callbacks, also kept here for when the client cannot start (`unloadable_`). */
  private readonly errors_ = new Set<Callback>();
  /** The channel as pusher-js has it (laravel-echo's `channel.subscription`). */
  readonly subscription: PusherChannel;

  /** Create it after asking the client to subscribe: it binds its own bookkeeping. */
  constructor(
    protected readonly runner_: ClientRunner,
    readonly name: string,
  ) {
    this.subscription = named(new PusherChannel(runner_, name), `echo.connector.pusher.channel('${name}')`);
    this.keep_('subscribed');
    this.keep_('event', RECOVERY_FAILED);
  }

  /** Binds `callback` to `event` (Echo's namespace rules: `.name` means as written). */
  listen(event: string, callback: Callback): this {
    return this.on_('event', callback, event);
  }

  stopListening(event: string, callback?: Callback): this {
    return this.off_('event', callback, event);
  }

  /** `callback(eventName, data)` for every event on the channel. */
  listenToAll(callback: Callback): this {
    return this.on_('all', callback);
  }

  stopListeningToAll(callback?: Callback): this {
    return this.off_('all', callback);
  }

  listenForWhisper(event: string, callback: Callback): this {
    return this.listen(`.client-${event}`, callback);
  }

  stopListeningForWhisper(event: string, callback?: Callback): this {
    return this.stopListening(`.client-${event}`, callback);
  }

  /** Laravel's broadcast notifications (these also feed `echo.badges`). */
  notification(callback: Callback): this {
    return this.listen(NOTIFICATION, callback);
  }

  stopListeningForNotification(callback?: Callback): this {
    return this.stopListening(NOTIFICATION, callback);
  }

  /** After every successful (re)subscription. */
  subscribed(callback: Callback): this {
    return this.on_('subscribed', callback);
  }

  stopListeningForSubscribed(callback?: Callback): this {
    return this.off_('subscribed', callback);
  }

  /** `callback({type: 'AuthError', error, status})` when the subscription is refused. */
  error(callback: Callback): this {
    this.errors_.add(callback);
    return this.on_('error', callback);
  }

  stopListeningForError(callback?: Callback): this {
    if (callback) this.errors_.delete(callback);
    else this.errors_.clear();
    return this.off_('error', callback);
  }

  /** @internal The client could not start at all: the error callbacks hear why. */
  unloadable_(cause: string): void {
    for (const callback of this.errors_) callback({ type: 'AuthError', error: cause, status: null });
  }

  /**
   * `callback()` when the server could not replay the events missed while disconnected (Overtone
   * servers with history; others never call it): refetch what the page shows. Runs before the
   * `subscribed` callbacks of that resubscription.
   */
  recoveryFailed(callback: Callback): this {
    return this.listen(RECOVERY_FAILED, callback);
  }

  stopListeningForRecoveryFailed(callback?: Callback): this {
    return this.stopListening(RECOVERY_FAILED, callback);
  }

  /** Sends `client-{event}` (private and presence channels, once subscribed). */
  whisper(event: string, data: unknown): this {
    return this.use_((c, name) => c.whisper(name, event, data));
  }

  /** Call on every keystroke: others see this user typing until idle or `stopTyping()`. */
  typing(): this {
    return this.use_((c, name) => c.typing(name));
  }

  /** The message was sent: stop the typing indicator now. */
  stopTyping(): this {
    return this.use_((c, name) => c.stopTyping(name));
  }

  /** Who is typing on this channel, in the order they started (`info` on presence channels). */
  typingUsers(): TypingUser[] {
    return this.runner_.loaded()?.typingUsers(this.name) ?? [];
  }

  /** `callback(typingUsers)` whenever who is typing changes; returns the unsubscribe function. */
  onTypingChange(callback: (users: TypingUser[]) => void): () => void {
    return watch(this.runner_, 'typing', this.name, callback);
  }

  /**
   * Read receipts (private and presence channels): this user read up to `upTo`, a history
   * position (`EPOCH:OFFSET`, from an event's `position`) or an id the app chose (numeric ids
   * compare as numbers). Marks within a few ms go as one frame, and only forward; on servers
   * without the extension they stay in this page.
   */
  markRead(upTo: string | number): this {
    if (typeof upTo !== 'string' && !Number.isSafeInteger(upTo)) throw new TypeError(`markRead: ${upTo} is not a position or an id`);
    return this.use_((c, name) => c.markChannelRead(name, String(upTo)));
  }

  /** The other users who read up to `upTo` or further, sorted by id ("Seen by ..."). */
  readers(upTo: string | number): string[] {
    return this.runner_.loaded()?.readers(this.name, String(upTo)) ?? [];
  }

  /** How far `userId` read; this user without one. */
  readUpTo(userId?: string | number): string | undefined {
    const state = this.reads();
    return userId === undefined ? state.own : state.readers[String(userId)];
  }

  /** Every other user's marker, this user's, and the unread count. */
  reads(): ReadState {
    return this.runner_.loaded()?.readState(this.name) ?? { readers: {}, unread: 0 };
  }

  /** Events past this user's marker (on a channel with history: also right after a reload). */
  unreadCount(): number {
    return this.reads().unread;
  }

  /** `callback(reads())` whenever a marker or the unread count changes; returns the unsubscribe function. */
  onReadChange(callback: (reads: ReadState) => void): () => void {
    return watch(this.runner_, 'reads', this.name, callback);
  }

  /** Runs `call` with the client and this channel's name, now or once the wasm is loaded. */
  protected use_(call: (client: Client, name: string) => void): this {
    this.runner_.use((c) => call(c, this.name));
    return this;
  }

  protected on_(kind: string, callback: Callback, event?: string): this {
    return this.use_((c, name) => c.bind(name, kind, event, callback));
  }

  protected off_(kind: string, callback?: Callback, event?: string): this {
    this.use_((c, name) => c.unbindMatching(name, kind, event, callback));
    // Without a callback, that also removed the `recovered` bookkeeping: bind it again.
    return callback ? this : this.keep_(kind, event);
  }

  private keep_(kind: string, event?: string): this {
    if (kind === 'subscribed') {
      this.on_(kind, () => {
        this.recovered = !this.failing_;
        this.failing_ = false;
        this.subscription.subscribed = true;
      });
    }
    if (event === RECOVERY_FAILED) {
      this.on_(kind, () => {
        this.recovered = false;
        this.failing_ = true;
      }, event);
    }
    return this;
  }
}

/**
 * Calls `callback` with the watched state (`typing` or `status` of a channel, `badges`) on every
 * change; returns the unsubscribe function, which also works before the wasm is loaded.
 */
export function watch(runner: ClientRunner, what: string, channel: string, callback: Callback): () => void {
  let id: number | undefined;
  let cancelled = false;
  runner.use((c) => {
    if (!cancelled) id = c.watch(what, channel, callback);
  });
  return () => {
    cancelled = true;
    runner.use((c) => id !== undefined && c.unwatch(id));
  };
}

export type Status = 'online' | 'away';

export class PresenceChannel extends Channel {
  /** `callback(members)` with every member's `user_info` after each (re)subscription. */
  here(callback: Callback): this {
    return this.on_('here', callback);
  }

  stopListeningForHere(callback?: Callback): this {
    return this.off_('here', callback);
  }

  /** `callback(userInfo)` when a user joins (their first connection). */
  joining(callback: Callback): this {
    return this.on_('joining', callback);
  }

  stopListeningForJoining(callback?: Callback): this {
    return this.off_('joining', callback);
  }

  /** `callback(userInfo)` when a user leaves (their last connection). */
  leaving(callback: Callback): this {
    return this.on_('leaving', callback);
  }

  stopListeningForLeaving(callback?: Callback): this {
    return this.off_('leaving', callback);
  }

  /** Every member's `user_info`, now. */
  members(): unknown[] {
    return [...(this.runner_.loaded()?.members(this.name).values() ?? [])];
  }

  /** `{userId: 'online' | 'away'}` for the members present. */
  statuses(): Record<string, Status> {
    return (this.runner_.loaded()?.statuses(this.name) ?? {}) as Record<string, Status>;
  }

  /** A member's status, or this tab's own without `userId`. */
  status(userId?: string | number): Status | undefined {
    const id = userId === undefined ? undefined : String(userId);
    return this.runner_.loaded()?.status(this.name, id) as Status | undefined;
  }

  /** `callback(statuses)` on every change (of `memberStatuses()` too); returns the unsubscribe function. */
  onStatusChange(callback: (statuses: Record<string, Status>) => void): () => void {
    return watch(this.runner_, 'status', this.name, callback);
  }

  /**
   * What every member shows (`status`: `online`, `away` or what they set with
   * `echo.setStatus`, `message`, `device`, `awaySince`), the members who left with when they
   * were last seen (`left`), and this user (`own`).
   */
  memberStatuses(): PresenceDetails {
    return this.runner_.loaded()?.memberStatuses(this.name) ?? ({ members: {}, left: {} } as PresenceDetails);
  }

  /** What a member shows; this user without `userId`. */
  memberStatus(userId?: string | number): StatusDetails | undefined {
    const all = this.memberStatuses();
    return userId === undefined ? all.own : all.members[String(userId)];
  }

  /** When a member who left was last seen (ms since the epoch). */
  lastSeenAt(userId: string | number): number | undefined {
    return this.memberStatuses().left[String(userId)];
  }
}
