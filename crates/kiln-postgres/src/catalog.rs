//! `PgCatalog`: the Catalog trait on PostgreSQL, with a NOTIFY on every publish so servers
//! learn of a new current version at once. Its schema also holds [`PgLedger`]'s runs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::catalog::{Catalog, LockHolder, MemoEntry, NewVersion, PublishOutcome, VersionInfo};
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::manifest_codec;
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use kiln_core::toc::Toc;
use sqlx::Row;
use tokio::sync::{OnceCell, broadcast};

use crate::db::PgDb;
use crate::error::{Error, Result};
use crate::ledger::PgLedger;
use crate::notify::{self, AbortOnDrop, Sink};

/// The catalog on PostgreSQL.
#[derive(Clone)]
pub struct PgCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgDb,
    clock: SharedClock,
    versions_tx: broadcast::Sender<String>,
    listener: OnceCell<AbortOnDrop>,
}

impl fmt::Debug for PgCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCatalog")
            .field("db", &self.inner.db)
            .finish()
    }
}

impl fmt::Display for PgCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgCatalog({})", self.inner.db)
    }
}

/// The advisory lock key that serialises `gc_mark` against `claim_chunks`.
const GC_LOCK: i64 = 0x6b69_6c6e_6763; // "kilngc"

pub(crate) fn chunk_id(bytes: &[u8]) -> Result<ChunkId> {
    <[u8; 32]>::try_from(bytes)
        .map(ChunkId)
        .map_err(|_| Error::Corrupt(format!("chunk id of {} bytes", bytes.len()).into()))
}

fn course_id(s: String) -> Result<CourseId> {
    CourseId::new(s).map_err(|e| Error::Corrupt(e.to_string().into()))
}

pub(crate) fn u64_of(v: i64, what: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("negative {what} {v}").into()))
}

fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| kiln_core::Error::invalid(format!("{what} {v} is too large")).into())
}

impl PgCatalog {
    /// Connects to `url` and migrates `schema` (default `public`).
    pub async fn connect(url: &str, schema: Option<&str>) -> kiln_core::Result<Self> {
        Ok(PgCatalog::new(PgDb::connect(url, schema).await?))
    }

    /// The catalog on an open database, reading the wall clock.
    pub fn new(db: PgDb) -> Self {
        PgCatalog::with_clock(db, SystemClock::shared())
    }

    /// The catalog on an open database, reading time from `clock` (version times, lease,
    /// claim and mark expiry: the server's `now()` is never used, so tests can move time).
    pub fn with_clock(db: PgDb, clock: SharedClock) -> Self {
        let (versions_tx, _) = broadcast::channel(1024);
        PgCatalog {
            inner: Arc::new(Inner {
                db,
                clock,
                versions_tx,
                listener: OnceCell::new(),
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &PgDb {
        &self.inner.db
    }

    /// The runs ledger on this catalog's database (and pool) and clock.
    pub fn ledger(&self) -> PgLedger {
        PgLedger::with_clock(self.inner.db.clone(), self.inner.clock.clone())
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Subscribes to publishes: every course whose current version changes (through any
    /// catalog on this schema, on any host) is sent once the publish commits. Returns once
    /// the subscription is live. A receiver that lags (or a listener reconnect) can miss
    /// courses, so callers still refresh on an interval.
    pub async fn subscribe_versions(
        &self,
    ) -> kiln_core::Result<impl futures::Stream<Item = CourseId> + Send + 'static + use<>> {
        let inner = &self.inner;
        inner
            .listener
            .get_or_try_init(|| async {
                let channel = inner.db.channel("versions");
                notify::listen(
                    inner.db.pool(),
                    &channel,
                    Sink::Payloads(inner.versions_tx.clone()),
                )
                .await
            })
            .await
            .map_err(Error::from)?;
        let rx = inner.versions_tx.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(course) => match CourseId::new(course) {
                        Ok(c) => return Some((c, rx)),
                        Err(_) => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "version subscriber lagged");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    async fn publish_inner(&self, v: NewVersion) -> Result<PublishOutcome> {
        let course = v.course.as_str();
        let version = v.version.as_str();
        let mut tx = self.inner.db.pool().begin().await?;
        sqlx::query("INSERT INTO courses (course) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(course)
            .execute(&mut *tx)
            .await?;
        // Serialises publishes of one course.
        let current: Option<String> =
            sqlx::query_scalar("SELECT current_version FROM courses WHERE course = $1 FOR UPDATE")
                .bind(course)
                .fetch_one(&mut *tx)
                .await?;
        if current.as_deref() == Some(version) {
            tx.rollback().await?;
            return Ok(PublishOutcome::Unchanged);
        }
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE course = $1 AND version = $2)",
        )
        .bind(course)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        let outcome = if exists {
            PublishOutcome::Reinstated
        } else {
            // The manifest as segments: only those no earlier version has are written.
            let stored = manifest_codec::encode_segmented(&v.manifest);
            let seg_ids: Vec<&[u8]> = stored.segments.iter().map(|(id, _)| &id[..]).collect();
            let bodies: Vec<&[u8]> = stored.segments.iter().map(|(_, b)| &b[..]).collect();
            let new: Vec<Vec<u8>> = sqlx::query_scalar(
                "INSERT INTO manifest_segments (id, body) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&seg_ids)
            .bind(&bodies)
            .fetch_all(&mut *tx)
            .await?;
            let (mut owners, mut chunks): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
            let cuts = kiln_core::manifest::segments(v.manifest.entries());
            for ((id, _), entries) in stored.segments.iter().zip(&cuts) {
                if new.iter().any(|n| n[..] == id[..]) {
                    for e in *entries {
                        owners.push(&id[..]);
                        chunks.push(&e.id.0[..]);
                    }
                }
            }
            sqlx::query(
                "INSERT INTO segment_chunks (segment, chunk_id) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[])",
            )
            .bind(owners)
            .bind(chunks)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO versions (course, version, created_at, segments) VALUES ($1, $2, $3, $4)",
            )
            .bind(course)
            .bind(version)
            .bind(self.now().0)
            .bind(&stored.list)
            .execute(&mut *tx)
            .await?;
            PublishOutcome::Published
        };
        sqlx::query("UPDATE courses SET current_version = $2 WHERE course = $1")
            .bind(course)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        // Delivered to listeners when (and only if) the transaction commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(self.inner.db.channel("versions"))
            .bind(course)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn current_inner(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        let row = sqlx::query(
            "SELECT v.version, v.created_at FROM courses c \
             JOIN versions v ON v.course = c.course AND v.version = c.current_version \
             WHERE c.course = $1",
        )
        .bind(course.as_str())
        .fetch_optional(self.inner.db.pool())
        .await?;
        row.map(|r| {
            Ok(VersionInfo {
                course: course.clone(),
                version: VersionId::new(r.try_get::<String, _>(0)?)
                    .map_err(|e| Error::Corrupt(e.to_string().into()))?,
                created_at: Timestamp(r.try_get(1)?),
                current: true,
            })
        })
        .transpose()
    }

    async fn versions_inner(&self, course: &CourseId) -> Result<Vec<VersionInfo>> {
        let rows = sqlx::query(
            "SELECT v.version, v.created_at, v.version = c.current_version \
             FROM courses c JOIN versions v ON v.course = c.course \
             WHERE c.course = $1 ORDER BY v.seq DESC",
        )
        .bind(course.as_str())
        .fetch_all(self.inner.db.pool())
        .await?;
        if rows.is_empty() {
            return Err(
                kiln_core::Error::not_found(format!("course {:?}", course.as_str())).into(),
            );
        }
        rows.iter()
            .map(|r| {
                Ok(VersionInfo {
                    course: course.clone(),
                    version: VersionId::new(r.try_get::<String, _>(0)?)
                        .map_err(|e| Error::Corrupt(e.to_string().into()))?,
                    created_at: Timestamp(r.try_get(1)?),
                    current: r.try_get::<Option<bool>, _>(2)?.unwrap_or(false),
                })
            })
            .collect()
    }

    async fn currents_inner(&self) -> Result<Vec<VersionInfo>> {
        let rows = sqlx::query(
            "SELECT c.course, v.version, v.created_at FROM courses c \
             JOIN versions v ON v.course = c.course AND v.version = c.current_version \
             ORDER BY c.course",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(VersionInfo {
                    course: course_id(r.try_get::<String, _>(0)?)?,
                    version: VersionId::new(r.try_get::<String, _>(1)?)
                        .map_err(|e| Error::Corrupt(e.to_string().into()))?,
                    created_at: Timestamp(r.try_get(2)?),
                    current: true,
                })
            })
            .collect()
    }

    async fn courses_inner(&self) -> Result<Vec<CourseId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT course FROM courses WHERE current_version IS NOT NULL ORDER BY course",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut courses = rows
            .into_iter()
            .map(course_id)
            .collect::<Result<Vec<_>>>()?;
        courses.sort();
        Ok(courses)
    }

    async fn manifest_inner(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        let pool = self.inner.db.pool();
        let mut tx = pool.begin().await?;
        let segments: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT segments FROM versions WHERE course = $1 AND version = $2")
                .bind(course.as_str())
                .bind(version.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(segments) = segments else {
            return Err(kiln_core::Error::not_found(format!(
                "version {:?} of course {:?}",
                version.as_str(),
                course.as_str()
            ))
            .into());
        };
        if let Some(list) = segments {
            let ids = manifest_codec::segment_ids(&list)?
                .ok_or_else(|| Error::Corrupt("a version's segment list is not one".into()))?;
            let id_refs: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
            let rows = sqlx::query("SELECT id, body FROM manifest_segments WHERE id = ANY($1)")
                .bind(&id_refs)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            let mut bodies: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(rows.len());
            for r in rows {
                bodies.insert(r.try_get(0)?, r.try_get(1)?);
            }
            let ordered = ids
                .iter()
                .map(|id| {
                    bodies.get(&id[..]).map(Vec::as_slice).ok_or_else(|| {
                        Error::Corrupt(
                            format!("manifest segment {} is missing", ChunkId(*id)).into(),
                        )
                    })
                })
                .collect::<Result<Vec<&[u8]>>>()?;
            return Ok(manifest_codec::decode_segments(ordered)?);
        }
        let rows = sqlx::query(
            "SELECT kind, name, chunk_id, size, root FROM manifest_entries \
             WHERE course = $1 AND version = $2",
        )
        .bind(course.as_str())
        .bind(version.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let entries = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get(0)?;
                Ok(ManifestEntry {
                    kind: kind
                        .parse::<ChunkKind>()
                        .map_err(|e| Error::Corrupt(e.to_string().into()))?,
                    name: r.try_get(1)?,
                    id: chunk_id(r.try_get::<&[u8], _>(2)?)?,
                    size: u64_of(r.try_get(3)?, "chunk size")?,
                    root: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Manifest::new(entries)?)
    }

    async fn memo_get_inner(&self, keys: &[String]) -> Result<HashMap<String, MemoEntry>> {
        let rows = sqlx::query("SELECT key, chunk_id, size FROM memo WHERE key = ANY($1)")
            .bind(keys)
            .fetch_all(self.inner.db.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)?,
                    MemoEntry {
                        id: chunk_id(r.try_get::<&[u8], _>(1)?)?,
                        size: u64_of(r.try_get(2)?, "chunk size")?,
                    },
                ))
            })
            .collect()
    }

    async fn memo_put_inner(&self, entries: &[(String, MemoEntry)]) -> Result<()> {
        // One row per key (the last wins): ON CONFLICT may not touch a row twice.
        let mut last: HashMap<&str, &MemoEntry> = HashMap::new();
        for (k, e) in entries {
            last.insert(k, e);
        }
        let keys: Vec<&str> = last.keys().copied().collect();
        let ids: Vec<&[u8]> = keys.iter().map(|k| &last[k].id.0[..]).collect();
        let sizes = keys
            .iter()
            .map(|k| i64_of(last[k].size, "chunk size"))
            .collect::<Result<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO memo (key, chunk_id, size) \
             SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[]) \
             ON CONFLICT (key) DO UPDATE SET chunk_id = excluded.chunk_id, size = excluded.size",
        )
        .bind(keys)
        .bind(ids)
        .bind(sizes)
        .execute(self.inner.db.pool())
        .await?;
        Ok(())
    }

    async fn put_tocs_inner(&self, tocs: &[(ChunkId, Toc)]) -> Result<()> {
        let ids: Vec<&[u8]> = tocs.iter().map(|(i, _)| &i.0[..]).collect();
        let encoded: Vec<Vec<u8>> = tocs.iter().map(|(_, t)| t.encode()).collect();
        sqlx::query(
            "INSERT INTO chunk_tocs (chunk_id, toc) \
             SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING",
        )
        .bind(ids)
        .bind(encoded)
        .execute(self.inner.db.pool())
        .await?;
        Ok(())
    }

    async fn tocs_inner(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Toc>> {
        let ids: Vec<&[u8]> = ids.iter().map(|i| &i.0[..]).collect();
        let rows: Vec<(Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT chunk_id, toc FROM chunk_tocs WHERE chunk_id = ANY($1)")
                .bind(ids)
                .fetch_all(self.inner.db.pool())
                .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for (id, toc) in rows {
            let id: [u8; 32] = id.try_into().map_err(|_| {
                Error::Corrupt("a table of contents' chunk id is not 32 bytes".into())
            })?;
            let toc = Toc::decode(&toc).map_err(|e| Error::Corrupt(e.to_string().into()))?;
            out.insert(ChunkId(id), toc);
        }
        Ok(out)
    }

    async fn memo_forget_inner(&self, ids: &[ChunkId]) -> Result<()> {
        let ids: Vec<&[u8]> = ids.iter().map(|i| &i.0[..]).collect();
        sqlx::query("DELETE FROM memo WHERE chunk_id = ANY($1)")
            .bind(ids)
            .execute(self.inner.db.pool())
            .await?;
        Ok(())
    }

    async fn referenced_chunks_inner(&self) -> Result<HashSet<ChunkId>> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT chunk_id FROM manifest_entries UNION SELECT chunk_id FROM segment_chunks",
        )
        .fetch_all(self.inner.db.pool())
        .await?;
        rows.iter().map(|b| chunk_id(b)).collect()
    }

    async fn try_lock_inner(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let row = sqlx::query(
            "INSERT INTO locks (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE locks.owner = excluded.owner OR locks.expires_at <= $4 \
             RETURNING name",
        )
        .bind(name)
        .bind(owner)
        .bind(now.plus(ttl).0)
        .bind(now.0)
        .fetch_optional(self.inner.db.pool())
        .await?;
        Ok(row.is_some())
    }

    async fn unlock_inner(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM locks WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(self.inner.db.pool())
            .await?;
        Ok(())
    }

    async fn lock_holder_inner(&self, name: &str) -> Result<Option<LockHolder>> {
        let row =
            sqlx::query("SELECT owner, expires_at FROM locks WHERE name = $1 AND expires_at > $2")
                .bind(name)
                .bind(self.now().0)
                .fetch_optional(self.inner.db.pool())
                .await?;
        row.map(|r| -> Result<LockHolder> {
            Ok(LockHolder {
                owner: r.try_get(0)?,
                expires_at: Timestamp(r.try_get(1)?),
            })
        })
        .transpose()
    }

    async fn take_over_inner(
        &self,
        name: &str,
        from: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE locks SET owner = $3, expires_at = $4 WHERE name = $1 AND owner = $2",
        )
        .bind(name)
        .bind(from)
        .bind(owner)
        .bind(self.now().plus(ttl).0)
        .execute(self.inner.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_chunks_inner(
        &self,
        owner: &str,
        ids: &[ChunkId],
        ttl: Duration,
    ) -> Result<HashSet<ChunkId>> {
        let now = self.now();
        let ids: Vec<&[u8]> = ids.iter().map(|i| &i.0[..]).collect();
        let mut tx = self.inner.db.pool().begin().await?;
        // Claims run beside each other but never beside a gc_mark (which takes it exclusive).
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(GC_LOCK)
            .execute(&mut *tx)
            .await?;
        if ids.is_empty() {
            // A renewal: every claim of `owner`.
            sqlx::query("UPDATE chunk_claims SET expires_at = $2 WHERE owner = $1")
                .bind(owner)
                .bind(now.plus(ttl).0)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO chunk_claims (owner, chunk_id, expires_at) \
             SELECT DISTINCT $1, id, $2 FROM unnest($3::bytea[]) AS u(id) \
             ON CONFLICT (owner, chunk_id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(owner)
        .bind(now.plus(ttl).0)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let marked: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT chunk_id FROM gc_marks WHERE chunk_id = ANY($1) AND expires_at > $2",
        )
        .bind(&ids)
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        marked.iter().map(|b| chunk_id(b)).collect()
    }

    async fn release_claims_inner(&self, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM chunk_claims WHERE owner = $1 OR expires_at <= $2")
            .bind(owner)
            .bind(self.now().0)
            .execute(self.inner.db.pool())
            .await?;
        Ok(())
    }

    async fn gc_mark_inner(
        &self,
        owner: &str,
        candidates: &[ChunkId],
        ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)> {
        let now = self.now();
        let ids: Vec<&[u8]> = candidates.iter().map(|i| &i.0[..]).collect();
        let mut tx = self.inner.db.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(GC_LOCK)
            .execute(&mut *tx)
            .await?;
        // Publishes that commit while this runs: a version's chunks were claimed by its
        // sync before it relied on them, and claims are visible here (the lock above waits
        // for every claim transaction).
        sqlx::query("UPDATE gc_marks SET expires_at = $2 WHERE owner = $1 AND expires_at > $3")
            .bind(owner)
            .bind(now.plus(ttl).0)
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
        let marked: Vec<Vec<u8>> = sqlx::query_scalar(
            "INSERT INTO gc_marks (chunk_id, owner, expires_at) \
             SELECT DISTINCT id, $1, $2 FROM unnest($3::bytea[]) AS u(id) \
             WHERE NOT EXISTS (SELECT 1 FROM manifest_entries m WHERE m.chunk_id = u.id) \
               AND NOT EXISTS (SELECT 1 FROM segment_chunks s WHERE s.chunk_id = u.id) \
               AND NOT EXISTS (SELECT 1 FROM chunk_claims c \
                               WHERE c.chunk_id = u.id AND c.expires_at > $4) \
             ON CONFLICT (chunk_id) DO UPDATE SET owner = excluded.owner, \
                 expires_at = excluded.expires_at \
             WHERE gc_marks.expires_at <= $4 OR gc_marks.owner = excluded.owner \
             RETURNING chunk_id",
        )
        .bind(owner)
        .bind(now.plus(ttl).0)
        .bind(&ids)
        .bind(now.0)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM memo WHERE chunk_id = ANY($1)")
            .bind(&marked)
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM gc_marks WHERE owner = $1 AND expires_at > $2",
        )
        .bind(owner)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let marked = marked
            .iter()
            .map(|b| chunk_id(b))
            .collect::<Result<Vec<_>>>()?;
        Ok((marked, u64_of(live, "mark count")?))
    }

    async fn gc_unmark_inner(&self, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM gc_marks WHERE owner = $1 OR expires_at <= $2")
            .bind(owner)
            .bind(self.now().0)
            .execute(self.inner.db.pool())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Catalog for PgCatalog {
    async fn publish(&self, version: NewVersion) -> kiln_core::Result<PublishOutcome> {
        Ok(self.publish_inner(version).await?)
    }

    async fn current(&self, course: &CourseId) -> kiln_core::Result<Option<VersionInfo>> {
        Ok(self.current_inner(course).await?)
    }

    async fn versions(&self, course: &CourseId) -> kiln_core::Result<Vec<VersionInfo>> {
        Ok(self.versions_inner(course).await?)
    }

    async fn courses(&self) -> kiln_core::Result<Vec<CourseId>> {
        Ok(self.courses_inner().await?)
    }

    async fn currents(&self) -> kiln_core::Result<Vec<VersionInfo>> {
        Ok(self.currents_inner().await?)
    }

    async fn manifest(
        &self,
        course: &CourseId,
        version: &VersionId,
    ) -> kiln_core::Result<Manifest> {
        Ok(self.manifest_inner(course, version).await?)
    }

    async fn memo_get(&self, keys: &[String]) -> kiln_core::Result<HashMap<String, MemoEntry>> {
        Ok(self.memo_get_inner(keys).await?)
    }

    async fn memo_put(&self, entries: &[(String, MemoEntry)]) -> kiln_core::Result<()> {
        Ok(self.memo_put_inner(entries).await?)
    }

    async fn put_tocs(&self, tocs: &[(ChunkId, Toc)]) -> kiln_core::Result<()> {
        Ok(self.put_tocs_inner(tocs).await?)
    }

    async fn tocs(&self, ids: &[ChunkId]) -> kiln_core::Result<HashMap<ChunkId, Toc>> {
        Ok(self.tocs_inner(ids).await?)
    }

    async fn memo_forget(&self, ids: &[ChunkId]) -> kiln_core::Result<()> {
        Ok(self.memo_forget_inner(ids).await?)
    }

    async fn referenced_chunks(&self) -> kiln_core::Result<HashSet<ChunkId>> {
        Ok(self.referenced_chunks_inner().await?)
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> kiln_core::Result<bool> {
        Ok(self.try_lock_inner(name, owner, ttl).await?)
    }

    async fn unlock(&self, name: &str, owner: &str) -> kiln_core::Result<()> {
        Ok(self.unlock_inner(name, owner).await?)
    }

    async fn lock_holder(&self, name: &str) -> kiln_core::Result<Option<LockHolder>> {
        Ok(self.lock_holder_inner(name).await?)
    }

    async fn take_over(
        &self,
        name: &str,
        from: &str,
        owner: &str,
        ttl: Duration,
    ) -> kiln_core::Result<bool> {
        Ok(self.take_over_inner(name, from, owner, ttl).await?)
    }

    async fn claim_chunks(
        &self,
        owner: &str,
        ids: &[ChunkId],
        ttl: Duration,
    ) -> kiln_core::Result<HashSet<ChunkId>> {
        Ok(self.claim_chunks_inner(owner, ids, ttl).await?)
    }

    async fn release_claims(&self, owner: &str) -> kiln_core::Result<()> {
        Ok(self.release_claims_inner(owner).await?)
    }

    async fn gc_mark(
        &self,
        owner: &str,
        candidates: &[ChunkId],
        ttl: Duration,
    ) -> kiln_core::Result<(Vec<ChunkId>, u64)> {
        Ok(self.gc_mark_inner(owner, candidates, ttl).await?)
    }

    async fn gc_unmark(&self, owner: &str) -> kiln_core::Result<()> {
        Ok(self.gc_unmark_inner(owner).await?)
    }
}
