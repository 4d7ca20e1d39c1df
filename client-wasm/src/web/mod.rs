//! The browser shell: the client wasm's entry, [`call`], and what it sends back through `out`
//! (see [`shell::Out`]; the boundary itself is [`crate::abi`]). Only numbers and strings cross: the page's JavaScript (`pkg-js/src/io.ts`)
//! does the IO (socket, timer, window events, storage, tabs, `fetch`) and the JSON, keeps the
//! listeners' callbacks, event payloads and presence members' `user_info`, and tells the wasm
//! what it needs to decide: a frame's kind, channel, event name, user id and position. The
//! wasm answers with what to do: open, send, arm the timer, call listener 7, ... Payloads never
//! enter the wasm, which keeps it small and each event cheap.

use crate::prelude::*;

mod shell;

use crate::abi::{self, given, ModuleState, Record};
use crate::core::{Binding, Config, Error, ListenerId, ServerMessage};
use shell::Shell;

/// The page's clients (one per Echo), by the index `call`'s `client` names. A client lives as
/// long as the page: code to drop one would be wasm bytes for nothing.
static CLIENTS: ModuleState<Vec<Shell>> = ModuleState::new(Vec::new());

/// The operations of [`call`]; `OPS` in `pkg-js/src/client.ts` names them in the same order.
/// Arguments are `a`–`d` (strings, `""` for none) and `n` (a number, `-1` for none).
pub(crate) mod op {
    /// `(key, host, path, namespace ("" for none), n: wsPort + wssPort * 2^16 + (forceTLS ?
    /// 2^32 : 0))`. Returns the client's index.
    pub const NEW: u32 = 0;
    pub const CONNECT: u32 = 1;
    pub const DISCONNECT: u32 = 2;
    /// `(channel)`; throws on an invalid name.
    pub const SUBSCRIBE: u32 = 3;
    /// `(channel)`; its listeners are dropped (`out` `Drop`).
    pub const LEAVE: u32 = 4;
    /// `(channel, kind, event)` -> listener id. `kind`: `event` (with `event` as the app
    /// writes it: namespace rules apply), `all`, `subscribed`, `error`, `here`, `joining`,
    /// `leaving`.
    pub const BIND: u32 = 5;
    /// `(event)` -> listener id on the signed-in user's channel.
    pub const BIND_USER: u32 = 6;
    /// `(n: listener id)`.
    pub const UNBIND: u32 = 7;
    /// `(channel, kind, event)`: the ids bound so (`out` `Item` each), for `stopListening`.
    pub const LISTENERS: u32 = 8;
    /// `(channel, event, json)`: sends `client-{event}`; throws when not subscribed or not
    /// allowed.
    pub const WHISPER: u32 = 9;
    /// `(channelData, userId, sharedSecret)` of the auth reply `Authorized` then gives.
    pub const AUTH_EXTRA: u32 = 10;
    /// `(channel, socketId, auth)`.
    pub const AUTHORIZED: u32 = 11;
    /// `(channel, socketId, error, n: status)`.
    pub const AUTHORIZATION_FAILED: u32 = 12;
    pub const SIGNIN: u32 = 13;
    /// `(socketId, auth, userData)`.
    pub const USER_AUTHORIZED: u32 = 14;
    // ---- frames, read by the page ----
    /// `(socketId, n: activity_timeout)`.
    pub const ESTABLISHED: u32 = 15;
    pub const PING: u32 = 16;
    pub const PONG: u32 = 17;
    /// `(message, n: code)`.
    pub const SERVER_ERROR: u32 = 18;
    /// `(userId)`.
    pub const SIGNIN_SUCCESS: u32 = 19;
    /// `(userId)`: one member of the presence list the next `Subscribed` carries.
    pub const PRESENCE_MEMBER: u32 = 20;
    /// `(channel, position, d: "1" on presence channels, n: recovered: 1 | 0 | -1)`.
    pub const SUBSCRIBED: u32 = 21;
    /// `(channel, error, n: status)`.
    pub const SUBSCRIPTION_ERROR: u32 = 22;
    /// `(channel, userId)`.
    pub const MEMBER_ADDED: u32 = 23;
    pub const MEMBER_REMOVED: u32 = 24;
    /// `(channel, event, userId, position)`; the payload stays in the page.
    pub const EVENT: u32 = 25;
    /// `(channel, nonce, ciphertext)` of a `private-encrypted-` event: `Plain` with the text.
    pub const DECRYPT: u32 = 26;
    // ---- the page's events ----
    /// `(n: code)`.
    pub const CLOSED: u32 = 27;
    pub const SOCKET_ERROR: u32 = 28;
    pub const TIMER: u32 = 29;
    /// `(n: 1 | 0)`.
    pub const ONLINE: u32 = 30;
    /// `(n: 1 visible | 0)`.
    pub const VISIBILITY: u32 = 31;
    pub const PAGE_SHOWN: u32 = 32;
    /// `(n: ms)`: the page dispatched frames itself, the last at `n` (`performance.now()`):
    /// plain events it knew the core's routing for (`pkg-js/src/client.ts` `routes_`). Told
    /// before the next call, so that the activity timeout counts from them as from any frame.
    pub const SEEN: u32 = 33;
}

/// `Some(n)` for a number the page gave (`-1`: none), clamped to `u16`.
fn small(n: f64) -> Option<u16> {
    (n >= 0.0).then(|| n.min(u16::MAX.into()) as u16)
}

/// The listener kinds `bind` takes.
fn binding(kind: &str, event: String) -> Option<Binding> {
    Some(match kind {
        "event" => Binding::Event(event),
        "all" => Binding::AllEvents,
        "subscribed" => Binding::Subscribed,
        "error" => Binding::Error,
        "here" => Binding::Here,
        "joining" => Binding::Joining,
        "leaving" => Binding::Leaving,
        _ => return None,
    })
}

/// Runs operation `op` (one of [`op`], which documents the arguments; its strings' byte
/// lengths are `a`–`d`, see [`abi`]) on client `client`, then makes the `out` calls it caused.
/// Returns a number for the operations that answer one (`-1` otherwise).
#[export_name = "c"]
extern "C" fn call(client: u32, op: u32, a: usize, b: usize, c: usize, d: usize, n: f64) -> f64 {
    abi::serve(client, [a, b, c, d], |[a, b, c, d]| {
        run(client, op, a, b, c, d, n)
    })
}

fn run(client: u32, op: u32, a: &str, b: &str, c: &str, d: &str, n: f64) -> (f64, Vec<Record>) {
    let mut clients = CLIENTS.0.borrow_mut();
    if op == op::NEW {
        let mut config = Config::new(a, b);
        config.path = c.into();
        config.namespace = given(d);
        let ports = n as u64;
        config.ws_port = ports as u16;
        config.wss_port = (ports >> 16) as u16;
        config.force_tls = ports >> 32 & 1 == 1;
        let index = clients.len() as u32;
        clients.push(Shell::new(index, config));
        return (index.into(), Vec::new());
    }
    let Some(shell) = clients.get_mut(client as usize) else {
        return (-1.0, Vec::new());
    };
    let result = perform(shell, op, a, b, c, d, n);
    shell.flush();
    (result, shell.take_outs())
}

fn perform(s: &mut Shell, op: u32, a: &str, b: &str, c: &str, d: &str, n: f64) -> f64 {
    let now = abi::now() as u64;
    let thrown = |s: &mut Shell, result: Result<(), Error>| {
        if let Err(error) = result {
            s.throw(error.message());
        }
    };
    match op {
        op::CONNECT => s.core.connect(now),
        op::DISCONNECT => s.core.disconnect(),
        op::SUBSCRIBE => {
            let result = s.core.subscribe(a);
            thrown(s, result);
        }
        op::LEAVE => {
            let dropped = s.core.leave_channel(a);
            s.left(dropped);
        }
        op::BIND => {
            let event = s.core.formatter().format(c);
            let Some(binding) = binding(b, event) else {
                s.throw("unknown listener kind");
                return -1.0;
            };
            match s.core.bind(a, binding) {
                Ok(id) => return id.0.into(),
                Err(error) => s.throw(error.message()),
            }
        }
        op::BIND_USER => {
            let event = s.core.formatter().format(a);
            return s.core.bind_user(Binding::Event(event)).0.into();
        }
        op::UNBIND => {
            s.core.unbind(ListenerId(n as u32));
        }
        op::LISTENERS => {
            let event = s.core.formatter().format(c);
            if let Some(binding) = binding(b, event) {
                for id in s.core.listeners(a, &binding) {
                    s.item(id.0.into(), "", "");
                }
            }
        }
        op::WHISPER => {
            let result = s.core.whisper(a, b, c.into());
            thrown(s, result);
        }
        op::AUTH_EXTRA => s.auth_extra = (given(a), given(b), given(c)),
        op::AUTHORIZED => s.authorized(a, b, c.into()),
        op::AUTHORIZATION_FAILED => s.core.authorization_failed(a, b, small(n), c.into()),
        op::SIGNIN => s.core.signin(),
        op::USER_AUTHORIZED => s.core.user_authorized(a, b.into(), c.into()),
        op::ESTABLISHED => s.message(
            now,
            ServerMessage::ConnectionEstablished {
                socket_id: a.into(),
                activity_timeout: (n >= 0.0).then_some(n as u64),
            },
        ),
        op::PING => s.message(now, ServerMessage::Ping),
        op::PONG => s.message(now, ServerMessage::Pong),
        op::SERVER_ERROR => s.message(
            now,
            ServerMessage::Error {
                code: small(n),
                message: a.into(),
            },
        ),
        op::SIGNIN_SUCCESS => s.message(now, ServerMessage::SigninSuccess { user_id: a.into() }),
        op::PRESENCE_MEMBER => s.presence.push((a.into(), String::new())),
        op::SUBSCRIBED => {
            let presence = core::mem::take(&mut s.presence);
            let message = ServerMessage::SubscriptionSucceeded {
                channel: a.into(),
                presence: (d == "1").then_some(presence),
                position: given(b),
                recovered: (n >= 0.0).then_some(n > 0.0),
            };
            s.message(now, message);
        }
        op::SUBSCRIPTION_ERROR => s.message(
            now,
            ServerMessage::SubscriptionError {
                channel: a.into(),
                status: small(n),
                error: b.into(),
            },
        ),
        op::MEMBER_ADDED => {
            let message = ServerMessage::MemberAdded {
                channel: a.into(),
                user_id: b.into(),
                info: String::new(),
            };
            s.message(now, message);
        }
        op::MEMBER_REMOVED => {
            let message = ServerMessage::MemberRemoved {
                channel: a.into(),
                user_id: b.into(),
            };
            s.message(now, message);
        }
        op::EVENT => s.message(
            now,
            ServerMessage::Event {
                channel: a.into(),
                event: b.into(),
                data: String::new(),
                user_id: given(c),
                position: given(d),
            },
        ),
        op::DECRYPT => s.decrypt(a, b, c),
        op::CLOSED => s.core.socket_closed(now, n as u16),
        op::SOCKET_ERROR => s.core.socket_error(now),
        op::TIMER => s.timer_fired(now),
        op::ONLINE => s.core.set_online(now, n > 0.0),
        op::VISIBILITY => s.visibility_changed(now, n > 0.0),
        op::PAGE_SHOWN => s.core.page_shown(now),
        // A frame that asks nothing of the core: it only moves the activity timeout, which is
        // all the plain events it stands for did to the connection. Never later than now: an
        // event's timeStamp on another clock (epoch ms in old browsers) must not stop the pings.
        op::SEEN => s.message((n as u64).min(now), ServerMessage::Pong),
        _ => {}
    }
    -1.0
}
