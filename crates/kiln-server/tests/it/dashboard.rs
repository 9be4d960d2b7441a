//! What the dashboard reads and does through the API: who the token is, courses with their
//! versions, manifests and a chunk's files, libraries with their runs, the queue by job type,
//! dead letters and their redrive (admin only), and the page itself.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kiln_core::ids::LibraryName;
use kiln_core::queue::{NewJob, priority};
use kiln_reheat::payload::JobPayload;
use kiln_reheat::{
    BuildContext, Handler, Libraries, Library, LibrarySettings, Reheat, RenderError, Rendered, Work,
};
use kiln_server::auth::{Auth, Scope, Token, hash_token};
use kiln_server::reheat_routes::ReheatState;
use kiln_testkit::mem::ledger::MemLedger;
use kiln_testkit::mem::queue::MemQueue;
use kiln_testkit::mem::render_cache::MemCache;
use serde_json::{Value, json};

use crate::support::{Env, body_bytes};

const READER: &str = "kiln_dash-reader";
const ADMIN: &str = "kiln_dash-admin";

/// Renders every key but those under `bad/`, which it refuses.
#[derive(Debug)]
struct Pages;

#[async_trait]
impl Handler for Pages {
    async fn new_build(&self, _ctx: &BuildContext) -> kiln_core::Result<Vec<Work>> {
        Ok(Vec::new())
    }

    async fn produce(&self, _ctx: &BuildContext, _c: &Value) -> kiln_core::Result<Vec<Work>> {
        Ok(Vec::new())
    }

    async fn render(&self, key: &str, _props: &Value) -> Result<Rendered, RenderError> {
        if key.starts_with("bad/") {
            return Err(RenderError::Fail(format!("no page {key:?}")));
        }
        Ok(Rendered::new(format!("<p>{key}</p>"), "text/html"))
    }
}

struct Dash {
    env: Env,
    reheat: Reheat,
}

async fn dash() -> Dash {
    let mut libs = Libraries::new();
    libs.insert(Library::new(
        LibraryName::new("pages").unwrap(),
        Arc::new(Pages),
        LibrarySettings::default(),
    ))
    .unwrap();
    let reheat = Reheat::new(
        Arc::new(MemLedger::new()),
        Arc::new(MemQueue::new()),
        Arc::new(MemCache::new()),
        libs,
        kiln_core::time::SystemClock::shared(),
    );
    let token = |name: &str, secret: &str, scopes: &[Scope]| Token {
        name: name.into(),
        scopes: scopes.iter().copied().collect(),
        hash: hash_token(secret),
    };
    let auth = Auth::new([
        token("ops-reader", READER, &[Scope::Read]),
        token("ops-admin", ADMIN, &[Scope::Read, Scope::Admin]),
    ])
    .unwrap();
    let mut env = Env::new().await;
    env.state = env
        .state
        .clone()
        .with_reheat(ReheatState::new(reheat.clone()))
        .with_auth(auth);
    Dash { env, reheat }
}

impl Dash {
    async fn call(&self, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if method == "POST" {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        let resp = self.env.send(b.body(Body::from("{}")).unwrap()).await;
        let status = resp.status();
        let body = body_bytes(resp).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn read(&self, uri: &str) -> Value {
        let (status, body) = self.call("GET", uri, Some(READER)).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
        body
    }
}

#[tokio::test]
async fn whoami_names_the_token_and_its_scopes() {
    let d = dash().await;
    let me = d.read("/v1/whoami").await;
    assert_eq!(me["token"], "ops-reader");
    assert_eq!(me["scopes"], json!(["read"]));
    assert_eq!(
        (me["tokens_required"].clone(), me["reheat"].clone()),
        (json!(true), json!(true))
    );
    let (_, admin) = d.call("GET", "/v1/whoami", Some(ADMIN)).await;
    assert_eq!(admin["scopes"], json!(["read", "admin"]));
    let (status, _) = d.call("GET", "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = d.call("GET", "/v1/whoami", Some("kiln_nobody")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn courses_versions_manifests_and_a_chunks_files() {
    let d = dash().await;
    let courses = d.read("/v1/courses").await;
    assert_eq!(
        (
            courses[0]["course"].as_str(),
            courses[0]["version"].as_str()
        ),
        (Some("demo"), Some("v1"))
    );
    assert!(courses[0]["published_at"].as_i64().unwrap() > 0);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    d.env.publish_v2().await;
    let versions = d.read("/v1/courses/demo/versions").await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0]["version"].as_str(),
            versions[0]["current"].as_bool()
        ),
        (Some("v2"), Some(true))
    );
    assert_eq!(versions[1]["version"], "v1");
    assert_eq!(
        versions[0]["shared_bytes"], d.env.info.entry.size,
        "v2 shares only courseInfo with v1"
    );
    assert_eq!(versions[1]["shared_bytes"], 0, "nothing before v1");

    let manifest = d.read("/v1/courses/demo/versions/v1").await;
    let chunks: Vec<&str> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chunk"].as_str().unwrap())
        .collect();
    assert_eq!(chunks, ["question:topic/q1", "courseInfo"]);
    assert_eq!(manifest["chunks"][0]["root"], "questions/topic/q1");

    let files = d
        .read("/v1/courses/demo/versions/v1/files?chunk=question:topic/q1")
        .await;
    let paths: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"questions/topic/q1/question.html"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"questions/topic/q1/clientFilesQuestion/fig.png"),
        "{paths:?}"
    );
    let info = d
        .read("/v1/courses/demo/versions/v1/files?chunk=courseInfo")
        .await;
    assert_eq!(
        info[0]["path"], "infoCourse.json",
        "a gathered chunk's paths are the course's"
    );

    let (status, body) = d
        .call(
            "GET",
            "/v1/courses/demo/versions/v1/files?chunk=nonsense",
            Some(READER),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = d
        .call(
            "GET",
            "/v1/courses/demo/versions/v1/files?chunk=question:nope",
            Some(READER),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = d
        .call("GET", "/v1/courses/nope/versions", Some(READER))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn libraries_runs_the_queue_and_dead_letters() {
    let d = dash().await;
    let libs = d.read("/v1/libraries").await;
    assert_eq!(libs[0]["name"], "pages");
    assert_eq!(libs[0]["last_run"], Value::Null);

    let (status, run) = d
        .call("POST", "/v1/libraries/pages/builds", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let running = d.read("/v1/runs?running=true").await;
    assert_eq!(running[0]["run"], run["run"]);
    let queue = d.read("/v1/queue").await;
    assert_eq!(
        queue["by_type"],
        json!([{"job_type": "new-build", "priority": priority::NEW_BUILD, "waiting": 1, "leased": 0}])
    );

    // A live render the renderer refuses: a dead letter at once.
    let payload = JobPayload::Render {
        library: LibraryName::new("pages").unwrap(),
        run: None,
        generation: 0,
        group: "g".into(),
        key: "bad/page".into(),
        props: json!({}),
    };
    d.reheat
        .queue()
        .enqueue(vec![NewJob {
            payload: payload.encode().unwrap(),
            priority: priority::LIVE,
            not_before: None,
            max_attempts: std::num::NonZeroU32::new(1).unwrap(),
            run: None,
            fence: None,
            dedupe: None,
            throttle: Some("pages".into()),
        }])
        .await
        .unwrap();
    let worker = kiln_reheat::Worker::new(d.reheat.clone(), kiln_reheat::WorkerOptions::default());
    worker.drain().await.unwrap();

    let history = d.read("/v1/libraries/pages/runs").await;
    assert_eq!(history[0]["state"], "complete");
    assert_eq!(
        d.read("/v1/libraries").await[0]["last_run"]["run"],
        run["run"]
    );
    assert_eq!(d.read("/v1/runs?running=true").await, json!([]));
    let dead = d.read("/v1/dead-letters").await;
    assert_eq!(dead[0]["job"], "render \"bad/page\"");
    assert_eq!(dead[0]["library"], "pages");
    assert!(
        dead[0]["error"].as_str().unwrap().contains("no page"),
        "{dead}"
    );
    assert_eq!(d.read("/v1/queue").await["dead"], 1);

    let (status, _) = d
        .call("POST", "/v1/dead-letters/redrive", Some(READER))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a reader may look, not act");
    let (status, done) = d
        .call("POST", "/v1/dead-letters/redrive", Some(ADMIN))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done, json!({"redriven": 1}));
    let queue = d.read("/v1/queue").await;
    assert_eq!(queue["dead"], 0);
    assert_eq!(queue["by_type"][0]["job_type"], "live-render");

    for (body, ok) in [
        (r#"{"ids": [99, 7.0]}"#, true),
        (r#"{"ids": [1.5]}"#, false),
        (r#"{"ids": "x"}"#, false),
    ] {
        let resp = d
            .env
            .send(
                Request::post("/v1/dead-letters/redrive")
                    .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        let want = if ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(resp.status(), want, "{body}");
    }

    let (status, body) = d.call("GET", "/v1/runs?limit=0", Some(READER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = d.call("GET", "/v1/libraries/nope/runs", Some(READER)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = d.call("GET", "/v1/runs/999/throughput", Some(READER)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_page_is_served_without_a_token_under_a_strict_policy() {
    let d = dash().await;
    for (uri, kind) in [
        ("/ui", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let resp = d.env.get(uri).await;
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let h = resp.headers();
        assert!(
            h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind),
            "{uri}"
        );
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    }
    let page = String::from_utf8(body_bytes(d.env.get("/ui").await).await).unwrap();
    assert!(
        page.contains("app.js") && !page.contains("://"),
        "no outside resources"
    );
    assert_eq!(
        d.env.get("/ui/nope.js").await.status(),
        StatusCode::NOT_FOUND
    );
    let (status, _) = d.call("GET", "/v1/queue", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the page is open, its data is not"
    );
}
