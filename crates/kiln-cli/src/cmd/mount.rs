//! `kiln mount`: the courses as a read-only FUSE file system, alone or inside `kiln serve`
//! (`--mount`, one cache for both).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use kiln_core::ids::CourseId;
use kiln_load::ChunkCache;
use kiln_mount::{MountCollector, MountMetrics, MountOptions, Mounted, Prepared};
use kiln_server::listen::ListenAddr;
use prometheus_client::registry::Registry;

use crate::args::{CacheArgs, MountArgs};
use crate::backends::Env;
use crate::cmd::load::open_cache;

/// `kiln mount MOUNTPOINT [--course ID...] [--allow-other] [--no-hold] [--metrics ADDR]`:
/// mounts until SIGTERM or Ctrl-C (or until someone unmounts it), then unmounts.
pub(crate) async fn mount(
    env: &Env,
    mountpoint: PathBuf,
    metrics_addr: Option<std::net::SocketAddr>,
    args: &MountArgs,
    cache_args: &CacheArgs,
) -> anyhow::Result<()> {
    let (cache, view) = open_cache(env, cache_args).await?;
    let maintenance = tokio::spawn(cache.clone().maintain_forever());
    let changed = Arc::new(tokio::sync::Notify::new());
    let following = crate::cmd::follow::follow(env, &view, &cache, &changed, Vec::new())?;
    let metrics = Arc::new(MountMetrics::default());
    // The cache's and the mount's counters, for a scraper: no API beside them.
    let health = match metrics_addr {
        Some(addr) => {
            let auth = crate::cmd::serve::auth(env, &ListenAddr::Tcp(addr))?;
            let mut registry = registry(&metrics);
            registry.register_collector(Box::new(crate::cmd::follow::PublishedCollector(
                view.clone(),
            )));
            let state =
                kiln_server::AppState::with_registry(cache.clone(), registry).with_auth(auth);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            eprintln!("metrics on http://{}", listener.local_addr()?);
            Some(tokio::spawn(kiln_server::run_health(
                listener,
                state,
                std::future::pending(),
            )))
        }
        None => None,
    };
    let mounted = start(&cache, mountpoint, args, metrics, changed).await?;
    // The first line of stdout says where, for scripts to wait on.
    println!("mounted at {}", mounted.mountpoint().display());
    let shutdown = crate::cmd::shutdown_signal();
    tokio::pin!(shutdown);
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = poll.tick() => if mounted.is_finished() {
                eprintln!("{} was unmounted", mounted.mountpoint().display());
                break;
            },
        }
    }
    let mp = mounted.mountpoint().to_path_buf();
    mounted.unmount().await?;
    maintenance.abort();
    drop(following);
    if let Some(h) = health {
        h.abort();
    }
    eprintln!("unmounted {}", mp.display());
    Ok(())
}

/// A metrics registry holding a mount's counters (the cache's are added by `AppState`).
pub(crate) fn registry(metrics: &Arc<MountMetrics>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MountCollector(metrics.clone())));
    registry
}

/// Mounts `cache`'s courses, saying on stderr if a dead mount was cleared first.
pub(crate) async fn start(
    cache: &ChunkCache,
    mountpoint: PathBuf,
    args: &MountArgs,
    metrics: Arc<MountMetrics>,
    changed: Arc<tokio::sync::Notify>,
) -> anyhow::Result<Mounted> {
    let mut options = MountOptions::new(mountpoint);
    options.metrics = metrics;
    options.changed = changed;
    if !args.courses.is_empty() {
        options.courses = Some(
            args.courses
                .iter()
                .map(CourseId::new)
                .collect::<Result<_, _>>()?,
        );
    }
    options.allow_other = args.allow_other;
    options.hold_open_files = !args.no_hold;
    options.refresh = cache
        .config()
        .refresh_interval
        .max(std::time::Duration::from_millis(100));
    let mounted = kiln_mount::mount(cache.clone(), options).await?;
    if mounted.prepared == Prepared::RecoveredDeadMount {
        eprintln!(
            "recovered {}: a dead mount was there (its process was killed); unmounted it lazily",
            mounted.mountpoint().display()
        );
    }
    Ok(mounted)
}
