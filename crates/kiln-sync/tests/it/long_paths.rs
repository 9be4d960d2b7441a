//! Paths no server's file system can hold once the cache lays the course out: a name over
//! 255 bytes, a path over the limit. Sync refuses them by name, as it refuses a control
//! character, rather than publishing a version whose chunk no server can unpack.
//!
//! Neither can be made on a local disk, so the tests commit them with `git fast-import`.

use kiln_core::Error;
use kiln_testkit::course_gen::{GenFile, commit_files};

use crate::errors::assert_refused;
use crate::support::{env, example_repo};

fn file(path: &str) -> GenFile {
    GenFile {
        path: path.to_string(),
        data: b"x".to_vec(),
        exec: false,
    }
}

#[tokio::test]
async fn a_name_of_256_bytes_is_refused_by_name() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let name = format!("{}.txt", "n".repeat(252));
    assert_eq!(name.len(), 256);
    let path = format!("questions/algebra/linear/{name}");
    commit_files(&repo, "a long name", &[file(&path)]).unwrap();
    let err = env.sync(&repo, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("256 bytes") && msg.contains("255"), "{msg}");
    assert_refused(&env, "c", err, &path).await;
}

#[tokio::test]
async fn a_path_of_5000_bytes_is_refused_by_name() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    // Names of 199 bytes, each well within a file system's 255.
    let mut path = "clientFilesCourse".to_string();
    while path.len() < 5_000 - 200 {
        path.push('/');
        path.push_str(&"d".repeat(199));
    }
    path.push_str("/f.txt");
    path.push_str(&"t".repeat(5_000 - path.len()));
    assert_eq!(path.len(), 5_000);
    commit_files(&repo, "a long path", &[file(&path)]).unwrap();
    let err = env.sync(&repo, "c").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("too long"), "{msg}");
    assert_refused(&env, "c", err, &path).await;
}

/// A long path that every server can still hold syncs: the limit refuses only what cannot
/// be laid out.
#[tokio::test]
async fn a_path_of_2000_bytes_syncs() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    let mut path = "clientFilesCourse".to_string();
    for _ in 0..9 {
        path.push('/');
        path.push_str(&"d".repeat(200));
    }
    path.push_str("/f.txt");
    assert!(path.len() > 1_800, "{}", path.len());
    commit_files(&repo, "a long but servable path", &[file(&path)]).unwrap();
    env.sync(&repo, "c").await.unwrap();
}
