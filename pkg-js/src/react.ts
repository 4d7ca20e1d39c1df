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
  type Feed,
  type Listeners,
  changeBinder,
  memberStatusFeed,
  presenceStatusFeed,
  readsFeed,
  typingFeed,
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
  PrivateChannel,
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
 * Holds the channel and re-reads the feed's state whenever it changes. `feed.read` must return
 * the same value while nothing changed (React compares snapshots by identity).
 */
function useChannelState<V extends 'private' | 'presence', T, A>(
  channelName: string,
  visibility: V,
  feed: Feed<ChannelOf<V>, T, A>,
): [T, A] {
  const [state, setState] = useState(feed.initial);
  const { channel } = useListeners(channelName, visibility, '', () =>
    changeBinder<ChannelOf<V>>((held) => {
      setState(feed.read(held));
      return feed.subscribe(held, () => setState(feed.read(held)));
    }),
  );
  return [state, useMemo(() => feed.actions(channel), [feed, channel])];
}

/** Who is typing on a private or presence channel, and `typing()` to say this user is. */
export function useTyping(channelName: string, visibility: 'private' | 'presence' = 'presence') {
  const [typingUsers, actions] = useChannelState(channelName, visibility, typingFeed);
  return { typingUsers, ...actions };
}

/** Each member's online/away status on a presence channel, by user id. */
export const usePresenceStatus = (channelName: string): Record<string, MemberStatus> =>
  useChannelState(channelName, 'presence', presenceStatusFeed)[0];

const onBadgeChange = (callback: () => void) => echo().badges.onChange(callback);

/**
 * A private or presence channel's read receipts (`reads`: the other users' markers, this
 * user's, the unread count), `markRead(upTo)` and `readers(upTo)` ("Seen by ...").
 */
export function useReads(channelName: string, visibility: 'private' | 'presence' = 'private') {
  const [reads, actions] = useChannelState(channelName, visibility, readsFeed);
  return { reads, ...actions };
}

/**
 * What each member of a presence channel shows (status, message, device, away since), who
 * left and when, and this user (`statuses`), and `setStatus(status, message?)` for every
 * presence channel at once.
 */
export function useMemberStatus(channelName: string) {
  const [statuses, actions] = useChannelState(channelName, 'presence', memberStatusFeed);
  return { statuses, ...actions };
}

/** The unread count of `category`, the total over all categories, and `markRead()` for `category`. */
export function useBadge(category: string) {
  const count = useSyncExternalStore(onBadgeChange, () => echo().badges.count(category), () => 0);
  const total = useSyncExternalStore(onBadgeChange, () => echo().badges.total(), () => 0);
  return { count, total, markRead: () => echo().badges.markRead(category) };
}
