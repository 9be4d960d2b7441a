//! A symlink where the layout expects a directory (a chunk's root, or a directory the walk
//! looks through for chunks) is refused by name, with the error a link inside a question
//! gets: it is not followed, so whatever it stands for would vanish from the version.

use kiln_core::Error;
use kiln_testkit::course_gen::commit_all;

use crate::errors::assert_refused;
use crate::support::{env, example_repo};

/// Replaces the directory `at` of a copy of the example course with a link to `target`,
/// commits it, and returns the sync's error.
async fn sync_with_link(at: &str, target: &str) -> (crate::support::Env, Error) {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let path = repo.join(at);
    if path.is_dir() {
        std::fs::remove_dir_all(&path).unwrap();
    }
    std::os::unix::fs::symlink(target, &path).unwrap();
    commit_all(&repo, "a link where a directory was").unwrap();
    let err = env.sync(&repo, "c").await.unwrap_err();
    (env, err)
}

#[tokio::test]
async fn elements_linked_to_an_absolute_path_is_refused() {
    let (env, err) = sync_with_link("elements", "/etc").await;
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("absolute"), "{err}");
    assert_refused(&env, "c", err, r#"symlink elements -> "/etc""#).await;
}

#[tokio::test]
async fn client_files_course_linked_into_the_course_is_refused() {
    let (env, err) = sync_with_link("clientFilesCourse", "questions/ok").await;
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("points outside"), "{err}");
    assert_refused(
        &env,
        "c",
        err,
        r#"symlink clientFilesCourse -> "questions/ok""#,
    )
    .await;
}

/// The same link inside a question is refused with the same words.
#[tokio::test]
async fn the_same_link_inside_a_question_says_the_same() {
    let (_env, inside) = sync_with_link("questions/algebra/linear/elements", "/etc").await;
    let (_env, root) = sync_with_link("elements", "/etc").await;
    let strip = |e: &Error, prefix: &str| {
        let m = e.to_string();
        let m = m.replacen(prefix, "", 1);
        m.split(" (").next().unwrap_or_default().to_string()
    };
    assert_eq!(
        strip(&inside, "questions/algebra/linear/"),
        strip(&root, ""),
        "{inside} / {root}"
    );
}

/// Deeper: a topic directory of questions that is a link.
#[tokio::test]
async fn a_linked_directory_above_questions_is_refused() {
    let (env, err) = sync_with_link("questions/algebra", "calculus").await;
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert_refused(&env, "c", err, r#"symlink questions/algebra -> "calculus""#).await;
}
