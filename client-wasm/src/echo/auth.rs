//! Authorization for the Rust API: a form POST to the auth endpoints with `fetch` (the
//! options' headers and bearer token, read at each request so they can change at runtime), or
//! the app's own [`Authorizer`]. Replies go back into the core for the socket they were for.

use std::rc::{Rc, Weak};

use js_sys::JSON;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use super::driver::{get, id, Inner};
use crate::core::ChannelAuth;

/// What a channel authorization is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The channel's full name (`private-orders.7`).
    pub channel: String,
    /// The socket the signature is for.
    pub socket_id: String,
}

/// What the auth endpoint answers for a channel (`{auth, channel_data?, shared_secret?}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthReply {
    /// `"{key}:{signature}"`.
    pub auth: String,
    /// Presence channels: the exact string the signature covers.
    pub channel_data: Option<String>,
    /// `private-encrypted-` channels: the channel's key, base64.
    pub shared_secret: Option<String>,
}

/// A custom authorizer (Echo's `authorizer` option): called for each channel authorization;
/// answer through the [`AuthDone`], now or later.
pub type Authorizer = Rc<dyn Fn(AuthRequest, AuthDone)>;

/// The answer to one authorization: call [`AuthDone::succeed`] or [`AuthDone::fail`]. Dropped
/// without either, the channel waits for the next reconnect.
pub struct AuthDone {
    inner: Weak<Inner>,
    request: AuthRequest,
}

impl AuthDone {
    /// Signed: the subscription goes on.
    pub fn succeed(self, reply: AuthReply) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let AuthRequest { channel, socket_id } = self.request;
        inner.auth_extras(
            &channel,
            reply.channel_data.as_deref(),
            reply.shared_secret.as_deref(),
        );
        if channel.starts_with("private-encrypted-") && reply.shared_secret.is_none() {
            return refuse(
                &inner,
                &channel,
                &socket_id,
                None,
                "No shared_secret for an encrypted channel".into(),
            );
        }
        let user_id = reply
            .channel_data
            .as_deref()
            .and_then(|text| JSON::parse(text).ok())
            .and_then(|data| id(&get(&data, "user_id")));
        let auth = ChannelAuth {
            auth: reply.auth,
            channel_data: reply.channel_data,
            user_id,
        };
        inner
            .core
            .borrow_mut()
            .authorized(&channel, &socket_id, auth);
        inner.drive();
    }

    /// Refused (`status`: the HTTP status, if any): the channel's error listeners hear it.
    pub fn fail(self, status: Option<u16>, error: String) {
        if let Some(inner) = self.inner.upgrade() {
            refuse(
                &inner,
                &self.request.channel,
                &self.request.socket_id,
                status,
                error,
            );
        }
    }
}

fn refuse(inner: &Rc<Inner>, channel: &str, socket_id: &str, status: Option<u16>, error: String) {
    inner
        .core
        .borrow_mut()
        .authorization_failed(channel, socket_id, status, error);
    inner.drive();
}

/// Authorizes `channel` for the socket `socket_id`.
pub(crate) fn authorize(inner: &Rc<Inner>, channel: String, socket_id: String) {
    let done = AuthDone {
        inner: Rc::downgrade(inner),
        request: AuthRequest { channel, socket_id },
    };
    let authorizer = inner.options.borrow().authorizer.clone();
    if let Some(authorizer) = authorizer {
        let request = done.request.clone();
        return authorizer(request, done);
    }
    let endpoint = inner.options.borrow().auth_endpoint.clone();
    let form = [
        ("socket_id", done.request.socket_id.as_str()),
        ("channel_name", done.request.channel.as_str()),
    ];
    let request = post(inner, &endpoint, &form);
    wasm_bindgen_futures::spawn_local(async move {
        match request.await {
            Ok(reply) => match get(&reply, "auth").as_string() {
                Some(auth) => done.succeed(AuthReply {
                    auth,
                    channel_data: get(&reply, "channel_data").as_string(),
                    shared_secret: get(&reply, "shared_secret").as_string(),
                }),
                None => done.fail(None, "No auth in the reply".into()),
            },
            Err((status, error)) => done.fail(status, error),
        }
    });
}

/// Signs the user in for the socket `socket_id` (`pusher:signin`).
pub(crate) fn authorize_user(inner: &Rc<Inner>, socket_id: String) {
    let endpoint = inner.options.borrow().user_auth_endpoint.clone();
    let request = post(inner, &endpoint, &[("socket_id", socket_id.as_str())]);
    let weak = Rc::downgrade(inner);
    wasm_bindgen_futures::spawn_local(async move {
        let reply = request.await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let fields = reply.ok().and_then(|reply| {
            Some((
                get(&reply, "auth").as_string()?,
                get(&reply, "user_data").as_string()?,
            ))
        });
        match fields {
            Some((auth, user_data)) => {
                inner
                    .core
                    .borrow_mut()
                    .user_authorized(&socket_id, auth, user_data);
                inner.drive();
            }
            None => web_sys::console::warn_1(&"overtone: user sign-in failed".into()),
        }
    });
}

type Reply = Result<JsValue, (Option<u16>, String)>;

/// POSTs `form` to `endpoint` with the options' headers as they are now; a non-2xx status
/// becomes an error carrying it.
fn post(
    inner: &Inner,
    endpoint: &str,
    form: &[(&str, &str)],
) -> impl std::future::Future<Output = Reply> {
    let headers = Headers::new().expect("Headers can be made");
    let _ = headers.set("Content-Type", "application/x-www-form-urlencoded");
    let _ = headers.set("Accept", "application/json");
    {
        let options = inner.options.borrow();
        if let Some(token) = &options.bearer_token {
            let _ = headers.set("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in &options.headers {
            let _ = headers.set(name, value);
        }
    }
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", js_sys::encode_uri_component(v)))
        .collect();
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body.join("&")));
    let endpoint = endpoint.to_owned();
    async move {
        let window = web_sys::window().ok_or((None, "no window".to_owned()))?;
        let unreachable = |_| (None, format!("{endpoint} could not be reached"));
        let response = JsFuture::from(window.fetch_with_str_and_init(&endpoint, &init))
            .await
            .map_err(unreachable)?;
        let response: Response = response.unchecked_into();
        if !response.ok() {
            let status = response.status();
            return Err((Some(status), format!("{endpoint} answered {status}")));
        }
        let json = response.json().map_err(unreachable)?;
        JsFuture::from(json).await.map_err(unreachable)
    }
}
