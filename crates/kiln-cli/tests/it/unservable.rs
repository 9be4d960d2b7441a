//! A version published before sync refused paths no server can lay out (here a name of 256
//! bytes, written into the store and the catalog directly): `kiln verify` flags it, naming
//! the version and the path, and `kiln serve` answers an ensure of its chunk with an error
//! naming the chunk and the disk's cause rather than a bare 500 "internal error".

use std::sync::Arc;

use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ids::{ChunkKind, CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_testkit::chunks::{BundleBuilder, TestChunk};
use object_store::ObjectStore;

use crate::support::{json, kiln, start_server, synced_example};

/// Publishes the synced course `demo` again as version `unservable1`, with one more
/// question whose bundle holds a 256-byte name; returns that question's chunk.
fn publish_unservable(data: &std::path::Path) -> TestChunk {
    let long = BundleBuilder::new()
        .file("info.json", "{\"uuid\":\"long\"}")
        .file(&format!("{}.txt", "n".repeat(252)), "x")
        .build(
            ChunkKind::Question,
            "algebra/long",
            "questions/algebra/long",
        );
    let chunk = long.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let catalog = kiln_sqlite::DataDir::new(data).catalog().await.unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(data.join("objects")).unwrap(),
        );
        long.put(&*store).await.unwrap();
        catalog
            .put_tocs(&[(long.entry.id, long.toc.clone())])
            .await
            .unwrap();
        let course = CourseId::new("demo").unwrap();
        let current = catalog.current(&course).await.unwrap().unwrap();
        let mut entries = catalog
            .manifest(&course, &current.version)
            .await
            .unwrap()
            .entries()
            .to_vec();
        entries.push(long.entry.clone());
        kiln_publish::writer::publish(
            &catalog,
            &store,
            "test",
            NewVersion {
                course,
                version: VersionId::new("unservable1").unwrap(),
                manifest: Manifest::new(entries).unwrap(),
            },
            None,
        )
        .await
        .unwrap();
    });
    chunk
}

#[test]
fn verify_flags_a_version_with_a_name_no_file_system_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synced_example(tmp.path());
    publish_unservable(&data);
    let out = kiln(&data)
        .args(["--json", "verify", "demo"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "verify must fail");
    let report = json(&out);
    let bad = &report["unservable"][0];
    assert_eq!(bad["version"], "unservable1", "{report}");
    let path = bad["path"].as_str().unwrap_or_default();
    assert!(path.starts_with("questions/algebra/long/nnn"), "{report}");
    assert!(
        bad["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("256 bytes"),
        "{report}"
    );
    let text = kiln(&data).args(["verify", "demo"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("unservable1") && stdout.contains("questions/algebra/long/nnn"),
        "{stdout}"
    );
}

#[test]
fn an_ensure_that_fails_on_the_disk_names_the_chunk_and_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synced_example(tmp.path());
    let long = publish_unservable(&data);
    let (_server, base) = start_server(&mut kiln(&data), Some(&tmp.path().join("cache")));
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{base}/v1/courses/demo/ensure"))
        .header("content-type", "application/json")
        .body(r#"{"chunks": ["question:algebra/long"], "version": "unservable1"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "disk", "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    for part in [
        "question:algebra/long",
        long.entry.id.to_hex().as_str(),
        "File name too long",
    ] {
        assert!(msg.contains(part), "{msg:?} should name {part:?}");
    }
    // The rest of the version still loads.
    let r = client
        .post(format!("{base}/v1/courses/demo/ensure"))
        .header("content-type", "application/json")
        .body(r#"{"chunks": ["question:algebra/linear"], "version": "unservable1"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}
