// Types shared by the React and Vue bindings: the part of the Echo class they call (laravel-echo
// 2.5's public API plus Overtone's typing, statuses, read receipts and badges) and the event
// payload map apps extend; also the shapes of the read receipts and statuses the class returns.

export type ConnectionStatus = 'connected' | 'connecting' | 'reconnecting' | 'disconnected' | 'failed';

export type Visibility = 'public' | 'private' | 'presence';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Callback = (...args: any[]) => void;

/** A channel as laravel-echo 2.5 exposes it. */
export interface Channel {
  name: string;
  listen(event: string, callback: Callback): this;
  stopListening(event: string, callback?: Callback): this;
  listenToAll(callback: (event: string, data: unknown) => void): this;
  stopListeningToAll(callback?: Callback): this;
  listenForWhisper(event: string, callback: Callback): this;
  stopListeningForWhisper(event: string, callback?: Callback): this;
  notification(callback: Callback): this;
  stopListeningForNotification(callback: Callback): this;
  subscribed(callback: () => void): this;
  error(callback: (error: unknown) => void): this;
  /**
   * Overtone: `callback()` when a resubscription could not replay the events missed while
   * disconnected (the server's history no longer reached back): refetch the page's state.
   */
  recoveryFailed(callback: () => void): this;
  stopListeningForRecoveryFailed(callback?: () => void): this;
  /** Overtone: false after a resubscription that could not recover, until one that did. */
  readonly recovered: boolean;
}

/** A private channel: whispers, and Overtone's typing indicator. */
export interface PrivateChannel extends Channel {
  whisper(event: string, data: Record<string, unknown>): this;
  /** Tells the others this user is typing (throttled by Overtone). */
  typing(): void;
  /** Who is typing now. */
  typingUsers(): TypingUser[];
  /** Calls `callback` whenever `typingUsers()` changes; returns the unsubscribe function. */
  onTypingChange(callback: () => void): () => void;
  /** This user read up to `upTo` (a history position or the app's id); batched, only forward. */
  markRead(upTo: string | number): this;
  /** The other users who read up to `upTo` or further. */
  readers(upTo: string | number): string[];
  /** How far `userId` read; this user without one. */
  readUpTo(userId?: string | number): string | undefined;
  reads(): ReadState;
  unreadCount(): number;
  /** Calls `callback` whenever `reads()` changes; returns the unsubscribe function. */
  onReadChange(callback: () => void): () => void;
}

/** A channel's read receipts: the other users' markers by user id, this user's, the unread count. */
export interface ReadState {
  readers: Record<string, string>;
  own?: string;
  unread: number;
}

/** A presence channel: members, and Overtone's online/away statuses. */
export interface PresenceChannel extends PrivateChannel {
  here(callback: (members: unknown[]) => void): this;
  joining(callback: (member: unknown) => void): this;
  leaving(callback: (member: unknown) => void): this;
  /** Each member's status by user id. */
  statuses(): Record<string, MemberStatus>;
  /** Calls `callback` whenever `statuses()` or `memberStatuses()` changes; returns the unsubscribe function. */
  onStatusChange(callback: () => void): () => void;
  memberStatuses(): PresenceDetails;
  memberStatus(userId?: string | number): StatusDetails | undefined;
  lastSeenAt(userId: string | number): number | undefined;
}

/** What a member shows beyond online/away. */
export interface StatusDetails {
  /** `online`, `away`, or what they set (`busy`, ...). */
  status: string;
  message: string;
  /** `desktop` or `mobile` (`''`: not told). */
  device: string;
  /** Since when (ms since the epoch) the member is away. */
  awaySince: number | null;
}

/** A presence channel's statuses: present members, who left (last seen, ms since the epoch), this user. */
export interface PresenceDetails {
  members: Record<string, StatusDetails>;
  left: Record<string, number>;
  own: StatusDetails;
}

export type TypingUser = { id: string; info?: unknown };

export type MemberStatus = 'online' | 'away';

/** Overtone's unread badges: counts by category, shared by the user's tabs. */
export interface Badges {
  count(category: string): number;
  total(): number;
  markRead(category: string): void;
  /** Calls `callback` whenever a count changes; returns the unsubscribe function. */
  onChange(callback: () => void): () => void;
}

/** What the bindings call on the Echo instance. */
export interface EchoApi {
  channel(name: string): Channel;
  private(name: string): PrivateChannel;
  join(name: string): PresenceChannel;
  leave(name: string): void;
  leaveChannel(name: string): void;
  socketId(): string | undefined;
  connectionStatus(): ConnectionStatus;
  connector: { onConnectionChange(callback: (status: ConnectionStatus) => void): () => void };
  badges: Badges;
  /** This user's status on every presence channel (`busy`, `'In a meeting'`). */
  setStatus(status: string, message?: string): void;
}

export type ChannelOf<V extends Visibility> = V extends 'presence'
  ? PresenceChannel
  : V extends 'private'
    ? PrivateChannel
    : Channel;

declare global {
  /**
   * Event payloads by event name, for typed callbacks. Extend it in a .d.ts of the app, as
   * with @laravel/echo-react and @laravel/echo-vue (so their declarations keep working):
   *
   *     interface Events { OrderShipped: { id: number } }
   */
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface Events {}
}

export type EventName = keyof Events & string;

export type InferEventPayload<TEvent extends string> = TEvent extends keyof Events ? Events[TEvent] : unknown;

export type BroadcastNotification<TPayload> = TPayload & { id: string; type: string };

type ModelEvent =
  | 'Retrieved' | 'Creating' | 'Created' | 'Updating' | 'Updated' | 'Saving' | 'Saved' | 'Deleting'
  | 'Deleted' | 'Trashed' | 'ForceDeleting' | 'ForceDeleted' | 'Restoring' | 'Restored' | 'Replicating';

export type ModelName<T extends string> = T extends `${string}.${infer Rest}` ? ModelName<Rest> : T;

export type ModelEvents<T extends string> = `.${ModelName<T>}${ModelEvent}` | `${ModelName<T>}${ModelEvent}`;

export type ModelPayload<T> = {
  model: T;
  connection: string | null;
  queue: string | null;
  afterCommit: boolean;
};

/** What every useEcho-style hook returns, as in @laravel/echo-react. */
export type ChannelControls<TChannel> = {
  /** Leaves the channel (once no other component holds it); `leaveAll` also leaves its private and presence twins. */
  leaveChannel: (leaveAll?: boolean) => void;
  leave: () => void;
  channel: () => TChannel | null;
};

export type ListenerControls<TChannel> = ChannelControls<TChannel> & {
  stopListening: () => void;
  listen: () => void;
};
