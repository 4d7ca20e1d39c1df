//! Prometheus metrics at `/metrics`: connections per app, frames and bytes in and out, errors
//! sent by code, and whether this node reaches Redis. The per-frame counters are plain atomics
//! (no lock on the hot path); everything else is read from the state when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use dashmap::DashMap;

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
}

impl Metrics {
    pub fn received(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn sent(&self, bytes: usize) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn error(&self, code: Option<u16>) {
        *self.errors.entry(code.unwrap_or(0)).or_default() += 1;
    }
}

pub fn routes() -> Router<Shared> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&shared),
    )
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
    if let Some(cluster) = shared.cluster() {
        let _ = writeln!(
            out,
            "# HELP overtone_redis_connected Whether this node is subscribed to Redis.\n# TYPE overtone_redis_connected gauge\novertone_redis_connected {}",
            u8::from(cluster.is_connected())
        );
    }
    out
}
