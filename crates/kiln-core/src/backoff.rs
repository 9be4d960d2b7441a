//! Retry delays: exponential backoff with jitter, the one delay policy of kiln (kiln-chunk's
//! object-store retries, kiln-load's fetches, kiln-reheat's job retries).

use std::time::Duration;

/// Exponential backoff: attempt n waits `base * 2^(n-1)`, capped at `max`, then jittered
/// to a random point in its upper half so that a burst of failures does not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1 for the first), with random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_at(attempt, rand::random::<f64>())
    }

    /// The delay after failed attempt `attempt` at point `jitter` (in `[0, 1)`) of its
    /// jitter range: 0 gives half the full delay, 1 the full delay.
    pub fn delay_at(&self, attempt: u32, jitter: f64) -> Duration {
        let full = self.ceiling(attempt);
        let half = full / 2;
        half + full.saturating_sub(half).mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The full (unjittered) delay after failed attempt `attempt`.
    fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters_within_bounds() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = b.delay(attempt).as_millis() as u64;
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}ms");
            }
            assert_eq!(b.delay_at(attempt, 0.0), Duration::from_millis(full / 2));
            assert_eq!(b.delay_at(attempt, 1.0), Duration::from_millis(full));
        }
    }
}
