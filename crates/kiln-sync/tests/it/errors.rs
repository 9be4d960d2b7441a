//! Bad input: one clear error naming the culprit, and nothing published.

use kiln_core::Error;
use kiln_testkit::course_gen::commit_all;

use crate::support::{Env, copy_tree, env, example_course, example_repo};

/// Asserts a one-line error whose message contains `needle`, and that `course` has no version.
pub(crate) async fn assert_refused(env: &Env, course: &str, err: Error, needle: &str) {
    let msg = err.to_string();
    assert!(msg.contains(needle), "{msg:?} should name {needle:?}");
    assert!(!msg.contains('\n'), "one line: {msg:?}");
    assert!(!env.has_current(course).await, "nothing published");
}

/// A copy of the example course (a plain directory) with `edit` applied.
fn broken_course(env: &Env, edit: impl FnOnce(&std::path::Path)) -> std::path::PathBuf {
    let dir = env.dir.path().join("broken");
    copy_tree(&example_course(), &dir);
    edit(&dir);
    dir
}

#[tokio::test]
async fn path_that_is_neither_repository_nor_directory() {
    let env = env().await;
    let file = env.dir.path().join("not-a-course.txt");
    std::fs::write(&file, "hello").unwrap();
    for p in [file.clone(), env.dir.path().join("missing")] {
        let err = env.sync(&p, "c").await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
        assert_refused(&env, "c", err, &p.display().to_string()).await;
    }
}

#[tokio::test]
async fn unknown_revision() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let err = env
        .sync_with(&repo, "c", |o| o.rev = Some("no-such-branch".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_refused(&env, "c", err, "no-such-branch").await;
}

#[tokio::test]
async fn missing_info_course_json() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        std::fs::remove_file(d.join("infoCourse.json")).unwrap()
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert_refused(&env, "c", err, "no infoCourse.json").await;
}

#[tokio::test]
async fn malformed_info_json_names_file_and_line() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let bad = "{\n  \"title\": \"Dice\",\n  \"topic\" \"Probability\"\n}\n";
    std::fs::write(repo.join("questions/probability/dice/info.json"), bad).unwrap();
    commit_all(&repo, "break info.json").unwrap();
    let err = env.sync(&repo, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, "questions/probability/dice/info.json:3:").await;
}

#[tokio::test]
async fn symlink_pointing_outside_its_chunk() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        std::os::unix::fs::symlink(
            "../../../serverFilesCourse/kiln_util.py",
            d.join("questions/algebra/linear/util.py"),
        )
        .unwrap();
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, "questions/algebra/linear/util.py").await;
}

#[tokio::test]
async fn file_over_the_size_limit() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        std::fs::write(d.join("clientFilesCourse/video.mp4"), vec![7u8; 5_000]).unwrap();
    });
    let err = env
        .sync_with(&dir, "c", |o| o.max_file_size = 4_096)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, "clientFilesCourse/video.mp4").await;
}

#[tokio::test]
async fn path_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let env = env().await;
    let dir = broken_course(&env, |d| {
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
        std::fs::write(d.join("questions/algebra/linear").join(name), "x").unwrap();
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, "not UTF-8").await;
}

#[tokio::test]
async fn empty_course() {
    let env = env().await;
    let dir = env.dir.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, "is empty").await;
}

#[tokio::test]
async fn control_character_in_a_file_name_is_named_escaped() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        std::fs::write(d.join("questions/algebra/linear/notes\nold.txt"), "x").unwrap();
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(
        &env,
        "c",
        err,
        r#""questions/algebra/linear/notes\nold.txt""#,
    )
    .await;
}

#[tokio::test]
async fn control_character_in_a_directory_name_is_named_in_git() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let odd = repo.join("clientFilesCourse/tab\there");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("a.txt"), "x").unwrap();
    commit_all(&repo, "a directory with a tab").unwrap();
    let err = env.sync(&repo, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, r#""clientFilesCourse/tab\there""#).await;
}

#[tokio::test]
async fn symlink_to_itself() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        std::os::unix::fs::symlink("me.txt", d.join("questions/algebra/linear/me.txt")).unwrap();
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    let msg = err.to_string();
    assert!(msg.contains("loop"), "{msg}");
    assert_refused(&env, "c", err, "questions/algebra/linear/me.txt").await;
}

#[tokio::test]
async fn symlink_cycle_within_a_chunk() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let sub = repo.join("clientFilesCourse/cycle");
    std::fs::create_dir_all(&sub).unwrap();
    std::os::unix::fs::symlink("b", sub.join("a")).unwrap();
    std::os::unix::fs::symlink("../cycle/a", sub.join("b")).unwrap();
    commit_all(&repo, "a symlink cycle").unwrap();
    let err = env.sync(&repo, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    let msg = err.to_string();
    assert!(msg.contains("loop"), "{msg}");
    assert_refused(&env, "c", err, "clientFilesCourse/cycle/a").await;
}

#[tokio::test]
async fn symlink_that_escapes_through_another_link() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        let sub = d.join("clientFilesCourse");
        std::os::unix::fs::symlink(".", sub.join("here")).unwrap();
        // Lexically `here/..` is the chunk root; on disk it is the chunk's parent.
        std::os::unix::fs::symlink("here/..", sub.join("up")).unwrap();
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    assert_refused(&env, "c", err, "clientFilesCourse/up").await;
}

/// The loader refuses a link whose target holds a backslash (kiln-chunk's entry rule), so
/// sync refuses it too, naming the file, rather than publishing a chunk no server unpacks.
#[tokio::test]
async fn symlink_with_a_backslash_in_its_target() {
    let env = env().await;
    let dir = broken_course(&env, |d| {
        std::os::unix::fs::symlink(
            "figures\\plot.png",
            d.join("questions/algebra/linear/plot.png"),
        )
        .unwrap();
    });
    let err = env.sync(&dir, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    let msg = err.to_string();
    assert!(msg.contains("backslash"), "{msg}");
    assert_refused(&env, "c", err, "questions/algebra/linear/plot.png").await;
}
