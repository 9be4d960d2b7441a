//! `kiln sync`: cut a course into chunks, upload the missing ones, publish the version.

use std::sync::Arc;

use kiln_core::catalog::PublishOutcome;
use kiln_core::ids::CourseId;
use kiln_core::layout::{Layout, PrairieLearnOptions};
use serde_json::json;

use crate::args::SyncArgs;
use crate::backends::Env;
use crate::output::{bytes, emit};
use crate::progress::bar;

/// Adapts kiln-sync's progress callbacks to a terminal bar.
struct Bar(indicatif::ProgressBar);

impl kiln_sync::Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// The sync options of `args` under the config's `[sync]` settings.
pub(crate) fn options(env: &Env, args: &SyncArgs) -> anyhow::Result<kiln_sync::SyncOptions> {
    let sync_cfg = &env.config.sync;
    let mut layout_opts = PrairieLearnOptions::default();
    if let Some(g) = &sync_cfg.thumbnail_glob {
        layout_opts.thumbnail_glob = g.clone();
    }
    let mut opts = kiln_sync::SyncOptions::new(args.path.clone());
    opts.course = args.course.as_deref().map(CourseId::new).transpose()?;
    opts.rev = args.rev.clone();
    opts.subdir = args.subdir.clone();
    opts.layout = Layout::prairielearn(&layout_opts);
    if let Some(n) = sync_cfg.max_file_size {
        opts.max_file_size = n;
    }
    if let Some(n) = sync_cfg.upload_concurrency {
        opts.upload_concurrency = n;
    }
    Ok(opts)
}

/// `kiln sync PATH [--course ID] [--rev REV] [--subdir DIR]`.
pub(crate) async fn sync(env: &Env, args: SyncArgs, as_json: bool) -> anyhow::Result<()> {
    let catalog = env.catalog().await?;
    let store = env.store()?;
    let opts = options(env, &args)?;
    let progress = Arc::new(Bar(bar(
        "{spinner} syncing [{bar:40}] {pos}/{len} chunks {per_sec} ETA {eta}",
    )));
    let report = kiln_sync::sync(opts, catalog, store, progress).await?;
    if report.published.objects > 0 {
        env.announce_head(report.head_seq).await;
    }
    let published = !matches!(report.outcome, PublishOutcome::Unchanged);
    let outcome = match report.outcome {
        PublishOutcome::Published => "published",
        PublishOutcome::Reinstated => "reinstated",
        PublishOutcome::Unchanged => "unchanged",
    };
    let reheat = if published {
        crate::cmd::reheat::after_sync(env, &report.course, report.version.as_str()).await?
    } else {
        None
    };
    emit(
        as_json,
        json!({
            "course": report.course.as_str(),
            "version": report.version.as_str(),
            "chunks_total": report.chunks_total,
            "chunks_uploaded": report.chunks_uploaded,
            "bytes_uploaded": report.bytes_uploaded,
            "elapsed_ms": report.elapsed.as_millis() as u64,
            "outcome": outcome,
            "head_seq": report.head_seq,
            "published_objects": report.published.objects,
            "published_bytes": report.published.bytes,
            "reheat_run": reheat.map(|r| r.0),
            "warnings": report.warnings,
        }),
        || {
            let mut s = format!(
                "{} @ {}: {} chunks, {} uploaded ({}), {outcome} in {} ms",
                report.course,
                report.version,
                report.chunks_total,
                report.chunks_uploaded,
                bytes(report.bytes_uploaded),
                report.elapsed.as_millis()
            );
            for w in &report.warnings {
                s.push_str(&format!("\nwarning: {w}"));
            }
            if let Some(r) = reheat {
                s.push_str(&format!("\nreheat run {r} started"));
            }
            s
        },
    );
    Ok(())
}
