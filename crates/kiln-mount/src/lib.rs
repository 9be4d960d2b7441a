//! kiln-mount: a course as a read-only FUSE file system; chunks load on first open.
//!
//! ```text
//! <mount>/<course>/<version>/...   a version's whole course tree
//! <mount>/<course>/current         -> <version>, flips when a new version is published
//! ```
//!
//! Listing and stat'ing come from the catalog alone (the manifest and each chunk's table of
//! contents, see [`kiln_core::toc`]): nothing is downloaded, and an unreachable object store
//! does not hold them up. Opening a file ensures its chunk through the [`ChunkCache`] and
//! holds it (pinned, as a lease holds it) while any file of it is open; reads come from the
//! extracted chunk on local disk. A chunk that cannot be loaded fails the open with EIO, the
//! reason in the log and in [`MountSnapshot::open_errors`].
//!
//! The mount shares its [`ChunkCache`] with whatever else the process runs (`kiln serve
//! --mount` shares one cache, budget and pins with the HTTP API), and its cache directory
//! with other processes as any cache does.

mod fs;
mod metrics;
mod namespace;
mod open;
mod setup;
mod tree;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use kiln_core::ids::CourseId;
use kiln_core::{Error, Result};
use kiln_load::ChunkCache;

pub use metrics::{MountCollector, MountMetrics, MountSnapshot};
pub use setup::{Prepared, check_fuse, claim, lazy_unmount, prepare};

use crate::namespace::Namespace;
use crate::open::Opens;

/// How long [`Mounted::unmount`] lets files that are still open keep reading.
pub const UNMOUNT_GRACE: Duration = Duration::from_secs(5);

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Where.
    pub mountpoint: PathBuf,
    /// Only these courses; every course of the catalog when `None`.
    pub courses: Option<Vec<CourseId>>,
    /// Let other users (an app server's user, a container's) read the mount.
    pub allow_other: bool,
    /// How often courses, versions and current versions are read from the catalog.
    pub refresh: Duration,
    /// Whether an open file holds its chunk (pinned, as a lease holds it) until closed: the
    /// default. Without it the kernel opens files without asking kiln (a warm open costs no
    /// round trip to this process) and asks only to read a page it lacks; the chunk is
    /// then ensured and pinned for that read only, so under a budget below the working set a
    /// chunk may be evicted between two reads of an open file and fetched again.
    pub hold_open_files: bool,
    /// FUSE request threads (opens that must download run on the tokio runtime instead).
    pub threads: usize,
    /// Where the mount counts; made beforehand to register it with a metrics registry.
    pub metrics: Arc<MountMetrics>,
    /// Notified when the catalog announces a new version (PostgreSQL NOTIFY): the mount
    /// refreshes at once instead of at its next tick.
    pub changed: Arc<tokio::sync::Notify>,
}

impl MountOptions {
    /// Defaults: every course, the mounting user only, refreshed every 500 ms, 4 threads.
    pub fn new(mountpoint: impl Into<PathBuf>) -> MountOptions {
        MountOptions {
            mountpoint: mountpoint.into(),
            courses: None,
            allow_other: false,
            refresh: Duration::from_millis(500),
            hold_open_files: true,
            threads: 4,
            metrics: Arc::default(),
            changed: Arc::default(),
        }
    }
}

/// A live mount; [`Mounted::unmount`] (or dropping it) unmounts.
pub struct Mounted {
    session: Option<BackgroundSession>,
    refresher: tokio::task::JoinHandle<()>,
    metrics: Arc<MountMetrics>,
    mountpoint: PathBuf,
    /// The mountpoint's claim (see [`claim`]), released with the mount.
    _claimed: std::fs::File,
    /// What was at the mountpoint before.
    pub prepared: Prepared,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

/// Mounts `cache`'s courses at `options.mountpoint`. Must be called within a tokio
/// multi-threaded runtime, which runs the refreshes and the downloads.
pub async fn mount(cache: ChunkCache, options: MountOptions) -> Result<Mounted> {
    check_fuse(Path::new("/dev/fuse"))?;
    let mp = options.mountpoint.clone();
    let (prepared, claimed) = tokio::task::spawn_blocking(move || {
        let prepared = prepare(&mp)?;
        Ok::<_, Error>((prepared, claim(&mp)?))
    })
    .await
    .map_err(|e| Error::backend("mount", e))??;
    if prepared == Prepared::RecoveredDeadMount {
        tracing::warn!(mountpoint = %options.mountpoint.display(), "a dead mount was at the mountpoint (its process was killed); unmounted it lazily");
    }
    let rt = tokio::runtime::Handle::current();
    let ns = Arc::new(Namespace::new(
        cache.clone(),
        rt.clone(),
        options.courses.clone(),
    ));
    ns.refresh().await?;
    let metrics = options.metrics.clone();
    let opens = Opens::new(cache, rt, metrics);
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let fs = fs::KilnFs {
        ns: ns.clone(),
        opens: opens.clone(),
        hold: options.hold_open_files,
        uid,
        gid,
        started: SystemTime::now(),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("kiln".into()),
        MountOption::Subtype("kiln".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
    ];
    config.acl = if options.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    let mp = options.mountpoint.clone();
    let session = tokio::task::spawn_blocking(move || fuser::spawn_mount(fs, &mp, &config))
        .await
        .map_err(|e| Error::backend("mount", e))?
        .map_err(|e| Error::invalid(format!("mounting {}: {e}", options.mountpoint.display())))?;
    let _ = ns.notifier.set(session.notifier());
    let (every, changed) = (options.refresh, options.changed.clone());
    let refresher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = changed.notified() => {}
            }
            if let Err(e) = ns.refresh().await {
                tracing::debug!("refreshing the mount's courses: {e}");
            }
        }
    });
    Ok(Mounted {
        session: Some(session),
        refresher,
        metrics: options.metrics,
        mountpoint: options.mountpoint,
        _claimed: claimed,
        prepared,
    })
}

impl Mounted {
    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Its counters now.
    pub fn metrics(&self) -> MountSnapshot {
        self.metrics.snapshot()
    }

    /// Whether the session ended by itself (someone unmounted it).
    pub fn is_finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts and waits for the session to end. The unmount is lazy: the mountpoint leaves
    /// the namespace at once, and files still open keep reading while the session serves
    /// them, for at most [`UNMOUNT_GRACE`]; then this returns, and a process that exits
    /// ends them (their reads fail).
    pub async fn unmount(mut self) -> Result<()> {
        self.refresher.abort();
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mp = self.mountpoint.clone();
        let ending = tokio::task::spawn_blocking(move || end(session, &mp));
        match tokio::time::timeout(UNMOUNT_GRACE, ending).await {
            Ok(ended) => ended.map_err(|e| Error::backend("mount", e))?,
            Err(_) => {
                tracing::warn!(mountpoint = %self.mountpoint.display(), "unmounted; files still open after {UNMOUNT_GRACE:?} lose the session");
                Ok(())
            }
        }
    }
}

/// Unmounts (root: a lazy unmount; a user: `fusermount3 -u`, lazily if busy) and waits for
/// the session's threads.
fn end(session: BackgroundSession, mountpoint: &Path) -> Result<()> {
    if session.guard.is_finished() {
        return session.join().map_err(|e| Error::backend("mount", e));
    }
    match session.umount_and_join() {
        Ok(()) => Ok(()),
        // Busy (a file is open): leave the namespace now, go once closed.
        Err(_) => lazy_unmount(mountpoint),
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.refresher.abort();
        if let Some(session) = self.session.take() {
            let _ = end(session, &self.mountpoint);
        }
    }
}
