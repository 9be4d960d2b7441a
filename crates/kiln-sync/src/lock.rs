//! The per-course sync lock: a short catalog lease, renewed in the background while a sync
//! runs, so two syncs of one course never interleave.
//!
//! A holder that is gone is taken over promptly: the lease lasts [`TTL`] (renewed every
//! quarter of it), and a waiter on the same host whose holder's process no longer exists
//! takes the lease at once (the owner string names the host, PID namespace, process and its
//! start time, so a reused PID is not mistaken for the holder). A waiting sync says what it
//! waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_core::catalog::Catalog;
use kiln_core::ids::CourseId;
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};

use crate::holder::Holder;

/// How long a lease lasts without renewal.
pub(crate) const TTL: Duration = Duration::from_secs(15);

/// How often a waiting sync says again what it waits for.
const SAY_EVERY: Duration = Duration::from_secs(10);

/// The catalog lease that guards syncs of `course`.
pub(crate) fn lock_name(course: &CourseId) -> String {
    format!("sync:{course}")
}

/// A held course lock. Its owner string is also the owner of the sync's chunk claims,
/// which the renewer keeps alive with the lease.
pub(crate) struct CourseLock {
    catalog: Arc<dyn Catalog>,
    name: String,
    owner: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl CourseLock {
    /// Takes the lock of `course`, waiting up to `wait` for another holder to let go (or to
    /// be found gone).
    pub(crate) async fn acquire(
        catalog: Arc<dyn Catalog>,
        course: &CourseId,
        wait: Duration,
    ) -> Result<CourseLock> {
        let name = lock_name(course);
        let owner = Holder::current().owner("sync");
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(20);
        let mut said: Option<Instant> = None;
        while !catalog.try_lock(&name, &owner, TTL).await? {
            let holder = catalog.lock_holder(&name).await?;
            if let Some(h) = &holder
                && Holder::is_gone(&h.owner)
            {
                if catalog.take_over(&name, &h.owner, &owner, TTL).await? {
                    tracing::warn!(
                        lock = %name,
                        "took over the sync lock of course {course}: its holder ({}) is gone",
                        Holder::describe(&h.owner)
                    );
                    break;
                }
                continue;
            }
            let who = holder.as_ref().map_or_else(
                || "another process".to_string(),
                |h| {
                    let left = (h.expires_at.0 - Timestamp::now().0).max(0) as f64 / 1000.0;
                    format!(
                        "{} (lease ends in {left:.0} s unless renewed)",
                        Holder::describe(&h.owner)
                    )
                },
            );
            if Instant::now() >= deadline {
                return Err(Error::Precondition(format!(
                    "course {course} is being synced by {who}; try again when it is done"
                )));
            }
            if said.is_none_or(|t| t.elapsed() >= SAY_EVERY) {
                tracing::warn!("waiting for the sync lock of course {course}, held by {who}");
                said = Some(Instant::now());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (catalog, name, owner, lost) =
                (catalog.clone(), name.clone(), owner.clone(), lost.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(TTL / 4).await;
                    match catalog.try_lock(&name, &owner, TTL).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, lock = %name, "renewing the sync lock")
                        }
                    }
                    if let Err(e) = catalog.claim_chunks(&owner, &[], TTL).await {
                        tracing::warn!(error = %e, "renewing the sync's chunk claims");
                    }
                }
            })
        };
        Ok(CourseLock {
            catalog,
            name,
            owner,
            lost,
            renewer,
        })
    }

    /// The lease's owner string (also the owner of the sync's chunk claims).
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Renews the lease now; fails if it was lost (another sync may have started).
    pub(crate) async fn confirm(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst)
            || !self.catalog.try_lock(&self.name, &self.owner, TTL).await?
        {
            return Err(Error::Precondition(format!(
                "lost the sync lock {}: nothing was published",
                self.name
            )));
        }
        Ok(())
    }

    /// Gives the lock back, and drops the sync's chunk claims. A failure (a full disk, an
    /// unreachable catalog) is retried briefly, then left to the lease's expiry.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        for attempt in 0..3u32 {
            let claims = self.catalog.release_claims(&self.owner).await;
            let lock = self.catalog.unlock(&self.name, &self.owner).await;
            match claims.and(lock) {
                Ok(()) => return,
                Err(e) if attempt == 2 => tracing::warn!(
                    error = %e,
                    lock = %self.name,
                    "releasing the sync lock failed; it expires in {} s",
                    TTL.as_secs()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(100 << attempt)).await,
            }
        }
    }
}
