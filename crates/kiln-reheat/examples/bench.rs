//! The reheat benchmark: N render jobs with a no-op Rust renderer over the SQLite queue and
//! render cache, one worker in this process, and a reader hammering existing keys through
//! `Reheat::read` throughout. Prints one JSON object: jobs/s end to end (enqueue, lease,
//! render, put, ack), peak RSS with samples over the run, and read latency and misses.
//!
//! `cargo run --release -p kiln-reheat --example bench -- [--jobs N] [--page-size N]
//! [--batch N] [--concurrency N] [--lanes N] [--dir DIR] [--prefill N]`; see
//! scripts/bench-reheat.sh for the pinned-core run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::ledger::RunState;
use kiln_core::render_cache::{CacheEntry, RenderCache};
use kiln_core::time::{SystemClock, Timestamp};
use kiln_reheat::{
    BuildContext, Handler, Libraries, Library, LibrarySettings, Reheat, RenderError, RenderItem,
    Rendered, StartOptions, Work, Worker, WorkerOptions,
};
use kiln_sqlite::{DataDir, SqliteCatalog, SqliteQueue, SqliteRenderCache};
use serde_json::{Value, json};

/// N keys `k0000000`..; each producer page lists `page_size` of them.
#[derive(Debug)]
struct Noop {
    jobs: u64,
}

fn key(i: u64) -> String {
    format!("k{i:07}")
}

#[async_trait]
impl Handler for Noop {
    async fn new_build(&self, ctx: &BuildContext) -> kiln_core::Result<Vec<Work>> {
        let pages = self.jobs.div_ceil(ctx.page_size as u64);
        Ok((0..pages)
            .map(|p| Work::Producer {
                cursor: Value::from(p),
            })
            .collect())
    }

    async fn produce(&self, ctx: &BuildContext, cursor: &Value) -> kiln_core::Result<Vec<Work>> {
        let page = cursor.as_u64().unwrap_or(0);
        let size = ctx.page_size as u64;
        Ok((page * size..((page + 1) * size).min(self.jobs))
            .map(|i| {
                Work::Render(RenderItem {
                    key: key(i),
                    group: "bench".into(),
                    props: Value::Null,
                })
            })
            .collect())
    }

    async fn render(&self, _key: &str, _props: &Value) -> Result<Rendered, RenderError> {
        Ok(Rendered::new(Bytes::from_static(b"<p>ok</p>"), "text/html"))
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> kiln_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let jobs = arg(&args, "--jobs", 1_000_000);
    let page_size = arg(&args, "--page-size", 1000) as u32;
    let prefill = arg(&args, "--prefill", jobs).min(jobs);
    let opts = WorkerOptions {
        batch: std::num::NonZeroUsize::new(arg(&args, "--batch", 1024) as usize).unwrap(),
        concurrency: std::num::NonZeroUsize::new(arg(&args, "--concurrency", 256) as usize)
            .unwrap(),
        producer_concurrency: std::num::NonZeroUsize::new(arg(&args, "--producers", 2) as usize)
            .unwrap(),
        lanes: std::num::NonZeroUsize::new(arg(&args, "--lanes", 2) as usize).unwrap(),
        ..WorkerOptions::default()
    };
    let tmp;
    let dir = match args.iter().position(|a| a == "--dir") {
        Some(i) => std::path::PathBuf::from(&args[i + 1]),
        None => {
            tmp = tempfile::tempdir().map_err(|e| kiln_core::Error::backend("fs", e))?;
            tmp.path().to_path_buf()
        }
    };
    let ledger = Arc::new(DataDir::new(&dir).catalog().await?.ledger());
    let queue = Arc::new(DataDir::new(&dir).queue().await?);
    let cache = Arc::new(DataDir::new(&dir).render_cache().await?);
    let lib = LibraryName::new("bench")?;

    // Existing entries (an earlier build's) that the reader hammers and the reheat rewrites.
    let t = Instant::now();
    for start in (0..prefill).step_by(10_000) {
        let entries = (start..(start + 10_000).min(prefill))
            .map(|i| CacheEntry {
                key: key(i),
                bytes: Bytes::from_static(b"<p>old</p>"),
                content_type: "text/html".into(),
                generation: 0,
                group: "bench".into(),
                written_at: Timestamp::now(),
                expires_at: None,
                meta: Default::default(),
                stale: false,
            })
            .collect();
        cache.put(&lib, entries).await?;
    }
    let prefill_ms = t.elapsed().as_millis() as u64;

    let mut libs = Libraries::new();
    libs.insert(Library::new(
        lib.clone(),
        Arc::new(Noop { jobs }),
        LibrarySettings {
            page_size: std::num::NonZeroU32::new(page_size).unwrap(),
            ..LibrarySettings::default()
        },
    ))?;
    let reheat = Reheat::new(ledger, queue, cache, libs, SystemClock::shared());
    let worker = Arc::new(Worker::new(reheat.clone(), opts.clone()));

    // RSS sampler: peak, and one sample per second.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let r = rss_kib();
                peak.fetch_max(r, Ordering::Relaxed);
                if n.is_multiple_of(10) {
                    samples.push(r / 1024);
                }
                n += 1;
            }
            samples
        })
    };
    // The reader: random existing keys through the read path, throughout the reheat. It
    // runs on its own thread and runtime with its own handle on the cache file, as a
    // `kiln serve` process beside the worker would.
    let reader = {
        let (stop, cache_path, jobs) = (stop.clone(), DataDir::new(&dir).render_cache_path(), jobs);
        std::thread::spawn(move || -> kiln_core::Result<(Vec<u32>, u64)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| kiln_core::Error::backend("bench", e))?;
            rt.block_on(async move {
                let cache = Arc::new(SqliteRenderCache::open(&cache_path).await?);
                let ledger = Arc::new(SqliteCatalog::open_in_memory().await?.ledger());
                let queue = Arc::new(SqliteQueue::open_in_memory().await?);
                let mut libs = Libraries::new();
                libs.insert(Library::new(
                    LibraryName::new("bench")?,
                    Arc::new(Noop { jobs }),
                    LibrarySettings::default(),
                ))?;
                let reheat = Reheat::new(ledger, queue, cache, libs, SystemClock::shared());
                let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 20);
                let (mut misses, mut x) = (0u64, 0x9E37_79B9_7F4A_7C15u64);
                while !stop.load(Ordering::Relaxed) && prefill > 0 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = key(x % prefill);
                    let t = Instant::now();
                    match reheat.read("bench", &k).await {
                        Ok(Some(_)) => {}
                        _ => misses += 1,
                    }
                    lat_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    // ~2,000 reads/s: the reader samples latency rather than competes.
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                Ok((lat_us, misses))
            })
        })
    };

    let started = Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let w = worker.clone();
    let worker_task = tokio::spawn(async move {
        w.run(async {
            let _ = rx.await;
        })
        .await
    });
    let run = reheat.start("bench", StartOptions::default()).await?;
    let status = loop {
        let s = reheat.status(run.id).await?;
        if s.run.state != RunState::Running {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let _ = tx.send(());
    worker_task
        .await
        .map_err(|e| kiln_core::Error::backend("bench", e))??;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler
        .await
        .map_err(|e| kiln_core::Error::backend("bench", e))?;
    let (mut lat, misses) = reader
        .join()
        .map_err(|_| kiln_core::Error::backend("bench", "the reader thread panicked"))??;
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let secs = elapsed.as_secs_f64();
    // Spot checks (every 97th key), not a full listing: a million-row listing would
    // dominate the process's peak memory after the run.
    let mut checked = 0u64;
    let mut at_new = 0u64;
    for i in (0..jobs).step_by(97) {
        checked += 1;
        if reheat
            .cache()
            .get(&lib, &key(i))
            .await?
            .is_some_and(|e| e.generation == run.generation)
        {
            at_new += 1;
        }
    }
    let m = worker.metrics().snapshot();
    println!(
        "{}",
        json!({
            "render_jobs": jobs,
            "jobs_total": status.tally.done,
            "state": status.run.state.as_str(),
            "dead": status.tally.dead,
            "elapsed_s": (secs * 100.0).round() / 100.0,
            "render_jobs_per_s": (jobs as f64 / secs).round(),
            "jobs_per_s": (status.tally.done as f64 / secs).round(),
            "peak_rss_mib": peak.load(Ordering::Relaxed) / 1024,
            "rss_mib_per_s": samples,
            "reads": lat.len(),
            "read_misses": misses,
            "read_p50_us": pct(0.50),
            "read_p99_us": pct(0.99),
            "read_max_us": lat.last().copied().unwrap_or(0),
            "spot_checked": checked,
            "spot_checked_at_new_generation": at_new,
            "stale_puts": m.stale_puts,
            "worker_ms_in": { "lease": m.backend_us[0] / 1000, "put": m.backend_us[1] / 1000, "ack": m.backend_us[2] / 1000, "finish_runs": m.backend_us[3] / 1000, "render": (m.render_latency.sum_seconds * 1000.0) as u64 },
            "prefill_ms": prefill_ms,
            "options": { "batch": opts.batch, "concurrency": opts.concurrency, "lanes": opts.lanes, "page_size": page_size },
        })
    );
    Ok(())
}
