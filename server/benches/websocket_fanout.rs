//! End to end over real sockets: one client event sent by one WebSocket client, parsed,
//! fanned out and written to 1k subscribed WebSocket clients, timed until every one of them
//! has read it. Server and clients share the process (and the machine's cores), so this is a
//! lower bound on what the server alone does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use overtone_protocol::signature;
use overtone_server::config::{AppConfig, Config};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const RECEIVERS: usize = 1_000;
const CHANNEL: &str = "private-fanout";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn app() -> AppConfig {
    let mut app = AppConfig::new("bench", "bench-key", "bench-secret");
    app.max_client_events_per_second = u32::MAX;
    app
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            return serde_json::from_str(&text).expect("frames are JSON");
        }
    }
}

/// A client subscribed to the bench channel.
async fn subscriber(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/app/bench-key?protocol=7");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let established = next_json(&mut ws).await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap();
    let app = app();
    let auth = signature::auth_token(&app.key, &app.secret, &format!("{socket_id}:{CHANNEL}"));
    let subscribe =
        json!({"event": "pusher:subscribe", "data": {"channel": CHANNEL, "auth": auth}});
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    ws
}

fn websocket_fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = CancellationToken::new();
    let received = Arc::new(AtomicUsize::new(0));
    let all_received = Arc::new(Notify::new());
    let mut sender = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(overtone_server::serve_on(
            listener,
            Config::for_tests(app()),
            shutdown.clone(),
        ));
        for _ in 0..RECEIVERS {
            let mut ws = subscriber(addr).await;
            let (received, all_received) = (received.clone(), all_received.clone());
            tokio::spawn(async move {
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(_) = message {
                        if received.fetch_add(1, Ordering::AcqRel) + 1 == RECEIVERS {
                            all_received.notify_one();
                        }
                    }
                }
            });
        }
        subscriber(addr).await
    });
    let event =
        json!({"event": "client-tick", "channel": CHANNEL, "data": {"n": 1, "text": "typing"}})
            .to_string();

    let mut group = c.benchmark_group("websocket");
    group.throughput(Throughput::Elements(RECEIVERS as u64));
    group.bench_function("client_event_to_1k_sockets", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    received.store(0, Ordering::Release);
                    let start = Instant::now();
                    sender.send(Message::text(event.clone())).await.unwrap();
                    all_received.notified().await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    shutdown.cancel();
}

criterion_group!(benches, websocket_fanout);
criterion_main!(benches);
