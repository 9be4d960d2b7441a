//! Several processes on one cache directory, and a process killed mid-extraction.
//!
//! The child side of each test is a test in this module too: the parent re-runs this test
//! binary with `--exact processes::<child>` and `KILN_TEST_CHILD` set; without that variable
//! the child tests return at once.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_testkit::chunks::{TestChunk, question_chunk};

use crate::support::{Env, r};

const CHILD: &str = "KILN_TEST_CHILD";
const DIR: &str = "KILN_TEST_DIR";

fn spawn_child(name: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("processes::{name}"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, name)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The child's view of the parent's directory; `None` when this is not a child run of `name`.
fn child_env(name: &str) -> Option<Env> {
    if std::env::var(CHILD).ok()? != name {
        return None;
    }
    Some(Env::at(Path::new(&std::env::var(DIR).unwrap())))
}

fn race_chunk() -> TestChunk {
    question_chunk("race/q1", 200, 10_000, 7)
}

fn big_chunk() -> TestChunk {
    question_chunk("big/q1", 400, 20_000, 9)
}

fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn race_child() {
    let Some(env) = child_env("race_child") else {
        return;
    };
    let parent = env.dir.clone();
    let q = race_chunk();
    env.publish_catalog_only("v1", &[&q]);
    // Start together: the parent creates `go` once every child runs.
    std::fs::write(parent.join(format!("ready-{}", std::process::id())), "").unwrap();
    wait_for("go", Duration::from_secs(60), || parent.join("go").exists());
    let cache = env.cache().await;
    let ensured = cache.ensure(&env.course, &[r(&q)]).await.unwrap();
    let info = std::fs::read_to_string(ensured.paths[0].join("info.json")).unwrap();
    assert_eq!(info, "{\"uuid\":\"7\"}");
    println!(
        "RESULT gets={} downloads={}",
        env.store.gets(),
        cache.metrics().downloads
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_download_one_chunk_once() {
    let env = Env::new();
    let q = race_chunk();
    env.publish("v1", &[&q]).await;
    let children: Vec<Child> = (0..8)
        .map(|_| spawn_child("race_child", &env.dir))
        .collect();
    wait_for("8 children ready", Duration::from_secs(120), || {
        std::fs::read_dir(&env.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("ready-")
            })
            .count()
            == 8
    });
    std::fs::write(env.dir.join("go"), "").unwrap();
    let (mut gets, mut downloads) = (0, 0);
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        // libtest prints "test <name> ... " before the test's own output, on the same line.
        let at = stdout.find("RESULT ").expect("a RESULT line");
        let line = stdout[at..].lines().next().unwrap_or_default();
        for kv in line.split_whitespace().skip(1).take(2) {
            let (k, v) = kv.split_once('=').unwrap();
            let v: u64 = v.parse().unwrap();
            match k {
                "gets" => gets += v,
                "downloads" => downloads += v,
                _ => unreachable!(),
            }
        }
    }
    assert_eq!(gets, 1, "store GETs across 8 processes");
    assert_eq!(downloads, 1, "downloads across 8 processes");
}

#[tokio::test]
async fn extract_child() {
    let Some(env) = child_env("extract_child") else {
        return;
    };
    let q = big_chunk();
    env.publish_catalog_only("v1", &[&q]);
    // Slow enough that the parent sees the extraction under way and kills us.
    env.store.set_slow(Duration::from_millis(20));
    let cache = env.cache().await;
    let _ = cache.ensure(&env.course, &[r(&q)]).await;
    panic!("the parent should have killed this process");
}

fn staged_files(tmp: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| std::fs::read_dir(e.path()).map(|d| d.count()).unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_extraction_leaves_no_partial_chunk() {
    let env = Env::new();
    let q = big_chunk();
    env.publish("v1", &[&q]).await;
    let mut child = spawn_child("extract_child", &env.dir);
    let tmp = env.cache_dir().join("tmp");
    let chunk_dir = env.chunk_dir(&q);
    wait_for("extraction under way", Duration::from_secs(120), || {
        // No reader may ever see the chunk before it is complete.
        assert!(!chunk_dir.exists(), "a partial chunk became visible");
        staged_files(&tmp) >= 20
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !chunk_dir.exists(),
        "a partial chunk is visible after the kill"
    );
    assert!(
        staged_files(&tmp) >= 20,
        "the partial extraction is left in staging"
    );

    let cache = env.cache().await;
    assert_eq!(staged_files(&tmp), 0, "start-up empties staging");
    let ensured = cache.ensure(&env.course, &[r(&q)]).await.unwrap();
    assert_eq!(ensured.downloaded, vec![r(&q)]);
    let info = std::fs::read_to_string(ensured.paths[0].join("info.json")).unwrap();
    assert_eq!(info, "{\"uuid\":\"9\"}");
    assert_eq!(std::fs::read_dir(&chunk_dir).unwrap().count(), 400);
}
