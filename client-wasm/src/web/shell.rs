//! One client's state and the loop that runs its sans-IO core: the core is fed what
//! [`super::call`] reports, and its actions become `out` records (see [`Out`]), queued until
//! the client is released so that a listener may call back in.
//! The JavaScript side of `out` is `pkg-js/src/io.ts`.

use crate::prelude::*;

use crate::abi::{self, Record};
use crate::core::{Action, ChannelAuth, Client, Config, ListenerId, Payload, ServerMessage};
#[cfg(feature = "encryption")]
use crate::secretbox;

/// Why a `private-encrypted-` channel fails on the build without decryption.
#[cfg(not(feature = "encryption"))]
const NO_ENCRYPTION: &str =
    "private-encrypted channels need the encryption build: import Echo from 'overtone/with-encryption'";

/// What `out(client, kind, n, a, b)` is asked to do; `kind` is the number. Arguments not named
/// are `-1` / `""`.
#[derive(Clone, Copy)]
pub(super) enum Out {
    /// `(a: url)`: close any socket, open one; report it with `Closed`, `SocketError` and the
    /// frame operations.
    Open,
    /// `(a: text)` on the open socket (dropped when it is not open).
    Send,
    /// Close the socket, without reporting it.
    Close,
    /// `(n: delay ms)`: replace the timer (`-1`: none); report with `Timer`.
    Timer,
    /// `(a: state)`, the core's state name.
    State,
    /// `(a: channel, b: socketId)`: answer with `Authorized` or `AuthorizationFailed`.
    Authorize,
    /// `(a: socketId)`: answer with `UserAuthorized`.
    AuthorizeUser,
    /// `(n: code, a: message)`: a `pusher:error` or a frame the client could not use.
    Error,
    /// `(n: listener, a: user id)`: call it with the current frame's data, and `{user_id}` when
    /// `a` is given.
    Data,
    /// `(n: listener, a: event)`: `listenToAll`'s `(event, data)` of the current frame.
    NamedData,
    /// `(n: listener)`: call it without arguments.
    Call,
    /// `(a: user id)`: one member for the next `Members` (in order).
    Member,
    /// `(n: listener)`: call it with the `user_info`s of the `Member`s before.
    Members,
    /// `(n: listener, a: user id)`: call it with that member's `user_info`.
    OneMember,
    /// `(n: listener, a: error, b: status or "")`: `{type: "AuthError", error, status}`.
    AuthError,
    /// `(n: listener)`: the core dropped it (its channel was left).
    Drop,
    /// `(a: user id)`: signed in.
    SignedIn,
    /// `(n, a, b)`: one entry of what the operation asked for.
    Item,
    /// `(a: message)`: the operation failed; the page throws it.
    Throw,
    /// `(a: text)`: the decrypted data of the event being read. Last: the kinds are numbered
    /// the same in both builds.
    #[cfg(feature = "encryption")]
    Plain,
}

/// An auth reply's `channel_data`, presence user id and `shared_secret`, which the page sends
/// ahead of the reply itself (`AUTH_EXTRA`).
pub(super) type AuthExtra = (Option<String>, Option<String>, Option<String>);

pub(super) struct Shell {
    pub(super) core: Client<String>,
    /// The deadline the armed timer is for.
    timer: Option<u64>,
    /// Whether the page is visible, as last reported.
    visible: bool,
    /// `private-encrypted-*` channels' keys, from their auth replies.
    #[cfg(feature = "encryption")]
    secrets: Vec<(String, [u8; 32])>,
    /// The presence list of the subscription being confirmed (`PresenceMember`).
    pub(super) presence: Vec<(String, String)>,
    pub(super) auth_extra: AuthExtra,
    /// `out` calls to make once the client is released.
    outs: Vec<Record>,
}

impl Shell {
    pub(super) fn new(index: u32, config: Config) -> Shell {
        // Spreads the reconnects of pages started together; not a secret.
        let seed = abi::now().to_bits() ^ u64::from(index);
        Shell {
            core: Client::new(config, seed),
            timer: None,
            visible: true,
            #[cfg(feature = "encryption")]
            secrets: Vec::new(),
            presence: Vec::new(),
            auth_extra: (None, None, None),
            outs: Vec::new(),
        }
    }

    #[inline(never)]
    fn out(&mut self, kind: Out, n: f64, a: &str, b: &str) {
        self.outs.push(Record::new(kind as u32, n, a, b));
    }

    pub(super) fn item(&mut self, n: f64, a: &str, b: &str) {
        self.out(Out::Item, n, a, b);
    }

    pub(super) fn throw(&mut self, message: &str) {
        self.out(Out::Throw, -1.0, message, "");
    }

    pub(super) fn take_outs(&mut self) -> Vec<Record> {
        core::mem::take(&mut self.outs)
    }

    // ---- inputs ----

    pub(super) fn message(&mut self, now: u64, message: ServerMessage<String>) {
        self.core.handle_message(now, message);
    }

    /// `visibilitychange`: `visible` is `!document.hidden`.
    pub(super) fn visibility_changed(&mut self, now: u64, visible: bool) {
        if visible && !self.visible {
            self.core.page_shown(now);
        }
        self.visible = visible;
    }

    /// Opens a `private-encrypted-` event's data (`Plain`), or says why not (`Error`).
    pub(super) fn decrypt(&mut self, channel: &str, nonce: &str, ciphertext: &str) {
        #[cfg(feature = "encryption")]
        {
            let plain = self
                .secrets
                .iter()
                .find(|(name, _)| name == channel)
                .and_then(|(_, key)| {
                    let nonce = secretbox::base64_decode(nonce)?;
                    let ciphertext = secretbox::base64_decode(ciphertext)?;
                    secretbox::secretbox_open(key, &nonce, &ciphertext)
                });
            match plain.as_deref().map(core::str::from_utf8) {
                Some(Ok(text)) => self.out(Out::Plain, -1.0, text, ""),
                _ => self.out(Out::Error, -1.0, "Could not decrypt an event", ""),
            }
        }
        #[cfg(not(feature = "encryption"))]
        {
            let _ = (channel, nonce, ciphertext);
            self.out(Out::Error, -1.0, NO_ENCRYPTION, "");
        }
    }

    pub(super) fn timer_fired(&mut self, now: u64) {
        self.timer = None;
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
        }
    }

    /// The auth reply for `channel` (its other fields came first: [`Shell::auth_extra`]).
    pub(super) fn authorized(&mut self, channel: &str, socket_id: &str, auth: String) {
        let (channel_data, user_id, shared_secret) = core::mem::take(&mut self.auth_extra);
        let auth = ChannelAuth {
            auth,
            channel_data,
            user_id,
        };
        #[cfg(feature = "encryption")]
        if let Some(key) = shared_secret
            .as_deref()
            .and_then(secretbox::base64_decode)
            .and_then(|key| <[u8; 32]>::try_from(key).ok())
        {
            self.secrets.retain(|(name, _)| name != channel);
            self.secrets.push((channel.to_owned(), key));
        }
        #[cfg(not(feature = "encryption"))]
        if shared_secret.is_some() || channel.starts_with("private-encrypted-") {
            // Refused clearly, not left to fail on the first event: the channel's error
            // listeners hear why (the TypeScript layer also says it on the console).
            return self
                .core
                .authorization_failed(channel, socket_id, None, NO_ENCRYPTION.into());
        }
        self.core.authorized(channel, socket_id, auth);
    }

    /// The channel was left: its listeners go with it.
    pub(super) fn left(&mut self, dropped: Vec<ListenerId>) {
        for id in dropped {
            self.out(Out::Drop, id.0.into(), "", "");
        }
        #[cfg(feature = "encryption")]
        {
            let core = &self.core;
            self.secrets.retain(|(name, _)| core.has_channel(name));
        }
    }

    // ---- performing what the machines ask ----

    /// Performs the core's actions, then re-arms the timer.
    pub(super) fn flush(&mut self) {
        while let Some(action) = self.core.poll_action() {
            self.perform(action);
        }
        self.arm_timer();
    }

    fn perform(&mut self, action: Action<String>) {
        match action {
            Action::OpenSocket { url } => self.out(Out::Open, -1.0, &url, ""),
            Action::CloseSocket => self.out(Out::Close, -1.0, "", ""),
            Action::Send(frame) => {
                let text = frame.to_json(Clone::clone);
                self.out(Out::Send, -1.0, &text, "");
            }
            Action::StateChanged { current, .. } => {
                self.out(Out::State, -1.0, current.as_str(), "");
            }
            Action::Authorize { channel, socket_id } => {
                self.out(Out::Authorize, -1.0, &channel, &socket_id);
            }
            Action::AuthorizeUser { socket_id } => {
                self.out(Out::AuthorizeUser, -1.0, &socket_id, "");
            }
            Action::Dispatch { listeners, payload } => self.dispatch(listeners, payload),
            Action::SignedIn { user_id } => self.out(Out::SignedIn, -1.0, &user_id, ""),
            Action::ServerError { code, message } => {
                self.out(Out::Error, code.map_or(-1.0, f64::from), &message, "");
            }
        }
    }

    /// The `out` records that call each listener with what laravel-echo passes it.
    fn dispatch(&mut self, listeners: Vec<ListenerId>, payload: Payload<String>) {
        for id in listeners {
            let n = f64::from(id.0);
            match &payload {
                Payload::Event { user_id, .. } => {
                    self.out(Out::Data, n, user_id.as_deref().unwrap_or_default(), "")
                }
                Payload::NamedEvent { event, .. } => self.out(Out::NamedData, n, event, ""),
                Payload::Subscribed => self.out(Out::Call, n, "", ""),
                Payload::Members(members) => {
                    for member in members {
                        self.out(Out::Member, -1.0, &member.user_id, "");
                    }
                    self.out(Out::Members, n, "", "");
                }
                Payload::Member(member) => self.out(Out::OneMember, n, &member.user_id, ""),
                Payload::SubscriptionError { status, error } => {
                    let mut text = String::new();
                    if let Some(status) = status {
                        crate::core::push_decimal(&mut text, (*status).into());
                    }
                    self.out(Out::AuthError, n, error, &text);
                }
            }
        }
    }

    fn arm_timer(&mut self) {
        let due = self.core.poll_timeout();
        // Every frame moves the activity timeout a little later: a timer already due no later
        // than `due` stays (it finds nothing to do when it fires early, then re-arms), so the
        // common case costs no clearTimeout/setTimeout per event.
        match (self.timer, due) {
            (Some(at), Some(due)) if at <= due => return,
            (None, None) => return,
            _ => {}
        }
        self.timer = due;
        let delay = due.map_or(-1.0, |at| {
            at.saturating_sub(abi::now() as u64).min(i32::MAX as u64) as f64
        });
        self.out(Out::Timer, delay, "", "");
    }
}
