//! `overtone-bench`: a load generator for any Pusher-protocol server on 127.0.0.1. It lives
//! beside the server, not in the `overtone` binary: operators' servers do not carry it.
//!
//! Owns the command line, the run's overall time bound and the one-line JSON summary on stdout
//! (progress goes to stderr). One module per concern: [`server_under_test`] (where the server
//! is and its app credentials), [`ws`] (WebSocket clients), [`api`] (signed HTTP API calls),
//! [`procfs`] (RSS and CPU time from /proc), [`latency`] (timestamps in payloads and
//! histograms), and one module per scenario: [`connect`], [`fanout`], [`presence`],
//! [`client_events`].

mod api;
mod client_events;
mod connect;
mod fanout;
mod latency;
mod presence;
mod procfs;
mod server_under_test;
mod ws;

use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

use server_under_test::TargetArgs;

/// A bench failure, already worded for the person running it.
pub type Result<T> = std::result::Result<T, String>;

/// Load-test a Pusher-protocol server on 127.0.0.1 and print a JSON summary.
#[derive(Parser)]
#[command(name = "overtone-bench", version)]
struct BenchArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open N idle connections: server memory per connection, and memory returned on close.
    Connect(connect::ConnectArgs),
    /// N subscribers over C channels, events at R/s through the HTTP API: latency, loss, CPU.
    Fanout(fanout::FanoutArgs),
    /// Members join a presence channel at once, then churn: latency and correctness of views.
    Presence(presence::PresenceArgs),
    /// Client events (whispers) between connections on private channels: latency and loss.
    ClientEvents(client_events::ClientEventsArgs),
}

/// Setup (connecting, subscribing) may take this long on top of a scenario's own duration.
const SETUP_BUDGET: Duration = Duration::from_secs(120);

/// Runs one scenario and prints its summary; errors are printed and give a non-zero exit.
fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(err) = procfs::raise_fd_limit() {
        eprintln!("overtone-bench: {err}");
    }
    let result = runtime.block_on(async {
        let target = args.target.resolve()?;
        let (budget, run) = match args.scenario {
            Scenario::Connect(a) => (a.bound(), boxed(connect::run(target, a))),
            Scenario::Fanout(a) => (a.bound(), boxed(fanout::run(target, a))),
            Scenario::Presence(a) => (a.bound(), boxed(presence::run(target, a))),
            Scenario::ClientEvents(a) => (a.bound(), boxed(client_events::run(target, a))),
        };
        let limit = budget + SETUP_BUDGET;
        tokio::time::timeout(limit, run).await.map_err(|_| {
            format!(
                "gave up after {} s (server too slow or stuck)",
                limit.as_secs()
            )
        })?
    });
    match result {
        Ok(summary) => {
            println!("{summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("overtone-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

type ScenarioRun = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value>> + Send>>;

fn boxed(run: impl std::future::Future<Output = Result<Value>> + Send + 'static) -> ScenarioRun {
    Box::pin(run)
}

/// Progress for the person watching, on stderr so stdout stays one JSON line.
fn progress(message: impl std::fmt::Display) {
    eprintln!("bench: {message}");
}

/// Three decimals are plenty for every figure printed.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU seconds per 100,000 deliveries; none when nothing was delivered.
fn per_100k(cpu_seconds: f64, deliveries: u64) -> Option<f64> {
    (deliveries > 0).then(|| round(cpu_seconds * 100_000.0 / deliveries as f64))
}
