// Channel objects with laravel-echo's chainable API, over the wasm Client. Every call is
// queued by Echo until the wasm is loaded, then runs in order.
import type { Client } from './client.js';

export type Callback = (...args: any[]) => void;

export type TypingUser = { id: string; info?: unknown };

/** What a channel needs from Echo: run a call on the client (now or once loaded). */
export interface ClientRunner {
  use(call: (client: Client) => void): void;
  loaded(): Client | undefined;
}

const NOTIFICATION = '.Illuminate\\Notifications\\Events\\BroadcastNotificationCreated';
/** The reserved event the wasm dispatches when a resubscription could not recover. */
const RECOVERY_FAILED = '.pusher:recovery_failed';

export class Channel {
  /**
   * False from a resubscription that could not recover the events missed while disconnected
   * (the server's history no longer reached back) until the next one that lost nothing.
   */
  recovered = true;
  private failing = false;

  /** Create it after asking the client to subscribe: it binds its own bookkeeping. */
  constructor(
    protected readonly runner: ClientRunner,
    readonly name: string,
  ) {
    this.keep('subscribed');
    this.keep('event', RECOVERY_FAILED);
  }

  /** Binds `callback` to `event` (Echo's namespace rules: `.name` means as written). */
  listen(event: string, callback: Callback): this {
    return this.on('event', callback, event);
  }

  stopListening(event: string, callback?: Callback): this {
    return this.off('event', callback, event);
  }

  /** `callback(eventName, data)` for every event on the channel. */
  listenToAll(callback: Callback): this {
    return this.on('all', callback);
  }

  stopListeningToAll(callback?: Callback): this {
    return this.off('all', callback);
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
    return this.on('subscribed', callback);
  }

  stopListeningForSubscribed(callback?: Callback): this {
    return this.off('subscribed', callback);
  }

  /** `callback({type: 'AuthError', error, status})` when the subscription is refused. */
  error(callback: Callback): this {
    return this.on('error', callback);
  }

  stopListeningForError(callback?: Callback): this {
    return this.off('error', callback);
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
    this.runner.use((c) => c.whisper(this.name, event, data));
    return this;
  }

  /** Call on every keystroke: others see this user typing until idle or `stopTyping()`. */
  typing(): this {
    this.runner.use((c) => c.typing(this.name));
    return this;
  }

  /** The message was sent: stop the typing indicator now. */
  stopTyping(): this {
    this.runner.use((c) => c.stopTyping(this.name));
    return this;
  }

  /** Who is typing on this channel, in the order they started (`info` on presence channels). */
  typingUsers(): TypingUser[] {
    return this.runner.loaded()?.typingUsers(this.name) ?? [];
  }

  /** `callback(typingUsers)` whenever who is typing changes; returns the unsubscribe function. */
  onTypingChange(callback: (users: TypingUser[]) => void): () => void {
    return this.watch('typing', callback);
  }

  protected watch(what: string, callback: Callback): () => void {
    let id: number | undefined;
    let cancelled = false;
    this.runner.use((c) => {
      if (!cancelled) id = c.watch(what, this.name, callback);
    });
    return () => {
      cancelled = true;
      this.runner.use((c) => id !== undefined && c.unwatch(id));
    };
  }

  protected on(kind: string, callback: Callback, event?: string): this {
    this.runner.use((c) => c.bind(this.name, kind, event, callback));
    return this;
  }

  protected off(kind: string, callback?: Callback, event?: string): this {
    this.runner.use((c) => c.unbindMatching(this.name, kind, event, callback));
    // Without a callback, that also removed the `recovered` bookkeeping: bind it again.
    if (!callback) this.keep(kind, event);
    return this;
  }

  private keep(kind: string, event?: string): void {
    if (kind === 'subscribed') {
      this.on(kind, () => {
        this.recovered = !this.failing;
        this.failing = false;
      });
    }
    if (event === RECOVERY_FAILED) {
      this.on(kind, () => {
        this.recovered = false;
        this.failing = true;
      }, event);
    }
  }
}

export type Status = 'online' | 'away';

export class PresenceChannel extends Channel {
  /** `callback(members)` with every member's `user_info` after each (re)subscription. */
  here(callback: Callback): this {
    return this.on('here', callback);
  }

  stopListeningForHere(callback?: Callback): this {
    return this.off('here', callback);
  }

  /** `callback(userInfo)` when a user joins (their first connection). */
  joining(callback: Callback): this {
    return this.on('joining', callback);
  }

  stopListeningForJoining(callback?: Callback): this {
    return this.off('joining', callback);
  }

  /** `callback(userInfo)` when a user leaves (their last connection). */
  leaving(callback: Callback): this {
    return this.on('leaving', callback);
  }

  stopListeningForLeaving(callback?: Callback): this {
    return this.off('leaving', callback);
  }

  /** Every member's `user_info`, now. */
  members(): unknown[] {
    return this.runner.loaded()?.members(this.name) ?? [];
  }

  /** `{userId: 'online' | 'away'}` for the members present. */
  statuses(): Record<string, Status> {
    return (this.runner.loaded()?.statuses(this.name) ?? {}) as Record<string, Status>;
  }

  /** A member's status, or this tab's own without `userId`. */
  status(userId?: string | number): Status | undefined {
    const id = userId === undefined ? undefined : String(userId);
    return this.runner.loaded()?.status(this.name, id) as Status | undefined;
  }

  /** `callback(statuses)` on every change; returns the unsubscribe function. */
  onStatusChange(callback: (statuses: Record<string, Status>) => void): () => void {
    return this.watch('status', callback);
  }
}
