// React bindings with @laravel/echo-react 2.5's names and signatures. Unlike theirs, a hook binds
// its listeners once per channel and event list and always calls the latest callback, so
// changing the callback or its dependencies never resubscribes or loses an event.
import {
  type DependencyList,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from 'react';
import {
  type Binder,
  type Listeners,
  changeBinder,
  listenerControls,
  listenersOn,
  echo,
  eventBinder,
  modelEvents,
  noBinder,
  notificationBinder,
  toArray,
} from './bindings';
import type {
  BroadcastNotification,
  ChannelControls,
  ChannelOf,
  ConnectionStatus,
  EventName,
  InferEventPayload,
  ListenerControls,
  MemberStatus,
  ModelEvents,
  ModelPayload,
  PresenceChannel,
  PresenceDetails,
  PrivateChannel,
  ReadState,
  TypingUser,
  Visibility,
} from './types';

export { configureEcho, echo, echoIsConfigured } from './bindings';
export type * from './types';

/** A ref that always holds the value of the last render. */
function useLatest<T>(value: T) {
  const ref = useRef(value);
  useLayoutEffect(() => {
    ref.current = value;
  });
  return ref;
}

/**
 * Holds the channel while mounted and keeps `binder`'s listeners on it; they are rebound only
 * when the channel or `bindingKey` (what `makeBinder` binds) changes.
 */
function useListeners<V extends Visibility>(
  channelName: string,
  visibility: V,
  bindingKey: string,
  makeBinder: () => Binder,
): ListenerControls<ChannelOf<V>> {
  const current = useRef<Listeners | null>(null);
  useEffect(() => {
    const listeners = listenersOn(channelName, visibility, makeBinder());
    current.current = listeners;
    listeners.open();
    return () => listeners.close();
    // makeBinder reads the callback through a ref; bindingKey stands for everything else it binds.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [channelName, visibility, bindingKey]);
  return useMemo(() => listenerControls<ChannelOf<V>>(() => current.current), []);
}

export function useEcho<TEvent extends EventName = EventName, TVisibility extends Visibility = 'private'>(
  channelName: string,
  event: TEvent | TEvent[],
  callback: (payload: InferEventPayload<TEvent>) => void,
  dependencies?: DependencyList,
  visibility?: TVisibility,
): ListenerControls<ChannelOf<TVisibility>>;
export function useEcho<TPayload, TVisibility extends Visibility = 'private'>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: DependencyList,
  visibility?: TVisibility,
): ListenerControls<ChannelOf<TVisibility>>;
/**
 * Listens for `event` on the channel while mounted. `dependencies` is accepted for
 * @laravel/echo-react's signature; the latest `callback` is always the one called.
 */
export function useEcho(
  channelName: string,
  event: string | string[] = [],
  callback: (payload: unknown) => void = () => {},
  dependencies?: DependencyList,
  visibility: Visibility = 'private',
) {
  const latest = useLatest(callback);
  const events = toArray(event);
  return useListeners(channelName, visibility, JSON.stringify(events), () =>
    eventBinder(events, (payload) => latest.current(payload)),
  );
}

export const useEchoPublic = <TPayload>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: DependencyList,
) => useEcho<TPayload, 'public'>(channelName, event, callback, dependencies, 'public');

export const useEchoPresence = <TPayload>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: DependencyList,
) => useEcho<TPayload, 'presence'>(channelName, event, callback, dependencies, 'presence');

/** Listens for the notifications of the given types (all when none) on a private channel. */
export const useEchoNotification = <TPayload>(
  channelName: string,
  callback: (payload: BroadcastNotification<TPayload>) => void = () => {},
  event: string | string[] = [],
  dependencies?: DependencyList,
): ListenerControls<PrivateChannel> => {
  const latest = useLatest(callback);
  const types = toArray(event);
  return useListeners(channelName, 'private', JSON.stringify(types), () =>
    notificationBinder(types, (payload) => latest.current(payload as BroadcastNotification<TPayload>)),
  );
};

/** Listens for Eloquent model events on the model's private channel (`App.Models.User.1`). */
export const useEchoModel = <TPayload, TModel extends string>(
  model: TModel,
  identifier: string | number,
  event: ModelEvents<TModel> | ModelEvents<TModel>[] = [],
  callback?: (payload: ModelPayload<TPayload>) => void,
  dependencies?: DependencyList,
) =>
  useEcho<ModelPayload<TPayload>, 'private'>(
    `${model}.${identifier}`,
    modelEvents(toArray<string>(event)),
    callback,
    dependencies,
    'private',
  );

/** Holds the channel while mounted, without listening to anything. */
export function useChannel<TVisibility extends Visibility = 'private'>(
  channelName: string,
  visibility: TVisibility = 'private' as TVisibility,
): ChannelControls<ChannelOf<TVisibility>> {
  const { leaveChannel, leave, channel } = useListeners(channelName, visibility, '', () => noBinder);
  return useMemo(() => ({ leaveChannel, leave, channel }), [leaveChannel, leave, channel]);
}

export const usePresenceChannel = (channelName: string) => useChannel(channelName, 'presence');

export const usePublicChannel = (channelName: string) => useChannel(channelName, 'public');

const onConnectionChange = (callback: () => void) => echo().connector.onConnectionChange(callback);

export const useConnectionStatus = (): ConnectionStatus =>
  useSyncExternalStore(onConnectionChange, () => echo().connectionStatus(), () => 'connecting');

export const useSocketId = (): string | undefined =>
  useSyncExternalStore(onConnectionChange, () => echo().socketId(), () => undefined);

/**
 * Holds the channel and re-reads `read(channel)` whenever its change feed fires. `read` must
 * return the same value while nothing changed (React compares snapshots by identity).
 */
function useChannelState<V extends 'private' | 'presence', T>(
  channelName: string,
  visibility: V,
  subscribe: (channel: ChannelOf<V>, onChange: () => void) => () => void,
  read: (channel: ChannelOf<V>) => T,
  initial: T,
): { state: T; channel: () => ChannelOf<V> | null } {
  const [state, setState] = useState(initial);
  const { channel } = useListeners(channelName, visibility, '', () =>
    changeBinder<ChannelOf<V>>((held) => {
      setState(read(held));
      return subscribe(held, () => setState(read(held)));
    }),
  );
  return { state, channel };
}

/** Who is typing on a private or presence channel, and `typing()` to say this user is. */
export function useTyping(channelName: string, visibility: 'private' | 'presence' = 'presence') {
  const { state, channel } = useChannelState<typeof visibility, TypingUser[]>(
    channelName,
    visibility,
    (held, onChange) => held.onTypingChange(onChange),
    (held) => held.typingUsers(),
    [],
  );
  return { typingUsers: state, typing: () => channel()?.typing() };
}

/** Each member's online/away status on a presence channel, by user id. */
export const usePresenceStatus = (channelName: string): Record<string, MemberStatus> =>
  useChannelState<'presence', Record<string, MemberStatus>>(
    channelName,
    'presence',
    (held: PresenceChannel, onChange) => held.onStatusChange(onChange),
    (held) => held.statuses(),
    {},
  ).state;

const onBadgeChange = (callback: () => void) => echo().badges.onChange(callback);

/**
 * A private or presence channel's read receipts (`reads`: the other users' markers, this
 * user's, the unread count), `markRead(upTo)` and `readers(upTo)` ("Seen by ...").
 */
export function useReads(channelName: string, visibility: 'private' | 'presence' = 'private') {
  const { state, channel } = useChannelState<typeof visibility, ReadState>(
    channelName,
    visibility,
    (held, onChange) => held.onReadChange(onChange),
    (held) => held.reads(),
    { readers: {}, unread: 0 },
  );
  return {
    reads: state,
    markRead: (upTo: string | number) => channel()?.markRead(upTo),
    readers: (upTo: string | number) => channel()?.readers(upTo) ?? [],
  };
}

/**
 * What each member of a presence channel shows (status, message, device, away since), who
 * left and when, and this user (`statuses`), and `setStatus(status, message?)` for every
 * presence channel at once.
 */
export function useMemberStatus(channelName: string) {
  const { state } = useChannelState<'presence', PresenceDetails | undefined>(
    channelName,
    'presence',
    (held: PresenceChannel, onChange) => held.onStatusChange(onChange),
    (held) => held.memberStatuses(),
    undefined,
  );
  return { statuses: state, setStatus: (status: string, message?: string) => echo().setStatus(status, message) };
}

/** The unread count of `category`, the total over all categories, and `markRead()` for `category`. */
export function useBadge(category: string) {
  const count = useSyncExternalStore(onBadgeChange, () => echo().badges.count(category), () => 0);
  const total = useSyncExternalStore(onBadgeChange, () => echo().badges.total(), () => 0);
  return { count, total, markRead: () => echo().badges.markRead(category) };
}
