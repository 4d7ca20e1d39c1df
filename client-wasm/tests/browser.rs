//! The wasm client in headless Chromium against a started `overtone serve` (scripts/test starts
//! it and passes its address and app at compile time: `OVERTONE_TEST_WS_URL`, whose path ends
//! with the app key, and `OVERTONE_TEST_SECRET`). Channel auth is signed here with the app
//! secret, as the app's auth endpoint would.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Promise, Reflect};
use overtone_client::Client;
use overtone_protocol::signature::{auth_token, channel_auth_message};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WS_URL: &str = match option_env!("OVERTONE_TEST_WS_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:8080/app/app-key",
};
const SECRET: &str = match option_env!("OVERTONE_TEST_SECRET") {
    Some(secret) => secret,
    None => "app-secret",
};

// The page's side of the wasm client, as pkg-js/src/io.ts does it, reduced to what these tests
// use: the socket (frames parsed with JSON.parse) and the one timer, reported with `call(op, ...)`;
// the state, auth and errors go to `hooks`.
#[wasm_bindgen(inline_js = r#"
export function pageIo(hooks, call) {
  let socket, timer;
  const close = () => {
    if (!socket) return;
    socket.onmessage = socket.onclose = socket.onerror = null;
    socket.close();
    socket = undefined;
  };
  const frame = (text) => {
    let parsed;
    try { parsed = JSON.parse(text); } catch {}
    let data = parsed?.data;
    if (typeof data === 'string') try { data = JSON.parse(data); } catch {}
    call(27, parsed?.event, parsed?.channel, data, parsed);
  };
  return (kind, a, b) => {
    switch (kind) {
      case 0:
        close();
        try {
          socket = new WebSocket(a);
          socket.onmessage = (event) => frame(event.data);
          socket.onclose = (event) => call(28, event.code);
          socket.onerror = () => call(29);
        } catch { call(29); }
        return;
      case 1: if (socket?.readyState === 1) socket.send(a); return;
      case 2: return close();
      case 3:
        clearTimeout(timer);
        if (a >= 0) timer = setTimeout(() => call(30), a);
        return;
      case 4: return hooks.stateChanged(a);
      case 5: return hooks.authorize(a, b);
      case 6: return hooks.authorizeUser(a);
      case 7: return hooks.error(a, b);
    }
  };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = pageIo)]
    fn page_io(hooks: &JsValue, call: &JsValue) -> Function;
}

/// What the test's callbacks saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// A client of the test server; `user` is who it joins presence channels as.
struct Peer {
    client: Rc<Client>,
    log: Log,
}

fn server() -> (String, u16, String) {
    let rest = WS_URL.strip_prefix("ws://").expect("ws:// url");
    let (authority, path) = rest.split_once('/').expect("path");
    let (host, port) = authority.split_once(':').expect("port");
    let key = path.rsplit('/').next().expect("key");
    (
        host.to_owned(),
        port.parse().expect("port number"),
        key.to_owned(),
    )
}

fn set(target: &Object, key: &str, value: &JsValue) {
    Reflect::set(target, &key.into(), value).expect("set");
}

fn function<F: ?Sized + wasm_bindgen::closure::WasmClosure>(closure: Closure<F>) -> JsValue {
    closure.into_js_value()
}

/// A callback that appends `label` and its first argument as JSON to `log`.
fn recorder(log: &Log, label: &str) -> Function {
    let (log, label) = (log.clone(), label.to_owned());
    function(Closure::<dyn FnMut(JsValue)>::new(move |value: JsValue| {
        let json = js_sys::JSON::stringify(&value)
            .ok()
            .and_then(|s| s.as_string());
        log.borrow_mut().push(format!(
            "{label} {}",
            json.unwrap_or_else(|| "undefined".into())
        ));
    }))
    .unchecked_into()
}

impl Peer {
    fn new(key: &str, user: &str) -> Peer {
        let (host, port, _) = server();
        let log: Log = Rc::default();
        let slot: Rc<RefCell<Weak<Client>>> = Rc::default();
        let options = Object::new();
        set(&options, "key", &key.into());
        set(&options, "host", &host.into());
        set(&options, "wsPort", &port.into());
        set(&options, "namespace", &JsValue::NULL);
        let hooks = Object::new();
        let (app_key, user, auth_slot) = (key.to_owned(), user.to_owned(), slot.clone());
        let authorize =
            Closure::<dyn FnMut(String, String)>::new(move |channel: String, socket: String| {
                let data = channel
                    .starts_with("presence-")
                    .then(|| format!(r#"{{"user_id":"{user}","user_info":{{"name":"{user}"}}}}"#));
                let message = channel_auth_message(&socket, &channel, data.as_deref());
                let auth = auth_token(&app_key, SECRET, &message);
                if let Some(client) = auth_slot.borrow().upgrade() {
                    client.authorized(&channel, &socket, auth, data, None);
                }
            });
        set(&hooks, "authorize", &function(authorize));
        set(
            &hooks,
            "authorizeUser",
            &function(Closure::<dyn FnMut(String)>::new(|_: String| {})),
        );
        set(&hooks, "stateChanged", &recorder(&log, "state").into());
        set(
            &hooks,
            "error",
            &function(Closure::<dyn FnMut(JsValue, String)>::new(
                |_: JsValue, _: String| {},
            )),
        );
        let call_slot = slot.clone();
        let call = Closure::<dyn FnMut(u32, JsValue, JsValue, JsValue, JsValue)>::new(
            move |op: u32, a: JsValue, b: JsValue, c: JsValue, d: JsValue| {
                if let Some(client) = call_slot.borrow().upgrade() {
                    client.call(op, a, b, c, d, JsValue::UNDEFINED).expect("call");
                }
            },
        );
        let out = page_io(&hooks, &function(call));
        let client = Rc::new(Client::new(options.into(), out).expect("client"));
        *slot.borrow_mut() = Rc::downgrade(&client);
        client.connect();
        Peer { client, log }
    }

    fn bind(&self, channel: &str, kind: &str, event: Option<&str>, label: &str) -> u32 {
        let callback = recorder(&self.log, label);
        self.client
            .bind(channel, kind, event.map(str::to_owned), callback)
            .expect("bind")
    }

    fn saw(&self, entry: &str) -> bool {
        self.log.borrow().iter().any(|e| e == entry)
    }

    /// Waits until the log holds `entry`, or fails after 5 s.
    async fn expect(&self, entry: &str) {
        for _ in 0..250 {
            if self.saw(entry) {
                return;
            }
            sleep(20).await;
        }
        panic!("never saw {entry:?}; log: {:?}", self.log.borrow());
    }

    /// Subscribes `channel` and waits for the subscription to succeed.
    async fn subscribe(&self, channel: &str) {
        self.client.subscribe(channel).expect("valid name");
        self.bind(channel, "subscribed", None, channel);
        self.expect(&format!("{channel} undefined")).await;
    }
}

async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve: Function, _| {
        let window = web_sys::window().expect("window");
        window
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("timer");
    });
    JsFuture::from(promise).await.expect("sleep");
}

#[wasm_bindgen_test]
async fn subscribes_to_a_public_channel_and_reports_connected() {
    let (_, _, key) = server();
    let peer = Peer::new(&key, "1");
    peer.subscribe("wasm-public").await;
    assert!(peer.saw(r#"state "connected""#));
    assert!(peer.client.socket_id().is_some_and(|id| id.contains('.')));
    peer.client.disconnect();
    peer.expect(r#"state "disconnected""#).await;
}

#[wasm_bindgen_test]
async fn whispers_reach_the_other_client_on_a_private_channel_until_it_leaves() {
    let (_, _, key) = server();
    let (ann, bob) = (Peer::new(&key, "ann"), Peer::new(&key, "bob"));
    ann.subscribe("private-wasm-chat").await;
    bob.subscribe("private-wasm-chat").await;
    bob.bind(
        "private-wasm-chat",
        "event",
        Some(".client-typing"),
        "whisper",
    );
    let data = js_sys::JSON::parse(r#"{"text":"hi"}"#).expect("json");
    ann.client
        .whisper("private-wasm-chat", "typing", data.clone())
        .expect("whisper");
    bob.expect(r#"whisper {"text":"hi"}"#).await;
    assert!(
        !ann.saw(r#"whisper {"text":"hi"}"#),
        "whispers are not echoed"
    );

    bob.client.leave_channel("private-wasm-chat");
    assert!(bob
        .client
        .whisper("private-wasm-chat", "typing", data.clone())
        .is_err());
    let second = js_sys::JSON::parse(r#"{"text":"still there?"}"#).expect("json");
    ann.client
        .whisper("private-wasm-chat", "typing", second)
        .expect("whisper");
    sleep(300).await;
    assert!(
        !bob.saw(r#"whisper {"text":"still there?"}"#),
        "a left channel delivers nothing"
    );
}

#[wasm_bindgen_test]
async fn presence_members_join_and_leave() {
    let (_, _, key) = server();
    let ann = Peer::new(&key, "ann");
    ann.client.subscribe("presence-wasm-room").expect("valid");
    ann.bind("presence-wasm-room", "here", None, "here");
    ann.bind("presence-wasm-room", "joining", None, "joining");
    ann.bind("presence-wasm-room", "leaving", None, "leaving");
    ann.expect(r#"here [{"name":"ann"}]"#).await;

    let bob = Peer::new(&key, "bob");
    bob.client.subscribe("presence-wasm-room").expect("valid");
    bob.bind("presence-wasm-room", "here", None, "here");
    ann.expect(r#"joining {"name":"bob"}"#).await;
    bob.expect(r#"here [{"name":"ann"},{"name":"bob"}]"#).await;
    assert_eq!(ann.client.members("presence-wasm-room").length(), 2);

    bob.client.leave_channel("presence-wasm-room");
    ann.expect(r#"leaving {"name":"bob"}"#).await;
}

#[wasm_bindgen_test]
async fn an_unknown_app_key_fails_without_retrying() {
    let peer = Peer::new("no-such-key", "1");
    peer.expect(r#"state "failed""#).await;
    let states = peer.log.borrow().len();
    // The core's first retry would come within its 1 s backoff ceiling.
    sleep(1500).await;
    assert_eq!(
        peer.log.borrow().len(),
        states,
        "no further attempt: {:?}",
        peer.log.borrow()
    );
    assert_eq!(peer.client.state(), "failed");
}
