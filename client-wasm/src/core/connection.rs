//! The connection state machine: opening the socket, retrying with backoff, keepalive pings,
//! liveness checks on visibility/online changes, and the state the app sees. It knows nothing
//! of channels; it tells the client when the link came up or went down.

use crate::prelude::*;

use overtone_protocol::codes::CloseAction;

use super::backoff::{Backoff, Rng};
use super::{Action, ClientFrame, Config};

/// The connection state the app sees (Echo's `connectionStatus()`, pusher-js state names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing asked yet.
    Initialized,
    /// The first attempt after `connect()`.
    Connecting,
    Connected,
    /// Lost or failed, retrying (pusher-js says `connecting` here; Echo even `failed`).
    Reconnecting,
    /// Offline, or several attempts in a row failed; still retrying unless offline.
    Unavailable,
    /// The server refused this client (close codes 4001-4099, >= 4300): no retries.
    Failed,
    /// The app called `disconnect()`.
    Disconnected,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialized => "initialized",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Unavailable => "unavailable",
            State::Failed => "failed",
            State::Disconnected => "disconnected",
        }
    }
}

/// What the client must do about channels after a connection event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// `pusher:connection_established` arrived: (re)subscribe everything.
    Up,
    /// An established link is gone: every subscription with it.
    Down,
}

#[derive(Debug, Clone)]
enum Link {
    Down,
    /// Socket asked for, `pusher:connection_established` not yet received.
    Opening,
    Up {
        socket_id: String,
        since: u64,
    },
}

/// What the single pending deadline is for; at most one applies in each link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Open the next attempt.
    Retry,
    /// Give up on an attempt that has not been established.
    ConnectTimeout,
    /// Silence for the activity timeout: send a ping.
    Activity,
    /// Ping sent: a frame must arrive by now.
    Pong,
}

#[derive(Debug)]
pub(crate) struct Connection {
    config: Config,
    state: State,
    link: Link,
    timer: Option<(u64, Timer)>,
    backoff: Backoff,
    rng: Rng,
    online: bool,
    /// Set by `config.force_tls` or by a 4000 close.
    tls: bool,
    /// `min(client, server)` activity timeout of the current link, ms.
    activity_timeout: u64,
}

impl Connection {
    pub(crate) fn new(config: Config, seed: u64) -> Connection {
        Connection {
            backoff: Backoff::new(config.backoff_base, config.backoff_cap),
            rng: Rng::new(seed),
            tls: config.force_tls,
            activity_timeout: config.activity_timeout,
            state: State::Initialized,
            link: Link::Down,
            timer: None,
            online: true,
            config,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn socket_id(&self) -> Option<&str> {
        match &self.link {
            Link::Up { socket_id, .. } => Some(socket_id),
            _ => None,
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        self.timer.map(|(at, _)| at)
    }

    /// `ws[s]://host:port[/path]/app/{key}?protocol=7&...`, as pusher-js builds it.
    pub(crate) fn url(&self) -> String {
        let c = &self.config;
        let (scheme, port) = if self.tls {
            ("wss://", c.wss_port)
        } else {
            ("ws://", c.ws_port)
        };
        let mut url = String::from(scheme);
        url.push_str(&c.host);
        url.push(':');
        super::push_decimal(&mut url, port.into());
        url.push_str(&c.path);
        url.push_str("/app/");
        url.push_str(&c.key);
        url.push_str("?protocol=");
        super::push_decimal(&mut url, overtone_protocol::PROTOCOL_VERSION.into());
        url.push_str("&client=js&version=8.6.0&flash=false");
        url
    }

    pub(crate) fn connect<P>(&mut self, now: u64, out: &mut Vec<Action<P>>) {
        if !matches!(
            self.state,
            State::Initialized | State::Disconnected | State::Failed
        ) {
            return;
        }
        self.backoff.reset();
        if self.online {
            self.set_state(State::Connecting, out);
            self.open(now, out);
        } else {
            self.set_state(State::Unavailable, out);
        }
    }

    pub(crate) fn disconnect<P>(&mut self, out: &mut Vec<Action<P>>) -> Option<Change> {
        let change = self.drop_link(out);
        self.timer = None;
        self.set_state(State::Disconnected, out);
        change
    }

    /// The socket closed with `code` (the shell reports nothing after a `CloseSocket`).
    pub(crate) fn closed<P>(
        &mut self,
        now: u64,
        code: u16,
        out: &mut Vec<Action<P>>,
    ) -> Option<Change> {
        self.lost(now, CloseAction::for_code(code), out)
    }

    /// The socket reported an error: close it and treat it as an abnormal close (1006).
    pub(crate) fn errored<P>(&mut self, now: u64, out: &mut Vec<Action<P>>) -> Option<Change> {
        if matches!(self.link, Link::Down) {
            return None;
        }
        out.push(Action::CloseSocket);
        self.closed(now, 1006, out)
    }

    /// Any frame proves the link alive. Returns `Up` when the connection got established.
    pub(crate) fn received<P>(
        &mut self,
        now: u64,
        message: &super::ServerMessage<P>,
        out: &mut Vec<Action<P>>,
    ) -> Option<Change> {
        use super::ServerMessage;
        let change = match (&self.link, message) {
            (Link::Down, _) => return None,
            (
                Link::Opening,
                ServerMessage::ConnectionEstablished {
                    socket_id,
                    activity_timeout,
                },
            ) => {
                self.link = Link::Up {
                    socket_id: socket_id.clone(),
                    since: now,
                };
                self.activity_timeout = match *activity_timeout {
                    // Saturating by comparison: `saturating_mul` costs a 128-bit multiply in wasm.
                    Some(secs) if secs > u64::MAX / 1_000 => self.config.activity_timeout,
                    Some(secs) if secs > 0 => self.config.activity_timeout.min(secs * 1_000),
                    _ => self.config.activity_timeout,
                };
                self.set_state(State::Connected, out);
                Some(Change::Up)
            }
            (Link::Opening, _) => return None,
            (Link::Up { .. }, ServerMessage::Ping) => {
                out.push(Action::Send(ClientFrame::Pong));
                None
            }
            (Link::Up { .. }, _) => None,
        };
        self.timer = Some((now.saturating_add(self.activity_timeout), Timer::Activity));
        change
    }

    pub(crate) fn handle_timeout<P>(
        &mut self,
        now: u64,
        out: &mut Vec<Action<P>>,
    ) -> Option<Change> {
        let (at, timer) = self.timer?;
        if now < at {
            return None;
        }
        self.timer = None;
        match timer {
            Timer::Retry => {
                self.open(now, out);
                None
            }
            Timer::ConnectTimeout => {
                out.push(Action::CloseSocket);
                self.lost(now, CloseAction::Backoff, out)
            }
            Timer::Activity => {
                self.ping(now.saturating_add(self.config.pong_timeout), out);
                None
            }
            Timer::Pong => {
                out.push(Action::CloseSocket);
                self.lost(now, CloseAction::Retry, out)
            }
        }
    }

    /// `online`/`offline` events. Offline: check an open link at once (the OS may know
    /// before TCP does) and stop retrying; online: retry at once.
    pub(crate) fn set_online<P>(&mut self, now: u64, online: bool, out: &mut Vec<Action<P>>) {
        self.online = online;
        match (&self.link, online) {
            (Link::Up { .. }, false) => {
                self.ping(now.saturating_add(self.config.liveness_timeout), out)
            }
            (Link::Down, false) if self.retrying() => {
                self.timer = None;
                self.set_state(State::Unavailable, out);
            }
            (Link::Down, true) if self.retrying() => self.retry_now(now, out),
            _ => {}
        }
    }

    /// The page became visible again, or was restored from the bfcache: timers may have been
    /// frozen and the socket silently dead, so check liveness now, or retry now.
    pub(crate) fn page_shown<P>(&mut self, now: u64, out: &mut Vec<Action<P>>) {
        match self.link {
            Link::Up { .. } => self.ping(now.saturating_add(self.config.liveness_timeout), out),
            Link::Down if self.retrying() && self.online => self.retry_now(now, out),
            _ => {}
        }
    }

    /// Whether the app wants a connection that we do not have (and were not refused).
    fn retrying(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::Reconnecting | State::Unavailable
        )
    }

    fn retry_now<P>(&mut self, now: u64, out: &mut Vec<Action<P>>) {
        self.backoff.reset();
        self.set_state(State::Reconnecting, out);
        self.open(now, out);
    }

    /// Sends a ping that must be answered (by any frame) before `deadline`.
    fn ping<P>(&mut self, deadline: u64, out: &mut Vec<Action<P>>) {
        out.push(Action::Send(ClientFrame::Ping));
        let deadline = match self.timer {
            Some((at, Timer::Pong)) => at.min(deadline),
            _ => deadline,
        };
        self.timer = Some((deadline, Timer::Pong));
    }

    fn open<P>(&mut self, now: u64, out: &mut Vec<Action<P>>) {
        out.push(Action::OpenSocket { url: self.url() });
        self.link = Link::Opening;
        self.timer = Some((
            now.saturating_add(self.config.connect_timeout),
            Timer::ConnectTimeout,
        ));
    }

    /// Closes the socket if there is one; `Down` if it was established.
    fn drop_link<P>(&mut self, out: &mut Vec<Action<P>>) -> Option<Change> {
        match core::mem::replace(&mut self.link, Link::Down) {
            Link::Down => None,
            Link::Opening => {
                out.push(Action::CloseSocket);
                None
            }
            Link::Up { .. } => {
                out.push(Action::CloseSocket);
                Some(Change::Down)
            }
        }
    }

    /// The link is gone (already closed): stop, or schedule the next attempt.
    fn lost<P>(
        &mut self,
        now: u64,
        action: CloseAction,
        out: &mut Vec<Action<P>>,
    ) -> Option<Change> {
        let change = match core::mem::replace(&mut self.link, Link::Down) {
            Link::Down => return None,
            Link::Opening => None,
            Link::Up { since, .. } => {
                if now.saturating_sub(since) >= self.config.stable_after {
                    self.backoff.reset();
                }
                Some(Change::Down)
            }
        };
        self.timer = None;
        match action {
            CloseAction::Refused => self.set_state(State::Failed, out),
            _ if !self.online => self.set_state(State::Unavailable, out),
            _ => {
                if action == CloseAction::UseTls {
                    self.tls = true;
                }
                self.schedule_retry(now, action, out);
            }
        }
        change
    }

    fn schedule_retry<P>(&mut self, now: u64, action: CloseAction, out: &mut Vec<Action<P>>) {
        let first = self.backoff.failures() == 0;
        let jittered = self.backoff.next_delay(&mut self.rng);
        let delay = match action {
            // 41xx: the server is overloaded, never come straight back.
            CloseAction::Backoff => jittered.max(self.config.backoff_base),
            // 42xx and plain drops: reconnect at once; back off only if that fails too.
            _ if first => 0,
            _ => jittered,
        };
        let state = if self.backoff.failures() >= self.config.unavailable_after {
            State::Unavailable
        } else {
            State::Reconnecting
        };
        self.set_state(state, out);
        if delay == 0 {
            self.open(now, out);
        } else {
            self.timer = Some((now.saturating_add(delay), Timer::Retry));
        }
    }

    fn set_state<P>(&mut self, current: State, out: &mut Vec<Action<P>>) {
        if current != self.state {
            out.push(Action::StateChanged {
                previous: self.state,
                current,
            });
            self.state = current;
        }
    }
}
