//! The sans-IO client core: the Pusher protocol 7 client as plain state machines, fed with
//! events and the current time, returning actions. No I/O, no clock, no randomness source, no
//! JSON parser: the web-sys shell owns the socket, timers, `fetch` and `JSON.parse`, and hands
//! the core typed [`ServerMessage`]s whose payloads stay opaque (`P`: a `JsValue` in the
//! browser, anything `Clone` in tests).
//!
//! Driving it: create a [`Client`], call its input methods (`connect`, `handle_message`,
//! `socket_closed`, `handle_timeout`, ...), then drain [`Client::poll_action`] and arm one
//! timer for [`Client::poll_timeout`]. Times are milliseconds on any monotonic clock.
//!
//! The shell's side of the contract:
//! - After every input: perform each action in order, then (re)arm a single timer for
//!   `poll_timeout()` (an absolute time; `None`: no timer) that calls `handle_timeout(now)`.
//! - `OpenSocket`: replace the socket; report its frames with `handle_message`, its `close`
//!   with `socket_closed(code)`, its `error` with `socket_error`. `CloseSocket`: detach the
//!   handlers first, then close: the core never wants to hear from that socket again.
//! - Frames: `JSON.parse` the text, decode `data` when it is a JSON string, map the event name
//!   to a [`ServerMessage`] (drop frames missing required fields). Outgoing: `Send(frame)` ->
//!   `socket.send(frame.to_json(|p| JSON.stringify(p)))`.
//! - `Authorize` / `AuthorizeUser`: POST the auth endpoint, answer with `authorized`,
//!   `authorization_failed` or `user_authorized`, echoing the `socket_id` of the request.
//! - Window events: `online`/`offline` -> `set_online`; `visibilitychange` to visible and
//!   `pageshow` -> `page_shown`.

use crate::prelude::*;

mod backoff;
mod channels;
mod client;
mod connection;
mod frame;
mod listeners;
mod message;
mod names;

pub use channels::Member;
pub use client::{ChannelAuth, Client, Error, RECOVERY_FAILED_EVENT};
pub use connection::State;
pub(crate) use frame::push_json_string;
pub use frame::ClientFrame;
pub use listeners::{Binding, ListenerId};
pub use message::ServerMessage;
pub use names::{whisper_listen_name, EventFormatter, NOTIFICATION_EVENT};
pub use overtone_protocol::channel::NameError;

/// An unsigned decimal of 1 to 19 digits (no sign, no spaces); `None` otherwise.
// Inlined: the client has one caller, and a call costs its wasm more than the loop.
#[inline(always)]
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    // At most 19 digits always fit: no overflow checks (128-bit multiplies in wasm).
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    Some(n)
}

/// Appends `n` in decimal. Used instead of `to_string()`/`format!`, whose `core::fmt`
/// machinery would cost the browser client kilobytes of wasm.
pub fn push_decimal(out: &mut String, n: u64) {
    // The leading digits first, by recursion: 20 digits at most, and no buffer to index.
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// `a` followed by `b`: one non-generic helper instead of a `[a, b].concat()` per call site.
pub(crate) fn joined(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len());
    out.push_str(a);
    out.push_str(b);
    out
}

/// Where to connect and how patient to be. Durations are milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The app key (`/app/{key}`).
    pub key: String,
    /// Host name only, no scheme or port.
    pub host: String,
    pub ws_port: u16,
    pub wss_port: u16,
    /// Use `wss://`; a 4000 close switches it on anyway.
    pub force_tls: bool,
    /// Prefix before `/app/{key}`, e.g. `/ws`; empty by default.
    pub path: String,
    /// Echo's `namespace` option; `None` for `namespace: false`.
    pub namespace: Option<String>,
    /// Ping after this much silence (the server's `activity_timeout` lowers it).
    pub activity_timeout: u64,
    /// After a keepalive ping, reconnect if nothing arrives within this.
    pub pong_timeout: u64,
    /// After the page is shown again or goes offline: the (short) wait for a pong.
    pub liveness_timeout: u64,
    /// Give up on an attempt not established within this.
    pub connect_timeout: u64,
    /// First backoff ceiling, doubled per consecutive failure up to `backoff_cap`.
    pub backoff_base: u64,
    pub backoff_cap: u64,
    /// A connection that stayed up this long resets the backoff when it drops.
    pub stable_after: u64,
    /// Consecutive failed attempts before the state says `unavailable`.
    pub unavailable_after: u32,
}

impl Config {
    /// pusher-js defaults (activity 120 s, pong 30 s), TLS on ports 80/443.
    pub fn new(key: impl Into<String>, host: impl Into<String>) -> Config {
        Config {
            key: key.into(),
            host: host.into(),
            ws_port: 80,
            wss_port: 443,
            force_tls: true,
            path: String::new(),
            namespace: Some("App.Events".into()),
            activity_timeout: 120_000,
            pong_timeout: 30_000,
            liveness_timeout: 5_000,
            connect_timeout: 10_000,
            backoff_base: 1_000,
            backoff_cap: 30_000,
            stable_after: 10_000,
            unavailable_after: 3,
        }
    }
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<P> {
    /// Open a WebSocket to `url`, replacing any previous one.
    OpenSocket {
        url: String,
    },
    /// Close the current socket and detach its handlers: report nothing more from it.
    CloseSocket,
    /// Send this frame as text (render it with [`ClientFrame::to_json`]).
    Send(ClientFrame<P>),
    StateChanged {
        previous: State,
        current: State,
    },
    /// POST the auth endpoint for `channel`, then call [`Client::authorized`] or
    /// [`Client::authorization_failed`] with the same `socket_id`.
    Authorize {
        channel: String,
        socket_id: String,
    },
    /// POST the user-auth endpoint, then call [`Client::user_authorized`].
    AuthorizeUser {
        socket_id: String,
    },
    /// Call each listener, in order, with `payload`.
    Dispatch {
        listeners: Vec<ListenerId>,
        payload: Payload<P>,
    },
    /// `pusher:signin_success`: events for this user now arrive on user listeners.
    SignedIn {
        user_id: String,
    },
    /// A `pusher:error` or a bad server frame, for logging or the app's error hook.
    ServerError {
        code: Option<u16>,
        message: String,
    },
}

/// What a dispatched listener receives, by the kind of its [`Binding`].
#[derive(Debug, Clone, PartialEq)]
pub enum Payload<P> {
    /// `Binding::Event`: the data, plus the sender's user id on presence client events
    /// (pusher-js passes it as `{user_id}` metadata).
    Event { data: P, user_id: Option<String> },
    /// `Binding::AllEvents`: the event name as `listenToAll` reports it, and the data.
    NamedEvent { event: String, data: P },
    /// `Binding::Subscribed`, and listeners of [`RECOVERY_FAILED_EVENT`]: no arguments.
    Subscribed,
    /// `Binding::Here`: every member (Echo passes the infos).
    Members(Vec<Member<P>>),
    /// `Binding::Joining` / `Binding::Leaving`: one member (Echo passes the info).
    Member(Member<P>),
    /// `Binding::Error`: pusher-js's `{type: "AuthError", error, status}`.
    SubscriptionError { status: Option<u16>, error: String },
}

#[cfg(test)]
mod tests;
