//! The ContentView conformance suite: what every answer of a server's read path (the
//! catalog itself, the published view in a store) must agree on.
//!
//! A backend's fixture publishes as its sync would (tables of contents first, then the
//! version) and makes its view see the result ([`ContentFixture::publish`] returns once the
//! view answers with it).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::Error;
use kiln_core::content::ContentView;
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::toc::{Toc, TocEntry, TocKind};

use crate::catalog::{course, version};

/// A view under test and the way its backend publishes.
#[async_trait]
pub trait ContentFixture: Send + Sync {
    /// The view.
    fn view(&self) -> Arc<dyn ContentView>;
    /// Publishes a version with its chunks' tables of contents, and returns once the view
    /// shows it current.
    async fn publish(
        &self,
        course: &CourseId,
        version: &VersionId,
        manifest: Manifest,
        tocs: HashMap<ChunkId, Toc>,
    );
}

/// A manifest of `n` questions whose ids depend on `seed`, with a table of contents each.
pub fn questions(n: usize, seed: u64) -> (Manifest, HashMap<ChunkId, Toc>) {
    let mut tocs = HashMap::new();
    let entries = (0..n)
        .map(|i| {
            let id = crate::catalog::chunk_id(seed, i as u64);
            tocs.insert(
                id,
                Toc {
                    entries: vec![TocEntry {
                        path: format!("question-{seed}-{i}.html"),
                        size: 10 + i as u64,
                        kind: TocKind::File { exec: false },
                    }],
                },
            );
            ManifestEntry {
                kind: ChunkKind::Question,
                name: format!("topic/q{i:05}"),
                id,
                size: 100 + i as u64,
                root: format!("questions/topic/q{i:05}"),
            }
        })
        .collect();
    (Manifest::new(entries).expect("distinct names"), tocs)
}

/// Contract: a published version is current, with the manifest and tables of contents it
/// was published with.
pub async fn publish_then_read(f: &dyn ContentFixture) {
    let (m, tocs) = questions(5, 1);
    f.publish(&course("c"), &version("v1"), m.clone(), tocs.clone())
        .await;
    let v = f.view();
    let cur = v.current(&course("c")).await.unwrap().expect("current");
    assert_eq!(cur.version, version("v1"));
    assert!(cur.current);
    assert_eq!(v.manifest(&course("c"), &version("v1")).await.unwrap(), m);
    assert_eq!(v.tocs(&course("c"), &version("v1")).await.unwrap(), tocs);
}

/// Contract: a manifest of thousands of chunks reads back whole.
pub async fn a_large_manifest_reads_back_whole(f: &dyn ContentFixture) {
    let (m, tocs) = questions(3_000, 2);
    f.publish(&course("big"), &version("v1"), m.clone(), tocs.clone())
        .await;
    let v = f.view();
    assert_eq!(v.manifest(&course("big"), &version("v1")).await.unwrap(), m);
    assert_eq!(
        v.tocs(&course("big"), &version("v1")).await.unwrap().len(),
        3_000
    );
}

/// Contract: unknown courses and versions are not found (`current` is `None`).
pub async fn unknown_things_are_not_found(f: &dyn ContentFixture) {
    let (m, tocs) = questions(1, 3);
    f.publish(&course("c"), &version("v1"), m, tocs).await;
    let v = f.view();
    assert_eq!(v.current(&course("nope")).await.unwrap(), None);
    for err in [
        v.manifest(&course("c"), &version("v9")).await.unwrap_err(),
        v.manifest(&course("nope"), &version("v1"))
            .await
            .unwrap_err(),
        v.tocs(&course("c"), &version("v9")).await.unwrap_err(),
        v.versions(&course("nope")).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}

/// Contract: `courses` lists every course, sorted; each course's current version is its
/// latest publish, a roll-back included.
pub async fn courses_sorted_and_rollbacks_current(f: &dyn ContentFixture) {
    for (c, v, seed) in [("beta", "v1", 4), ("alpha", "v1", 5), ("beta", "v2", 6)] {
        let (m, tocs) = questions(2, seed);
        f.publish(&course(c), &version(v), m, tocs).await;
    }
    let v = f.view();
    let names: Vec<String> = v
        .courses()
        .await
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(
        v.current(&course("beta")).await.unwrap().unwrap().version,
        version("v2")
    );
    // Back to v1: its first manifest again.
    let (m1, tocs1) = questions(2, 4);
    f.publish(&course("beta"), &version("v1"), m1.clone(), tocs1)
        .await;
    assert_eq!(
        v.current(&course("beta")).await.unwrap().unwrap().version,
        version("v1")
    );
    assert_eq!(
        v.manifest(&course("beta"), &version("v1")).await.unwrap(),
        m1
    );
}

/// Contract: `versions` lists every version once, the current one marked, and every
/// listed version's manifest reads.
pub async fn versions_list_each_once(f: &dyn ContentFixture) {
    for (i, name) in ["v1", "v2", "v3"].iter().enumerate() {
        let (m, tocs) = questions(2, 10 + i as u64);
        f.publish(&course("c"), &version(name), m, tocs).await;
    }
    let v = f.view();
    let mut listed: Vec<(String, bool)> = v
        .versions(&course("c"))
        .await
        .unwrap()
        .iter()
        .map(|i| (i.version.to_string(), i.current))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("v1".to_string(), false),
            ("v2".to_string(), false),
            ("v3".to_string(), true)
        ]
    );
    for name in ["v1", "v2", "v3"] {
        v.manifest(&course("c"), &version(name)).await.unwrap();
    }
}

/// Contract: an old version still reads after newer ones are current, with its own
/// manifest and tables of contents (a pinned request, a mount's version directory).
pub async fn old_versions_keep_their_content(f: &dyn ContentFixture) {
    let (m1, t1) = questions(4, 20);
    let (m2, t2) = questions(4, 21);
    f.publish(&course("c"), &version("v1"), m1.clone(), t1.clone())
        .await;
    f.publish(&course("c"), &version("v2"), m2.clone(), t2.clone())
        .await;
    let v = f.view();
    assert_eq!(v.manifest(&course("c"), &version("v1")).await.unwrap(), m1);
    assert_eq!(v.tocs(&course("c"), &version("v1")).await.unwrap(), t1);
    assert_eq!(v.manifest(&course("c"), &version("v2")).await.unwrap(), m2);
    assert_eq!(v.tocs(&course("c"), &version("v2")).await.unwrap(), t2);
}

/// Stamps one `#[tokio::test]` per ContentView check. `$setup` evaluates to an async
/// function (or closure) giving an `Arc` of a fresh, empty [`ContentFixture`].
#[macro_export]
macro_rules! content_tests {
    ($setup:expr) => {
        $crate::content_tests!(@ $setup;
            publish_then_read,
            a_large_manifest_reads_back_whole,
            unknown_things_are_not_found,
            courses_sorted_and_rollbacks_current,
            versions_list_each_once,
            old_versions_keep_their_content,
        );
    };
    (@ $setup:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let setup = $setup;
                let fixture = setup().await;
                $crate::content::$check(&*fixture).await;
            }
        )*
    };
}
