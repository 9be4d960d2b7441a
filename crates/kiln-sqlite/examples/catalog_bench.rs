//! Time to publish, and read back, versions with a 10,000-chunk manifest in `SqliteCatalog`.
//! Usage: `cargo run --release -p kiln-sqlite --example catalog_bench -- [CHUNKS] [VERSIONS]`.

use std::time::Instant;

use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_sqlite::SqliteCatalog;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let chunks: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let versions: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let c = SqliteCatalog::open(&dir.path().join("catalog.sqlite")).await?;
    let course = CourseId::new("bench")?;
    let (mut publish, mut read) = (Vec::new(), Vec::new());
    for v in 0..versions {
        let entries = (0..chunks)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&i.to_le_bytes());
                id[8..16].copy_from_slice(&v.to_le_bytes());
                ManifestEntry {
                    kind: ChunkKind::Question,
                    name: format!("topic{}/q{i}", i % 50),
                    id: ChunkId(id),
                    size: 4096 + i,
                    root: format!("questions/topic{}/q{i}", i % 50),
                }
            })
            .collect();
        let version = VersionId::new(format!("{v:040x}"))?;
        let manifest = Manifest::new(entries)?;
        let t = Instant::now();
        c.publish(NewVersion {
            course: course.clone(),
            version: version.clone(),
            manifest,
        })
        .await?;
        publish.push(t.elapsed());
        let t = Instant::now();
        c.manifest(&course, &version).await?;
        read.push(t.elapsed());
    }
    publish.sort();
    read.sort();
    println!(
        "{versions} versions of {chunks} chunks: publish median {:.2?} max {:.2?}; \
         manifest read median {:.2?} max {:.2?}",
        publish[publish.len() / 2],
        publish[publish.len() - 1],
        read[read.len() / 2],
        read[read.len() - 1]
    );
    Ok(())
}
