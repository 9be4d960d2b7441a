//! `SqliteRenderCache`: the [`RenderCache`] on SQLite. Reads go to a pool of read
//! connections that WAL lets run beside the one writer, so a reheat's writes never stall
//! readers; a batch put is one upsert statement over a JSON array.

use std::collections::HashSet;
use std::fmt::{self, Write};
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{CacheEntry, PruneScope, PutOutcome, RenderCache};
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};
use sqlx::Row;
use sqlx::migrate::Migrator;

use crate::db::{self, Db, err};
use crate::queue::{json_str, push_hex};

fn migrator() -> Migrator {
    db::migrator(&[(
        1,
        "render cache",
        include_str!("../migrations/render_cache/0001_render_cache.sql"),
    )])
}

/// The render cache in one SQLite file (WAL, one writer connection and a read pool).
///
/// Give it its own file, apart from the catalog and the queue (each has its own
/// migrations). Expiry is checked on read; [`RenderCache::purge_expired`] deletes.
#[derive(Debug, Clone)]
pub struct SqliteRenderCache {
    db: Db,
}

impl SqliteRenderCache {
    /// Opens the cache at `path`, creating the file and its parent directories, and brings
    /// its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        Ok(SqliteRenderCache {
            db: Db::open(path, &migrator()).await?,
        })
    }

    /// A private cache in memory, for tests; it lives as long as the value.
    pub async fn open_in_memory() -> Result<Self> {
        Ok(SqliteRenderCache {
            db: Db::open_in_memory(&migrator()).await?,
        })
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
        let mut json = String::with_capacity(entries.iter().map(|e| e.bytes.len() * 2 + 96).sum());
        json.push('[');
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            // [key, bytes hex, content type, generation, group, written_at, expires_at]
            let _ = write!(json, "[{},\"", json_str(&e.key));
            push_hex(&mut json, &e.bytes);
            let _ = write!(
                json,
                "\",{},{},{},{},",
                json_str(&e.content_type),
                e.generation,
                json_str(&e.group),
                e.written_at.0
            );
            match e.expires_at {
                Some(t) => {
                    let _ = write!(json, "{}]", t.0);
                }
                None => json.push_str("null]"),
            }
        }
        json.push(']');
        // The positions of the entries a newer stored generation or the floor refuses.
        let stale: String = sqlx::query_scalar(
            "SELECT json_group_array(j.key) FROM json_each(?1) AS j
             LEFT JOIN entries AS e ON e.library = ?2 AND e.key = j.value ->> 0
             WHERE j.value ->> 3 < max(coalesce(e.generation, 0), ?3)",
        )
        .bind(&json)
        .bind(library.as_str())
        .bind(floor)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let stale: HashSet<usize> = serde_json::from_str(&stale)
            .map_err(|e| db::Error::Corrupt(format!("stale positions: {e}")))?;
        if stale.len() < entries.len() {
            // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
            sqlx::query(
                "INSERT INTO entries
                     (library, key, bytes, content_type, generation, grp, written_at, expires_at)
                 SELECT ?2, value ->> 0, unhex(value ->> 1), value ->> 2, value ->> 3,
                        value ->> 4, value ->> 5, value ->> 6
                 FROM json_each(?1) WHERE value ->> 3 >= ?3
                 ON CONFLICT (library, key) DO UPDATE SET
                     bytes = excluded.bytes, content_type = excluded.content_type,
                     generation = excluded.generation, grp = excluded.grp,
                     written_at = excluded.written_at, expires_at = excluded.expires_at
                 WHERE excluded.generation >= entries.generation",
            )
            .bind(&json)
            .bind(library.as_str())
            .bind(floor)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
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

fn generation(g: u64) -> Result<i64> {
    i64::try_from(g).map_err(|_| Error::invalid(format!("generation {g} is too large")))
}

/// The scope's condition on `?1` library, `?2` group (or NULL), `?3` generation bound.
const SCOPE: &str = "library = ?1 AND (?2 IS NULL OR grp = ?2) AND generation < ?3";

#[async_trait]
impl RenderCache for SqliteRenderCache {
    async fn get(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(
            "SELECT bytes, content_type, generation, grp, written_at, expires_at FROM entries
             WHERE library = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(library.as_str())
        .bind(key)
        .bind(Timestamp::now().0)
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
        .bind(Timestamp::now().0)
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
        .bind(Timestamp::now().0)
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

    async fn keys(&self, library: &LibraryName) -> Result<Vec<(String, u64, String)>> {
        let rows = sqlx::query(
            "SELECT key, generation, grp FROM entries
             WHERE library = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
        )
        .bind(library.as_str())
        .bind(Timestamp::now().0)
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)
    }
}
