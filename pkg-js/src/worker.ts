// `shareConnection`, the worker's side: one SharedWorker per origin and server owns the socket
// and the client for every tab (shared.ts is a tab's side). A channel is subscribed once, for
// the first tab that wants it, and left when the last one leaves it or is gone (a tab holds a
// Web Lock for its life: the worker's request for it is granted when the tab closes or dies).
// Authorization is asked of a tab that wants the channel, so the app's endpoint, headers and
// handlers stay the page's. The user is away only while every tab is hidden.
import { Client, load, type Options } from './client.js';

type Message = any[];

interface Tab {
  port: MessagePort;
  /** The tab's listener and watcher ids -> the client's, and the channel bound to. */
  listeners: Map<number, [number, string]>;
  watchers: Map<number, number>;
  channels: Set<string>;
  visible: boolean;
  /** Whether the tab wants the connection (it has not called `disconnect()`). */
  connected: boolean;
}

const tabs = new Set<Tab>();
/** Channel -> the tabs that want it. */
const wanted = new Map<string, Set<Tab>>();
/** Channels confirmed since the connection last came up: a tab binding later hears it at once. */
const subscribed = new Set<string>();
let client: Client | undefined;
let starting: Promise<void> | undefined;
let state = 'initialized';
let mirrored: Message = ['mirror'];
let mirroredText = '';

declare const self: { onconnect: (event: MessageEvent) => void };

self.onconnect = ({ ports: [port] }) => {
  const tab: Tab = { port, listeners: new Map(), watchers: new Map(), channels: new Set(), visible: true, connected: false };
  const waiting: Message[] = [];
  port.onmessage = ({ data }: MessageEvent<Message>) => {
    if (data[0] === 'hello') return void hello(tab, data, waiting);
    if (client && !waiting.length) heard(tab, data);
    else waiting.push(data);
  };
};

async function hello(tab: Tab, [, options, encryption, lock, visible, wasm]: Message, waiting: Message[]): Promise<void> {
  try {
    await (starting ??= start(options, encryption, new URL(wasm)));
  } catch (error) {
    console.error('overtone: the shared connection could not start', error);
    return tab.port.postMessage(['failed']);
  }
  tabs.add(tab);
  tab.visible = visible;
  navigator.locks.request(lock, () => goodbye(tab));
  tab.port.postMessage(['started']);
  // The socket id and members first: a tab told `connected` can read them at once.
  tab.port.postMessage(mirrored);
  tab.port.postMessage(['state', state]);
  for (const message of waiting.splice(0)) heard(tab, message);
  visibility();
}

/** Starts the one client: `wasm` is where the first tab loads the client's .wasm from. */
async function start(options: Options, encryption: boolean, wasm: URL): Promise<void> {
  await load(wasm, encryption ? () => import('./overtone_encryption_wasm2js.js') : () => import('./overtone_wasm2js.js'));
  client = new Client(options, {
    authorize: (channel, socketId) => ask(wanted.get(channel), ['authorize', channel, socketId]),
    authorizeUser: (socketId) => ask(tabs, ['authorizeUser', socketId]),
    stateChanged: (now) => {
      state = now;
      if (now !== 'connected') subscribed.clear();
      mirror();
      everyTab(['state', now]);
    },
    error: (code, message) => everyTab(['error', code, message]),
    framed: mirror,
  });
}

/** What a tab asked of the client. */
function heard(tab: Tab, [kind, a, b, c, d, e]: Message): void {
  const c_ = client!;
  try {
    switch (kind) {
      case 'connect':
        tab.connected = true;
        return c_.connect();
      case 'disconnect':
        tab.connected = false;
        return [...tabs].some((t) => t.connected) ? undefined : c_.disconnect();
      case 'subscribe':
        return subscribe(tab, a);
      case 'leave':
        return leave(tab, a);
      case 'bind':
        return bind(tab, a, b, c, d);
      case 'unbind': {
        const listener = tab.listeners.get(a);
        tab.listeners.delete(a);
        return listener && c_.unbind(listener[0]);
      }
      case 'whisper':
        return void c_.whisper(a, b, c);
      case 'authorized':
        return c_.authorized(a, b, c, d, e);
      case 'authorizationFailed':
        return c_.authorizationFailed(a, b, c, d);
      case 'signin':
        return c_.signin();
      case 'userAuthorized':
        return c_.userAuthorized(a, b, c);
      case 'visible':
        tab.visible = a;
        return visibility();
      case 'typing':
        return c_.typing(a);
      case 'stopTyping':
        return c_.stopTyping(a);
      case 'markRead':
        return c_.markRead(a, b);
      case 'markChannelRead':
        return c_.markChannelRead(a, b);
      case 'setStatus':
        return c_.setStatus(a, b);
      case 'watch':
        return watch(tab, a, b, c);
      case 'unwatch': {
        const watcher = tab.watchers.get(a);
        tab.watchers.delete(a);
        return watcher === undefined ? undefined : c_.unwatch(watcher);
      }
    }
  } catch (error) {
    console.error(error);
  }
}

function subscribe(tab: Tab, channel: string): void {
  let wanting = wanted.get(channel);
  if (!wanting) {
    wanted.set(channel, (wanting = new Set()));
    client!.subscribe(channel);
    client!.bind(channel, 'subscribed', undefined, () => subscribed.add(channel));
  }
  wanting.add(tab);
  tab.channels.add(channel);
}

/** `tab` no longer wants `channel`: its listeners there go, and the channel with the last tab. */
function leave(tab: Tab, channel: string): void {
  for (const [id, [listener, on]] of tab.listeners) {
    if (on !== channel) continue;
    client!.unbind(listener);
    tab.listeners.delete(id);
  }
  tab.channels.delete(channel);
  const wanting = wanted.get(channel);
  wanting?.delete(tab);
  if (wanting?.size === 0) {
    wanted.delete(channel);
    subscribed.delete(channel);
    client!.leaveChannel(channel);
    mirror();
  }
}

function bind(tab: Tab, id: number, channel: string, kind: string, event?: string): void {
  const heard = (...args: unknown[]) => {
    // The tab's members first: laravel-echo's `joining`/`leaving` listeners see them updated.
    mirror();
    tab.port.postMessage(['call', id, args]);
  };
  const user = channel === '#server-to-user-';
  const listener = user ? client!.bindUser(event!, heard) : client!.bind(channel, kind, event, heard);
  tab.listeners.set(id, [listener, channel]);
  // A channel another tab subscribed: this tab's Echo still waits to hear it is.
  if (subscribed.has(channel) && kind === 'subscribed') tab.port.postMessage(['call', id, []]);
  if (subscribed.has(channel) && kind === 'here') tab.port.postMessage(['call', id, [[...client!.members(channel).values()]]]);
}

/**
 * Sends `tab` the watched state now and on every change; watcher -1 only keeps its copy fresh.
 * `readers` watches who read `channel` (`{channel}\n{upTo}`) up to a marker.
 */
function watch(tab: Tab, id: number, what: string, channel: string): void {
  const [name, upTo] = channel.split('\n');
  const send = () => {
    const c = client!;
    const now =
      what === 'typing' ? c.typingUsers(name)
      : what === 'status' ? [c.statuses(name), c.status(name), c.memberStatuses(name)]
      : what === 'reads' ? c.readState(name)
      : what === 'readers' ? c.readers(name, upTo)
      : c.badgeCounts();
    tab.port.postMessage(['watched', id, what, channel, now]);
  };
  tab.watchers.set(id, client!.watch(what === 'readers' ? 'reads' : what, name, send));
  send();
}

/** The tab closed or died: what only it wanted goes. */
function goodbye(tab: Tab): void {
  if (!tabs.delete(tab)) return;
  for (const channel of [...tab.channels]) leave(tab, channel);
  for (const [listener] of tab.listeners.values()) client!.unbind(listener);
  for (const watcher of tab.watchers.values()) client!.unwatch(watcher);
  tab.port.close();
  if (![...tabs].some((t) => t.connected)) client!.disconnect();
  visibility();
}

/** Away only while every tab is hidden. */
function visibility(): void {
  client!.visibility([...tabs].some((tab) => tab.visible));
}

/** Sends every tab what it reads at once (socket id, user id, members, own ids) when it changed. */
function mirror(): void {
  const c = client!;
  const presence = [...wanted.keys()].filter((channel) => channel.startsWith('presence-'));
  const members = new Map(presence.map((channel) => [channel, new Map(c.members(channel))]));
  const own = Object.fromEntries(presence.map((channel) => [channel, c.ownId(channel)]));
  const message = ['mirror', c.socketId(), c.userId(), members, own];
  const text = JSON.stringify([message[1], message[2], presence.map((channel) => [...members.get(channel)!]), own]);
  if (text === mirroredText) return;
  [mirrored, mirroredText] = [message, text];
  everyTab(message);
}

function everyTab(message: Message): void {
  for (const tab of tabs) tab.port.postMessage(message);
}

/** Asks one of `asked` (a tab that wants the channel) to authorize. */
function ask(asked: Set<Tab> | undefined, message: Message): void {
  const [tab] = asked ?? [];
  tab?.port.postMessage(message);
}
