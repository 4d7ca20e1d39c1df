// The wasm client as the layer uses it: one method per operation, each a call of the wasm's one
// export, `call(op, ...args)` (one export instead of ~30 keeps the wasm and its glue small).
// `OPS[op]` names operation `op`: keep it in the order of `Client::call` in
// client-wasm/src/web/mod.rs, whose methods of the same names document each one.
import type { Client as Wasm } from '../wasm/overtone.js';

const OPS = [
  'connect', 'disconnect', 'state', 'socketId', 'userId', 'subscribe', 'leaveChannel', 'leaveAll',
  'bind', 'bindUser', 'unbind', 'unbindMatching', 'whisper', 'members', 'authorized',
  'authorizationFailed', 'signin', 'userAuthorized', 'typing', 'stopTyping', 'typingUsers',
  'statuses', 'status', 'badgeCounts', 'markRead', 'watch', 'unwatch', 'frame', 'closed',
  'socketError', 'timer', 'online', 'visibility', 'pageShown', 'badgesRemote',
] as const;

type Callback = (...args: any[]) => void;

export interface Client {
  connect(): void;
  disconnect(): void;
  state(): string;
  socketId(): string | undefined;
  userId(): string | undefined;
  /** Throws on an invalid channel name. */
  subscribe(channel: string): void;
  leaveChannel(channel: string): void;
  leaveAll(): void;
  /** `kind`: `event` (with `event`), `all`, `subscribed`, `error`, `here`, `joining`, `leaving`. */
  bind(channel: string, kind: string, event: string | undefined, callback: Callback): number;
  bindUser(event: string, callback: Callback): number;
  unbind(id: number): void;
  unbindMatching(channel: string, kind: string, event?: string, callback?: Callback): void;
  whisper(channel: string, event: string, data: unknown): void;
  members(channel: string): unknown[];
  authorized(channel: string, socketId: string, auth: string, channelData?: string, sharedSecret?: string): void;
  authorizationFailed(channel: string, socketId: string, status: number | undefined, error: string): void;
  signin(): void;
  userAuthorized(socketId: string, auth: string, userData: string): void;
  typing(channel: string): void;
  stopTyping(channel: string): void;
  typingUsers(channel: string): { id: string; info?: unknown }[];
  statuses(channel: string): Record<string, string>;
  status(channel: string, user?: string): string | undefined;
  badgeCounts(): Record<string, number>;
  markRead(kind: string, value: string): void;
  watch(what: string, channel: string, callback: Callback): number;
  unwatch(id: number): void;
  // What the page reports (src/io.ts).
  frame(event: unknown, channel: unknown, data: unknown, frame: unknown): void;
  closed(code: number): void;
  socketError(): void;
  timer(): void;
  online(online: boolean): void;
  visibility(visible: boolean): void;
  pageShown(): void;
  badgesRemote(text: string): void;
}

/** The layer's view of a wasm `Client`. */
export function wrap(wasm: Wasm): Client {
  const client: Record<string, unknown> = {};
  OPS.forEach((name, op) => {
    client[name] = (...args: unknown[]) => (wasm.call as (...a: unknown[]) => unknown)(op, ...args);
  });
  return client as unknown as Client;
}
