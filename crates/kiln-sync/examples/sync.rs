//! A tiny sync driver for benchmarks: `sync DATA_DIR SOURCE [--course ID] [--rev REV]
//! [--subdir DIR]` syncs into a SQLite catalog and a local object store under DATA_DIR and
//! prints one JSON line (the `kiln sync --json` fields).

use std::sync::Arc;

use kiln_core::ids::CourseId;
use kiln_sync::{NoProgress, SyncOptions};
use object_store::local::LocalFileSystem;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sync DATA_DIR SOURCE [--course ID] [--rev REV] [--subdir DIR]";
    let data = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let mut opts = SyncOptions::new(args.next().ok_or(usage)?);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(usage)?;
        match flag.as_str() {
            "--course" => opts.course = Some(CourseId::new(value)?),
            "--rev" => opts.rev = Some(value),
            "--subdir" => opts.subdir = Some(value),
            _ => return Err(usage.into()),
        }
    }
    std::fs::create_dir_all(data.join("objects"))?;
    let catalog = kiln_sqlite::DataDir::new(&data).catalog().await?;
    let store = LocalFileSystem::new_with_prefix(data.join("objects"))?;
    let r = kiln_sync::sync(
        opts,
        Arc::new(catalog),
        Arc::new(store),
        Arc::new(NoProgress),
    )
    .await?;
    println!(
        "{{\"course\":\"{}\",\"version\":\"{}\",\"chunks_total\":{},\"chunks_uploaded\":{},\"bytes_uploaded\":{},\"elapsed_ms\":{:.1},\"outcome\":\"{:?}\",\"published_objects\":{},\"published_bytes\":{}}}",
        r.course,
        r.version,
        r.chunks_total,
        r.chunks_uploaded,
        r.bytes_uploaded,
        r.elapsed.as_secs_f64() * 1000.0,
        r.outcome,
        r.published.objects,
        r.published.bytes
    );
    Ok(())
}
