//! `SqliteRenderCache`: the [`RenderCache`] on SQLite. Reads go to a pool of read
//! connections that WAL lets run beside the one writer, so a reheat's writes never stall
//! readers; a batch put is one multi-row upsert per 500 entries.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{
    CacheEntry, KeyInfo, KeyPage, ListQuery, PruneScope, PutOutcome, RenderCache, StaleScope,
    decode_meta, encode_meta, prefix_end,
};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use kiln_core::{Error, Result};
use sqlx::Row;
use sqlx::migrate::Migrator;

use crate::db::{self, Db, err};

fn migrator() -> Migrator {
    db::migrator(&[
        (
            1,
            "render cache",
            include_str!("../migrations/render_cache/0001_render_cache.sql"),
        ),
        (
            2,
            "metadata and stale marks",
            include_str!("../migrations/render_cache/0002_meta_stale.sql"),
        ),
    ])
}

/// The render cache in one SQLite file (WAL, one writer connection and a read pool).
///
/// Give it its own file, apart from the catalog and the queue (each has its own
/// migrations). Expiry is checked on read against its clock (the system clock unless
/// [`SqliteRenderCache::with_clock`] gives another); [`RenderCache::purge_expired`] deletes.
#[derive(Debug, Clone)]
pub struct SqliteRenderCache {
    db: Db,
    clock: SharedClock,
}

impl SqliteRenderCache {
    /// Opens the cache at `path`, creating the file and its parent directories, and brings
    /// its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        Ok(SqliteRenderCache {
            db: Db::open(path, &migrator()).await?,
            clock: SystemClock::shared(),
        })
    }

    /// A private cache in memory, for tests; it lives as long as the value.
    pub async fn open_in_memory() -> Result<Self> {
        Ok(SqliteRenderCache {
            db: Db::open_in_memory(&migrator()).await?,
            clock: SystemClock::shared(),
        })
    }

    /// This cache reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Writes one batch whose keys are distinct: outcomes are decided against the state
    /// before the batch, in the same write transaction as the upsert.
    async fn put_distinct(
        &self,
        library: &LibraryName,
        entries: &[CacheEntry],
    ) -> Result<Vec<PutOutcome>> {
        let mut tx = self.db.begin().await?;
        let floor: i64 = sqlx::query_scalar("SELECT generation FROM floors WHERE library = ?")
            .bind(library.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .unwrap_or(0);
        let mut stale: HashSet<usize> = HashSet::new();
        for (c, chunk) in entries.chunks(PUT_CHUNK).enumerate() {
            // Positions in the chunk of the entries a newer stored generation refuses, as
            // one text row (a row per entry would cost more than the SQL).
            let sql = chunk_sql(&STALE_SQL, chunk.len(), stale_sql);
            let mut q = sqlx::query(&sql);
            for (i, e) in chunk.iter().enumerate() {
                q = q.bind(i as i64).bind(&e.key).bind(e.generation as i64);
            }
            q = q.bind(library.as_str());
            let positions: Option<String> = q
                .fetch_one(&mut *tx)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(err)?;
            for p in positions.iter().flat_map(|p| p.split(',')) {
                let p: usize = p
                    .parse()
                    .map_err(|_| db::Error::Corrupt(format!("stale position {p:?}")))?;
                stale.insert(c * PUT_CHUNK + p);
            }
            for (i, e) in chunk.iter().enumerate() {
                if (e.generation as i64) < floor {
                    stale.insert(c * PUT_CHUNK + i);
                }
            }
            let fresh: Vec<&CacheEntry> = chunk
                .iter()
                .enumerate()
                .filter(|(i, _)| !stale.contains(&(c * PUT_CHUNK + i)))
                .map(|(_, e)| e)
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let sql = chunk_sql(&UPSERT_SQL, fresh.len(), upsert_sql);
            let mut q = sqlx::query(&sql);
            for e in fresh {
                q = q
                    .bind(library.as_str())
                    .bind(&e.key)
                    .bind(&e.bytes[..])
                    .bind(&e.content_type)
                    .bind(e.generation as i64)
                    .bind(&e.group)
                    .bind(e.written_at.0)
                    .bind(e.expires_at.map(|t| t.0))
                    .bind(encode_meta(&e.meta))
                    .bind(e.stale);
            }
            q.execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok((0..entries.len())
            .map(|i| {
                if stale.contains(&i) {
                    PutOutcome::Stale
                } else {
                    PutOutcome::Written
                }
            })
            .collect())
    }
}

impl fmt::Display for SqliteRenderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sqlite({})", self.db.label)
    }
}

/// Entries per statement: 10 parameters each, well under SQLite's 32,766.
const PUT_CHUNK: usize = 500;

static STALE_SQL: OnceLock<String> = OnceLock::new();
static UPSERT_SQL: OnceLock<String> = OnceLock::new();

/// The statement for `rows` entries: built once for full chunks, each time for the rest.
fn chunk_sql(full: &OnceLock<String>, rows: usize, build: fn(usize) -> String) -> Cow<'_, str> {
    if rows == PUT_CHUNK {
        Cow::Borrowed(full.get_or_init(|| build(PUT_CHUNK)))
    } else {
        Cow::Owned(build(rows))
    }
}

fn values(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(","));
    vec![row; rows].join(",")
}

/// (position, key, generation) per entry, then the library (numbered after them: sqlx
/// binds anonymous `?`s in order whatever numbered ones the text holds).
fn stale_sql(rows: usize) -> String {
    format!(
        "SELECT group_concat(v.column1) FROM (VALUES {}) AS v
         JOIN entries AS e ON e.library = ?{} AND e.key = v.column2
         WHERE v.column3 < e.generation",
        values(rows, 3),
        rows * 3 + 1
    )
}

fn upsert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO entries
             (library, key, bytes, content_type, generation, grp, written_at, expires_at,
              meta, stale)
         VALUES {}
         ON CONFLICT (library, key) DO UPDATE SET
             bytes = excluded.bytes, content_type = excluded.content_type,
             generation = excluded.generation, grp = excluded.grp,
             written_at = excluded.written_at, expires_at = excluded.expires_at,
             meta = excluded.meta, stale = excluded.stale
         WHERE excluded.generation >= entries.generation",
        values(rows, 10)
    )
}

fn generation(g: u64) -> Result<i64> {
    i64::try_from(g).map_err(|_| Error::invalid(format!("generation {g} is too large")))
}

/// The scope's condition on `?1` library, `?2` group (or NULL), `?3` generation bound.
const SCOPE: &str = "library = ?1 AND (?2 IS NULL OR grp = ?2) AND generation < ?3";

#[async_trait]
impl RenderCache for SqliteRenderCache {
    async fn get(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(
            "SELECT bytes, content_type, generation, grp, written_at, expires_at, meta, stale
             FROM entries WHERE library = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(library.as_str())
        .bind(key)
        .bind(self.clock.now().0)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(err)?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(CacheEntry {
            key: key.to_string(),
            bytes: Bytes::from(r.try_get::<Vec<u8>, _>(0).map_err(err)?),
            content_type: r.try_get(1).map_err(err)?,
            generation: r.try_get::<i64, _>(2).map_err(err)? as u64,
            group: r.try_get(3).map_err(err)?,
            written_at: Timestamp(r.try_get(4).map_err(err)?),
            expires_at: r.try_get::<Option<i64>, _>(5).map_err(err)?.map(Timestamp),
            meta: decode_meta(r.try_get::<Option<&str>, _>(6).map_err(err)?)
                .map_err(|e| kiln_core::Error::from(db::Error::Corrupt(e)))?,
            stale: r.try_get(7).map_err(err)?,
        }))
    }

    async fn put(
        &self,
        library: &LibraryName,
        entries: Vec<CacheEntry>,
    ) -> Result<Vec<PutOutcome>> {
        for e in &entries {
            generation(e.generation).map_err(|_| {
                Error::invalid(format!(
                    "entry {:?}: generation {} is too large",
                    e.key, e.generation
                ))
            })?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen = HashSet::with_capacity(entries.len());
        if entries.iter().all(|e| seen.insert(e.key.as_str())) {
            return self.put_distinct(library, &entries).await;
        }
        // A key twice in one batch: each entry must see the one before it, so write one by one.
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.extend(self.put_distinct(library, std::slice::from_ref(&e)).await?);
        }
        Ok(out)
    }

    async fn mark_expiring(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(&format!(
            "UPDATE entries SET expires_at = ?4
             WHERE {SCOPE} AND (expires_at IS NULL OR expires_at > ?5)"
        ))
        .bind(library.as_str())
        .bind(&scope.group)
        .bind(generation(scope.below_generation)?)
        .bind(at.0)
        .bind(self.clock.now().0)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn clear_marks(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(&format!(
            "UPDATE entries SET expires_at = NULL
             WHERE {SCOPE} AND expires_at = ?4 AND expires_at > ?5"
        ))
        .bind(library.as_str())
        .bind(&scope.group)
        .bind(generation(scope.below_generation)?)
        .bind(at.0)
        .bind(self.clock.now().0)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn sweep(&self, library: &LibraryName, scope: &PruneScope) -> Result<u64> {
        let mut tx = self.db.begin().await?;
        // Count the live entries only: expired ones were gone for readers already.
        let live: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM entries
             WHERE {SCOPE} AND (expires_at IS NULL OR expires_at > ?4)"
        ))
        .bind(library.as_str())
        .bind(&scope.group)
        .bind(generation(scope.below_generation)?)
        .bind(self.clock.now().0)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(&format!("DELETE FROM entries WHERE {SCOPE}"))
            .bind(library.as_str())
            .bind(&scope.group)
            .bind(generation(scope.below_generation)?)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(live as u64)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM entries WHERE expires_at <= ?")
            .bind(now.0)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn set_floor(&self, library: &LibraryName, g: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO floors (library, generation) VALUES (?, ?)
             ON CONFLICT (library) DO UPDATE SET
                 generation = max(generation, excluded.generation)",
        )
        .bind(library.as_str())
        .bind(generation(g)?)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn delete(&self, library: &LibraryName, key: &str) -> Result<bool> {
        let live: Option<bool> = sqlx::query_scalar(
            "DELETE FROM entries WHERE library = ? AND key = ?
             RETURNING expires_at IS NULL OR expires_at > ?",
        )
        .bind(library.as_str())
        .bind(key)
        .bind(self.clock.now().0)
        .fetch_optional(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(live == Some(true))
    }

    async fn mark_stale(&self, library: &LibraryName, scope: &StaleScope) -> Result<u64> {
        let now = self.clock.now().0;
        let live = "library = ?1 AND (expires_at IS NULL OR expires_at > ?2)";
        let done = match scope {
            StaleScope::Keys(keys) => {
                let mut tx = self.db.begin().await?;
                let mut n = 0;
                for key in keys {
                    n += sqlx::query(&format!(
                        "UPDATE entries SET stale = 1 WHERE {live} AND key = ?3"
                    ))
                    .bind(library.as_str())
                    .bind(now)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                }
                tx.commit().await.map_err(err)?;
                return Ok(n);
            }
            StaleScope::Group(g) => {
                sqlx::query(&format!(
                    "UPDATE entries SET stale = 1 WHERE {live} AND grp = ?3"
                ))
                .bind(library.as_str())
                .bind(now)
                .bind(g)
                .execute(&self.db.writer)
                .await
            }
            StaleScope::Library => {
                sqlx::query(&format!("UPDATE entries SET stale = 1 WHERE {live}"))
                    .bind(library.as_str())
                    .bind(now)
                    .execute(&self.db.writer)
                    .await
            }
        };
        Ok(done.map_err(err)?.rows_affected())
    }

    async fn list(&self, library: &LibraryName, q: &ListQuery) -> Result<KeyPage> {
        let end = q.prefix.as_deref().and_then(prefix_end);
        let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT key, generation, grp, length(bytes), written_at, expires_at, stale
             FROM entries
             WHERE library = ?1 AND (expires_at IS NULL OR expires_at > ?2)
               AND (?3 IS NULL OR key > ?3)
               AND (?4 IS NULL OR key >= ?4) AND (?5 IS NULL OR key < ?5)
               AND (?6 IS NULL OR grp = ?6)
             ORDER BY key LIMIT ?7",
        )
        .bind(library.as_str())
        .bind(self.clock.now().0)
        .bind(&q.after)
        .bind(&q.prefix)
        .bind(&end)
        .bind(&q.group)
        .bind(limit)
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(KeyInfo {
                    key: r.try_get(0)?,
                    generation: r.try_get::<i64, _>(1)? as u64,
                    group: r.try_get(2)?,
                    size: r.try_get::<i64, _>(3)? as u64,
                    written_at: Timestamp(r.try_get(4)?),
                    expires_at: r.try_get::<Option<i64>, _>(5)?.map(Timestamp),
                    stale: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(err)?;
        Ok(KeyPage::from_overfetch(items, q.limit))
    }

    async fn group_counts(&self, library: &LibraryName) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT grp, count(*) FROM entries
             WHERE library = ? AND (expires_at IS NULL OR expires_at > ?)
             GROUP BY grp ORDER BY grp",
        )
        .bind(library.as_str())
        .bind(self.clock.now().0)
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        Ok(rows.into_iter().map(|(g, n)| (g, n as u64)).collect())
    }
}
