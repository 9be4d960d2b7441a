//! `RedisRenderCache`: render results as Redis hashes, with per-group indexes for pruning and
//! Lua scripts for the checks that must be atomic.
//!
//! Keys, for a prefix `p` and a library `lib` (library names cannot contain `:`):
//! - `p:lib:e:<key>`: the entry, a hash of `b` (bytes), `ct`, `g` (generation), `grp`, `w`
//!   (written at, ms), `x` (expires at, ms, when marked), `m` (metadata as a JSON object,
//!   when any) and `s` (`1` when marked stale); an expiry mark also sets the key's own
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
use kiln_core::render_cache::{
    CacheEntry, KeyInfo, KeyPage, ListQuery, PruneScope, PutOutcome, RenderCache, StaleScope,
    decode_meta, encode_meta, prefix_end,
};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::error::{Error, Result};

/// Generations travel through Lua numbers and sorted-set scores (doubles): exact below 2^53.
const MAX_GENERATION: u64 = 1 << 53;

/// Candidates per prune script call: bounds how long one call blocks the server.
const PRUNE_CHUNK: usize = 500;

/// Index members a listing reads per round trip.
const LIST_BATCH: usize = 500;

/// Index members one listing call reads at most before it returns a shorter page with a
/// cursor (a group's keys may be sparse in the library's key order).
const LIST_SCAN: usize = 20_000;

/// The render cache on Redis.
#[derive(Clone)]
pub struct RedisRenderCache {
    conn: ConnectionManager,
    prefix: String,
    server: String,
    put: Script,
    prune: Script,
    floor: Script,
    delete: Script,
    stale: Script,
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

/// One entry's fields as `HMGET b ct g grp w x m s` returns them.
type Fields = (
    Option<Vec<u8>>,
    Option<String>,
    Option<u64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// A listing's fields of one entry: `HMGET g grp w x s` and `HSTRLEN b`.
type ListFields = (
    (
        Option<u64>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    ),
    u64,
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
            delete: Script::new(include_str!("lua/delete.lua")),
            stale: Script::new(include_str!("lua/stale.lua")),
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
        let (b, ct, g, grp, w, x, m, st): Fields = redis::cmd("HMGET")
            .arg(&ek)
            .arg(&["b", "ct", "g", "grp", "w", "x", "m", "s"])
            .query_async(&mut conn)
            .await?;
        let Some(b) = b else {
            return Ok(None);
        };
        let corrupt = |why: &'static str| Error::Corrupt {
            key: ek.clone(),
            why: why.into(),
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
            meta: decode_meta(m.as_deref()).map_err(|e| Error::Corrupt {
                key: ek.clone(),
                why: e.into(),
            })?,
            stale: st.is_some(),
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
                .arg(e.expires_at.map(|t| t.0.to_string()).unwrap_or_default())
                .arg(encode_meta(&e.meta).unwrap_or_default())
                .arg(if e.stale { "1" } else { "" });
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

    /// Marks, unmarks or sweeps the scope; `at` is the expiry time of a mark (set or cleared).
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

    async fn delete_inner(&self, library: &LibraryName, key: &str) -> Result<bool> {
        let mut inv = self.delete.prepare_invoke();
        inv.arg(self.base(library)).arg(key).arg(self.clock.now().0);
        let mut conn = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut conn).await?;
        Ok(n == 1)
    }

    async fn stale_inner(&self, library: &LibraryName, scope: &StaleScope) -> Result<u64> {
        let base = self.base(library);
        let mut conn = self.conn.clone();
        let (candidates, group): (Vec<String>, Option<&str>) = match scope {
            StaleScope::Keys(keys) => (keys.clone(), None),
            StaleScope::Group(g) => {
                let members: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("{base}g:{g}"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await?;
                (members, Some(g))
            }
            StaleScope::Library => {
                let members: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("{base}keys"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await?;
                (members, None)
            }
        };
        let now = self.clock.now();
        let mut total = 0;
        for chunk in candidates.chunks(PRUNE_CHUNK) {
            let mut inv = self.stale.prepare_invoke();
            inv.arg(&base)
                .arg(now.0)
                .arg(if group.is_some() { "1" } else { "" })
                .arg(group.unwrap_or_default())
                .arg(chunk);
            let n: u64 = inv.invoke_async(&mut conn).await?;
            total += n;
        }
        Ok(total)
    }

    async fn list_inner(&self, library: &LibraryName, q: &ListQuery) -> Result<KeyPage> {
        let base = self.base(library);
        let mut conn = self.conn.clone();
        let now = self.clock.now();
        // Lexicographic bounds on the key index: after the cursor, within the prefix.
        let mut min = match (&q.after, &q.prefix) {
            (Some(a), Some(p)) if a.as_str() < p.as_str() => format!("[{p}"),
            (Some(a), _) => format!("({a}"),
            (None, Some(p)) => format!("[{p}"),
            (None, None) => "-".to_string(),
        };
        let max = match q.prefix.as_deref().and_then(prefix_end) {
            Some(end) => format!("({end}"),
            None => "+".to_string(),
        };
        let mut items = Vec::new();
        let mut gone = Vec::new();
        let mut scanned = 0;
        let next = 'scan: loop {
            let batch: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(format!("{base}keys"))
                .arg(&min)
                .arg(&max)
                .arg("LIMIT")
                .arg(0)
                .arg(LIST_BATCH)
                .query_async(&mut conn)
                .await?;
            let mut pipe = redis::pipe();
            for k in &batch {
                let ek = format!("{base}e:{k}");
                pipe.cmd("HMGET").arg(&ek).arg(&["g", "grp", "w", "x", "s"]);
                pipe.cmd("HSTRLEN").arg(&ek).arg("b");
            }
            let rows: Vec<ListFields> = if batch.is_empty() {
                Vec::new()
            } else {
                let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
                flat.chunks(2)
                    .map(|pair| {
                        Ok((
                            redis::from_redis_value(&pair[0])?,
                            redis::from_redis_value(&pair[1])?,
                        ))
                    })
                    .collect::<Result<_, redis::RedisError>>()?
            };
            for (k, ((g, grp, w, x, st), size)) in batch.iter().zip(rows) {
                let (Some(g), Some(grp), Some(w)) = (g, grp, w) else {
                    gone.push(k.clone());
                    continue;
                };
                let live = x.is_none_or(|x| Timestamp(x) > now);
                if live && q.group.as_ref().is_none_or(|want| want == &grp) {
                    items.push(KeyInfo {
                        key: k.clone(),
                        generation: g,
                        group: grp,
                        size,
                        written_at: Timestamp(w),
                        expires_at: x.map(Timestamp),
                        stale: st.is_some(),
                    });
                    if items.len() > q.limit {
                        items.truncate(q.limit);
                        break 'scan items.last().map(|i| i.key.clone());
                    }
                }
            }
            if batch.len() < LIST_BATCH {
                break None;
            }
            scanned += batch.len();
            let last = batch.last().cloned().unwrap_or_default();
            if scanned >= LIST_SCAN {
                break Some(last);
            }
            min = format!("({last}");
        };
        if !gone.is_empty() {
            // Entries that expired natively: forget them in the listing index too.
            let _: i64 = redis::cmd("ZREM")
                .arg(format!("{base}keys"))
                .arg(&gone)
                .query_async(&mut conn)
                .await?;
        }
        Ok(KeyPage { items, next })
    }

    async fn counts_inner(&self, library: &LibraryName) -> Result<Vec<(String, u64)>> {
        let base = self.base(library);
        let mut conn = self.conn.clone();
        let mut groups: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{base}groups"))
            .query_async(&mut conn)
            .await?;
        groups.sort();
        let mut pipe = redis::pipe();
        for g in &groups {
            pipe.cmd("ZCARD").arg(format!("{base}g:{g}"));
        }
        let counts: Vec<u64> = if groups.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        Ok(groups
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect())
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

    async fn clear_marks(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> kiln_core::Result<u64> {
        Ok(self.prune(library, scope, "unmark", at).await?)
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

    async fn delete(&self, library: &LibraryName, key: &str) -> kiln_core::Result<bool> {
        Ok(self.delete_inner(library, key).await?)
    }

    async fn mark_stale(
        &self,
        library: &LibraryName,
        scope: &StaleScope,
    ) -> kiln_core::Result<u64> {
        Ok(self.stale_inner(library, scope).await?)
    }

    async fn list(&self, library: &LibraryName, query: &ListQuery) -> kiln_core::Result<KeyPage> {
        Ok(self.list_inner(library, query).await?)
    }

    async fn group_counts(&self, library: &LibraryName) -> kiln_core::Result<Vec<(String, u64)>> {
        Ok(self.counts_inner(library).await?)
    }
}
