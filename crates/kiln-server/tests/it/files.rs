//! Files: content types, ETags, caching headers, byte ranges, streaming, and path traversal.

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
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=5");
    assert_eq!(h["x-kiln-version"], "v1");
    // A course file is anything a course's repository holds: it never runs on kiln's origin.
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
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
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/json; charset=utf-8"
    );
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

async fn get_with(env: &Env, uri: &str, headers: &[(&str, &str)]) -> axum::http::Response<Body> {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    env.send(b.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn one_byte_range_of_a_small_or_a_streamed_file() {
    let env = Env::new().await;
    let small = "/v1/courses/demo/files/questions/topic/q1/question.html"; // <p>hello</p>
    let big = "/v1/courses/demo/files/questions/topic/q1/big.bin"; // 600000 bytes of 7
    for (uri, range, want_range, want) in [
        (small, "bytes=3-7", "bytes 3-7/12", b"hello".to_vec()),
        (small, "bytes=-4", "bytes 8-11/12", b"</p>".to_vec()),
        (small, "bytes=9-", "bytes 9-11/12", b"/p>".to_vec()),
        (
            small,
            "bytes=0-999",
            "bytes 0-11/12",
            b"<p>hello</p>".to_vec(),
        ),
        (
            big,
            "bytes=599990-",
            "bytes 599990-599999/600000",
            vec![7u8; 10],
        ),
        (
            big,
            "bytes=100000-165535",
            "bytes 100000-165535/600000",
            vec![7u8; 65536],
        ),
    ] {
        let resp = get_with(&env, uri, &[("range", range)]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{uri} {range}");
        assert_eq!(resp.headers()[header::CONTENT_RANGE], want_range, "{range}");
        let len = resp.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(len, want.len().to_string(), "{range}");
        assert_eq!(body_bytes(resp).await, want, "{uri} {range}");
    }

    // Past the end: 416 with the length; not understood or several ranges: the whole file.
    let resp = get_with(&env, small, &[("range", "bytes=12-")]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */12");
    assert_eq!(json(resp).await["error"], "range_not_satisfiable");
    for ignored in ["items=0-1", "bytes=5-2", "bytes=0-1,4-5"] {
        let resp = get_with(&env, small, &[("range", ignored)]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{ignored}");
        assert_eq!(body_bytes(resp).await, b"<p>hello</p>", "{ignored}");
    }

    // If-Range: the range only while the client's copy is these bytes.
    let etag = env.get(small).await.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_string();
    let resp = get_with(&env, small, &[("range", "bytes=0-2"), ("if-range", &etag)]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_bytes(resp).await, b"<p>");
    let resp = get_with(
        &env,
        small,
        &[("range", "bytes=0-2"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_bytes(resp).await, b"<p>hello</p>");
}
