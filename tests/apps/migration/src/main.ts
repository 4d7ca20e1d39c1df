// An Echo app as Laravel frontends write it in TypeScript, against laravel-echo 2.5's and
// pusher-js 8's types, reaching below Echo into `echo.connector.pusher` the ways apps do: a
// connection indicator, re-sending after a reconnect, a new token in the auth headers, raw
// channel binds, client events, presence members, user sign-in. The tests build it as written
// (laravel-echo + pusher-js: the control) and with `laravel-echo` resolved to `overtone`, and
// compile it with tsc --strict both ways. Each snippet logs what it saw to #log.
import Echo from 'laravel-echo';
import type { Broadcaster, BroadcastDriver, Channel, ConnectionStatus, EchoOptions, PresenceChannel } from 'laravel-echo';
import Pusher from 'pusher-js';
import type { Members, PresenceChannel as PusherPresenceChannel } from 'pusher-js';

type Member = { id: string; info: { id: string; name: string } };

declare global {
  interface Window {
    Echo: Echo<'reverb'>;
    Pusher: typeof Pusher;
    app: Record<string, (...args: any[]) => unknown>;
  }
}

window.Pusher = Pusher;

// Where the test's server and auth endpoints are, and who this page signs in as.
const params = new URLSearchParams(location.search);
const user = params.get('user') ?? 'guest';

const log = (kind: string, data: unknown) => {
  const item = document.createElement('li');
  item.textContent = `${kind}: ${JSON.stringify(data)}`;
  document.getElementById('log')!.append(item);
};

const options: EchoOptions<'reverb'> = {
  broadcaster: 'reverb',
  key: params.get('key')!,
  wsHost: params.get('host')!,
  wsPort: Number(params.get('port')),
  wssPort: Number(params.get('port')),
  forceTLS: false,
  enabledTransports: ['ws', 'wss'],
  authEndpoint: params.get('auth')!,
  auth: { headers: { Authorization: 'Bearer guest' } },
  userAuthentication: { endpoint: params.get('userAuth')!, transport: 'ajax', headers: {} },
};

let echo: Echo<'reverb'> | null = null;

function getEcho(): Echo<'reverb'> {
  if (!echo) {
    echo = new Echo(options);
    window.Echo = echo;
  }
  return echo;
}

const pusher = getEcho().connector.pusher;

// A connection indicator.
const connection = pusher.connection;
log('initial-state', connection.state);
connection.bind('state_change', (states: { previous: string; current: string }) =>
  log('state_change', `${states.previous}>${states.current}`),
);
for (const state of ['connecting', 'connected', 'unavailable', 'failed', 'disconnected']) {
  connection.bind(state, () => log('state', state));
}
connection.bind('error', (error: unknown) => log('connection-error', error));

// Re-sending what the page holds after each (re)connection.
let connects = 0;
connection.bind('connected', (data: { socket_id: string }) => {
  connects += 1;
  log('resend', { connects, sameSocketId: data.socket_id === getEcho().socketId() });
});

// The app's own Echo listeners, typed with laravel-echo's exported types.
const orders: Channel = getEcho().channel('orders');
orders.listen('OrderShipped', (order: { id: number }) => log('echo-order', order));
const chat: Broadcaster['reverb']['private'] = getEcho().private('chat');
chat.listenForWhisper('typing', (whisper: { text: string }) => log('echo-whisper', whisper));
const room: PresenceChannel = getEcho().join('room');
room.here((members: Member['info'][]) => log('here', members.map((m) => m.name).sort()));

// Raw pusher-js binds on the channels Echo subscribed.
pusher.channel('orders').bind('App\\Events\\OrderShipped', (order: unknown) => log('raw-order', order));
pusher.channel('orders').bind_global((event: string, data: unknown) => {
  if (!event.startsWith('pusher')) log('global', { event, data });
});
pusher.channel('private-chat').bind('client-typing', (data: unknown) => log('raw-whisper', data));

// Presence members, through pusher-js's own presence type.
const presence = pusher.channel('presence-room') as unknown as PusherPresenceChannel;
presence.bind('pusher:subscription_succeeded', (members: Members) =>
  log('members', { count: members.count, me: members.me.id }),
);
presence.bind('pusher:member_added', (member: Member) => log('member_added', member));
presence.bind('pusher:member_removed', (member: Member) => log('member_removed', member));

// Events sent to the signed-in user.
pusher.user.bind('notice', (data: unknown) => log('user-notice', data));

// A test setup's Echo, connecting nowhere.
const inert = new Echo({ broadcaster: 'null' });
inert.private('anything').listen('.ignored', () => {});
log('null', { socketId: inert.socketId(), status: inert.connectionStatus() });

const driver: BroadcastDriver = 'reverb';

// What the test does as the user.
window.app = {
  connection: () => ({
    driver,
    state: connection.state,
    sameSocketId: connection.socket_id === getEcho().socketId(),
    status: getEcho().connectionStatus() satisfies ConnectionStatus,
  }),
  disconnect: () => pusher.disconnect(),
  connect: () => pusher.connect(),
  /** A login: the new token goes in the headers, then a channel needing it is joined. */
  login: (token: string) => {
    getEcho().connector.options.auth.headers.Authorization = `Bearer ${token}`;
    getEcho().private(`orders.${user}`).listen('OrderShipped', (order: unknown) => log('private-order', order));
  },
  refresh: (token: string) => {
    getEcho().options.auth!.headers.Authorization = `Bearer ${token}`;
    getEcho().private(`invoices.${user}`);
  },
  /** The app's own options object, which laravel-echo and pusher-js keep a reference to. */
  rotate: (token: string) => {
    options.auth!.headers.Authorization = `Bearer ${token}`;
    getEcho().private(`receipts.${user}`);
  },
  channels: () => ({
    pusher: pusher.allChannels().map((c) => `${c.name}:${c.subscribed}`).sort(),
    connector: Object.keys(getEcho().connector.channels).sort(),
  }),
  trigger: (text: string) => pusher.channel('private-chat').trigger('client-typing', { text, user }),
  members: () => {
    const list: string[] = [];
    presence.members.each((member: Member) => list.push(`${member.id}:${member.info.name}`));
    return {
      count: presence.members.count,
      me: presence.members.me?.id,
      myID: presence.members.myID,
      bob: presence.members.get('bob')?.info ?? null,
      list: list.sort(),
    };
  },
  signin: () => pusher.user.signin(),
  /** A channel of the app's own, through pusher-js alone. */
  subscribeRaw: (name: string) => {
    const channel = pusher.subscribe(name);
    channel.bind('headline', (data: unknown) => log('raw-headline', data));
    return (channel as unknown as { members?: unknown }).members === undefined;
  },
  leave: (name: string) => {
    pusher.unsubscribe(name);
    return pusher.channel(name) === undefined;
  },
};
