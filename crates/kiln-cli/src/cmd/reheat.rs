//! `kiln reheat`, `kiln worker`, `kiln runs`, `kiln dlq`, and the reheat a sync triggers.

use std::time::{Duration, Instant};

use anyhow::Context;
use kiln_core::ids::{CourseId, JobId, LibraryName, RunId};
use kiln_core::ledger::RunState;
use kiln_core::time::{Clock, SystemClock};
use kiln_reheat::{Libraries, Reheat, StartOptions, WaitEvent, WaitOptions, Worker, WorkerOptions};
use serde_json::json;

use crate::args::DlqCommand;
use crate::backends::Env;
use crate::output::emit;
use crate::progress::bar;

/// The reheat service over the configured backends and libraries.
pub(crate) async fn service(env: &Env) -> anyhow::Result<Reheat> {
    let (catalog, ledger) = env.catalog_and_ledger().await?;
    let queue = env.queue().await?;
    let cache = env.render_cache().await?;
    let libraries = Libraries::from_configs(&env.config.libraries, catalog)
        .context("invalid config: [[library]]")?;
    Ok(Reheat::new(
        ledger,
        queue,
        cache,
        libraries,
        SystemClock::shared(),
    ))
}

fn worker_options(env: &Env, concurrency: Option<std::num::NonZeroUsize>) -> WorkerOptions {
    let mut opts = WorkerOptions::default();
    if let Some(c) = concurrency.or(env.config.worker.concurrency) {
        opts.concurrency = c;
    }
    if let Some(v) = env.config.worker.visibility {
        opts.visibility = v;
    }
    if let Some(l) = env.config.worker.liveness {
        opts.liveness = l;
    }
    opts
}

/// Starts a reheat of every library that reheats after `course` publishes a version:
/// those the course's `[[course]] reheat` names, and those whose source is the course.
pub(crate) async fn after_sync(
    env: &Env,
    course: &CourseId,
    version: &str,
) -> anyhow::Result<Option<RunId>> {
    let mut names: Vec<String> = env
        .config
        .courses
        .iter()
        .filter(|c| c.id == course.as_str())
        .filter_map(|c| c.reheat.clone())
        .collect();
    let sourced = env.config.libraries.iter().filter(|l| {
        matches!(&l.source, kiln_reheat::config::SourceConfig::Course(c) if c == course.as_str())
    });
    names.extend(sourced.map(|l| l.name.clone()));
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(None);
    }
    let reheat = service(env).await?;
    let mut first = None;
    for name in names {
        let opts = StartOptions {
            build: Some(version.to_string()),
            group: None,
        };
        let run = reheat
            .start(&name, opts)
            .await
            .with_context(|| format!("starting the reheat of library {name} after the sync"))?;
        first.get_or_insert(run.id);
    }
    Ok(first)
}

/// `kiln reheat LIBRARY [--build ID] [--group G] [--wait [--timeout D]] [--work]`.
/// `kiln reheat LIBRARY --key K...`: a targeted reheat of some keys (soft invalidation:
/// marked stale, still served, re-rendered at live priority); with `--work`, this process
/// renders them before it exits.
pub(crate) async fn reheat_keys(
    env: &Env,
    library: &str,
    keys: Vec<String>,
    work: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let reheat = service(env).await?;
    let done = reheat
        .invalidate(
            library,
            kiln_core::render_cache::StaleScope::Keys(keys.clone()),
        )
        .await?;
    let mut rendered = 0;
    if work {
        let worker = Worker::new(reheat.clone(), worker_options(env, None));
        rendered = worker.drain().await?;
    }
    emit(
        as_json,
        json!({
            "library": library,
            "keys": keys,
            "marked": done.marked,
            "queued": done.queued,
            "worked": work,
        }),
        || {
            let tail = if work {
                format!("; rendered in {rendered} batch(es)")
            } else {
                "; a worker renders them".to_string()
            };
            format!(
                "library {library}: {} key(s) marked stale, {} queued at live priority{tail}",
                done.marked, done.queued
            )
        },
    );
    Ok(())
}

/// How `kiln reheat --wait` waits: until the run ends, or `timeout` from now.
pub(crate) fn waiting(timeout: Option<Duration>) -> WaitOptions {
    WaitOptions {
        deadline: timeout.map(|t| tokio::time::Instant::now() + t),
        ..WaitOptions::default()
    }
}

/// `kiln reheat LIBRARY`: starts a run; with `wait`, waits for it to end (see [`waiting`]).
pub(crate) async fn reheat(
    env: &Env,
    library: &str,
    build: Option<String>,
    group: Option<String>,
    wait: Option<WaitOptions>,
    work: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let reheat = service(env).await?;
    let run = reheat.start(library, StartOptions { build, group }).await?;
    let worker = work.then(|| Worker::new(reheat.clone(), worker_options(env, None)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker_task = async {
        if let Some(w) = &worker {
            w.run(async {
                let _ = stop_rx.await;
            })
            .await?;
        }
        anyhow::Ok(())
    };
    let watch = async {
        let status = if let Some(opts) = &wait {
            let bar = bar("{spinner} {msg} [{bar:40}] {pos}/{len} jobs {per_sec} ETA {eta}");
            bar.set_message(format!("run {}", run.id));
            let s = reheat
                .wait(run.id, opts, |e| match e {
                    WaitEvent::Progress(s) => {
                        bar.set_length(s.tally.enqueued);
                        bar.set_position(s.tally.done + s.tally.dead + s.tally.dropped);
                    }
                    WaitEvent::Retrying {
                        error,
                        failures,
                        after,
                    } => {
                        let after = Duration::from_millis(after.as_millis() as u64);
                        bar.suspend(|| {
                            eprintln!(
                                "kiln: waiting for run {}: {error}; trying again in {} \
                                 ({failures} failed in a row)",
                                run.id,
                                humantime::format_duration(after)
                            )
                        });
                    }
                })
                .await
                .with_context(|| format!("waiting for run {}", run.id));
            bar.finish_and_clear();
            s?
        } else {
            reheat.status(run.id).await?
        };
        let _ = stop_tx.send(());
        anyhow::Ok(status)
    };
    let (w, status) = tokio::join!(worker_task, watch);
    w?;
    let s = status?;
    emit(
        as_json,
        json!({
            "run": s.run.id.0,
            "library": s.run.library.as_str(),
            "build": s.run.build,
            "generation": s.run.generation,
            "state": s.run.state.as_str(),
            "jobs_enqueued": s.tally.enqueued,
            "jobs_done": s.tally.done,
            "jobs_failed": s.tally.failed,
            "jobs_dead": s.tally.dead,
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "summary": summary(&s.stats, s.wall_time(SystemClock.now())),
        }),
        || {
            format!(
                "run {} of {} (build {}, generation {}): {}; {} done, {} failed attempts, {} dead",
                s.run.id,
                s.run.library,
                s.run.build,
                s.run.generation,
                s.run.state.as_str(),
                s.tally.done,
                s.tally.failed,
                s.tally.dead
            )
        },
    );
    if wait.is_some() && s.run.state == RunState::Running {
        anyhow::bail!(
            "run {} is still running at the --timeout; it goes on (see `kiln runs`)",
            s.run.id
        );
    }
    if wait.is_some() && s.run.state == RunState::Failed {
        anyhow::bail!(
            "run {} failed: {} dead letters (see `kiln dlq list`)",
            s.run.id,
            s.tally.dead
        );
    }
    Ok(())
}

/// `kiln worker [--concurrency N] [--exit-when-idle D]`.
pub(crate) async fn worker(
    env: &Env,
    concurrency: Option<std::num::NonZeroUsize>,
    exit_when_idle: Option<Duration>,
) -> anyhow::Result<()> {
    let reheat = service(env).await?;
    let queue = reheat.queue().clone();
    let worker = Worker::new(reheat, worker_options(env, concurrency));
    let idle = async {
        match exit_when_idle {
            None => std::future::pending::<()>().await,
            Some(d) => {
                let mut idle_since = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    match queue.pending().await {
                        Ok(0) if idle_since.elapsed() >= d => break,
                        Ok(0) => {}
                        _ => idle_since = Instant::now(),
                    }
                }
            }
        }
    };
    worker
        .run(async {
            tokio::select! {
                () = crate::cmd::shutdown_signal() => {}
                () = idle => {}
            }
        })
        .await?;
    Ok(())
}

/// `kiln runs [LIBRARY] [--limit N]`.
pub(crate) async fn runs(
    env: &Env,
    library: Option<&str>,
    limit: usize,
    as_json: bool,
) -> anyhow::Result<()> {
    let library = library.map(LibraryName::new).transpose()?;
    let (_, ledger) = env.catalog_and_ledger().await?;
    let queue = env.queue().await?;
    let mut rows = Vec::new();
    for run in ledger.runs(library.as_ref(), limit).await? {
        let tally = queue.tally(run.id).await?;
        let stats = ledger.run_stats(run.id).await?;
        rows.push((run, tally, stats));
    }
    let now = SystemClock.now();
    let wall = |r: &kiln_core::ledger::Run| {
        Duration::from_millis((r.finished_at.unwrap_or(now).0 - r.created_at.0).max(0) as u64)
    };
    let json_rows: Vec<_> = rows
        .iter()
        .map(|(r, t, s)| {
            json!({
                "run": r.id.0, "library": r.library.as_str(), "build": r.build,
                "generation": r.generation, "group": r.group, "state": r.state.as_str(),
                "created_at": r.created_at.0, "finished_at": r.finished_at.map(|t| t.0),
                "jobs_enqueued": t.enqueued, "jobs_done": t.done, "jobs_failed": t.failed,
                "jobs_dead": t.dead, "jobs_dropped": t.dropped,
                "summary": summary(s, wall(r)),
            })
        })
        .collect();
    emit(as_json, json!({ "runs": json_rows }), || {
        rows.iter()
            .map(|(r, t, s)| {
                let p = |q| {
                    s.latency_quantile(q)
                        .and_then(kiln_reheat::reheat::seconds_to_ms)
                        .map_or("-".to_string(), |ms| format!("{ms}ms"))
                };
                format!(
                    "run {:<5} {:<20} gen {:<4} {:<10} {}/{} done, {} dead, {} dropped, \
                     {} pruned, {:.1}s, p50 {} p99 {}  build {}",
                    r.id.0,
                    r.library,
                    r.generation,
                    r.state.as_str(),
                    t.done,
                    t.enqueued,
                    t.dead,
                    t.dropped,
                    s.pruned,
                    wall(r).as_secs_f64(),
                    p(0.5),
                    p(0.99),
                    r.build
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// A run's summary as `kiln reheat --json` and `kiln runs --json` print it (the API's
/// `RunSummary`).
fn summary(s: &kiln_core::ledger::RunStats, wall: Duration) -> serde_json::Value {
    let ms = |q| {
        s.latency_quantile(q)
            .and_then(kiln_reheat::reheat::seconds_to_ms)
    };
    json!({
        "wall_ms": wall.as_millis() as u64,
        "renders": s.renders(),
        "render_p50_ms": ms(0.5),
        "render_p99_ms": ms(0.99),
        "failures": s.failures,
        "pruned": s.pruned,
    })
}

/// `kiln pause LIBRARY` (`pause`) and `kiln resume LIBRARY`.
pub(crate) async fn pause(
    env: &Env,
    library: &str,
    pause: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let reheat = service(env).await?;
    let changed = if pause {
        reheat.pause(library).await?
    } else {
        reheat.resume(library).await?
    };
    emit(
        as_json,
        json!({ "library": library, "paused": pause, "changed": changed }),
        || {
            let state = if pause { "paused" } else { "resumed" };
            let already = if changed { "" } else { " (it already was)" };
            format!("library {library}: {state}{already}")
        },
    );
    Ok(())
}

/// `kiln cancel RUN`.
pub(crate) async fn cancel(env: &Env, run: i64, as_json: bool) -> anyhow::Result<()> {
    let reheat = service(env).await?;
    let s = reheat.cancel(RunId(run)).await?;
    emit(
        as_json,
        json!({
            "run": s.run.id.0, "library": s.run.library.as_str(), "state": s.run.state.as_str(),
            "jobs_done": s.tally.done, "jobs_dropped": s.tally.dropped,
        }),
        || {
            format!(
                "run {} of {}: {}; {} done, {} dropped, nothing pruned",
                s.run.id,
                s.run.library,
                s.run.state.as_str(),
                s.tally.done,
                s.tally.dropped
            )
        },
    );
    Ok(())
}

/// `kiln dlq list|redrive`.
pub(crate) async fn dlq(env: &Env, command: DlqCommand, as_json: bool) -> anyhow::Result<()> {
    let queue = env.queue().await?;
    match command {
        DlqCommand::List { limit } => {
            let dead = queue.dead_letters(limit).await?;
            let rows: Vec<_> = dead
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id.0, "run": d.run.map(|r| r.0), "attempts": d.attempts,
                        "error": d.error, "failed_at": d.failed_at.0,
                        "payload": String::from_utf8_lossy(&d.payload),
                    })
                })
                .collect();
            emit(as_json, json!({ "dead_letters": rows }), || {
                dead.iter()
                    .map(|d| {
                        format!(
                            "job {} ({}, {} attempts): {}",
                            d.id,
                            d.run
                                .map_or("no run".to_string(), |r| format!("run {}", r.0)),
                            d.attempts,
                            d.error
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        DlqCommand::Redrive { ids } => {
            let ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
            let n = queue
                .redrive(if ids.is_empty() { None } else { Some(&ids) })
                .await?;
            emit(as_json, json!({ "redriven": n }), || {
                format!("{n} dead letters redriven")
            });
        }
    }
    Ok(())
}
