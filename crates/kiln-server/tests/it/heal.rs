//! The cache directory is disposable: a running server heals from its deletion.

use std::path::Path;

use axum::http::StatusCode;

use crate::support::{Env, body_bytes, json};

/// `rm -rf`, also through the read-only directories of extracted chunks.
fn rm_rf(path: &Path) {
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
async fn deleting_the_cache_directory_or_a_chunk_costs_a_fetch_not_an_error() {
    let env = Env::new().await;
    let file = "/v1/courses/demo/files/questions/topic/q1/question.html";
    let ensure = r#"{"chunks":["question:topic/q1","courseInfo"]}"#;
    assert_eq!(env.get(file).await.status(), StatusCode::OK);
    let cache = env.dir.path().join("cache");
    for damage in [
        cache.clone(),
        cache
            .join("courses/demo/.chunks")
            .join(env.q1.entry.id.to_hex()),
        cache.join("courses/demo/v1"),
        cache.join("tmp"),
    ] {
        rm_rf(&damage);
        let resp = env.post_json("/v1/courses/demo/ensure", ensure).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "after deleting {}",
            damage.display()
        );
        let v = json(resp).await;
        let root = Path::new(v["root"].as_str().unwrap());
        assert_eq!(
            std::fs::read_to_string(root.join("questions/topic/q1/question.html")).unwrap(),
            "<p>hello</p>"
        );
        assert!(root.join("infoCourse.json").is_file());
        let id = v["lease"]["id"].as_str().unwrap();
        env.delete(&format!("/v1/leases/{id}")).await;
        let resp = env
            .get("/v1/courses/demo/files/questions/topic/q1/big.bin")
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "after deleting {}",
            damage.display()
        );
        assert_eq!(body_bytes(resp).await.len(), 600_000);
    }
}
