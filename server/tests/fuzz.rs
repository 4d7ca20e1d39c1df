//! Throws a few thousand random frames (seeded, so a failure replays) at a live connection:
//! junk text, random JSON shaped like protocol frames, frames the app signed (subscriptions,
//! sign-ins) with random contents, client events, truncated frames, binary frames, deep
//! nesting and the odd oversized frame. The server must never panic, must close the fuzzed
//! connection only with a protocol close code, and must keep serving a bystander throughout.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{app, connect, connect_established, next_event, send_json, start, Ws};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use overtone_protocol::signature;
use overtone_server::config::Config;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const SEED: u64 = 0x0E7_70E5;
const FRAMES: usize = 10_000;
/// How often the bystander checks it is still served.
const CHECK_EVERY: usize = 250;

static PANICS: AtomicUsize = AtomicUsize::new(0);

const EVENTS: &[&str] = &[
    "pusher:subscribe",
    "pusher:unsubscribe",
    "pusher:ping",
    "pusher:pong",
    "pusher:signin",
    "pusher:nonsense",
    "client-typing",
    "client-",
    "",
];
const CHANNELS: &[&str] = &[
    "public",
    "private-a",
    "presence-room",
    "private-encrypted-x",
    "cache-last",
    "presence-cache-r",
    "#server-to-user-1",
    "#server-to-user-",
    "bad channel",
    "",
    "ü",
];
const KEYS: &[&str] = &[
    "channel",
    "auth",
    "channel_data",
    "user_data",
    "event",
    "data",
    "user_id",
    "user_info",
];

fn random_string(rng: &mut fastrand::Rng, max: usize) -> String {
    let len = rng.usize(0..=max);
    (0..len)
        .map(|_| match rng.u8(0..10) {
            0 => rng.char('\u{80}'..'\u{10FFFF}'),
            1 => rng
                .choice(['"', '\\', '{', '}', ':', ',', '\u{0}'])
                .unwrap(),
            _ => rng.alphanumeric(),
        })
        .collect()
}

fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u8(0..if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => Value::String(random_string(rng, 40)),
        4 => Value::String(rng.choice(CHANNELS).unwrap().to_string()),
        5 => Value::Array(
            (0..rng.usize(0..4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        6 => Value::String(random_value(rng, depth - 1).to_string()),
        _ => Value::Object(
            (0..rng.usize(0..5))
                .map(|_| {
                    (
                        rng.choice(KEYS).unwrap().to_string(),
                        random_value(rng, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

/// A frame shaped like the protocol: a known or odd event, a channel, random data.
fn random_frame(rng: &mut fastrand::Rng) -> Value {
    let mut frame = serde_json::Map::new();
    if rng.u8(0..10) > 0 {
        frame.insert("event".into(), json!(rng.choice(EVENTS).unwrap()));
    }
    if rng.bool() {
        frame.insert("channel".into(), json!(rng.choice(CHANNELS).unwrap()));
    }
    if rng.u8(0..10) > 1 {
        frame.insert("data".into(), random_value(rng, 3));
    }
    Value::Object(frame)
}

/// A frame the app signed, so it gets past the signature checks into presence, sign-in and
/// client-event handling with random contents.
fn signed_frame(rng: &mut fastrand::Rng, socket_id: &str) -> Value {
    let app = app();
    let sign = |message: String| signature::auth_token(&app.key, &app.secret, &message);
    let channel = *rng.choice(CHANNELS).unwrap();
    match rng.u8(0..4) {
        0 => {
            let channel_data = match rng.u8(0..3) {
                0 => None,
                1 => Some(random_value(rng, 2).to_string()),
                _ => Some(
                    json!({"user_id": random_value(rng, 0), "user_info": random_value(rng, 2)})
                        .to_string(),
                ),
            };
            let auth = sign(signature::channel_auth_message(
                socket_id,
                channel,
                channel_data.as_deref(),
            ));
            json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth, "channel_data": channel_data}})
        }
        1 => {
            let user_data = match rng.bool() {
                true => random_value(rng, 2).to_string(),
                false => {
                    // Mostly a sign-in the server accepts (a watchlist is an array of ids or
                    // absent), so that on a loaded machine, where frames sent on a connection the
                    // server is closing are lost, some still get past every check.
                    let mut user =
                        json!({"id": random_string(rng, 8), "user_info": random_value(rng, 1)});
                    match rng.u8(0..3) {
                        0 => {}
                        1 => {
                            user["watchlist"] = (0..rng.usize(0..4))
                                .map(|_| random_string(rng, 8))
                                .collect()
                        }
                        _ => user["watchlist"] = random_value(rng, 1),
                    }
                    user.to_string()
                }
            };
            let auth = sign(signature::user_auth_message(socket_id, &user_data));
            json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})
        }
        2 => json!({"event": "client-fuzz", "channel": channel, "data": random_value(rng, 3)}),
        _ => json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}),
    }
}

fn random_message(rng: &mut fastrand::Rng, socket_id: &str) -> Message {
    match rng.u16(0..1000) {
        0..=299 => Message::text(signed_frame(rng, socket_id).to_string()),
        300..=399 => Message::text(random_frame(rng).to_string()),
        400..=599 => Message::text(random_string(rng, 200)),
        600..=799 => {
            let text = random_frame(rng).to_string();
            Message::text(
                text.chars()
                    .take(rng.usize(0..=text.chars().count()))
                    .collect::<String>(),
            )
        }
        800..=899 => Message::binary(
            (0..rng.usize(0..100))
                .map(|_| rng.u8(..))
                .collect::<Vec<u8>>(),
        ),
        900..=979 => Message::text(
            json!({"event": "pusher:subscribe", "data": {"channel": random_string(rng, 200)}})
                .to_string(),
        ),
        980..=994 => Message::text(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
        _ => Message::text("x".repeat(70 * 1024)),
    }
}

/// A new connection to fuzz: its sending half, its drain task and its socket id.
async fn fuzzed_connection(
    addr: std::net::SocketAddr,
    seen: &Seen,
) -> (SplitSink<Ws, Message>, JoinHandle<Option<u16>>, String) {
    let mut ws = connect(addr, "test-key", None).await;
    let established = next_event(&mut ws).await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap().to_owned();
    let (sink, stream) = ws.split();
    (sink, drain(stream, seen.clone()), socket_id)
}

/// Event names the fuzzed connections were sent, to check the fuzzing got past the checks.
type Seen = Arc<Mutex<HashSet<String>>>;

/// Reads the fuzzed connection until it closes (so its queue never fills); returns the code.
fn drain(mut stream: SplitStream<Ws>, seen: Seen) -> JoinHandle<Option<u16>> {
    tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(Message::Text(text)) => {
                    let frame: Value = serde_json::from_str(&text).expect("the server sends JSON");
                    let event = frame["event"].as_str().expect("every frame has an event");
                    seen.lock().unwrap().insert(event.to_owned());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_never_break_the_server() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let server = start(Config::for_tests(app())).await;
    let mut bystander = connect_established(server.addr).await;
    let mut rng = fastrand::Rng::with_seed(SEED);
    let seen = Seen::default();
    let (mut sink, mut reader, mut socket_id) = fuzzed_connection(server.addr, &seen).await;
    let mut reconnects = 0;

    for n in 0..FRAMES {
        let message = random_message(&mut rng, &socket_id);
        if sink.send(message).await.is_err() || reader.is_finished() {
            // The server closed the fuzzed connection: only a protocol close code is acceptable
            // (4100: the drain task fell behind the replies, as it may on a loaded machine).
            let code = tokio::time::timeout(common::WAIT, &mut reader)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(code, Some(1002 | 1009 | 4100) | None),
                "frame {n}: closed with {code:?}"
            );
            reconnects += 1;
            (sink, reader, socket_id) = fuzzed_connection(server.addr, &seen).await;
        }
        if n % CHECK_EVERY == 0 {
            send_json(&mut bystander, json!({"event": "pusher:ping"})).await;
            assert_eq!(
                next_event(&mut bystander).await["event"],
                "pusher:pong",
                "after frame {n}"
            );
        }
    }

    send_json(
        &mut bystander,
        json!({"event": "pusher:subscribe", "data": {"channel": "still-here"}}),
    )
    .await;
    assert_eq!(
        next_event(&mut bystander).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    assert!(!server.task.is_finished(), "the server stopped");
    eprintln!("fuzz: {FRAMES} frames, {reconnects} reconnects");
    assert!(
        reconnects > 0,
        "the oversized frames should have closed the fuzzed connection"
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server panicked");
    let seen = seen.lock().unwrap();
    for reached in [
        "pusher_internal:subscription_succeeded",
        "pusher:signin_success",
        "pusher:subscription_error",
        "pusher:error",
        "pusher:pong",
    ] {
        assert!(
            seen.contains(reached),
            "the fuzzing never got a {reached}: {seen:?}"
        );
    }
}
