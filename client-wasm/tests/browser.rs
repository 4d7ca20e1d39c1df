//! The Rust API (`echo`, the `web` feature) in headless Chromium against real `overtone serve`
//! nodes, driven by `tests/rust/run.mjs` (which starts them and the harness these tests call:
//! see there). Run by `scripts/test`; by hand: `node tests/rust/run.mjs`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::future::TimeoutFuture;
use overtone_client::echo::{
    AuthDone, AuthReply, AuthRequest, Channel, ChannelError, ConnectionStatus, Echo, Member,
    Options, ReadTarget, Status,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const HARNESS: &str = match option_env!("OVERTONE_HARNESS") {
    Some(url) => url,
    None => "http://127.0.0.1:9",
};

/// Calls the harness; its JSON answer.
async fn harness(method: &str, route: &str, body: Option<String>) -> JsValue {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body));
    }
    let window = web_sys::window().unwrap();
    let url = format!("{HARNESS}{route}");
    let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
        .await
        .expect("the harness answers");
    let response: web_sys::Response = response.unchecked_into();
    assert!(response.ok(), "{route} answered {}", response.status());
    JsFuture::from(response.json().unwrap()).await.unwrap()
}

/// Publishes `event` with `data` (JSON text) on `channel` through node B.
async fn publish(channel: &str, event: &str, data: &str) {
    let body = format!(
        r#"{{"channel":{},"event":{},"data":{data}}}"#,
        quote(channel),
        quote(event),
    );
    harness("POST", "/publish", Some(body)).await;
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    js_sys::JSON::stringify(&JsValue::from_str(text))
        .unwrap()
        .into()
}

/// Options for node A, authorized by the harness as `user`.
async fn options(user: u32) -> Options {
    let config = harness("GET", "/config", None).await;
    let get = |key: &str| js_sys::Reflect::get(&config, &key.into()).unwrap();
    let mut options = Options::new(get("key").as_string().unwrap());
    options.ws_host = Some("127.0.0.1".into());
    options.ws_port = Some(get("wsPort").as_f64().unwrap() as u16);
    options.force_tls = Some(false);
    options.auth_endpoint = format!("{HARNESS}/auth?user={user}");
    options.badge_scope = Some(format!("user-{user}-{}", js_sys::Math::random()));
    options
}

/// Waits up to `ms` for `done`, checking every 20 ms.
async fn until(what: &str, ms: u32, mut done: impl FnMut() -> bool) {
    for _ in 0..ms / 20 {
        if done() {
            return;
        }
        TimeoutFuture::new(20).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until each of `channels` (just made: not confirmed yet) is subscribed.
async fn subscribed(channels: &[&Channel]) {
    let confirmed = Seen::new();
    let _listeners: Vec<_> = channels
        .iter()
        .map(|channel| channel.subscribed(confirmed.push_value(())))
        .collect();
    until("the subscriptions", 10_000, || {
        confirmed.len() == channels.len()
    })
    .await;
}

async fn connected(echo: &Echo) {
    until("connected", 10_000, || {
        echo.connection_status() == ConnectionStatus::Connected
    })
    .await;
}

/// Everything a callback was given, in order.
#[derive(Clone)]
struct Seen<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone + 'static> Seen<T> {
    fn new() -> Seen<T> {
        Seen(Rc::default())
    }

    fn push(&self) -> impl Fn(T) + 'static {
        let seen = self.clone();
        move |value| seen.0.borrow_mut().push(value)
    }

    /// A callback without arguments that records `value`.
    fn push_value(&self, value: T) -> impl Fn() + 'static {
        let push = self.push();
        move || push(value.clone())
    }

    fn all(&self) -> Vec<T> {
        self.0.borrow().clone()
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Order {
    id: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Notification {
    id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Info {
    name: String,
}

#[wasm_bindgen_test]
async fn public_and_private_events_arrive_typed() {
    let echo = Echo::new(options(1).await);
    let orders = Seen::<Order>::new();
    let news = Seen::<Order>::new();
    let public = echo.channel("news").unwrap();
    let _news = public.listen("NewsPosted", news.push());
    let private = echo.private("orders.1").unwrap();
    let _orders = private.listen(".order.shipped", orders.push());
    subscribed(&[&private]).await;
    until("the public subscription", 2_000, || {
        echo.socket_id().is_some()
    })
    .await;

    publish("news", "App\\Events\\NewsPosted", r#"{"id":7}"#).await;
    publish("private-orders.1", "order.shipped", r#"{"id":8}"#).await;
    until("both events", 5_000, || {
        news.len() == 1 && orders.len() == 1
    })
    .await;
    assert_eq!(news.all(), vec![Order { id: 7 }]);
    assert_eq!(orders.all(), vec![Order { id: 8 }]);
}

#[wasm_bindgen_test]
async fn a_payload_that_does_not_fit_reaches_the_error_listeners() {
    let echo = Echo::new(options(1).await);
    let channel = echo.channel("mismatch").unwrap();
    let orders = Seen::<Order>::new();
    let errors = Seen::new();
    let _orders = channel.listen("OrderShipped", orders.push());
    let _errors = channel.error(errors.push());
    subscribed(&[&channel]).await;

    publish(
        "mismatch",
        "App\\Events\\OrderShipped",
        r#"{"id":"not a number"}"#,
    )
    .await;
    publish("mismatch", "App\\Events\\OrderShipped", r#"{"id":3}"#).await;
    until("the second event", 5_000, || orders.len() == 1).await;
    assert_eq!(orders.all(), vec![Order { id: 3 }]);
    match errors.all().as_slice() {
        [ChannelError::Payload { event, error }] => {
            assert_eq!(event, "OrderShipped");
            assert!(error.contains("invalid type"), "{error}");
        }
        other => panic!("expected one payload error, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn a_dropped_listener_hears_nothing_more() {
    let echo = Echo::new(options(1).await);
    let channel = echo.channel("guards").unwrap();
    let kept = Seen::<Order>::new();
    let dropped = Seen::<Order>::new();
    let _kept = channel.listen("Tick", kept.push());
    let guard = channel.listen("Tick", dropped.push());
    subscribed(&[&channel]).await;

    publish("guards", "App\\Events\\Tick", r#"{"id":1}"#).await;
    until("the first tick", 5_000, || {
        kept.len() == 1 && dropped.len() == 1
    })
    .await;
    drop(guard);
    publish("guards", "App\\Events\\Tick", r#"{"id":2}"#).await;
    until("the second tick", 5_000, || kept.len() == 2).await;
    assert_eq!(dropped.all(), vec![Order { id: 1 }]);
}

#[wasm_bindgen_test]
async fn presence_members_join_and_leave_with_typed_infos() {
    let ann = Echo::new(options(1).await);
    let room = ann.join("room").unwrap();
    let here = Seen::<Vec<Member<Info>>>::new();
    let joining = Seen::<Member<Info>>::new();
    let leaving = Seen::<Member<Info>>::new();
    let _here = room.here(here.push());
    let _joining = room.joining(joining.push());
    let _leaving = room.leaving(leaving.push());
    until("here", 10_000, || here.len() == 1).await;
    let first = &here.all()[0];
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].user_id, "1");
    assert_eq!(
        first[0].info,
        Info {
            name: "user-1".into()
        }
    );

    let bob = Echo::new(options(2).await);
    let _bobs_room = bob.join("room").unwrap();
    until("bob joining", 10_000, || joining.len() == 1).await;
    assert_eq!(joining.all()[0].user_id, "2");
    assert_eq!(
        joining.all()[0].info,
        Info {
            name: "user-2".into()
        }
    );
    assert_eq!(room.members::<Info>().len(), 2);

    bob.leave("room");
    until("bob leaving", 10_000, || leaving.len() == 1).await;
    assert_eq!(
        leaving.all()[0].info,
        Info {
            name: "user-2".into()
        }
    );
    assert_eq!(room.members::<Info>().len(), 1);
}

#[wasm_bindgen_test]
async fn whispers_reach_the_other_client() {
    let ann = Echo::new(options(1).await);
    let bob = Echo::new(options(2).await);
    let anns = ann.private("chat.9").unwrap();
    let bobs = bob.private("chat.9").unwrap();
    let heard = Seen::<Order>::new();
    let _heard = bobs.listen_for_whisper("ping", heard.push());
    subscribed(&[&anns, &bobs]).await;

    anns.whisper("ping", &Order { id: 5 }).unwrap();
    until("the whisper", 5_000, || heard.len() == 1).await;
    assert_eq!(heard.all(), vec![Order { id: 5 }]);
}

#[wasm_bindgen_test]
async fn a_401_from_the_auth_endpoint_reaches_the_error_listeners() {
    let echo = Echo::new(options(1).await);
    let channel = echo.private("forbidden.1").unwrap();
    let errors = Seen::new();
    let _errors = channel.error(errors.push());
    until("the refusal", 10_000, || errors.len() == 1).await;
    match &errors.all()[0] {
        ChannelError::Subscription { status, .. } => assert_eq!(*status, Some(401)),
        other => panic!("expected a subscription error, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn a_custom_authorizer_signs_through_the_app() {
    let mut options = options(1).await;
    let asked = Seen::new();
    let push = asked.push();
    let endpoint = options.auth_endpoint.clone();
    // The app's own authorizer: here it asks the same endpoint, by hand.
    options.authorizer = Some(Rc::new(move |request: AuthRequest, done: AuthDone| {
        push(request.channel.clone());
        let endpoint = endpoint.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let body = format!(
                "socket_id={}&channel_name={}",
                request.socket_id, request.channel
            );
            let route = endpoint.strip_prefix(HARNESS).unwrap().to_owned();
            let reply = harness("POST", &route, Some(body)).await;
            let auth = js_sys::Reflect::get(&reply, &"auth".into())
                .unwrap()
                .as_string()
                .unwrap();
            done.succeed(AuthReply {
                auth,
                ..AuthReply::default()
            });
        });
    }));
    let echo = Echo::new(options);
    let channel = echo.private("custom.1").unwrap();
    subscribed(&[&channel]).await;
    assert_eq!(asked.all(), vec!["private-custom.1".to_owned()]);
}

#[wasm_bindgen_test]
async fn a_refused_close_code_fails_without_retries() {
    let mut options = options(1).await;
    options.key = "no-such-key".into();
    let echo = Echo::new(options);
    let statuses = Seen::new();
    let _statuses = echo.on_connection_change(statuses.push());
    until("failed", 10_000, || {
        echo.connection_status() == ConnectionStatus::Failed
    })
    .await;
    // Longer than the first backoff ceiling (1 s): a retry would show by now.
    TimeoutFuture::new(2_500).await;
    assert_eq!(statuses.all(), vec![ConnectionStatus::Failed]);
}

#[wasm_bindgen_test]
async fn typing_away_and_badges_between_two_clients() {
    let mut ann_options = options(1).await;
    ann_options.away_after_ms = 200;
    let ann_scope = ann_options.badge_scope.clone();
    let ann = Echo::new(ann_options);
    let bob = Echo::new(options(2).await);
    let anns = ann.join("team").unwrap();
    let bobs = bob.join("team").unwrap();
    let typists = Seen::new();
    let _typists = bobs.on_typing_change(typists.push());
    until("both members", 10_000, || {
        anns.members::<Info>().len() == 2 && bobs.members::<Info>().len() == 2
    })
    .await;

    anns.typing();
    until("bob sees ann typing", 5_000, || {
        bobs.typing_users() == ["1"]
    })
    .await;
    anns.stop_typing();
    until("bob sees ann stop", 5_000, || {
        bobs.typing_users().is_empty()
    })
    .await;
    assert_eq!(typists.all().first(), Some(&vec!["1".to_owned()]));

    // The page hidden: both clients in it go away; Bob sees Ann's status change.
    set_hidden(true);
    until("ann away", 5_000, || {
        bobs.status(Some("1")) == Some(Status::Away)
    })
    .await;
    set_hidden(false);
    until("ann back", 5_000, || {
        bobs.status(Some("1")) == Some(Status::Online)
    })
    .await;

    // Badges: a notification on Ann's channel; another client of the same scope (a second
    // tab) sees the count, and marking it read there clears it here.
    let notifications = ann.private("App.Models.User.1").unwrap();
    let heard = Seen::<Notification>::new();
    let _heard = notifications.notification(heard.push());
    subscribed(&[&notifications]).await;
    let mut tab_options = options(1).await;
    tab_options.badge_scope = ann_scope;
    let tab = Echo::new(tab_options);
    publish(
        "private-App.Models.User.1",
        "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated",
        r#"{"id":"n-1","type":"messages"}"#,
    )
    .await;
    until("the badge", 5_000, || ann.badges().count("messages") == 1).await;
    until("the other tab's badge", 5_000, || tab.badges().total() == 1).await;
    tab.badges().mark_read(ReadTarget::All);
    until("read everywhere", 5_000, || ann.badges().total() == 0).await;
    assert_eq!(heard.all(), vec![Notification { id: "n-1".into() }]);
}

#[wasm_bindgen_test]
async fn statuses_and_read_receipts_between_two_users_and_a_second_tab() {
    let ann = Echo::new(options(1).await);
    let mut bob_options = options(2).await;
    bob_options.device = Some("mobile".into());
    let bob = Echo::new(bob_options);
    let anns = ann.join("reads").unwrap();
    let bobs = bob.join("reads").unwrap();
    until("both members", 10_000, || {
        anns.members::<Info>().len() == 2 && bobs.members::<Info>().len() == 2
    })
    .await;

    // A status set once reaches the other member, with the device, without a reconnect.
    assert!(ann.set_status("busy", "In a meeting"));
    assert!(!ann.set_status("Busy!", ""), "not a lowercase word");
    until("bob sees ann busy", 5_000, || {
        bobs.member_status(Some("1"))
            .is_some_and(|m| m.status == "busy" && m.message == "In a meeting")
    })
    .await;
    until("ann sees bob on mobile", 5_000, || {
        anns.member_status(Some("2"))
            .is_some_and(|m| m.device == "mobile")
    })
    .await;

    // Bob reads up to 5 (the app's ids): Ann sees him among the readers of 3 and 5, not 6.
    let reads = Seen::new();
    let _reads = anns.on_read_change(reads.push());
    for id in 1..=5 {
        assert!(bobs.mark_read(&id.to_string()));
    }
    until("ann sees bob's receipt", 5_000, || {
        anns.readers("5") == ["2"]
    })
    .await;
    assert_eq!(anns.readers("3"), ["2"]);
    assert!(anns.readers("6").is_empty());
    assert_eq!(anns.read_up_to(Some("2")).as_deref(), Some("5"));
    assert!(reads
        .all()
        .iter()
        .any(|r| r.readers == [("2".to_owned(), "5".to_owned())]));

    // Bob's second tab gets his marker from the server.
    let bob_tab = Echo::new(options(2).await);
    let tabs = bob_tab.join("reads").unwrap();
    until("the second tab agrees", 10_000, || {
        tabs.read_up_to(None).as_deref() == Some("5")
    })
    .await;
    // Ann leaves: Bob's pages keep when she was last seen.
    ann.leave("reads");
    until("ann last seen", 5_000, || {
        bobs.left_members()
            .iter()
            .any(|(id, at)| id == "1" && *at > 0)
    })
    .await;
}

/// A tab switch as the page sees it: `document.hidden` and the event.
fn set_hidden(hidden: bool) {
    let document = web_sys::window().unwrap().document().unwrap();
    let descriptor = js_sys::Object::new();
    let getter = js_sys::Function::new_no_args(if hidden {
        "return true"
    } else {
        "return false"
    });
    js_sys::Reflect::set(&descriptor, &"get".into(), &getter).unwrap();
    js_sys::Reflect::set(&descriptor, &"configurable".into(), &true.into()).unwrap();
    js_sys::Object::define_property(&document, &"hidden".into(), &descriptor);
    let event = web_sys::Event::new("visibilitychange").unwrap();
    document.dispatch_event(&event).unwrap();
}

#[wasm_bindgen_test]
async fn a_restarted_server_replays_what_was_missed_once() {
    let echo = Echo::new(options(1).await);
    let statuses = Seen::new();
    let _statuses = echo.on_connection_change(statuses.push());
    let ticker = echo.channel("ticker").unwrap();
    let ticks = Seen::new();
    let _ticks = ticker.listen("Tick", ticks.push());
    let room = echo.join("lobby").unwrap();
    let here = Seen::<Vec<Member<Info>>>::new();
    let _here = room.here(here.push());
    until("here", 10_000, || here.len() == 1).await;
    connected(&echo).await;
    publish("ticker", "App\\Events\\Tick", r#"{"id":1}"#).await;
    until("the first tick", 5_000, || ticks.len() == 1).await;

    harness("POST", "/kill", None).await;
    until("reconnecting", 10_000, || {
        echo.connection_status() == ConnectionStatus::Reconnecting
    })
    .await;
    // Published through the other node while this one is down: into the channel's history.
    publish("ticker", "App\\Events\\Tick", r#"{"id":2}"#).await;
    publish("ticker", "App\\Events\\Tick", r#"{"id":3}"#).await;
    harness("POST", "/start", None).await;
    connected(&echo).await;
    until("the missed ticks", 10_000, || ticks.len() >= 3).await;
    until("the presence channel again", 10_000, || here.len() == 2).await;
    publish("ticker", "App\\Events\\Tick", r#"{"id":4}"#).await;
    until("a live tick", 5_000, || ticks.len() >= 4).await;
    let ids: Vec<u32> = ticks.all().iter().map(|o: &Order| o.id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert!(statuses.all().contains(&ConnectionStatus::Reconnecting));
    assert_eq!(statuses.all().last(), Some(&ConnectionStatus::Connected));
}
