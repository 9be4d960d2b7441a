//! `PgQueue`: the JobQueue trait on PostgreSQL: `FOR UPDATE SKIP LOCKED` batch leases, batch
//! enqueue and ack in one statement each, tallies as deltas in the same statement, fences,
//! dead letters, and LISTEN/NOTIFY so idle workers wake as soon as work is enqueued.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::{JobId, RunId};
use kiln_core::queue::{
    DeadLetter, Depth, Enqueued, Job, JobQueue, Lease, LeaseOptions, Leased, Liveness, NewJob,
    RetryOptions, RetryOutcome, Tally,
};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use sqlx::Row;
use tokio::sync::{OnceCell, watch};

use crate::db::PgDb;
use crate::error::{Error, Result};
use crate::notify::{self, AbortOnDrop, Sink};

mod dedupe;
mod liveness;
mod throttle;

/// The job queue on PostgreSQL.
///
/// Every time it decides by (visibility timeouts, delays, liveness, dead-letter times) is
/// read from its clock and bound as a parameter, never the server's `now()`: the system
/// clock unless [`PgQueue::with_clock`] gives another.
#[derive(Clone)]
pub struct PgQueue {
    inner: Arc<Inner>,
    clock: SharedClock,
}

struct Inner {
    db: PgDb,
    channel: String,
    /// Bumped by the listener on every NOTIFY of the queue's channel.
    wake: Arc<watch::Sender<u64>>,
    /// The counter value the last `wait_for_work` saw.
    seen: AtomicU64,
    listener: OnceCell<AbortOnDrop>,
}

impl fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgQueue")
            .field("db", &self.inner.db)
            .finish()
    }
}

impl fmt::Display for PgQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgQueue({})", self.inner.db)
    }
}

fn u32_of(v: i32, what: &'static str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("negative {what} {v}").into()))
}

fn lease_arrays(leases: &[Lease]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().map(|l| (l.job.0, l.token)).unzip()
}

/// Inserts one tally delta per run of the rows of CTE `src` (which has a `run_id` column);
/// `columns` is `(column, expression)` pairs, e.g. `("done", "count(*)")`.
fn tally_cte(name: &str, src: &str, columns: &[(&str, &str)]) -> String {
    let cols: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let exprs: Vec<&str> = columns.iter().map(|c| c.1).collect();
    format!(
        "{name} AS (INSERT INTO tally_deltas (run_id, {}) \
         SELECT run_id, {} FROM {src} WHERE run_id IS NOT NULL GROUP BY run_id)",
        cols.join(", "),
        exprs.join(", ")
    )
}

impl PgQueue {
    /// Connects to `url` and migrates `schema` (default `public`).
    pub async fn connect(url: &str, schema: Option<&str>) -> kiln_core::Result<Self> {
        Ok(PgQueue::new(PgDb::connect(url, schema).await?))
    }

    /// The queue on an open database.
    pub fn new(db: PgDb) -> Self {
        let channel = db.channel("jobs");
        PgQueue {
            inner: Arc::new(Inner {
                db,
                channel,
                wake: Arc::new(watch::channel(0).0),
                seen: AtomicU64::new(0),
                listener: OnceCell::new(),
            }),
            clock: SystemClock::shared(),
        }
    }

    /// This queue reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The database.
    pub fn db(&self) -> &PgDb {
        &self.inner.db
    }

    fn pool(&self) -> &sqlx::PgPool {
        self.inner.db.pool()
    }

    /// Takes the fence keys' advisory locks for the rest of `tx`: shared to enqueue, exclusive
    /// to fence, so a job is never enqueued past a fence that commits concurrently.
    async fn lock_fences(
        tx: &mut sqlx::PgConnection,
        keys: &[&str],
        exclusive: bool,
    ) -> Result<()> {
        let f = if exclusive {
            "pg_advisory_xact_lock"
        } else {
            "pg_advisory_xact_lock_shared"
        };
        let mut keys = keys.to_vec();
        // A fixed order: two batches never wait on each other's keys in a cycle.
        keys.sort_unstable();
        keys.dedup();
        sqlx::query(&format!(
            "SELECT {f}(hashtextextended('kiln.fence.' || k, 0)) FROM unnest($1::text[]) AS k \
             ORDER BY k"
        ))
        .bind(keys)
        .execute(tx)
        .await?;
        Ok(())
    }

    async fn enqueue_inner(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now().0;
        let n = jobs.len();
        let mut payloads = Vec::with_capacity(n);
        let mut priorities = Vec::with_capacity(n);
        let mut visible = Vec::with_capacity(n);
        let mut max_attempts = Vec::with_capacity(n);
        let mut runs = Vec::with_capacity(n);
        let mut fence_keys = Vec::with_capacity(n);
        let mut fence_gens = Vec::with_capacity(n);
        let mut dedupes = Vec::with_capacity(n);
        let mut throttles = Vec::with_capacity(n);
        for (i, j) in jobs.iter().enumerate() {
            j.check(i)?;
            payloads.push(&j.payload[..]);
            priorities.push(j.priority);
            visible.push(j.not_before.map_or(now, |t| t.0));
            max_attempts.push(i32::try_from(j.max_attempts.get()).unwrap_or(i32::MAX));
            runs.push(j.run.map(|r| r.0));
            fence_keys.push(j.fence.as_ref().map(|f| f.0.as_str()));
            let gen_ = match &j.fence {
                Some((_, g)) => Some(i64::try_from(*g).map_err(|_| {
                    kiln_core::Error::invalid(format!(
                        "job {i} of the batch: fence generation {g} is too large"
                    ))
                })?),
                None => None,
            };
            fence_gens.push(gen_);
            dedupes.push(j.dedupe.as_deref());
            throttles.push(j.throttle.as_deref());
        }
        let keys: Vec<&str> = fence_keys.iter().flatten().copied().collect();
        let mut tx = self.pool().begin().await?;
        if !keys.is_empty() {
            Self::lock_fences(&mut tx, &keys, false).await?;
        }
        // Ids are drawn in batch order (the unnest scan yields rows in order), so jobs of one
        // priority lease in enqueue order. A keyed job is created only if its key is new to
        // its run: `claimed` inserts the batch's first occurrence of each key if absent (a
        // concurrent batch with the same key waits for this one and then skips it), and only
        // claimed or unkeyed rows go on. A job below its key's fence is dropped at once: it
        // counts as enqueued and dropped, but is never stored. The ids of rows that were not
        // created are drawn and left unused.
        let sql = format!(
            "WITH src AS MATERIALIZED ( \
               SELECT nextval(pg_get_serial_sequence('jobs', 'id')) AS id, t.*, \
                 sha256(convert_to(t.dedupe, 'UTF8')) AS key_hash \
               FROM unnest($1::bytea[], $2::int4[], $3::int8[], $4::int4[], $5::int8[], $6::text[], $7::int8[], $9::text[], $10::text[]) \
                 WITH ORDINALITY AS t(payload, priority, visible_at, max_attempts, run_id, fence_key, fence_gen, dedupe, throttle, ord) \
             ), claimed AS ( \
               INSERT INTO job_keys (run_id, key_hash, job_id, fence_key, fence_gen) \
               SELECT DISTINCT ON (run_id, key_hash) run_id, key_hash, id, fence_key, fence_gen \
               FROM src WHERE key_hash IS NOT NULL ORDER BY run_id, key_hash, ord \
               ON CONFLICT DO NOTHING RETURNING job_id \
             ), marked AS MATERIALIZED ( \
               SELECT s.*, (f.generation IS NOT NULL AND s.fence_gen < f.generation) AS fenced \
               FROM src s LEFT JOIN fences f ON f.key = s.fence_key \
               WHERE s.key_hash IS NULL OR s.id IN (SELECT job_id FROM claimed) \
             ), ins AS ( \
               INSERT INTO jobs (id, priority, visible_at, max_attempts, run_id, fence_key, fence_gen, payload, throttle) \
               SELECT id, priority, visible_at, max_attempts, run_id, fence_key, fence_gen, payload, throttle \
               FROM marked WHERE NOT fenced \
             ), {} \
             SELECT m.ord, m.id FROM marked m, (SELECT pg_notify($8, '')) AS n ORDER BY m.ord",
            tally_cte(
                "tal",
                "marked",
                &[
                    ("enqueued", "count(*)"),
                    ("dropped", "count(*) FILTER (WHERE fenced)")
                ]
            )
        );
        let created: Vec<(i64, i64)> = sqlx::query_as(&sql)
            .bind(payloads)
            .bind(priorities)
            .bind(visible)
            .bind(max_attempts)
            .bind(&runs)
            .bind(fence_keys)
            .bind(fence_gens)
            .bind(&self.inner.channel)
            .bind(&dedupes)
            .bind(&throttles)
            .fetch_all(&mut *tx)
            .await?;
        let mut ids: Vec<Option<i64>> = vec![None; n];
        for (ord, id) in created {
            let slot = usize::try_from(ord - 1)
                .ok()
                .and_then(|i| ids.get_mut(i))
                .ok_or_else(|| Error::Corrupt(format!("enqueue returned ordinal {ord}").into()))?;
            *slot = Some(id);
        }
        let created: Vec<bool> = ids.iter().map(Option::is_some).collect();
        // The jobs that were not created are duplicates of a key: they get its job's id.
        if created.contains(&false) {
            dedupe::existing_ids(&mut tx, &runs, &dedupes, &mut ids).await?;
        }
        tx.commit().await?;
        ids.into_iter()
            .zip(created)
            .map(|(id, created)| {
                let id = id.ok_or_else(|| Error::Corrupt("a job got no id".into()))?;
                Ok(Enqueued {
                    id: JobId(id),
                    created,
                })
            })
            .collect()
    }

    async fn lease_inner(&self, opts: &LeaseOptions) -> Result<Leased> {
        let now = self.clock.now();
        let max = opts.max_jobs.get();
        if opts.throttles.iter().all(|t| t.limit.is_none()) {
            let caps = vec![max; opts.throttles.len()];
            let (jobs, _) = Self::lease_rows(self.pool(), opts, &caps, now).await?;
            return Ok(Leased {
                jobs,
                throttled: None,
            });
        }
        let mut tx = self.pool().begin().await?;
        let plans = throttle::plan(&mut tx, &opts.throttles, max, now).await?;
        let caps: Vec<usize> = plans.iter().map(|p| p.cap).collect();
        let (jobs, leased) = Self::lease_rows(&mut *tx, opts, &caps, now).await?;
        let throttled = throttle::settle(&mut tx, &opts.throttles, plans, &leased).await?;
        tx.commit().await?;
        Ok(Leased { jobs, throttled })
    }

    /// The lease statement: up to `max_jobs` ready jobs, the unthrottled ones and at most
    /// `caps[i]` of `opts.throttles[i]`'s key, in one priority order. Returns the jobs and
    /// each throttled one's (key, id, token).
    async fn lease_rows<'e>(
        ex: impl sqlx::PgExecutor<'e>,
        opts: &LeaseOptions,
        caps: &[usize],
        now: Timestamp,
    ) -> Result<(Vec<Job>, Vec<(String, i64, i64)>)> {
        let keys: Vec<&str> = opts.throttles.iter().map(|t| t.key.as_str()).collect();
        let caps: Vec<i64> = caps
            .iter()
            .map(|&c| i64::try_from(c).unwrap_or(i64::MAX))
            .collect();
        // With a worker, the same statement refreshes its liveness: a worker that leases is
        // alive, and its row's lock orders this lease against a concurrent reclaim of it.
        let rows = sqlx::query(
            "WITH w AS ( \
               INSERT INTO workers (id, alive_until) SELECT $4::text, $5::int8 WHERE $4::text IS NOT NULL \
               ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until \
             ), free AS ( \
               SELECT id, priority FROM jobs WHERE NOT dead AND throttle IS NULL AND visible_at <= $1 \
                 AND (fence_key IS NULL OR split_part(fence_key, '@', 1) <> ALL ( \
                   SELECT library FROM paused_libraries)) \
               ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED \
             ), keyed AS ( \
               SELECT x.id, x.priority FROM unnest($6::text[], $7::int8[]) AS t(key, cap) \
               CROSS JOIN LATERAL ( \
                 SELECT id, priority FROM jobs WHERE NOT dead AND throttle IS NOT NULL \
                   AND throttle = t.key AND visible_at <= $1 \
                   AND (fence_key IS NULL OR split_part(fence_key, '@', 1) <> ALL ( \
                     SELECT library FROM paused_libraries)) \
                 ORDER BY priority DESC, id LIMIT t.cap FOR UPDATE SKIP LOCKED) x \
               WHERE t.cap > 0 \
             ), p AS ( \
               SELECT id FROM (SELECT * FROM free UNION ALL SELECT * FROM keyed) c \
               ORDER BY priority DESC, id LIMIT $2) \
             UPDATE jobs j SET leased = true, visible_at = $3, token = j.token + 1, attempt = j.attempt + 1, \
               owner = $4::text \
             FROM p WHERE j.id = p.id \
             RETURNING j.id, j.token, j.payload, j.attempt, j.max_attempts, j.run_id, j.priority, j.throttle",
        )
        .bind(now.0)
        .bind(i64::try_from(opts.max_jobs.get()).unwrap_or(i64::MAX))
        .bind(now.plus(opts.visibility).0)
        .bind(opts.worker.as_ref().map(|w| w.worker.as_str()))
        .bind(opts.worker.as_ref().map(|w| now.plus(w.ttl).0))
        .bind(&keys)
        .bind(&caps)
        .fetch_all(ex)
        .await?;
        let mut throttled = Vec::new();
        let mut jobs = rows
            .iter()
            .map(|r| {
                let id = JobId(r.try_get(0)?);
                let token = r.try_get(1)?;
                if let Some(key) = r.try_get::<Option<String>, _>(7)? {
                    throttled.push((key, id.0, token));
                }
                Ok(Job {
                    id,
                    lease: Lease { job: id, token },
                    payload: Bytes::from(r.try_get::<Vec<u8>, _>(2)?),
                    attempt: u32_of(r.try_get(3)?, "attempt")?,
                    max_attempts: u32_of(r.try_get(4)?, "max_attempts")?,
                    run: r.try_get::<Option<i64>, _>(5)?.map(RunId),
                    priority: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok((jobs, throttled))
    }

    async fn extend_inner(&self, leases: &[Lease], visibility: Duration) -> Result<u64> {
        let (ids, tokens) = lease_arrays(leases);
        let done = sqlx::query(
            "UPDATE jobs j SET visible_at = $3 FROM unnest($1::int8[], $2::int8[]) AS l(id, token) \
             WHERE j.id = l.id AND j.token = l.token AND j.leased AND NOT j.dead",
        )
        .bind(ids)
        .bind(tokens)
        .bind(self.clock.now().plus(visibility).0)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn ack_inner(&self, leases: &[Lease]) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let (ids, tokens) = lease_arrays(leases);
        let sql = format!(
            "WITH d AS ( \
               DELETE FROM jobs j USING unnest($1::int8[], $2::int8[]) AS l(id, token) \
               WHERE j.id = l.id AND j.token = l.token AND j.leased AND NOT j.dead \
               RETURNING j.run_id \
             ), {} SELECT count(*) FROM d",
            tally_cte("tal", "d", &[("done", "count(*)")])
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(ids)
            .bind(tokens)
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    async fn retry_inner(&self, lease: Lease, opts: RetryOptions) -> Result<RetryOutcome> {
        let now = self.clock.now();
        let sql = format!(
            "WITH r AS ( \
               UPDATE jobs SET leased = false, dead = attempt >= max_attempts, \
                 visible_at = $3, last_error = $4, \
                 failed_at = CASE WHEN attempt >= max_attempts THEN $5 END \
               WHERE id = $1 AND token = $2 AND leased AND NOT dead \
               RETURNING run_id, dead \
             ), {} SELECT dead FROM r",
            tally_cte(
                "tal",
                "r",
                &[
                    ("failed", "count(*)"),
                    ("dead", "count(*) FILTER (WHERE dead)")
                ]
            )
        );
        let mut tx = self.pool().begin().await?;
        let dead: Option<bool> = sqlx::query_scalar(&sql)
            .bind(lease.job.0)
            .bind(lease.token)
            .bind(now.plus(opts.delay).0)
            .bind(&opts.error)
            .bind(now.0)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match dead {
            None => RetryOutcome::LeaseLost,
            Some(true) => RetryOutcome::Dead,
            Some(false) => RetryOutcome::Retrying,
        };
        if outcome == RetryOutcome::Retrying && opts.delay.is_zero() {
            self.notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn pause_inner(&self, library: &str) -> Result<()> {
        sqlx::query("INSERT INTO paused_libraries (library) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(library)
            .execute(self.db().pool())
            .await?;
        Ok(())
    }

    async fn resume_inner(&self, library: &str) -> Result<bool> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query("DELETE FROM paused_libraries WHERE library = $1")
            .bind(library)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            // Idle workers wake for the jobs that are leasable again.
            self.notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn paused_inner(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT library FROM paused_libraries ORDER BY library")
                .fetch_all(self.db().pool())
                .await?,
        )
    }

    async fn notify(&self, tx: &mut sqlx::PgConnection) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.inner.channel)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn fail_inner(&self, lease: Lease, error: &str) -> Result<bool> {
        let sql = format!(
            "WITH r AS ( \
               UPDATE jobs SET leased = false, dead = true, last_error = $3, failed_at = $4 \
               WHERE id = $1 AND token = $2 AND leased AND NOT dead \
               RETURNING run_id \
             ), {} SELECT count(*) FROM r",
            tally_cte("tal", "r", &[("failed", "count(*)"), ("dead", "count(*)")])
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(lease.job.0)
            .bind(lease.token)
            .bind(error)
            .bind(self.clock.now().0)
            .fetch_one(self.pool())
            .await?;
        Ok(n == 1)
    }

    async fn release_inner(&self, leases: &[Lease]) -> Result<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let (ids, tokens) = lease_arrays(leases);
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE jobs j SET leased = false, visible_at = $3, attempt = j.attempt - 1 \
             FROM unnest($1::int8[], $2::int8[]) AS l(id, token) \
             WHERE j.id = l.id AND j.token = l.token AND j.leased AND NOT j.dead",
        )
        .bind(ids)
        .bind(tokens)
        .bind(self.clock.now().0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            self.notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn fence_inner(&self, key: &str, generation: u64) -> Result<u64> {
        let generation = i64::try_from(generation).map_err(|_| {
            kiln_core::Error::invalid(format!("fence generation {generation} is too large"))
        })?;
        let mut tx = self.pool().begin().await?;
        Self::lock_fences(&mut tx, &[key], true).await?;
        // The dropped generations' runs never run again: their dedupe keys go too.
        let sql = format!(
            "WITH f AS ( \
               INSERT INTO fences (key, generation) VALUES ($1, $2) \
               ON CONFLICT (key) DO UPDATE SET generation = greatest(fences.generation, excluded.generation) \
             ), k AS ( \
               DELETE FROM job_keys WHERE fence_key = $1 AND fence_gen < $2 \
             ), d AS ( \
               DELETE FROM jobs WHERE fence_key = $1 AND fence_gen < $2 AND NOT dead RETURNING run_id \
             ), {} SELECT count(*) FROM d",
            tally_cte("tal", "d", &[("dropped", "count(*)")])
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(key)
            .bind(generation)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n as u64)
    }

    async fn dead_letters_inner(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, payload, attempt, last_error, run_id, failed_at FROM jobs \
             WHERE dead ORDER BY failed_at, id LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: JobId(r.try_get(0)?),
                    payload: Bytes::from(r.try_get::<Vec<u8>, _>(1)?),
                    attempts: u32_of(r.try_get(2)?, "attempt")?,
                    error: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    run: r.try_get::<Option<i64>, _>(4)?.map(RunId),
                    failed_at: Timestamp(r.try_get::<Option<i64>, _>(5)?.unwrap_or(0)),
                })
            })
            .collect()
    }

    async fn redrive_inner(&self, ids: Option<&[JobId]>) -> Result<u64> {
        let ids: Option<Vec<i64>> = ids.map(|ids| ids.iter().map(|i| i.0).collect());
        let mut tx = self.pool().begin().await?;
        // A dead letter whose fence moved on meanwhile is dropped rather than redriven.
        let sql = format!(
            "WITH d AS ( \
               DELETE FROM jobs j USING fences f \
               WHERE j.dead AND ($1::int8[] IS NULL OR j.id = ANY($1)) \
                 AND f.key = j.fence_key AND j.fence_gen < f.generation \
               RETURNING j.run_id \
             ), {} SELECT count(*) FROM d",
            tally_cte(
                "tal",
                "d",
                &[("dead", "-count(*)"), ("dropped", "count(*)")]
            )
        );
        sqlx::query_scalar::<_, i64>(&sql)
            .bind(&ids)
            .fetch_one(&mut *tx)
            .await?;
        let sql = format!(
            "WITH r AS ( \
               UPDATE jobs SET dead = false, leased = false, attempt = 0, visible_at = $2, \
                 failed_at = NULL \
               WHERE dead AND ($1::int8[] IS NULL OR id = ANY($1)) \
               RETURNING run_id \
             ), {} SELECT count(*) FROM r",
            tally_cte("tal", "r", &[("dead", "-count(*)")])
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(&ids)
            .bind(self.clock.now().0)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            self.notify(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n as u64)
    }

    async fn tally_inner(&self, run: RunId) -> Result<Tally> {
        let r = sqlx::query(
            "SELECT coalesce(sum(enqueued), 0)::int8, coalesce(sum(done), 0)::int8, \
               coalesce(sum(failed), 0)::int8, coalesce(sum(dead), 0)::int8, \
               coalesce(sum(dropped), 0)::int8 \
             FROM tally_deltas WHERE run_id = $1",
        )
        .bind(run.0)
        .fetch_one(self.pool())
        .await?;
        let get = |i: usize| -> Result<u64> { Ok(r.try_get::<i64, _>(i)?.max(0) as u64) };
        Ok(Tally {
            enqueued: get(0)?,
            done: get(1)?,
            failed: get(2)?,
            dead: get(3)?,
            dropped: get(4)?,
        })
    }

    async fn pending_inner(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE NOT dead")
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    async fn depth_inner(&self) -> Result<(Vec<Depth>, u64)> {
        let now = self.clock.now().0;
        let rows: Vec<(i32, i64, i64)> = sqlx::query_as(
            "SELECT priority, count(*) FILTER (WHERE NOT leased OR visible_at <= $1), \
               count(*) FILTER (WHERE leased AND visible_at > $1) \
             FROM jobs WHERE NOT dead GROUP BY priority ORDER BY priority DESC",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE dead")
            .fetch_one(self.pool())
            .await?;
        let depth = rows.into_iter().map(Depth::from_counts).collect();
        Ok((depth, dead.max(0) as u64))
    }

    async fn wait_inner(&self, max: Duration) {
        let inner = &self.inner;
        let started = inner
            .listener
            .get_or_try_init(|| {
                notify::listen(
                    inner.db.pool(),
                    &inner.channel,
                    Sink::Wake(inner.wake.clone()),
                )
            })
            .await;
        if let Err(e) = started {
            // Without a listener, fall back to polling every `max`.
            tracing::warn!(error = %e, "cannot listen for jobs; polling");
            tokio::time::sleep(max).await;
            return;
        }
        let mut rx = inner.wake.subscribe();
        let current = *rx.borrow_and_update();
        // Something was notified since the last wait returned: look at once.
        if inner.seen.swap(current, Ordering::Relaxed) != current {
            return;
        }
        let _ = tokio::time::timeout(max, rx.changed()).await;
        inner.seen.store(*rx.borrow(), Ordering::Relaxed);
    }
}

#[async_trait]
impl JobQueue for PgQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> kiln_core::Result<Vec<Enqueued>> {
        Ok(self.enqueue_inner(jobs).await?)
    }

    async fn lease(&self, opts: &LeaseOptions) -> kiln_core::Result<Leased> {
        Ok(self.lease_inner(opts).await?)
    }

    async fn extend(&self, leases: &[Lease], visibility: Duration) -> kiln_core::Result<u64> {
        Ok(self.extend_inner(leases, visibility).await?)
    }

    async fn ack(&self, leases: &[Lease]) -> kiln_core::Result<u64> {
        Ok(self.ack_inner(leases).await?)
    }

    async fn retry(&self, lease: Lease, opts: RetryOptions) -> kiln_core::Result<RetryOutcome> {
        Ok(self.retry_inner(lease, opts).await?)
    }

    async fn fail(&self, lease: Lease, error: &str) -> kiln_core::Result<bool> {
        Ok(self.fail_inner(lease, error).await?)
    }

    async fn release(&self, leases: &[Lease]) -> kiln_core::Result<u64> {
        Ok(self.release_inner(leases).await?)
    }

    async fn fence(&self, key: &str, generation: u64) -> kiln_core::Result<u64> {
        Ok(self.fence_inner(key, generation).await?)
    }

    async fn pause(&self, library: &str) -> kiln_core::Result<()> {
        Ok(self.pause_inner(library).await?)
    }

    async fn resume(&self, library: &str) -> kiln_core::Result<bool> {
        Ok(self.resume_inner(library).await?)
    }

    async fn paused(&self) -> kiln_core::Result<Vec<String>> {
        Ok(self.paused_inner().await?)
    }

    async fn dead_letters(&self, limit: usize) -> kiln_core::Result<Vec<DeadLetter>> {
        Ok(self.dead_letters_inner(limit).await?)
    }

    async fn redrive(&self, ids: Option<&[JobId]>) -> kiln_core::Result<u64> {
        Ok(self.redrive_inner(ids).await?)
    }

    async fn tally(&self, run: RunId) -> kiln_core::Result<Tally> {
        Ok(self.tally_inner(run).await?)
    }

    async fn pending(&self) -> kiln_core::Result<u64> {
        Ok(self.pending_inner().await?)
    }

    async fn depth(&self) -> kiln_core::Result<(Vec<Depth>, u64)> {
        Ok(self.depth_inner().await?)
    }

    async fn wait_for_work(&self, max: Duration) {
        self.wait_inner(max).await
    }

    async fn heartbeat(&self, worker: &Liveness) -> kiln_core::Result<u64> {
        let now = self.clock.now();
        Ok(liveness::heartbeat(self.pool(), &self.inner.channel, worker, now).await?)
    }

    async fn retire(&self, worker: &str) -> kiln_core::Result<u64> {
        let now = self.clock.now();
        Ok(liveness::retire(self.pool(), &self.inner.channel, worker, now).await?)
    }
}
