//! Files: content types, ETags, caching headers, streaming, and path traversal.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::support::{Env, body_bytes, json};

#[tokio::test]
async fn a_file_has_a_type_an_etag_and_a_short_cache_life() {
    let env = Env::new().await;
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/question.html")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "text/html");
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=5");
    assert_eq!(h["x-kiln-version"], "v1");
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    assert!(
        etag.starts_with(&format!("\"{}", &env.q1.entry.id.to_hex()[..32])),
        "{etag}"
    );
    assert_eq!(body_bytes(resp).await, b"<p>hello</p>");

    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/clientFilesQuestion/fig.png")
        .await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "image/png");
    assert_ne!(
        resp.headers()[header::ETAG].to_str().unwrap(),
        etag,
        "per-path etags"
    );

    // 304 on a matching If-None-Match.
    let req = Request::get("/v1/courses/demo/files/questions/topic/q1/question.html")
        .header(header::IF_NONE_MATCH, format!("\"other\", {etag}"))
        .body(Body::empty())
        .unwrap();
    let resp = env.send(req).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()[header::ETAG].to_str().unwrap(), etag);
    assert!(body_bytes(resp).await.is_empty());
}

#[tokio::test]
async fn a_pinned_version_is_immutable_and_stays_put() {
    let env = Env::new().await;
    env.publish_v2().await;
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/question.html?version=v1")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(body_bytes(resp).await, b"<p>hello</p>");
    // The current version (v2) has no question.html.
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/question.html")
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/info.json")
        .await;
    assert_eq!(resp.headers()["x-kiln-version"], "v2");
    let resp = env
        .get("/v1/courses/demo/files/infoCourse.json?version=bad/../v")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn big_files_stream_and_gathered_files_resolve() {
    let env = Env::new().await;
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/big.bin")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_LENGTH], "600000");
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let body = body_bytes(resp).await;
    assert_eq!(body.len(), 600_000);
    assert!(body.iter().all(|b| *b == 7));
    let resp = env.get("/v1/courses/demo/files/infoCourse.json").await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(body_bytes(resp).await, b"{\"name\":\"demo\"}");
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/alias.html")
        .await;
    assert_eq!(body_bytes(resp).await, b"<p>hello</p>");
}

#[tokio::test]
async fn path_traversal_in_every_form_is_refused() {
    let env = Env::new().await;
    let secret = env.dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let base = "/v1/courses/demo/files/";
    for p in [
        "../../../../etc/passwd",
        "questions/topic/q1/../../../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "questions/topic/q1/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "questions\\topic\\q1\\info.json",
        "questions%5Ctopic%5Cq1%5Cinfo.json",
        "questions/topic/q1/info.json%00",
        "questions/topic/q1/info.json%00.png",
        "questions//topic/q1/info.json",
        "./infoCourse.json",
        "%ff%fe",
    ] {
        let resp = env.get(&format!("{base}{p}")).await;
        let status = resp.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{p}: {status}"
        );
        let body = body_bytes(resp).await;
        assert!(
            !String::from_utf8_lossy(&body).contains("TOP-SECRET"),
            "{p}"
        );
        if status == StatusCode::BAD_REQUEST {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"], "invalid_input", "{p}");
        }
    }
    // A symlink planted inside an extracted chunk that points out of it.
    let resp = env
        .get(&format!("{base}questions/topic/q1/info.json"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let chunk = env
        .dir
        .path()
        .join("cache/courses/demo/.chunks")
        .join(env.q1.entry.id.to_hex());
    let mut perms = std::fs::metadata(&chunk).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&chunk, perms).unwrap();
    std::os::unix::fs::symlink(&secret, chunk.join("planted.txt")).unwrap();
    let resp = env
        .get(&format!("{base}questions/topic/q1/planted.txt"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(resp).await["error"], "not_found");
}
