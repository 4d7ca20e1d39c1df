//! The client facade: the connection state machine plus the channel registry, listeners,
//! presence members and user sign-in, behind the input methods the shell calls.

use crate::prelude::*;

use core::fmt;
use core::mem::take;

use overtone_protocol::channel::{validate_name, ChannelKind, NameError, SERVER_TO_USER_PREFIX};

use super::channels::{Channel, Member, Position, Subscription};
use super::connection::{Change, Connection, State};
use super::listeners::{key_for, Binding, ListenerId, Listeners};
use super::names::{whisper_event, EventFormatter};
use super::{joined, Action, ClientFrame, Config, Payload, ServerMessage};

/// The reserved event name under which a channel's listeners hear that a resubscribe could
/// not recover the events missed meanwhile (the server's history no longer reached back, or
/// was lost): the app's state may be stale. Listeners get no arguments. Bind it with
/// `listen(".pusher:recovery_failed")`; `listenToAll` does not see it.
pub const RECOVERY_FAILED_EVENT: &str = "pusher:recovery_failed";

/// Why the core refused an app call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    InvalidChannelName(NameError),
    /// The channel was never subscribed, was left, or is not subscribed yet.
    NotSubscribed,
    /// Whispers are only allowed on private and presence channels.
    ClientEventsNotAllowed,
    /// `#server-to-user-*` channels come with `signin()`, not `subscribe()`.
    SignInRequired,
}

impl Error {
    /// The message as users see it; a plain `&str` keeps `core::fmt` out of the wasm.
    pub fn message(&self) -> &'static str {
        match self {
            Error::InvalidChannelName(e) => e.message(),
            Error::NotSubscribed => "Not subscribed to this channel",
            Error::ClientEventsNotAllowed => {
                "Client events are only allowed on private and presence channels"
            }
            Error::SignInRequired => "Server-to-user channels are joined by signing in",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The auth endpoint's reply for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAuth {
    /// `"{key}:{signature}"`.
    pub auth: String,
    /// Presence: the exact `channel_data` string returned (the signature covers it).
    pub channel_data: Option<String>,
    /// Presence: `channel_data.user_id` as a string, which makes [`Client::me`] work.
    pub user_id: Option<String>,
}

/// The whole client core. See the module docs of [`super`] for how a shell drives it.
#[derive(Debug)]
pub struct Client<P> {
    connection: Connection,
    channels: Vec<Channel<P>>,
    listeners: Listeners,
    formatter: EventFormatter,
    /// `signin()` was called: sign in again on every new socket.
    signin_wanted: bool,
    user_id: Option<String>,
    /// In order: `poll_action` takes from the front.
    actions: Vec<Action<P>>,
}

impl<P: Clone> Client<P> {
    /// `seed` feeds the backoff jitter; give each client a different one.
    pub fn new(config: Config, seed: u64) -> Client<P> {
        Client {
            formatter: EventFormatter::new(config.namespace.clone()),
            connection: Connection::new(config, seed),
            channels: Vec::new(),
            listeners: Listeners::default(),
            signin_wanted: false,
            user_id: None,
            actions: Vec::new(),
        }
    }

    pub fn state(&self) -> State {
        self.connection.state()
    }

    /// The current socket id while connected (Echo's `socketId()`, the `X-Socket-ID` header).
    pub fn socket_id(&self) -> Option<&str> {
        self.connection.socket_id()
    }

    /// The signed-in user's id, once `pusher:signin_success` arrived on this socket.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    pub fn formatter(&self) -> &EventFormatter {
        &self.formatter
    }

    /// The next thing to do; call until `None` after every input.
    pub fn poll_action(&mut self) -> Option<Action<P>> {
        // A Vec used as a queue: VecDeque's code costs more wasm than shifting a few entries.
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// When to call [`Client::handle_timeout`] next (absolute ms), if at all.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.connection.poll_timeout()
    }

    // ---- connection inputs ----

    pub fn connect(&mut self, now: u64) {
        self.connection.connect(now, &mut self.actions);
    }

    /// The app's `disconnect()`: close and stay closed; channels are kept for `connect()`.
    pub fn disconnect(&mut self) {
        let change = self.connection.disconnect(&mut self.actions);
        self.apply(change);
    }

    /// The socket's `close` event.
    pub fn socket_closed(&mut self, now: u64, code: u16) {
        let change = self.connection.closed(now, code, &mut self.actions);
        self.apply(change);
    }

    /// The socket's `error` event.
    pub fn socket_error(&mut self, now: u64) {
        let change = self.connection.errored(now, &mut self.actions);
        self.apply(change);
    }

    pub fn handle_timeout(&mut self, now: u64) {
        let change = self.connection.handle_timeout(now, &mut self.actions);
        self.apply(change);
    }

    /// The window's `online` / `offline` events (and `navigator.onLine` at start).
    pub fn set_online(&mut self, now: u64, online: bool) {
        self.connection.set_online(now, online, &mut self.actions);
    }

    /// `visibilitychange` to visible, or `pageshow` with `persisted` (bfcache restore).
    pub fn page_shown(&mut self, now: u64) {
        self.connection.page_shown(now, &mut self.actions);
    }

    /// One frame from the socket, parsed by the shell.
    pub fn handle_message(&mut self, now: u64, mut message: ServerMessage<P>) {
        if let ServerMessage::Error { code, message } = &message {
            self.actions.push(Action::ServerError {
                code: *code,
                message: message.clone(),
            });
        }
        let change = self.connection.received(now, &message, &mut self.actions);
        if change.is_some() {
            return self.apply(change);
        }
        if self.socket_id().is_none() {
            return;
        }
        // Fields are taken out of the message rather than moved, so that the message is
        // dropped in one place instead of field by field on every path.
        match &mut message {
            ServerMessage::SubscriptionSucceeded {
                channel,
                presence,
                position,
                recovered,
            } => self.subscribed(channel, presence, position, *recovered),
            ServerMessage::SubscriptionError {
                channel,
                status,
                error,
            } => self.subscription_failed(channel, *status, take(error)),
            ServerMessage::MemberAdded {
                channel,
                user_id,
                info,
            } => {
                let Some(ch) = self.presence_channel(channel) else {
                    return;
                };
                if let Some(member) = ch.upsert(take(user_id), info.clone()).cloned() {
                    self.dispatch(channel, &Binding::Joining, Payload::Member(member));
                }
            }
            ServerMessage::MemberRemoved { channel, user_id } => {
                let Some(ch) = self.presence_channel(channel) else {
                    return;
                };
                if let Some(member) = ch.remove_member(user_id) {
                    self.dispatch(channel, &Binding::Leaving, Payload::Member(member));
                }
            }
            ServerMessage::SigninSuccess { user_id } => self.signed_in(take(user_id)),
            ServerMessage::Event {
                channel,
                event,
                data,
                user_id,
                position,
            } => self.event(channel, event, data, user_id, position),
            ServerMessage::ConnectionEstablished { .. }
            | ServerMessage::Ping
            | ServerMessage::Pong
            | ServerMessage::Error { .. } => {}
        }
    }

    // ---- channels ----

    /// Adds a channel (no-op if present) and subscribes it now if connected, else on connect.
    pub fn subscribe(&mut self, channel: &str) -> Result<(), Error> {
        validate_name(channel).map_err(Error::InvalidChannelName)?;
        if channel.starts_with(SERVER_TO_USER_PREFIX) {
            return Err(Error::SignInRequired);
        }
        if self.find(channel).is_none() {
            let mut entry = Channel::new(channel.to_owned());
            if let Some(socket_id) = self.connection.socket_id() {
                start_subscription(&mut entry, socket_id, &mut self.actions);
            }
            self.channels.push(entry);
        }
        Ok(())
    }

    /// Echo's `leaveChannel(name)`: unsubscribes and drops the channel's listeners, whose ids
    /// are returned so the shell can free their callbacks.
    pub fn leave_channel(&mut self, channel: &str) -> Vec<ListenerId> {
        match self.channels.iter().position(|c| c.name == channel) {
            Some(index) => self.leave_at(index),
            None => Vec::new(),
        }
    }

    /// Echo's `leave(name)`: the public, private, encrypted and presence channel of that name.
    pub fn leave(&mut self, name: &str) -> Vec<ListenerId> {
        let mut removed = Vec::new();
        for prefix in ["", "private-", "private-encrypted-", "presence-"] {
            removed.append(&mut self.leave_channel(&joined(prefix, name)));
        }
        removed
    }

    /// Echo's `leaveAllChannels()`.
    pub fn leave_all(&mut self) -> Vec<ListenerId> {
        let mut removed = Vec::new();
        let mut index = 0;
        while let Some(entry) = self.channels.get(index) {
            if entry.kind.kind == ChannelKind::ServerToUser {
                index += 1;
            } else {
                removed.append(&mut self.leave_at(index));
            }
        }
        removed
    }

    /// The reply to an [`Action::Authorize`]. Ignored if the socket changed meanwhile: a
    /// signature is bound to its socket id, and a fresh request went out for the new one.
    pub fn authorized(&mut self, channel: &str, socket_id: &str, auth: ChannelAuth) {
        let Some(entry) = self.awaiting_auth(channel, socket_id) else {
            return;
        };
        entry.my_id = auth.user_id;
        entry.subscription = Subscription::Pending;
        let frame = ClientFrame::Subscribe {
            channel: entry.name.clone(),
            auth: Some(auth.auth),
            channel_data: auth.channel_data,
            position: entry.position.as_ref().map(|p| p.wire.clone()),
        };
        self.actions.push(Action::Send(frame));
    }

    /// The auth endpoint refused (`status`: its HTTP status) or could not be reached (`None`):
    /// the channel's error listeners hear it; it is retried after the next reconnect.
    pub fn authorization_failed(
        &mut self,
        channel: &str,
        socket_id: &str,
        status: Option<u16>,
        error: String,
    ) {
        if self.awaiting_auth(channel, socket_id).is_some() {
            self.subscription_failed(channel, status, error);
        }
    }

    /// `whisper(event, data)`: sends `client-{event}` on a subscribed private/presence channel.
    pub fn whisper(&mut self, channel: &str, event: &str, data: P) -> Result<(), Error> {
        let entry = self.find(channel).ok_or(Error::NotSubscribed)?;
        if !entry.kind.allows_client_events() {
            return Err(Error::ClientEventsNotAllowed);
        }
        if entry.subscription != Subscription::Subscribed {
            return Err(Error::NotSubscribed);
        }
        self.actions.push(Action::Send(ClientFrame::ClientEvent {
            channel: channel.to_owned(),
            event: whisper_event(event),
            data,
        }));
        Ok(())
    }

    /// The channels the app subscribed and has not left, by name.
    pub fn channel_names(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|c| c.name.as_str())
    }

    /// Whether the app subscribed `channel` and has not left it.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.find(channel).is_some()
    }

    /// A presence channel's members, one per user id (empty until subscribed).
    pub fn members(&self, channel: &str) -> &[Member<P>] {
        self.find(channel).map_or(&[], |c| &c.members)
    }

    /// Our own member entry on a presence channel.
    pub fn me(&self, channel: &str) -> Option<&Member<P>> {
        self.find(channel)?.me()
    }

    // ---- listeners ----

    /// Registers a listener on a channel the app subscribed.
    pub fn bind(&mut self, channel: &str, binding: Binding) -> Result<ListenerId, Error> {
        self.find(channel).ok_or(Error::NotSubscribed)?;
        Ok(self.listeners.add(key_for(channel), binding))
    }

    /// Echo's `listen(event)`: binds the namespace-formatted event name.
    pub fn listen(&mut self, channel: &str, event: &str) -> Result<ListenerId, Error> {
        let wire = self.formatter.format(event);
        self.bind(channel, Binding::Event(wire))
    }

    /// Listeners for events on the signed-in user's channel (`pusher.user.bind`), by wire name.
    /// Allowed before sign-in: the user id is not needed to keep them.
    pub fn bind_user(&mut self, binding: Binding) -> ListenerId {
        self.listeners.add(SERVER_TO_USER_PREFIX, binding)
    }

    pub fn unbind(&mut self, id: ListenerId) -> bool {
        self.listeners.remove(id)
    }

    /// The ids bound with exactly `binding` on `channel`, e.g. to find the one for a callback
    /// in `stopListening(event, callback)`.
    pub fn listeners(&self, channel: &str, binding: &Binding) -> Vec<ListenerId> {
        bound(&self.listeners, channel, binding)
    }

    /// Removes every listener bound with `binding` on `channel` (`stopListening(event)` and
    /// `stopListeningToAll()` without a callback); returns their ids.
    pub fn unbind_all(&mut self, channel: &str, binding: &Binding) -> Vec<ListenerId> {
        self.listeners
            .remove_matching(key_for(channel), Some(binding))
    }

    // ---- user sign-in ----

    /// `pusher.signin()`: asks for user auth now if connected, and again on every reconnect.
    pub fn signin(&mut self) {
        self.signin_wanted = true;
        if let Some(socket_id) = self.connection.socket_id() {
            self.actions.push(Action::AuthorizeUser {
                socket_id: socket_id.to_owned(),
            });
        }
    }

    /// The reply to an [`Action::AuthorizeUser`]; ignored if the socket changed meanwhile.
    pub fn user_authorized(&mut self, socket_id: &str, auth: String, user_data: String) {
        if self.connection.socket_id() == Some(socket_id) {
            self.actions
                .push(Action::Send(ClientFrame::Signin { auth, user_data }));
        }
    }

    // ---- internals ----

    /// Removes the channel at `index`, unsubscribes it and drops its listeners; returns their
    /// ids.
    fn leave_at(&mut self, index: usize) -> Vec<ListenerId> {
        let entry = self.channels.remove(index);
        if matches!(
            entry.subscription,
            Subscription::Pending | Subscription::Subscribed
        ) {
            let channel = entry.name.clone();
            self.actions
                .push(Action::Send(ClientFrame::Unsubscribe { channel }));
        }
        self.listeners.remove_matching(key_for(&entry.name), None)
    }

    /// Queues `payload` for the listeners bound with `wanted` on `channel`, if any.
    fn dispatch(&mut self, channel: &str, wanted: &Binding, payload: Payload<P>) {
        queue_dispatch(
            &mut self.actions,
            bound(&self.listeners, channel, wanted),
            payload,
        );
    }

    fn find(&self, channel: &str) -> Option<&Channel<P>> {
        self.channels.iter().find(|c| c.name == channel)
    }

    fn presence_channel(&mut self, channel: &str) -> Option<&mut Channel<P>> {
        find_mut(&mut self.channels, channel).filter(|c| c.kind.kind == ChannelKind::Presence)
    }

    fn awaiting_auth(&mut self, channel: &str, socket_id: &str) -> Option<&mut Channel<P>> {
        if self.connection.socket_id() != Some(socket_id) {
            return None;
        }
        find_mut(&mut self.channels, channel)
            .filter(|c| c.subscription == Subscription::Authorizing)
    }

    fn apply(&mut self, change: Option<Change>) {
        match change {
            Some(Change::Up) => {
                let Some(socket_id) = self.connection.socket_id() else {
                    return;
                };
                // The user channel is only valid after sign-in on this socket: see `signed_in`.
                for entry in self
                    .channels
                    .iter_mut()
                    .filter(|c| c.kind.kind != ChannelKind::ServerToUser)
                {
                    start_subscription(entry, socket_id, &mut self.actions);
                }
                if self.signin_wanted {
                    self.actions.push(Action::AuthorizeUser {
                        socket_id: socket_id.to_owned(),
                    });
                }
            }
            Some(Change::Down) => {
                self.channels.iter_mut().for_each(Channel::reset);
                self.user_id = None;
            }
            None => {}
        }
    }

    /// Takes what it keeps out of the message's fields.
    fn subscribed(
        &mut self,
        channel: &str,
        presence: &mut Option<Vec<(String, P)>>,
        position: &mut Option<String>,
        recovered: Option<bool>,
    ) {
        let Some(entry) = find_mut(&mut self.channels, channel) else {
            return;
        };
        entry.subscription = Subscription::Subscribed;
        // Recovered: the missed events follow, each moving our position on. Otherwise (a
        // first subscribe, or a recovery that failed) the stream starts after the server's
        // position; none means the channel has no history (any more).
        if recovered != Some(true) {
            entry.position = position.take().and_then(Position::parse);
        }
        let is_presence = entry.kind.kind == ChannelKind::Presence;
        if let (true, Some(list)) = (is_presence, presence.take()) {
            entry.set_members(list);
        }
        // A failed recovery is told before `subscribed`, so that its listeners already know.
        if recovered == Some(false) {
            let failed = Binding::Event(RECOVERY_FAILED_EVENT.into());
            let ids = bound(&self.listeners, channel, &failed);
            queue_dispatch(&mut self.actions, ids, Payload::Subscribed);
        }
        let ids = bound(&self.listeners, channel, &Binding::Subscribed);
        queue_dispatch(&mut self.actions, ids, Payload::Subscribed);
        if is_presence {
            let ids = bound(&self.listeners, channel, &Binding::Here);
            // Checked first: no copy of the member list for nobody.
            if !ids.is_empty() {
                let members = Payload::Members(entry.members.clone());
                queue_dispatch(&mut self.actions, ids, members);
            }
        }
    }

    fn subscription_failed(&mut self, channel: &str, status: Option<u16>, error: String) {
        let Some(entry) = find_mut(&mut self.channels, channel) else {
            return;
        };
        entry.subscription = Subscription::Failed;
        let payload = Payload::SubscriptionError { status, error };
        self.dispatch(channel, &Binding::Error, payload);
    }

    fn signed_in(&mut self, user_id: String) {
        let name = joined(SERVER_TO_USER_PREFIX, &user_id);
        if validate_name(&name).is_err() {
            self.actions.push(Action::ServerError {
                code: None,
                message: "pusher:signin_success with an invalid user id".into(),
            });
            return;
        }
        // A different user may have signed in since the last socket.
        self.channels
            .retain(|c| c.kind.kind != ChannelKind::ServerToUser || c.name == name);
        if self.find(&name).is_none() {
            self.channels.push(Channel::new(name.clone()));
        }
        if let Some(socket_id) = self.connection.socket_id() {
            if let Some(entry) = find_mut(&mut self.channels, &name) {
                start_subscription(entry, socket_id, &mut self.actions);
            }
        }
        self.actions.push(Action::SignedIn {
            user_id: user_id.clone(),
        });
        self.user_id = Some(user_id);
    }

    /// An event on `channel`: dropped if already seen, else dispatched. Takes what it keeps
    /// out of the message's fields.
    fn event(
        &mut self,
        channel: &str,
        event: &mut String,
        data: &P,
        user_id: &mut Option<String>,
        position: &mut Option<String>,
    ) {
        let Some(entry) = find_mut(&mut self.channels, channel) else {
            return;
        };
        if let Some(new) = position.take().and_then(Position::parse) {
            match &mut entry.position {
                // Already seen (e.g. replayed and live at once): drop it.
                Some(last) if last.same_epoch(&new) && new.offset <= last.offset => return,
                last => *last = Some(new),
            }
        }
        let binding = Binding::Event(take(event));
        let ids = bound(&self.listeners, channel, &binding);
        let payload = Payload::Event {
            data: data.clone(),
            user_id: user_id.take(),
        };
        queue_dispatch(&mut self.actions, ids, payload);
        // The name, back from the binding it was lent to.
        let Binding::Event(event) = binding else {
            return;
        };
        // `listenToAll` hears every event but the protocol's own.
        if event.starts_with("pusher:") || event.starts_with("pusher_internal:") {
            return;
        }
        let ids = bound(&self.listeners, channel, &Binding::AllEvents);
        // Checked first: no name built for nobody.
        if !ids.is_empty() {
            let payload = Payload::NamedEvent {
                event: self.formatter.name_for_all(&event),
                data: data.clone(),
            };
            queue_dispatch(&mut self.actions, ids, payload);
        }
    }
}

/// The ids bound with exactly `binding` on `channel`.
fn bound(listeners: &Listeners, channel: &str, binding: &Binding) -> Vec<ListenerId> {
    listeners.matching(key_for(channel), Some(binding))
}

fn find_mut<'a, P>(channels: &'a mut [Channel<P>], name: &str) -> Option<&'a mut Channel<P>> {
    channels.iter_mut().find(|c| c.name == name)
}

/// Subscribes `entry` on the socket `socket_id`: directly, or via a fresh auth request.
fn start_subscription<P>(entry: &mut Channel<P>, socket_id: &str, out: &mut Vec<Action<P>>) {
    if entry.kind.needs_auth() {
        entry.subscription = Subscription::Authorizing;
        out.push(Action::Authorize {
            channel: entry.name.clone(),
            socket_id: socket_id.to_owned(),
        });
    } else {
        entry.subscription = Subscription::Pending;
        out.push(Action::Send(ClientFrame::Subscribe {
            channel: entry.name.clone(),
            auth: None,
            channel_data: None,
            position: entry.position.as_ref().map(|p| p.wire.clone()),
        }));
    }
}

/// Queues a dispatch of `payload` to `listeners`, unless there are none.
fn queue_dispatch<P>(out: &mut Vec<Action<P>>, listeners: Vec<ListenerId>, payload: Payload<P>) {
    if !listeners.is_empty() {
        out.push(Action::Dispatch { listeners, payload });
    }
}
