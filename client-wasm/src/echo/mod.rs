//! Laravel Echo's API for Rust frontends (Leptos, Yew, Dioxus, or none), on wasm-bindgen,
//! web-sys, js-sys and gloo-timers: the `web` feature of `overtone-client`.
//!
//! It drives the same sans-IO core ([`crate::core`]) and feature machines
//! ([`crate::features`]) as the npm package, so reconnection with backoff and full jitter,
//! close codes, event names, history resume with duplicate drop, presence, typing, away
//! statuses and badges behave exactly as they do there. What this shell adds is the IO: the
//! `WebSocket`, timers, window events, `fetch` for authorization, `localStorage` and a
//! `BroadcastChannel` for badges shared with the user's other tabs, and payloads typed through
//! serde.
//!
//! ```no_run
//! use overtone_client::echo::{Echo, Options};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct OrderShipped {
//!     id: u64,
//! }
//!
//! let mut options = Options::new("my-app-key");
//! options.ws_host = Some("127.0.0.1".into());
//! options.ws_port = Some(8080);
//! options.bearer_token = Some("token-of-the-signed-in-user".into());
//! let echo = Echo::new(options);
//!
//! let orders = echo.private("orders.7").expect("a valid channel name");
//! // `App\Events\OrderShipped`, as Echo names it. Keep the guard: dropping it unbinds.
//! let shipped = orders.listen("OrderShipped", |order: OrderShipped| {
//!     web_sys::console::log_1(&order.id.into());
//! });
//! let errors = orders.error(|error| web_sys::console::warn_1(&error.to_string().into()));
//! # drop((shipped, errors));
//! ```
//!
//! Every registration (`listen`, `here`, `on_connection_change`, ...) returns a [`Listener`]:
//! dropping it unbinds the callback, so a component that unmounts leaves nothing behind.
//! Callbacks may call back into [`Echo`]: none runs while the client is borrowed.

mod auth;
mod channel;
mod driver;

use std::rc::Rc;

use crate::core::{Config, State};
pub use crate::core::{Error, Member};
pub use crate::features::badges::ReadTarget;
pub use crate::features::status::{MemberStatus, Status};

pub use auth::{AuthDone, AuthReply, AuthRequest, Authorizer};
pub use channel::{Channel, ChannelError, PresenceChannel, Reads};
use driver::Inner;
pub use driver::Listener;

/// Which server the app talks to: both speak the Pusher protocol; they differ in defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broadcaster {
    /// Laravel Reverb, Overtone, Soketi: the page's host unless `ws_host` says otherwise.
    Reverb,
    /// Pusher Channels: `ws-{cluster}.pusher.com`, TLS.
    Pusher,
}

/// Echo's options, by their Rust names. `Options::new(key)` has Echo's defaults.
#[derive(Clone)]
pub struct Options {
    /// Which server: it decides the defaults of the host and TLS.
    pub broadcaster: Broadcaster,
    /// The app key (`/app/{key}`).
    pub key: String,
    /// Pusher's cluster, for the default host of [`Broadcaster::Pusher`].
    pub cluster: Option<String>,
    /// Default: the page's host name (Reverb), `ws-{cluster}.pusher.com` (Pusher).
    pub ws_host: Option<String>,
    /// Default 80.
    pub ws_port: Option<u16>,
    /// Default 443.
    pub wss_port: Option<u16>,
    /// Default: on for Pusher, else when the page is served over https.
    pub force_tls: Option<bool>,
    /// Prefix before `/app/{key}`, e.g. `/ws`.
    pub ws_path: String,
    /// Echo's `namespace` (default `App.Events`); `None` is `namespace: false`.
    pub namespace: Option<String>,
    /// Default `/broadcasting/auth`.
    pub auth_endpoint: String,
    /// Default `/broadcasting/user-auth`.
    pub user_auth_endpoint: String,
    /// Sent with every authorization request; change them at runtime with
    /// [`Echo::set_header`].
    pub headers: Vec<(String, String)>,
    /// Sent as `Authorization: Bearer {token}`; change it with [`Echo::set_bearer_token`].
    pub bearer_token: Option<String>,
    /// Authorizes channels instead of POSTing `auth_endpoint` (Echo's `authorizer`).
    pub authorizer: Option<Authorizer>,
    /// Hidden this long makes this user `away` on presence channels (default 30 s).
    pub away_after_ms: u64,
    /// Tabs sharing a scope share their unread badges (default: the key; use the user id).
    pub badge_scope: Option<String>,
    /// This client's device as others see it on presence channels (`desktop`, `mobile`;
    /// default: from the browser's user agent).
    pub device: Option<String>,
}

impl Options {
    /// Echo's defaults for the app `key` on Reverb (or Overtone) at the page's host.
    pub fn new(key: impl Into<String>) -> Options {
        Options {
            broadcaster: Broadcaster::Reverb,
            key: key.into(),
            cluster: None,
            ws_host: None,
            ws_port: None,
            wss_port: None,
            force_tls: None,
            ws_path: String::new(),
            namespace: Some("App.Events".into()),
            auth_endpoint: "/broadcasting/auth".into(),
            user_auth_endpoint: "/broadcasting/user-auth".into(),
            headers: Vec::new(),
            bearer_token: None,
            authorizer: None,
            away_after_ms: crate::features::status::StatusConfig::default().away_after_ms,
            badge_scope: None,
            device: None,
        }
    }

    /// The core's connection settings, with the defaults filled in from the page.
    fn config(&self, page_host: String, page_is_https: bool) -> Config {
        let pusher = self.broadcaster == Broadcaster::Pusher;
        let host = self.ws_host.clone().unwrap_or_else(|| match &self.cluster {
            Some(cluster) if pusher => format!("ws-{cluster}.pusher.com"),
            _ if pusher => "ws.pusherapp.com".into(),
            _ => page_host,
        });
        let mut config = Config::new(self.key.clone(), host);
        config.ws_port = self.ws_port.unwrap_or(80);
        config.wss_port = self.wss_port.unwrap_or(443);
        config.force_tls = self.force_tls.unwrap_or(pusher || page_is_https);
        config.path = self.ws_path.clone();
        config.namespace = self.namespace.clone();
        config
    }
}

/// The connection as Echo's `connectionStatus()` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// The first attempt, after [`Echo::new`] or [`Echo::connect`].
    Connecting,
    /// Up: subscriptions are (re)made, events flow.
    Connected,
    /// Lost, retrying with backoff (also while offline or after several failed attempts).
    Reconnecting,
    /// The server refused this client (a 4000-4099 close code): no retries.
    Failed,
    /// The app called [`Echo::disconnect`].
    Disconnected,
}

impl From<State> for ConnectionStatus {
    fn from(state: State) -> ConnectionStatus {
        match state {
            State::Initialized | State::Connecting => ConnectionStatus::Connecting,
            State::Connected => ConnectionStatus::Connected,
            State::Reconnecting | State::Unavailable => ConnectionStatus::Reconnecting,
            State::Failed => ConnectionStatus::Failed,
            State::Disconnected => ConnectionStatus::Disconnected,
        }
    }
}

/// The client: one WebSocket, its channels and listeners. Cheap to clone (a handle); the
/// connection closes when the last handle and channel are dropped.
#[derive(Clone)]
pub struct Echo {
    inner: Rc<Inner>,
}

impl Echo {
    /// Connects at once, as Echo does.
    pub fn new(options: Options) -> Echo {
        let echo = Echo {
            inner: Inner::start(options),
        };
        echo.connect();
        echo
    }

    /// A public channel.
    pub fn channel(&self, name: &str) -> Result<Channel, Error> {
        self.subscribe(name.to_owned())
    }

    /// `private-{name}`, authorized by the auth endpoint.
    pub fn private(&self, name: &str) -> Result<Channel, Error> {
        self.subscribe(format!("private-{name}"))
    }

    /// `private-encrypted-{name}`: events are decrypted with the key its authorization gave.
    pub fn encrypted_private(&self, name: &str) -> Result<Channel, Error> {
        self.subscribe(format!("private-encrypted-{name}"))
    }

    /// `presence-{name}`: a private channel that knows who is in it.
    pub fn join(&self, name: &str) -> Result<PresenceChannel, Error> {
        self.subscribe(format!("presence-{name}"))
            .map(PresenceChannel::new)
    }

    /// Leaves the public, private, encrypted and presence channel called `name`.
    pub fn leave(&self, name: &str) {
        let dropped = self.inner.core.borrow_mut().leave(name);
        for prefix in ["", "private-", "private-encrypted-", "presence-"] {
            self.inner.forget_channel(&format!("{prefix}{name}"));
        }
        self.inner.dropped(dropped);
    }

    /// Leaves one channel by its full name; its listeners stop.
    pub fn leave_channel(&self, name: &str) {
        let dropped = self.inner.core.borrow_mut().leave_channel(name);
        self.inner.forget_channel(name);
        self.inner.dropped(dropped);
    }

    /// Leaves every channel (the signed-in user's stays); their listeners stop.
    pub fn leave_all_channels(&self) {
        let names: Vec<String> = self
            .inner
            .core
            .borrow()
            .channel_names()
            .map(str::to_owned)
            .collect();
        let dropped = self.inner.core.borrow_mut().leave_all();
        for name in names {
            self.inner.forget_channel(&name);
        }
        self.inner.dropped(dropped);
    }

    /// The socket id while connected: what Laravel's `toOthers()` needs as `X-Socket-ID`.
    pub fn socket_id(&self) -> Option<String> {
        self.inner.core.borrow().socket_id().map(str::to_owned)
    }

    /// Connects again after [`Echo::disconnect`], resubscribing every channel kept.
    pub fn connect(&self) {
        self.inner.core.borrow_mut().connect(driver::now());
        self.inner.drive();
    }

    /// Closes and stays closed until [`Echo::connect`]; channels are kept for it.
    pub fn disconnect(&self) {
        self.inner.core.borrow_mut().disconnect();
        self.inner.drive();
    }

    /// The connection now, as Echo's `connectionStatus()` names it.
    pub fn connection_status(&self) -> ConnectionStatus {
        self.inner.core.borrow().state().into()
    }

    /// `callback(status)` on every change of [`Echo::connection_status`].
    pub fn on_connection_change(&self, callback: impl Fn(ConnectionStatus) + 'static) -> Listener {
        self.inner.watch_status(Rc::new(callback))
    }

    /// Sets (or replaces) a header of every later authorization request.
    pub fn set_header(&self, name: &str, value: &str) {
        let mut options = self.inner.options.borrow_mut();
        options
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        options.headers.push((name.into(), value.into()));
    }

    /// Stops sending the header `name` with authorization requests.
    pub fn remove_header(&self, name: &str) {
        let mut options = self.inner.options.borrow_mut();
        options
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The bearer token of later authorization requests (after a login or a refresh).
    pub fn set_bearer_token(&self, token: Option<&str>) {
        self.inner.options.borrow_mut().bearer_token = token.map(str::to_owned);
    }

    /// Signs the user in (`pusher.signin()`): events sent to the user arrive on
    /// [`Echo::listen_for_user`]'s callbacks, on this and every later connection.
    pub fn signin(&self) {
        self.inner.core.borrow_mut().signin();
        self.inner.drive();
    }

    /// `callback(data)` for `event` sent to the signed-in user (`#server-to-user-{id}`).
    pub fn listen_for_user<T: serde::de::DeserializeOwned + 'static>(
        &self,
        event: &str,
        callback: impl Fn(T) + 'static,
    ) -> Listener {
        let wire = self.inner.core.borrow().formatter().format(event);
        let id = self
            .inner
            .core
            .borrow_mut()
            .bind_user(crate::core::Binding::Event(wire));
        let handler = channel::typed_event("", event, &self.inner, callback);
        self.inner.register(id, handler)
    }

    /// This user's status on every presence channel at once (`busy`, "In a meeting"): a
    /// lowercase word of at most 16 bytes (`a-z`, `0-9`, `-`, `_`) and a message of at most 100
    /// characters; `set_status("online", "")` goes back to online/away by visibility. Servers
    /// with Overtone's extension carry it; others get a whisper. `false` (nothing changed) for
    /// a status or message out of those bounds.
    pub fn set_status(&self, status: &str, message: &str) -> bool {
        let set = self
            .inner
            .features
            .borrow_mut()
            .set_status(Some((status, message)));
        self.inner.drive();
        set
    }

    /// The unread badges, shared with the user's other tabs.
    pub fn badges(&self) -> Badges {
        Badges {
            inner: self.inner.clone(),
        }
    }

    fn subscribe(&self, name: String) -> Result<Channel, Error> {
        self.inner.core.borrow_mut().subscribe(&name)?;
        self.inner.drive();
        Ok(Channel::new(self.clone(), name))
    }
}

/// Unread notification counts by category (from `notification` events and the server's
/// counts), kept in `localStorage` and shared by every tab of the same badge scope.
#[derive(Clone)]
pub struct Badges {
    inner: Rc<Inner>,
}

impl Badges {
    /// Unread in `category`.
    pub fn count(&self, category: &str) -> u32 {
        self.inner.features.borrow().badges().count(category)
    }

    /// Unread in every category.
    pub fn total(&self) -> u32 {
        self.inner.features.borrow().badges().total()
    }

    /// Every non-zero count, by category.
    pub fn counts(&self) -> Vec<(String, u32)> {
        let features = self.inner.features.borrow();
        features
            .badges()
            .counts()
            .map(|(category, n)| (category.to_owned(), n))
            .collect()
    }

    /// Marks one notification, a category or everything read, in every tab of the scope.
    pub fn mark_read(&self, target: ReadTarget) {
        self.inner.features.borrow_mut().mark_read(target);
        self.inner.drive();
    }

    /// `callback(counts)` on every change, from this tab or another.
    pub fn on_change(&self, callback: impl Fn(Vec<(String, u32)>) + 'static) -> Listener {
        let badges = self.clone();
        let notify = move || callback(badges.counts());
        self.inner.watch(
            crate::features::Watched::Badges,
            String::new(),
            Rc::new(notify),
        )
    }
}
