//! Throws a few thousand random frames (seeded, so a failure replays) at a live connection:
//! junk text, random JSON shaped like protocol frames, truncated frames, binary frames, deep
//! nesting and the odd oversized frame. The server must never panic, must close the fuzzed
//! connection only with a protocol close code, and must keep serving a bystander throughout.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{app, connect_established, next_event, send_json, start, Ws};
use futures_util::{SinkExt, StreamExt};
use overtone_server::config::Config;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

const SEED: u64 = 0x0E7_70E5;
const FRAMES: usize = 3_000;
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

fn random_message(rng: &mut fastrand::Rng) -> Message {
    match rng.u16(0..1000) {
        0..=399 => Message::text(random_frame(rng).to_string()),
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

/// Reads the fuzzed connection until it closes (so its queue never fills); returns the code.
fn drain(mut stream: futures_util::stream::SplitStream<Ws>) -> JoinHandle<Option<u16>> {
    tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
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
    let (mut sink, stream) = connect_established(server.addr).await.split();
    let mut reader = drain(stream);
    let mut reconnects = 0;

    for n in 0..FRAMES {
        let message = random_message(&mut rng);
        if sink.send(message).await.is_err() || reader.is_finished() {
            // The server closed the fuzzed connection: only a protocol close code is acceptable.
            let code = tokio::time::timeout(common::WAIT, &mut reader)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(code, Some(1002 | 1009) | None),
                "frame {n}: closed with {code:?}"
            );
            reconnects += 1;
            let (new_sink, new_stream) = connect_established(server.addr).await.split();
            sink = new_sink;
            reader = drain(new_stream);
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
}
