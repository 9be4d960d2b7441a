//! Manifests stored as shared segments: a one-question change writes one segment, and a
//! version stored as rows before segments still reads and still keeps its chunks from gc.

use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_postgres::PgCatalog;

fn manifest(n: usize, changed: Option<usize>) -> Manifest {
    Manifest::new(
        (0..n)
            .map(|i| ManifestEntry {
                kind: ChunkKind::Question,
                name: format!("t/q{i:05}"),
                id: ChunkId([if Some(i) == changed { 0xee } else { 1 }; 32]),
                size: i as u64,
                root: format!("questions/t/q{i:05}"),
            })
            .collect(),
    )
    .unwrap()
}

fn new_version(v: &str, m: Manifest) -> NewVersion {
    NewVersion {
        course: CourseId::new("c").unwrap(),
        version: VersionId::new(v).unwrap(),
        manifest: m,
    }
}

async fn count(db: &kiln_postgres::PgDb, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_one_question_change_writes_one_segment() {
    let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let db = crate::fresh_db(&url).await;
    let catalog = PgCatalog::new(db.clone());
    catalog
        .publish(new_version("v1", manifest(3_000, None)))
        .await
        .unwrap();
    let (segments, rows) = (
        count(&db, "manifest_segments").await,
        count(&db, "segment_chunks").await,
    );
    assert!(segments > 5, "{segments} segments");
    assert_eq!(rows, 3_000);
    let m2 = manifest(3_000, Some(1_500));
    catalog
        .publish(new_version("v2", m2.clone()))
        .await
        .unwrap();
    assert_eq!(count(&db, "manifest_segments").await, segments + 1);
    assert!(count(&db, "segment_chunks").await - rows <= 1024);
    let c = CourseId::new("c").unwrap();
    assert_eq!(
        catalog
            .manifest(&c, &VersionId::new("v2").unwrap())
            .await
            .unwrap(),
        m2
    );
    assert!(
        catalog
            .referenced_chunks()
            .await
            .unwrap()
            .contains(&ChunkId([0xee; 32]))
    );
}

#[tokio::test]
async fn a_version_stored_as_rows_before_segments_still_reads() {
    let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let db = crate::fresh_db(&url).await;
    let catalog = PgCatalog::new(db.clone());
    let m = manifest(3, None);
    catalog.publish(new_version("v1", m.clone())).await.unwrap();
    // The form a version published before segments has: entry rows, no segment list.
    sqlx::query(
        "INSERT INTO manifest_entries (course, version, kind, name, chunk_id, size, root) \
         SELECT 'c', 'v1', 'question', 't/q' || lpad(g::text, 5, '0'), \
                decode(repeat('01', 32), 'hex'), g, 'questions/t/q' || lpad(g::text, 5, '0') \
         FROM generate_series(0, 2) g",
    )
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE versions SET segments = NULL")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM segment_chunks")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM manifest_segments")
        .execute(db.pool())
        .await
        .unwrap();
    let c = CourseId::new("c").unwrap();
    assert_eq!(
        catalog
            .manifest(&c, &VersionId::new("v1").unwrap())
            .await
            .unwrap(),
        m
    );
    assert!(
        catalog
            .referenced_chunks()
            .await
            .unwrap()
            .contains(&ChunkId([1; 32]))
    );
    let (marked, _) = catalog
        .gc_mark(
            "gc",
            &[ChunkId([1; 32])],
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(marked.is_empty(), "a referenced chunk is never marked");
}
