//! In-memory doubles of the queue and render cache, for tests that need no files: a plain
//! model of each contract (the SQLite backends run the same scenarios in `sqlite` tests).
//! The catalog and runs ledger are kiln-testkit's `MemCatalog` and `MemLedger`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::ids::{JobId, LibraryName, RunId};
use kiln_core::queue::{
    DeadLetter, Job, JobQueue, Lease, LeaseOptions, Liveness, NewJob, RetryOptions, RetryOutcome,
    Tally,
};
use kiln_core::render_cache::{CacheEntry, PruneScope, PutOutcome, RenderCache};
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};

fn unsupported<T>() -> Result<T> {
    Err(Error::invalid("not supported by the test queue"))
}

#[derive(Debug, Clone)]
struct MemJob {
    job: NewJob,
    attempt: u32,
    token: i64,
    /// Leased until, when leased.
    leased_until: Option<Timestamp>,
    /// The worker holding the lease.
    owner: Option<String>,
    dead: Option<(String, Timestamp)>,
}

/// A job's fence: (key, generation).
type Fence = Option<(String, u64)>;

/// A job queue.
#[derive(Debug, Default)]
pub(crate) struct MemQueue {
    state: Mutex<QState>,
    notify: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct QState {
    jobs: BTreeMap<i64, MemJob>,
    next_id: i64,
    next_token: i64,
    fences: HashMap<String, u64>,
    tallies: HashMap<i64, Tally>,
    /// (run, dedupe key) -> (job id, fence).
    keys: HashMap<(i64, String), (i64, Fence)>,
    /// Worker -> alive until.
    workers: HashMap<String, Timestamp>,
}

impl QState {
    fn tally(&mut self, run: Option<RunId>) -> Option<&mut Tally> {
        run.map(|r| self.tallies.entry(r.0).or_default())
    }
    fn valid(&self, l: &Lease) -> bool {
        self.jobs
            .get(&l.job.0)
            .is_some_and(|j| j.token == l.token && j.dead.is_none() && j.leased_until.is_some())
    }
}

impl fmt::Display for MemQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemQueue")
    }
}

#[async_trait]
impl JobQueue for MemQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let mut s = self.state.lock().unwrap();
        let mut ids = Vec::new();
        for job in jobs {
            let key = job.run.zip(job.dedupe.clone()).map(|(r, k)| (r.0, k));
            if let Some(&(id, _)) = key.as_ref().and_then(|k| s.keys.get(k)) {
                ids.push(JobId(id));
                continue;
            }
            s.next_id += 1;
            let id = s.next_id;
            ids.push(JobId(id));
            if let Some(k) = key {
                s.keys.insert(k, (id, job.fence.clone()));
            }
            let fenced = job
                .fence
                .as_ref()
                .is_some_and(|(k, g)| s.fences.get(k).is_some_and(|f| g < f));
            let run = job.run;
            if let Some(t) = s.tally(run) {
                t.enqueued += 1;
                if fenced {
                    t.dropped += 1;
                }
            }
            if !fenced {
                s.jobs.insert(
                    id,
                    MemJob {
                        job,
                        attempt: 0,
                        token: 0,
                        leased_until: None,
                        owner: None,
                        dead: None,
                    },
                );
            }
        }
        drop(s);
        self.notify.notify_waiters();
        Ok(ids)
    }
    async fn lease(&self, opts: &LeaseOptions) -> Result<Vec<Job>> {
        let now = Timestamp::now();
        let mut s = self.state.lock().unwrap();
        if let Some(w) = &opts.worker {
            s.workers.insert(w.worker.clone(), now.plus(w.ttl));
        }
        let mut ready: Vec<(i32, i64)> = s
            .jobs
            .iter()
            .filter(|(_, j)| j.dead.is_none())
            .filter(|(_, j)| j.leased_until.is_none_or(|t| t <= now))
            .filter(|(_, j)| j.job.not_before.is_none_or(|t| t <= now))
            .map(|(id, j)| (-j.job.priority, *id))
            .collect();
        ready.sort();
        let mut out = Vec::new();
        for (_, id) in ready.into_iter().take(opts.max_jobs) {
            s.next_token += 1;
            let token = s.next_token;
            let j = s.jobs.get_mut(&id).unwrap();
            j.attempt += 1;
            j.token = token;
            j.leased_until = Some(now.plus(opts.visibility));
            j.owner = opts.worker.as_ref().map(|w| w.worker.clone());
            out.push(Job {
                id: JobId(id),
                lease: Lease {
                    job: JobId(id),
                    token,
                },
                payload: j.job.payload.clone(),
                attempt: j.attempt,
                max_attempts: j.job.max_attempts,
                run: j.job.run,
                priority: j.job.priority,
            });
        }
        Ok(out)
    }
    async fn extend(&self, leases: &[Lease], visibility: Duration) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let mut n = 0;
        for l in leases {
            if s.valid(l) {
                s.jobs.get_mut(&l.job.0).unwrap().leased_until =
                    Some(Timestamp::now().plus(visibility));
                n += 1;
            }
        }
        Ok(n)
    }
    async fn ack(&self, leases: &[Lease]) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let mut n = 0;
        for l in leases {
            if s.valid(l) {
                let j = s.jobs.remove(&l.job.0).unwrap();
                if let Some(t) = s.tally(j.job.run) {
                    t.done += 1;
                }
                n += 1;
            }
        }
        Ok(n)
    }
    async fn retry(&self, lease: Lease, opts: RetryOptions) -> Result<RetryOutcome> {
        let mut s = self.state.lock().unwrap();
        if !s.valid(&lease) {
            return Ok(RetryOutcome::LeaseLost);
        }
        let j = s.jobs.get_mut(&lease.job.0).unwrap();
        let run = j.job.run;
        let dead = j.attempt >= j.job.max_attempts;
        if dead {
            j.dead = Some((opts.error, Timestamp::now()));
        } else {
            j.leased_until = None;
            j.job.not_before = Some(Timestamp::now().plus(opts.delay));
        }
        let t = s.tally(run);
        if let Some(t) = t {
            t.failed += 1;
            if dead {
                t.dead += 1;
            }
        }
        Ok(if dead {
            RetryOutcome::Dead
        } else {
            RetryOutcome::Retrying
        })
    }
    async fn fail(&self, lease: Lease, error: &str) -> Result<bool> {
        let mut s = self.state.lock().unwrap();
        if !s.valid(&lease) {
            return Ok(false);
        }
        let j = s.jobs.get_mut(&lease.job.0).unwrap();
        j.dead = Some((error.to_string(), Timestamp::now()));
        let run = j.job.run;
        if let Some(t) = s.tally(run) {
            t.failed += 1;
            t.dead += 1;
        }
        Ok(true)
    }
    async fn release(&self, leases: &[Lease]) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let mut n = 0;
        for l in leases {
            if s.valid(l) {
                let j = s.jobs.get_mut(&l.job.0).unwrap();
                j.leased_until = None;
                j.attempt -= 1;
                n += 1;
            }
        }
        Ok(n)
    }
    async fn fence(&self, key: &str, generation: u64) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let f = s.fences.entry(key.to_string()).or_default();
        *f = (*f).max(generation);
        let drop: Vec<i64> = s
            .jobs
            .iter()
            .filter(|(_, j)| j.dead.is_none())
            .filter(|(_, j)| {
                j.job
                    .fence
                    .as_ref()
                    .is_some_and(|(k, g)| k == key && *g < generation)
            })
            .map(|(id, _)| *id)
            .collect();
        s.keys
            .retain(|_, (_, f)| !f.as_ref().is_some_and(|(k, g)| k == key && *g < generation));
        for id in &drop {
            let j = s.jobs.remove(id).unwrap();
            if let Some(t) = s.tally(j.job.run) {
                t.dropped += 1;
            }
        }
        Ok(drop.len() as u64)
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let s = self.state.lock().unwrap();
        Ok(s.jobs
            .iter()
            .filter_map(|(id, j)| {
                j.dead.as_ref().map(|(e, at)| DeadLetter {
                    id: JobId(*id),
                    payload: j.job.payload.clone(),
                    attempts: j.attempt,
                    error: e.clone(),
                    run: j.job.run,
                    failed_at: *at,
                })
            })
            .take(limit)
            .collect())
    }
    async fn redrive(&self, _: Option<&[JobId]>) -> Result<u64> {
        unsupported()
    }
    async fn tally(&self, run: RunId) -> Result<Tally> {
        let s = self.state.lock().unwrap();
        Ok(s.tallies.get(&run.0).copied().unwrap_or_default())
    }
    async fn pending(&self) -> Result<u64> {
        let s = self.state.lock().unwrap();
        Ok(s.jobs.values().filter(|j| j.dead.is_none()).count() as u64)
    }
    async fn wait_for_work(&self, max: Duration) {
        let _ =
            tokio::time::timeout(max.min(Duration::from_millis(50)), self.notify.notified()).await;
    }
    async fn heartbeat(&self, worker: &Liveness) -> Result<u64> {
        let now = Timestamp::now();
        let mut s = self.state.lock().unwrap();
        s.workers
            .insert(worker.worker.clone(), now.plus(worker.ttl));
        let lapsed: Vec<String> = s
            .workers
            .iter()
            .filter(|(_, until)| **until < now)
            .map(|(w, _)| w.clone())
            .collect();
        let mut n = 0;
        for w in lapsed {
            s.workers.remove(&w);
            n += s.free(&w);
        }
        Ok(n)
    }
    async fn retire(&self, worker: &str) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        s.workers.remove(worker);
        Ok(s.free(worker))
    }
}

impl QState {
    /// Makes the jobs leased by `worker` ready now.
    fn free(&mut self, worker: &str) -> u64 {
        let mut n = 0;
        for j in self.jobs.values_mut() {
            if j.dead.is_none() && j.leased_until.is_some() && j.owner.as_deref() == Some(worker) {
                j.leased_until = None;
                j.owner = None;
                n += 1;
            }
        }
        n
    }
}

/// A render cache.
#[derive(Debug, Default)]
pub(crate) struct MemCache {
    state: Mutex<CState>,
}

#[derive(Debug, Default)]
struct CState {
    entries: BTreeMap<(String, String), CacheEntry>,
    floors: HashMap<String, u64>,
}

impl fmt::Display for MemCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemCache")
    }
}

fn in_scope(e: &CacheEntry, scope: &PruneScope) -> bool {
    e.generation < scope.below_generation && scope.group.as_ref().is_none_or(|g| g == &e.group)
}

#[async_trait]
impl RenderCache for MemCache {
    async fn get(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let s = self.state.lock().unwrap();
        let now = Timestamp::now();
        Ok(s.entries
            .get(&(library.to_string(), key.to_string()))
            .filter(|e| e.expires_at.is_none_or(|t| t > now))
            .cloned())
    }
    async fn put(
        &self,
        library: &LibraryName,
        entries: Vec<CacheEntry>,
    ) -> Result<Vec<PutOutcome>> {
        let mut s = self.state.lock().unwrap();
        let floor = s.floors.get(library.as_str()).copied().unwrap_or(0);
        Ok(entries
            .into_iter()
            .map(|e| {
                let k = (library.to_string(), e.key.clone());
                let newer = s
                    .entries
                    .get(&k)
                    .is_some_and(|old| old.generation > e.generation);
                if newer || e.generation < floor {
                    PutOutcome::Stale
                } else {
                    s.entries.insert(k, e);
                    PutOutcome::Written
                }
            })
            .collect())
    }
    async fn mark_expiring(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let mut n = 0;
        for ((l, _), e) in s.entries.iter_mut() {
            if l == library.as_str() && in_scope(e, scope) {
                e.expires_at = Some(at);
                n += 1;
            }
        }
        Ok(n)
    }
    async fn sweep(&self, library: &LibraryName, scope: &PruneScope) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let before = s.entries.len();
        s.entries
            .retain(|(l, _), e| !(l == library.as_str() && in_scope(e, scope)));
        Ok((before - s.entries.len()) as u64)
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let mut s = self.state.lock().unwrap();
        let before = s.entries.len();
        s.entries
            .retain(|_, e| e.expires_at.is_none_or(|t| t > now));
        Ok((before - s.entries.len()) as u64)
    }
    async fn set_floor(&self, library: &LibraryName, generation: u64) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        let f = s.floors.entry(library.to_string()).or_default();
        *f = (*f).max(generation);
        Ok(())
    }
    async fn keys(&self, library: &LibraryName) -> Result<Vec<(String, u64, String)>> {
        let s = self.state.lock().unwrap();
        let now = Timestamp::now();
        Ok(s.entries
            .iter()
            .filter(|((l, _), e)| l == library.as_str() && e.expires_at.is_none_or(|t| t > now))
            .map(|((_, k), e)| (k.clone(), e.generation, e.group.clone()))
            .collect())
    }
}
