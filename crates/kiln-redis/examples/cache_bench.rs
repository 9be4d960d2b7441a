//! Benchmark: render-cache `get` latency on Redis under a concurrent load. Fills a library
//! with entries, then `--concurrency` tasks read random keys for `--seconds` through one
//! `RedisRenderCache` (one multiplexed connection, as a server holds it), and prints one
//! JSON line with the throughput and latency percentiles.
//!
//! `cargo run --release -p kiln-redis --example cache_bench -- --concurrency 32 --seconds 10`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{CacheEntry, RenderCache};
use kiln_core::time::Timestamp;
use kiln_redis::RedisRenderCache;

struct Args {
    entries: usize,
    size: usize,
    concurrency: usize,
    seconds: u64,
    redis: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        entries: 10_000,
        size: 4096,
        concurrency: 32,
        seconds: 10,
        redis: "redis://127.0.0.1:6379".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--entries" => a.entries = value.parse().expect("--entries N"),
            "--size" => a.size = value.parse().expect("--size BYTES"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--redis" => a.redis = value,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let prefix = format!("kiln_bench_{:08x}", rand::random::<u32>());
    let cache = Arc::new(
        RedisRenderCache::connect(&args.redis, &prefix)
            .await
            .expect("connecting to redis"),
    );
    let lib = LibraryName::new("bench").unwrap();
    let body = Bytes::from(vec![b'x'; args.size]);
    for start in (0..args.entries).step_by(500) {
        let batch = (start..(start + 500).min(args.entries))
            .map(|i| CacheEntry {
                key: format!("page/{i}"),
                bytes: body.clone(),
                content_type: "text/html".into(),
                generation: 1,
                group: format!("g{}", i % 10),
                written_at: Timestamp::now(),
                expires_at: None,
                meta: Default::default(),
                stale: false,
            })
            .collect();
        cache.put(&lib, batch).await.expect("filling the cache");
    }

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|t| {
            let (cache, lib) = (cache.clone(), lib.clone());
            let entries = args.entries as u64;
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                while Instant::now() < deadline {
                    // xorshift: a cheap, uniform key choice.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("page/{}", x % entries);
                    let t0 = Instant::now();
                    let got = cache.get(&lib, &key).await.expect("get");
                    lat.push(t0.elapsed());
                    assert!(got.is_some(), "{key} missing");
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("reader"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{{\"system\":\"kiln-redis\",\"entries\":{},\"entry_bytes\":{},\"concurrency\":{},\
         \"gets\":{},\"gets_per_s\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\
         \"max_ms\":{:.3}}}",
        args.entries,
        args.size,
        args.concurrency,
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0)
    );
    cache.clear().await.expect("removing the benchmark keys");
}
