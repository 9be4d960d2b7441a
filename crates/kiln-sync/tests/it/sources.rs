//! Sources: bare repositories, a course in a subdirectory, plain directories, generated courses.

use std::process::Command;

use kiln_core::catalog::PublishOutcome;
use kiln_core::ids::ChunkKind;
use kiln_testkit::course_gen::{CourseSpec, commit_all, commit_question_change, write_git};

use crate::support::{copy_tree, env, example_course, example_repo};

#[tokio::test]
async fn bare_repository_gives_the_same_chunks() {
    let env = env().await;
    let (repo, head) = example_repo(env.dir.path(), "kiln101");
    let bare = env.dir.path().join("kiln101.git");
    let ok = Command::new("git")
        .args(["clone", "--quiet", "--bare"])
        .arg(&repo)
        .arg(&bare)
        .status()
        .unwrap();
    assert!(ok.success());
    env.sync(&repo, "worktree").await.unwrap();
    let r = env
        .sync_with(&bare, "ignored", |o| o.course = None)
        .await
        .unwrap();
    assert_eq!(
        r.course.as_str(),
        "kiln101",
        "default id: the directory name without .git"
    );
    assert_eq!(r.version.as_str(), head);
    assert_eq!(
        env.manifest("worktree").await,
        env.manifest("kiln101").await
    );
}

#[tokio::test]
async fn course_in_a_subdirectory() {
    let env = env().await;
    let mono = env.dir.path().join("mono");
    copy_tree(&example_course(), &mono.join("courses/kiln101"));
    std::fs::write(mono.join("README.md"), "several courses\n").unwrap();
    commit_all(&mono, "monorepo").unwrap();
    let r = env
        .sync_with(&mono, "sub", |o| o.subdir = Some("courses/kiln101/".into()))
        .await
        .unwrap();
    assert_eq!(r.outcome, PublishOutcome::Published);
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "plain").await.unwrap();
    assert_eq!(env.manifest("sub").await, env.manifest("plain").await);

    let missing = env
        .sync_with(&mono, "sub2", |o| o.subdir = Some("courses/nope".into()))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("courses/nope"), "{missing}");
}

#[tokio::test]
async fn plain_directory_source() {
    let env = env().await;
    let dir = env.dir.path().join("kiln101-dir");
    copy_tree(&example_course(), &dir);
    let r = env.sync(&dir, "dir").await.unwrap();
    assert!(r.version.as_str().starts_with("dir-"), "{}", r.version);
    assert_eq!(r.outcome, PublishOutcome::Published);
    let again = env.sync(&dir, "dir").await.unwrap();
    assert_eq!(again.version, r.version);
    assert_eq!(again.outcome, PublishOutcome::Unchanged);
    assert_eq!(again.chunks_uploaded, 0);

    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "git").await.unwrap();
    assert_eq!(
        env.manifest("dir").await,
        env.manifest("git").await,
        "same bundles as from git"
    );

    std::fs::write(dir.join("serverFilesCourse/kiln_util.py"), "X = 1\n").unwrap();
    let changed = env.sync(&dir, "dir").await.unwrap();
    assert_ne!(changed.version, r.version);
    assert_eq!(changed.chunks_uploaded, 1);
}

#[tokio::test]
async fn generated_course_with_history() {
    let env = env().await;
    let mut spec = CourseSpec::new(40);
    spec.questions_per_topic = 7;
    spec.file_size = 2_000;
    let repo = env.dir.path().join("gen.git");
    write_git(&spec, &repo, true).unwrap();
    let full = env.sync(&repo, "gen").await.unwrap();
    let m = env.manifest("gen").await;
    let questions = m
        .entries()
        .iter()
        .filter(|e| e.kind == ChunkKind::Question)
        .count();
    assert_eq!(questions, 40);
    assert_eq!(full.chunks_total, m.entries().len());

    commit_question_change(&spec, &repo, 17, 1).unwrap();
    let inc = env.sync(&repo, "gen").await.unwrap();
    assert_eq!(inc.chunks_uploaded, 1);
    let after = env.manifest("gen").await;
    let qid = spec.question_id(17);
    let changed: Vec<_> = m
        .entries()
        .iter()
        .zip(after.entries())
        .filter(|(a, b)| a.id != b.id)
        .map(|(_, b)| b.name.clone())
        .collect();
    assert_eq!(changed, [qid]);
}
