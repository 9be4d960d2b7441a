//! Faults: a chunk that cannot be loaded fails its open with EIO (the reason in the metrics),
//! a store that does not answer holds up no `ls` or `stat`, and a chunk without a table of
//! contents is read back once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kiln_core::ids::ChunkKind;
use kiln_testkit::chunks::BundleBuilder;

use crate::support::{Env, eventually, fs, fuse_or_skip};

fn question(name: &str) -> kiln_testkit::chunks::TestChunk {
    BundleBuilder::new()
        .file("question.html", format!("<p>{name}</p>"))
        .build(ChunkKind::Question, name, &format!("questions/{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_cannot_be_loaded_is_eio_with_the_reason_in_the_metrics() {
    if !fuse_or_skip("a_chunk_that_cannot_be_loaded_is_eio_with_the_reason_in_the_metrics") {
        return;
    }
    let env = Env::new().await;
    // In the catalog, not in the store.
    env.publish_catalog_only("v1", &[&question("q1")]).await;
    let mounted = env.mount().await;
    let p = env.path("current/questions/q1/question.html");
    let (stat, open) = fs(move || {
        (
            std::fs::metadata(&p).map(|m| m.len()),
            std::fs::File::open(&p).unwrap_err(),
        )
    })
    .await;
    assert_eq!(stat.unwrap(), 9, "stat needs no chunk");
    assert_eq!(open.raw_os_error(), Some(libc::EIO), "{open}");
    let m = mounted.metrics();
    assert_eq!(m.open_errors.get("not_found"), Some(&1), "{m:?}");
    let last = m.last_error.unwrap();
    assert!(last.contains("not found"), "{last}");
    assert_eq!(m.held_chunks, 0);
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_does_not_answer_holds_up_no_ls_or_stat() {
    if !fuse_or_skip("a_store_that_does_not_answer_holds_up_no_ls_or_stat") {
        return;
    }
    let env = Env::new().await;
    let (q1, q2) = (question("q1"), question("q2"));
    env.publish("v1", &[&q1, &q2]).await;
    let mounted = env.mount().await;
    // Every GET hangs until released.
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    env.store.on_get(move || {
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let opened = Arc::new(AtomicBool::new(false));
    let o = opened.clone();
    let p1 = env.path("current/questions/q1/question.html");
    let reader = std::thread::spawn(move || {
        let s = std::fs::read_to_string(&p1);
        o.store(true, Ordering::SeqCst);
        s
    });
    let g = env.store.clone();
    eventually(5, "the open's download started", move || g.gets() >= 1).await;
    // While that open waits on the store: list and stat everything, open nothing.
    let dir = env.path("current/questions");
    let listed = fs(move || {
        let mut n = 0;
        for q in std::fs::read_dir(&dir).unwrap() {
            let q = q.unwrap().path();
            for f in std::fs::read_dir(&q).unwrap() {
                std::fs::metadata(f.unwrap().path()).unwrap();
                n += 1;
            }
        }
        n
    })
    .await;
    assert_eq!(listed, 2);
    assert!(
        !opened.load(Ordering::SeqCst),
        "ls and stat finished while the open still waits on the store"
    );
    release.store(true, Ordering::SeqCst);
    assert_eq!(reader.join().unwrap().unwrap(), "<p>q1</p>");
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_without_a_table_of_contents_is_read_back_once_and_stored() {
    if !fuse_or_skip("a_chunk_without_a_table_of_contents_is_read_back_once_and_stored") {
        return;
    }
    let env = Env::new().await;
    let q1 = question("q1");
    env.publish("v1", &[&q1]).await;
    // As a version synced before kiln kept tables of contents.
    env.catalog.forget_tocs();
    let mounted = env.mount().await;
    let q = env.path("current/questions/q1");
    let names = fs(move || {
        std::fs::read_dir(&q)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(names, ["question.html"]);
    assert_eq!(env.store.gets(), 1, "the bundle was read once to list it");
    use kiln_core::catalog::Catalog;
    let stored = env.catalog.tocs(&[q1.entry.id]).await.unwrap();
    assert_eq!(
        stored.get(&q1.entry.id),
        Some(&q1.toc),
        "and its table of contents stored"
    );
    mounted.unmount().await.unwrap();
}
