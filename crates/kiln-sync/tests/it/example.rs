//! The example course: every chunk kind, bundle contents, re-sync, dedup across courses.

use std::collections::BTreeSet;

use kiln_chunk::bundle::BundleEntry;
use kiln_core::catalog::PublishOutcome;
use kiln_core::ids::ChunkKind;

use crate::support::{entry, env, example_repo, paths};

#[tokio::test]
async fn example_course_has_all_ten_kinds_with_course_relative_roots() {
    let env = env().await;
    let (repo, head) = example_repo(env.dir.path(), "kiln101");
    let report = env.sync(&repo, "kiln101").await.unwrap();
    assert_eq!(report.outcome, PublishOutcome::Published);
    assert_eq!(report.version.as_str(), head);
    let m = env.manifest("kiln101").await;
    assert_eq!(report.chunks_total, m.entries().len());
    let distinct: BTreeSet<_> = m.entries().iter().map(|e| e.id).collect();
    assert_eq!(report.chunks_uploaded, distinct.len());
    assert_eq!(env.object_count().await, distinct.len());

    let kinds: BTreeSet<ChunkKind> = m.entries().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ChunkKind::ALL.into_iter().collect());
    let names = |k: ChunkKind| -> Vec<&str> {
        m.entries()
            .iter()
            .filter(|e| e.kind == k)
            .map(|e| e.name.as_str())
            .collect()
    };
    assert_eq!(
        names(ChunkKind::Question),
        [
            "algebra/linear",
            "algebra/quadratic",
            "calculus/derivatives/chain-rule",
            "calculus/derivatives/power-rule",
            "calculus/integrals/area",
            "probability/dice"
        ]
    );
    assert_eq!(
        names(ChunkKind::ClientFilesCourseInstance),
        ["2026/Sp26", "Fa25"]
    );
    assert_eq!(
        names(ChunkKind::ClientFilesAssessment),
        [
            "2026/Sp26/assessments/exams/midterm",
            "2026/Sp26/assessments/hw1",
            "Fa25/assessments/exams/midterm",
            "Fa25/assessments/hw1"
        ]
    );
    let q = entry(&m, ChunkKind::Question, "calculus/derivatives/power-rule");
    assert_eq!(q.root, "questions/calculus/derivatives/power-rule");
    let files = env.bundle(q).await;
    assert_eq!(
        paths(&files),
        [
            "clientFilesQuestion/figure.svg",
            "info.json",
            "question.html",
            "server.py",
            "thumbnail.png"
        ]
    );
    let elements = entry(&m, ChunkKind::Elements, "");
    assert_eq!(elements.root, "elements");
    assert!(!elements.is_gathered());
}

#[tokio::test]
async fn bundles_keep_exec_bits_inner_symlinks_and_gather_course_relative_files() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "kiln101").await.unwrap();
    let m = env.manifest("kiln101").await;

    let dice = env
        .bundle(entry(&m, ChunkKind::Question, "probability/dice"))
        .await;
    let get = |p: &str| {
        dice.iter()
            .find(|(q, _)| q == p)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    assert!(matches!(
        get("tests/check.sh"),
        BundleEntry::File { exec: true, .. }
    ));
    assert!(matches!(
        get("server.py"),
        BundleEntry::File { exec: false, .. }
    ));
    assert_eq!(
        get("clientFilesQuestion/latest.svg"),
        BundleEntry::Symlink {
            target: "figure.svg".into()
        }
    );

    let info = entry(&m, ChunkKind::CourseInfo, "");
    assert!(info.is_gathered() && info.root.is_empty());
    let info_files = env.bundle(info).await;
    let info_paths = paths(&info_files);
    assert!(info_paths.contains(&"infoCourse.json"));
    assert!(info_paths.contains(&"courseInstances/2026/Sp26/infoCourseInstance.json"));
    assert!(
        info_paths.contains(&"courseInstances/Fa25/assessments/exams/midterm/infoAssessment.json")
    );
    assert!(info_paths.contains(&"questions/probability/dice/info.json"));
    assert!(
        !info_paths.iter().any(|p| p.starts_with("elements/")),
        "{info_paths:?}"
    );
    assert_eq!(info_paths.len(), 1 + 2 + 4 + 6);

    let thumbs = env
        .bundle(entry(&m, ChunkKind::QuestionThumbnails, ""))
        .await;
    assert_eq!(thumbs.len(), 6);
    assert!(
        paths(&thumbs)
            .iter()
            .all(|p| p.starts_with("questions/") && p.ends_with("/thumbnail.png"))
    );
    let BundleEntry::File { data, .. } = &thumbs[0].1 else {
        panic!("a file")
    };
    assert!(data.starts_with(b"\x89PNG"));

    // README.md is covered by no rule: no chunk ships it.
    for e in m.entries() {
        assert!(
            !paths(&env.bundle(e).await)
                .iter()
                .any(|p| p.ends_with("README.md"))
        );
    }
}

#[tokio::test]
async fn resyncing_the_current_commit_is_a_noop() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let first = env.sync(&repo, "kiln101").await.unwrap();
    let objects = env.object_count().await;
    let again = env.sync(&repo, "kiln101").await.unwrap();
    assert_eq!(again.outcome, PublishOutcome::Unchanged);
    assert_eq!(again.version, first.version);
    assert_eq!(again.chunks_uploaded, 0);
    assert_eq!(again.chunks_total, first.chunks_total);
    assert_eq!(env.object_count().await, objects);
}

#[tokio::test]
async fn same_content_gets_the_same_ids_in_two_courses() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let (copy, _) = example_repo(env.dir.path(), "copy");
    env.sync(&repo, "a").await.unwrap();
    let objects = env.object_count().await;
    let b = env.sync(&copy, "b").await.unwrap();
    assert_eq!(b.chunks_uploaded, 0, "every bundle is in the store already");
    assert_eq!(env.object_count().await, objects);
    assert_eq!(env.manifest("a").await, env.manifest("b").await);
}
