//! gc against syncs (the claims and marks protocol), re-syncs that heal missing objects, and
//! `verify` with repair.

use std::sync::Arc;
use std::time::Duration;

use kiln_chunk::bundle::{BundleEntry, bundle_files, read_bundle};
use kiln_chunk::key::{key_string, object_key};
use kiln_core::catalog::{Catalog, PublishOutcome};
use kiln_core::ids::{ChunkId, CourseId};
use kiln_sync::gc::{GcOptions, gc};
use kiln_sync::verify::{Damage, verify};
use kiln_sync::{NoProgress, SyncOptions};
use object_store::{ObjectStore, PutPayload};

use crate::support::{Env, env, example_repo};

/// Every object of the course's current version is in the store and whole.
async fn assert_whole(env: &Env, course: &str, round: usize) {
    let m = env.manifest(course).await;
    for e in m.entries() {
        let key = object_key(&e.id);
        let got = env.store.get(&key).await;
        let bytes = match got {
            Ok(g) => g.bytes().await.unwrap(),
            Err(err) => panic!(
                "round {round}: {course} chunk {}:{} lost: {err}",
                e.kind, e.name
            ),
        };
        read_bundle(&bytes, e.id).unwrap();
    }
}

fn zero_grace() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        local_root: None,
    }
}

/// The defect: a sync of a course the catalog does not know yet finds its objects in the
/// store (orphans of an earlier, killed sync: here uploaded through another catalog) and
/// skips their upload, while a gc with no grace deletes them. Rounds with random timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_racing_syncs_of_new_courses_never_loses_a_chunk() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "race");
    // The killed sync's catalog: it uploaded, and never published into `env.catalog`.
    let other = Arc::new(
        kiln_sqlite::SqliteCatalog::open(&env.dir.path().join("other.db"))
            .await
            .unwrap(),
    );
    let mut deleted_total = 0;
    for round in 0..16 {
        std::fs::write(
            repo.join("clientFilesCourse/round.txt"),
            format!("round {round}\n"),
        )
        .unwrap();
        std::fs::write(
            repo.join(format!("questions/q{round}.txt")),
            format!("{round}"),
        )
        .unwrap();
        let rev = kiln_testkit::course_gen::commit_all(&repo, &format!("round {round}")).unwrap();
        let mut o = SyncOptions::new(&repo);
        o.course = Some(CourseId::new(format!("orphan{round}")).unwrap());
        o.rev = Some(rev.clone());
        kiln_sync::sync(o, other.clone(), env.store.clone(), Arc::new(NoProgress))
            .await
            .unwrap();
        let course = format!("new{round}");
        // Either side may start first, by up to 20 ms: the gc's marks sometimes come before
        // the sync's claims (the sync then stores the objects again), sometimes after.
        let delay = Duration::from_micros(rand::random_range(0..20_000));
        let (sync_delay, gc_delay) = if round % 2 == 0 {
            (Duration::ZERO, delay)
        } else {
            (delay, Duration::ZERO)
        };
        let sync = async {
            tokio::time::sleep(sync_delay).await;
            env.sync_with(&repo, &course, |o| o.rev = Some(rev.clone()))
                .await
        };
        let collect = async {
            tokio::time::sleep(gc_delay).await;
            gc(env.catalog.clone(), env.store.clone(), zero_grace()).await
        };
        let (synced, collected) = tokio::join!(sync, collect);
        synced.unwrap_or_else(|e| panic!("round {round}: sync failed: {e}"));
        deleted_total += collected.unwrap().objects_deleted;
        assert_whole(&env, &course, round).await;
    }
    // Every course synced so far stays whole after a final gc.
    gc(env.catalog.clone(), env.store.clone(), zero_grace())
        .await
        .unwrap();
    for round in 0..16 {
        assert_whole(&env, &format!("new{round}"), round).await;
    }
    // gc deletes chunk objects only: every version's published objects are still there.
    let published = kiln_publish::check::check(&*env.catalog, &env.store, None, None)
        .await
        .unwrap();
    assert!(published.problems.is_empty(), "{:?}", published.problems);
    assert_eq!(published.versions, 16);
    assert!(
        deleted_total > 0,
        "the gc never found an orphan: the race was not exercised"
    );
}

/// A gc's live mark on a chunk makes a sync that needs it wait and store the object itself.
#[tokio::test]
async fn a_sync_stores_again_what_a_gc_has_marked() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "marked");
    let other = Arc::new(
        kiln_sqlite::SqliteCatalog::open(&env.dir.path().join("other.db"))
            .await
            .unwrap(),
    );
    let mut o = SyncOptions::new(&repo);
    o.course = Some(CourseId::new("orphan").unwrap());
    kiln_sync::sync(o, other.clone(), env.store.clone(), Arc::new(NoProgress))
        .await
        .unwrap();
    let ids: Vec<ChunkId> = {
        let c = CourseId::new("orphan").unwrap();
        let v = other.current(&c).await.unwrap().unwrap();
        let m = other.manifest(&c, &v.version).await.unwrap();
        let mut ids: Vec<ChunkId> = m.entries().iter().map(|e| e.id).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    // A gc marks every orphan, then (after a while) deletes them and unmarks.
    let (marked, _) = env
        .catalog
        .gc_mark("gc-test", &ids, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(marked.len(), ids.len());
    let (catalog, store, ids2) = (env.catalog.clone(), env.store.clone(), ids.clone());
    let slow_gc = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for id in ids2 {
            store.delete(&object_key(&id)).await.unwrap();
        }
        catalog.gc_unmark("gc-test").await.unwrap();
    });
    let r = env.sync(&repo, "new").await.unwrap();
    slow_gc.await.unwrap();
    assert_eq!(
        r.chunks_uploaded,
        ids.len(),
        "every marked object is stored again"
    );
    assert_whole(&env, "new", 0).await;
}

async fn delete_object(env: &Env, id: ChunkId) {
    env.store.delete(&object_key(&id)).await.unwrap();
}

/// Re-syncing a version whose objects went missing stores them again (it used to say
/// "Unchanged" and stay broken).
#[tokio::test]
async fn resync_of_a_version_with_missing_objects_stores_them_again() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "heal");
    env.sync(&repo, "heal").await.unwrap();
    let m = env.manifest("heal").await;
    let lost: Vec<ChunkId> = m.entries().iter().take(2).map(|e| e.id).collect();
    for id in &lost {
        delete_object(&env, *id).await;
    }
    let r = env.sync(&repo, "heal").await.unwrap();
    assert_eq!(r.outcome, PublishOutcome::Unchanged);
    assert_eq!(r.chunks_uploaded, lost.len());
    assert_whole(&env, "heal", 0).await;
    // And now it is a no-op again.
    let r = env.sync(&repo, "heal").await.unwrap();
    assert_eq!(r.chunks_uploaded, 0);
}

/// `verify` names missing and corrupt objects with their versions; `--repair` stores them
/// again from the source, for an older version too, without changing the current one.
#[tokio::test]
async fn verify_finds_and_repairs_missing_and_corrupt_objects() {
    let env = env().await;
    let (repo, first) = example_repo(env.dir.path(), "fix");
    env.sync(&repo, "fix").await.unwrap();
    let old = env.manifest("fix").await;
    std::fs::write(repo.join("clientFilesCourse/course.css"), "body{}\n").unwrap();
    let second = kiln_testkit::course_gen::commit_all(&repo, "restyle").unwrap();
    env.sync(&repo, "fix").await.unwrap();
    let new = env.manifest("fix").await;
    let only_old = old
        .entries()
        .iter()
        .find(|e| !new.entries().iter().any(|n| n.id == e.id))
        .expect("a chunk of the first version only")
        .id;
    let shared = new.entries()[0].id;
    delete_object(&env, only_old).await;
    // A whole bundle, of other content, under the shared chunk's key.
    let other = bundle_files(&[(
        "other.txt".to_string(),
        BundleEntry::File {
            data: b"not this".to_vec(),
            exec: false,
        },
    )])
    .unwrap();
    env.store
        .put(&object_key(&shared), PutPayload::from(other.out))
        .await
        .unwrap();

    let course = CourseId::new("fix").unwrap();
    let r = verify(env.catalog.clone(), env.store.clone(), Some(&course), None)
        .await
        .unwrap();
    assert_eq!(r.versions, 2);
    let bad: Vec<(ChunkId, Damage)> = r.bad.iter().map(|b| (b.id, b.damage.clone())).collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad.contains(&(only_old, Damage::Missing)));
    assert!(
        bad.iter()
            .any(|(id, d)| *id == shared && matches!(d, Damage::Corrupt(_)))
    );
    let missing = r.bad.iter().find(|b| b.id == only_old).unwrap();
    assert_eq!(missing.versions.len(), 1);
    assert_eq!(missing.versions[0].1.as_str(), first);

    let r = verify(
        env.catalog.clone(),
        env.store.clone(),
        Some(&course),
        Some(SyncOptions::new(&repo)),
    )
    .await
    .unwrap();
    for b in &r.bad {
        assert_eq!(b.repair, Some(Ok(())), "chunk {} not repaired", b.id);
    }
    let r = verify(env.catalog.clone(), env.store.clone(), Some(&course), None)
        .await
        .unwrap();
    assert!(r.bad.is_empty(), "{:?}", r.bad);
    let current = env.catalog.current(&course).await.unwrap().unwrap();
    assert_eq!(current.version.as_str(), second, "repair publishes nothing");
}

/// A source that no longer has the version's commit cannot repair it, and says so.
#[tokio::test]
async fn repair_without_the_commit_says_what_it_could_not_do() {
    let env = env().await;
    let (repo, first) = example_repo(env.dir.path(), "gone");
    env.sync(&repo, "gone").await.unwrap();
    let id = env.manifest("gone").await.entries()[0].id;
    delete_object(&env, id).await;
    // Another history: its first commit differs, so it lacks the synced one.
    let other = env.dir.path().join("elsewhere");
    crate::support::copy_tree(&crate::support::example_course(), &other);
    std::fs::write(other.join("README.md"), "another history\n").unwrap();
    kiln_testkit::course_gen::commit_all(&other, "other").unwrap();
    let course = CourseId::new("gone").unwrap();
    let r = verify(
        env.catalog.clone(),
        env.store.clone(),
        Some(&course),
        Some(SyncOptions::new(&other)),
    )
    .await
    .unwrap();
    assert_eq!(r.bad.len(), 1);
    let why = r.bad[0].repair.clone().unwrap().unwrap_err();
    assert!(why.contains(&first), "{why}");
    assert!(why.contains("still missing"), "{why}");
}

/// gc removes the temporary files that a killed upload leaves in a local store.
#[tokio::test]
async fn gc_removes_leftover_temporary_objects() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "tmp");
    env.sync(&repo, "tmp").await.unwrap();
    let id = env.manifest("tmp").await.entries()[0].id;
    let root = env.dir.path().join("objects");
    let real = root.join(key_string(&id));
    let temp = real.with_file_name(format!("{}#1", real.file_name().unwrap().to_str().unwrap()));
    std::fs::write(&temp, vec![7u8; 4096]).unwrap();
    let before = env.object_count().await;
    let report = gc(
        env.catalog.clone(),
        env.store.clone(),
        GcOptions {
            grace: Duration::ZERO,
            local_root: Some(root),
        },
    )
    .await
    .unwrap();
    assert_eq!(report.temp_files_removed, 1);
    assert!(!temp.exists());
    assert!(real.exists(), "the real object stays");
    assert_eq!(env.object_count().await, before);
}
