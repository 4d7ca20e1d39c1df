// A raw-protocol client that speaks Overtone's wire extensions (README, "Wire extensions"):
// signs in and subscribes with signatures from the `pusher` server SDK, keeps every frame it
// got, and waits for the one a test expects.
import { rawConnect } from './raw-ws.mjs';

/** A frame's data, parsed if it is a string (the protocol's double encoding). */
export const dataOf = (frame) => (typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data);

/**
 * Connects to `server` as `user` ({id, info}); `sdk` signs. `frames` is every frame received,
 * in order.
 */
export async function rawUser(server, sdk, user) {
  const frames = [];
  let waiters = [];
  const raw = await rawConnect(server, (message) => {
    frames.push(message);
    waiters = waiters.filter((w) => !w(message));
  });
  const client = {
    user,
    frames,
    raw,
    send: (event, data) => raw.send({ event, data }),
    /** Resolves with the first frame (received already or later) matching `pred`. */
    waitFor(pred, ms = 5000, what = 'frame') {
      const seen = frames.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${user?.id}: timed out waiting for ${what}`)), ms);
        waiters.push((m) => {
          if (!pred(m)) return false;
          clearTimeout(timer);
          resolve(m);
          return true;
        });
      });
    },
    /** Resolves with the next frame from now on matching `pred`. */
    next(pred, ms = 5000, what = 'frame') {
      const from = frames.length;
      return client.waitFor((m) => frames.indexOf(m) >= from && pred(m), ms, what);
    },
    /** The next `pusher:error`'s message. */
    async error(ms = 5000) {
      return dataOf(await client.next((m) => m.event === 'pusher:error', ms, 'pusher:error')).message;
    },
    async signin() {
      const { auth, user_data: userData } = sdk.authenticateUser(client.socketId, { id: user.id, user_info: user.info });
      client.send('pusher:signin', { auth, user_data: userData });
      await client.waitFor((m) => m.event === 'pusher:signin_success', 5000, 'signin');
    },
    /** Subscribes (signed on private and presence channels); resolves on its confirmation. */
    async subscribe(channel) {
      const data = { channel };
      if (channel.startsWith('presence-')) {
        const channelData = { user_id: user.id, user_info: user.info };
        Object.assign(data, sdk.authorizeChannel(client.socketId, channel, channelData));
      } else if (channel.startsWith('private-')) {
        Object.assign(data, sdk.authorizeChannel(client.socketId, channel));
      }
      client.send('pusher:subscribe', data);
      await client.waitFor(
        (m) => m.channel === channel && m.event === 'pusher_internal:subscription_succeeded',
        5000,
        `subscription to ${channel}`,
      );
    },
    /** Frames of `event` on `channel` received so far. */
    got: (event, channel) => frames.filter((m) => m.event === event && (!channel || m.channel === channel)),
    close: () => raw.close(),
  };
  const established = await client.waitFor((m) => m.event === 'pusher:connection_established', 5000, 'connection');
  client.established = dataOf(established);
  client.socketId = client.established.socket_id;
  return client;
}
