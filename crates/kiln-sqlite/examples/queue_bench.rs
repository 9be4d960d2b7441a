//! Throughput of the SQLite queue and render cache: enqueue N jobs in batches, then drain
//! them with worker tasks that lease a batch, write one cache entry per job (a no-op
//! render) and ack, while a reader samples cache reads; prints jobs/s per phase and the
//! read latency percentiles. Usage:
//! `cargo run --release -p kiln-sqlite --example queue_bench -- [N] [BATCH] [WORKERS]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::queue::{JobQueue, LeaseOptions, NewJob, priority};
use kiln_core::render_cache::{CacheEntry, RenderCache};
use kiln_core::time::Timestamp;
use kiln_sqlite::{SqliteQueue, SqliteRenderCache};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> BoxResult<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let dir = tempfile::tempdir()?;
    let q = Arc::new(SqliteQueue::open(&dir.path().join("queue.sqlite")).await?);
    let cache = Arc::new(SqliteRenderCache::open(&dir.path().join("cache.sqlite")).await?);
    let lib = LibraryName::new("guides")?;

    let start = Instant::now();
    let mut left = n;
    let mut key = 0usize;
    while left > 0 {
        let k = left.min(10_000);
        let jobs = (0..k)
            .map(|_| {
                key += 1;
                NewJob {
                    payload: Bytes::from(format!("render:guides:items/{key:012}")),
                    priority: priority::RENDER,
                    not_before: None,
                    max_attempts: std::num::NonZeroU32::new(5).unwrap(),
                    run: Some(RunId(1)),
                    fence: Some(("guides".into(), 1)),
                    dedupe: None,
                    throttle: None,
                }
            })
            .collect();
        q.enqueue(jobs).await?;
        left -= k;
    }
    let enq = start.elapsed();
    println!(
        "enqueue: {n} jobs in {enq:.2?}: {:.0} jobs/s",
        n as f64 / enq.as_secs_f64()
    );

    // A reader hammering keys that exist (the first batch's) while the workers run.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (cache, lib, done) = (cache.clone(), lib.clone(), done.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                let key = format!("render:guides:items/{:012}", 1 + i % batch as u64);
                let t = Instant::now();
                let _ = cache.get(&lib, &key).await;
                lat.push(t.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            lat
        })
    };

    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (q, cache, lib) = (q.clone(), cache.clone(), lib.clone());
            tokio::spawn(async move { work(&*q, &*cache, &lib, batch).await })
        })
        .collect();
    let mut drained = 0;
    for t in tasks {
        drained += t.await??;
    }
    let drain = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut lat = reader.await?;
    println!(
        "lease+put+ack ({workers} workers, batch {batch}): {drained} jobs in {drain:.2?}: {:.0} jobs/s",
        drained as f64 / drain.as_secs_f64()
    );
    println!(
        "overall (enqueue + drain): {:.0} jobs/s",
        n as f64 / (enq + drain).as_secs_f64()
    );
    lat.sort();
    if !lat.is_empty() {
        let p = |x: f64| lat[((lat.len() - 1) as f64 * x) as usize];
        println!(
            "cache reads during the drain: {} samples, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            lat.len(),
            p(0.5),
            p(0.99),
            lat[lat.len() - 1]
        );
    }
    let t = q.tally(RunId(1)).await?;
    assert_eq!((t.enqueued, t.done), (n as u64, n as u64));
    Ok(())
}

async fn work(
    q: &dyn JobQueue,
    cache: &dyn RenderCache,
    lib: &LibraryName,
    batch: usize,
) -> BoxResult<usize> {
    let opts = LeaseOptions {
        max_jobs: std::num::NonZeroUsize::new(batch).unwrap(),
        visibility: Duration::from_secs(60),
        worker: None,
        throttles: Vec::new(),
    };
    let mut done = 0;
    loop {
        let jobs = q.lease(&opts).await?.jobs;
        if jobs.is_empty() {
            return Ok(done);
        }
        let now = Timestamp::now();
        let entries = jobs
            .iter()
            .map(|j| CacheEntry {
                key: String::from_utf8_lossy(&j.payload).into_owned(),
                bytes: Bytes::from_static(b"<p>rendered</p>"),
                content_type: "text/html".into(),
                generation: 1,
                group: "page-1".into(),
                written_at: now,
                expires_at: None,
                meta: Default::default(),
                stale: false,
            })
            .collect();
        cache.put(lib, entries).await?;
        let leases: Vec<_> = jobs.iter().map(|j| j.lease).collect();
        done += q.ack(&leases).await? as usize;
    }
}
