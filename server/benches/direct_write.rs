//! The direct-write path: one event built once and written by the publisher itself, with one
//! non-blocking `send` each, to every subscriber's loopback socket (nothing queued, no writer
//! task woken), as the fanout task does for `POST /events` on plain TCP; past 1,024
//! subscribers the publish is split into one chunk per core, written at once. The clients'
//! sockets are drained outside the timing. Compare with `fanout`, which only queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use overtone_server::channels::{ChannelRegistry, Closer, ConnectionHandle};
use overtone_server::config::{AppConfig, Config};
use overtone_server::frame;
use overtone_server::state::{Shared, SocketId};
use overtone_server::wire::Socket;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::WebSocketConfig;

/// Publishes per batch before the clients' sockets are drained: well within their buffers.
const PUBLISHES_PER_DRAIN: u64 = 16;

/// `subscribers` loopback connections subscribed to "orders", and the clients' ends.
async fn subscribed(registry: &ChannelRegistry, subscribers: usize) -> Vec<TcpStream> {
    let shared = Shared::new(
        Config::for_tests(AppConfig::new("a", "k", "s")),
        CancellationToken::new(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (tcp, _) = accepted.unwrap();
        let socket = Socket::Tcp(tcp, Vec::new());
        let (_reader, _sink, wire) = socket.split(WebSocketConfig::default(), shared.clone());
        // The writer is never needed: every write goes through whole.
        let (outbox, _queued) = mpsc::channel(1);
        let socket_id = SocketId::from(format!("1.{i}").as_str());
        let conn =
            ConnectionHandle::new(socket_id, outbox, Arc::new(Closer::default())).with_wire(wire);
        registry
            .subscribe("orders", &conn, None, 100)
            .expect("fresh subscriber");
        clients.push(client.unwrap());
    }
    clients
}

fn drain(clients: &[TcpStream]) {
    let mut buf = [0u8; 64 * 1024];
    for client in clients {
        while client.try_read(&mut buf).is_ok_and(|n| n > 0) {}
    }
}

fn direct_write(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let mut group = c.benchmark_group("publish_direct");
    for subscribers in [1usize, 100, 1_000, 4_000] {
        let registry = ChannelRegistry::default();
        let clients = runtime.block_on(subscribed(&registry, subscribers));
        let data = r#"{"order":{"id":12345,"status":"shipped","items":3}}"#;
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(BenchmarkId::new("one_event_to_sockets", subscribers), |b| {
            b.iter_custom(|iterations| {
                let mut measured = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let batch = left.min(PUBLISHES_PER_DRAIN);
                    let start = Instant::now();
                    for _ in 0..batch {
                        let out =
                            frame::channel_event("orders", "App\\Events\\OrderShipped", data, None);
                        assert_eq!(registry.publish("orders", &out, None), subscribers);
                    }
                    measured += start.elapsed();
                    // Let the kernel deliver, then empty every client's buffer.
                    std::thread::sleep(Duration::from_millis(1));
                    drain(&clients);
                    left -= batch;
                }
                measured
            })
        });
    }
    group.finish();
}

criterion_group!(benches, direct_write);
criterion_main!(benches);
