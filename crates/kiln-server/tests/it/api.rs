//! Courses, ensure, errors, health and metrics.

use axum::http::StatusCode;

use crate::support::{Env, json};

#[tokio::test]
async fn a_course_shows_its_current_version() {
    let env = Env::new().await;
    let resp = env.get("/v1/courses/demo").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = json(resp).await;
    assert_eq!(v["version"], "v1");
    assert_eq!(v["chunks"], 2);
    assert_eq!(v["kinds"]["question"], 1);
    assert_eq!(v["bytes"], env.q1.entry.size + env.info.entry.size);
}

#[tokio::test]
async fn ensure_returns_the_version_directory() {
    let env = Env::new().await;
    let resp = env
        .post_json(
            "/v1/courses/demo/ensure",
            r#"{"chunks":["question:topic/q1","courseInfo"]}"#,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = json(resp).await;
    assert_eq!(v["version"], "v1");
    assert_eq!(
        v["downloaded"],
        serde_json::json!(["question:topic/q1", "courseInfo"])
    );
    let root = std::path::PathBuf::from(v["root"].as_str().unwrap());
    let html = std::fs::read_to_string(root.join("questions/topic/q1/question.html")).unwrap();
    assert_eq!(html, "<p>hello</p>");
    assert!(root.join("infoCourse.json").exists());
    assert_eq!(
        v["paths"][0].as_str().unwrap(),
        root.join("questions/topic/q1").to_str().unwrap()
    );

    // Again: nothing downloaded. A pinned version works too.
    let v = json(
        env.post_json(
            "/v1/courses/demo/ensure",
            r#"{"chunks":["question:topic/q1"],"version":"v1"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(v["downloaded"], serde_json::json!([]));
    assert_eq!(v["absent"], serde_json::json!([]));
}

#[tokio::test]
async fn chunks_the_course_lacks_are_absent_not_a_404() {
    let env = Env::new().await;
    // The course has a question and courseInfo, none of the shared directories.
    let resp = env
        .post_json(
            "/v1/courses/demo/ensure",
            r#"{"chunks":["elements","elementExtensions","question:topic/q1",
                "clientFilesCourse","serverFilesCourse","courseInfo",
                "clientFilesAssessment:Sp25/hw1"]}"#,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = json(resp).await;
    assert_eq!(
        v["absent"],
        serde_json::json!([
            "elements",
            "elementExtensions",
            "clientFilesCourse",
            "serverFilesCourse",
            "clientFilesAssessment:Sp25/hw1"
        ])
    );
    assert_eq!(
        v["downloaded"],
        serde_json::json!(["question:topic/q1", "courseInfo"])
    );
    let root = std::path::PathBuf::from(v["root"].as_str().unwrap());
    assert_eq!(
        v["paths"],
        serde_json::json!([
            root.join("questions/topic/q1").to_str().unwrap(),
            root.join(".kiln/courseInfo").to_str().unwrap()
        ])
    );
    assert!(root.join("questions/topic/q1/question.html").is_file());
    assert!(root.join("infoCourse.json").is_file());
    assert!(!root.join("elementExtensions").exists());
    assert!(v["lease"]["id"].is_string(), "{v}");

    // A question the version lacks is still a 404 for the whole call.
    let resp = env
        .post_json(
            "/v1/courses/demo/ensure",
            r#"{"chunks":["elementExtensions","question:topic/q1","question:topic/gone"]}"#,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let v = json(resp).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("question:topic/gone"),
        "{v}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_json_400_naming_the_culprit() {
    let env = Env::new().await;
    for (body, needle) in [
        (r#"{"chunks":["nokind:x"]}"#, "nokind"),
        (r#"{"chunks":["elements:x"]}"#, "course-wide"),
        (r#"{"chunks":["question"]}"#, "needs a name"),
        (r#"{"chunks":[]}"#, "chunks is empty"),
        (r#"{"chunks":"question:q1"}"#, "invalid ensure request body"),
        (r#"not json"#, "invalid ensure request body"),
        (
            r#"{"chunks":["question:topic/q1"],"version":"../x"}"#,
            "version id",
        ),
        (r#"{"chunks":["question:topic/q1"],"extra":1}"#, "extra"),
    ] {
        let resp = env.post_json("/v1/courses/demo/ensure", body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let v = json(resp).await;
        assert_eq!(v["error"], "invalid_input", "{body}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let resp = env.get("/v1/courses/.hidden").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("course id")
    );
}

#[tokio::test]
async fn unknown_things_are_json_404s() {
    let env = Env::new().await;
    for (resp, needle) in [
        (env.get("/v1/courses/nope").await, "\"nope\""),
        (
            env.post_json("/v1/courses/demo/ensure", r#"{"chunks":["question:zz"]}"#)
                .await,
            "question:zz",
        ),
        (env.get("/v1/nothing/here").await, "/v1/nothing/here"),
    ] {
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let v = json(resp).await;
        assert_eq!(v["error"], "not_found");
        assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
    }
}

#[tokio::test]
async fn store_failures_are_503_and_corruption_is_a_generic_500() {
    let env = Env::new().await;
    for _ in 0..5 {
        env.store
            .push_fault(kiln_testkit::store::StoreFault::Transient);
    }
    let resp = env
        .post_json("/v1/courses/demo/ensure", r#"{"chunks":["courseInfo"]}"#)
        .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(resp).await["error"], "unavailable");

    env.store
        .push_fault(kiln_testkit::store::StoreFault::Corrupt);
    env.store
        .push_fault(kiln_testkit::store::StoreFault::Corrupt);
    let resp = env
        .get("/v1/courses/demo/files/questions/topic/q1/info.json")
        .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let v = json(resp).await;
    assert_eq!(v["error"], "internal");
    assert_eq!(v["message"], "internal error");
}

#[tokio::test]
async fn health_and_metrics() {
    let env = Env::new().await;
    assert_eq!(env.get("/healthz").await.status(), StatusCode::OK);
    env.get("/v1/courses/demo/files/questions/topic/q1/info.json")
        .await;
    env.get("/v1/courses/demo/files/questions/topic/q1/info.json")
        .await;
    let resp = env.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(crate::support::body_bytes(resp).await).unwrap();
    for needle in [
        "kiln_load_downloads_total 1",
        "kiln_load_hits_total 1",
        "kiln_load_misses_total 1",
        "kiln_load_evictions_total 0",
        "kiln_load_errors_total 0",
        "kiln_load_ensure_duration_seconds_count 2",
        "kiln_load_download_duration_seconds_bucket{le=\"+Inf\"} 1",
        "kiln_http_requests_total{route=\"/v1/courses/{course}/files/{*path}\",status=\"200\"} 2",
        "kiln_http_request_duration_seconds_count{route=\"/v1/courses/{course}/files/{*path}\"} 2",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(text.contains("kiln_load_bytes_downloaded_total"));
}

#[tokio::test]
async fn a_wrong_method_and_a_body_too_large_are_json_errors() {
    let env = Env::new().await;
    let resp = env
        .send(
            axum::http::Request::delete("/v1/courses/demo")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().contains_key("allow"));
    let v = json(resp).await;
    assert_eq!(v["error"], "method_not_allowed");
    assert!(v["message"].as_str().unwrap().contains("DELETE"), "{v}");

    let huge = format!(r#"{{"chunks":["{}"]}}"#, "x".repeat(3 << 20));
    let resp = env.post_json("/v1/courses/demo/ensure", &huge).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v = json(resp).await;
    assert_eq!(v["error"], "payload_too_large");
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
}
