//! Benchmark: no-op render jobs through the PostgreSQL queue, as `kiln worker` runs them:
//! enqueue in batches, then workers lease a batch, put one render result per job into the
//! Redis render cache, and ack the batch. Prints one JSON line with the rates.
//!
//! `cargo run --release -p kiln-postgres --example pg_queue_bench -- --jobs 200000 --workers 4`
//! (`scripts/bench-fleet.sh` runs it beside graphile-worker on the same PostgreSQL).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::queue::{JobQueue, LeaseOptions, NewJob, priority};
use kiln_core::render_cache::{CacheEntry, RenderCache};
use kiln_core::time::Timestamp;
use kiln_postgres::{PgConfig, PgDb, PgQueue};
use kiln_redis::RedisRenderCache;

struct Args {
    jobs: u64,
    workers: usize,
    batch: usize,
    pg: String,
    redis: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        jobs: 200_000,
        workers: 4,
        batch: 500,
        pg: "postgres://postgres@127.0.0.1:5432/test".into(),
        redis: "redis://127.0.0.1:6379".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--jobs" => a.jobs = value.parse().expect("--jobs N"),
            "--workers" => a.workers = value.parse().expect("--workers N"),
            "--batch" => a.batch = value.parse().expect("--batch N"),
            "--pg" => a.pg = value,
            "--redis" => a.redis = value,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let schema = format!("kiln_bench_{:08x}", rand::random::<u32>());
    let mut config = PgConfig::new(&args.pg);
    config.schema = Some(schema.clone());
    config.max_connections = args.workers as u32 + 2;
    let db = PgDb::connect_with(&config)
        .await
        .expect("connecting to postgres");
    let queue = Arc::new(PgQueue::new(db.clone()));
    let cache = Arc::new(
        RedisRenderCache::connect(&args.redis, &schema)
            .await
            .expect("connecting to redis"),
    );
    let lib = LibraryName::new("bench").unwrap();

    // Phase 1: enqueue every job, in batches, from one client.
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(args.batch as u64);
        let batch = (0..n)
            .map(|i| NewJob {
                payload: Bytes::from(format!("{{\"key\":\"page/{i}\"}}")),
                priority: priority::RENDER,
                not_before: None,
                max_attempts: std::num::NonZeroU32::new(3).unwrap(),
                run: None,
                fence: None,
                dedupe: None,
                throttle: None,
            })
            .collect();
        queue.enqueue(batch).await.expect("enqueue");
        left -= n;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    // Phase 2: drain with `workers` concurrent workers: lease, render (a no-op) into the
    // cache, ack.
    let done = Arc::new(AtomicU64::new(0));
    // Time spent in each step, summed over workers (microseconds): where the drain goes.
    let spent: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.workers {
        let (queue, cache, lib, done) = (queue.clone(), cache.clone(), lib.clone(), done.clone());
        let spent = spent.clone();
        let add = move |i: usize, t: Instant| {
            spent[i].fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        };
        let opts = LeaseOptions {
            max_jobs: std::num::NonZeroUsize::new(args.batch).unwrap(),
            visibility: Duration::from_secs(60),
            worker: None,
            throttles: Vec::new(),
        };
        let total = args.jobs;
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < total {
                let t = Instant::now();
                let jobs = queue.lease(&opts).await.expect("lease").jobs;
                add(0, t);
                if jobs.is_empty() {
                    queue.wait_for_work(Duration::from_millis(50)).await;
                    continue;
                }
                let now = Timestamp::now();
                let entries = jobs
                    .iter()
                    .map(|j| CacheEntry {
                        key: format!("job/{}", j.id),
                        bytes: Bytes::from_static(b"ok"),
                        content_type: "text/plain".into(),
                        generation: 1,
                        group: "g".into(),
                        written_at: now,
                        expires_at: None,
                        meta: Default::default(),
                        stale: false,
                    })
                    .collect();
                let t = Instant::now();
                cache.put(&lib, entries).await.expect("cache put");
                add(1, t);
                let leases: Vec<_> = jobs.iter().map(|j| j.lease).collect();
                let t = Instant::now();
                let n = queue.ack(&leases).await.expect("ack");
                add(2, t);
                done.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let secs = |i: usize| spent[i].load(Ordering::Relaxed) as f64 / 1e6;
    eprintln!(
        "kiln drain: worker time in lease {:.2} s, cache put {:.2} s, ack {:.2} s",
        secs(0),
        secs(1),
        secs(2)
    );
    let jobs = args.jobs as f64;
    println!(
        "{{\"system\":\"kiln\",\"jobs\":{},\"workers\":{},\"batch\":{},\"enqueue_s\":{:.3},\
         \"drain_s\":{:.3},\"enqueue_jobs_per_s\":{:.0},\"drain_jobs_per_s\":{:.0},\
         \"end_to_end_jobs_per_s\":{:.0}}}",
        args.jobs,
        args.workers,
        args.batch,
        enqueue_secs,
        drain_secs,
        jobs / enqueue_secs,
        jobs / drain_secs,
        jobs / (enqueue_secs + drain_secs)
    );
    // Leave nothing behind: the schema and the cache keys were the benchmark's own.
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(db.pool())
        .await
        .expect("dropping the benchmark schema");
    cache.clear().await.expect("removing the benchmark keys");
}
