//! Sources: bare repositories, a course in a subdirectory, plain directories, generated courses,
//! and what a source may hold besides course files (nested `.git`, submodules, LFS pointers).

use std::process::Command;

use kiln_chunk::bundle::BundleEntry;
use kiln_core::catalog::PublishOutcome;
use kiln_core::ids::ChunkKind;
use kiln_testkit::course_gen::{CourseSpec, commit_all, commit_question_change, write_git};

use crate::support::{copy_tree, entry, env, example_course, example_repo, paths};

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

#[tokio::test]
async fn nested_git_directories_are_not_shipped() {
    let env = env().await;
    let dir = env.dir.path().join("checkout");
    copy_tree(&example_course(), &dir);
    let nested = dir.join("questions/algebra/linear/.git");
    std::fs::create_dir_all(nested.join("objects")).unwrap();
    let secret = "[remote \"origin\"]\n\turl = https://kiln:s3cr3t-token@example.invalid/q.git\n";
    std::fs::write(nested.join("config"), secret).unwrap();
    std::fs::create_dir_all(dir.join("clientFilesCourse/vendor/.git")).unwrap();
    std::fs::write(dir.join("clientFilesCourse/vendor/.git/config"), secret).unwrap();
    std::fs::write(dir.join("clientFilesCourse/vendor/lib.js"), "x()\n").unwrap();
    // A worktree's `.git` is a file.
    std::fs::write(dir.join("elements/.git"), "gitdir: /elsewhere\n").unwrap();
    let r = env.sync(&dir, "dir").await.unwrap();
    assert_eq!(r.outcome, PublishOutcome::Published);
    let m = env.manifest("dir").await;
    for e in m.entries() {
        let files = env.bundle(e).await;
        for (path, entry) in &files {
            assert!(
                !path.split('/').any(|s| s == ".git"),
                "{} ships {path}",
                e.kind
            );
            if let BundleEntry::File { data, .. } = entry {
                assert!(!String::from_utf8_lossy(data).contains("s3cr3t"), "{path}");
            }
        }
    }
    let client = env
        .bundle(entry(&m, ChunkKind::ClientFilesCourse, ""))
        .await;
    assert!(paths(&client).contains(&"vendor/lib.js"), "the rest ships");
}

/// Adds a submodule (a gitlink entry) at `path` to the repository at `repo` and commits.
fn commit_submodule(repo: &std::path::Path, path: &str) {
    let fake = "0123456789abcdef0123456789abcdef01234567";
    for args in [
        vec![
            "update-index".to_string(),
            "--add".into(),
            "--cacheinfo".into(),
            format!("160000,{fake},{path}"),
        ],
        vec![
            "commit".into(),
            "--quiet".into(),
            "-m".into(),
            "submodule".into(),
        ],
    ] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args([
                "-c",
                "user.name=kiln",
                "-c",
                "user.email=kiln@example.invalid",
            ])
            .args(&args)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }
}

#[tokio::test]
async fn submodules_and_lfs_pointers_are_warned_about() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let clean = env.sync(&repo, "clean").await.unwrap();
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);

    let pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n";
    std::fs::write(repo.join("clientFilesCourse/video.mp4"), pointer).unwrap();
    commit_all(&repo, "an LFS pointer").unwrap();
    commit_submodule(&repo, "elements/vendor-lib");
    commit_submodule(&repo, "questions/algebra/linear/shared");
    let r = env.sync(&repo, "c").await.unwrap();
    assert_eq!(r.outcome, PublishOutcome::Published);
    assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
    for culprit in [
        "clientFilesCourse/video.mp4",
        "elements/vendor-lib",
        "questions/algebra/linear/shared",
    ] {
        let w = r.warnings.iter().find(|w| w.contains(culprit));
        assert!(w.is_some(), "no warning names {culprit}: {:?}", r.warnings);
        assert!(!w.unwrap().contains('\n'));
    }
    assert!(r.warnings.iter().any(|w| w.contains("LFS")));
    assert_eq!(
        r.warnings
            .iter()
            .filter(|w| w.contains("submodule"))
            .count(),
        2
    );
}

#[tokio::test]
async fn info_json_with_a_bom_is_accepted_and_stored_unchanged() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let info = repo.join("questions/probability/dice/info.json");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(&info).unwrap());
    std::fs::write(&info, &bytes).unwrap();
    commit_all(&repo, "an editor added a BOM").unwrap();
    let r = env.sync(&repo, "c").await.unwrap();
    assert_eq!(r.outcome, PublishOutcome::Published);
    let m = env.manifest("c").await;
    let files = env.bundle(entry(&m, ChunkKind::CourseInfo, "")).await;
    let stored = files
        .iter()
        .find(|(p, _)| p == "questions/probability/dice/info.json")
        .map(|(_, e)| e.clone());
    assert_eq!(
        stored,
        Some(BundleEntry::File {
            data: bytes,
            exec: false
        })
    );
}
