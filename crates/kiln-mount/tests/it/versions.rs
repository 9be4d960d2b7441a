//! Versions through the mount: `current` flips on publish, every version stays readable at
//! its own path, and a file opened before a flip keeps the version it was opened at.

use std::io::Read;
use std::path::PathBuf;

use kiln_core::ids::ChunkKind;
use kiln_testkit::chunks::BundleBuilder;

use crate::support::{Env, eventually, fs, fuse_or_skip};

fn q1(marker: &str) -> kiln_testkit::chunks::TestChunk {
    BundleBuilder::new()
        .file("question.html", format!("<p>{marker}</p>"))
        .build(ChunkKind::Question, "q1", "questions/q1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_flips_on_publish_and_open_files_keep_their_version() {
    if !fuse_or_skip("current_flips_on_publish_and_open_files_keep_their_version") {
        return;
    }
    let env = Env::new().await;
    let v1 = env.publish("v1", &[&q1("one")]).await;
    let mounted = env.mount().await;
    let current = env.path("current");
    let file = env.path("current/questions/q1/question.html");
    let c = current.clone();
    assert_eq!(
        fs(move || std::fs::read_link(&c).unwrap()).await,
        PathBuf::from(v1.as_str())
    );
    // Opened at v1, read after v2 is published.
    let mut open = fs(move || std::fs::File::open(&file).unwrap()).await;
    let v2 = env.publish("v2", &[&q1("two")]).await;
    let c = current.clone();
    eventually(5, "current -> v2", move || {
        std::fs::read_link(&c).ok() == Some(PathBuf::from(v2.as_str()))
    })
    .await;
    let (old, new, by_version) = {
        let file = env.path("current/questions/q1/question.html");
        let v1_file = env.path("v1/questions/q1/question.html");
        fs(move || {
            let mut old = String::new();
            open.read_to_string(&mut old).unwrap();
            (
                old,
                std::fs::read_to_string(&file).unwrap(),
                std::fs::read_to_string(&v1_file).unwrap(),
            )
        })
        .await
    };
    assert_eq!(old, "<p>one</p>", "an open file kept its version");
    assert_eq!(new, "<p>two</p>");
    assert_eq!(
        by_version, "<p>one</p>",
        "v1 stays readable at its own path"
    );
    let course = env.path("");
    let mut names = fs(move || {
        std::fs::read_dir(&course)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>()
    })
    .await;
    names.sort();
    assert_eq!(names, ["current", "v1", "v2"]);
    mounted.unmount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_published_after_mounting_appears() {
    if !fuse_or_skip("a_course_published_after_mounting_appears") {
        return;
    }
    let env = Env::new().await;
    let mounted = env.mount().await;
    let root = env.mountpoint();
    let r = root.clone();
    assert!(fs(move || std::fs::read_dir(&r).unwrap().next().is_none()).await);
    env.publish("v1", &[&q1("one")]).await;
    let file = env.path("current/questions/q1/question.html");
    eventually(5, "the course appears", move || {
        std::fs::read_to_string(&file).ok().as_deref() == Some("<p>one</p>")
    })
    .await;
    mounted.unmount().await.unwrap();
}
