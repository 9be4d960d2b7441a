//! `kiln ensure` and `kiln cat`: the local chunk cache from the command line.

use std::io::Write;
use std::sync::Arc;

use kiln_core::ids::{ChunkRef, CourseId, VersionId};
use kiln_load::{ChunkCache, LoadConfig};
use serde_json::json;

use crate::args::CacheArgs;
use crate::backends::Env;
use crate::output::emit;

/// The chunk cache the config and flags describe, over the published view in the object
/// store (no catalog: a server's read path needs only the store). The view is returned for
/// a long-running command to follow.
pub(crate) async fn open_cache(
    env: &Env,
    args: &CacheArgs,
) -> anyhow::Result<(ChunkCache, kiln_publish::PublishedView)> {
    let dir = env.cache_dir(args.cache_dir.as_deref());
    let store = env.store()?;
    let view = env.published_view(store.clone(), &dir).await?;
    let cache = open_cache_with(env, args, Arc::new(view.clone()), store).await?;
    Ok((cache, view))
}

/// The chunk cache over a content view.
async fn open_cache_with(
    env: &Env,
    args: &CacheArgs,
    content: Arc<dyn kiln_core::content::ContentView>,
    store: Arc<dyn object_store::ObjectStore>,
) -> anyhow::Result<ChunkCache> {
    let mut config = LoadConfig::new(env.cache_dir(args.cache_dir.as_deref()));
    let load = &env.config.load;
    if let Some(b) = args.cache_budget.or(load.budget) {
        config.budget_bytes = b;
    }
    // Every request asks the view, which answers from the head in memory; how fresh that
    // is, is the view's poll and the push channel's business.
    config.refresh_interval = load.refresh_interval.unwrap_or(std::time::Duration::ZERO);
    if let Some(d) = load.version_grace {
        config.version_grace = d;
    }
    if let Some(d) = load.max_stale {
        config.max_stale = d;
    }
    if let Some(d) = load.lease_ttl {
        config.lease_ttl = d;
    }
    if let Some(d) = load.lease_max_ttl {
        config.lease_max_ttl = d;
    }
    let limits = &mut config.lease_limits;
    if let Some(n) = load.lease_max_count {
        limits.max_count = n.get();
    }
    if let Some(n) = load.lease_max_count_per_token {
        limits.max_count_per_holder = n.get();
    }
    limits.max_over_budget = load.lease_max_over_budget.or(limits.max_over_budget);
    limits.max_bytes_per_holder = load
        .lease_max_bytes_per_token
        .or(limits.max_bytes_per_holder);
    Ok(ChunkCache::open(config, content, store).await?)
}

/// `kiln ensure COURSE KIND:NAME...`.
pub(crate) async fn ensure(
    env: &Env,
    course: &str,
    chunks: &[String],
    args: &CacheArgs,
    as_json: bool,
) -> anyhow::Result<()> {
    let course = CourseId::new(course)?;
    let refs = chunks
        .iter()
        .map(|c| c.parse::<ChunkRef>())
        .collect::<Result<Vec<_>, _>>()?;
    let (cache, _view) = open_cache(env, args).await?;
    let ensured = cache.ensure(&course, &refs).await?;
    let paths: Vec<String> = ensured
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let downloaded: Vec<String> = ensured.downloaded.iter().map(ToString::to_string).collect();
    let absent: Vec<String> = ensured.absent.iter().map(ToString::to_string).collect();
    emit(
        as_json,
        json!({
            "course": course.as_str(),
            "version": ensured.version.as_str(),
            "root": ensured.root.display().to_string(),
            "paths": paths,
            "absent": absent,
            "downloaded": downloaded,
        }),
        || {
            let mut s = format!(
                "{course} @ {}: {}\n",
                ensured.version,
                ensured.root.display()
            );
            for p in &paths {
                s.push_str(&format!("  {p}\n"));
            }
            for a in &absent {
                s.push_str(&format!("  {a}: absent from this version\n"));
            }
            s.push_str(&format!("{} chunks downloaded", downloaded.len()));
            s
        },
    );
    Ok(())
}

/// `kiln cat COURSE PATH [--version V]`.
pub(crate) async fn cat(
    env: &Env,
    course: &str,
    path: &str,
    version: Option<&str>,
    args: &CacheArgs,
) -> anyhow::Result<()> {
    let course = CourseId::new(course)?;
    let version = version.map(VersionId::new).transpose()?;
    let (cache, _view) = open_cache(env, args).await?;
    let resolved = cache.resolve_file(&course, version.as_ref(), path).await?;
    let bytes = tokio::fs::read(&resolved.file).await?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(())
}
