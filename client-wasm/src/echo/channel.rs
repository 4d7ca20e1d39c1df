//! Channels of the Rust API: Echo's `listen`, `listenToAll`, `notification`, whispers,
//! `subscribed`, `error` and typing on every channel, `here` / `joining` / `leaving` and away
//! statuses on presence channels. Payloads arrive typed: a listener names its type and gets a
//! value deserialized with serde-wasm-bindgen; one that does not fit reaches the channel's
//! error listeners instead.

use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::driver::{Delivery, Handler, Inner, Listener};
use super::{Echo, Error, Member, MemberStatus, Status};
use crate::core::{
    whisper_listen_name, Binding, Payload, NOTIFICATION_EVENT, RECOVERY_FAILED_EVENT,
};
use crate::features::{ClientFeatures, Watched};

/// What a channel's [`Channel::error`] listeners hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The subscription was refused: by the auth endpoint (`status`: its HTTP status) or the
    /// server.
    Subscription {
        /// The auth endpoint's HTTP status, when it answered.
        status: Option<u16>,
        /// Why, as the endpoint or the server said it.
        error: String,
    },
    /// A typed listener's payload did not deserialize into its type; the listener was not
    /// called.
    Payload {
        /// The event as the listener named it.
        event: String,
        /// serde's message.
        error: String,
    },
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Subscription {
                status: Some(status),
                error,
            } => write!(f, "subscription refused ({status}): {error}"),
            ChannelError::Subscription {
                status: None,
                error,
            } => {
                write!(f, "subscription refused: {error}")
            }
            ChannelError::Payload { event, error } => write!(f, "payload of {event}: {error}"),
        }
    }
}

/// A subscribed channel (public, private or encrypted). Cheap to clone; it keeps its
/// [`Echo`] alive. Leave it with [`Echo::leave_channel`].
#[derive(Clone)]
pub struct Channel {
    echo: Echo,
    name: String,
}

impl Channel {
    pub(super) fn new(echo: Echo, name: String) -> Channel {
        Channel { echo, name }
    }

    /// The full name, prefix included (`private-orders.7`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn inner(&self) -> &Rc<Inner> {
        &self.echo.inner
    }

    /// Binds `binding` on this channel to `handler`.
    fn bind(&self, binding: Binding, handler: Handler) -> Listener {
        let inner = self.inner();
        let bound = inner.core.borrow_mut().bind(&self.name, binding);
        match bound {
            Ok(id) => inner.register(id, handler),
            // The channel was left: nothing will ever call it.
            Err(_) => Listener::none(),
        }
    }

    /// `callback(data)` for `event`, named as Echo names it (`OrderShipped` is
    /// `App\Events\OrderShipped` under the default namespace; `.order.shipped` as written).
    pub fn listen<T: DeserializeOwned + 'static>(
        &self,
        event: &str,
        callback: impl Fn(T) + 'static,
    ) -> Listener {
        let wire = self.inner().core.borrow().formatter().format(event);
        let handler = typed_event(&self.name, event, self.inner(), callback);
        self.bind(Binding::Event(wire), handler)
    }

    /// [`Channel::listen`] without a type: the payload as the browser parsed it.
    pub fn listen_raw(&self, event: &str, callback: impl Fn(JsValue) + 'static) -> Listener {
        self.listen(event, move |value: Raw| callback(value.0))
    }

    /// `callback(event, data)` for every event but the protocol's own, with the name as Echo's
    /// `listenToAll` reports it.
    pub fn listen_to_all(&self, callback: impl Fn(&str, JsValue) + 'static) -> Listener {
        let handler: Handler = Rc::new(move |delivery| {
            if let Delivery::Core(Payload::NamedEvent { event, data }) = delivery {
                callback(event, data.clone());
            }
        });
        self.bind(Binding::AllEvents, handler)
    }

    /// Laravel notifications sent to this (private) channel.
    pub fn notification<T: DeserializeOwned + 'static>(
        &self,
        callback: impl Fn(T) + 'static,
    ) -> Listener {
        self.listen(NOTIFICATION_EVENT, callback)
    }

    /// `callback(data)` for the whisper `event` from other clients.
    pub fn listen_for_whisper<T: DeserializeOwned + 'static>(
        &self,
        event: &str,
        callback: impl Fn(T) + 'static,
    ) -> Listener {
        self.listen(&whisper_listen_name(event), callback)
    }

    /// Sends `client-{event}` to the channel's other subscribers (private and presence
    /// channels, once subscribed).
    pub fn whisper<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), Error> {
        let data = serde_wasm_bindgen::to_value(data).unwrap_or(JsValue::NULL);
        let sent = self
            .inner()
            .core
            .borrow_mut()
            .whisper(&self.name, event, data);
        self.inner().drive();
        sent
    }

    /// Every successful (re)subscription.
    pub fn subscribed(&self, callback: impl Fn() + 'static) -> Listener {
        let handler: Handler = Rc::new(move |delivery| {
            if let Delivery::Core(Payload::Subscribed) = delivery {
                callback();
            }
        });
        self.bind(Binding::Subscribed, handler)
    }

    /// A refused subscription, or a payload a typed listener could not read.
    pub fn error(&self, callback: impl Fn(ChannelError) + 'static) -> Listener {
        let handler: Handler = Rc::new(move |delivery| match delivery {
            Delivery::Core(Payload::SubscriptionError { status, error }) => {
                callback(ChannelError::Subscription {
                    status: *status,
                    error: error.clone(),
                })
            }
            Delivery::BadPayload { event, error } => callback(ChannelError::Payload {
                event: event.into(),
                error: error.into(),
            }),
            Delivery::Core(_) => {}
        });
        self.bind(Binding::Error, handler)
    }

    /// A resubscribe could not replay what was missed (the server's history no longer reached
    /// back): reload what the page shows.
    pub fn recovery_failed(&self, callback: impl Fn() + 'static) -> Listener {
        let handler: Handler = Rc::new(move |delivery| {
            if let Delivery::Core(Payload::Subscribed) = delivery {
                callback();
            }
        });
        self.bind(Binding::Event(RECOVERY_FAILED_EVENT.into()), handler)
    }

    /// A keystroke by this user: the others see them typing (throttled; stops by itself).
    pub fn typing(&self) {
        self.typing_input(ClientFeatures::typing);
    }

    /// The message was sent: this user stopped typing.
    pub fn stop_typing(&self) {
        self.typing_input(ClientFeatures::stop_typing);
    }

    /// Feeds `input` this channel, this user's id on it and the time, then performs the result.
    fn typing_input(&self, input: fn(&mut ClientFeatures, &str, Option<&str>, u64)) {
        let own = self.inner().own_id(&self.name);
        input(
            &mut self.inner().features.borrow_mut(),
            &self.name,
            own.as_deref(),
            super::driver::now(),
        );
        self.inner().drive();
    }

    /// The ids of who is typing, in the order they started.
    pub fn typing_users(&self) -> Vec<String> {
        let own = self.inner().own_id(&self.name);
        self.inner()
            .features
            .borrow_mut()
            .typing_users(&self.name, own.as_deref())
    }

    /// `callback(user ids)` whenever who is typing changes.
    pub fn on_typing_change(&self, callback: impl Fn(Vec<String>) + 'static) -> Listener {
        // Typing is followed from the first look on.
        let _ = self.typing_users();
        let channel = self.clone();
        let notify = move || callback(channel.typing_users());
        self.inner()
            .watch(Watched::Typing, self.name.clone(), Rc::new(notify))
    }

    /// Read receipts (private and presence channels): this user read up to `up_to`, a history
    /// position (`EPOCH:OFFSET`) or an id the app chose (numeric ids compare as numbers).
    /// Marks within a few ms go as one frame, and only forward; on servers without Overtone's
    /// extension they stay in this page. `false` (nothing done) for a marker that is empty or
    /// longer than 64 bytes.
    pub fn mark_read(&self, up_to: &str) -> bool {
        let now = super::driver::now();
        let marked = self
            .inner()
            .features
            .borrow_mut()
            .mark_channel_read(&self.name, up_to, now);
        self.inner().drive();
        marked
    }

    /// The other users who read up to `up_to` or further, sorted by id ("Seen by ...").
    pub fn readers(&self, up_to: &str) -> Vec<String> {
        self.inner()
            .features
            .borrow_mut()
            .readers(&self.name, up_to)
    }

    /// How far `user` read; this user with `None`.
    pub fn read_up_to(&self, user: Option<&str>) -> Option<String> {
        self.inner()
            .features
            .borrow_mut()
            .read_up_to(&self.name, user)
    }

    /// Events past this user's marker (on a channel with history: also right after a reload).
    pub fn unread_count(&self) -> u32 {
        self.inner().features.borrow_mut().unread(&self.name)
    }

    /// Every other user's marker, this user's, and the unread count.
    pub fn reads(&self) -> Reads {
        let mut features = self.inner().features.borrow_mut();
        Reads {
            readers: features.read_markers(&self.name),
            own: features.read_up_to(&self.name, None),
            unread: features.unread(&self.name),
        }
    }

    /// `callback(reads)` whenever a marker or the unread count changes.
    pub fn on_read_change(&self, callback: impl Fn(Reads) + 'static) -> Listener {
        let channel = self.clone();
        let notify = move || callback(channel.reads());
        self.inner()
            .watch(Watched::Reads, self.name.clone(), Rc::new(notify))
    }
}

/// A channel's read receipts ([`Channel::reads`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reads {
    /// Every other user's marker, by user id.
    pub readers: Vec<(String, String)>,
    /// This user's marker.
    pub own: Option<String>,
    /// Events past this user's marker.
    pub unread: u32,
}

/// A presence channel: a private channel that knows who is in it, and whether they are away.
#[derive(Clone)]
pub struct PresenceChannel(Channel);

impl Deref for PresenceChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        &self.0
    }
}

impl PresenceChannel {
    pub(super) fn new(channel: Channel) -> PresenceChannel {
        PresenceChannel(channel)
    }

    /// `callback(members)` after each (re)subscription, with every member's info as `I`.
    pub fn here<I: DeserializeOwned + 'static>(
        &self,
        callback: impl Fn(Vec<Member<I>>) + 'static,
    ) -> Listener {
        let channel = self.0.clone();
        let handler: Handler = Rc::new(move |delivery| {
            if let Delivery::Core(Payload::Members(members)) = delivery {
                callback(
                    members
                        .iter()
                        .filter_map(|m| channel.typed_member(m))
                        .collect(),
                );
            }
        });
        self.bind(Binding::Here, handler)
    }

    /// `callback(member)` when a user joins (their first connection).
    pub fn joining<I: DeserializeOwned + 'static>(
        &self,
        callback: impl Fn(Member<I>) + 'static,
    ) -> Listener {
        self.member_listener(Binding::Joining, callback)
    }

    /// `callback(member)` when a user leaves (their last connection).
    pub fn leaving<I: DeserializeOwned + 'static>(
        &self,
        callback: impl Fn(Member<I>) + 'static,
    ) -> Listener {
        self.member_listener(Binding::Leaving, callback)
    }

    fn member_listener<I: DeserializeOwned + 'static>(
        &self,
        binding: Binding,
        callback: impl Fn(Member<I>) + 'static,
    ) -> Listener {
        let channel = self.0.clone();
        let handler: Handler = Rc::new(move |delivery| {
            if let Delivery::Core(Payload::Member(member)) = delivery {
                if let Some(member) = channel.typed_member(member) {
                    callback(member);
                }
            }
        });
        self.bind(binding, handler)
    }

    /// The members now (empty until subscribed), one per user.
    pub fn members<I: DeserializeOwned>(&self) -> Vec<Member<I>> {
        let members = self.inner().core.borrow().members(&self.name).to_vec();
        members
            .iter()
            .filter_map(|m| self.0.typed_member(m))
            .collect()
    }

    /// Every present member's status.
    pub fn statuses(&self) -> Vec<(String, Status)> {
        self.inner().features.borrow_mut().statuses(&self.name)
    }

    /// `user`'s status, or this user's own with `None`.
    pub fn status(&self, user: Option<&str>) -> Option<Status> {
        self.inner()
            .features
            .borrow_mut()
            .status_of(&self.name, user)
    }

    /// `callback(statuses)` whenever a member's status changes (what they show too).
    pub fn on_status_change(&self, callback: impl Fn(Vec<(String, Status)>) + 'static) -> Listener {
        let channel = self.clone();
        let notify = move || callback(channel.statuses());
        self.inner()
            .watch(Watched::Status, self.name.clone(), Rc::new(notify))
    }

    /// What every present member shows: status (`online`, `away`, or what they set), message,
    /// device and since when they are away.
    pub fn member_statuses(&self) -> Vec<(String, MemberStatus)> {
        self.inner()
            .features
            .borrow_mut()
            .member_statuses(&self.name)
    }

    /// What `user` shows; this user with `None`.
    pub fn member_status(&self, user: Option<&str>) -> Option<MemberStatus> {
        let mut features = self.inner().features.borrow_mut();
        match user {
            None => Some(features.own_member()),
            Some(user) => features
                .member_statuses(&self.name)
                .into_iter()
                .find_map(|(id, member)| (id == user).then_some(member)),
        }
    }

    /// The members who left, with when they were last seen (ms since the epoch).
    pub fn left_members(&self) -> Vec<(String, u64)> {
        self.inner().features.borrow_mut().left_members(&self.name)
    }
}

impl Channel {
    /// `member` with its info as `I`; one that does not fit is told to the error listeners.
    fn typed_member<I: DeserializeOwned>(&self, member: &Member<JsValue>) -> Option<Member<I>> {
        match serde_wasm_bindgen::from_value(member.info.clone()) {
            Ok(info) => Some(Member {
                user_id: member.user_id.clone(),
                info,
            }),
            Err(error) => {
                let error = error.to_string();
                self.inner().bad_payload(&self.name, "member info", &error);
                None
            }
        }
    }
}

/// A payload kept as the browser parsed it.
struct Raw(JsValue);

impl<'de> serde::Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        serde_wasm_bindgen::preserve::deserialize(deserializer).map(Raw)
    }
}

/// A handler that deserializes an event's data into `T` for `callback`, or tells the error
/// listeners of `channel` (none for the user's channel) why it could not.
pub(super) fn typed_event<T: DeserializeOwned + 'static>(
    channel: &str,
    event: &str,
    inner: &Rc<Inner>,
    callback: impl Fn(T) + 'static,
) -> Handler {
    let (channel, event) = (channel.to_owned(), event.to_owned());
    let weak = Rc::downgrade(inner);
    Rc::new(move |delivery| {
        let Delivery::Core(Payload::Event { data, .. }) = delivery else {
            return;
        };
        match serde_wasm_bindgen::from_value::<T>(data.clone()) {
            Ok(value) => callback(value),
            Err(error) => {
                if let Some(inner) = weak.upgrade() {
                    inner.bad_payload(&channel, &event, &error.to_string());
                }
            }
        }
    })
}
