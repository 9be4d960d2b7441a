//! Tables of contents: every chunk of a synced version has one, equal to its bundle's
//! entries, and a version synced without them gets them on its next sync (read back from
//! the stored bundles once).

use std::sync::Arc;

use kiln_chunk::bundle::toc_of;
use kiln_core::catalog::PublishOutcome;
use kiln_core::ids::ChunkKind;
use kiln_core::toc::TocKind;
use kiln_testkit::mem::catalog::MemCatalog;

use crate::support::{Env, entry, env, example_repo};

async fn assert_every_chunk_has_its_toc(env: &Env, course: &str) {
    let m = env.manifest(course).await;
    let ids: Vec<_> = m.entries().iter().map(|e| e.id).collect();
    let tocs = env.catalog.tocs(&ids).await.unwrap();
    for e in m.entries() {
        let toc = tocs
            .get(&e.id)
            .unwrap_or_else(|| panic!("{} has no toc", e.chunk_ref()));
        assert_eq!(*toc, toc_of(&env.bundle(e).await), "{}", e.chunk_ref());
    }
}

#[tokio::test]
async fn every_chunk_of_a_synced_version_has_its_table_of_contents() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "kiln101").await.unwrap();
    assert_every_chunk_has_its_toc(&env, "kiln101").await;
    let m = env.manifest("kiln101").await;
    let dice = entry(&m, ChunkKind::Question, "probability/dice");
    let toc = &env.catalog.tocs(&[dice.id]).await.unwrap()[&dice.id];
    let q = toc
        .entries
        .iter()
        .find(|e| e.path == "question.html")
        .unwrap();
    assert_eq!(q.kind, TocKind::File { exec: false });
    assert!(q.size > 0);
}

/// The example course synced, then its tables of contents dropped: a version synced before
/// kiln kept them. Returns the environment and the repository.
async fn synced_without_tocs() -> (Env, std::path::PathBuf) {
    let mut env = env().await;
    let mem = Arc::new(MemCatalog::new());
    env.catalog = mem.clone();
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "kiln101").await.unwrap();
    mem.forget_tocs();
    (env, repo)
}

#[tokio::test]
async fn a_version_synced_without_tables_of_contents_gets_them_on_its_next_sync() {
    let (env, repo) = synced_without_tocs().await;
    let m = env.manifest("kiln101").await;
    let ids: Vec<_> = m.entries().iter().map(|e| e.id).collect();
    assert!(env.catalog.tocs(&ids).await.unwrap().is_empty());
    let again = env.sync(&repo, "kiln101").await.unwrap();
    assert_eq!(again.outcome, PublishOutcome::Unchanged);
    assert_every_chunk_has_its_toc(&env, "kiln101").await;
}

#[tokio::test]
async fn a_verify_repair_writes_the_tables_of_contents_a_version_lacks() {
    let (env, repo) = synced_without_tocs().await;
    let course = kiln_core::ids::CourseId::new("kiln101").unwrap();
    let check =
        kiln_sync::verify::verify(env.catalog.clone(), env.store.clone(), Some(&course), None)
            .await
            .unwrap();
    assert_eq!(check.tocs_written, 0, "a plain verify writes nothing");
    let mut opts = kiln_sync::SyncOptions::new(&repo);
    opts.course = Some(course.clone());
    let repaired = kiln_sync::verify::verify(
        env.catalog.clone(),
        env.store.clone(),
        Some(&course),
        Some(opts),
    )
    .await
    .unwrap();
    assert!(repaired.bad.is_empty());
    assert_eq!(repaired.tocs_written, check.objects, "one per sound object");
    assert_every_chunk_has_its_toc(&env, "kiln101").await;
}
