//! `SqliteCatalog`: the [`Catalog`] on SQLite (the embedded default); its file also holds
//! the runs of [`SqliteLedger`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::catalog::{Catalog, LockHolder, MemoEntry, NewVersion, PublishOutcome, VersionInfo};
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use kiln_core::toc::Toc;
use kiln_core::{Error, Result};
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteRow;

use crate::db::{self, Db, corrupt, err};
use crate::ledger::SqliteLedger;
use kiln_core::manifest_codec;

fn migrator() -> Migrator {
    db::migrator(&[
        (
            1,
            "catalog",
            include_str!("../migrations/catalog/0001_catalog.sql"),
        ),
        (
            2,
            "claims and marks",
            include_str!("../migrations/catalog/0002_claims_marks.sql"),
        ),
        (
            3,
            "run stats",
            include_str!("../migrations/catalog/0003_run_stats.sql"),
        ),
        (
            4,
            "schedule ticks",
            include_str!("../migrations/catalog/0004_schedule_ticks.sql"),
        ),
        (
            5,
            "chunk tables of contents",
            include_str!("../migrations/catalog/0005_chunk_tocs.sql"),
        ),
        (
            6,
            "manifest segments",
            include_str!("../migrations/catalog/0006_manifest_segments.sql"),
        ),
    ])
}

/// The catalog in one SQLite file (WAL mode, one writer connection and a read pool).
///
/// The file holds only the catalog's tables and the runs ledger's (one schema, one
/// migration history: [`SqliteCatalog::ledger`] shares the connections); give the queue and
/// the render cache their own files (each has its own migrations).
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    db: Db,
    clock: SharedClock,
}

impl SqliteCatalog {
    /// Opens the catalog at `path`, creating the file and its parent directories, and
    /// brings its schema up to date. It reads the wall clock; see [`SqliteCatalog::with_clock`].
    pub async fn open(path: &Path) -> Result<Self> {
        Ok(SqliteCatalog {
            db: Db::open(path, &migrator()).await?,
            clock: SystemClock::shared(),
        })
    }

    /// A private catalog in memory, for tests; it lives as long as the value (and its
    /// ledger).
    pub async fn open_in_memory() -> Result<Self> {
        Ok(SqliteCatalog {
            db: Db::open_in_memory(&migrator()).await?,
            clock: SystemClock::shared(),
        })
    }

    /// This catalog reading time from `clock` (version times, lease, claim and mark expiry).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The runs ledger in this catalog's file, on the same connections and clock.
    pub fn ledger(&self) -> SqliteLedger {
        SqliteLedger::new(self.db.clone(), self.clock.clone())
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

impl fmt::Display for SqliteCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sqlite({})", self.db.label)
    }
}

fn version_info(course: &CourseId, row: &SqliteRow) -> Result<VersionInfo> {
    let version: String = row.try_get("version").map_err(err)?;
    Ok(VersionInfo {
        course: course.clone(),
        version: VersionId::new(&version).map_err(|_| corrupt("version id", &version))?,
        created_at: Timestamp(row.try_get("created_at").map_err(err)?),
        current: row.try_get::<i64, _>("current").map_err(err)? != 0,
    })
}

/// Adds every chunk id a version references: those of versions stored whole, and those of
/// every segment (each segment belongs to a version: they are written together).
async fn referenced(conn: &mut sqlx::SqliteConnection, out: &mut HashSet<ChunkId>) -> Result<()> {
    let blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT manifest FROM versions")
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
    for b in blobs {
        if manifest_codec::segment_ids(&b)?.is_none() {
            manifest_codec::for_each_id(&b, |id| {
                out.insert(id);
            })?;
        }
    }
    let segments: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM manifest_segments")
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
    for s in segments {
        manifest_codec::for_each_id(&s, |id| {
            out.insert(id);
        })?;
    }
    Ok(())
}

/// A chunk id stored as a 32-byte blob.
fn blob_id(b: &[u8]) -> Result<ChunkId> {
    let id: [u8; 32] = b
        .try_into()
        .map_err(|_| corrupt("chunk id of", &format!("{} bytes", b.len())))?;
    Ok(ChunkId(id))
}

fn hex(id: &ChunkId) -> String {
    id.to_hex()
}

/// A JSON array of strings, for `json_each(?)`: one bind however long the list.
fn json_list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<T> = items.into_iter().collect();
    let strs: Vec<&str> = items.iter().map(|s| s.as_ref()).collect();
    // Serialising a list of strings cannot fail.
    serde_json::to_string(&strs).unwrap_or_else(|_| "[]".into())
}

impl SqliteCatalog {
    /// A version's stored manifest: a list of segments, or (from before segments) whole.
    async fn decode_manifest(&self, blob: &[u8]) -> Result<Manifest> {
        let Some(ids) = manifest_codec::segment_ids(blob)? else {
            return manifest_codec::decode(blob);
        };
        let rows = sqlx::query(
            "SELECT id, body FROM manifest_segments WHERE id IN (SELECT unhex(value) FROM json_each(?))",
        )
        .bind(json_list(ids.iter().map(|id| ChunkId(*id).to_hex())))
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        let mut bodies: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(rows.len());
        for r in rows {
            bodies.insert(
                r.try_get("id").map_err(err)?,
                r.try_get("body").map_err(err)?,
            );
        }
        let ordered = ids
            .iter()
            .map(|id| {
                bodies
                    .get(&id[..])
                    .map(Vec::as_slice)
                    .ok_or_else(|| corrupt("manifest segment", &ChunkId(*id).to_hex()))
            })
            .collect::<Result<Vec<&[u8]>>>()?;
        manifest_codec::decode_segments(ordered)
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn publish(&self, v: NewVersion) -> Result<PublishOutcome> {
        let stored = manifest_codec::encode_segmented(&v.manifest);
        let blob = stored.list;
        let mut tx = self.db.begin().await?;
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT current_version FROM courses WHERE course = ?")
                .bind(v.course.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
        if current.flatten().as_deref() == Some(v.version.as_str()) {
            tx.rollback().await.map_err(err)?;
            return Ok(PublishOutcome::Unchanged);
        }
        sqlx::query("INSERT INTO courses (course) VALUES (?) ON CONFLICT DO NOTHING")
            .bind(v.course.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        // Only segments no earlier version has are written.
        let ids = json_list(stored.segments.iter().map(|(id, _)| ChunkId(*id).to_hex()));
        let have: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT id FROM manifest_segments WHERE id IN (SELECT unhex(value) FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let have: HashSet<Vec<u8>> = have.into_iter().collect();
        for (id, body) in &stored.segments {
            if have.contains(&id[..]) {
                continue;
            }
            sqlx::query("INSERT OR IGNORE INTO manifest_segments (id, body) VALUES (?, ?)")
                .bind(&id[..])
                .bind(body)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let inserted = sqlx::query(
            "INSERT INTO versions (course, version, created_at, manifest) VALUES (?, ?, ?, ?)
             ON CONFLICT (course, version) DO NOTHING",
        )
        .bind(v.course.as_str())
        .bind(v.version.as_str())
        .bind(self.now().0)
        .bind(&blob)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        sqlx::query("UPDATE courses SET current_version = ? WHERE course = ?")
            .bind(v.version.as_str())
            .bind(v.course.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(if inserted == 1 {
            PublishOutcome::Published
        } else {
            PublishOutcome::Reinstated
        })
    }

    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        let row = sqlx::query(
            "SELECT v.version, v.created_at, 1 AS current FROM courses c
             JOIN versions v ON v.course = c.course AND v.version = c.current_version
             WHERE c.course = ?",
        )
        .bind(course.as_str())
        .fetch_optional(&self.db.reader)
        .await
        .map_err(err)?;
        row.map(|r| version_info(course, &r)).transpose()
    }

    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>> {
        let rows = sqlx::query(
            "SELECT v.version, v.created_at,
                    coalesce(v.version = c.current_version, 0) AS current
             FROM courses c JOIN versions v ON v.course = c.course
             WHERE c.course = ? ORDER BY v.seq DESC",
        )
        .bind(course.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        if rows.is_empty() {
            return Err(Error::not_found(format!("course {:?}", course.as_str())));
        }
        rows.iter().map(|r| version_info(course, r)).collect()
    }

    async fn courses(&self) -> Result<Vec<CourseId>> {
        let names: Vec<String> = sqlx::query_scalar("SELECT course FROM courses ORDER BY course")
            .fetch_all(&self.db.reader)
            .await
            .map_err(err)?;
        names
            .iter()
            .map(|n| CourseId::new(n).map_err(|_| corrupt("course id", n)))
            .collect()
    }

    async fn currents(&self) -> Result<Vec<VersionInfo>> {
        let rows = sqlx::query(
            "SELECT c.course, v.version, v.created_at, 1 AS current FROM courses c
             JOIN versions v ON v.course = c.course AND v.version = c.current_version
             ORDER BY c.course",
        )
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("course").map_err(err)?;
                let course = CourseId::new(&name).map_err(|_| corrupt("course id", &name))?;
                version_info(&course, r)
            })
            .collect()
    }

    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        let blob: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT manifest FROM versions WHERE course = ? AND version = ?")
                .bind(course.as_str())
                .bind(version.as_str())
                .fetch_optional(&self.db.reader)
                .await
                .map_err(err)?;
        match blob {
            Some(b) => self.decode_manifest(&b).await,
            None => Err(Error::not_found(format!(
                "version {:?} of course {:?}",
                version.as_str(),
                course.as_str()
            ))),
        }
    }

    async fn memo_get(&self, keys: &[String]) -> Result<HashMap<String, MemoEntry>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT key, chunk_id, size FROM memo
             WHERE key IN (SELECT value FROM json_each(?))",
        )
        .bind(json_list(keys))
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let key: String = r.try_get(0).map_err(err)?;
            let id: Vec<u8> = r.try_get(1).map_err(err)?;
            let id: [u8; 32] = id
                .try_into()
                .map_err(|_| corrupt("memo chunk id of", &key))?;
            let size = r.try_get::<i64, _>(2).map_err(err)? as u64;
            out.insert(
                key,
                MemoEntry {
                    id: ChunkId(id),
                    size,
                },
            );
        }
        Ok(out)
    }

    async fn memo_put(&self, entries: &[(String, MemoEntry)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|(k, e)| serde_json::json!([k, hex(&e.id), e.size as i64]))
            .collect();
        let json = serde_json::Value::Array(rows).to_string();
        // One statement for the whole batch; `WHERE true` disambiguates the upsert clause.
        sqlx::query(
            "INSERT INTO memo (key, chunk_id, size)
             SELECT value ->> 0, unhex(value ->> 1), value ->> 2 FROM json_each(?) WHERE true
             ON CONFLICT (key) DO UPDATE SET chunk_id = excluded.chunk_id, size = excluded.size",
        )
        .bind(json)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn put_tocs(&self, tocs: &[(ChunkId, Toc)]) -> Result<()> {
        if tocs.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.writer.begin().await.map_err(err)?;
        for (id, toc) in tocs {
            sqlx::query(
                "INSERT INTO chunk_tocs (chunk_id, toc) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&id.0[..])
            .bind(toc.encode())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn tocs(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Toc>> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let rows = sqlx::query(
            "SELECT chunk_id, toc FROM chunk_tocs
             WHERE chunk_id IN (SELECT unhex(value) FROM json_each(?))",
        )
        .bind(json_list(ids.iter().map(hex)))
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        for r in rows {
            let id: Vec<u8> = r.try_get(0).map_err(err)?;
            let id: [u8; 32] = id
                .try_into()
                .map_err(|_| corrupt("table of contents chunk id", "?"))?;
            let toc: Vec<u8> = r.try_get(1).map_err(err)?;
            out.insert(ChunkId(id), Toc::decode(&toc)?);
        }
        Ok(out)
    }

    async fn memo_forget(&self, ids: &[ChunkId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM memo WHERE chunk_id IN (SELECT unhex(value) FROM json_each(?))")
            .bind(json_list(ids.iter().map(hex)))
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn referenced_chunks(&self) -> Result<HashSet<ChunkId>> {
        let mut conn = self.db.reader.acquire().await.map_err(err)?;
        let mut out = HashSet::new();
        referenced(&mut conn, &mut out).await?;
        Ok(out)
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let done = sqlx::query(
            "INSERT INTO locks (name, owner, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                 expires_at = excluded.expires_at
             WHERE locks.owner = excluded.owner OR locks.expires_at <= ?4",
        )
        .bind(name)
        .bind(owner)
        .bind(now.plus(ttl).0)
        .bind(now.0)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM locks WHERE name = ? AND owner = ?")
            .bind(name)
            .bind(owner)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<LockHolder>> {
        let row =
            sqlx::query("SELECT owner, expires_at FROM locks WHERE name = ? AND expires_at > ?")
                .bind(name)
                .bind(self.now().0)
                .fetch_optional(&self.db.reader)
                .await
                .map_err(err)?;
        row.map(|r| {
            Ok(LockHolder {
                owner: r.try_get(0).map_err(err)?,
                expires_at: Timestamp(r.try_get(1).map_err(err)?),
            })
        })
        .transpose()
    }

    async fn take_over(&self, name: &str, from: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE locks SET owner = ?3, expires_at = ?4 WHERE name = ?1 AND owner = ?2",
        )
        .bind(name)
        .bind(from)
        .bind(owner)
        .bind(self.now().plus(ttl).0)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_chunks(
        &self,
        owner: &str,
        ids: &[ChunkId],
        ttl: Duration,
    ) -> Result<HashSet<ChunkId>> {
        let now = self.now();
        let list = json_list(ids.iter().map(hex));
        // One write transaction: SQLite's single writer serialises it with `gc_mark`.
        let mut tx = self.db.begin().await?;
        if ids.is_empty() {
            // A renewal: every claim of `owner`; expired claims of anyone are swept.
            sqlx::query("DELETE FROM chunk_claims WHERE expires_at <= ?")
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query("UPDATE chunk_claims SET expires_at = ?2 WHERE owner = ?1")
                .bind(owner)
                .bind(now.plus(ttl).0)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        sqlx::query(
            "INSERT INTO chunk_claims (owner, chunk_id, expires_at)
             SELECT DISTINCT ?1, unhex(value), ?2 FROM json_each(?3) WHERE true
             ON CONFLICT (owner, chunk_id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(owner)
        .bind(now.plus(ttl).0)
        .bind(&list)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let marked: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT chunk_id FROM gc_marks
             WHERE chunk_id IN (SELECT unhex(value) FROM json_each(?1)) AND expires_at > ?2",
        )
        .bind(&list)
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        marked.iter().map(|b| blob_id(b)).collect()
    }

    async fn release_claims(&self, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM chunk_claims WHERE owner = ? OR expires_at <= ?")
            .bind(owner)
            .bind(self.now().0)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn gc_mark(
        &self,
        owner: &str,
        candidates: &[ChunkId],
        ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let mut keep = HashSet::new();
        if !candidates.is_empty() {
            // Inside the write transaction: no publish or claim lands between this check
            // and the marks.
            referenced(&mut tx, &mut keep).await?;
            let claimed: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT DISTINCT chunk_id FROM chunk_claims
                 WHERE chunk_id IN (SELECT unhex(value) FROM json_each(?1)) AND expires_at > ?2",
            )
            .bind(json_list(candidates.iter().map(hex)))
            .bind(now.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            for b in &claimed {
                keep.insert(blob_id(b)?);
            }
        }
        let doomed: Vec<ChunkId> = candidates
            .iter()
            .filter(|id| !keep.contains(id))
            .copied()
            .collect();
        let list = json_list(doomed.iter().map(hex));
        sqlx::query("UPDATE gc_marks SET expires_at = ?2 WHERE owner = ?1 AND expires_at > ?3")
            .bind(owner)
            .bind(now.plus(ttl).0)
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        // A live mark of another gc stays that gc's.
        let marked: Vec<Vec<u8>> = sqlx::query_scalar(
            "INSERT INTO gc_marks (chunk_id, owner, expires_at)
             SELECT DISTINCT unhex(value), ?1, ?2 FROM json_each(?3) WHERE true
             ON CONFLICT (chunk_id) DO UPDATE SET owner = excluded.owner,
                 expires_at = excluded.expires_at
             WHERE gc_marks.expires_at <= ?4 OR gc_marks.owner = excluded.owner
             RETURNING chunk_id",
        )
        .bind(owner)
        .bind(now.plus(ttl).0)
        .bind(&list)
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let marked = marked
            .iter()
            .map(|b| blob_id(b))
            .collect::<Result<Vec<ChunkId>>>()?;
        sqlx::query("DELETE FROM memo WHERE chunk_id IN (SELECT unhex(value) FROM json_each(?))")
            .bind(json_list(marked.iter().map(hex)))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM gc_marks WHERE owner = ?1 AND expires_at > ?2",
        )
        .bind(owner)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok((marked, live as u64))
    }

    async fn gc_unmark(&self, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM gc_marks WHERE owner = ? OR expires_at <= ?")
            .bind(owner)
            .bind(self.now().0)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kiln_core::catalog::{Catalog, NewVersion};
    use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
    use kiln_core::manifest::{Manifest, ManifestEntry};

    use kiln_core::manifest_codec;

    #[tokio::test]
    async fn a_version_stored_whole_before_segments_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = crate::DataDir::new(dir.path()).catalog().await.unwrap();
        let m = Manifest::new(vec![ManifestEntry {
            kind: ChunkKind::Question,
            name: "q1".into(),
            id: ChunkId([3; 32]),
            size: 10,
            root: "questions/q1".into(),
        }])
        .unwrap();
        let (course, version) = (CourseId::new("c").unwrap(), VersionId::new("v1").unwrap());
        catalog
            .publish(NewVersion {
                course: course.clone(),
                version: version.clone(),
                manifest: m.clone(),
            })
            .await
            .unwrap();
        sqlx::query("UPDATE versions SET manifest = ?")
            .bind(manifest_codec::encode(&m))
            .execute(&catalog.db.writer)
            .await
            .unwrap();
        sqlx::query("DELETE FROM manifest_segments")
            .execute(&catalog.db.writer)
            .await
            .unwrap();
        assert_eq!(catalog.manifest(&course, &version).await.unwrap(), m);
        assert!(
            catalog
                .referenced_chunks()
                .await
                .unwrap()
                .contains(&ChunkId([3; 32]))
        );
    }
}
