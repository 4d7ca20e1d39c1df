//! The IO side of the Rust API: one [`Inner`] per [`super::Echo`] holds the sans-IO core and
//! feature machines and does what they ask — the WebSocket, one timer for each, window
//! events, badge storage and the other tabs — and turns each socket frame into the core's
//! [`ServerMessage`] (what `pkg-js/src/client.ts` does for the npm package). Callbacks run only
//! while nothing is borrowed, so they may call back in.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BroadcastChannel, CloseEvent, Event, EventTarget, MessageEvent, WebSocket};

use super::{ConnectionStatus, Options};
use crate::core::{Action, Client, ListenerId, Payload, ServerMessage};
use crate::features::status::MemberStatus;
use crate::features::status::StatusConfig;
use crate::features::{ClientFeatures, Extensions, FeatureAction, Watched};
use crate::secretbox;

const TYPING_EVENT: &str = crate::features::typing::TYPING_EVENT;
const STATUS_EVENT: &str = crate::features::status::STATUS_EVENT;
const NOTIFICATION: &str = "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated";
const BADGE_COUNT: &str = "overtone.badge-count";

/// What a listener's callback is handed.
pub(crate) enum Delivery<'a> {
    /// What the core dispatched to it.
    Core(&'a Payload<JsValue>),
    /// A typed listener on `channel` could not read the payload of `event`: for the channel's
    /// error listeners.
    BadPayload { event: &'a str, error: &'a str },
}

pub(crate) type Handler = Rc<dyn Fn(Delivery<'_>)>;

/// A change callback of typing, statuses or badges.
type Watcher = (u32, Watched, String, Rc<dyn Fn()>);

/// What a [`Listener`] removes when dropped.
#[derive(Clone, Copy)]
pub(crate) enum Registration {
    Core(ListenerId),
    Watcher(u32),
    Status(u32),
}

/// A registered callback. Dropping it unbinds the callback; [`Listener::forget`] keeps it for
/// the client's life.
#[must_use = "dropping a Listener unbinds its callback at once"]
pub struct Listener {
    inner: Weak<Inner>,
    registration: Option<Registration>,
}

impl Listener {
    pub(crate) fn new(inner: &Rc<Inner>, registration: Registration) -> Listener {
        Listener {
            inner: Rc::downgrade(inner),
            registration: Some(registration),
        }
    }

    /// A listener for nothing: what binding on a channel the app already left gives.
    pub(crate) fn none() -> Listener {
        Listener {
            inner: Weak::new(),
            registration: None,
        }
    }

    /// Keeps the callback bound for as long as the client lives.
    pub fn forget(mut self) {
        self.registration = None;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (Some(inner), Some(registration)) = (self.inner.upgrade(), self.registration) {
            inner.unregister(registration);
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// Milliseconds on the page's monotonic clock.
/// Milliseconds since the Unix epoch: the clock of `away_since` and `last_seen_at`.
fn wall_now() -> u64 {
    js_sys::Date::now() as u64
}

/// A status payload (a whisper's, or the server's `overtone:member_updated`) with `status`.
fn member_status(data: &JsValue, status: String) -> MemberStatus {
    let text = |field| get(data, field).as_string().unwrap_or_default();
    MemberStatus {
        status,
        message: text("message"),
        device: text("device"),
        away_since: count(&get(data, "away_since")),
    }
}

pub(crate) fn now() -> u64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now()) as u64
}

/// A callback added to an event target, removed when dropped.
struct EventHook {
    target: EventTarget,
    event: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl EventHook {
    fn new(
        target: EventTarget,
        event: &'static str,
        inner: &Rc<Inner>,
        on: fn(&Rc<Inner>, Event),
    ) -> EventHook {
        let weak = Rc::downgrade(inner);
        let callback = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            if let Some(inner) = weak.upgrade() {
                on(&inner, event);
            }
        });
        let _ = target.add_event_listener_with_callback(event, callback.as_ref().unchecked_ref());
        EventHook {
            target,
            event,
            callback,
        }
    }
}

impl Drop for EventHook {
    fn drop(&mut self) {
        let callback = self.callback.as_ref().unchecked_ref();
        let _ = self
            .target
            .remove_event_listener_with_callback(self.event, callback);
    }
}

/// The open socket and the handlers it reports through.
struct Socket {
    socket: WebSocket,
    _hooks: [EventHook; 3],
}

#[derive(Default)]
struct Io {
    socket: Option<Socket>,
    /// The core's timer and the deadline it is for.
    timer: Option<(u64, Timeout)>,
    feature_timer: Option<(u64, Timeout)>,
    window: Vec<EventHook>,
    tabs: Option<(BroadcastChannel, EventHook)>,
}

pub(crate) struct Inner {
    pub(crate) core: RefCell<Client<JsValue>>,
    pub(crate) features: RefCell<ClientFeatures>,
    pub(crate) options: RefCell<Options>,
    handlers: RefCell<BTreeMap<u32, Handler>>,
    watchers: RefCell<Vec<Watcher>>,
    status_watchers: RefCell<Vec<(u32, Rc<dyn Fn(ConnectionStatus)>)>>,
    next_watcher: Cell<u32>,
    status: Cell<ConnectionStatus>,
    /// This user's id on each presence channel, from its auth reply.
    own_ids: RefCell<Vec<(String, String)>>,
    /// `private-encrypted-*` channels' keys, from their auth replies.
    secrets: RefCell<Vec<(String, [u8; 32])>>,
    visible: Cell<bool>,
    badge_key: String,
    io: RefCell<Io>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(socket) = self.io.get_mut().socket.take() {
            let _ = socket.socket.close();
        }
    }
}

impl Inner {
    /// The client and its window hooks; not connected yet.
    pub(crate) fn start(options: Options) -> Rc<Inner> {
        let window = web_sys::window().expect("overtone_client::echo runs in a browser window");
        let document = window.document().expect("a window has a document");
        let location = window.location();
        let page_host = location.hostname().unwrap_or_default();
        let https = location.protocol().is_ok_and(|p| p == "https:");
        let config = options.config(page_host, https);
        let badge_key = format!(
            "overtone-badges:{}",
            options.badge_scope.as_deref().unwrap_or(&options.key)
        );
        let storage = window.local_storage().ok().flatten();
        let stored = storage
            .and_then(|s| s.get_item(&badge_key).ok().flatten())
            .unwrap_or_default();
        let visible = !document.hidden();
        let status_config = StatusConfig {
            away_after_ms: options.away_after_ms,
            ..StatusConfig::default()
        };
        // Spreads the reconnects of pages started together; not a secret.
        let seed = (js_sys::Math::random() * u64::MAX as f64) as u64;
        let mut features = ClientFeatures::new(&stored, visible, status_config);
        let agent = window.navigator().user_agent().unwrap_or_default();
        let mobile = ["Mobi", "Android", "iPhone", "iPad"]
            .iter()
            .any(|m| agent.contains(m));
        let detected = if mobile { "mobile" } else { "desktop" };
        features.set_device(options.device.as_deref().unwrap_or(detected));
        let inner = Rc::new(Inner {
            core: RefCell::new(Client::new(config, seed)),
            features: RefCell::new(features),
            options: RefCell::new(options),
            handlers: RefCell::default(),
            watchers: RefCell::default(),
            status_watchers: RefCell::default(),
            next_watcher: Cell::new(0),
            status: Cell::new(ConnectionStatus::Connecting),
            own_ids: RefCell::default(),
            secrets: RefCell::default(),
            visible: Cell::new(visible),
            badge_key,
            io: RefCell::default(),
        });
        let win: &EventTarget = window.as_ref();
        let doc: &EventTarget = document.as_ref();
        let hooks = vec![
            EventHook::new(win.clone(), "online", &inner, |i, _| i.set_online(true)),
            EventHook::new(win.clone(), "offline", &inner, |i, _| i.set_online(false)),
            EventHook::new(doc.clone(), "visibilitychange", &inner, |i, _| {
                i.visibility_changed()
            }),
            // A bfcache restore: the socket may have died while the page was frozen.
            EventHook::new(win.clone(), "pageshow", &inner, |i, event| {
                let persisted = event
                    .dyn_ref::<web_sys::PageTransitionEvent>()
                    .is_some_and(|e| e.persisted());
                if persisted {
                    i.core.borrow_mut().page_shown(now());
                    i.drive();
                }
            }),
        ];
        let tabs = BroadcastChannel::new(&inner.badge_key).ok().map(|channel| {
            let hook = EventHook::new(channel.clone().into(), "message", &inner, |i, event| {
                let text = event
                    .dyn_ref::<MessageEvent>()
                    .and_then(|e| e.data().as_string());
                if let Some(text) = text {
                    i.features.borrow_mut().badges_from_tab(&text);
                    i.drive();
                }
            });
            (channel, hook)
        });
        {
            let mut io = inner.io.borrow_mut();
            io.window = hooks;
            io.tabs = tabs;
        }
        if !window.navigator().on_line() {
            inner.set_online(false);
        }
        inner
    }

    // ---- registrations ----

    pub(crate) fn register(self: &Rc<Self>, id: ListenerId, handler: Handler) -> Listener {
        self.handlers.borrow_mut().insert(id.0, handler);
        Listener::new(self, Registration::Core(id))
    }

    pub(crate) fn watch(
        self: &Rc<Self>,
        what: Watched,
        channel: String,
        callback: Rc<dyn Fn()>,
    ) -> Listener {
        let id = self.next_watcher.get();
        self.next_watcher.set(id + 1);
        self.watchers
            .borrow_mut()
            .push((id, what, channel, callback));
        Listener::new(self, Registration::Watcher(id))
    }

    pub(crate) fn watch_status(
        self: &Rc<Self>,
        callback: Rc<dyn Fn(ConnectionStatus)>,
    ) -> Listener {
        let id = self.next_watcher.get();
        self.next_watcher.set(id + 1);
        self.status_watchers.borrow_mut().push((id, callback));
        Listener::new(self, Registration::Status(id))
    }

    fn unregister(&self, registration: Registration) {
        match registration {
            Registration::Core(id) => {
                self.core.borrow_mut().unbind(id);
                self.handlers.borrow_mut().remove(&id.0);
            }
            Registration::Watcher(id) => self.watchers.borrow_mut().retain(|w| w.0 != id),
            Registration::Status(id) => self.status_watchers.borrow_mut().retain(|w| w.0 != id),
        }
    }

    /// The core dropped these listeners with their channel.
    pub(crate) fn dropped(self: &Rc<Self>, ids: Vec<ListenerId>) {
        {
            let mut handlers = self.handlers.borrow_mut();
            for id in ids {
                handlers.remove(&id.0);
            }
        }
        self.drive();
    }

    /// What the shell kept for `channel`, which the app left.
    pub(crate) fn forget_channel(&self, channel: &str) {
        self.features.borrow_mut().left(channel);
        self.own_ids
            .borrow_mut()
            .retain(|(name, _)| name != channel);
        self.secrets
            .borrow_mut()
            .retain(|(name, _)| name != channel);
    }

    /// This user's id on `channel`: its presence id, else the signed-in user's.
    pub(crate) fn own_id(&self, channel: &str) -> Option<String> {
        let own = self.own_ids.borrow();
        match own.iter().find(|(name, _)| name == channel) {
            Some((_, id)) => Some(id.clone()),
            None => self.core.borrow().user_id().map(str::to_owned),
        }
    }

    /// Calls the error listeners of `channel` about a payload a typed listener could not read.
    pub(crate) fn bad_payload(&self, channel: &str, event: &str, error: &str) {
        let ids = self
            .core
            .borrow()
            .listeners(channel, &crate::core::Binding::Error);
        for id in ids {
            let handler = self.handlers.borrow().get(&id.0).cloned();
            if let Some(handler) = handler {
                handler(Delivery::BadPayload { event, error });
            }
        }
    }

    // ---- the loop ----

    /// Performs what the core and the feature machines ask until neither asks more, then arms
    /// their timers.
    pub(crate) fn drive(self: &Rc<Self>) {
        loop {
            let action = self.core.borrow_mut().poll_action();
            if let Some(action) = action {
                self.perform(action);
                continue;
            }
            let action = self.features.borrow_mut().poll_action();
            match action {
                Some(action) => self.perform_feature(action),
                None => break,
            }
        }
        self.arm_timers();
    }

    fn perform(self: &Rc<Self>, action: Action<JsValue>) {
        match action {
            Action::OpenSocket { url } => self.open_socket(&url),
            Action::CloseSocket => self.close_socket(),
            Action::Send(frame) => {
                let text = frame.to_json(|data| {
                    JSON::stringify(data).map_or_else(|_| "null".into(), String::from)
                });
                self.send_text(&text);
            }
            Action::StateChanged { previous, current } => {
                if previous == crate::core::State::Connected {
                    self.features.borrow_mut().down();
                }
                let status = ConnectionStatus::from(current);
                if status != self.status.replace(status) {
                    let watchers: Vec<_> = self
                        .status_watchers
                        .borrow()
                        .iter()
                        .map(|w| w.1.clone())
                        .collect();
                    for watcher in watchers {
                        watcher(status);
                    }
                }
            }
            Action::Authorize { channel, socket_id } => {
                super::auth::authorize(self, channel, socket_id)
            }
            Action::AuthorizeUser { socket_id } => super::auth::authorize_user(self, socket_id),
            Action::Dispatch { listeners, payload } => {
                for id in listeners {
                    let handler = self.handlers.borrow().get(&id.0).cloned();
                    if let Some(handler) = handler {
                        handler(Delivery::Core(&payload));
                    }
                }
            }
            Action::SignedIn { .. } => {}
            Action::ServerError { code, message } => {
                self.features.borrow_mut().server_error(&message);
                let code = code.map_or_else(String::new, |c| c.to_string());
                web_sys::console::warn_2(&"overtone:".into(), &format!("{code} {message}").into());
            }
        }
    }

    fn perform_feature(self: &Rc<Self>, action: FeatureAction) {
        match action {
            FeatureAction::Whisper {
                what,
                channel,
                data,
            } => {
                let data = JSON::parse(&data).unwrap_or(JsValue::NULL);
                // A hint: not subscribed (yet, or while reconnecting) drops it.
                let _ = self
                    .core
                    .borrow_mut()
                    .whisper(&channel, what.whisper_event(), data);
            }
            FeatureAction::Changed { what, channel } => {
                let watchers: Vec<_> = self
                    .watchers
                    .borrow()
                    .iter()
                    .filter(|w| w.1 == what && (what == Watched::Badges || w.2 == channel))
                    .map(|w| w.3.clone())
                    .collect();
                for watcher in watchers {
                    watcher();
                }
            }
            FeatureAction::StoreBadges(text) => {
                // Full or disabled storage: the badges still work for this page's life.
                let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
                if let Some(storage) = storage {
                    let _ = storage.set_item(&self.badge_key, &text);
                }
            }
            FeatureAction::PostBadges(text) => {
                if let Some((tabs, _)) = &self.io.borrow().tabs {
                    let _ = tabs.post_message(&text.into());
                }
            }
            FeatureAction::Send(text) => self.send_text(&text),
        }
    }

    /// Sends a frame on the socket when it is open; otherwise it is dropped, as the core
    /// expects (it sends again what a reconnect needs).
    fn send_text(&self, text: &str) {
        let io = self.io.borrow();
        if let Some(socket) = io.socket.as_ref().map(|s| &s.socket) {
            if socket.ready_state() == WebSocket::OPEN {
                let _ = socket.send_with_str(text);
            }
        }
    }

    fn arm_timers(self: &Rc<Self>) {
        let due = self.core.borrow().poll_timeout();
        let mut io = self.io.borrow_mut();
        // Every frame moves the activity timeout a little later: a timer already due no later
        // than `due` stays (it finds nothing to do when it fires early, then re-arms).
        match (&io.timer, due) {
            (Some((at, _)), Some(due)) if *at <= due => {}
            (None, None) => {}
            _ => io.timer = due.map(|at| (at, self.timeout(at, Inner::timer_fired))),
        }
        let due = self.features.borrow().poll_timeout();
        if io.feature_timer.as_ref().map(|t| t.0) != due {
            io.feature_timer = due.map(|at| (at, self.timeout(at, Inner::feature_timer_fired)));
        }
    }

    fn timeout(self: &Rc<Self>, at: u64, fired: fn(&Rc<Inner>)) -> Timeout {
        let weak = Rc::downgrade(self);
        let delay = at.saturating_sub(now()).min(i32::MAX as u64) as u32;
        Timeout::new(delay, move || {
            if let Some(inner) = weak.upgrade() {
                fired(&inner);
            }
        })
    }

    fn timer_fired(self: &Rc<Self>) {
        let timer = self.io.borrow_mut().timer.take();
        let now = now();
        let due = self.core.borrow().poll_timeout();
        if due.is_some_and(|at| at <= now) {
            self.core.borrow_mut().handle_timeout(now);
        }
        self.drive();
        drop(timer);
    }

    fn feature_timer_fired(self: &Rc<Self>) {
        let timer = self.io.borrow_mut().feature_timer.take();
        self.features.borrow_mut().handle_timeout(now());
        self.drive();
        drop(timer);
    }

    // ---- the socket ----

    fn open_socket(self: &Rc<Self>, url: &str) {
        self.close_socket();
        let Ok(socket) = WebSocket::new(url) else {
            self.core.borrow_mut().socket_error(now());
            return self.drive();
        };
        let target: &EventTarget = socket.as_ref();
        let hooks = [
            EventHook::new(target.clone(), "message", self, |i, event| {
                let text = event
                    .dyn_ref::<MessageEvent>()
                    .and_then(|e| e.data().as_string());
                i.frame(&text.unwrap_or_default());
            }),
            EventHook::new(target.clone(), "close", self, |i, event| {
                let code = event.dyn_ref::<CloseEvent>().map_or(1006, |e| e.code());
                i.core.borrow_mut().socket_closed(now(), code);
                i.drive();
            }),
            EventHook::new(target.clone(), "error", self, |i, _| {
                i.core.borrow_mut().socket_error(now());
                i.drive();
            }),
        ];
        self.io.borrow_mut().socket = Some(Socket {
            socket,
            _hooks: hooks,
        });
    }

    fn close_socket(&self) {
        let socket = self.io.borrow_mut().socket.take();
        if let Some(socket) = socket {
            // Its hooks go with it: the core never wants to hear from it again.
            let _ = socket.socket.close();
        }
    }

    fn set_online(self: &Rc<Self>, online: bool) {
        self.core.borrow_mut().set_online(now(), online);
        self.drive();
    }

    fn visibility_changed(self: &Rc<Self>) {
        let visible = !web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.hidden());
        let now = now();
        if visible && !self.visible.get() {
            self.core.borrow_mut().page_shown(now);
        }
        self.visible.set(visible);
        self.features.borrow_mut().visibility_changed(visible, now);
        self.drive();
    }

    // ---- frames ----

    /// One frame from the socket, read as `pkg-js/src/client.ts` reads it.
    fn frame(self: &Rc<Self>, text: &str) {
        match self.read_frame(text) {
            Ok(()) => {}
            Err(why) => web_sys::console::warn_2(&"overtone:".into(), &why.into()),
        }
        self.drive();
    }

    fn read_frame(self: &Rc<Self>, text: &str) -> Result<(), &'static str> {
        const UNREADABLE: &str = "Unreadable frame from the server";
        let frame = JSON::parse(text).map_err(|_| UNREADABLE)?;
        let event = get(&frame, "event").as_string().ok_or(UNREADABLE)?;
        let mut data = get(&frame, "data");
        // The protocol double-encodes data; undo it when it is a JSON string.
        if let Some(inner) = data.as_string() {
            data = JSON::parse(&inner).unwrap_or(data);
        }
        let now = now();
        let message = match event.as_str() {
            "pusher:connection_established" => {
                let extensions = get(&data, "overtone");
                self.features.borrow_mut().established(Extensions {
                    reads: get(&extensions, "reads").is_truthy(),
                    status: get(&extensions, "status").is_truthy(),
                });
                ServerMessage::ConnectionEstablished {
                    socket_id: get(&data, "socket_id").as_string().ok_or(UNREADABLE)?,
                    activity_timeout: count(&get(&data, "activity_timeout")),
                }
            }
            "pusher:ping" => ServerMessage::Ping,
            "pusher:pong" => ServerMessage::Pong,
            "pusher:error" => ServerMessage::Error {
                code: count(&get(&data, "code")).map(clamp),
                message: get(&data, "message").as_string().unwrap_or_default(),
            },
            "pusher:signin_success" => {
                let user_data = get(&data, "user_data").as_string().unwrap_or_default();
                let user = JSON::parse(&user_data)
                    .ok()
                    .and_then(|u| id(&get(&u, "id")));
                let message = ServerMessage::SigninSuccess {
                    user_id: user.ok_or(UNREADABLE)?,
                };
                self.core.borrow_mut().handle_message(now, message);
                self.features.borrow_mut().signed_in(now);
                return Ok(());
            }
            _ => return self.channel_frame(&frame, event, data, now),
        };
        self.core.borrow_mut().handle_message(now, message);
        Ok(())
    }

    fn channel_frame(
        self: &Rc<Self>,
        frame: &JsValue,
        event: String,
        mut data: JsValue,
        now: u64,
    ) -> Result<(), &'static str> {
        const UNREADABLE: &str = "Unreadable frame from the server";
        let channel = get(frame, "channel").as_string().ok_or(UNREADABLE)?;
        let position = get(frame, "position").as_string();
        match event.as_str() {
            "pusher_internal:subscription_succeeded" => {
                let hash = get(&get(&data, "presence"), "hash");
                let presence = hash.is_object().then(|| {
                    Object::entries(hash.unchecked_ref())
                        .iter()
                        .map(|entry| {
                            let pair: js_sys::Array = entry.unchecked_into();
                            (pair.get(0).as_string().unwrap_or_default(), pair.get(1))
                        })
                        .collect::<Vec<_>>()
                });
                let ids: Option<Vec<String>> = presence
                    .as_ref()
                    .map(|list| list.iter().map(|(id, _)| id.clone()).collect());
                let recovered = get(frame, "recovered").as_bool();
                let followed = channel.starts_with("private-") || ids.is_some();
                if followed {
                    let latest = position.as_deref().unwrap_or_default();
                    self.features.borrow_mut().subscribed(&channel, latest, now);
                }
                let message = ServerMessage::SubscriptionSucceeded {
                    channel: channel.clone(),
                    presence,
                    position,
                    recovered,
                };
                self.core.borrow_mut().handle_message(now, message);
                if let Some(ids) = ids {
                    let own = self.own_id(&channel);
                    self.features.borrow_mut().presence_up(
                        &channel,
                        own,
                        ids.iter().map(String::as_str),
                        now,
                    );
                }
            }
            "pusher:subscription_error" => {
                let message = ServerMessage::SubscriptionError {
                    channel,
                    status: count(&get(&data, "status")).map(clamp),
                    error: get(&data, "error")
                        .as_string()
                        .unwrap_or_else(|| "Subscription refused".into()),
                };
                self.core.borrow_mut().handle_message(now, message);
            }
            "pusher_internal:member_added" => {
                let user = id(&get(&data, "user_id")).ok_or(UNREADABLE)?;
                let message = ServerMessage::MemberAdded {
                    channel: channel.clone(),
                    user_id: user.clone(),
                    info: get(&data, "user_info"),
                };
                self.core.borrow_mut().handle_message(now, message);
                self.features
                    .borrow_mut()
                    .member_joined(&channel, &user, now);
            }
            "pusher_internal:member_removed" => {
                let user = id(&get(&data, "user_id")).ok_or(UNREADABLE)?;
                let message = ServerMessage::MemberRemoved {
                    channel: channel.clone(),
                    user_id: user.clone(),
                };
                self.core.borrow_mut().handle_message(now, message);
                let last_seen = count(&get(&data, "last_seen_at")).unwrap_or_else(wall_now);
                self.features
                    .borrow_mut()
                    .member_left(&channel, &user, last_seen);
            }
            _ if event.starts_with("overtone:") => self.extension_frame(&channel, &event, &data),
            _ => {
                if let Some(position) = &position {
                    self.features.borrow_mut().read_event(&channel, position);
                }
                if channel.starts_with("private-encrypted-") && !event.starts_with("pusher") {
                    data = self
                        .decrypt(&channel, &data)
                        .ok_or("Could not decrypt an event")?;
                }
                let sender = id(&get(frame, "user_id"));
                let user = sender.clone().or_else(|| id(&get(&data, "user_id")));
                self.features_hear(&channel, &event, &data, user.as_deref(), now);
                let message = ServerMessage::Event {
                    channel,
                    event,
                    data,
                    user_id: sender,
                    position,
                };
                self.core.borrow_mut().handle_message(now, message);
            }
        }
        Ok(())
    }

    /// An `overtone:*` frame (server/README.md, "Wire extensions"): read markers, members'
    /// statuses. Malformed parts are skipped.
    fn extension_frame(&self, channel: &str, event: &str, data: &JsValue) {
        let mut features = self.features.borrow_mut();
        let entries = |value: JsValue| -> Vec<(String, JsValue)> {
            if !value.is_object() {
                return Vec::new();
            }
            Object::entries(value.unchecked_ref())
                .iter()
                .map(|entry| {
                    let pair: js_sys::Array = entry.unchecked_into();
                    (pair.get(0).as_string().unwrap_or_default(), pair.get(1))
                })
                .collect()
        };
        let status_of = |member: &JsValue| get(member, "status").as_string().unwrap_or_default();
        match event {
            "overtone:reads" => {
                let own = self.own_id(channel);
                for (user, up_to) in entries(get(data, "reads")) {
                    if let Some(up_to) = up_to.as_string() {
                        features.reads_seen(channel, &user, &up_to, own.as_deref());
                    }
                }
            }
            "overtone:members" => {
                for (user, member) in entries(get(data, "members")) {
                    let update = member_status(&member, status_of(&member));
                    features.member_status(channel, &user, update, wall_now());
                }
                for (user, at) in entries(get(data, "left")) {
                    if let Some(at) = count(&at) {
                        features.left_before(channel, &user, at);
                    }
                }
            }
            "overtone:member_updated" => {
                if let Some(user) = id(&get(data, "user_id")) {
                    let update = member_status(data, status_of(data));
                    features.member_status(channel, &user, update, wall_now());
                }
            }
            _ => {}
        }
    }

    /// What the typing, status and badge machines hear of an event.
    fn features_hear(
        &self,
        channel: &str,
        event: &str,
        data: &JsValue,
        user: Option<&str>,
        now: u64,
    ) {
        let mut features = self.features.borrow_mut();
        match (event, user) {
            (TYPING_EVENT, Some(user)) => {
                let typing = get(data, "typing").is_truthy();
                features.typing_seen(channel, user, typing, now);
            }
            (STATUS_EVENT, Some(user)) => {
                if let Some(status) = get(data, "status").as_string() {
                    features.member_status(channel, user, member_status(data, status), wall_now());
                }
            }
            (NOTIFICATION, _) => {
                if let Some(notification) = id(&get(data, "id")) {
                    let category = ["category", "type"]
                        .iter()
                        .find_map(|field| get(data, field).as_string())
                        .unwrap_or_else(|| "default".into());
                    features.notification(&notification, &category);
                }
            }
            (BADGE_COUNT, _) => {
                let category = get(data, "category").as_string();
                if let (Some(category), Some(n)) = (category, count(&get(data, "count"))) {
                    features.badge_count(&category, n.min(u32::MAX.into()) as u32);
                }
            }
            _ => {}
        }
    }

    /// A `private-encrypted-` event's data, opened with the channel's key.
    fn decrypt(&self, channel: &str, data: &JsValue) -> Option<JsValue> {
        let secrets = self.secrets.borrow();
        let (_, key) = secrets.iter().find(|(name, _)| name == channel)?;
        let nonce = secretbox::base64_decode(&get(data, "nonce").as_string()?)?;
        let ciphertext = secretbox::base64_decode(&get(data, "ciphertext").as_string()?)?;
        let plain = secretbox::secretbox_open(key, &nonce, &ciphertext)?;
        JSON::parse(std::str::from_utf8(&plain).ok()?).ok()
    }

    /// Keeps what an auth reply says beyond the signature.
    pub(crate) fn auth_extras(
        &self,
        channel: &str,
        channel_data: Option<&str>,
        shared_secret: Option<&str>,
    ) {
        let user = channel_data
            .and_then(|text| JSON::parse(text).ok())
            .and_then(|data| id(&get(&data, "user_id")));
        if let Some(user) = user {
            let mut own = self.own_ids.borrow_mut();
            own.retain(|(name, _)| name != channel);
            own.push((channel.to_owned(), user));
        }
        let key = shared_secret
            .and_then(secretbox::base64_decode)
            .and_then(|key| <[u8; 32]>::try_from(key).ok());
        if let Some(key) = key {
            let mut secrets = self.secrets.borrow_mut();
            secrets.retain(|(name, _)| name != channel);
            secrets.push((channel.to_owned(), key));
        }
    }
}

/// `value[key]`, `undefined` when `value` is not an object.
pub(crate) fn get(value: &JsValue, key: &str) -> JsValue {
    if !value.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A user id as the core keeps it: strings as they are, integers in decimal.
pub(crate) fn id(value: &JsValue) -> Option<String> {
    if let Some(text) = value.as_string() {
        return (!text.is_empty()).then_some(text);
    }
    let n = value.as_f64()?;
    (n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0).then(|| (n as i64).to_string())
}

/// A non-negative whole number.
fn count(value: &JsValue) -> Option<u64> {
    value.as_f64().filter(|n| *n >= 0.0).map(|n| n as u64)
}

fn clamp(n: u64) -> u16 {
    n.min(u16::MAX.into()) as u16
}
