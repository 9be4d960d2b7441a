//! The cache's configuration: an explicit struct, no environment or globals.

use std::path::PathBuf;
use std::time::Duration;

use kiln_chunk::retry::RetryPolicy;
use kiln_core::backoff::Backoff;

/// How a [`crate::ChunkCache`] behaves.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The cache directory (created if missing). Deleting it loses nothing.
    pub cache_dir: PathBuf,
    /// The byte budget of the extracted chunk directories: what they take on disk (their
    /// allocated blocks, what `du` sums, plus 512 bytes per inode), not the sizes of their
    /// files.
    pub budget_bytes: u64,
    /// How long a course's current version is trusted before the catalog is asked again.
    /// Zero asks on every call.
    pub refresh_interval: Duration,
    /// How long a version directory that is no longer current is kept.
    pub version_grace: Duration,
    /// How many times a transient store error is retried before the fetch fails.
    pub retries: u32,
    /// The first retry delay; it doubles per attempt up to 5 s, each jittered into its upper
    /// half ([`Backoff`]).
    pub retry_base: Duration,
    /// How often the server's background task runs [`crate::ChunkCache::maintain`].
    pub maintain_interval: Duration,
    /// How long after the catalog last confirmed a course's current version that version
    /// is still served while the catalog cannot be asked (marked stale). Zero: never.
    pub max_stale: Duration,
    /// How long a lease lasts when its taker names no duration.
    pub lease_ttl: Duration,
    /// The longest lease (or renewal) a taker may ask for.
    pub lease_max_ttl: Duration,
    /// What leases may hold: how many, and how many bytes past the budget.
    pub lease_limits: LeaseLimits,
}

/// What leases may hold, for the whole cache and for one holder (a token), so that no
/// client can pin disk and memory without bound. A lease past a limit is refused, naming
/// it (HTTP 429 for a count, 507 for bytes); renewals and releases always work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLimits {
    /// Leases held at once (default 50,000: about 40 MB of memory).
    pub max_count: usize,
    /// Leases one holder may hold at once (default 10,000).
    pub max_count_per_holder: usize,
    /// Bytes the cache may be past its budget while leases hold chunks; `None` (the
    /// default): the budget itself, so the cache stays within twice its budget.
    pub max_over_budget: Option<u64>,
    /// Bytes the chunks of one holder's leases may take (each chunk once); `None` (the
    /// default): the budget.
    pub max_bytes_per_holder: Option<u64>,
}

impl Default for LeaseLimits {
    fn default() -> Self {
        LeaseLimits {
            max_count: 50_000,
            max_count_per_holder: 10_000,
            max_over_budget: None,
            max_bytes_per_holder: None,
        }
    }
}

impl LoadConfig {
    /// A configuration with the defaults: 10 GiB budget, 2 s refresh, 10 min grace,
    /// 4 retries from 50 ms, maintenance every 30 s, leases of 60 s (at most 1 h), stale current versions served for up to 5 min.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        LoadConfig {
            cache_dir: cache_dir.into(),
            budget_bytes: 10 << 30,
            refresh_interval: Duration::from_secs(2),
            version_grace: Duration::from_secs(600),
            retries: 4,
            retry_base: Duration::from_millis(50),
            maintain_interval: Duration::from_secs(30),
            max_stale: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(60),
            lease_max_ttl: Duration::from_secs(3600),
            lease_limits: LeaseLimits::default(),
        }
    }

    /// How a fetch retries transient store errors: `retries` times, from `retry_base`.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            backoff: Backoff {
                base: self.retry_base,
                max: MAX_RETRY_DELAY,
            },
        }
    }
}

/// The longest wait between two attempts of a fetch.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
