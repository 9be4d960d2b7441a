//! The published view's own properties: publishing costs what changed, a publish cut short
//! after its commit is finished by the next head write, `kiln verify` finds and repairs what
//! is wrong, and a view serves its last head through a store outage, for a bounded time.

use std::sync::Arc;
use std::time::Duration;

use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::content::ContentView;
use kiln_core::ids::ChunkId;
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::toc::Toc;
use kiln_publish::{PublishedView, ViewOptions, check, writer};
use kiln_testkit::catalog::{course, version};
use kiln_testkit::content::questions;
use kiln_testkit::mem::catalog::MemCatalog;
use kiln_testkit::store::{CountingStore, StoreFault};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::support::{OWNER, local_store, put_tocs};

async fn publish(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    c: &str,
    v: &str,
    manifest: Manifest,
    tocs: std::collections::HashMap<ChunkId, Toc>,
) -> writer::Publish {
    put_tocs(catalog, tocs).await;
    let new = NewVersion {
        course: course(c),
        version: version(v),
        manifest,
    };
    writer::publish(catalog, store, OWNER, new, None)
        .await
        .unwrap()
}

/// One question of `m` replaced by a new chunk (with its table of contents).
fn change_one(
    m: &Manifest,
    tocs: &mut std::collections::HashMap<ChunkId, Toc>,
    i: usize,
) -> Manifest {
    let mut entries: Vec<ManifestEntry> = m.entries().to_vec();
    let old = entries[i].id;
    entries[i].id = ChunkId([0xab; 32]);
    tocs.insert(entries[i].id, tocs[&old].clone());
    Manifest::new(entries).unwrap()
}

#[tokio::test]
async fn a_one_question_change_writes_and_fetches_what_changed() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m1, mut tocs) = questions(10_000, 1);
    let first = publish(&catalog, &store, "big", "v1", m1.clone(), tocs.clone()).await;
    let m2 = change_one(&m1, &mut tocs, 5_000);
    let view_dir = tempfile::tempdir().unwrap();
    let counting = CountingStore::new(store.clone());
    let view = PublishedView::open(
        counting.clone(),
        ViewOptions {
            cache_dir: Some(view_dir.path().to_path_buf()),
            ..ViewOptions::default()
        },
    )
    .await
    .unwrap();
    view.manifest(&course("big"), &version("v1")).await.unwrap();
    let second = publish(&catalog, &store, "big", "v2", m2.clone(), tocs).await;
    // A segment, its tables of contents, the root, the pointer and the head.
    assert_eq!(second.written.objects, 5, "{:?}", second.written);
    assert!(
        second.written.bytes * 20 < first.written.bytes,
        "the change wrote {} bytes, the whole course {}",
        second.written.bytes,
        first.written.bytes
    );
    view.refresh().await.unwrap();
    let before = counting.gets();
    assert_eq!(
        view.manifest(&course("big"), &version("v2")).await.unwrap(),
        m2
    );
    // The new root and the one changed segment; every other segment is on disk already.
    assert_eq!(counting.gets() - before, 2);
    // The version the head moved away from reads without a pointer (a prefetch diffs it).
    view.manifest(&course("big"), &version("v1")).await.unwrap();
    assert_eq!(view.metrics().pointer_requests, 0);
}

#[tokio::test]
async fn a_version_committed_without_its_objects_is_published_by_the_next_head_write() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    // A sync killed after the catalog's commit: the version is current in the catalog, and
    // nothing of it is published.
    let (ma, tocs_a) = questions(3, 2);
    put_tocs(&catalog, tocs_a.clone()).await;
    catalog
        .publish(NewVersion {
            course: course("a"),
            version: version("v1"),
            manifest: ma.clone(),
        })
        .await
        .unwrap();
    let (mb, tocs_b) = questions(3, 3);
    let done = publish(&catalog, &store, "b", "v1", mb, tocs_b).await;
    assert!(
        done.head.courses.contains_key("a"),
        "the head names course a"
    );
    let view = PublishedView::open(store.clone(), ViewOptions::default())
        .await
        .unwrap();
    assert_eq!(
        view.manifest(&course("a"), &version("v1")).await.unwrap(),
        ma
    );
    assert_eq!(
        view.tocs(&course("a"), &version("v1")).await.unwrap(),
        tocs_a
    );
    assert_eq!(
        view.versions(&course("a")).await.unwrap().len(),
        1,
        "its pointer too"
    );
}

#[tokio::test]
async fn verify_finds_what_is_wrong_and_repair_rewrites_it() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m1, tocs1) = questions(300, 4);
    publish(&catalog, &store, "c", "v1", m1, tocs1).await;
    let (m2, tocs2) = questions(300, 5);
    let done = publish(&catalog, &store, "c", "v2", m2.clone(), tocs2).await;
    let clean = check::check(&catalog, &store, None, None).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.versions, 2);
    // Damage: v1's pointer gone, one of v2's segments gone, the head naming v1.
    store
        .delete(&Path::from("kiln/versions/c/v1.json"))
        .await
        .unwrap();
    let root = writer::read_root(&*store, &done.head.courses["c"].root)
        .await
        .unwrap();
    let seg = root.segments[0].manifest;
    store
        .delete(&Path::from(format!("kiln/segments/{seg}.json")))
        .await
        .unwrap();
    let mut head = done.head.clone();
    head.courses.get_mut("c").unwrap().version = "v1".into();
    store
        .put(
            &Path::from("kiln/head.json"),
            serde_json::to_vec(&head).unwrap().into(),
        )
        .await
        .unwrap();
    let found = check::check(&catalog, &store, None, None).await.unwrap();
    let says = |what: &str| found.problems.iter().any(|p| p.what.contains(what));
    assert!(says("no pointer"), "{:?}", found.problems);
    assert!(says(&seg.to_string()), "{:?}", found.problems);
    assert!(says("the head names version v1"), "{:?}", found.problems);
    let repaired = check::check(&catalog, &store, None, Some(OWNER))
        .await
        .unwrap();
    assert_eq!(repaired.problems.len(), found.problems.len());
    let after = check::check(&catalog, &store, None, None).await.unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    let view = PublishedView::open(store.clone(), ViewOptions::default())
        .await
        .unwrap();
    assert_eq!(
        view.current(&course("c")).await.unwrap().unwrap().version,
        version("v2")
    );
    assert_eq!(
        view.manifest(&course("c"), &version("v2")).await.unwrap(),
        m2
    );
}

#[tokio::test]
async fn a_view_serves_its_last_head_through_an_outage_for_stale_after_only() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m, tocs) = questions(2, 6);
    publish(&catalog, &store, "c", "v1", m, tocs).await;
    let counting = CountingStore::new(store.clone());
    let patient = PublishedView::open(
        counting.clone(),
        ViewOptions {
            stale_after: Duration::from_secs(3600),
            ..ViewOptions::default()
        },
    )
    .await
    .unwrap();
    let strict = PublishedView::open(
        counting.clone(),
        ViewOptions {
            stale_after: Duration::ZERO,
            ..ViewOptions::default()
        },
    )
    .await
    .unwrap();
    // The store fails every read of the head (each with its client's retries spent).
    for _ in 0..2 {
        counting.push_fault(StoreFault::Transient);
    }
    assert!(patient.refresh().await.is_err());
    assert!(strict.refresh().await.is_err());
    assert_eq!(
        patient
            .current(&course("c"))
            .await
            .unwrap()
            .unwrap()
            .version,
        version("v1"),
        "the last head is served"
    );
    let err = strict.current(&course("c")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("published head"), "{err}");
    assert_eq!(patient.metrics().head_errors, 1);
}

#[tokio::test]
async fn an_older_head_is_never_applied() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m, tocs) = questions(2, 7);
    publish(&catalog, &store, "c", "v1", m.clone(), tocs.clone()).await;
    let stale = writer::read_head(&*store).await.unwrap();
    let (m2, tocs2) = questions(2, 8);
    publish(&catalog, &store, "c", "v2", m2, tocs2).await;
    let view = PublishedView::open(store.clone(), ViewOptions::default())
        .await
        .unwrap();
    let mut changes = view.subscribe();
    // A writer that lost its lease puts back the older head.
    store
        .put(
            &Path::from("kiln/head.json"),
            serde_json::to_vec(&stale).unwrap().into(),
        )
        .await
        .unwrap();
    assert!(!view.refresh().await.unwrap());
    assert_eq!(
        view.current(&course("c")).await.unwrap().unwrap().version,
        version("v2")
    );
    assert!(changes.try_recv().is_err(), "no change announced");
}

#[tokio::test]
async fn a_head_change_names_each_course_that_moved() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m, tocs) = questions(2, 9);
    publish(&catalog, &store, "c", "v1", m, tocs).await;
    let view = PublishedView::open(store.clone(), ViewOptions::default())
        .await
        .unwrap();
    let mut changes = view.subscribe();
    let (m2, tocs2) = questions(2, 10);
    publish(&catalog, &store, "c", "v2", m2, tocs2).await;
    let (m3, tocs3) = questions(2, 11);
    publish(&catalog, &store, "d", "v1", m3, tocs3).await;
    assert!(view.refresh().await.unwrap());
    let mut got = [changes.try_recv().unwrap(), changes.try_recv().unwrap()];
    got.sort_by(|a, b| a.course.cmp(&b.course));
    assert_eq!(got[0].course, course("c"));
    assert_eq!(got[0].from, Some(version("v1")));
    assert_eq!(got[0].to, Some(version("v2")));
    assert_eq!(got[1].course, course("d"));
    assert_eq!(got[1].from, None);
}

#[tokio::test]
async fn a_burst_of_requests_for_an_unknown_course_reads_the_head_once() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m, tocs) = questions(2, 12);
    publish(&catalog, &store, "c", "v1", m, tocs).await;
    let counting = CountingStore::new(store.clone());
    let view = PublishedView::open(
        counting.clone(),
        ViewOptions {
            poll_interval: Duration::from_millis(1),
            ..ViewOptions::default()
        },
    )
    .await
    .unwrap();
    // Older than the poll interval (sleeping longer only makes it older).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = counting.gets();
    let nope = course("nope");
    let asks = (0..100).map(|_| view.current(&nope));
    for r in futures::future::join_all(asks).await {
        assert_eq!(r.unwrap(), None);
    }
    let reads = counting.gets() - before;
    assert!(reads <= 2, "{reads} head reads for one burst");
}

#[tokio::test]
async fn a_basis_gives_the_same_root_without_encoding_its_segments_again() {
    let (store, _dir) = local_store();
    let catalog = MemCatalog::new();
    let (m1, mut tocs) = questions(3_000, 13);
    publish(&catalog, &store, "c", "v1", m1.clone(), tocs.clone()).await;
    let m2 = change_one(&m1, &mut tocs, 1_234);
    put_tocs(&catalog, tocs).await;
    let new = NewVersion {
        course: course("c"),
        version: version("v2"),
        manifest: m2.clone(),
    };
    let v1 = version("v1");
    let basis = writer::Basis {
        version: &v1,
        manifest: &m1,
    };
    let done = writer::publish(&catalog, &store, OWNER, new, Some(basis))
        .await
        .unwrap();
    assert_eq!(done.written.objects, 5, "{:?}", done.written);
    let want = writer::root_of(&catalog, &*store, &course("c"), &version("v2"), &m2)
        .await
        .unwrap();
    assert_eq!(
        done.head.courses["c"].root, want,
        "the same root as encoding every segment"
    );
    let view = PublishedView::open(store.clone(), ViewOptions::default())
        .await
        .unwrap();
    assert_eq!(
        view.manifest(&course("c"), &version("v2")).await.unwrap(),
        m2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_of_different_courses_all_land_in_the_head() {
    let (store, _dir) = local_store();
    let catalog = Arc::new(MemCatalog::new());
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let (catalog, store) = (catalog.clone(), store.clone());
            tokio::spawn(async move {
                let (m, tocs) = questions(50, 100 + i);
                put_tocs(&*catalog, tocs).await;
                let new = NewVersion {
                    course: course(&format!("c{i}")),
                    version: version("v1"),
                    manifest: m,
                };
                // Each publish writes the head as its own owner, as eight syncs would.
                writer::publish(&*catalog, &store, &format!("sync-{i}"), new, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let head = writer::read_head(&*store).await.unwrap();
    assert_eq!(head.courses.len(), 8, "{:?}", head.courses.keys());
    let clean = check::check(&*catalog, &store, None, None).await.unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
}
