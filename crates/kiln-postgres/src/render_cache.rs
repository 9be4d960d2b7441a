//! `PgRenderCache`: the RenderCache trait on PostgreSQL; each entry of a batch put is
//! checked against the stored generation and the library's floor in one upsert.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{
    CacheEntry, KeyInfo, KeyPage, ListQuery, PruneScope, PutOutcome, RenderCache, StaleScope,
    decode_meta, encode_meta, prefix_end,
};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use sqlx::Row;

use crate::db::PgDb;
use crate::error::{Error, Result};

/// The render cache on PostgreSQL.
///
/// Expiry is decided against its clock, bound as a parameter (never the server's `now()`):
/// the system clock unless [`PgRenderCache::with_clock`] gives another.
#[derive(Clone)]
pub struct PgRenderCache {
    db: PgDb,
    clock: SharedClock,
}

impl fmt::Debug for PgRenderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRenderCache")
            .field("db", &self.db)
            .finish()
    }
}

impl fmt::Display for PgRenderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgRenderCache({})", self.db)
    }
}

fn gen_i64(g: u64) -> Result<i64> {
    i64::try_from(g)
        .map_err(|_| kiln_core::Error::invalid(format!("generation {g} is too large")).into())
}

fn gen_u64(g: i64) -> Result<u64> {
    u64::try_from(g).map_err(|_| Error::Corrupt(format!("negative generation {g}").into()))
}

/// The scope's condition on `render_entries` with the library as `$1`, the group as `$2`
/// (NULL for all groups), the generation bound as `$3`.
const SCOPE: &str = "library = $1 AND ($2::text IS NULL OR grp = $2) AND generation < $3";

impl PgRenderCache {
    /// Connects to `url` and migrates `schema` (default `public`).
    pub async fn connect(url: &str, schema: Option<&str>) -> kiln_core::Result<Self> {
        Ok(PgRenderCache::new(PgDb::connect(url, schema).await?))
    }

    /// The render cache on an open database.
    pub fn new(db: PgDb) -> Self {
        PgRenderCache {
            db,
            clock: SystemClock::shared(),
        }
    }

    /// This cache reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The database.
    pub fn db(&self) -> &PgDb {
        &self.db
    }

    async fn get_inner(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(
            "SELECT bytes, content_type, generation, grp, written_at, expires_at, meta, stale \
             FROM render_entries WHERE library = $1 AND key = $2 \
               AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(library.as_str())
        .bind(key)
        .bind(self.clock.now().0)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(CacheEntry {
                key: key.to_string(),
                bytes: Bytes::from(r.try_get::<Vec<u8>, _>(0)?),
                content_type: r.try_get(1)?,
                generation: gen_u64(r.try_get(2)?)?,
                group: r.try_get(3)?,
                written_at: Timestamp(r.try_get(4)?),
                expires_at: r.try_get::<Option<i64>, _>(5)?.map(Timestamp),
                meta: decode_meta(r.try_get::<Option<&str>, _>(6)?)
                    .map_err(|e| Error::Corrupt(e.into()))?,
                stale: r.try_get(7)?,
            })
        })
        .transpose()
    }

    /// Writes one round of entries with distinct keys; returns the keys written.
    async fn put_round(
        &self,
        library: &LibraryName,
        entries: &[&CacheEntry],
    ) -> Result<HashSet<String>> {
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        let bytes: Vec<&[u8]> = entries.iter().map(|e| &e.bytes[..]).collect();
        let types: Vec<&str> = entries.iter().map(|e| e.content_type.as_str()).collect();
        let gens = entries
            .iter()
            .map(|e| gen_i64(e.generation))
            .collect::<Result<Vec<_>>>()?;
        let groups: Vec<&str> = entries.iter().map(|e| e.group.as_str()).collect();
        let written: Vec<i64> = entries.iter().map(|e| e.written_at.0).collect();
        let expires: Vec<Option<i64>> = entries.iter().map(|e| e.expires_at.map(|t| t.0)).collect();
        let metas: Vec<Option<String>> = entries.iter().map(|e| encode_meta(&e.meta)).collect();
        let stales: Vec<bool> = entries.iter().map(|e| e.stale).collect();
        let rows: Vec<String> = sqlx::query_scalar(
            "INSERT INTO render_entries \
               (library, key, bytes, content_type, generation, grp, written_at, expires_at, \
                meta, stale) \
             SELECT $1, t.* FROM unnest($2::text[], $3::bytea[], $4::text[], $5::int8[], \
                                        $6::text[], $7::int8[], $8::int8[], $9::text[], \
                                        $10::bool[]) \
               AS t(key, bytes, content_type, generation, grp, written_at, expires_at, meta, \
                    stale) \
             WHERE t.generation >= coalesce( \
               (SELECT generation FROM render_floors WHERE library = $1), 0) \
             ON CONFLICT (library, key) DO UPDATE SET \
               bytes = excluded.bytes, content_type = excluded.content_type, \
               generation = excluded.generation, grp = excluded.grp, \
               written_at = excluded.written_at, expires_at = excluded.expires_at, \
               meta = excluded.meta, stale = excluded.stale \
             WHERE render_entries.generation <= excluded.generation \
             RETURNING key",
        )
        .bind(library.as_str())
        .bind(keys)
        .bind(bytes)
        .bind(types)
        .bind(gens)
        .bind(groups)
        .bind(written)
        .bind(expires)
        .bind(metas)
        .bind(stales)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn put_inner(
        &self,
        library: &LibraryName,
        entries: Vec<CacheEntry>,
    ) -> Result<Vec<PutOutcome>> {
        let mut outcomes = vec![PutOutcome::Stale; entries.len()];
        // An upsert may not touch one row twice, so a batch that repeats a key is written in
        // rounds of distinct keys, in order: a later entry for a key sees the earlier one.
        let mut pending: Vec<usize> = (0..entries.len()).collect();
        while !pending.is_empty() {
            let mut seen = HashSet::new();
            let (round, rest): (Vec<usize>, Vec<usize>) = pending
                .iter()
                .partition(|&&i| seen.insert(entries[i].key.as_str()));
            let batch: Vec<&CacheEntry> = round.iter().map(|&i| &entries[i]).collect();
            let written = self.put_round(library, &batch).await?;
            for &i in &round {
                if written.contains(&entries[i].key) {
                    outcomes[i] = PutOutcome::Written;
                }
            }
            pending = rest;
        }
        Ok(outcomes)
    }

    async fn mark_inner(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        // Entries that have expired already are gone as far as readers know: they are neither
        // marked again (which could revive them) nor counted.
        let done = sqlx::query(&format!(
            "UPDATE render_entries SET expires_at = $4 \
             WHERE {SCOPE} AND (expires_at IS NULL OR expires_at > $5)"
        ))
        .bind(library.as_str())
        .bind(&scope.group)
        .bind(gen_i64(scope.below_generation)?)
        .bind(at.0)
        .bind(self.clock.now().0)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn clear_inner(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(&format!(
            "UPDATE render_entries SET expires_at = NULL \
             WHERE {SCOPE} AND expires_at = $4 AND expires_at > $5"
        ))
        .bind(library.as_str())
        .bind(&scope.group)
        .bind(gen_i64(scope.below_generation)?)
        .bind(at.0)
        .bind(self.clock.now().0)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn sweep_inner(&self, library: &LibraryName, scope: &PruneScope) -> Result<u64> {
        // Expired entries in the scope go too, but only live ones are counted.
        let n: i64 = sqlx::query_scalar(&format!(
            "WITH d AS (DELETE FROM render_entries WHERE {SCOPE} RETURNING expires_at) \
             SELECT count(*) FROM d WHERE expires_at IS NULL OR expires_at > $4"
        ))
        .bind(library.as_str())
        .bind(&scope.group)
        .bind(gen_i64(scope.below_generation)?)
        .bind(self.clock.now().0)
        .fetch_one(self.db.pool())
        .await?;
        Ok(n as u64)
    }

    async fn purge_inner(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM render_entries WHERE expires_at <= $1")
            .bind(now.0)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn set_floor_inner(&self, library: &LibraryName, generation: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO render_floors (library, generation) VALUES ($1, $2) \
             ON CONFLICT (library) DO UPDATE \
             SET generation = greatest(render_floors.generation, excluded.generation)",
        )
        .bind(library.as_str())
        .bind(gen_i64(generation)?)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn delete_inner(&self, library: &LibraryName, key: &str) -> Result<bool> {
        let live: Option<bool> = sqlx::query_scalar(
            "DELETE FROM render_entries WHERE library = $1 AND key = $2 \
             RETURNING expires_at IS NULL OR expires_at > $3",
        )
        .bind(library.as_str())
        .bind(key)
        .bind(self.clock.now().0)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(live == Some(true))
    }

    async fn stale_inner(&self, library: &LibraryName, scope: &StaleScope) -> Result<u64> {
        let (keys, group, all): (Option<&[String]>, Option<&str>, bool) = match scope {
            StaleScope::Keys(k) => (Some(k), None, false),
            StaleScope::Group(g) => (None, Some(g), false),
            StaleScope::Library => (None, None, true),
        };
        let done = sqlx::query(
            "UPDATE render_entries SET stale = true \
             WHERE library = $1 AND (expires_at IS NULL OR expires_at > $2) \
               AND ($5 OR key = ANY($3) OR grp = $4)",
        )
        .bind(library.as_str())
        .bind(self.clock.now().0)
        .bind(keys)
        .bind(group)
        .bind(all)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn list_inner(&self, library: &LibraryName, q: &ListQuery) -> Result<KeyPage> {
        let end = q.prefix.as_deref().and_then(prefix_end);
        let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT key, generation, grp, length(bytes), written_at, expires_at, stale \
             FROM render_entries \
             WHERE library = $1 AND (expires_at IS NULL OR expires_at > $2) \
               AND ($3::text IS NULL OR key > $3) \
               AND ($4::text IS NULL OR key >= $4) AND ($5::text IS NULL OR key < $5) \
               AND ($6::text IS NULL OR grp = $6) \
             ORDER BY key LIMIT $7",
        )
        .bind(library.as_str())
        .bind(self.clock.now().0)
        .bind(&q.after)
        .bind(&q.prefix)
        .bind(&end)
        .bind(&q.group)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(KeyInfo {
                    key: r.try_get(0)?,
                    generation: gen_u64(r.try_get(1)?)?,
                    group: r.try_get(2)?,
                    size: r.try_get::<i32, _>(3)? as u64,
                    written_at: Timestamp(r.try_get(4)?),
                    expires_at: r.try_get::<Option<i64>, _>(5)?.map(Timestamp),
                    stale: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyPage::from_overfetch(items, q.limit))
    }

    async fn counts_inner(&self, library: &LibraryName) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT grp, count(*) FROM render_entries \
             WHERE library = $1 AND (expires_at IS NULL OR expires_at > $2) \
             GROUP BY grp ORDER BY grp",
        )
        .bind(library.as_str())
        .bind(self.clock.now().0)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.into_iter().map(|(g, n)| (g, n as u64)).collect())
    }
}

#[async_trait]
impl RenderCache for PgRenderCache {
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
        Ok(self.mark_inner(library, scope, at).await?)
    }

    async fn clear_marks(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> kiln_core::Result<u64> {
        Ok(self.clear_inner(library, scope, at).await?)
    }

    async fn sweep(&self, library: &LibraryName, scope: &PruneScope) -> kiln_core::Result<u64> {
        Ok(self.sweep_inner(library, scope).await?)
    }

    async fn purge_expired(&self, now: Timestamp) -> kiln_core::Result<u64> {
        Ok(self.purge_inner(now).await?)
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
