// Vue composables with @laravel/echo-vue 2.5's names and signatures. Unlike theirs, a composable
// binds its listeners once for the component's life: a change of its dependencies never
// resubscribes or loses an event. Nothing subscribes during SSR (setup runs on the server too).
import { onUnmounted, readonly, ref, shallowRef, type Ref } from 'vue';
import {
  type Binder,
  type Feed,
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

/** Any value; @laravel/echo-vue's dependency list type. */
export type Dependency = unknown;

const inBrowser = typeof window !== 'undefined';

/** Holds the channel and keeps `binder`'s listeners on it until the component unmounts. */
function useListeners<V extends Visibility>(
  channelName: string,
  visibility: V,
  binder: Binder,
): ListenerControls<ChannelOf<V>> {
  const listeners = listenersOn(channelName, visibility, binder);
  if (inBrowser) listeners.open();
  onUnmounted(() => listeners.close());
  return listenerControls<ChannelOf<V>>(() => listeners);
}

export function useEcho<TEvent extends EventName = EventName, TVisibility extends Visibility = 'private'>(
  channelName: string,
  event: TEvent | TEvent[],
  callback: (payload: InferEventPayload<TEvent>) => void,
  dependencies?: Dependency[],
  visibility?: TVisibility,
): ListenerControls<ChannelOf<TVisibility>>;
export function useEcho<TPayload, TVisibility extends Visibility = 'private'>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: Dependency[],
  visibility?: TVisibility,
): ListenerControls<ChannelOf<TVisibility>>;
/**
 * Listens for `event` on the channel until the component unmounts. `dependencies` is accepted
 * for @laravel/echo-vue's signature: the callback reads reactive state when called, so it never
 * needs rebinding.
 */
export function useEcho(
  channelName: string,
  event: string | string[] = [],
  callback: (payload: unknown) => void = () => {},
  dependencies?: Dependency[],
  visibility: Visibility = 'private',
) {
  return useListeners(channelName, visibility, eventBinder(toArray(event), callback));
}

export const useEchoPublic = <TPayload>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: Dependency[],
) => useEcho<TPayload, 'public'>(channelName, event, callback, dependencies, 'public');

export const useEchoPresence = <TPayload>(
  channelName: string,
  event?: string | string[],
  callback?: (payload: TPayload) => void,
  dependencies?: Dependency[],
) => useEcho<TPayload, 'presence'>(channelName, event, callback, dependencies, 'presence');

/** Listens for the notifications of the given types (all when none) on a private channel. */
export const useEchoNotification = <TPayload>(
  channelName: string,
  callback: (payload: BroadcastNotification<TPayload>) => void = () => {},
  event: string | string[] = [],
  dependencies?: Dependency[],
): ListenerControls<PrivateChannel> =>
  useListeners(
    channelName,
    'private',
    notificationBinder(toArray(event), (payload) => callback(payload as BroadcastNotification<TPayload>)),
  );

/** Listens for Eloquent model events on the model's private channel (`App.Models.User.1`). */
export const useEchoModel = <TPayload, TModel extends string>(
  model: TModel,
  identifier: string | number,
  event: ModelEvents<TModel> | ModelEvents<TModel>[] = [],
  callback?: (payload: ModelPayload<TPayload>) => void,
  dependencies?: Dependency[],
) =>
  useEcho<ModelPayload<TPayload>, 'private'>(
    `${model}.${identifier}`,
    modelEvents(toArray<string>(event)),
    callback,
    dependencies,
    'private',
  );

/** Holds the channel until the component unmounts, without listening to anything. */
export function useChannel<TVisibility extends Visibility = 'private'>(
  channelName: string,
  visibility: TVisibility = 'private' as TVisibility,
): ChannelControls<ChannelOf<TVisibility>> {
  const { leaveChannel, leave, channel } = useListeners(channelName, visibility, noBinder);
  return { leaveChannel, leave, channel };
}

export const usePresenceChannel = (channelName: string) => useChannel(channelName, 'presence');

export const usePublicChannel = (channelName: string) => useChannel(channelName, 'public');

/** A read-only ref of `read()`, refreshed on every connection change until unmount. */
function useConnectionValue<T>(read: () => T, serverValue: T): Readonly<Ref<T>> {
  const value = shallowRef(inBrowser ? read() : serverValue);
  if (inBrowser) {
    onUnmounted(echo().connector.onConnectionChange(() => (value.value = read())));
  }
  return readonly(value) as Readonly<Ref<T>>;
}

export const useConnectionStatus = (): Readonly<Ref<ConnectionStatus>> =>
  useConnectionValue(() => echo().connectionStatus(), 'connecting');

export const useSocketId = (): Readonly<Ref<string | undefined>> =>
  useConnectionValue(() => echo().socketId(), undefined);

/** Holds the channel and a read-only ref of the feed's state, refreshed whenever it changes. */
function useChannelState<V extends 'private' | 'presence', T, A>(
  channelName: string,
  visibility: V,
  feed: Feed<ChannelOf<V>, T, A>,
): [Readonly<Ref<T>>, A] {
  const state = shallowRef(feed.initial);
  const { channel } = useListeners(
    channelName,
    visibility,
    changeBinder<ChannelOf<V>>((held) => {
      state.value = feed.read(held);
      return feed.subscribe(held, () => (state.value = feed.read(held)));
    }),
  );
  return [readonly(state) as Readonly<Ref<T>>, feed.actions(channel)];
}

/** Who is typing on a private or presence channel, and `typing()` to say this user is. */
export function useTyping(channelName: string, visibility: 'private' | 'presence' = 'presence') {
  const [typingUsers, actions] = useChannelState(channelName, visibility, typingFeed);
  return { typingUsers, ...actions };
}

/** Each member's online/away status on a presence channel, by user id. */
export const usePresenceStatus = (channelName: string): Readonly<Ref<Record<string, MemberStatus>>> =>
  useChannelState(channelName, 'presence', presenceStatusFeed)[0];

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
  const count = ref(0);
  const total = ref(0);
  if (inBrowser) {
    const read = () => {
      count.value = echo().badges.count(category);
      total.value = echo().badges.total();
    };
    read();
    onUnmounted(echo().badges.onChange(read));
  }
  return { count: readonly(count), total: readonly(total), markRead: () => echo().badges.markRead(category) };
}
