//! The browser shell: [`Client`], the one class JavaScript sees (the TypeScript layer in
//! `pkg-js/src` wraps it in laravel-echo's API). It owns nothing but a handle on the
//! [`shell::Shell`], which runs the sans-IO core and feature machines. The page's JavaScript
//! does the IO (the socket, the timer, window events, storage and tabs: `pkg-js/src/io.ts`) and
//! the JSON: everything goes out through one function, `out` (see [`shell::Out`]), and comes in
//! through [`Client::call`]. Channel auth and user sign-in go out the same way (the TypeScript
//! layer does the `fetch`), answered with `authorized`, `authorizationFailed` and
//! `userAuthorized`.

use crate::prelude::*;

mod parse;
mod shell;

use core::cell::RefCell;

use js_sys::{Array, Function, Object};
use wasm_bindgen::prelude::*;

use crate::core::{Binding, ChannelAuth, Config, ListenerId};
use crate::features::badges::ReadTarget;
use crate::features::status::StatusConfig;
use parse::{get, id_string, parse_json};
use shell::{now, run, Shell, Watch};

/// A Pusher-protocol connection with its channels, listeners and features.
#[wasm_bindgen]
pub struct Client {
    /// Never freed: a page keeps its client for its life, and code to drop a whole client
    /// would be wasm bytes for nothing.
    shell: &'static RefCell<Shell>,
}

fn option_string(options: &JsValue, key: &str) -> Option<String> {
    get(options, key).as_string()
}

fn option_number(options: &JsValue, key: &str) -> Option<u64> {
    get(options, key)
        .as_f64()
        .filter(|n| *n >= 0.0)
        .map(|n| n as u64)
}

/// The listener kind names `bind` takes, and their bindings.
fn binding(kind: &str, event: Option<String>) -> Result<Binding, JsValue> {
    Ok(match (kind, event) {
        ("event", Some(event)) => Binding::Event(event),
        ("all", _) => Binding::AllEvents,
        ("subscribed", _) => Binding::Subscribed,
        ("error", _) => Binding::Error,
        ("here", _) => Binding::Here,
        ("joining", _) => Binding::Joining,
        ("leaving", _) => Binding::Leaving,
        _ => return Err(JsValue::from_str("unknown listener kind")),
    })
}

fn error_value(error: crate::core::Error) -> JsValue {
    JsValue::from_str(error.message())
}

#[wasm_bindgen]
impl Client {
    /// `options`: `{key, host, wsPort, wssPort, forceTLS, path?, namespace (string | null),
    /// awayAfterMs?, badges? (the stored badges' text, `""` for none: keeps badges), hidden?
    /// (`document.hidden`)}`. `out(kind, a, b)`: see [`shell::Out`]. Report `offline` with
    /// `online(false)` after constructing.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, out: Function) -> Result<Client, JsValue> {
        let key = option_string(&options, "key").ok_or_else(|| JsValue::from_str("missing key"))?;
        let host = option_string(&options, "host").unwrap_or_else(|| "localhost".into());
        let mut config = Config::new(key, host);
        let port = |name| option_number(&options, name).and_then(|p| u16::try_from(p).ok());
        config.ws_port = port("wsPort").unwrap_or(config.ws_port);
        config.wss_port = port("wssPort").unwrap_or(config.wss_port);
        config.force_tls = get(&options, "forceTLS").is_truthy();
        config.path = option_string(&options, "path").unwrap_or_default();
        config.namespace = option_string(&options, "namespace");
        let mut status = StatusConfig::default();
        status.away_after_ms =
            option_number(&options, "awayAfterMs").unwrap_or(status.away_after_ms);
        let badges = option_string(&options, "badges");
        let visible = !get(&options, "hidden").is_truthy();
        Ok(Client {
            shell: Shell::new(config, status, badges, visible, out),
        })
    }

    /// The one entry point besides the constructor: operation `op` (an index into `OPS` in
    /// `pkg-js/src/client.ts`, which names them as the methods below) with up to five arguments.
    /// One export instead of one per method keeps the wasm and its glue small.
    pub fn call(
        &self,
        op: u32,
        a: JsValue,
        b: JsValue,
        c: JsValue,
        d: JsValue,
        e: JsValue,
    ) -> Result<JsValue, JsValue> {
        let text = |v: &JsValue| v.as_string().unwrap_or_default();
        let id = |v: &JsValue| v.as_f64().unwrap_or(-1.0) as u32;
        let function = |v: JsValue| v.dyn_into::<Function>().ok();
        Ok(match op {
            0 => {
                self.connect();
                JsValue::UNDEFINED
            }
            1 => {
                self.disconnect();
                JsValue::UNDEFINED
            }
            2 => self.state().into(),
            3 => self.socket_id().into(),
            4 => self.user_id().into(),
            5 => {
                self.subscribe(&text(&a))?;
                JsValue::UNDEFINED
            }
            6 => {
                self.leave_channel(&text(&a));
                JsValue::UNDEFINED
            }
            7 => {
                self.leave_all();
                JsValue::UNDEFINED
            }
            8 => {
                let callback = function(d).ok_or_else(|| JsValue::from_str("not a function"))?;
                self.bind(&text(&a), &text(&b), c.as_string(), callback)?
                    .into()
            }
            9 => {
                let callback = function(b).ok_or_else(|| JsValue::from_str("not a function"))?;
                self.bind_user(&text(&a), callback).into()
            }
            10 => {
                self.unbind(id(&a));
                JsValue::UNDEFINED
            }
            11 => {
                self.unbind_matching(&text(&a), &text(&b), c.as_string(), function(d))?;
                JsValue::UNDEFINED
            }
            12 => {
                self.whisper(&text(&a), &text(&b), c)?;
                JsValue::UNDEFINED
            }
            13 => self.members(&text(&a)).into(),
            14 => {
                self.authorized(&text(&a), &text(&b), text(&c), d.as_string(), e.as_string());
                JsValue::UNDEFINED
            }
            15 => {
                let status = c.as_f64().map(|n| n as u16);
                self.authorization_failed(&text(&a), &text(&b), status, text(&d));
                JsValue::UNDEFINED
            }
            16 => {
                self.signin();
                JsValue::UNDEFINED
            }
            17 => {
                self.user_authorized(&text(&a), text(&b), text(&c));
                JsValue::UNDEFINED
            }
            18 => {
                self.typing(&text(&a));
                JsValue::UNDEFINED
            }
            19 => {
                self.stop_typing(&text(&a));
                JsValue::UNDEFINED
            }
            20 => self.typing_users(&text(&a)).into(),
            21 => self.statuses(&text(&a)).into(),
            22 => self.status(&text(&a), b.as_string()).into(),
            23 => self.badge_counts().into(),
            24 => {
                self.mark_read(&text(&a), &text(&b));
                JsValue::UNDEFINED
            }
            25 => {
                let callback = function(c).ok_or_else(|| JsValue::from_str("not a function"))?;
                self.watch(&text(&a), &text(&b), callback).into()
            }
            26 => {
                self.unwatch(id(&a));
                JsValue::UNDEFINED
            }
            27 => {
                self.frame(a.as_string(), b.as_string(), c, &d);
                JsValue::UNDEFINED
            }
            28 => {
                self.closed(id(&a) as u16);
                JsValue::UNDEFINED
            }
            29 => {
                self.socket_error();
                JsValue::UNDEFINED
            }
            30 => {
                self.timer();
                JsValue::UNDEFINED
            }
            31 => {
                self.online(a.is_truthy());
                JsValue::UNDEFINED
            }
            32 => {
                self.visibility(a.is_truthy());
                JsValue::UNDEFINED
            }
            33 => {
                self.page_shown();
                JsValue::UNDEFINED
            }
            34 => {
                self.badges_remote(&text(&a));
                JsValue::UNDEFINED
            }
            _ => return Err(JsValue::from_str("unknown operation")),
        })
    }
}

/// The client's operations, for Rust callers (the browser tests); JavaScript reaches them through
/// [`Client::call`].
impl Client {
    fn run<R>(&self, f: impl FnOnce(&mut Shell) -> R) -> R {
        run(&self.shell, f)
    }

    // ---- what the page reports ----

    /// A socket frame, parsed: `frame.event`, `frame.channel`, `data` (`frame.data`, itself
    /// parsed when it is a JSON string) and `frame`. No event: an unreadable frame.
    pub fn frame(
        &self,
        event: Option<String>,
        channel: Option<String>,
        data: JsValue,
        frame: &JsValue,
    ) {
        self.run(|s| s.on_frame(event, channel, data, frame));
    }

    /// The socket closed with `code`.
    pub fn closed(&self, code: u16) {
        self.run(|s| s.core().socket_closed(now(), code));
    }

    /// The socket failed (or could not be opened).
    pub fn socket_error(&self) {
        self.run(|s| s.core().socket_error(now()));
    }

    /// The timer asked for with `out` fired.
    pub fn timer(&self) {
        self.run(|s| s.timer_fired(now()));
    }

    /// `online` / `offline`.
    pub fn online(&self, online: bool) {
        self.run(|s| s.core().set_online(now(), online));
    }

    /// `visibilitychange`: `!document.hidden`.
    pub fn visibility(&self, visible: bool) {
        self.run(|s| s.visibility_changed(now(), visible));
    }

    /// `pageshow` from the bfcache (`persisted`): the socket may have died while frozen.
    pub fn page_shown(&self) {
        self.run(|s| s.core().page_shown(now()));
    }

    /// A badge change posted by another tab.
    pub fn badges_remote(&self, text: &str) {
        self.run(|s| s.badges_remote(text));
    }

    // ---- the app's calls ----

    pub fn connect(&self) {
        self.run(|s| s.core().connect(now()));
    }

    pub fn disconnect(&self) {
        self.run(|s| s.core().disconnect());
    }

    /// `initialized | connecting | connected | reconnecting | unavailable | failed |
    /// disconnected`.
    pub fn state(&self) -> String {
        self.run(|s| s.core().state().as_str().to_owned())
    }

    pub fn socket_id(&self) -> Option<String> {
        self.run(|s| s.core().socket_id().map(str::to_owned))
    }

    /// The signed-in user's id, once the server confirmed the sign-in.
    pub fn user_id(&self) -> Option<String> {
        self.run(|s| s.core().user_id().map(str::to_owned))
    }

    /// Subscribes now if connected, else on connect; throws on an invalid name.
    pub fn subscribe(&self, channel: &str) -> Result<(), JsValue> {
        self.run(|s| s.core().subscribe(channel))
            .map_err(error_value)
    }

    pub fn leave_channel(&self, channel: &str) {
        self.run(|s| {
            let dropped = s.core().leave_channel(channel);
            s.left(dropped);
        });
    }

    pub fn leave_all(&self) {
        self.run(|s| {
            let dropped = s.core().leave_all();
            s.left(dropped);
        });
    }

    /// Binds `callback` on a subscribed channel; returns the listener id for `unbind`.
    /// `kind`: `event` (with `event` as the app writes it: namespace rules apply), `all`,
    /// `subscribed`, `error`, `here`, `joining`, `leaving`.
    pub fn bind(
        &self,
        channel: &str,
        kind: &str,
        event: Option<String>,
        callback: Function,
    ) -> Result<u32, JsValue> {
        self.run(|s| {
            let binding = binding(kind, event.map(|e| s.core().formatter().format(&e)))?;
            let id = s.core().bind(channel, binding).map_err(error_value)?;
            Ok(s.add_callback(id, callback))
        })
    }

    /// Binds `callback` to `event` (namespace rules apply) on the signed-in user's channel.
    pub fn bind_user(&self, event: &str, callback: Function) -> u32 {
        self.run(|s| {
            let wire = s.core().formatter().format(event);
            let id = s.core().bind_user(Binding::Event(wire));
            s.add_callback(id, callback)
        })
    }

    pub fn unbind(&self, id: u32) {
        self.run(|s| s.unbind(ListenerId(id)));
    }

    /// Unbinds the `kind` (+ `event`) listeners of `channel`; only those calling `callback`
    /// when it is given.
    pub fn unbind_matching(
        &self,
        channel: &str,
        kind: &str,
        event: Option<String>,
        callback: Option<Function>,
    ) -> Result<(), JsValue> {
        self.run(|s| {
            let binding = binding(kind, event.map(|e| s.core().formatter().format(&e)))?;
            s.unbind_matching(channel, &binding, callback.as_ref());
            Ok(())
        })
    }

    /// Sends `client-{event}` with `data`; throws when not subscribed or not allowed.
    pub fn whisper(&self, channel: &str, event: &str, data: JsValue) -> Result<(), JsValue> {
        self.run(|s| s.core().whisper(channel, event, data))
            .map_err(error_value)
    }

    /// A presence channel's members' `user_info`, one per user.
    pub fn members(&self, channel: &str) -> Array {
        self.run(|s| {
            s.core()
                .members(channel)
                .iter()
                .map(|m| m.info.clone())
                .collect()
        })
    }

    /// The auth reply for `channel` on `socketId`: `channelData` on presence channels,
    /// `sharedSecret` (base64) on encrypted ones.
    pub fn authorized(
        &self,
        channel: &str,
        socket_id: &str,
        auth: String,
        channel_data: Option<String>,
        shared_secret: Option<String>,
    ) {
        let user_id = channel_data
            .as_deref()
            .and_then(parse_json)
            .and_then(|data| id_string(&get(&data, "user_id")));
        let auth = ChannelAuth {
            auth,
            channel_data,
            user_id,
        };
        self.run(|s| s.authorized(channel, socket_id, auth, shared_secret));
    }

    /// The auth endpoint refused (`status`) or could not be reached (`undefined`).
    pub fn authorization_failed(
        &self,
        channel: &str,
        socket_id: &str,
        status: Option<u16>,
        error: String,
    ) {
        self.run(|s| {
            s.core()
                .authorization_failed(channel, socket_id, status, error)
        });
    }

    /// User sign-in now (if connected) and after every reconnect.
    pub fn signin(&self) {
        self.run(|s| s.core().signin());
    }

    pub fn user_authorized(&self, socket_id: &str, auth: String, user_data: String) {
        self.run(|s| s.core().user_authorized(socket_id, auth, user_data));
    }

    // ---- typing, status, badges ----

    /// Call on every keystroke in the channel's message box.
    pub fn typing(&self, channel: &str) {
        self.run(|s| s.typing(channel).keystroke(now()));
    }

    /// The message was sent (or the box cleared): stop the indicator now.
    pub fn stop_typing(&self, channel: &str) {
        self.run(|s| s.typing(channel).sent(now()));
    }

    /// `[{id, info?}]` typing on `channel`, in the order they started.
    pub fn typing_users(&self, channel: &str) -> Array {
        self.run(|s| {
            s.typing(channel);
            s.typing_users(channel)
        })
    }

    /// `{userId: "online" | "away"}` on a presence channel.
    pub fn statuses(&self, channel: &str) -> Object {
        self.run(|s| s.statuses(channel))
    }

    /// A member's status, or this tab's own when `user` is absent.
    pub fn status(&self, channel: &str, user: Option<String>) -> Option<String> {
        self.run(|s| s.status(channel, user.as_deref()))
    }

    /// `{category: count}` of unread notifications.
    pub fn badge_counts(&self) -> Object {
        self.run(|s| s.badge_counts())
    }

    /// Marks read: `kind` is `id`, `category` or `all`.
    pub fn mark_read(&self, kind: &str, value: &str) {
        let target = match kind {
            "id" => ReadTarget::Id(value),
            "category" => ReadTarget::Category(value),
            _ => ReadTarget::All,
        };
        self.run(|s| s.badges().map(|b| b.mark_read(target)));
    }

    /// Calls `callback(state)` on every change of `what`: `typing` (`[{id, info?}]`) or `status`
    /// (`{userId: status}`) on `channel`, or `badges` (`{category: count}`). Returns an id for
    /// `unwatch`.
    pub fn watch(&self, what: &str, channel: &str, callback: Function) -> u32 {
        let watch = match what {
            "typing" => Watch::Typing(channel.to_owned()),
            "status" => Watch::Status(channel.to_owned()),
            _ => Watch::Badges,
        };
        self.run(|s| {
            if let Watch::Typing(channel) = &watch {
                s.typing(channel);
            }
            s.watch(watch, callback)
        })
    }

    pub fn unwatch(&self, id: u32) {
        self.run(|s| s.unwatch(id));
    }
}
