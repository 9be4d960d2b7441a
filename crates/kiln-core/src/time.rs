//! Timestamps: milliseconds since the Unix epoch, as every backend stores them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(d.as_millis() as i64)
    }

    /// This time plus `d`.
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_millis() as i64))
    }

    /// This time minus `d`.
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(d.as_millis() as i64))
    }
}
