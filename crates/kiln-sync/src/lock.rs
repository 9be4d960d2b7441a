//! The per-course sync lock: a catalog lease, renewed in the background while a sync runs, so
//! two syncs of one course never interleave and a crashed sync's lease simply expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_core::catalog::Catalog;
use kiln_core::ids::CourseId;
use kiln_core::{Error, Result};

/// How long a lease lasts without renewal.
const TTL: Duration = Duration::from_secs(60);

/// The catalog lease that guards syncs of `course` (gc takes it too).
pub(crate) fn lock_name(course: &CourseId) -> String {
    format!("sync:{course}")
}

/// A held course lock.
pub(crate) struct CourseLock {
    catalog: Arc<dyn Catalog>,
    name: String,
    owner: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl CourseLock {
    /// Takes the lock of `course`, waiting up to `wait` for another holder to let go.
    pub(crate) async fn acquire(
        catalog: Arc<dyn Catalog>,
        course: &CourseId,
        wait: Duration,
    ) -> Result<CourseLock> {
        let name = lock_name(course);
        let owner = format!("sync-{}-{:016x}", std::process::id(), rand::random::<u64>());
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(20);
        while !catalog.try_lock(&name, &owner, TTL).await? {
            if Instant::now() >= deadline {
                return Err(Error::Precondition(format!(
                    "course {course} is being synced by another process (lock {name:?} held)"
                )));
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

    /// Renews the lease now; fails if it was lost (another sync may have started).
    pub(crate) async fn confirm(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst)
            || !self.catalog.try_lock(&self.name, &self.owner, TTL).await?
        {
            return Err(Error::Precondition(format!(
                "lost the sync lock {:?}: nothing was published",
                self.name
            )));
        }
        Ok(())
    }

    /// Gives the lock back.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.catalog.unlock(&self.name, &self.owner).await {
            tracing::warn!(error = %e, lock = %self.name, "releasing the sync lock");
        }
    }
}
