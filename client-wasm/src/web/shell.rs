//! The shell's state and the loop that runs the sans-IO machines: it feeds the core and the
//! feature machines with what the page's JavaScript reports (socket frames, closes and errors,
//! window events, the one timer, the user's other tabs), performs their actions through one
//! outbound JavaScript function, `out(kind, a, b)` (socket, timer, auth requests, state, errors,
//! badge storage and tabs; see [`Out`]), calls listeners, and queues every call into JavaScript
//! until the state is no longer borrowed, so a callback may call back into the client.
//! The JavaScript side of `out` is `pkg-js/src/io.ts` (and the browser tests' own).

use crate::prelude::*;

use alloc::boxed::Box;
use core::cell::RefCell;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::parse::{get, id_string, parse_json, parse_message, to_json};
use crate::core::{
    Action, Binding, ChannelAuth, Client, Config, ListenerId, Payload, ServerMessage, State,
};
use crate::features::badges::{BadgeAction, Badges};
use crate::features::status::{AwayStatus, Status, StatusConfig, STATUS_EVENT};
use crate::features::typing::{Typing, TypingConfig, TYPING_EVENT};
use crate::features::{refuses_client_events, Action as FeatureAction};
#[cfg(feature = "encryption")]
use crate::secretbox;

/// Why a `private-encrypted-` channel fails on the build without decryption.
#[cfg(not(feature = "encryption"))]
pub(crate) const NO_ENCRYPTION: &str =
    "private-encrypted channels need the encryption build: import Echo from 'overtone/with-encryption'";

/// The wire name of Laravel's notification event (`notification(cb)`), which feeds the badges.
const NOTIFICATION_WIRE: &str = "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated";
/// An absolute unread count from the server, `{category, count}` (Laravel: `broadcastAs()`).
pub(crate) const BADGE_COUNT_EVENT: &str = "overtone.badge-count";

/// What `out(kind, a, b)` is asked to do; `kind` is the number.
#[derive(Clone, Copy)]
pub(crate) enum Out {
    /// `(url)`: close any socket, open one; report with `frame`, `closed`, `socketError`.
    Open = 0,
    /// `(text)` on the open socket (dropped when it is not open).
    Send = 1,
    /// Close the socket, without reporting it.
    Close = 2,
    /// `(delayMs)`: replace the timer (`-1`: none); report with `timer`.
    Timer = 3,
    /// `(state)`, the core's state name.
    State = 4,
    /// `(channel, socketId)`: answer with `authorized` or `authorizationFailed`.
    Authorize = 5,
    /// `(socketId)`: answer with `userAuthorized`.
    AuthorizeUser = 6,
    /// `(code | undefined, message)`: a `pusher:error` or a refused frame.
    Error = 7,
    /// `(text)`: the badges to keep (localStorage).
    StoreBadges = 8,
    /// `(text)`: a badge change for the user's other tabs (BroadcastChannel).
    PostBadges = 9,
}

/// What a change callback registered with `watch` follows.
#[derive(PartialEq)]
pub(crate) enum Watch {
    Typing(String),
    Status(String),
    Badges,
}

pub(crate) struct Shell {
    core: Client<JsValue>,
    out: Function,
    /// The deadline the armed timer is for.
    timer: Option<u64>,
    /// Whether the page is visible, as last reported.
    visible: bool,
    callbacks: Vec<(ListenerId, Function)>,
    /// `private-encrypted-*` channels' keys, from their auth replies.
    #[cfg(feature = "encryption")]
    secrets: Vec<(String, [u8; 32])>,
    typing: Vec<(String, Typing)>,
    statuses: Vec<(String, AwayStatus)>,
    status_config: StatusConfig,
    badges: Option<Badges>,
    watchers: Vec<(u32, Watch, Function)>,
    next_watch: u32,
    /// JavaScript calls to make once the state is released.
    calls: Vec<(Function, Array)>,
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(value: &JsValue);
}

/// Milliseconds on the page's monotonic clock.
pub(crate) fn now() -> u64 {
    performance_now() as u64
}

/// Runs `f` on the shell, performs what it caused, then makes the queued JavaScript calls.
pub(crate) fn run<R>(shell: &RefCell<Shell>, f: impl FnOnce(&mut Shell) -> R) -> R {
    let Ok(mut state) = shell.try_borrow_mut() else {
        // Unreachable by construction (no JavaScript runs while borrowed); never panic.
        wasm_bindgen::throw_str("overtone: re-entrant call");
    };
    let result = f(&mut state);
    drop(state);
    finish(shell);
    result
}

/// The non-generic half of [`run`], kept out of line so each entry point stays small.
#[inline(never)]
fn finish(shell: &RefCell<Shell>) {
    let calls = {
        let mut state = shell.borrow_mut();
        state.flush();
        core::mem::take(&mut state.calls)
    };
    for (function, args) in calls {
        if let Err(error) = function.apply(&JsValue::NULL, &args) {
            console_error(&error);
        }
    }
}

fn args(values: &[&JsValue]) -> Array {
    values.iter().copied().collect()
}

impl Shell {
    /// `badges`: the stored badges' text when the page keeps badges (`None`: no badges).
    pub(crate) fn new(
        config: Config,
        status_config: StatusConfig,
        badges: Option<String>,
        visible: bool,
        out: Function,
    ) -> &'static RefCell<Shell> {
        let seed = (js_sys::Math::random() * 9e15) as u64;
        Box::leak(Box::new(RefCell::new(Shell {
            core: Client::new(config, seed),
            out,
            timer: None,
            visible,
            callbacks: Vec::new(),
            #[cfg(feature = "encryption")]
            secrets: Vec::new(),
            typing: Vec::new(),
            statuses: Vec::new(),
            status_config,
            badges: badges.map(|text| match text.as_str() {
                "" => Badges::new(),
                text => Badges::restore(text),
            }),
            watchers: Vec::new(),
            next_watch: 0,
            calls: Vec::new(),
        })))
    }

    /// Queues `out(kind, a, b)`.
    fn out(&mut self, kind: Out, a: JsValue, b: JsValue) {
        let args = args(&[&(kind as u32).into(), &a, &b]);
        self.calls.push((self.out.clone(), args));
    }

    pub(crate) fn core(&mut self) -> &mut Client<JsValue> {
        &mut self.core
    }

    // ---- window and socket inputs ----

    /// `visibilitychange`: `visible` is `!document.hidden`.
    pub(crate) fn visibility_changed(&mut self, now: u64, visible: bool) {
        self.visible = visible;
        if visible {
            self.core.page_shown(now);
        }
        for (_, status) in &mut self.statuses {
            status.visibility_changed(visible, now);
        }
    }

    /// The other tabs' badge change.
    pub(crate) fn badges_remote(&mut self, text: &str) {
        if let Some(badges) = &mut self.badges {
            badges.apply_remote(text);
        }
    }

    /// A frame the page parsed (`JSON.parse`, `data` decoded when it was a JSON string): its
    /// `event`, `channel`, `data`, and the frame itself for the rest.
    pub(crate) fn on_frame(
        &mut self,
        event: Option<String>,
        channel: Option<String>,
        data: JsValue,
        frame: &JsValue,
    ) {
        let Some(mut message) = parse_message(event, channel, data, frame) else {
            return self.error(None, "Unreadable frame from the server");
        };
        let now = now();
        if let ServerMessage::Event {
            channel,
            event,
            data,
            ..
        } = &mut message
        {
            if channel.starts_with("private-encrypted-") && !event.starts_with("pusher") {
                #[cfg(feature = "encryption")]
                match self.decrypt(channel, data) {
                    Some(plain) => *data = plain,
                    None => return self.error(None, "Could not decrypt an event"),
                }
                #[cfg(not(feature = "encryption"))]
                {
                    let _ = data;
                    return self.error(None, NO_ENCRYPTION);
                }
            }
        }
        let observed = Observed::of(&message);
        self.core.handle_message(now, message);
        if let Some(observed) = observed {
            self.observe(observed, now);
        }
    }

    #[cfg(feature = "encryption")]
    fn decrypt(&self, channel: &str, data: &JsValue) -> Option<JsValue> {
        let (_, key) = self.secrets.iter().find(|(name, _)| name == channel)?;
        let nonce = secretbox::base64_decode(&get(data, "nonce").as_string()?)?;
        let ciphertext = secretbox::base64_decode(&get(data, "ciphertext").as_string()?)?;
        let plain = secretbox::secretbox_open(key, &nonce, &ciphertext)?;
        parse_json(core::str::from_utf8(&plain).ok()?)
    }

    /// The timer fired.
    pub(crate) fn timer_fired(&mut self, now: u64) {
        self.timer = None;
        self.timeout(now);
    }

    fn timeout(&mut self, now: u64) {
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
        }
        for (_, typing) in &mut self.typing {
            if typing.poll_timeout().is_some_and(|at| at <= now) {
                typing.handle_timeout(now);
            }
        }
        for (_, status) in &mut self.statuses {
            if status.poll_timeout().is_some_and(|at| at <= now) {
                status.handle_timeout(now);
            }
        }
    }

    // ---- performing what the machines ask ----

    /// Drains every machine's actions until none is left, then re-arms the timer.
    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.core.poll_action() {
                progressed = true;
                self.perform(action);
            }
            let mut feature_actions = Vec::new();
            for (channel, typing) in &mut self.typing {
                while let Some(action) = typing.poll_action() {
                    feature_actions.push((Watch::Typing(channel.clone()), action));
                }
            }
            for (channel, status) in &mut self.statuses {
                while let Some(action) = status.poll_action() {
                    feature_actions.push((Watch::Status(channel.clone()), action));
                }
            }
            for (watch, action) in feature_actions {
                progressed = true;
                self.perform_feature(watch, action);
            }
            while let Some(action) = self.badges.as_mut().and_then(|b| b.poll_action()) {
                progressed = true;
                self.perform_badges(action);
            }
            if !progressed {
                break;
            }
        }
        self.arm_timer();
    }

    fn perform(&mut self, action: Action<JsValue>) {
        match action {
            Action::OpenSocket { url } => self.out(Out::Open, url.into(), JsValue::UNDEFINED),
            Action::CloseSocket => self.out(Out::Close, JsValue::UNDEFINED, JsValue::UNDEFINED),
            Action::Send(frame) => {
                let text = frame.to_json(to_json);
                self.out(Out::Send, text.into(), JsValue::UNDEFINED);
            }
            Action::StateChanged { previous, current } => {
                if previous == State::Connected {
                    self.typing.iter_mut().for_each(|(_, t)| t.reset());
                    self.statuses.iter_mut().for_each(|(_, s)| s.unsubscribed());
                }
                self.out(Out::State, current.as_str().into(), JsValue::UNDEFINED);
            }
            Action::Authorize { channel, socket_id } => {
                self.out(Out::Authorize, channel.into(), socket_id.into());
            }
            Action::AuthorizeUser { socket_id } => {
                self.out(Out::AuthorizeUser, socket_id.into(), JsValue::UNDEFINED);
            }
            Action::Dispatch { listeners, payload } => {
                let call = payload_args(payload);
                for id in listeners {
                    if let Some((_, callback)) = self.callbacks.iter().find(|(l, _)| *l == id) {
                        self.calls.push((callback.clone(), call.clone()));
                    }
                }
            }
            // The user channel's events reach user listeners; the id is in `userId()`.
            Action::SignedIn { .. } => {}
            Action::ServerError { code, message } => {
                if refuses_client_events(&message) {
                    self.typing
                        .iter_mut()
                        .for_each(|(_, t)| t.client_events_refused());
                    self.statuses
                        .iter_mut()
                        .for_each(|(_, s)| s.client_events_refused());
                }
                self.error(code, &message);
            }
        }
    }

    fn perform_feature(&mut self, watch: Watch, action: FeatureAction) {
        match action {
            FeatureAction::SendClientEvent { event, data } => {
                let channel = match &watch {
                    Watch::Typing(c) | Watch::Status(c) => c,
                    Watch::Badges => return,
                };
                let name = event.strip_prefix("client-").unwrap_or(event);
                if let Some(payload) = parse_json(&data) {
                    // Not subscribed (yet): the machines re-announce after subscribing.
                    let _ = self.core.whisper(channel, name, payload);
                }
            }
            FeatureAction::Changed => self.notify(&watch),
        }
    }

    fn perform_badges(&mut self, action: BadgeAction) {
        match action {
            BadgeAction::Changed => {
                let Some(badges) = &self.badges else { return };
                // Full or disabled storage: the badges still work for this page's life.
                let text = badges.encode();
                self.out(Out::StoreBadges, text.into(), JsValue::UNDEFINED);
                self.notify(&Watch::Badges);
            }
            BadgeAction::Broadcast(message) => {
                self.out(Out::PostBadges, message.into(), JsValue::UNDEFINED);
            }
        }
    }

    fn arm_timer(&mut self) {
        let due = [self.core.poll_timeout()]
            .into_iter()
            .chain(self.typing.iter().map(|(_, t)| t.poll_timeout()))
            .chain(self.statuses.iter().map(|(_, s)| s.poll_timeout()))
            .flatten()
            .min();
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
            at.saturating_sub(now()).min(i32::MAX as u64) as f64
        });
        self.out(Out::Timer, delay.into(), JsValue::UNDEFINED);
    }

    fn error(&mut self, code: Option<u16>, message: &str) {
        let code = code.map_or(JsValue::UNDEFINED, JsValue::from);
        self.out(Out::Error, code, message.into());
    }

    // ---- listeners ----

    pub(crate) fn add_callback(&mut self, id: ListenerId, callback: Function) -> u32 {
        self.callbacks.push((id, callback));
        id.0
    }

    /// Forgets the callbacks of listeners the core dropped.
    pub(crate) fn drop_callbacks(&mut self, ids: &[ListenerId]) {
        self.callbacks.retain(|(id, _)| !ids.contains(id));
    }

    pub(crate) fn unbind(&mut self, id: ListenerId) {
        self.core.unbind(id);
        self.drop_callbacks(&[id]);
    }

    /// Removes the listeners bound with `binding` on `channel`, only those calling `callback`
    /// when given (Echo's `stopListening(event, callback?)`).
    pub(crate) fn unbind_matching(
        &mut self,
        channel: &str,
        binding: &Binding,
        callback: Option<&Function>,
    ) {
        for id in self.core.listeners(channel, binding) {
            if callback.is_none_or(|c| self.callbacks.iter().any(|(l, f)| *l == id && f == c)) {
                self.unbind(id);
            }
        }
    }

    /// The channel was left: its listeners and feature machines go with it.
    pub(crate) fn left(&mut self, dropped: Vec<ListenerId>) {
        self.drop_callbacks(&dropped);
        let core = &self.core;
        let kept = |name: &String| core.has_channel(name);
        self.typing.retain(|(name, _)| kept(name));
        self.statuses.retain(|(name, _)| kept(name));
        #[cfg(feature = "encryption")]
        self.secrets.retain(|(name, _)| kept(name));
        self.watchers.retain(|(_, watch, _)| match watch {
            Watch::Typing(name) | Watch::Status(name) => kept(name),
            Watch::Badges => true,
        });
    }

    pub(crate) fn authorized(
        &mut self,
        channel: &str,
        socket_id: &str,
        auth: ChannelAuth,
        shared_secret: Option<String>,
    ) {
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

    // ---- features ----

    fn observe(&mut self, observed: Observed, now: u64) {
        match observed {
            Observed::PresenceUp(channel) => {
                let me = self.core.me(&channel).map(|m| m.user_id.clone());
                if !self.statuses.iter().any(|(name, _)| *name == channel) {
                    let status = AwayStatus::new(self.status_config, me, self.visible, now);
                    self.statuses.push((channel.clone(), status));
                }
                let ids: Vec<String> = self
                    .core
                    .members(&channel)
                    .iter()
                    .map(|m| m.user_id.clone())
                    .collect();
                if let Some(status) = self.status_mut(&channel) {
                    status.subscribed(ids.iter().map(String::as_str), now);
                }
            }
            Observed::Joined(channel, user) => {
                if let Some(status) = self.status_mut(&channel) {
                    status.member_joined(&user, now);
                }
            }
            Observed::Left(channel, user) => {
                if let Some(status) = self.status_mut(&channel) {
                    status.member_left(&user);
                }
                if let Some(typing) = self.typing_mut(&channel) {
                    typing.member_left(&user);
                }
            }
            Observed::Typing {
                channel,
                user,
                typing,
            } => {
                if let Some(machine) = self.typing_mut(&channel) {
                    machine.received(&user, typing, now);
                }
            }
            Observed::Status {
                channel,
                user,
                status,
            } => {
                if let Some(machine) = self.status_mut(&channel) {
                    machine.received(&user, status);
                }
            }
            Observed::Notification { id, category } => {
                if let Some(badges) = &mut self.badges {
                    badges.notification(&id, &category);
                }
            }
            Observed::BadgeCount { category, count } => {
                if let Some(badges) = &mut self.badges {
                    badges.set_count(&category, count);
                }
            }
        }
    }

    fn status_mut(&mut self, channel: &str) -> Option<&mut AwayStatus> {
        self.statuses
            .iter_mut()
            .find(|(name, _)| name == channel)
            .map(|(_, s)| s)
    }

    fn typing_mut(&mut self, channel: &str) -> Option<&mut Typing> {
        self.typing
            .iter_mut()
            .find(|(name, _)| name == channel)
            .map(|(_, t)| t)
    }

    /// The channel's typing machine, made on first use: own id from presence, else sign-in.
    pub(crate) fn typing(&mut self, channel: &str) -> &mut Typing {
        if let Some(index) = self.typing.iter().position(|(name, _)| name == channel) {
            return &mut self.typing[index].1;
        }
        let me = self.core.me(channel).map(|m| m.user_id.clone());
        let own = me.or_else(|| self.core.user_id().map(str::to_owned));
        self.typing.push((
            channel.to_owned(),
            Typing::new(TypingConfig::default(), own),
        ));
        let last = self.typing.len() - 1;
        &mut self.typing[last].1
    }

    /// `[{id, info?}]` of who is typing, `info` from the presence member list when known.
    pub(crate) fn typing_users(&self, channel: &str) -> Array {
        let Some((_, typing)) = self.typing.iter().find(|(name, _)| name == channel) else {
            return Array::new();
        };
        let members = self.core.members(channel);
        typing
            .typing_users()
            .map(|id| {
                let user = Object::new();
                let _ = Reflect::set(&user, &"id".into(), &id.into());
                if let Some(member) = members.iter().find(|m| m.user_id == id) {
                    let _ = Reflect::set(&user, &"info".into(), &member.info);
                }
                JsValue::from(user)
            })
            .collect()
    }

    /// `{userId: "online" | "away"}` of a presence channel's members.
    pub(crate) fn statuses(&self, channel: &str) -> Object {
        let object = Object::new();
        if let Some((_, status)) = self.statuses.iter().find(|(name, _)| name == channel) {
            for (user, value) in status.statuses() {
                let _ = Reflect::set(&object, &user.into(), &value.as_str().into());
            }
        }
        object
    }

    pub(crate) fn status(&self, channel: &str, user: Option<&str>) -> Option<String> {
        let (_, status) = self.statuses.iter().find(|(name, _)| name == channel)?;
        let value = match user {
            Some(user) => status.status_of(user)?,
            None => status.own_status(),
        };
        Some(value.as_str().to_owned())
    }

    pub(crate) fn badges(&mut self) -> Option<&mut Badges> {
        self.badges.as_mut()
    }

    /// `{category: count}` of the unread badges.
    pub(crate) fn badge_counts(&self) -> Object {
        let object = Object::new();
        if let Some(badges) = &self.badges {
            for (category, count) in badges.counts() {
                let _ = Reflect::set(&object, &category.into(), &count.into());
            }
        }
        object
    }

    pub(crate) fn watch(&mut self, watch: Watch, callback: Function) -> u32 {
        let id = self.next_watch;
        self.next_watch = self.next_watch.wrapping_add(1);
        self.watchers.push((id, watch, callback));
        id
    }

    pub(crate) fn unwatch(&mut self, id: u32) {
        self.watchers.retain(|(w, _, _)| *w != id);
    }

    /// Queues the change callbacks following `watch`, with the new state.
    fn notify(&mut self, watch: &Watch) {
        let value: JsValue = match watch {
            Watch::Typing(channel) => self.typing_users(channel).into(),
            Watch::Status(channel) => self.statuses(channel).into(),
            Watch::Badges => self.badge_counts().into(),
        };
        for (_, _, callback) in self.watchers.iter().filter(|(_, w, _)| w == watch) {
            self.calls.push((callback.clone(), args(&[&value])));
        }
    }
}

/// The arguments listeners receive, as laravel-echo passes them.
fn payload_args(payload: Payload<JsValue>) -> Array {
    match payload {
        Payload::Event { data, user_id } => match user_id {
            Some(user_id) => {
                let meta = Object::new();
                let _ = Reflect::set(&meta, &"user_id".into(), &user_id.into());
                args(&[&data, &meta])
            }
            None => args(&[&data]),
        },
        Payload::NamedEvent { event, data } => args(&[&event.into(), &data]),
        Payload::Subscribed => Array::new(),
        Payload::Members(members) => {
            let infos: Array = members.into_iter().map(|m| m.info).collect();
            args(&[&infos])
        }
        Payload::Member(member) => args(&[&member.info]),
        Payload::SubscriptionError { status, error } => {
            let value = Object::new();
            let _ = Reflect::set(&value, &"type".into(), &"AuthError".into());
            let _ = Reflect::set(&value, &"error".into(), &error.into());
            let status = status.map_or(JsValue::NULL, JsValue::from);
            let _ = Reflect::set(&value, &"status".into(), &status);
            args(&[&value])
        }
    }
}

/// What the feature machines need to hear of a frame, taken before the core consumes it.
enum Observed {
    PresenceUp(String),
    Joined(String, String),
    Left(String, String),
    Typing {
        channel: String,
        user: String,
        typing: bool,
    },
    Status {
        channel: String,
        user: String,
        status: Status,
    },
    Notification {
        id: String,
        category: String,
    },
    BadgeCount {
        category: String,
        count: u32,
    },
}

impl Observed {
    fn of(message: &ServerMessage<JsValue>) -> Option<Observed> {
        Some(match message {
            ServerMessage::SubscriptionSucceeded {
                channel,
                presence: Some(_),
                ..
            } => Observed::PresenceUp(channel.clone()),
            ServerMessage::MemberAdded {
                channel, user_id, ..
            } => Observed::Joined(channel.clone(), user_id.clone()),
            ServerMessage::MemberRemoved { channel, user_id } => {
                Observed::Left(channel.clone(), user_id.clone())
            }
            ServerMessage::Event {
                channel,
                event,
                data,
                user_id,
                ..
            } => {
                // The server's user id on presence channels, else the one in the payload.
                let user = || user_id.clone().or_else(|| id_string(&get(data, "user_id")));
                match event.as_str() {
                    TYPING_EVENT => Observed::Typing {
                        channel: channel.clone(),
                        user: user()?,
                        typing: get(data, "typing").is_truthy(),
                    },
                    STATUS_EVENT => Observed::Status {
                        channel: channel.clone(),
                        user: user()?,
                        status: Status::parse(&get(data, "status").as_string()?)?,
                    },
                    NOTIFICATION_WIRE => {
                        let category = ["category", "type"]
                            .iter()
                            .find_map(|key| get(data, key).as_string())
                            .unwrap_or_else(|| "default".into());
                        Observed::Notification {
                            id: id_string(&get(data, "id"))?,
                            category,
                        }
                    }
                    BADGE_COUNT_EVENT => Observed::BadgeCount {
                        category: get(data, "category").as_string()?,
                        count: get(data, "count").as_f64().filter(|n| *n >= 0.0)? as u32,
                    },
                    _ => return None,
                }
            }
            _ => return None,
        })
    }
}
