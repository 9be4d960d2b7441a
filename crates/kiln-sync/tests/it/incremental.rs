//! Incremental syncs: only changed chunks are bundled and uploaded, and the result equals a
//! full sync of the same commit.

use kiln_core::catalog::PublishOutcome;
use kiln_core::ids::ChunkKind;
use kiln_testkit::course_gen::commit_all;

use crate::support::{entry, env, example_repo, paths};

#[tokio::test]
async fn one_changed_question_uploads_only_its_chunk() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "kiln101").await.unwrap();
    let before = env.manifest("kiln101").await;

    let html = repo.join("questions/algebra/linear/question.html");
    std::fs::write(
        &html,
        "<pl-question-panel><p>Solve for x.</p></pl-question-panel>\n",
    )
    .unwrap();
    let head = commit_all(&repo, "edit a question").unwrap();
    let report = env.sync(&repo, "kiln101").await.unwrap();
    assert_eq!(report.version.as_str(), head);
    assert_eq!(report.outcome, PublishOutcome::Published);
    assert_eq!(report.chunks_uploaded, 1);

    let after = env.manifest("kiln101").await;
    assert_eq!(before.entries().len(), after.entries().len());
    for (b, a) in before.entries().iter().zip(after.entries()) {
        assert_eq!((b.kind, &b.name), (a.kind, &a.name));
        let changed = a.kind == ChunkKind::Question && a.name == "algebra/linear";
        assert_eq!(a.id != b.id, changed, "{}:{}", a.kind, a.name);
    }
}

#[tokio::test]
async fn incremental_result_equals_a_full_sync_of_the_same_commit() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "inc").await.unwrap();

    // Change gathered members (an info.json, a thumbnail), remove a question, add a nested one.
    let q = repo.join("questions/algebra/quadratic");
    std::fs::write(
        q.join("info.json"),
        "{\"uuid\": \"x\", \"title\": \"Quadratics\"}\n",
    )
    .unwrap();
    std::fs::remove_file(q.join("thumbnail.png")).unwrap();
    std::fs::remove_dir_all(repo.join("questions/calculus/integrals")).unwrap();
    let new = repo.join("questions/probability/bayes/urn");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(new.join("info.json"), "{\"title\": \"Urns\"}\n").unwrap();
    std::fs::write(new.join("question.html"), "<p>Two urns.</p>\n").unwrap();
    commit_all(&repo, "reshape").unwrap();

    let inc = env.sync(&repo, "inc").await.unwrap();
    assert_eq!(inc.outcome, PublishOutcome::Published);
    let full = env.sync(&repo, "full").await.unwrap();
    assert_eq!(
        full.chunks_uploaded, 0,
        "the incremental sync stored every bundle already"
    );
    let (a, b) = (env.manifest("inc").await, env.manifest("full").await);
    assert_eq!(a, b);

    let info = env.bundle(entry(&a, ChunkKind::CourseInfo, "")).await;
    let p = paths(&info);
    assert!(p.contains(&"questions/probability/bayes/urn/info.json"));
    assert!(!p.iter().any(|p| p.contains("integrals")));
    let thumbs = env
        .bundle(entry(&a, ChunkKind::QuestionThumbnails, ""))
        .await;
    assert_eq!(thumbs.len(), 4);
}

#[tokio::test]
async fn syncing_an_older_commit_reinstates_it_without_uploads() {
    let env = env().await;
    let (repo, first) = example_repo(env.dir.path(), "kiln101");
    env.sync(&repo, "kiln101").await.unwrap();
    std::fs::write(
        repo.join("clientFilesCourse/course.css"),
        "body { margin: 1em; }\n",
    )
    .unwrap();
    commit_all(&repo, "restyle").unwrap();
    env.sync(&repo, "kiln101").await.unwrap();
    let back = env
        .sync_with(&repo, "kiln101", |o| o.rev = Some(first.clone()))
        .await
        .unwrap();
    assert_eq!(back.outcome, PublishOutcome::Reinstated);
    assert_eq!(back.chunks_uploaded, 0);
    assert_eq!(back.version.as_str(), first);
}
