//! Latency measurement: send timestamps carried inside payloads, and histograms of
//! "received now minus sent then".
//!
//! Sender and receivers live in this one process, so one monotonic clock serves both.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Marks a timestamp inside a payload. It has no quotes or backslashes, so it reads the same
/// whether a server relays the payload as a JSON string, as an object or double-encoded.
const STAMP_PREFIX: &str = "otb:";

/// Microseconds on the bench's monotonic clock.
pub fn now_micros() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A payload string carrying the current time.
pub fn stamp_now() -> String {
    format!("{STAMP_PREFIX}{}:", now_micros())
}

/// The send time carried by a frame, if it carries one.
pub fn read_stamp(frame: &str) -> Option<u64> {
    let start = frame.find(STAMP_PREFIX)? + STAMP_PREFIX.len();
    let digits = &frame[start..];
    let end = digits.find(':')?;
    digits[..end].parse().ok()
}

/// A histogram of latencies in microseconds, shared by every receiving connection.
pub struct Latencies(Mutex<Histogram<u64>>);

impl Latencies {
    pub fn new() -> Self {
        // 1 µs to 1 hour: longer latencies are clamped (the run is bounded far below that).
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Self(Mutex::new(histogram))
    }

    /// Records the latency of something sent at `sent_micros` and received now.
    pub fn record_since(&self, sent_micros: u64) {
        let latency = now_micros().saturating_sub(sent_micros);
        self.0
            .lock()
            .expect("histogram lock")
            .saturating_record(latency);
    }

    pub fn count(&self) -> u64 {
        self.0.lock().expect("histogram lock").len()
    }

    /// `{count, p50_ms, p99_ms, max_ms}`.
    pub fn summary(&self) -> Value {
        let histogram = self.0.lock().expect("histogram lock");
        let ms = |micros: u64| micros as f64 / 1000.0;
        json!({
            "count": histogram.len(),
            "p50_ms": ms(histogram.value_at_quantile(0.50)),
            "p99_ms": ms(histogram.value_at_quantile(0.99)),
            "max_ms": ms(histogram.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_survives_json_string_encoding() {
        let stamp = stamp_now();
        let sent = read_stamp(&stamp).unwrap();
        let double_encoded =
            serde_json::to_string(&serde_json::to_string(&stamp).unwrap()).unwrap();
        assert_eq!(
            read_stamp(&format!(r#"{{"data":{double_encoded}}}"#)),
            Some(sent)
        );
        assert_eq!(read_stamp(r#"{"event":"x","data":"{}"}"#), None);
    }
}
