// `shareConnection`, a tab's side: every tab of the origin talks to one SharedWorker
// (worker.ts) that owns the socket and the client. `SharedClient` stands in for this tab's
// `Client` with the same methods, so the Echo layer above is unchanged: calls go to the worker
// as messages, callbacks stay here and the worker says when to call them, and what the layer
// reads at once (socket id, members, typing, statuses, reads, badges) is kept here as the worker last
// said it. Loaded only by apps that turn the option on.
import type { ClientApi, Hooks, Options } from './client.js';
import type { PresenceDetails, ReadState } from './types.js';

type Callback = (...args: any[]) => void;
/** A bound listener: its callback and what it was bound to (`watch`es too, with `what` as kind). */
type Bound = [Callback, string, string, string | undefined];

/**
 * This tab's connection to the shared worker, once the worker has started its client; undefined
 * where it cannot (no SharedWorker, no Web Locks, the worker failed): the caller then makes a
 * client of its own, as without the option. `wasm`: the client's .wasm, as this tab loads it.
 */
export async function connectShared(options: Options, hooks: Hooks, wasm: URL, encryption: boolean): Promise<ClientApi | undefined> {
  if (typeof SharedWorker !== 'function' || !navigator.locks) return undefined;
  const { WebSocket: _, ...sent } = options;
  try {
    // Not written inline: bundlers would build the worker as one of the app's own, and Vite's
    // default worker format cannot hold the worker's lazily loaded parts.
    const script = new URL('shared-worker.js', import.meta.url);
    const worker = new SharedWorker(script, {
      type: 'module',
      // One worker per server, app and build: tabs with other options get their own.
      name: `overtone ${options.key} ${options.host}:${options.wsPort}:${options.wssPort}${options.path ?? ''}${encryption ? ' encryption' : ''}`,
    });
    // Held for this tab's life: the worker hears the tab is gone, even killed, when it is released.
    const lock = `overtone-tab-${Date.now()}-${Math.random()}`;
    await new Promise<void>((held) => void navigator.locks.request(lock, () => (held(), new Promise(() => {}))));
    const port = worker.port;
    const started = await new Promise<boolean>((resolve) => {
      worker.onerror = () => resolve(false);
      port.onmessage = ({ data }) => resolve(data[0] === 'started');
      // Where the .wasm files are, as this tab's bundle resolved them: a bundler may copy the
      // worker's script elsewhere, away from them.
      const featuresWasm = new URL('overtone_features_bg.wasm', import.meta.url).href;
      port.postMessage(['hello', { ...sent, featuresWasm }, encryption, lock, !document.hidden, wasm.href]);
      setTimeout(() => resolve(false), 10000);
    });
    if (!started) {
      port.close();
      return undefined;
    }
    return new SharedClient(port, hooks);
  } catch {
    return undefined;
  }
}

class SharedClient implements ClientApi {
  private readonly bound_ = new Map<number, Bound>();
  private nextBound_ = 0;
  private socketId_?: string;
  private userId_?: string;
  private members_ = new Map<string, Map<string, unknown>>();
  private own_: Record<string, string> = {};
  /** `what channel` -> the watched state as the worker last sent it. */
  private readonly watched_ = new Map<string, any>();

  constructor(private readonly port_: MessagePort, private readonly hooks_: Hooks) {
    port_.onmessage = ({ data }) => this.heard_(data);
    document.addEventListener('visibilitychange', () => this.visibility(!document.hidden));
  }

  private post_(...message: unknown[]): void {
    this.port_.postMessage(message);
  }

  private heard_([kind, a, b, c, d]: any[]): void {
    switch (kind) {
      case 'state':
        return this.hooks_.stateChanged(a);
      case 'mirror':
        [this.socketId_, this.userId_, this.members_, this.own_] = [a, b, c, d];
        return;
      case 'error':
        return this.hooks_.error(a, b);
      case 'authorize':
        return this.hooks_.authorize(a, b);
      case 'authorizeUser':
        return this.hooks_.authorizeUser(a);
      case 'call':
        return call(this.bound_.get(a)?.[0], b);
      case 'watched': {
        // a: the watcher, b: what, c: channel, d: the state.
        this.watched_.set(`${b} ${c}`, d);
        return call(this.bound_.get(a)?.[0], [b === 'status' ? d[0] : d]);
      }
    }
  }

  connect(): void {
    this.post_('connect');
  }

  disconnect(): void {
    this.post_('disconnect');
  }

  socketId(): string | undefined {
    return this.socketId_;
  }

  userId(): string | undefined {
    return this.userId_;
  }

  subscribe(channel: string): void {
    this.post_('subscribe', channel);
  }

  leaveChannel(channel: string): void {
    this.post_('leave', channel);
    for (const [id, [, on]] of this.bound_) if (on === channel) this.bound_.delete(id);
  }

  bind(channel: string, kind: string, event: string | undefined, callback: Callback): number {
    const id = this.nextBound_++;
    this.bound_.set(id, [callback, channel, kind, event]);
    this.post_('bind', id, channel, kind, event);
    return id;
  }

  bindUser(event: string, callback: Callback): number {
    // The worker binds it as a user event.
    return this.bind('#server-to-user-', 'event', event, callback);
  }

  unbind(listener: number): void {
    this.bound_.delete(listener);
    this.post_('unbind', listener);
  }

  unbindMatching(channel: string, kind: string, event?: string, callback?: Callback): void {
    for (const [id, [bound, on, boundKind, boundEvent]] of this.bound_) {
      if (on === channel && boundKind === kind && boundEvent === event && (!callback || bound === callback)) this.unbind(id);
    }
  }

  /** Posted to the worker, which drops (with a warning) what cannot go: true here. */
  whisper(channel: string, event: string, data: unknown): boolean {
    this.post_('whisper', channel, event, data);
    return true;
  }

  members(channel: string): ReadonlyMap<string, unknown> {
    return this.members_.get(channel) ?? new Map();
  }

  authorized(channel: string, socketId: string, auth: string, channelData?: string, sharedSecret?: string): void {
    this.post_('authorized', channel, socketId, auth, channelData, sharedSecret);
  }

  authorizationFailed(channel: string, socketId: string, status: number | undefined, error: string): void {
    this.post_('authorizationFailed', channel, socketId, status, error);
  }

  signin(): void {
    this.post_('signin');
  }

  userAuthorized(socketId: string, auth: string, userData: string): void {
    this.post_('userAuthorized', socketId, auth, userData);
  }

  visibility(visible: boolean): void {
    this.post_('visible', visible);
  }

  typing(channel: string): void {
    this.post_('typing', channel);
  }

  stopTyping(channel: string): void {
    this.post_('stopTyping', channel);
  }

  typingUsers(channel: string): { id: string; info?: unknown }[] {
    return this.state_('typing', channel) ?? [];
  }

  statuses(channel: string): Record<string, string> {
    return this.state_('status', channel)?.[0] ?? {};
  }

  status(channel: string, user?: string): string | undefined {
    const [all, own] = this.state_('status', channel) ?? [{}];
    return user ? all[user] : own;
  }

  badgeCounts(): Record<string, number> {
    return this.state_('badges', '') ?? {};
  }

  markRead(kind: string, value: string): void {
    this.post_('markRead', kind, value);
  }

  markChannelRead(channel: string, upTo: string): void {
    this.post_('markChannelRead', channel, upTo);
  }

  /** Asked of the worker on the first look, then kept fresh: empty until it answers. */
  readers(channel: string, upTo: string): string[] {
    return this.state_('readers', `${channel}\n${upTo}`) ?? [];
  }

  readState(channel: string): ReadState {
    return this.state_('reads', channel) ?? { readers: {}, unread: 0 };
  }

  setStatus(status: string, message: string): void {
    this.post_('setStatus', status, message);
  }

  memberStatuses(channel: string): PresenceDetails | undefined {
    return this.state_('status', channel)?.[2];
  }

  watch(what: string, channel: string, callback: Callback): number {
    const id = this.nextBound_++;
    this.bound_.set(id, [callback, channel, what, undefined]);
    this.post_('watch', id, what, channel);
    return id;
  }

  unwatch(watcher: number): void {
    this.bound_.delete(watcher);
    this.post_('unwatch', watcher);
  }

  ownId(channel: string): string {
    return this.own_[channel] ?? this.userId_ ?? '';
  }

  /** The watched state of `what` on `channel`; the first look has the worker follow it for this tab. */
  private state_(what: string, channel: string): any {
    const key = `${what} ${channel}`;
    if (!this.watched_.has(key)) {
      this.watched_.set(key, undefined);
      this.post_('watch', -1, what, channel);
    }
    return this.watched_.get(key);
  }
}

/** Calls an app callback; what it throws is logged. */
function call(callback: Callback | undefined, args: unknown[]): void {
  try {
    callback?.(...args);
  } catch (error) {
    console.error(error);
  }
}
