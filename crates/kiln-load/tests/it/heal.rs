//! The cache directory is disposable: deleting it, or any chunk, version or staging
//! directory in it, under a running cache costs a fetch, never an error; and a disk that fills
//! up says which chunk it was filling.

use std::path::Path;

use kiln_testkit::chunks::question_chunk;

use crate::support::{Env, r};

/// `rm -rf`, also through the read-only directories of extracted chunks.
pub(crate) fn rm_rf(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn writable(p: &Path) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        if m.is_dir() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            for e in std::fs::read_dir(p).unwrap() {
                writable(&e.unwrap().path());
            }
        }
    }
    writable(path);
    std::fs::remove_dir_all(path).unwrap();
}

#[tokio::test]
async fn a_deleted_cache_directory_heals_without_a_restart() {
    let env = Env::new();
    let a = question_chunk("a", 3, 1_000, 1);
    let b = question_chunk("b", 3, 1_000, 2);
    env.publish("v1", &[&a, &b]).await;
    let cache = env.cache().await;
    cache.ensure(&env.course, &[r(&a), r(&b)]).await.unwrap();
    rm_rf(&env.cache_dir());
    let e = cache.ensure(&env.course, &[r(&a), r(&b)]).await.unwrap();
    assert_eq!(e.downloaded.len(), 2, "both fetched again");
    for p in &e.paths {
        assert!(p.join("info.json").is_file(), "{}", p.display());
    }
    assert_eq!(env.store.gets(), 4);
    assert_eq!(cache.metrics().healed, 2);
    assert_eq!(cache.metrics().cache_chunks, 2);
    // Files resolve too, and maintenance copes with the missing directories.
    let f = cache
        .resolve_file(&env.course, None, "questions/a/info.json")
        .await
        .unwrap();
    f.open().unwrap();
    cache.maintain().await.unwrap();
}

#[tokio::test]
async fn a_deleted_chunk_directory_is_fetched_again() {
    let env = Env::new();
    let a = question_chunk("a", 3, 1_000, 1);
    env.publish("v1", &[&a]).await;
    let cache = env.cache().await;
    let first = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    let bytes = cache.metrics().cache_bytes;
    drop(first);
    rm_rf(&env.chunk_dir(&a));
    let e = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    assert!(e.paths[0].join("info.json").is_file());
    assert_eq!(env.store.gets(), 2);
    assert_eq!(cache.metrics().cache_bytes, bytes, "counted once");
    let again = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    assert!(again.downloaded.is_empty());
    assert_eq!(env.store.gets(), 2);
}

#[tokio::test]
async fn a_deleted_version_directory_is_linked_again() {
    let env = Env::new();
    let a = question_chunk("a", 3, 1_000, 1);
    env.publish("v1", &[&a]).await;
    let cache = env.cache().await;
    let first = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    let root = first.root.clone();
    drop(first);
    rm_rf(&root);
    let e = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    assert!(e.paths[0].join("info.json").is_file());
    assert_eq!(env.store.gets(), 1, "the chunk was still there");
}

#[tokio::test]
async fn deleted_staging_and_lock_directories_are_made_again() {
    let env = Env::new();
    let a = question_chunk("a", 3, 1_000, 1);
    let b = question_chunk("b", 3, 1_000, 2);
    env.publish("v1", &[&a, &b]).await;
    let cache = env.cache().await;
    cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    rm_rf(&env.cache_dir().join("tmp"));
    rm_rf(&env.cache_dir().join("locks"));
    let e = cache.ensure(&env.course, &[r(&b)]).await.unwrap();
    assert!(e.paths[0].join("info.json").is_file());
}

#[tokio::test]
async fn a_full_disk_names_the_chunk_it_was_filling() {
    let root = std::process::Command::new("id").arg("-u").output().ok();
    if root.as_ref().map(|o| o.stdout.as_slice()) != Some(b"0\n".as_slice()) {
        eprintln!(
            "skipping a_full_disk_names_the_chunk_it_was_filling: needs root to mount a tmpfs"
        );
        return;
    }
    let env = Env::new();
    let mnt = env.dir.join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("skipping a_full_disk_names_the_chunk_it_was_filling: cannot mount a tmpfs");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let big = question_chunk("big", 8, 100_000, 7);
    env.publish("v1", &[&big]).await;
    let cache = env
        .open(kiln_load::LoadConfig {
            cache_dir: mnt.join("cache"),
            ..env.config()
        })
        .await;
    let err = cache.ensure(&env.course, &[r(&big)]).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("question:big"), "{text}");
    assert!(text.contains(&big.entry.id.to_string()), "{text}");
    assert!(text.to_lowercase().contains("no space left"), "{text}");
    assert!(
        err.is_disk_full(),
        "a full disk, which the API answers 507: {err:?}"
    );
    drop(cache);
}
