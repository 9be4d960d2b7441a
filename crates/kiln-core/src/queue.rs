//! The JobQueue trait: at-least-once jobs with leases, retries, dead letters and fencing.

use std::fmt::{Debug, Display};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;
use crate::ids::{JobId, RunId};
use crate::throttle::Throttle;
use crate::time::Timestamp;

/// Priorities: higher runs first.
pub mod priority {
    /// A live cache miss that a reader waits for.
    pub const LIVE: i32 = 100;
    /// A run's event to deliver (a webhook): ahead of reheat work, so it is timely.
    pub const EVENT: i32 = 50;
    /// A new-build job.
    pub const NEW_BUILD: i32 = 30;
    /// A producer job.
    pub const PRODUCER: i32 = 20;
    /// A render job of a reheat.
    pub const RENDER: i32 = 10;

    /// The job type a priority stands for in kiln (`"other"` for one kiln does not use).
    pub fn name(priority: i32) -> &'static str {
        match priority {
            LIVE => "live-render",
            EVENT => "event",
            NEW_BUILD => "new-build",
            PRODUCER => "producer",
            RENDER => "render",
            _ => "other",
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The opaque payload (kiln-reheat encodes the job type and its references).
    pub payload: Bytes,
    /// Higher runs first.
    pub priority: i32,
    /// Not before this time (a delayed job).
    pub not_before: Option<Timestamp>,
    /// Attempts before the job becomes a dead letter.
    pub max_attempts: NonZeroU32,
    /// The run the job belongs to, for its tallies.
    pub run: Option<RunId>,
    /// The fence the job is subject to: (key, generation); see [`JobQueue::fence`].
    pub fence: Option<(String, u64)>,
    /// The job's identity within its run (needs `run`): a run gets at most one job per key,
    /// however often it is enqueued; see the contract's **Idempotent enqueue**.
    pub dedupe: Option<String>,
    /// The throttle key: only a lease that names it takes the job, within its limit; see
    /// [`crate::throttle`] and the contract's **Throttles**.
    pub throttle: Option<String>,
}

impl NewJob {
    /// Checks what the types cannot say: a dedupe key needs a run. `i` is the job's place
    /// in its batch, for the message. Every backend calls this before it writes a batch.
    pub fn check(&self, i: usize) -> Result<()> {
        if self.dedupe.is_some() && self.run.is_none() {
            return Err(crate::Error::invalid(format!(
                "job {i} of the batch: a dedupe key needs a run"
            )));
        }
        Ok(())
    }
}

/// What [`JobQueue::enqueue`] did with one job of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id: the new job's, or, for a dedupe key the run already had, its job's.
    pub id: JobId,
    /// Whether this enqueue created the job (and counted it in its run's tally); false when
    /// its dedupe key was already the run's, earlier in the batch or before it.
    pub created: bool,
}

/// A leased job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The lease: acks and retries must present it.
    pub lease: Lease,
    /// The payload as enqueued.
    pub payload: Bytes,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// As enqueued.
    pub max_attempts: u32,
    /// As enqueued.
    pub run: Option<RunId>,
    /// As enqueued.
    pub priority: i32,
}

/// Proof of a lease: the job id and the token of this delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// Changes with every delivery, so a stale holder's ack is refused.
    pub token: i64,
}

/// Options of [`JobQueue::lease`].
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// At most this many jobs.
    pub max_jobs: NonZeroUsize,
    /// The visibility timeout: the job is delivered again after it unless acked or extended.
    pub visibility: Duration,
    /// The worker taking the leases: its liveness is refreshed, and the leases are
    /// reclaimed as soon as it lapses (see [`JobQueue::heartbeat`]) rather than when the
    /// visibility timeout ends. `None`: only the visibility timeout frees them.
    pub worker: Option<Liveness>,
    /// The throttle keys this lease may take jobs of, each within its limit; jobs of a key
    /// not named here are left for a lease that names it.
    pub throttles: Vec<Throttle>,
}

/// What [`JobQueue::lease`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leased {
    /// The jobs, by priority (higher first), then by id.
    pub jobs: Vec<Job>,
    /// A throttle held jobs back: more may be leased after this long (sooner than any new
    /// work would be announced).
    pub throttled: Option<Duration>,
}

/// A worker's liveness: its id (unique per process, e.g. `host-pid-random`) and how long
/// one heartbeat keeps it alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// The worker's id.
    pub worker: String,
    /// How long after its last heartbeat (or lease) the worker counts as alive.
    pub ttl: Duration,
}

/// Options of [`JobQueue::retry`].
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// Deliver again after this delay.
    pub delay: Duration,
    /// Why the attempt failed (kept for the dead letter).
    pub error: String,
}

/// What [`JobQueue::retry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Scheduled again.
    Retrying,
    /// Out of attempts: now a dead letter.
    Dead,
    /// The lease was no longer valid; nothing changed.
    LeaseLost,
}

/// A job that ran out of attempts or failed permanently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The job's id.
    pub id: JobId,
    /// Its payload.
    pub payload: Bytes,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// Its run.
    pub run: Option<RunId>,
    /// When it died.
    pub failed_at: Timestamp,
}

/// A run's job counts, kept by the queue in the same transaction as each transition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Jobs enqueued for the run.
    pub enqueued: u64,
    /// Jobs acked.
    pub done: u64,
    /// Failed attempts (each retry counts once).
    pub failed: u64,
    /// Jobs that became dead letters (and were not redriven).
    pub dead: u64,
    /// Jobs dropped by a fence.
    pub dropped: u64,
}

impl Tally {
    /// Jobs neither done, dead nor dropped.
    pub fn pending(&self) -> u64 {
        self.enqueued
            .saturating_sub(self.done + self.dead + self.dropped)
    }
}

/// Jobs of one priority (in kiln, a job type: see [`priority`]), as [`JobQueue::depth`]
/// counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// The priority.
    pub priority: i32,
    /// Not leased: ready, delayed, or back from an expired lease.
    pub waiting: u64,
    /// Under a valid lease.
    pub leased: u64,
}

impl Depth {
    /// The depth of a backend's `(priority, waiting, leased)` count row.
    pub fn from_counts((priority, waiting, leased): (i32, i64, i64)) -> Depth {
        Depth {
            priority,
            waiting: waiting.max(0) as u64,
            leased: leased.max(0) as u64,
        }
    }
}

/// A durable job queue.
///
/// # Contract
/// - **At-least-once**: an enqueued job is delivered until it is acked, dies or is fenced;
///   a lease that is neither acked nor extended within its visibility timeout expires and
///   the job is delivered again with a new token and `attempt + 1`.
/// - **Ordering**: `lease` returns ready jobs by priority (higher first), then by id; a job
///   with `not_before` in the future is not ready.
/// - **Leases**: `ack`, `extend`, `retry`, `fail` and `release` take effect only with the
///   current token; a stale token changes nothing and is reported (counts / `LeaseLost`).
/// - **Dead letters**: `retry` at `max_attempts`, or `fail`, makes a dead letter; `redrive`
///   makes it ready again with a fresh attempt count.
/// - **Fencing**: `fence(key, g)` drops every job fenced by `key` with a generation below
///   `g`, pending or leased (a later ack of a dropped job changes nothing), and refuses to
///   enqueue such jobs afterwards (they are dropped at once).
/// - **Tallies**: every transition updates its run's [`Tally`] in the same transaction.
/// - **Atomicity**: `enqueue` of a batch is all or nothing.
/// - **Idempotent enqueue**: a job with a `dedupe` key is created at most once per
///   `(run, key)`: enqueueing a key the run already has (pending, leased, done or dead, in
///   this batch or an earlier one) creates nothing, counts nothing in the tally and
///   returns the first job's id with `created: false`; every job counted as enqueued
///   (also one a fence drops at once) has `created: true`, so a caller learns which of
///   its keys were new to the run. A key without a run is refused. Keys are kept until a
///   fence drops their generation (a superseded run never runs again).
/// - **Liveness**: a lease taken with `LeaseOptions::worker` belongs to that worker and
///   refreshes its liveness, as does `heartbeat`. Once a worker's liveness has lapsed, any
///   `heartbeat` (of any worker) reclaims its leases: the jobs are ready at once, as if
///   their leases had expired (the attempt is spent, the old token is stale). A worker's
///   own heartbeat refreshes it before reclaiming, so it never reclaims itself; a live
///   worker's leases are never reclaimed. `retire` forgets a worker and reclaims what it
///   still holds. The visibility timeout stays the backstop for leases without a worker.
/// - **Throttles**: a job with a `throttle` key is leased only by a lease that names the
///   key, and then, across every caller together, the key's valid leases stay within its
///   concurrency and its leased jobs within its rate (a token bucket; see
///   [`crate::throttle`]). A key's limit is the one the lease names (workers of one fleet
///   share a configuration). When a limit held jobs back, `Leased::throttled` says when to
///   lease again. Throttled and unthrottled jobs keep one priority order.
#[async_trait]
pub trait JobQueue: Send + Sync + Debug + Display + 'static {
    /// Enqueues a batch atomically; returns, in order, each job's id and whether it was
    /// created.
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>>;

    /// Leases up to `max_jobs` ready jobs, within the named throttles.
    async fn lease(&self, opts: &LeaseOptions) -> Result<Leased>;

    /// Extends leases by `visibility` from now (the heartbeat); returns how many were valid.
    async fn extend(&self, leases: &[Lease], visibility: Duration) -> Result<u64>;

    /// Completes jobs; returns how many leases were valid.
    async fn ack(&self, leases: &[Lease]) -> Result<u64>;

    /// Schedules another attempt, or makes a dead letter after the last one.
    async fn retry(&self, lease: Lease, opts: RetryOptions) -> Result<RetryOutcome>;

    /// Makes a dead letter at once (a permanent failure); false if the lease was stale.
    async fn fail(&self, lease: Lease, error: &str) -> Result<bool>;

    /// Gives leases back without spending an attempt (graceful shutdown).
    async fn release(&self, leases: &[Lease]) -> Result<u64>;

    /// Drops jobs fenced by `key` with a generation below `generation`; returns how many.
    async fn fence(&self, key: &str, generation: u64) -> Result<u64>;

    /// Holds back the jobs of `library` (fence key `library` or `library@<group>`): leases
    /// skip them, spending no attempt, until [`JobQueue::resume`]; leased ones run on, and
    /// jobs without a fence (live renders, run events) are never held. Idempotent.
    async fn pause(&self, library: &str) -> Result<()>;

    /// Lets `library`'s jobs be leased again; whether it was paused.
    async fn resume(&self, library: &str) -> Result<bool>;

    /// The paused libraries, sorted.
    async fn paused(&self) -> Result<Vec<String>>;

    /// Dead letters, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Makes dead letters ready again (all when `ids` is `None`); returns how many.
    async fn redrive(&self, ids: Option<&[JobId]>) -> Result<u64>;

    /// A run's tallies (zeros for a run with no jobs).
    async fn tally(&self, run: RunId) -> Result<Tally>;

    /// Ready or leased jobs in the whole queue.
    async fn pending(&self) -> Result<u64>;

    /// The jobs that are not dead, per priority (highest first, only priorities with jobs),
    /// and the number of dead letters.
    async fn depth(&self) -> Result<(Vec<Depth>, u64)>;

    /// Returns when work may be ready, or after `max`; cancel-safe.
    async fn wait_for_work(&self, max: Duration);

    /// Refreshes `worker`'s liveness, then reclaims the leases of every worker whose
    /// liveness has lapsed; returns how many jobs were reclaimed.
    async fn heartbeat(&self, worker: &Liveness) -> Result<u64>;

    /// Forgets `worker` (a clean exit) and reclaims the leases it still holds; returns how
    /// many jobs were reclaimed.
    async fn retire(&self, worker: &str) -> Result<u64>;
}
