//! Giving memory back to the operating system after many connections close.
//!
//! glibc's malloc keeps freed small blocks in its arenas, so after thousands of connections
//! close the process stays at its peak size. Once a second this looks at the open connections;
//! when at least [`MIN_DROP`] and half of them closed since the peak, it asks glibc to hand
//! free pages back (`malloc_trim`, a few milliseconds, on a blocking thread). Other platforms'
//! allocators are left to themselves.

use std::time::Duration;

use crate::state::Shared;

/// Closes that make a trim worth its few milliseconds.
const MIN_DROP: usize = 1024;

/// Runs until shutdown.
pub async fn trim_after_closes(shared: Shared) {
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peak = 0usize;
    loop {
        tokio::select! {
            _ = every_second.tick() => {}
            _ = shared.shutdown().cancelled() => return,
        }
        let open: usize = shared.apps().map(|app| app.connection_count()).sum();
        peak = peak.max(open);
        if should_trim(peak, open) {
            peak = open;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Whether enough of the connections open at the `peak` have closed.
fn should_trim(peak: usize, open: usize) -> bool {
    peak - open >= MIN_DROP && open <= peak / 2
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and shrinks glibc's own heaps; any thread may call it.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released, "returned free heap memory to the system");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_half_and_at_least_min_drop_closed() {
        assert!(!should_trim(0, 0));
        assert!(!should_trim(1500, 1000), "fewer than MIN_DROP closed");
        assert!(!should_trim(10_000, 8_000), "more than half still open");
        assert!(should_trim(10_000, 5_000));
        assert!(should_trim(2_000, 0));
    }
}
