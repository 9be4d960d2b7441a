//! Leases: an ensure's [`Pin`] kept past the call, for callers that read the returned
//! directory from disk after asking (an app server reads a question's files during its own
//! request, well after `POST /ensure` answered).
//!
//! A lease holds the pin itself, so it keeps exactly what a pin keeps: every chunk the
//! ensure named and the version directory. It ends when released, or at its deadline
//! (`ttl` after it was taken or last renewed); the chunks then become evictable again and
//! the version directory removable. While leases hold, the cache may exceed its byte budget:
//! a lease is a promise, the budget a target (see [`crate::MetricsSnapshot::bytes_over_budget`]).
//!
//! Leases live in this process's memory, beside the pins of the index. Another process
//! that shares the cache directory reads chunks through its own [`crate::ChunkCache`] and
//! its own pins and leases; eviction is per process (one evicting process per directory).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

// tokio's clock (std's outside a runtime): tests drive lease expiry with a paused clock.
use tokio::time::Instant;

use kiln_core::{Error, Result};

use crate::cache::{ChunkCache, Pin};

/// A lease's id: 128 random bits, as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(u128);

impl LeaseId {
    pub(crate) fn random() -> LeaseId {
        LeaseId(rand::random())
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({self})")
    }
}

impl FromStr for LeaseId {
    type Err = Error;

    fn from_str(s: &str) -> Result<LeaseId> {
        let ok = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let bad = || Error::invalid(format!("invalid lease id {s:?}: expected 32 hex digits"));
        if !ok {
            return Err(bad());
        }
        u128::from_str_radix(s, 16).map(LeaseId).map_err(|_| bad())
    }
}

/// A lease as its holder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The id to renew or release it with.
    pub id: LeaseId,
    /// When it ends unless renewed (wall clock, for the holder's information; the cache
    /// itself counts on a monotonic clock).
    pub expires_at: SystemTime,
    /// Its duration from now (the last take or renewal).
    pub ttl: Duration,
}

struct Held {
    pin: Pin,
    deadline: Instant,
    info: LeaseInfo,
}

/// The live leases of one cache. Behind its own std `Mutex` in [`crate::cache`]: sections
/// are short and never await. Pins leave this table only to be dropped by the caller after
/// the lock is released (dropping a pin takes the index lock and may evict).
#[derive(Default)]
pub(crate) struct Leases {
    held: HashMap<LeaseId, Held>,
    by_deadline: BTreeSet<(Instant, LeaseId)>,
}

impl Leases {
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Takes a lease over `pin` for `ttl`.
    pub(crate) fn insert(&mut self, pin: Pin, ttl: Duration, now: Instant) -> LeaseInfo {
        let id = loop {
            let id = LeaseId::random();
            if !self.held.contains_key(&id) {
                break id;
            }
        };
        let info = info(id, ttl);
        let deadline = now + ttl;
        self.by_deadline.insert((deadline, id));
        self.held.insert(
            id,
            Held {
                pin,
                deadline,
                info,
            },
        );
        info
    }

    /// Extends a live lease to `ttl` from now.
    pub(crate) fn renew(&mut self, id: &LeaseId, ttl: Duration, now: Instant) -> Option<LeaseInfo> {
        let held = self.held.get_mut(id).filter(|h| h.deadline > now)?;
        self.by_deadline.remove(&(held.deadline, *id));
        held.deadline = now + ttl;
        held.info = info(*id, ttl);
        self.by_deadline.insert((held.deadline, *id));
        Some(held.info)
    }

    /// Ends a lease; `None` if it is unknown or already over.
    pub(crate) fn remove(&mut self, id: &LeaseId, now: Instant) -> Option<Pin> {
        let held = self.held.remove(id)?;
        self.by_deadline.remove(&(held.deadline, *id));
        (held.deadline > now).then_some(held.pin)
    }

    /// Ends every lease whose deadline has passed and returns their pins.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Pin> {
        let mut out = Vec::new();
        while let Some(&(deadline, id)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if let Some(h) = self.held.remove(&id) {
                out.push(h.pin);
            }
        }
        out
    }
}

impl ChunkCache {
    /// Turns an ensure's pin into a lease of `ttl` (default [`crate::LoadConfig::lease_ttl`],
    /// at most [`crate::LoadConfig::lease_max_ttl`]): the chunks and the version directory
    /// stay on disk until it is released or expires.
    pub fn lease(&self, pin: Pin, ttl: Option<Duration>) -> Result<LeaseInfo> {
        if !pin.belongs_to(self) {
            return Err(Error::invalid(
                "a pin can only be leased from the cache that made it",
            ));
        }
        let ttl = self.lease_ttl(ttl)?;
        let now = Instant::now();
        let (info, expired) = {
            let mut leases = self.inner().leases();
            let expired = leases.take_expired(now);
            (leases.insert(pin, ttl, now), expired)
        };
        drop(expired);
        Ok(info)
    }

    /// Extends a live lease to `ttl` from now (default as for [`ChunkCache::lease`]). A lease
    /// that has ended (released or expired) is not found: its chunks may be gone already, so
    /// the holder must ensure again.
    pub fn renew_lease(&self, id: &LeaseId, ttl: Option<Duration>) -> Result<LeaseInfo> {
        let ttl = self.lease_ttl(ttl)?;
        let now = Instant::now();
        let (renewed, expired) = {
            let mut leases = self.inner().leases();
            let renewed = leases.renew(id, ttl, now);
            (renewed, leases.take_expired(now))
        };
        drop(expired);
        renewed.ok_or_else(|| lease_not_found(id))
    }

    /// Ends a lease now; its chunks may be evicted from here on.
    pub fn release_lease(&self, id: &LeaseId) -> Result<()> {
        let now = Instant::now();
        let (pin, expired) = {
            let mut leases = self.inner().leases();
            (leases.remove(id, now), leases.take_expired(now))
        };
        drop(expired);
        // Dropped here, outside the leases lock: unpinning takes the index lock and evicts.
        pin.map(drop).ok_or_else(|| lease_not_found(id))
    }

    /// Ends the leases whose deadline has passed. Lease calls and ensures do this as they
    /// go; the server's maintenance loop also does it every second, so an idle cache does
    /// not stay over budget for long.
    pub fn expire_leases(&self) -> usize {
        let expired = self.inner().leases().take_expired(Instant::now());
        expired.len()
    }

    fn lease_ttl(&self, ttl: Option<Duration>) -> Result<Duration> {
        let config = self.config();
        match ttl {
            None => Ok(config.lease_ttl.min(config.lease_max_ttl)),
            Some(t) if t.is_zero() => Err(Error::invalid("invalid lease ttl: must be positive")),
            Some(t) if t > config.lease_max_ttl => Err(Error::invalid(format!(
                "invalid lease ttl: {} ms is more than the maximum {} ms",
                t.as_millis(),
                config.lease_max_ttl.as_millis()
            ))),
            Some(t) => Ok(t),
        }
    }
}

fn lease_not_found(id: &LeaseId) -> Error {
    Error::not_found(format!("lease {id} (released, expired or never taken)"))
}

fn info(id: LeaseId, ttl: Duration) -> LeaseInfo {
    LeaseInfo {
        id,
        expires_at: SystemTime::now() + ttl,
        ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_round_trip_and_bad_ones_are_named() {
        let id = LeaseId::random();
        assert_eq!(id.to_string().parse::<LeaseId>().unwrap(), id);
        for bad in [
            "",
            "xyz",
            &"g".repeat(32),
            &"a".repeat(33),
            "+0000000000000000000000000000001",
        ] {
            let err = bad.parse::<LeaseId>().unwrap_err();
            assert!(
                err.to_string().contains("invalid lease id"),
                "{bad:?}: {err}"
            );
        }
    }
}
