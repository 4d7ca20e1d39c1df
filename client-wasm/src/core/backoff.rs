//! Reconnect delays: capped exponential backoff with full jitter, and the tiny PRNG behind the
//! jitter (the shell seeds it; the core has no source of randomness of its own).

/// xorshift64: plenty for spreading reconnects out, and a few bytes of wasm.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // xorshift never leaves zero, so force a set bit.
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..=max`. The modulo bias is negligible for millisecond ranges.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        self.next() % (max.saturating_add(1)).max(1)
    }
}

/// Counts consecutive failed attempts and turns them into delays: the n-th failure waits a
/// uniformly random time in `[0, min(cap, base * 2^n)]` ("full jitter"), so a fleet of clients
/// dropped at once by a restarting server does not come back at once.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: u64,
    cap: u64,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: u64, cap: u64) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The largest delay the current failure count allows.
    fn ceiling(&self) -> u64 {
        // `base * 2^shift`, saturating. Shifting when the bits fit rather than calling
        // `saturating_mul`, which costs a 128-bit multiply in wasm.
        let shift = self.failures.min(32);
        let grown = if self.base.leading_zeros() >= shift {
            self.base << shift
        } else {
            u64::MAX
        };
        grown.min(self.cap)
    }

    /// Records one more failure and returns how long to wait before the next attempt.
    pub(crate) fn next_delay(&mut self, rng: &mut Rng) -> u64 {
        let delay = rng.up_to(self.ceiling());
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_capped_exponential_bound() {
        let (base, cap) = (1_000, 30_000);
        let mut rng = Rng::new(7);
        let mut backoff = Backoff::new(base, cap);
        for n in 0..40u32 {
            let bound = (base << n.min(20)).min(cap);
            let delay = backoff.next_delay(&mut rng);
            assert!(delay <= bound, "failure {n}: {delay} > {bound}");
        }
    }

    #[test]
    fn delays_are_jittered_not_fixed() {
        let mut rng = Rng::new(42);
        let delays: Vec<u64> = (0..20)
            .map(|_| {
                let mut backoff = Backoff::new(1_000, 30_000);
                backoff.failures = 5;
                backoff.next_delay(&mut rng)
            })
            .collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= 30_000));
    }

    #[test]
    fn different_seeds_give_different_delays() {
        let first = |seed| {
            Backoff {
                base: 1_000,
                cap: 30_000,
                failures: 4,
            }
            .next_delay(&mut Rng::new(seed))
        };
        assert_ne!(first(1), first(2));
    }

    #[test]
    fn reset_returns_to_the_base_ceiling() {
        let mut rng = Rng::new(3);
        let mut backoff = Backoff::new(1_000, 30_000);
        for _ in 0..10 {
            backoff.next_delay(&mut rng);
        }
        assert_eq!(backoff.ceiling(), 30_000);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.ceiling(), 1_000);
    }

    #[test]
    fn the_ceiling_saturates_and_stops_doubling_after_32_failures() {
        let ceiling = |base, failures| {
            Backoff {
                base,
                cap: u64::MAX,
                failures,
            }
            .ceiling()
        };
        assert_eq!(ceiling(1, 40), 1 << 32);
        assert_eq!(ceiling(3, 62), 3 << 32);
        assert_eq!(ceiling(1 << 31, 32), 1 << 63);
        assert_eq!(ceiling(1 << 32, 32), u64::MAX);
        assert_eq!(ceiling(u64::MAX / 2, 3), u64::MAX);
        assert_eq!(ceiling(0, 32), 0);
    }

    #[test]
    fn zero_seed_still_produces_numbers() {
        let mut rng = Rng::new(0);
        assert!((0..10).map(|_| rng.up_to(1_000)).any(|n| n != 0));
    }
}
