// A bare WebSocket client (RFC 6455 over node:net) for raw-protocol tests: Node 20 has no global
// WebSocket, and pusher-js hides the frames. Text frames only, as the Pusher protocol uses.
import net from 'node:net';
import crypto from 'node:crypto';

/**
 * Connects to a started server's `ws://host:port/app/{key}` and resolves once the upgrade is done.
 * `onMessage(json, raw)` gets every text frame parsed (the first may come before the promise
 * resolves, hence `raw`); `closed` resolves with the close code (1006
 * when the TCP connection just ends).
 */
export function rawConnect({ host, port, app }, onMessage = () => {}) {
  const { key } = app;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    const wsKey = crypto.randomBytes(16).toString('base64');
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    let fragments = [];
    let closeCode = null;
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    const raw = {
      closed,
      /** Sends `message` (an object) as one masked text frame. */
      send(message) {
        if (socket.destroyed) return;
        socket.write(frame(0x1, Buffer.from(JSON.stringify(message))));
      },
      /** Sends a close frame and ends the connection. */
      close(code = 1000) {
        if (socket.destroyed) return;
        const body = Buffer.alloc(2);
        body.writeUInt16BE(code);
        socket.write(frame(0x8, body));
        socket.end();
      },
      /** Ends the TCP connection without a close frame (a cut cable). */
      destroy() {
        socket.destroy();
      },
      /** Stops reading from the socket (a slow reader: the server's frames pile up). */
      stopReading() {
        socket.pause();
      },
    };
    socket.on('connect', () => {
      socket.write(
        `GET /app/${key}?protocol=7&client=raw&version=1 HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${wsKey}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString();
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          return reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
        }
        upgraded = true;
        buffer = buffer.subarray(end + 4);
        resolve(raw);
      }
      for (;;) {
        const parsed = parseFrame(buffer);
        if (!parsed) break;
        buffer = buffer.subarray(parsed.length);
        const { opcode, fin, payload } = parsed;
        if (opcode === 0x8) {
          closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          if (!socket.destroyed) {
            socket.write(frame(0x8, payload.subarray(0, 2)));
            socket.end();
          }
        } else if (opcode === 0x9) {
          socket.write(frame(0xA, payload));
        } else if (opcode === 0x1 || opcode === 0x0) {
          fragments.push(payload);
          if (fin) {
            const text = Buffer.concat(fragments).toString();
            fragments = [];
            onMessage(JSON.parse(text), raw);
          }
        }
      }
    });
    socket.on('error', (err) => {
      if (!upgraded) reject(err);
    });
    socket.on('close', () => resolveClosed(closeCode ?? 1006));
  });
}

function frame(opcode, payload) {
  const mask = crypto.randomBytes(4);
  const length = payload.length;
  const head = length < 126 ? Buffer.from([0x80 | opcode, 0x80 | length])
    : length < 65536 ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff])
      : (() => {
        const h = Buffer.alloc(10);
        h[0] = 0x80 | opcode;
        h[1] = 0x80 | 127;
        h.writeBigUInt64BE(BigInt(length), 2);
        return h;
      })();
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

function parseFrame(buffer) {
  if (buffer.length < 2) return null;
  const fin = (buffer[0] & 0x80) !== 0;
  const opcode = buffer[0] & 0x0f;
  let length = buffer[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return null;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return null;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  if (buffer[1] & 0x80) offset += 4; // servers do not mask, but be lenient
  if (buffer.length < offset + length) return null;
  return { fin, opcode, payload: buffer.subarray(offset, offset + length), length: offset + length };
}

/**
 * A client that speaks the history extension on one channel and resumes after every cut:
 * it reconnects (after `gate()` resolves, if given), signs in as `user` when given (so
 * terminate_connections can cut it; on presence channels it joins as that user), and
 * subscribes with the last position it saw, signed by `sdk` on private and presence channels.
 * `events` are the event frames it got, in order; `succeeded` every subscription_succeeded.
 */
export function resumingClient(server, channel, { user, sdk, gate } = {}) {
  const stopAll = resumingClient.all;
  const state = {
    events: [],
    succeeded: [],
    position: null,
    connections: 0,
    /** Connections that ended. */
    closes: 0,
    stopped: false,
    current: null,
    /** Resolves with each connection's socket id once it is subscribed. */
    onSubscribed: () => {},
    stop() {
      state.stopped = true;
      state.current?.close();
    },
  };
  const connect = async () => {
    let raw;
    try {
      raw = await rawConnect(server, (message, socket) => {
        if (message.event === 'pusher:connection_established') {
          const { socket_id: socketId } = JSON.parse(message.data);
          if (user) {
            const signed = sdk.authenticateUser(socketId, { id: user });
            socket.send({ event: 'pusher:signin', data: signed });
          }
          const data = { channel };
          if (channel.startsWith('private-') || channel.startsWith('presence-')) {
            const member = channel.startsWith('presence-') ? { user_id: user, user_info: {} } : undefined;
            Object.assign(data, sdk.authorizeChannel(socketId, channel, member));
          }
          if (state.position) data.position = state.position;
          socket.send({ event: 'pusher:subscribe', data });
        } else if (message.event === 'pusher_internal:subscription_succeeded' && message.channel === channel) {
          state.succeeded.push(message);
          if (message.position && state.position === null) state.position = message.position;
          if (message.recovered === false || !state.position) state.position = message.position;
          state.onSubscribed(message);
        } else if (message.channel === channel && !/^(pusher|overtone:)/.test(message.event)) {
          // Application events only: not the protocol's, nor Overtone's extensions (README).
          state.events.push(message);
          if (message.position) state.position = message.position;
        }
      });
    } catch {
      // Not up (yet): try again shortly.
      await new Promise((r) => setTimeout(r, 50));
      if (!state.stopped) connect();
      return;
    }
    state.current = raw;
    state.connections += 1;
    await raw.closed;
    state.closes += 1;
    if (state.stopped) return;
    if (gate) await gate();
    connect();
  };
  connect();
  stopAll.push(state);
  return state;
}
/** Every resuming client made, for a test file's after() to stop. */
resumingClient.all = [];

/** The offset of a position `EPOCH:OFFSET`. */
export const offsetOf = (position) => Number(position.split(':')[1]);
