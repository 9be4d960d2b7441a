//! `SqliteQueue`: the [`JobQueue`] on SQLite, built for throughput: every batch operation
//! (enqueue, lease, ack, extend, release) is one statement over a JSON array bound as one
//! parameter, inside one write transaction that also updates the runs' tallies.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::{JobId, RunId};
use kiln_core::queue::{
    DeadLetter, Depth, Enqueued, Job, JobQueue, Lease, LeaseOptions, Leased, Liveness, NewJob,
    RetryOptions, RetryOutcome, Tally,
};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use kiln_core::{Error, Result};
use sqlx::migrate::Migrator;
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::Notify;

use crate::db::{self, Db, err};

mod dedupe;
mod liveness;
mod pick;

use dedupe::Dedupe;

fn migrator() -> Migrator {
    db::migrator(&[
        (
            1,
            "queue",
            include_str!("../migrations/queue/0001_queue.sql"),
        ),
        (
            2,
            "lease tokens",
            include_str!("../migrations/queue/0002_lease_seq.sql"),
        ),
        (
            3,
            "dedupe keys and worker liveness",
            include_str!("../migrations/queue/0003_dedupe_liveness.sql"),
        ),
        (
            4,
            "paused libraries",
            include_str!("../migrations/queue/0004_paused.sql"),
        ),
        (
            5,
            "throttles",
            include_str!("../migrations/queue/0005_throttles.sql"),
        ),
    ])
}

/// The job queue in one SQLite file (WAL, `synchronous = NORMAL`, one writer connection).
///
/// Give it its own file, apart from the catalog and the render cache: each has its own
/// migrations, and the queue's write rate should not wait on theirs. Several processes may
/// open the same file (SQLite serialises their writes); `wait_for_work` is woken at once
/// by this process's enqueues and sees other processes' at its timeout.
///
/// Visibility timeouts, delays, liveness and dead-letter times are read from its clock
/// (the system clock unless [`SqliteQueue::with_clock`] gives another).
#[derive(Debug)]
pub struct SqliteQueue {
    db: Db,
    work: Notify,
    clock: SharedClock,
}

impl SqliteQueue {
    /// Opens the queue at `path`, creating the file and its parent directories, and brings
    /// its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        Ok(Self::new(Db::open(path, &migrator()).await?))
    }

    /// A private queue in memory, for tests; it lives as long as the value.
    pub async fn open_in_memory() -> Result<Self> {
        Ok(Self::new(Db::open_in_memory(&migrator()).await?))
    }

    fn new(db: Db) -> Self {
        SqliteQueue {
            db,
            work: Notify::new(),
            clock: SystemClock::shared(),
        }
    }

    /// This queue reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Wakes every `wait_for_work` now, and the next one to come (it may be between an
    /// empty lease and its wait).
    fn wake(&self) {
        self.work.notify_waiters();
        self.work.notify_one();
    }
}

impl fmt::Display for SqliteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sqlite({})", self.db.label)
    }
}

/// Tally deltas of one transaction, per run.
#[derive(Default)]
struct Deltas(BTreeMap<i64, [i64; 5]>);

const ENQUEUED: usize = 0;
const DONE: usize = 1;
const FAILED: usize = 2;
const DEAD: usize = 3;
const DROPPED: usize = 4;

impl Deltas {
    fn add(&mut self, run: Option<i64>, field: usize, n: i64) {
        if let Some(run) = run {
            self.0.entry(run).or_default()[field] += n;
        }
    }

    async fn apply(self, tx: &mut Transaction<'static, Sqlite>) -> Result<()> {
        for (run, d) in self.0 {
            sqlx::query(
                "INSERT INTO tallies (run, enqueued, done, failed, dead, dropped)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (run) DO UPDATE SET
                     enqueued = enqueued + excluded.enqueued, done = done + excluded.done,
                     failed = failed + excluded.failed, dead = dead + excluded.dead,
                     dropped = dropped + excluded.dropped",
            )
            .bind(run)
            .bind(d[ENQUEUED])
            .bind(d[DONE])
            .bind(d[FAILED])
            .bind(d[DEAD])
            .bind(d[DROPPED])
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        }
        Ok(())
    }
}

/// One record of a lease's `group_concat`: `id,attempt,max_attempts,run,priority,payload`.
fn parse_leased(rec: &str, token: i64) -> Result<Job> {
    let bad = || Error::from(db::Error::Corrupt(format!("leased row {rec:?}")));
    let mut f = rec.split(',');
    let mut int = || -> Result<Option<i64>> {
        let v = f.next().ok_or_else(bad)?;
        if v.is_empty() {
            Ok(None)
        } else {
            v.parse().map(Some).map_err(|_| bad())
        }
    };
    let id = JobId(int()?.ok_or_else(bad)?);
    let attempt = int()?.ok_or_else(bad)? as u32;
    let max_attempts = int()?.ok_or_else(bad)? as u32;
    let run = int()?.map(RunId);
    let priority = int()?.ok_or_else(bad)? as i32;
    let payload = unhex(f.next().ok_or_else(bad)?)?;
    Ok(Job {
        id,
        lease: Lease { job: id, token },
        payload,
        attempt,
        max_attempts,
        run,
        priority,
    })
}

fn unhex(s: &str) -> Result<Bytes> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'F' => Some(c - b'A' + 10),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bad = || Error::from(db::Error::Corrupt("leased payload is not hex".into()));
    if s.len() & 1 != 0 {
        return Err(bad());
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
        .ok_or_else(bad)
}

/// Leases grouped by token (one group per lease call): token -> JSON array of job ids.
fn by_token(leases: &[Lease]) -> BTreeMap<i64, String> {
    let mut groups: BTreeMap<i64, String> = BTreeMap::new();
    for l in leases {
        let ids = groups.entry(l.token).or_insert_with(|| String::from("["));
        if ids.len() > 1 {
            ids.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(ids, "{}", l.job.0);
    }
    for ids in groups.values_mut() {
        ids.push(']');
    }
    groups
}

/// The rows that one token group of leases holds: ids `?1` (a JSON array), token `?2`.
const HELD: &str = "id IN (SELECT value FROM json_each(?1)) AND token = ?2 AND state = 1";

/// Rows per INSERT statement: 9 parameters each, well under SQLite's 32,766.
const ENQUEUE_CHUNK: usize = 500;

static ENQUEUE_SQL: OnceLock<String> = OnceLock::new();

fn enqueue_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO jobs
             (state, priority, avail_at, max_attempts, run, fence_key, fence_gen, payload,
              throttle)
         VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?,?,?,?,?)"
        });
    }
    sql
}

fn i64_of(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(format!("{what} {v} is too large")))
}

#[async_trait]
impl JobQueue for SqliteQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now().0;
        for (i, j) in jobs.iter().enumerate() {
            if let Some((_, g)) = &j.fence {
                i64_of(*g, &format!("job {i} of the batch: fence generation"))?;
            }
            j.check(i)?;
        }
        let mut tx = self.db.begin().await?;
        // The fences of the batch's keys (usually one), read under the write lock so that no
        // fence can commit between this check and the insert.
        let mut keys: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.fence.as_ref().map(|f| f.0.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut fences: HashMap<String, i64> = HashMap::new();
        if !keys.is_empty() {
            let rows = sqlx::query(
                "SELECT key, generation FROM fences WHERE key IN (SELECT value FROM json_each(?))",
            )
            .bind(serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            for r in rows {
                fences.insert(r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?);
            }
        }
        let dedupe = Dedupe::resolve(&mut tx, &jobs).await?;
        let fresh: Vec<&NewJob> = dedupe.fresh.iter().map(|&i| &jobs[i]).collect();
        let mut deltas = Deltas::default();
        let mut fenced = 0usize;
        let mut first = None;
        let mut next = 0i64;
        for chunk in fresh.chunks(ENQUEUE_CHUNK) {
            let sql = if chunk.len() == ENQUEUE_CHUNK {
                ENQUEUE_SQL
                    .get_or_init(|| enqueue_sql(ENQUEUE_CHUNK))
                    .as_str()
            } else {
                &enqueue_sql(chunk.len())
            };
            let mut q = sqlx::query(sql);
            for j in chunk {
                let run = j.run.map(|r| r.0);
                deltas.add(run, ENQUEUED, 1);
                let dropped = j.fence.as_ref().is_some_and(|(k, g)| {
                    fences
                        .get(k.as_str())
                        .is_some_and(|&floor| (*g as i64) < floor)
                });
                if dropped {
                    fenced += 1;
                    deltas.add(run, DROPPED, 1);
                }
                q = q
                    .bind(if dropped { 3i64 } else { 0 })
                    .bind(j.priority)
                    .bind(j.not_before.map_or(now, |t| t.0))
                    .bind(i64::from(j.max_attempts.get()))
                    .bind(run)
                    .bind(j.fence.as_ref().map(|f| f.0.as_str()))
                    .bind(j.fence.as_ref().map(|f| f.1 as i64))
                    .bind(&j.payload[..])
                    .bind(j.throttle.as_deref());
            }
            let done = q.execute(&mut *tx).await.map_err(err)?;
            let n = chunk.len() as i64;
            let last = done.last_insert_rowid();
            // One INSERT under the write lock draws consecutive ids in batch order, and no
            // other writer runs inside this transaction.
            if done.rows_affected() != n as u64 || first.is_some_and(|_| last != next + n - 1) {
                return Err(
                    db::Error::Corrupt(format!("enqueue drew ids out of order at {last}")).into(),
                );
            }
            first.get_or_insert(last - n + 1);
            next = last + 1;
        }
        let n = fresh.len() as i64;
        let first = first.unwrap_or(next - n);
        if fenced > 0 {
            sqlx::query("DELETE FROM jobs WHERE id >= ? AND state = 3")
                .bind(first)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        let ids = dedupe.record(&mut tx, &jobs, first).await?;
        deltas.apply(&mut tx).await?;
        tx.commit().await.map_err(err)?;
        if fenced < fresh.len() {
            self.wake();
        }
        Ok(ids)
    }

    async fn lease(&self, opts: &LeaseOptions) -> Result<Leased> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        // Statements of at most one row each: a lease of 1,000 jobs as 1,000 result rows
        // costs several times more in sqlx than the SQL itself.
        let picked = pick::pick(&mut tx, opts, now).await?;
        let throttled = picked.throttled;
        if picked.n == 0 {
            return Ok(Leased {
                jobs: Vec::new(),
                throttled,
            });
        }
        let ids = picked.ids;
        let token: i64 = sqlx::query_scalar("UPDATE lease_seq SET n = n + 1 RETURNING n")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        if let Some(w) = &opts.worker {
            liveness::refresh(&mut tx, w, now).await?;
        }
        sqlx::query(
            "UPDATE jobs SET state = 1, token = ?3, attempt = attempt + 1, avail_at = ?2,
                 owner = ?4
             WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&ids)
        .bind(now.plus(opts.visibility).0)
        .bind(token)
        .bind(opts.worker.as_ref().map(|w| w.worker.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        // `id,attempt,max_attempts,run,priority,payload-hex` records joined by `;`.
        let rows: String = sqlx::query_scalar(
            "SELECT group_concat(id || ',' || attempt || ',' || max_attempts || ',' ||
                 coalesce(run, '') || ',' || priority || ',' || hex(payload), ';')
             FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(&ids)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let mut jobs = rows
            .split(';')
            .map(|rec| parse_leased(rec, token))
            .collect::<Result<Vec<Job>>>()?;
        jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.id));
        Ok(Leased { jobs, throttled })
    }

    async fn extend(&self, leases: &[Lease], visibility: Duration) -> Result<u64> {
        let until = self.clock.now().plus(visibility);
        let mut n = 0;
        for (token, ids) in by_token(leases) {
            let done = sqlx::query(&format!("UPDATE jobs SET avail_at = ?3 WHERE {HELD}"))
                .bind(ids)
                .bind(token)
                .bind(until.0)
                .execute(&self.db.writer)
                .await
                .map_err(err)?;
            n += done.rows_affected();
        }
        Ok(n)
    }

    async fn ack(&self, leases: &[Lease]) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        let mut deltas = Deltas::default();
        let mut total = 0;
        for (token, ids) in by_token(leases) {
            // Count per run first and delete without RETURNING: one result row per run
            // rather than one per job (rows are the costly part of a statement in sqlx).
            let per_run = sqlx::query(&format!(
                "SELECT run, count(*) FROM jobs WHERE {HELD} GROUP BY run"
            ))
            .bind(&ids)
            .bind(token)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            let mut here = 0;
            for r in per_run {
                let n: i64 = r.try_get(1).map_err(err)?;
                deltas.add(r.try_get(0).map_err(err)?, DONE, n);
                here += n as u64;
            }
            if here > 0 {
                sqlx::query(&format!("DELETE FROM jobs WHERE {HELD}"))
                    .bind(&ids)
                    .bind(token)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
            total += here;
        }
        if total == 0 {
            return Ok(0);
        }
        deltas.apply(&mut tx).await?;
        tx.commit().await.map_err(err)?;
        Ok(total)
    }

    async fn retry(&self, lease: Lease, opts: RetryOptions) -> Result<RetryOutcome> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row = sqlx::query(
            "UPDATE jobs SET
                 state = CASE WHEN attempt >= max_attempts THEN 2 ELSE 0 END,
                 avail_at = ?3, error = ?4,
                 failed_at = CASE WHEN attempt >= max_attempts THEN ?5 END
             WHERE id = ?1 AND token = ?2 AND state = 1
             RETURNING run, state",
        )
        .bind(lease.job.0)
        .bind(lease.token)
        .bind(now.plus(opts.delay).0)
        .bind(&opts.error)
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some(row) = row else {
            return Ok(RetryOutcome::LeaseLost);
        };
        let run: Option<i64> = row.try_get(0).map_err(err)?;
        let dead = row.try_get::<i64, _>(1).map_err(err)? == 2;
        let mut deltas = Deltas::default();
        deltas.add(run, FAILED, 1);
        if dead {
            deltas.add(run, DEAD, 1);
        }
        deltas.apply(&mut tx).await?;
        tx.commit().await.map_err(err)?;
        if dead {
            Ok(RetryOutcome::Dead)
        } else {
            if opts.delay.is_zero() {
                self.wake();
            }
            Ok(RetryOutcome::Retrying)
        }
    }

    async fn fail(&self, lease: Lease, error: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let run: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE jobs SET state = 2, error = ?3, failed_at = ?4
             WHERE id = ?1 AND token = ?2 AND state = 1 RETURNING run",
        )
        .bind(lease.job.0)
        .bind(lease.token)
        .bind(error)
        .bind(self.clock.now().0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some(run) = run else {
            return Ok(false);
        };
        let mut deltas = Deltas::default();
        deltas.add(run, FAILED, 1);
        deltas.add(run, DEAD, 1);
        deltas.apply(&mut tx).await?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn release(&self, leases: &[Lease]) -> Result<u64> {
        let now = self.clock.now();
        let mut n = 0;
        for (token, ids) in by_token(leases) {
            let done = sqlx::query(&format!(
                "UPDATE jobs SET state = 0, avail_at = ?3, attempt = attempt - 1 WHERE {HELD}"
            ))
            .bind(ids)
            .bind(token)
            .bind(now.0)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
            n += done.rows_affected();
        }
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    async fn pause(&self, library: &str) -> Result<()> {
        sqlx::query("INSERT INTO paused (library) VALUES (?) ON CONFLICT DO NOTHING")
            .bind(library)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn resume(&self, library: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM paused WHERE library = ?")
            .bind(library)
            .execute(&self.db.writer)
            .await
            .map_err(err)?;
        if done.rows_affected() > 0 {
            self.wake();
        }
        Ok(done.rows_affected() > 0)
    }

    async fn paused(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT library FROM paused ORDER BY library")
            .fetch_all(&self.db.reader)
            .await
            .map_err(err)
    }

    async fn fence(&self, key: &str, generation: u64) -> Result<u64> {
        let generation = i64_of(generation, "fence generation")?;
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO fences (key, generation) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET generation = max(generation, excluded.generation)",
        )
        .bind(key)
        .bind(generation)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        // The dropped generations' runs never run again: their dedupe keys can go.
        sqlx::query("DELETE FROM job_keys WHERE fence_key = ? AND fence_gen < ?")
            .bind(key)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let runs: Vec<Option<i64>> = sqlx::query_scalar(
            "DELETE FROM jobs WHERE fence_key = ? AND fence_gen < ? AND state < 2 RETURNING run",
        )
        .bind(key)
        .bind(generation)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        let mut deltas = Deltas::default();
        for run in &runs {
            deltas.add(*run, DROPPED, 1);
        }
        deltas.apply(&mut tx).await?;
        tx.commit().await.map_err(err)?;
        Ok(runs.len() as u64)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, payload, attempt, error, run, failed_at FROM jobs
             WHERE state = 2 ORDER BY failed_at, id LIMIT ?",
        )
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        rows.into_iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: JobId(r.try_get(0)?),
                    payload: Bytes::from(r.try_get::<Vec<u8>, _>(1)?),
                    attempts: r.try_get::<i64, _>(2)? as u32,
                    error: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    run: r.try_get::<Option<i64>, _>(4)?.map(RunId),
                    failed_at: Timestamp(r.try_get::<Option<i64>, _>(5)?.unwrap_or(0)),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(err)
    }

    async fn redrive(&self, ids: Option<&[JobId]>) -> Result<u64> {
        let ids = ids.map(|ids| {
            let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
            serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
        });
        let filter = "state = 2 AND (?1 IS NULL OR id IN (SELECT value FROM json_each(?1)))";
        let mut tx = self.db.begin().await?;
        let mut deltas = Deltas::default();
        // A dead letter whose fence moved on meanwhile is dropped rather than redriven.
        let dropped: Vec<Option<i64>> = sqlx::query_scalar(&format!(
            "DELETE FROM jobs WHERE {filter} AND fence_key IS NOT NULL
                 AND fence_gen < (SELECT generation FROM fences WHERE key = jobs.fence_key)
             RETURNING run"
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        for run in &dropped {
            deltas.add(*run, DEAD, -1);
            deltas.add(*run, DROPPED, 1);
        }
        let redriven: Vec<Option<i64>> = sqlx::query_scalar(&format!(
            "UPDATE jobs SET state = 0, attempt = 0, avail_at = ?2, failed_at = NULL
             WHERE {filter} RETURNING run"
        ))
        .bind(&ids)
        .bind(self.clock.now().0)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        for run in &redriven {
            deltas.add(*run, DEAD, -1);
        }
        deltas.apply(&mut tx).await?;
        tx.commit().await.map_err(err)?;
        if !redriven.is_empty() {
            self.wake();
        }
        Ok(redriven.len() as u64)
    }

    async fn tally(&self, run: RunId) -> Result<Tally> {
        let row =
            sqlx::query("SELECT enqueued, done, failed, dead, dropped FROM tallies WHERE run = ?")
                .bind(run.0)
                .fetch_optional(&self.db.reader)
                .await
                .map_err(err)?;
        let Some(r) = row else {
            return Ok(Tally::default());
        };
        let get = |i: usize| r.try_get::<i64, _>(i).map(|v| v.max(0) as u64).map_err(err);
        Ok(Tally {
            enqueued: get(0)?,
            done: get(1)?,
            failed: get(2)?,
            dead: get(3)?,
            dropped: get(4)?,
        })
    }

    async fn pending(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state < 2")
            .fetch_one(&self.db.reader)
            .await
            .map_err(err)?;
        Ok(n as u64)
    }

    async fn depth(&self) -> Result<(Vec<Depth>, u64)> {
        let now = self.clock.now().0;
        let rows: Vec<(i32, i64, i64)> = sqlx::query_as(
            "SELECT priority, sum(state = 0 OR avail_at <= ?1), sum(state = 1 AND avail_at > ?1)
             FROM jobs WHERE state < 2 GROUP BY priority ORDER BY priority DESC",
        )
        .bind(now)
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 2")
            .fetch_one(&self.db.reader)
            .await
            .map_err(err)?;
        let depth = rows.into_iter().map(Depth::from_counts).collect();
        Ok((depth, dead.max(0) as u64))
    }

    async fn wait_for_work(&self, max: Duration) {
        // Dropping the `notified` future is cancel-safe: a permit it did not take stays.
        let _ = tokio::time::timeout(max, self.work.notified()).await;
    }

    async fn heartbeat(&self, worker: &Liveness) -> Result<u64> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        // Itself first: a worker never reclaims its own leases.
        liveness::refresh(&mut tx, worker, now).await?;
        let n = liveness::reclaim_lapsed(&mut tx, now).await?;
        tx.commit().await.map_err(err)?;
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    async fn retire(&self, worker: &str) -> Result<u64> {
        let mut tx = self.db.begin().await?;
        let n = liveness::retire(&mut tx, worker, self.clock.now()).await?;
        tx.commit().await.map_err(err)?;
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }
}
