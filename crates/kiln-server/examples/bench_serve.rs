//! A kiln server over one course with one ~100 KB question chunk, for `scripts/bench-load.sh`:
//! `bench_serve DIR PORT [TOKEN]` prepares `DIR`, warms the chunk, prints the version
//! directory, and serves on 127.0.0.1:PORT until killed; with TOKEN every route but the
//! health checks needs it as a bearer token (scope `read`), as `scripts/bench-auth.sh` uses.

use std::sync::Arc;
use std::time::Duration;

use kiln_core::ids::CourseId;
use kiln_core::ids::VersionId;
use kiln_load::{ChunkCache, LoadConfig};
use kiln_testkit::chunks::question_chunk;
use kiln_testkit::mem::catalog::MemCatalog;
use object_store::local::LocalFileSystem;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: bench_serve DIR PORT")?);
    let port: u16 = args.next().ok_or("usage: bench_serve DIR PORT")?.parse()?;
    let token = args.next();
    std::fs::create_dir_all(dir.join("store"))?;
    let store = Arc::new(LocalFileSystem::new_with_prefix(dir.join("store"))?);
    let catalog = Arc::new(MemCatalog::new());
    let course = CourseId::new("bench")?;
    let q = question_chunk("topic/q1", 10, 10_000, 1);
    q.put(&*store).await?;
    catalog.set_current(&course, &VersionId::new("v1")?, vec![q.entry.clone()]);
    let config = LoadConfig {
        refresh_interval: Duration::from_secs(2),
        ..LoadConfig::new(dir.join("cache"))
    };
    let cache = ChunkCache::open(
        config,
        Arc::new(kiln_publish::CatalogView::new(catalog, store.clone())),
        store,
    )
    .await?;
    let ensured = cache.ensure(&course, &[q.entry.chunk_ref()]).await?;
    println!("{}", ensured.root.display());
    drop(ensured);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let mut state = kiln_server::AppState::new(cache);
    if let Some(t) = token {
        use kiln_server::auth::{Auth, Scope, Token, hash_token};
        state = state.with_auth(Auth::new([Token {
            name: "bench".into(),
            scopes: [Scope::Read].into_iter().collect(),
            hash: hash_token(&t),
        }])?);
    }
    kiln_server::run(listener, state, std::future::pending()).await?;
    Ok(())
}
