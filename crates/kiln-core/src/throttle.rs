//! Throttles: a key's limits (jobs leased at once, jobs leased per second) that every
//! worker's leases honour together, and the token-bucket arithmetic every queue backend
//! shares; each backend only stores a bucket and counts the leases a key holds.
//!
//! A job enqueued with a throttle key (kiln-reheat gives every render job its library's
//! name) is leased only by a lease that names the key in [`LeaseOptions::throttles`], and
//! then within the key's [`Limit`]:
//! - **concurrency**: valid leases of the key's jobs, across all workers, stay at or below
//!   it; an expired, acked, retried, failed, released or reclaimed lease frees its slot, so a
//!   crashed worker holds none for longer than its leases last;
//! - **rate**: a token bucket per key, filled at `per_second` up to `burst`; each leased job
//!   takes one token.
//!
//! [`LeaseOptions::throttles`]: crate::queue::LeaseOptions::throttles

use std::num::NonZeroU32;
use std::time::Duration;

use crate::time::Timestamp;
use crate::{Error, Result};

/// How often a lease bound only by concurrency looks again (a slot frees when any holder
/// settles, which no backend announces across processes).
pub const CONCURRENCY_RECHECK: Duration = Duration::from_millis(25);

/// A throttle key and its limit, as a lease names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// The key the jobs were enqueued with.
    pub key: String,
    /// Its limits; the default limits nothing.
    pub limit: Limit,
}

/// A key's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limit {
    /// Valid leases of the key's jobs at once, across all workers.
    pub concurrency: Option<NonZeroU32>,
    /// Jobs leased per second, across all workers.
    pub rate: Option<Rate>,
}

impl Limit {
    /// Whether the limit limits anything.
    pub fn is_none(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none()
    }
}

/// A rate: `per_second` on average, at most `burst` at once after an idle spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: NonZeroU32,
}

impl Rate {
    /// `per_second` with `burst` (default: a fifth of a second's worth, at least 1). A rate
    /// that is not a positive finite number is refused, naming it.
    pub fn new(per_second: f64, burst: Option<u32>) -> Result<Rate> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(Error::invalid(format!(
                "rate {per_second}: renders per second must be a positive number"
            )));
        }
        let burst = match burst {
            Some(b) => NonZeroU32::new(b)
                .ok_or_else(|| Error::invalid("burst 0: a burst must be at least 1"))?,
            None => NonZeroU32::new(((per_second / 5.0).ceil() as u32).max(1))
                .unwrap_or(NonZeroU32::MIN),
        };
        Ok(Rate { per_second, burst })
    }

    /// Jobs per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The bucket's size.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// `bucket` (a full one if none is stored yet) refilled up to `now`.
    pub fn refill(&self, bucket: Option<Bucket>, now: Timestamp) -> Bucket {
        let cap = f64::from(self.burst.get());
        match bucket {
            None => Bucket {
                tokens: cap,
                at: now,
            },
            Some(b) => {
                let elapsed = (now.0 - b.at.0).max(0) as f64 / 1000.0;
                Bucket {
                    tokens: (b.tokens + elapsed * self.per_second).min(cap),
                    at: Timestamp(now.0.max(b.at.0)),
                }
            }
        }
    }

    /// How long until `bucket` holds half its burst again: a lease sooner would take a
    /// handful of jobs at a time, one later could let the bucket overflow and lose rate.
    pub fn wait(&self, bucket: &Bucket) -> Duration {
        let target = f64::from(self.burst.get().div_ceil(2));
        let missing = (target - bucket.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.per_second).max(Duration::from_millis(1))
    }
}

/// A token bucket as a backend stores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens at `at`.
    pub tokens: f64,
    /// When `tokens` was right.
    pub at: Timestamp,
}

/// One throttled key's part of a lease: [`Throttle::plan`] before the backend leases,
/// [`Plan::settle`] after.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// At most this many of the key's jobs.
    pub cap: usize,
    want: usize,
    rate: Option<Rate>,
    bucket: Option<Bucket>,
}

impl Throttle {
    /// The key's part of a lease of `want` jobs, with `held` valid leases of its jobs now
    /// and its stored `bucket` (ignored without a rate).
    pub fn plan(&self, want: usize, held: u64, bucket: Option<Bucket>, now: Timestamp) -> Plan {
        let mut cap = want;
        if let Some(c) = self.limit.concurrency {
            cap = cap.min(u64::from(c.get()).saturating_sub(held) as usize);
        }
        let bucket = self.limit.rate.map(|r| r.refill(bucket, now));
        if let Some(b) = &bucket {
            cap = cap.min(b.tokens.floor().max(0.0) as usize);
        }
        Plan {
            cap,
            want,
            rate: self.limit.rate,
            bucket,
        }
    }
}

impl Plan {
    /// After `got` of the key's jobs were leased: the bucket to store (with a rate), and how
    /// long until more may be leased when the limit held jobs back (`got` reached a cap
    /// below `want`).
    pub fn settle(self, got: usize) -> (Option<Bucket>, Option<Duration>) {
        let bucket = self.bucket.map(|b| Bucket {
            tokens: b.tokens - got as f64,
            at: b.at,
        });
        let bound = self.cap < self.want && got >= self.cap;
        let wait = bound.then(|| match (self.rate, &bucket) {
            (Some(r), Some(b)) if b.tokens < 1.0 => r.wait(b),
            _ => CONCURRENCY_RECHECK,
        });
        (bucket, wait)
    }
}

/// The sooner of two waits.
pub fn sooner(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: f64) -> Limit {
        Limit {
            concurrency: None,
            rate: Some(Rate::new(per_second, None).unwrap()),
        }
    }

    fn throttle(limit: Limit) -> Throttle {
        Throttle {
            key: "lib".into(),
            limit,
        }
    }

    #[test]
    fn a_fresh_bucket_allows_its_burst_then_waits_for_tokens() {
        let t = throttle(rate(100.0));
        let plan = t.plan(1000, 0, None, Timestamp(0));
        assert_eq!(plan.cap, 20, "a fifth of a second's worth");
        let (bucket, wait) = plan.settle(20);
        let bucket = bucket.unwrap();
        assert_eq!(bucket.tokens, 0.0);
        assert_eq!(
            wait,
            Some(Duration::from_millis(100)),
            "until half the burst"
        );
        let later = t.plan(1000, 0, Some(bucket), Timestamp(50));
        assert_eq!(later.cap, 5, "50 ms at 100/s");
        let full = t.plan(1000, 0, Some(bucket), Timestamp(60_000));
        assert_eq!(full.cap, 20, "never beyond the burst");
    }

    #[test]
    fn concurrency_counts_what_is_held() {
        let t = throttle(Limit {
            concurrency: NonZeroU32::new(4),
            rate: None,
        });
        assert_eq!(t.plan(10, 1, None, Timestamp(0)).cap, 3);
        let full = t.plan(10, 6, None, Timestamp(0));
        assert_eq!(full.cap, 0);
        assert_eq!(full.settle(0), (None, Some(CONCURRENCY_RECHECK)));
    }

    #[test]
    fn a_limit_that_does_not_bind_says_nothing() {
        let t = throttle(rate(1000.0));
        let (_, wait) = t.plan(10, 0, None, Timestamp(0)).settle(10);
        assert_eq!(
            wait, None,
            "the lease asked for fewer than the bucket holds"
        );
        let (_, wait) = t.plan(1000, 0, None, Timestamp(0)).settle(7);
        assert_eq!(wait, None, "fewer jobs were ready than the cap");
    }

    #[test]
    fn a_bad_rate_is_refused_with_its_value() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Rate::new(bad, None).unwrap_err().to_string();
            assert!(e.contains("rate"), "{e}");
        }
        assert!(
            Rate::new(5.0, Some(0))
                .unwrap_err()
                .to_string()
                .contains("burst 0")
        );
    }
}
