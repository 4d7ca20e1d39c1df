//! Prometheus metrics at `/metrics`: connections and occupied channels per app, frames and
//! bytes in and out, errors sent by code, HTTP API requests and failures, webhook POSTs
//! delivered and failed, how long events from other nodes took to arrive, and whether this
//! node reaches Redis. The per-frame counters are plain atomics (no lock on the hot path);
//! everything else is read from the state when scraped. The operator's console (`console`)
//! samples the same counters through [`Totals`].
//!
//! Not public by default (the metrics name every app id): served on the main port only with a
//! bearer token (`--metrics-token`), or on a listen address of their own (`--metrics-addr`,
//! where the token is asked for too if set); with neither, `/metrics` answers 404.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::state::Shared;

/// Counters every connection updates.
#[derive(Default)]
pub struct Metrics {
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    /// `pusher:error` frames sent, by code (0: no code). Errors are rare, so a map is fine.
    errors: DashMap<u16, u64>,
    /// From another node's publish to this node's delivery, through Redis.
    pub cluster_latency: Histogram,
    /// Events replayed to subscribers resuming from a position.
    replayed: AtomicU64,
    /// Subscribes that asked to resume and were told `recovered: false`.
    recoveries_failed: AtomicU64,
    /// Requests to the HTTP API (`/apps/...`), and those answered with a 4xx or 5xx.
    api_requests: AtomicU64,
    api_errors: AtomicU64,
}

/// One app's webhook POSTs: delivered (a 2xx), and attempts that failed (each retry counts).
#[derive(Default)]
pub struct WebhookOutcomes {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

/// This node's counters at one instant, summed over its apps: what the console samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub connections: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub api_requests: u64,
    pub api_errors: u64,
    pub webhooks_delivered: u64,
    pub webhooks_failed: u64,
    /// Events that came through Redis from other nodes, and their delays summed.
    pub relayed: u64,
    pub relay_micros: u64,
}

impl Totals {
    /// Two nodes' counters together.
    pub fn plus(&self, other: &Totals) -> Totals {
        Totals {
            connections: self.connections + other.connections,
            frames_in: self.frames_in + other.frames_in,
            frames_out: self.frames_out + other.frames_out,
            api_requests: self.api_requests + other.api_requests,
            api_errors: self.api_errors + other.api_errors,
            webhooks_delivered: self.webhooks_delivered + other.webhooks_delivered,
            webhooks_failed: self.webhooks_failed + other.webhooks_failed,
            relayed: self.relayed + other.relayed,
            relay_micros: self.relay_micros + other.relay_micros,
        }
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// A Prometheus histogram of atomics: observing one value is a few relaxed adds.
#[derive(Default)]
pub struct Histogram {
    /// Observations at or under each bound (not cumulative; summed when rendered).
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

impl Metrics {
    pub fn received(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `frames` frames of `bytes` bytes in all written to one connection.
    pub fn sent(&self, frames: usize, bytes: usize) {
        self.frames_out.fetch_add(frames as u64, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A subscribe done: whether it asked to resume and got everything, and how many events
    /// it was replayed.
    pub fn resumed(&self, recovered: Option<bool>, replayed: usize) {
        if recovered == Some(false) {
            self.recoveries_failed.fetch_add(1, Ordering::Relaxed);
        }
        self.replayed.fetch_add(replayed as u64, Ordering::Relaxed);
    }

    pub fn error(&self, code: Option<u16>) {
        *self.errors.entry(code.unwrap_or(0)).or_default() += 1;
    }

    /// The counters now, with `shared`'s connections and webhook outcomes.
    pub fn totals(&self, shared: &Shared) -> Totals {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut totals = Totals {
            frames_in: load(&self.frames_in),
            frames_out: load(&self.frames_out),
            api_requests: load(&self.api_requests),
            api_errors: load(&self.api_errors),
            relayed: load(&self.cluster_latency.count),
            relay_micros: load(&self.cluster_latency.sum_micros),
            ..Totals::default()
        };
        for app in shared.apps() {
            totals.connections += app.connection_count() as u64;
            totals.webhooks_delivered += load(&app.webhooks.outcomes.delivered);
            totals.webhooks_failed += load(&app.webhooks.outcomes.failed);
        }
        totals
    }
}

/// Middleware on the HTTP API's routes: counts its requests and failures.
pub async fn count_api(
    State(shared): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let metrics = shared.metrics();
    metrics.api_requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_client_error() || response.status().is_server_error() {
        metrics.api_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Asked for as `Authorization: Bearer {token}` wherever `/metrics` is served.
    pub token: Option<String>,
    /// A listen address serving `/metrics` alone, instead of the main port.
    pub addr: Option<std::net::SocketAddr>,
}

/// `/metrics` on the main port, unless it has a listen address of its own.
pub fn routes(access: &Access) -> Router<Shared> {
    match access.addr {
        Some(_) => Router::new(),
        None => Router::new().route("/metrics", get(metrics)),
    }
}

/// Serves `/metrics` alone on its own listener until `shutdown`.
pub async fn serve_on(listener: tokio::net::TcpListener, shared: Shared) -> std::io::Result<()> {
    let shutdown = shared.shutdown().clone();
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let access = &shared.config().metrics;
    let refused = |status, message: &str| (status, Json(serde_json::json!({ "error": message })));
    match &access.token {
        Some(token) if !bears(&headers, token) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "Metrics need Authorization: Bearer {token}",
            )
            .into_response()
        }
        None if access.addr.is_none() => {
            return refused(
                StatusCode::NOT_FOUND,
                "Metrics are off: set --metrics-token or --metrics-addr",
            )
            .into_response()
        }
        _ => {}
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&shared),
    )
        .into_response()
}

/// Whether the request carries `token` as its bearer token. Digests are compared, so the time
/// taken says nothing about how much of the token was right.
pub(crate) fn bears(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| Sha256::digest(given.trim()) == Sha256::digest(token))
}

/// The Prometheus text exposition of this node's metrics.
fn render(shared: &Shared) -> String {
    let m = shared.metrics();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP overtone_connections Open WebSocket connections.\n# TYPE overtone_connections gauge"
    );
    for app in shared.apps() {
        let _ = writeln!(
            out,
            "overtone_connections{{app=\"{}\"}} {}",
            app.config.id,
            app.connection_count()
        );
    }
    let counters = [
        (
            "overtone_frames_received_total",
            "Frames received from clients.",
            &m.frames_in,
        ),
        (
            "overtone_bytes_received_total",
            "Bytes of frames received from clients.",
            &m.bytes_in,
        ),
        (
            "overtone_frames_sent_total",
            "Frames sent to clients.",
            &m.frames_out,
        ),
        (
            "overtone_bytes_sent_total",
            "Bytes of frames sent to clients.",
            &m.bytes_out,
        ),
        (
            "overtone_history_replayed_total",
            "Events replayed to subscribers resuming from a position.",
            &m.replayed,
        ),
        (
            "overtone_history_recoveries_failed_total",
            "Subscribes that asked to resume and were told recovered: false.",
            &m.recoveries_failed,
        ),
        (
            "overtone_api_requests_total",
            "Requests to the HTTP API.",
            &m.api_requests,
        ),
        (
            "overtone_api_errors_total",
            "HTTP API requests answered with a 4xx or 5xx.",
            &m.api_errors,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP overtone_errors_total pusher:error frames sent, by code (0: none).\n# TYPE overtone_errors_total counter"
    );
    for entry in m.errors.iter() {
        let _ = writeln!(
            out,
            "overtone_errors_total{{code=\"{}\"}} {}",
            entry.key(),
            entry.value()
        );
    }
    let _ = writeln!(
        out,
        "# HELP overtone_webhooks_delivered_total Webhook POSTs answered with a 2xx.\n# TYPE overtone_webhooks_delivered_total counter\n# HELP overtone_webhook_attempts_failed_total Webhook POST attempts that failed (each retry counts).\n# TYPE overtone_webhook_attempts_failed_total counter"
    );
    for app in shared.apps() {
        let outcomes = &app.webhooks.outcomes;
        let id = &app.config.id;
        let _ = writeln!(
            out,
            "overtone_webhooks_delivered_total{{app=\"{id}\"}} {}\novertone_webhook_attempts_failed_total{{app=\"{id}\"}} {}",
            outcomes.delivered.load(Ordering::Relaxed),
            outcomes.failed.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP overtone_channels Channels with subscribers on this node.\n# TYPE overtone_channels gauge"
    );
    for app in shared.apps() {
        let channels = app.channels.occupied("").len();
        let _ = writeln!(
            out,
            "overtone_channels{{app=\"{}\"}} {channels}",
            app.config.id
        );
    }
    if let Some(cluster) = shared.cluster() {
        m.cluster_latency.render(
            &mut out,
            "overtone_cluster_delivery_seconds",
            "From another node's publish to delivery here, through Redis.",
        );
        let _ = writeln!(
            out,
            "# HELP overtone_redis_connected Whether this node is subscribed to Redis.\n# TYPE overtone_redis_connected gauge\novertone_redis_connected {}",
            u8::from(cluster.is_connected())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(std::time::Duration::from_micros(300));
        histogram.observe(std::time::Duration::from_millis(20));
        histogram.observe(std::time::Duration::from_secs(3));
        let mut out = String::new();
        histogram.render(&mut out, "h", "test");
        assert!(out.contains("h_bucket{le=\"0.0005\"} 1\n"));
        assert!(out.contains("h_bucket{le=\"0.025\"} 2\n"));
        assert!(out.contains("h_bucket{le=\"1\"} 2\n"));
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("h_count 3\n"));
    }
}
