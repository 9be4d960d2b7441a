//! `RedisRenderCache`: render results as Redis hashes, with per-group indexes for pruning and
//! Lua scripts for the checks that must be atomic.
//!
//! Keys, for a prefix `p` and a library `lib` (library names cannot contain `:`):
//! - `p:lib:e:<key>`: the entry, a hash of `b` (bytes), `ct`, `g` (generation), `grp`, `w`
//!   (written at, ms) and `x` (expires at, ms, when marked); a mark also sets the key's own
//!   expiry (`PEXPIREAT`), so Redis removes expired entries itself and a put clears the mark
//!   (`PERSIST`).
//! - `p:lib:keys`: every key of the library (a sorted set, all scores 0, so it is in key order).
//! - `p:lib:g:<group>`: the group's keys scored by generation; `p:lib:groups`: the groups.
//! - `p:lib:floor`: the library's generation floor.
//!
//! Whether an entry has expired is decided by the cache's clock (the system clock unless
//! [`RedisRenderCache::with_clock`] gives another): reads and prunes compare `x` with it.
//! The native expiry is Redis's own clock and only reclaims the memory; with the system
//! clock the two agree. An index member whose entry expired natively is removed lazily, by
//! the next prune or listing that meets it. The scripts build key names from a base, so
//! this layout is for a single Redis server (not Redis Cluster).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{CacheEntry, PruneScope, PutOutcome, RenderCache};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::error::{Error, Result};

/// Generations travel through Lua numbers and sorted-set scores (doubles): exact below 2^53.
const MAX_GENERATION: u64 = 1 << 53;

/// Candidates per prune script call: bounds how long one call blocks the server.
const PRUNE_CHUNK: usize = 500;

/// The render cache on Redis.
#[derive(Clone)]
pub struct RedisRenderCache {
    conn: ConnectionManager,
    prefix: String,
    server: String,
    put: Script,
    prune: Script,
    floor: Script,
    clock: SharedClock,
}

impl fmt::Debug for RedisRenderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRenderCache")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl fmt::Display for RedisRenderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis({} prefix {})", self.server, self.prefix)
    }
}

fn check_prefix(p: &str) -> kiln_core::Result<()> {
    let ok = !p.is_empty()
        && p.len() <= 100
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(kiln_core::Error::invalid(format!(
            "invalid redis key prefix {p:?}: use 1-100 of [A-Za-z0-9_.:-]"
        )))
    }
}

fn check_generation(g: u64) -> Result<()> {
    if g > MAX_GENERATION {
        return Err(kiln_core::Error::invalid(format!(
            "generation {g} is too large for the redis render cache (at most 2^53)"
        ))
        .into());
    }
    Ok(())
}

/// One entry's fields as `HMGET b ct g grp w x` returns them.
type Fields = (
    Option<Vec<u8>>,
    Option<String>,
    Option<u64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

impl RedisRenderCache {
    /// Connects to `url` (`redis://host:port/db`) and keeps every key under `prefix`, so
    /// several deployments (or test runs) can share a server. Fails with
    /// [`kiln_core::Error::Unavailable`] naming the server if it cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> kiln_core::Result<Self> {
        check_prefix(prefix)?;
        let client = Client::open(url)
            .map_err(|e| kiln_core::Error::invalid(format!("invalid redis url: {e}")))?;
        let server = format!("redis at {}", client.get_connection_info().addr);
        // Reconnects back off from 1 s, doubling, up to 2 s between attempts: a restarted
        // server is found again quickly, and a missing one is reported within seconds.
        let config = ConnectionManagerConfig::new()
            .set_factor(2)
            .set_max_delay(2000)
            .set_number_of_retries(2)
            .set_connection_timeout(Duration::from_secs(5));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| kiln_core::Error::Unavailable {
                what: server.clone(),
                source: Box::new(e),
            })?;
        Ok(RedisRenderCache {
            conn,
            prefix: prefix.to_string(),
            server,
            put: Script::new(include_str!("lua/put.lua")),
            prune: Script::new(include_str!("lua/prune.lua")),
            floor: Script::new(include_str!("lua/floor.lua")),
            clock: SystemClock::shared(),
        })
    }

    /// This cache deciding expiry by `clock` (tests move it instead of sleeping); Redis's
    /// native expiry still follows the server's clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Deletes every key under this cache's prefix, and says how many: for benchmarks and
    /// test runs that share a server and clean up after themselves. Iterates with `SCAN`,
    /// so it does not block the server the way `KEYS` would.
    pub async fn clear(&self) -> kiln_core::Result<u64> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:*", self.prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(Error::from)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(Error::from)?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn base(&self, library: &LibraryName) -> String {
        format!("{}:{}:", self.prefix, library)
    }

    async fn get_inner(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let ek = format!("{}e:{key}", self.base(library));
        let mut conn = self.conn.clone();
        let (b, ct, g, grp, w, x): Fields = redis::cmd("HMGET")
            .arg(&ek)
            .arg(&["b", "ct", "g", "grp", "w", "x"])
            .query_async(&mut conn)
            .await?;
        let Some(b) = b else {
            return Ok(None);
        };
        let corrupt = |why| Error::Corrupt {
            key: ek.clone(),
            why,
        };
        let expires_at = x.map(Timestamp);
        // Redis expires the key itself, by its own clock; the cache's clock decides (with the
        // system clock, this guards the millisecond Redis takes to notice).
        if expires_at.is_some_and(|t| t <= self.clock.now()) {
            return Ok(None);
        }
        Ok(Some(CacheEntry {
            key: key.to_string(),
            bytes: Bytes::from(b),
            content_type: ct.ok_or_else(|| corrupt("no content type"))?,
            generation: g.ok_or_else(|| corrupt("no generation"))?,
            group: grp.ok_or_else(|| corrupt("no group"))?,
            written_at: Timestamp(w.ok_or_else(|| corrupt("no write time"))?),
            expires_at,
        }))
    }

    async fn put_inner(
        &self,
        library: &LibraryName,
        entries: Vec<CacheEntry>,
    ) -> Result<Vec<PutOutcome>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.put.prepare_invoke();
        inv.arg(self.base(library));
        for e in &entries {
            check_generation(e.generation)?;
            inv.arg(&e.key)
                .arg(&e.bytes[..])
                .arg(&e.content_type)
                .arg(e.generation)
                .arg(&e.group)
                .arg(e.written_at.0)
                .arg(e.expires_at.map(|t| t.0.to_string()).unwrap_or_default());
        }
        let mut conn = self.conn.clone();
        let written: Vec<i64> = inv.invoke_async(&mut conn).await?;
        Ok(written
            .into_iter()
            .map(|w| {
                if w == 1 {
                    PutOutcome::Written
                } else {
                    PutOutcome::Stale
                }
            })
            .collect())
    }

    /// Marks or sweeps the scope; `at` is the expiry time for a mark.
    async fn prune(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        op: &str,
        at: Timestamp,
    ) -> Result<u64> {
        check_generation(scope.below_generation)?;
        let now = self.clock.now();
        let base = self.base(library);
        let mut conn = self.conn.clone();
        let groups: Vec<String> = match &scope.group {
            Some(g) => vec![g.clone()],
            None => {
                let mut groups: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(format!("{base}groups"))
                    .query_async(&mut conn)
                    .await?;
                groups.sort();
                groups
            }
        };
        let mut total = 0;
        for group in groups {
            let candidates: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(format!("{base}g:{group}"))
                .arg("-inf")
                .arg(format!("({}", scope.below_generation))
                .query_async(&mut conn)
                .await?;
            for chunk in candidates.chunks(PRUNE_CHUNK) {
                let mut inv = self.prune.prepare_invoke();
                inv.arg(&base)
                    .arg(op)
                    .arg(&group)
                    .arg(scope.below_generation)
                    .arg(at.0)
                    .arg(now.0)
                    .arg(chunk);
                let n: u64 = inv.invoke_async(&mut conn).await?;
                total += n;
            }
        }
        Ok(total)
    }

    async fn set_floor_inner(&self, library: &LibraryName, generation: u64) -> Result<()> {
        check_generation(generation)?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .floor
            .key(format!("{}floor", self.base(library)))
            .arg(generation)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn keys_inner(&self, library: &LibraryName) -> Result<Vec<(String, u64, String)>> {
        let base = self.base(library);
        let mut conn = self.conn.clone();
        let keys: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{base}keys"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let now = self.clock.now();
        let mut out = Vec::with_capacity(keys.len());
        let mut gone = Vec::new();
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("HMGET")
                    .arg(format!("{base}e:{k}"))
                    .arg(&["g", "grp", "x"]);
            }
            let rows: Vec<(Option<u64>, Option<String>, Option<i64>)> =
                pipe.query_async(&mut conn).await?;
            for (k, row) in chunk.iter().zip(rows) {
                match row {
                    // Expired by the cache's clock, not yet by Redis's.
                    (Some(_), Some(_), Some(x)) if Timestamp(x) <= now => {}
                    (Some(g), Some(grp), _) => out.push((k.clone(), g, grp)),
                    _ => gone.push(k.clone()),
                }
            }
        }
        if !gone.is_empty() {
            // Entries that expired natively: forget them in the listing index too.
            let _: i64 = redis::cmd("ZREM")
                .arg(format!("{base}keys"))
                .arg(&gone)
                .query_async(&mut conn)
                .await?;
        }
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl RenderCache for RedisRenderCache {
    async fn get(&self, library: &LibraryName, key: &str) -> kiln_core::Result<Option<CacheEntry>> {
        Ok(self.get_inner(library, key).await?)
    }

    async fn put(
        &self,
        library: &LibraryName,
        entries: Vec<CacheEntry>,
    ) -> kiln_core::Result<Vec<PutOutcome>> {
        Ok(self.put_inner(library, entries).await?)
    }

    async fn mark_expiring(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> kiln_core::Result<u64> {
        Ok(self.prune(library, scope, "mark", at).await?)
    }

    async fn sweep(&self, library: &LibraryName, scope: &PruneScope) -> kiln_core::Result<u64> {
        Ok(self.prune(library, scope, "sweep", Timestamp(0)).await?)
    }

    /// Redis expires marked entries itself; nothing to purge.
    async fn purge_expired(&self, _now: Timestamp) -> kiln_core::Result<u64> {
        Ok(0)
    }

    async fn set_floor(&self, library: &LibraryName, generation: u64) -> kiln_core::Result<()> {
        Ok(self.set_floor_inner(library, generation).await?)
    }

    async fn keys(&self, library: &LibraryName) -> kiln_core::Result<Vec<(String, u64, String)>> {
        Ok(self.keys_inner(library).await?)
    }
}
