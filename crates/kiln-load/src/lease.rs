//! Leases: an ensure's [`Pin`] kept past the call, for callers that read the returned
//! directory from disk after asking (an app server reads a question's files during its own
//! request, well after `POST /ensure` answered).
//!
//! A lease holds the pin itself, so it keeps exactly what a pin keeps: every chunk the
//! ensure named and the version directory. It ends when released, or at its deadline
//! (`ttl` after it was taken or last renewed); the chunks then become evictable again and
//! the version directory removable. While leases hold, the cache may exceed its byte budget:
//! a lease is a promise, the budget a target (see [`crate::MetricsSnapshot::bytes_over_budget`]).
//! How far is bounded by [`crate::LeaseLimits`]: how many leases the cache and one holder (a
//! token) may hold, how many bytes one holder's leases may keep (each chunk once), and how
//! far past the budget leases may keep the cache. A lease past a limit is refused with
//! [`Error::Limit`] naming it; renewals and releases are never refused.
//!
//! Leases live in this process's memory, beside the pins of the index. Another process
//! that shares the cache directory reads chunks through its own [`crate::ChunkCache`] and
//! its own pins and leases; eviction is per process (one evicting process per directory).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// tokio's clock (std's outside a runtime): tests drive lease expiry with a paused clock.
use tokio::time::Instant;

use kiln_core::error::LimitKind;
use kiln_core::{Error, Result};

use crate::cache::{ChunkCache, Pin};
use crate::index::Key;

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
    holder: Arc<str>,
    /// The pin's chunks and their accounted bytes when the lease was taken.
    chunks: Vec<(Key, u64)>,
}

/// What one holder's leases keep: how many, and each chunk once with its bytes.
#[derive(Default)]
struct Tally {
    count: usize,
    chunks: HashMap<Key, u32>,
    bytes: u64,
}

/// The live leases of one cache. Behind its own std `Mutex` in [`crate::cache`]: sections
/// are short and never await. Pins leave this table only to be dropped by the caller after
/// the lock is released (dropping a pin takes the index lock and may evict).
#[derive(Default)]
pub(crate) struct Leases {
    held: HashMap<LeaseId, Held>,
    by_deadline: BTreeSet<(Instant, LeaseId)>,
    holders: HashMap<Arc<str>, Tally>,
}

impl Leases {
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Refuses a new lease for `holder` that would pass `limits`: `adding` are the chunks it
    /// would keep (none for the check before an ensure), `over_budget` the cache's bytes
    /// past its budget now.
    fn admit(
        &self,
        holder: &str,
        adding: &[(Key, u64)],
        over_budget: u64,
        limits: &Limits,
    ) -> Result<()> {
        let who = |h: &str| {
            if h.is_empty() {
                "this server's clients".to_string()
            } else {
                format!("token {h:?}")
            }
        };
        if self.held.len() >= limits.count {
            return Err(count_limit(format!(
                "this server holds {} leases, the most it may (load.lease_max_count): release \
                 leases (DELETE /v1/leases) or let them expire",
                self.held.len()
            )));
        }
        let tally = self.holders.get(holder);
        let count = tally.map_or(0, |t| t.count);
        if count >= limits.per_holder {
            return Err(count_limit(format!(
                "{} hold {count} leases, the most one holder may (load.lease_max_count_per_token): \
                 release leases (DELETE /v1/leases) or let them expire",
                who(holder)
            )));
        }
        let new_bytes: u64 = adding
            .iter()
            .filter(|(k, _)| tally.is_none_or(|t| !t.chunks.contains_key(k)))
            .map(|(_, b)| b)
            .sum();
        let bytes = tally.map_or(0, |t| t.bytes);
        // A holder's first lease is always possible, however large its chunks.
        if bytes + new_bytes > limits.bytes_per_holder && (bytes > 0 || adding.is_empty()) {
            return Err(storage_limit(format!(
                "{} hold leases on {bytes} bytes of chunks, and this lease would add {new_bytes}: \
                 at most {} (load.lease_max_bytes_per_token); release leases first",
                who(holder),
                limits.bytes_per_holder
            )));
        }
        // One lease is always possible, however large its chunks.
        if over_budget > limits.over_budget && !self.held.is_empty() {
            return Err(storage_limit(format!(
                "leases keep this server's cache {over_budget} bytes over its budget, more than \
                 the {} it may (load.lease_max_over_budget): release leases or let them expire",
                limits.over_budget
            )));
        }
        Ok(())
    }

    /// Takes a lease over `pin` for `ttl`, held by `holder`, keeping `chunks`.
    fn insert(
        &mut self,
        pin: Pin,
        ttl: Duration,
        now: Instant,
        holder: &str,
        chunks: Vec<(Key, u64)>,
    ) -> LeaseInfo {
        let id = loop {
            let id = LeaseId::random();
            if !self.held.contains_key(&id) {
                break id;
            }
        };
        let info = info(id, ttl);
        let deadline = now + ttl;
        let holder: Arc<str> = match self.holders.get_key_value(holder) {
            Some((h, _)) => h.clone(),
            None => Arc::from(holder),
        };
        let tally = self.holders.entry(holder.clone()).or_default();
        tally.count += 1;
        for (k, b) in &chunks {
            let refs = tally.chunks.entry(k.clone()).or_insert(0);
            if *refs == 0 {
                tally.bytes += b;
            }
            *refs += 1;
        }
        self.by_deadline.insert((deadline, id));
        self.held.insert(
            id,
            Held {
                pin,
                deadline,
                info,
                holder,
                chunks,
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

    /// Takes a lease out of the table and its holder's tally.
    fn take(&mut self, id: &LeaseId) -> Option<Held> {
        let held = self.held.remove(id)?;
        self.by_deadline.remove(&(held.deadline, *id));
        if let Some(tally) = self.holders.get_mut(&held.holder) {
            tally.count -= 1;
            for (k, b) in &held.chunks {
                if let Some(refs) = tally.chunks.get_mut(k) {
                    *refs -= 1;
                    if *refs == 0 {
                        tally.chunks.remove(k);
                        tally.bytes -= b;
                    }
                }
            }
            if tally.count == 0 {
                self.holders.remove(&held.holder);
            }
        }
        Some(held)
    }

    /// Ends a lease; `None` if it is unknown or already over.
    pub(crate) fn remove(&mut self, id: &LeaseId, now: Instant) -> Option<Pin> {
        let held = self.take(id)?;
        (held.deadline > now).then_some(held.pin)
    }

    /// Ends every lease whose deadline has passed and returns their pins.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Pin> {
        let mut out = Vec::new();
        while let Some(&(deadline, id)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            if let Some(h) = self.take(&id) {
                out.push(h.pin);
            }
        }
        out
    }
}

/// [`crate::LeaseLimits`] with the budget's defaults filled in.
struct Limits {
    count: usize,
    per_holder: usize,
    over_budget: u64,
    bytes_per_holder: u64,
}

fn count_limit(message: String) -> Error {
    Error::Limit {
        kind: LimitKind::Count,
        message,
    }
}

fn storage_limit(message: String) -> Error {
    Error::Limit {
        kind: LimitKind::Storage,
        message,
    }
}

impl ChunkCache {
    /// Turns an ensure's pin into a lease of `ttl` (default [`crate::LoadConfig::lease_ttl`],
    /// at most [`crate::LoadConfig::lease_max_ttl`]): the chunks and the version directory
    /// stay on disk until it is released or expires. The lease has no holder of its own:
    /// see [`ChunkCache::lease_for`].
    pub fn lease(&self, pin: Pin, ttl: Option<Duration>) -> Result<LeaseInfo> {
        self.lease_for("", pin, ttl)
    }

    /// Like [`ChunkCache::lease`], counted against `holder` (a token's name) within
    /// [`crate::LoadConfig::lease_limits`]: past a limit the lease is refused
    /// ([`Error::Limit`]) and the pin dropped, so its chunks may be evicted.
    pub fn lease_for(&self, holder: &str, pin: Pin, ttl: Option<Duration>) -> Result<LeaseInfo> {
        if !pin.belongs_to(self) {
            return Err(Error::invalid(
                "a pin can only be leased from the cache that made it",
            ));
        }
        let ttl = self.lease_ttl(ttl)?;
        let now = Instant::now();
        let (chunks, over_budget) = {
            let ix = self.inner().index();
            let chunks: Vec<(Key, u64)> = pin
                .keys()
                .map(|k| {
                    let b = ix.size(&k);
                    (k, b)
                })
                .collect();
            (chunks, ix.total.saturating_sub(self.config().budget_bytes))
        };
        let limits = self.limits();
        let (taken, expired) = {
            let mut leases = self.inner().leases();
            let expired = leases.take_expired(now);
            let taken = leases
                .admit(holder, &chunks, over_budget, &limits)
                .map(|()| leases.insert(pin, ttl, now, holder, chunks));
            (taken, expired)
        };
        drop(expired);
        taken
    }

    /// Whether `holder` may take another lease now, before anything is ensured for it: a
    /// refusal here costs no download.
    pub fn lease_room(&self, holder: &str) -> Result<()> {
        let over_budget = self
            .inner()
            .index()
            .total
            .saturating_sub(self.config().budget_bytes);
        let limits = self.limits();
        self.inner()
            .leases()
            .admit(holder, &[], over_budget, &limits)
    }

    fn limits(&self) -> Limits {
        let c = self.config();
        let l = c.lease_limits;
        Limits {
            count: l.max_count,
            per_holder: l.max_count_per_holder,
            over_budget: l.max_over_budget.unwrap_or(c.budget_bytes),
            bytes_per_holder: l.max_bytes_per_holder.unwrap_or(c.budget_bytes),
        }
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
        let released = self.release_leases(std::slice::from_ref(id));
        match released.first() {
            Some(true) => Ok(()),
            _ => Err(lease_not_found(id)),
        }
    }

    /// Ends many leases at once, under one lock; whether each was live.
    pub fn release_leases(&self, ids: &[LeaseId]) -> Vec<bool> {
        let now = Instant::now();
        let (pins, expired) = {
            let mut leases = self.inner().leases();
            let pins: Vec<Option<Pin>> = ids.iter().map(|id| leases.remove(id, now)).collect();
            (pins, leases.take_expired(now))
        };
        drop(expired);
        // Dropped here, outside the leases lock: unpinning takes the index lock and evicts.
        pins.into_iter().map(|p| p.is_some()).collect()
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
