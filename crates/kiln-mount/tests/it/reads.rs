//! Listing, stat'ing and reading through the mount: what each downloads, and that the bytes,
//! modes and links are the chunk's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_core::ids::ChunkKind;
use kiln_testkit::chunks::BundleBuilder;

use crate::support::{Env, fs, fuse_or_skip};

fn question(name: &str, marker: &str) -> kiln_testkit::chunks::TestChunk {
    BundleBuilder::new()
        .file("info.json", format!("{{\"title\": \"{marker}\"}}"))
        .file("question.html", format!("<p>{marker}</p>"))
        .exec("tests/check.sh", "#!/bin/sh\nexit 0\n")
        .symlink("latest.html", "question.html")
        .build(ChunkKind::Question, name, &format!("questions/{name}"))
}

fn course_info() -> kiln_testkit::chunks::TestChunk {
    BundleBuilder::new()
        .file("infoCourse.json", "{\"name\": \"demo\"}")
        .file("questions/q1/info.json", "{\"title\": \"gathered copy\"}")
        .build(ChunkKind::CourseInfo, "", "")
}

/// Every path below `dir` (not following links), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_and_stat_of_the_whole_tree_download_nothing() {
    if !fuse_or_skip("find_and_stat_of_the_whole_tree_download_nothing") {
        return;
    }
    let env = Env::new().await;
    let (q1, q2, info) = (question("q1", "one"), question("q2", "two"), course_info());
    let v = env.publish("v1", &[&q1, &q2, &info]).await;
    let mounted = env.mount().await;
    let root = env.path(v.as_str());
    let (paths, sizes) = fs(move || {
        let paths = walk(&root);
        let sizes: Vec<(String, u64, u32, bool)> = paths
            .iter()
            .map(|p| {
                let m = std::fs::symlink_metadata(p).unwrap();
                (
                    p.strip_prefix(&root).unwrap().display().to_string(),
                    m.len(),
                    m.permissions().mode() & 0o7777,
                    m.file_type().is_symlink(),
                )
            })
            .collect();
        (paths.len(), sizes)
    })
    .await;
    assert_eq!(
        env.store.gets(),
        0,
        "listing and stat'ing downloaded a chunk"
    );
    assert_eq!(paths, sizes.len());
    let get = |p: &str| {
        sizes
            .iter()
            .find(|s| s.0 == p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} missing: {sizes:?}"))
    };
    assert_eq!(
        get("questions/q1/question.html"),
        ("questions/q1/question.html".into(), 10, 0o644, false)
    );
    assert_eq!(get("questions/q2/tests/check.sh").2, 0o755);
    assert_eq!(
        get("questions/q1/latest.html"),
        ("questions/q1/latest.html".into(), 13, 0o777, true)
    );
    assert_eq!(get("infoCourse.json").1, 16);
    assert_eq!(get("questions").2, 0o755);
    // The question's own info.json, not the gathered chunk's copy.
    assert_eq!(
        get("questions/q1/info.json").1,
        "{\"title\": \"one\"}".len() as u64
    );
    let names: Vec<&str> = sizes.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "infoCourse.json",
            "questions",
            "questions/q1",
            "questions/q1/info.json",
            "questions/q1/latest.html",
            "questions/q1/question.html",
            "questions/q1/tests",
            "questions/q1/tests/check.sh",
            "questions/q2",
            "questions/q2/info.json",
            "questions/q2/latest.html",
            "questions/q2/question.html",
            "questions/q2/tests",
            "questions/q2/tests/check.sh",
        ]
    );
    assert_eq!(mounted.metrics().opens, 0);
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_one_question_downloads_exactly_its_chunk() {
    if !fuse_or_skip("reading_one_question_downloads_exactly_its_chunk") {
        return;
    }
    let env = Env::new().await;
    let (q1, q2, info) = (question("q1", "one"), question("q2", "two"), course_info());
    env.publish("v1", &[&q1, &q2, &info]).await;
    let mounted = env.mount().await;
    let dir = env.path("current/questions/q1");
    let (html, link, script) = fs(move || {
        (
            std::fs::read_to_string(dir.join("question.html")).unwrap(),
            (
                std::fs::read_link(dir.join("latest.html")).unwrap(),
                std::fs::read_to_string(dir.join("latest.html")).unwrap(),
            ),
            std::fs::read(dir.join("tests/check.sh")).unwrap(),
        )
    })
    .await;
    assert_eq!(html, "<p>one</p>");
    assert_eq!(
        link,
        (PathBuf::from("question.html"), "<p>one</p>".to_string())
    );
    assert_eq!(script, b"#!/bin/sh\nexit 0\n");
    assert_eq!(
        env.store.gets(),
        1,
        "one question's files need its chunk and nothing else"
    );
    let chunks = env.tmp.path().join("cache/courses/demo/.chunks");
    let present: Vec<String> = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(present, [q1.entry.id.to_hex()]);
    // The kernel sends a release after close returns.
    crate::support::eventually(5, "every file closed, no chunk held", || {
        let m = mounted.metrics();
        (m.open_files, m.held_chunks) == (0, 0)
    })
    .await;
    assert_eq!(mounted.metrics().opens, 3);
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_file_stays_readable_while_the_budget_is_below_the_working_set() {
    if !fuse_or_skip("an_open_file_stays_readable_while_the_budget_is_below_the_working_set") {
        return;
    }
    // A budget of one byte: every chunk is over it, so only pins keep a chunk on disk.
    let env = Env::with_budget(1).await;
    let (q1, q2) = (question("q1", "one"), question("q2", "two"));
    env.publish("v1", &[&q1, &q2]).await;
    let mounted = env.mount().await;
    let (p1, p2) = (
        env.path("current/questions/q1/question.html"),
        env.path("current/questions/q2/question.html"),
    );
    let chunk1 = env
        .tmp
        .path()
        .join("cache/courses/demo/.chunks")
        .join(q1.entry.id.to_hex());
    let held = mounted.metrics();
    assert_eq!(held.held_chunks, 0);
    let (first, other, again, after_close) = fs(move || {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(&p1).unwrap();
        let mut first = String::new();
        f.read_to_string(&mut first).unwrap();
        // Another chunk loads and the cache evicts what it can: not the held one.
        let other = std::fs::read_to_string(&p2).unwrap();
        assert!(
            chunk1.is_dir(),
            "the open file's chunk was evicted under it"
        );
        f.rewind().unwrap();
        let mut again = String::new();
        f.read_to_string(&mut again).unwrap();
        drop(f);
        // Closed: its chunk may go, and a new open loads it again.
        let after_close = std::fs::read_to_string(&p1).unwrap();
        (first, other, again, after_close)
    })
    .await;
    assert_eq!(
        (first.as_str(), other.as_str(), again.as_str()),
        ("<p>one</p>", "<p>two</p>", "<p>one</p>")
    );
    assert_eq!(after_close, "<p>one</p>");
    assert!(env.store.gets() >= 2);
    // The kernel sends a release after close returns.
    crate::support::eventually(5, "the closed files let their chunks go", || {
        mounted.metrics().held_chunks == 0
    })
    .await;
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_as_read_only() {
    if !fuse_or_skip("writes_are_refused_as_read_only") {
        return;
    }
    let env = Env::new().await;
    let q1 = question("q1", "one");
    env.publish("v1", &[&q1]).await;
    let mounted = env.mount().await;
    let p = env.path("current/questions/q1/question.html");
    let dir = env.path("current/questions/q1");
    let (write, create) = fs(move || {
        (
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap_err(),
            std::fs::write(dir.join("new.txt"), "x").unwrap_err(),
        )
    })
    .await;
    assert_eq!(write.raw_os_error(), Some(libc::EROFS), "{write}");
    assert_eq!(create.raw_os_error(), Some(libc::EROFS), "{create}");
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_holding_open_files_reads_load_the_chunk_on_a_page_miss() {
    if !fuse_or_skip("without_holding_open_files_reads_load_the_chunk_on_a_page_miss") {
        return;
    }
    let env = Env::new().await;
    let (q1, q2) = (question("q1", "one"), question("q2", "two"));
    env.publish("v1", &[&q1, &q2]).await;
    let mounted = env.mount_with(|o| o.hold_open_files = false).await;
    let dir = env.path("current/questions/q1");
    let (html, again, script) = fs(move || {
        (
            std::fs::read_to_string(dir.join("question.html")).unwrap(),
            std::fs::read_to_string(dir.join("question.html")).unwrap(),
            std::fs::read(dir.join("tests/check.sh")).unwrap(),
        )
    })
    .await;
    assert_eq!(
        (html.as_str(), again.as_str()),
        ("<p>one</p>", "<p>one</p>")
    );
    assert_eq!(script, b"#!/bin/sh\nexit 0\n");
    assert_eq!(env.store.gets(), 1, "one question read: its chunk only");
    let m = mounted.metrics();
    assert_eq!(
        (m.opens, m.held_chunks),
        (0, 0),
        "no open reached the mount: {m:?}"
    );
    // An unloadable chunk fails the read with EIO.
    env.publish_catalog_only("v2", &[&question("q3", "three")])
        .await;
    let p = env.path("v2/questions/q3/question.html");
    crate::support::eventually(5, "v2 appears", {
        let p = p.clone();
        move || p.exists()
    })
    .await;
    let err = fs(move || std::fs::read(&p).unwrap_err()).await;
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The kernel may ask twice (read-ahead, then the read itself).
    let failed = mounted.metrics().open_errors.get("not_found").copied();
    assert!(failed >= Some(1), "{failed:?}");
    mounted.unmount().await.unwrap();
}
