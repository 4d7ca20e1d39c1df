//! `overtone-bench` keeps working: every scenario at a tiny size against a real server (served
//! in-process, with the limits of scripts/bench/overtone.toml), and bad input (no server, wrong
//! key) fails fast with a clear message.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use overtone_server::config::{AppConfig, Config};
use tokio_util::sync::CancellationToken;

const BENCH: &str = env!("CARGO_BIN_EXE_overtone-bench");

/// A server on a free port in a runtime of its own, stopped when dropped.
struct Server {
    port: u16,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let mut app = AppConfig::new("bench-app", "bench-key", "bench-secret");
        app.max_presence_members = 100_000;
        app.max_client_events_per_second = 10;
        let config = Config::for_tests(app);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("address").port();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                overtone_server::serve_on(listener, config, stop)
                    .await
                    .expect("serve");
            });
        });
        Self {
            port,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The server runs in this process: its CPU and memory are this process's.
    fn bench(&self, args: &[&str]) -> Output {
        let url = format!("ws://127.0.0.1:{}", self.port);
        let pid = std::process::id().to_string();
        bench(&[&["--url", &url, "--server-pid", &pid], args].concat())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn bench(args: &[&str]) -> Output {
    Command::new(BENCH)
        .args(args)
        .output()
        .expect("run overtone-bench")
}

/// The one JSON line a successful run prints.
fn summary(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8(output.stdout.clone()).expect("utf-8 stdout");
    assert_eq!(stdout.lines().count(), 1, "one summary line, got: {stdout}");
    serde_json::from_str(&stdout).expect("the summary is JSON")
}

#[test]
fn connect_measures_server_memory() {
    let server = Server::start();
    let s = summary(&server.bench(&["connect", "-n", "50", "--hold", "0"]));
    assert_eq!(s["dropped"], 0);
    assert!(s["server_kib_per_connection"].is_number(), "{s}");
}

#[test]
fn connect_from_several_addresses_subscribed_counts_events() {
    let server = Server::start();
    let s = summary(&server.bench(&[
        "--source-addrs",
        "127.0.0.2,127.0.0.3",
        "connect",
        "-n",
        "20",
        "--hold",
        "0",
        "--channel",
        "everyone",
    ]));
    assert_eq!(s["dropped"], 0, "{s}");
    // Nobody triggered anything: only the subscriptions' own frames arrived.
    assert_eq!(s["events_received"], 0, "{s}");
}

#[test]
fn fanout_delivers_everything() {
    let server = Server::start();
    let s = summary(&server.bench(&[
        "fanout",
        "-n",
        "20",
        "-c",
        "2",
        "--rate",
        "20",
        "--duration",
        "1",
    ]));
    assert_eq!(s["expected"], 400);
    assert_eq!(s["loss"], 0, "{s}");
    assert!(s["latency"]["p99_ms"].as_f64().unwrap() > 0.0, "{s}");
}

#[test]
fn presence_views_end_right() {
    let server = Server::start();
    let s = summary(&server.bench(&[
        "presence",
        "-n",
        "20",
        "--join-window-ms",
        "100",
        "--churn",
        "5",
        "--rounds",
        "1",
        "--churn-window-ms",
        "100",
    ]));
    assert_eq!(s["wrong_views_at_end"], 0, "{s}");
    assert!(
        s["churn_member_removed"]["count"].as_u64().unwrap() > 0,
        "{s}"
    );
}

#[test]
fn client_events_arrive() {
    let server = Server::start();
    let s = summary(&server.bench(&[
        "client-events",
        "-n",
        "6",
        "--group",
        "3",
        "--duration",
        "1",
    ]));
    assert_eq!(s["expected"], 60);
    assert_eq!(s["loss"], 0, "{s}");
    assert_eq!(s["refusals"], 0, "{s}");
}

#[test]
fn bad_input_fails_fast_and_clearly() {
    let fails = |args: &[&str], expected: &str| {
        let started = Instant::now();
        let output = bench(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} took too long"
        );
    };
    let server = Server::start();
    let url = format!("ws://127.0.0.1:{}", server.port);
    // A port nobody listens on: one that was free a moment ago.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    fails(&["--url", &gone, "connect", "-n", "1"], "cannot connect");
    fails(
        &[
            "--url",
            &url,
            "--source-addrs",
            "10.0.0.1",
            "connect",
            "-n",
            "1",
        ],
        "only loopback addresses",
    );
    fails(
        &["--url", &url, "--app-key", "wrong", "connect", "-n", "1"],
        "refused",
    );
    fails(
        &[
            "--url",
            &url,
            "--app-secret",
            "wrong",
            "fanout",
            "-n",
            "1",
            "--duration",
            "1",
        ],
        "401",
    );
    fails(&["--url", "ws://10.0.0.1:80", "connect"], "loopback");
}
