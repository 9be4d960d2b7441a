//! Benchmark of `ChunkCache::ensure`: cold ensures of distinct ~100 KB / 10-file question
//! chunks from a local object store, and warm ensures of one present chunk.
//!
//! `cargo run --release -p kiln-load --example bench_load -- [COLD_CHUNKS] [WARM_CALLS]`
//! prints one JSON object with p50/p99 in microseconds. With `TEST_S3_ENDPOINT` and
//! `TEST_S3_BUCKET` set (as `.ci/services.sh` prints them, with the `AWS_*` credentials) the
//! store is that S3-compatible server, under a fresh prefix, instead of a local directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::ids::{CourseId, VersionId};
use kiln_load::{ChunkCache, LoadConfig};
use kiln_testkit::chunks::question_chunk;
use kiln_testkit::mem::catalog::MemCatalog;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow_free::Result {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let cold_n = args.first().copied().unwrap_or(500);
    let warm_n = args.get(1).copied().unwrap_or(100_000);

    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("store"))?;
    let store: Arc<dyn ObjectStore> = match (
        std::env::var("TEST_S3_ENDPOINT"),
        std::env::var("TEST_S3_BUCKET"),
    ) {
        (Ok(endpoint), Ok(bucket)) => {
            let s3 = AmazonS3Builder::from_env()
                .with_endpoint(&endpoint)
                .with_bucket_name(&bucket)
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false)
                .build()?;
            let prefix = format!("bench-load-{}", std::process::id());
            eprintln!("store: s3 {endpoint} bucket {bucket} prefix {prefix}");
            Arc::new(PrefixStore::new(s3, prefix))
        }
        _ => Arc::new(LocalFileSystem::new_with_prefix(dir.path().join("store"))?),
    };
    let catalog = Arc::new(MemCatalog::new());
    let course = CourseId::new("bench")?;
    let mut entries = Vec::new();
    let mut bundle_bytes = 0;
    for i in 0..cold_n {
        let c = question_chunk(&format!("topic/q{i}"), 10, 10_000, i as u64);
        c.put(&*store).await?;
        bundle_bytes += c.bundle.len();
        entries.push(c.entry);
    }
    let version = VersionId::new("v1")?;
    catalog.set_current(&course, &version, entries.clone());
    let config = LoadConfig {
        budget_bytes: 1 << 40,
        refresh_interval: Duration::from_secs(3600),
        ..LoadConfig::new(dir.path().join("cache"))
    };
    let cache = ChunkCache::open(
        config,
        Arc::new(kiln_publish::CatalogView::new(catalog, store.clone())),
        store,
    )
    .await?;
    // Warm the catalog caches (current version, manifest) so that only chunk work is timed.
    cache
        .manifest(&course, &cache.current_version(&course).await?)
        .await?;

    let mut cold = Vec::with_capacity(cold_n);
    for e in &entries {
        let t = Instant::now();
        let ensured = cache.ensure(&course, &[e.chunk_ref()]).await?;
        cold.push(t.elapsed());
        assert_eq!(ensured.downloaded.len(), 1);
    }
    let hot = [entries[0].chunk_ref()];
    let mut warm = Vec::with_capacity(warm_n);
    for _ in 0..warm_n {
        let t = Instant::now();
        let ensured = cache.ensure(&course, &hot).await?;
        drop(ensured);
        warm.push(t.elapsed());
    }
    cold.sort();
    warm.sort();
    println!(
        "{{\"cold_chunks\":{cold_n},\"chunk_bytes\":{},\"bundle_bytes_avg\":{},\"cold_p50_us\":{:.1},\"cold_p99_us\":{:.1},\"warm_calls\":{warm_n},\"warm_p50_us\":{:.2},\"warm_p99_us\":{:.2}}}",
        entries[0].size,
        bundle_bytes / cold_n.max(1),
        pct(&cold, 0.5),
        pct(&cold, 0.99),
        pct(&warm, 0.5),
        pct(&warm, 0.99),
    );
    Ok(())
}

/// `main`'s error type: any error, printed by the runtime (examples may not use anyhow).
mod anyhow_free {
    pub(crate) type Result = std::result::Result<(), Box<dyn std::error::Error>>;
}
