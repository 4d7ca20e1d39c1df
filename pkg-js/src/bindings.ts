// What the React and Vue bindings share: the one configured Echo, channels counted across
// components, and listeners bound once that call whatever callback is current — so a new
// callback or new dependencies never unbind, resubscribe or drop an event.
import Echo, { type EchoOptions } from './index';
import type {
  Channel,
  EchoApi,
  ListenerControls,
  MemberStatus,
  PresenceChannel,
  PresenceDetails,
  PrivateChannel,
  ReadState,
  TypingUser,
  Visibility,
} from './types';

type Config = Partial<EchoOptions> & Record<string, unknown>;

let config: Config | undefined;
let instance: (Echo & EchoApi) | undefined;

/** Vite's env, absent in plain Node (SSR imports must not fail). */
function viteEnv(): Record<string, string | undefined> {
  return (import.meta as ImportMeta & { env?: Record<string, string | undefined> }).env ?? {};
}

/** Laravel's defaults for each broadcaster, from the app's VITE_* variables, as @laravel/echo-react reads them. */
function defaults(broadcaster: unknown): Config {
  const pusher = broadcaster === 'pusher';
  const env = viteEnv();
  const read = (name: string) => env[`VITE_${pusher ? 'PUSHER' : 'REVERB'}_${name}`];
  const port = read('PORT') === undefined ? undefined : Number(read('PORT'));
  return {
    broadcaster: pusher ? 'pusher' : 'reverb',
    key: read('APP_KEY'),
    cluster: pusher ? read('APP_CLUSTER') : undefined,
    wsHost: read('HOST'),
    wsPort: port,
    wssPort: port,
    forceTLS: pusher || (read('SCHEME') ?? 'https') === 'https',
    enabledTransports: ['ws', 'wss'],
  };
}

/** Sets the options of the app's Echo; the instance is created on first use. */
export function configureEcho(options: Config): void {
  const fromEnv = defaults(options.broadcaster);
  // An unset VITE_* variable must not hide the class's own default.
  for (const name of Object.keys(fromEnv)) if (fromEnv[name] === undefined) delete fromEnv[name];
  config = { ...fromEnv, ...options };
  instance = undefined;
}

/** The app's Echo instance. */
export function echo(): Echo & EchoApi {
  if (!config) throw new Error('Echo has not been configured. Please call `configureEcho()`.');
  return (instance ??= new Echo(config as EchoOptions) as Echo & EchoApi);
}

export const echoIsConfigured = (): boolean => config !== undefined;

export const toArray = <T>(item: T | T[]): T[] => (Array.isArray(item) ? item : [item]);

/** The channels the components hold, by Echo's name for them, with how many hold each. */
const held = new Map<string, { count: number; channel: Channel }>();

/** How a component's listeners attach to a channel and come off it again. */
export type Binder = { bind(channel: Channel): void; unbind(channel: Channel): void };

/** Binds `relay` to each event. */
export const eventBinder = (events: string[], relay: (payload: unknown) => void): Binder => ({
  bind: (channel) => events.forEach((event) => channel.listen(event, relay)),
  unbind: (channel) => events.forEach((event) => channel.stopListening(event, relay)),
});

/** Binds `relay` to the channel's notifications of the given types (all when none is given). */
export function notificationBinder(types: string[], relay: (payload: unknown) => void): Binder {
  // A type may be written with dots or with backslashes: accept both spellings.
  const accepted = types.flatMap((type) => [type, type.replace(/\./g, '\\'), type.replace(/\\/g, '.')]);
  const filtered = (notification: { type: string }) => {
    if (accepted.length === 0 || accepted.includes(notification.type)) relay(notification);
  };
  return {
    bind: (channel) => channel.notification(filtered),
    unbind: (channel) => channel.stopListeningForNotification(filtered),
  };
}

/** Binds to a change feed (typing, statuses) that hands back its unsubscribe function. */
export function changeBinder<C>(subscribe: (channel: C) => () => void): Binder {
  let unsubscribe: (() => void) | undefined;
  return {
    bind: (channel) => (unsubscribe = subscribe(channel as unknown as C)),
    unbind: () => unsubscribe?.(),
  };
}

export const noBinder: Binder = { bind() {}, unbind() {} };

/**
 * A channel's state that a hook shows: how to follow its changes, read it, what it is before
 * the channel is held, and the actions that go with it (given the held channel, if any yet).
 * React and Vue hold it their own way (`useChannelState`); what it is lives here once.
 */
export type Feed<C, T, A> = {
  subscribe(channel: C, onChange: () => void): () => void;
  read(channel: C): T;
  initial: T;
  actions(channel: () => C | null): A;
};

export const typingFeed: Feed<PrivateChannel, TypingUser[], { typing(): void }> = {
  subscribe: (held, onChange) => held.onTypingChange(onChange),
  read: (held) => held.typingUsers(),
  initial: [],
  actions: (channel) => ({ typing: () => channel()?.typing() }),
};

export const presenceStatusFeed: Feed<PresenceChannel, Record<string, MemberStatus>, object> = {
  subscribe: (held, onChange) => held.onStatusChange(onChange),
  read: (held) => held.statuses(),
  initial: {},
  actions: () => ({}),
};

export const readsFeed: Feed<
  PrivateChannel,
  ReadState,
  { markRead(upTo: string | number): void; readers(upTo: string | number): string[] }
> = {
  subscribe: (held, onChange) => held.onReadChange(onChange),
  read: (held) => held.reads(),
  initial: { readers: {}, unread: 0 },
  actions: (channel) => ({
    markRead: (upTo) => channel()?.markRead(upTo),
    readers: (upTo) => channel()?.readers(upTo) ?? [],
  }),
};

export const memberStatusFeed: Feed<
  PresenceChannel,
  PresenceDetails | undefined,
  { setStatus(status: string, message?: string): void }
> = {
  subscribe: (held, onChange) => held.onStatusChange(onChange),
  read: (held) => held.memberStatuses(),
  initial: undefined,
  actions: () => ({ setStatus: (status, message) => echo().setStatus(status, message) }),
};

/** Model events are broadcast under their own names: bind them as written. */
export const modelEvents = (events: string[]): string[] =>
  events.map((event) => (event.startsWith('.') ? event : `.${event}`));

/** One component's hold on a channel and its listeners on it. */
export type Listeners = {
  /** Subscribes to the channel, or counts one more holder of it, and binds the listeners. */
  open(): void;
  /** Unbinds, counts one holder less, and leaves the channel when none is left. */
  close(leaveAll?: boolean): void;
  listen(): void;
  stopListening(): void;
  channel(): Channel | null;
};

export function listenersOn(name: string, visibility: Visibility, binder: Binder): Listeners {
  // Echo's name for the channel (`private-…`, `presence-…`).
  const id = visibility === 'public' ? name : `${visibility}-${name}`;
  let entry: { count: number; channel: Channel } | undefined;
  let listening = false;
  const listeners: Listeners = {
    open() {
      entry = held.get(id);
      if (!entry) {
        const api: EchoApi = echo();
        const channel =
          visibility === 'presence' ? api.join(name) : visibility === 'private' ? api.private(name) : api.channel(name);
        held.set(id, (entry = { count: 0, channel }));
      }
      entry.count += 1;
      listeners.listen();
    },
    close(leaveAll = false) {
      const released = entry;
      if (!released) return;
      listeners.stopListening();
      entry = undefined;
      released.count -= 1;
      if (released.count > 0) return;
      // Leave after the current task: React StrictMode and route changes release a channel and
      // take it back within one commit, which must not cost an unsubscribe and a resubscribe.
      queueMicrotask(() => {
        if (held.get(id) !== released || released.count > 0) return;
        held.delete(id);
        if (leaveAll) echo().leave(name);
        else echo().leaveChannel(id);
      });
    },
    listen() {
      if (listening || !entry) return;
      binder.bind(entry.channel);
      listening = true;
    },
    stopListening() {
      if (!listening || !entry) return;
      binder.unbind(entry.channel);
      listening = false;
    },
    channel: () => entry?.channel ?? null,
  };
  return listeners;
}

/** What a hook returns to control its listeners (`current()`: the component's, if any yet). */
export const listenerControls = <C>(current: () => Listeners | null): ListenerControls<C> => ({
  leaveChannel: (leaveAll = false) => current()?.close(leaveAll),
  leave: () => current()?.close(true),
  stopListening: () => current()?.stopListening(),
  listen: () => current()?.listen(),
  channel: () => (current()?.channel() ?? null) as C | null,
});
