//! The WebSocket endpoint's close codes and keepalive on a live server, with a raw client:
//! origin refusal (4009), stale connections (4201), oversized frames (1009), control-frame
//! pings, shutdown (`pusher:error` 4200, then a 4200 close).

mod common;

use std::time::Duration;

use common::{app, close_code, connect, connect_established, next_event, send_json, start};
use futures_util::{SinkExt, StreamExt};
use overtone_server::config::Config;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn disallowed_origins_are_refused_with_4009() {
    let mut config = app();
    config.allowed_origins = vec!["https://good.test".into()];
    let server = start(Config::for_tests(config)).await;

    let mut evil = connect(server.addr, "test-key", Some("https://evil.test")).await;
    let error = next_event(&mut evil).await;
    assert_eq!(error["event"], "pusher:error");
    assert_eq!(error["data"]["code"], 4009);
    assert_eq!(close_code(&mut evil).await, Some(4009));

    let mut good = connect(server.addr, "test-key", Some("https://good.test")).await;
    assert_eq!(
        next_event(&mut good).await["event"],
        "pusher:connection_established"
    );
}

#[tokio::test]
async fn a_silent_connection_is_pinged_then_closed_with_4201() {
    let mut config = Config::for_tests(app());
    config.activity_timeout = Duration::from_secs(1);
    let server = start(config).await;
    let mut ws = connect(server.addr, "test-key", None).await;
    let established = next_event(&mut ws).await;
    let data: serde_json::Value =
        serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 1);
    assert_eq!(next_event(&mut ws).await["event"], "pusher:ping");
    assert_eq!(close_code(&mut ws).await, Some(4201));
}

#[tokio::test]
async fn a_connection_that_answers_pings_stays_open() {
    let mut config = Config::for_tests(app());
    config.activity_timeout = Duration::from_secs(1);
    let server = start(config).await;
    let mut ws = connect_established(server.addr).await;
    for _ in 0..2 {
        assert_eq!(next_event(&mut ws).await["event"], "pusher:ping");
        send_json(&mut ws, json!({"event": "pusher:pong", "data": {}})).await;
    }
    send_json(&mut ws, json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(next_event(&mut ws).await["event"], "pusher:pong");
}

#[tokio::test]
async fn control_frame_pings_are_answered() {
    let server = start(Config::for_tests(app())).await;
    let mut ws = connect_established(server.addr).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(common::WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"are you there".to_vec().into()));
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009_and_others_are_unaffected() {
    let server = start(Config::for_tests(app())).await;
    let mut bystander = connect_established(server.addr).await;
    let mut ws = connect_established(server.addr).await;
    let huge = format!(
        r#"{{"event":"pusher:ping","data":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    ws.send(Message::text(huge)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));
    send_json(&mut bystander, json!({"event": "pusher:ping"})).await;
    assert_eq!(next_event(&mut bystander).await["event"], "pusher:pong");
}

#[tokio::test]
async fn shutdown_sends_pusher_error_4200_then_closes_every_connection_with_4200() {
    let server = start(Config::for_tests(app())).await;
    let mut a = connect_established(server.addr).await;
    let mut b = connect_established(server.addr).await;
    server.shutdown.cancel();
    for ws in [&mut a, &mut b] {
        let error = next_event(ws).await;
        assert_eq!(error["event"], "pusher:error");
        assert_eq!(error["data"]["code"], 4200);
        assert_eq!(close_code(ws).await, Some(4200));
    }
}

#[tokio::test]
async fn socket_ids_have_the_pusher_form() {
    let server = start(Config::for_tests(app())).await;
    let mut ws = connect(server.addr, "test-key", None).await;
    let established = next_event(&mut ws).await;
    let data: serde_json::Value =
        serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap();
    let (left, right) = socket_id.split_once('.').unwrap();
    assert!(
        !left.is_empty() && left.bytes().all(|b| b.is_ascii_digit()),
        "{socket_id}"
    );
    assert!(
        !right.is_empty() && right.bytes().all(|b| b.is_ascii_digit()),
        "{socket_id}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_is_closed_with_4100_and_costs_others_nothing() {
    let mut config = app();
    config.max_client_events_per_second = u32::MAX;
    let server = start(Config::for_tests(config.clone())).await;
    let mut joined = Vec::new();
    for _ in 0..3 {
        joined.push(common::connect_subscribed(server.addr, &config, "private-firehose").await);
    }
    let (mut sender, mut slow, mut reader) = (joined.remove(0), joined.remove(0), joined.remove(0));

    // More than the kernel's socket buffers plus the 1024-frame queue hold, sent in steps
    // that `reader` keeps up with while `slow` reads nothing.
    const EVENTS: usize = 4_000;
    const STEP: usize = 100;
    let payload = "x".repeat(8 * 1024);
    let (read_tx, mut read_rx) = tokio::sync::watch::channel(0usize);
    let reading = tokio::spawn(async move {
        for count in 1..=EVENTS {
            let event = next_event(&mut reader).await;
            assert_eq!(event["event"], "client-burst", "event {count}");
            read_tx.send_replace(count);
        }
    });
    for n in 0..EVENTS {
        let frame = json!({"event": "client-burst", "channel": "private-firehose", "data": {"n": n, "pad": payload}});
        sender.send(Message::text(frame.to_string())).await.unwrap();
        if (n + 1) % STEP == 0 {
            let caught_up = read_rx.wait_for(|&read| read == n + 1);
            tokio::time::timeout(common::WAIT, caught_up)
                .await
                .unwrap()
                .unwrap();
        }
    }
    reading.await.unwrap();
    // The close frame waits behind megabytes `slow` never read; if the test took long enough
    // for the server to give up on the closing handshake, the TCP connection just ends.
    let code = close_code(&mut slow).await;
    assert!(matches!(code, Some(4100) | None), "closed with {code:?}");
}
