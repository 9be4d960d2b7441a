//! The one retry loop for object-store calls: retry transient failures a bounded number of
//! times, waiting as [`Backoff`] says between attempts.

use std::future::Future;
use std::time::Duration;

use kiln_core::backoff::Backoff;

/// An error that says whether retrying may succeed.
pub trait Transient {
    /// Whether retrying the operation may succeed.
    fn is_transient(&self) -> bool;
}

impl Transient for object_store::Error {
    fn is_transient(&self) -> bool {
        crate::store_error::is_transient(self)
    }
}

impl Transient for kiln_core::Error {
    fn is_transient(&self) -> bool {
        kiln_core::Error::is_transient(self)
    }
}

/// How often and how patiently an operation is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `retries + 1` attempts).
    pub retries: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// The policy of sync's and gc's store calls: 4 retries, waiting 100-200 ms, 200-400 ms,
    /// 400-800 ms and 800-1600 ms.
    pub const STORE: RetryPolicy = RetryPolicy {
        retries: 4,
        backoff: Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        },
    };
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::STORE
    }
}

/// Runs `op` until it succeeds, fails with an error that is not transient, or has failed
/// `policy.retries + 1` times; each retry is logged.
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, op: F) -> Result<T, E>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_observed(policy, op, |attempt, delay, e| {
        tracing::warn!(error = %e, attempt, ?delay, "object store error, retrying");
    })
    .await
}

/// Like [`retry`], calling `on_retry(attempt, delay, error)` (attempt 1 for the first
/// retry) instead of logging, before each wait.
pub async fn retry_observed<T, E, F, Fut>(
    policy: &RetryPolicy,
    mut op: F,
    mut on_retry: impl FnMut(u32, Duration, &E),
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < policy.retries => {
                attempt += 1;
                let delay = policy.backoff.delay(attempt);
                on_retry(attempt, delay, &e);
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[derive(Debug)]
    struct E(bool);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    const FAST: RetryPolicy = RetryPolicy {
        retries: 3,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
    };

    #[tokio::test]
    async fn retries_transient_errors_a_bounded_number_of_times() {
        let calls = Cell::new(0);
        let seen = Cell::new(0);
        let r: Result<(), E> = retry_observed(
            &FAST,
            || {
                calls.set(calls.get() + 1);
                async { Err(E(true)) }
            },
            |attempt, delay, _| {
                seen.set(attempt);
                assert!(delay <= Duration::from_millis(2));
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!((calls.get(), seen.get()), (4, 3));
    }

    #[tokio::test]
    async fn stops_at_success_or_a_final_error() {
        let calls = Cell::new(0);
        let r: Result<u32, E> = retry_observed(
            &FAST,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err(E(true)) } else { Ok(n) } }
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(r.unwrap(), 3);
        calls.set(0);
        let r: Result<(), E> = retry_observed(
            &FAST,
            || {
                calls.set(calls.get() + 1);
                async { Err(E(false)) }
            },
            |_, _, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn the_store_policy_waits_as_sync_always_did() {
        let b = RetryPolicy::STORE.backoff;
        for (attempt, lo, hi) in [(1, 100, 200), (2, 200, 400), (3, 400, 800), (4, 800, 1600)] {
            assert_eq!(b.delay_at(attempt, 0.0), Duration::from_millis(lo));
            assert_eq!(b.delay_at(attempt, 1.0), Duration::from_millis(hi));
        }
        assert_eq!(RetryPolicy::STORE.retries + 1, 5, "five attempts");
    }
}
