//! The render cache as a service: PUT/GET/DELETE with metadata, TTL and ETags, render with
//! props (single-flight), a refusing renderer as a remembered 502, listings with cursors
//! and counts, soft invalidation, and the seed's new-build body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kiln_core::ids::LibraryName;
use kiln_core::queue::JobQueue;
use kiln_reheat::{
    BuildContext, Handler, Libraries, Library, LibrarySettings, Reheat, RenderError, Rendered, Work,
};
use kiln_server::reheat_routes::ReheatState;
use kiln_testkit::clock::ManualClock;
use kiln_testkit::mem::ledger::MemLedger;
use kiln_testkit::mem::queue::MemQueue;
use kiln_testkit::mem::render_cache::MemCache;
use serde_json::Value;

use crate::support::{Env, body_bytes, json};

/// Renders `<p>KEY PROPS</p>`; refuses keys under `bad/` (a 4xx, as a renderer would) and
/// counts every render.
#[derive(Debug, Default)]
struct Echo {
    renders: AtomicUsize,
}

#[async_trait]
impl Handler for Echo {
    async fn new_build(&self, _ctx: &BuildContext) -> kiln_core::Result<Vec<Work>> {
        Ok(Vec::new())
    }

    async fn produce(&self, _ctx: &BuildContext, _c: &Value) -> kiln_core::Result<Vec<Work>> {
        Ok(Vec::new())
    }

    async fn render(&self, key: &str, props: &Value) -> Result<Rendered, RenderError> {
        self.renders.fetch_add(1, Ordering::SeqCst);
        // Long enough for concurrent askers to meet in one flight.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if key.starts_with("bad/") {
            return Err(RenderError::Fail(format!(
                "renderer answered 422 for {key:?}: no such page"
            )));
        }
        let mut r = Rendered::new(format!("<p>{key} {props}</p>"), "text/html; charset=utf-8");
        r.meta.insert("assets".into(), "[\"a.css\"]".into());
        Ok(r)
    }
}

struct Cache {
    env: Env,
    echo: Arc<Echo>,
    clock: ManualClock,
    queue: Arc<MemQueue>,
    reheat: Reheat,
}

async fn cache(render_through: bool) -> Cache {
    cache_with(LibrarySettings {
        render_through,
        failure_ttl: Duration::from_secs(30),
        max_render_bytes: 1000,
        ..LibrarySettings::default()
    })
    .await
}

async fn cache_with(settings: LibrarySettings) -> Cache {
    let clock = ManualClock::new();
    let echo = Arc::new(Echo::default());
    let mut libs = Libraries::new();
    libs.insert(Library::new(
        LibraryName::new("pages").unwrap(),
        echo.clone(),
        settings,
    ))
    .unwrap();
    let queue = Arc::new(MemQueue::new().with_clock(clock.shared()));
    let reheat = Reheat::new(
        Arc::new(MemLedger::new().with_clock(clock.shared())),
        queue.clone(),
        Arc::new(MemCache::new().with_clock(clock.shared())),
        libs,
        clock.shared(),
    );
    let mut env = Env::new().await;
    env.state = env
        .state
        .clone()
        .with_reheat(ReheatState::new(reheat.clone()));
    Cache {
        env,
        echo,
        clock,
        queue,
        reheat,
    }
}

async fn send_put(
    c: &Cache,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> axum::http::Response<Body> {
    let mut req = Request::put(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    c.env
        .send(req.body(Body::from(body.to_string())).unwrap())
        .await
}

fn header<'a>(resp: &'a axum::http::Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn put_then_get_returns_bytes_type_group_metadata_and_an_etag() {
    let c = cache(false).await;
    let resp = send_put(
        &c,
        "/v1/cache/pages/guides/intro",
        "<h1>Intro</h1>",
        &[
            ("content-type", "text/html; charset=utf-8"),
            ("x-kiln-group", "course-7"),
            ("x-kiln-meta-assets", "[\"main.css\",\"app.js\"]"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let put_tag = header(&resp, "etag").unwrap().to_string();
    let view = json(resp).await;
    assert_eq!(view["group"], "course-7");
    assert_eq!(view["size"], 14);
    assert_eq!(view["stale"], false);

    let resp = c.env.get("/v1/cache/pages/guides/intro").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&resp, "x-kiln-group"), Some("course-7"));
    assert_eq!(
        header(&resp, "x-kiln-meta-assets"),
        Some("[\"main.css\",\"app.js\"]")
    );
    assert_eq!(header(&resp, "cache-control"), Some("no-cache"));
    assert_eq!(header(&resp, "etag"), Some(put_tag.as_str()));
    assert_eq!(header(&resp, "x-kiln-stale"), None);
    assert_eq!(body_bytes(resp).await, b"<h1>Intro</h1>");

    // The same ETag is a 304 without a body; another one, or `*` on a missing key, is not.
    let cond = |tag: &str| {
        Request::get("/v1/cache/pages/guides/intro")
            .header("if-none-match", tag)
            .body(Body::empty())
            .unwrap()
    };
    let resp = c.env.send(cond(&format!("\"x\", {put_tag}"))).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&resp, "etag"), Some(put_tag.as_str()));
    assert!(body_bytes(resp).await.is_empty());
    assert_eq!(c.env.send(cond("\"other\"")).await.status(), StatusCode::OK);

    // A rewrite changes the ETag.
    send_put(&c, "/v1/cache/pages/guides/intro", "<h1>Intro 2</h1>", &[]).await;
    let resp = c.env.send(cond(&put_tag)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        header(&resp, "x-kiln-meta-assets"),
        None,
        "a rewrite replaces metadata"
    );
}

#[tokio::test]
async fn a_ttl_sets_max_age_and_the_entry_expires() {
    let c = cache(false).await;
    let resp = send_put(&c, "/v1/cache/pages/k", "v", &[("x-kiln-ttl", "60")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c.env.get("/v1/cache/pages/k").await;
    assert_eq!(header(&resp, "cache-control"), Some("max-age=60"));
    c.clock.advance(Duration::from_secs(45));
    let resp = c.env.get("/v1/cache/pages/k").await;
    assert_eq!(header(&resp, "cache-control"), Some("max-age=15"));
    c.clock.advance(Duration::from_secs(16));
    assert_eq!(
        c.env.get("/v1/cache/pages/k").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_writes_are_refused_naming_the_culprit_and_store_nothing() {
    let c = cache(false).await;
    for (headers, needle) in [
        (vec![("x-kiln-ttl", "0")], "x-kiln-ttl"),
        (vec![("x-kiln-ttl", "soon")], "x-kiln-ttl"),
        (vec![("x-kiln-meta-", "v")], "metadata name"),
    ] {
        let resp = send_put(&c, "/v1/cache/pages/k", "v", &headers).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let body = json(resp).await;
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
    let big = "x".repeat(1001);
    let resp = send_put(&c, "/v1/cache/pages/k", &big, &[]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("max_render_bytes")
    );
    let resp = send_put(&c, "/v1/cache/nolib/k", "v", &[]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("nolib")
    );
    assert_eq!(
        c.env.get("/v1/cache/pages/k").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_removes_one_key() {
    let c = cache(false).await;
    send_put(&c, "/v1/cache/pages/a", "1", &[]).await;
    send_put(&c, "/v1/cache/pages/b", "2", &[]).await;
    assert_eq!(
        c.env.delete("/v1/cache/pages/a").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.env.delete("/v1/cache/pages/a").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.env.get("/v1/cache/pages/a").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.env.get("/v1/cache/pages/b").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn render_with_props_renders_once_for_concurrent_askers_and_stores() {
    let c = cache(false).await;
    let ask = || {
        c.env.send(
            Request::post("/v1/cache/pages/cards/7/render?group=deck")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"title":"Seven"}"#))
                .unwrap(),
        )
    };
    let (a, b, d) = tokio::join!(ask(), ask(), ask());
    for resp in [a, b, d] {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "x-kiln-group"), Some("deck"));
        assert_eq!(header(&resp, "x-kiln-meta-assets"), Some("[\"a.css\"]"));
        assert_eq!(
            body_bytes(resp).await,
            br#"<p>cards/7 {"title":"Seven"}</p>"#
        );
    }
    assert_eq!(
        c.echo.renders.load(Ordering::SeqCst),
        1,
        "one render for three askers"
    );
    let resp = c.env.get("/v1/cache/pages/cards/7").await;
    assert_eq!(
        body_bytes(resp).await,
        br#"<p>cards/7 {"title":"Seven"}</p>"#
    );
    // POST without the /render suffix is no route.
    let resp = c.env.post_json("/v1/cache/pages/cards/7", "{}").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refused_render_is_a_502_with_its_message_and_is_remembered() {
    let c = cache(true).await;
    let resp = c.env.get("/v1/cache/pages/bad/page").await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = json(resp).await;
    assert_eq!(body["error"], "upstream");
    assert!(
        body["message"].as_str().unwrap().contains("no such page"),
        "{body}"
    );
    for _ in 0..5 {
        assert_eq!(
            c.env.get("/v1/cache/pages/bad/page").await.status(),
            StatusCode::BAD_GATEWAY
        );
    }
    assert_eq!(
        c.echo.renders.load(Ordering::SeqCst),
        1,
        "the refusal is remembered"
    );
    c.clock.advance(Duration::from_secs(31));
    assert_eq!(
        c.env.get("/v1/cache/pages/bad/page").await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        c.echo.renders.load(Ordering::SeqCst),
        2,
        "asked again after failure_ttl"
    );
    // A write of the key replaces the refusal.
    send_put(&c, "/v1/cache/pages/bad/page", "fixed", &[]).await;
    let resp = c.env.get("/v1/cache/pages/bad/page").await;
    assert_eq!(body_bytes(resp).await, b"fixed");
    // An explicit render that is refused is a 502 too.
    let resp = c
        .env
        .post_json("/v1/cache/pages/bad/other/render", "{}")
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn listings_page_with_a_cursor_and_count_groups() {
    let c = cache(false).await;
    for i in 0..12 {
        let group = if i < 8 { "big" } else { "small" };
        send_put(
            &c,
            &format!("/v1/cache/pages/p/{i:02}"),
            "x",
            &[("x-kiln-group", group)],
        )
        .await;
    }
    send_put(&c, "/v1/cache/pages/q/1", "x", &[]).await;
    let first = json(c.env.get("/v1/cache/pages?prefix=p/&limit=5").await).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 5);
    assert_eq!(first["items"][0]["key"], "p/00");
    assert_eq!(
        first["groups"],
        serde_json::json!([{"group": "", "count": 1}, {"group": "big", "count": 8}, {"group": "small", "count": 4}])
    );
    let mut keys: Vec<String> = Vec::new();
    let mut uri = "/v1/cache/pages?prefix=p/&limit=5".to_string();
    loop {
        let page = json(c.env.get(&uri).await).await;
        if uri.contains("cursor=") {
            assert!(page["groups"].is_null(), "counts on the first page only");
        }
        keys.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(n) => {
                uri = format!(
                    "/v1/cache/pages?prefix=p/&limit=5&cursor={}",
                    n.replace('/', "%2F")
                );
            }
            None => break,
        }
    }
    let want: Vec<String> = (0..12).map(|i| format!("p/{i:02}")).collect();
    assert_eq!(keys, want);
    let small = json(c.env.get("/v1/cache/pages?group=small").await).await;
    assert_eq!(small["items"].as_array().unwrap().len(), 4);
    assert!(small["next"].is_null());
    let resp = c.env.get("/v1/cache/pages?limit=0").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("limit")
    );
}

#[tokio::test]
async fn invalidated_keys_stay_readable_marked_stale_until_re_rendered() {
    let c = cache(false).await;
    send_put(&c, "/v1/cache/pages/a", "old a", &[("x-kiln-group", "g")]).await;
    send_put(&c, "/v1/cache/pages/b", "old b", &[("x-kiln-group", "g")]).await;
    let resp = c
        .env
        .post_json(
            "/v1/libraries/pages/invalidate",
            r#"{"keys":["a","missing"]}"#,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let done = json(resp).await;
    assert_eq!(done["marked"], 1);
    assert_eq!(
        done["queued"], 2,
        "a missing key is rendered too (a targeted reheat)"
    );
    assert!(done["run"].is_null());

    let resp = c.env.get("/v1/cache/pages/a").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "x-kiln-stale"), Some("true"));
    assert_eq!(header(&resp, "cache-control"), Some("no-cache"));
    assert_eq!(body_bytes(resp).await, b"old a");
    let resp = c.env.get("/v1/cache/pages/b").await;
    assert_eq!(header(&resp, "x-kiln-stale"), None);

    // The re-renders are queued at live priority, in the stored entry's group.
    assert_eq!(c.queue.pending().await.unwrap(), 2);
    let worker = kiln_reheat::Worker::new(c.reheat.clone(), kiln_reheat::WorkerOptions::default());
    worker.drain().await.unwrap();
    assert_eq!(c.queue.pending().await.unwrap(), 0);
    let resp = c.env.get("/v1/cache/pages/a").await;
    assert_eq!(
        header(&resp, "x-kiln-stale"),
        None,
        "the re-render replaced it"
    );
    assert_eq!(header(&resp, "x-kiln-group"), Some("g"));
    assert_eq!(body_bytes(resp).await, b"<p>a null</p>");

    for bad in [
        "",
        "{}",
        r#"{"keys":["a"],"group":"g"}"#,
        r#"{"all":false}"#,
        r#"{"keys":"a"}"#,
    ] {
        let resp = c.env.post_json("/v1/libraries/pages/invalidate", bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn invalidating_a_group_marks_it_and_starts_a_group_run() {
    let c = cache(false).await;
    send_put(&c, "/v1/cache/pages/a", "a", &[("x-kiln-group", "g")]).await;
    send_put(&c, "/v1/cache/pages/b", "b", &[("x-kiln-group", "h")]).await;
    let done = json(
        c.env
            .post_json("/v1/libraries/pages/invalidate", r#"{"group":"g"}"#)
            .await,
    )
    .await;
    assert_eq!(done["marked"], 1);
    assert_eq!(done["run"]["group"], "g");
    assert_eq!(done["run"]["state"], "running");
    let all = json(
        c.env
            .post_json("/v1/libraries/pages/invalidate", r#"{"all":true}"#)
            .await,
    )
    .await;
    assert_eq!(all["marked"], 2);
    assert!(all["run"]["group"].is_null());
}

#[tokio::test]
async fn the_seeds_new_build_body_starts_a_build_labelled_by_its_commit() {
    let c = cache(false).await;
    let resp = c
        .env
        .post_json(
            "/v1/libraries/pages/builds",
            r#"{"builtAt":"2026-12-01T10:00:00Z","commitHash":"9f3c2a1","branch":"main"}"#,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let run = json(resp).await;
    assert_eq!(run["build"], "9f3c2a1");
    let resp = c
        .env
        .post_json(
            "/v1/libraries/pages/builds",
            r#"{"build":"b2","commitHash":"9f3c2a1"}"#,
        )
        .await;
    assert_eq!(
        json(resp).await["build"],
        "b2",
        "build wins over commitHash"
    );
}

#[tokio::test]
async fn cancel_drops_the_runs_jobs_prunes_nothing_and_clears_its_marks() {
    let c = cache_with(LibrarySettings {
        prune: kiln_reheat::Prune::Ttl(Duration::from_secs(3600)),
        ..LibrarySettings::default()
    })
    .await;
    send_put(&c, "/v1/cache/pages/a", "old", &[("x-kiln-ttl", "600")]).await;
    send_put(&c, "/v1/cache/pages/b", "old", &[]).await;
    let run = json(c.env.post_json("/v1/libraries/pages/builds", "{}").await).await;
    let id = run["run"].as_i64().unwrap();
    // The run marked the older entries to expire an hour after its start.
    let resp = c.env.get("/v1/cache/pages/b").await;
    assert_eq!(header(&resp, "cache-control"), Some("max-age=3600"));

    let resp = c.env.post_json(&format!("/v1/runs/{id}/cancel"), "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let done = json(resp).await;
    assert_eq!(done["state"], "cancelled");
    assert_eq!(
        done["jobs_dropped"], 1,
        "its new-build job was dropped: {done}"
    );
    assert_eq!(c.queue.pending().await.unwrap(), 0);
    let resp = c.env.get("/v1/cache/pages/b").await;
    assert_eq!(
        header(&resp, "cache-control"),
        Some("no-cache"),
        "its mark is cleared"
    );
    let resp = c.env.get("/v1/cache/pages/a").await;
    assert_eq!(
        header(&resp, "cache-control"),
        Some("no-cache"),
        "the run's mark replaced a's own"
    );
    c.clock.advance(Duration::from_secs(7200));
    assert_eq!(
        c.env.get("/v1/cache/pages/b").await.status(),
        StatusCode::OK,
        "nothing pruned"
    );

    let again = c.env.post_json(&format!("/v1/runs/{id}/cancel"), "").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        json(again).await["message"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    let resp = c.env.post_json("/v1/runs/999/cancel", "").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A later build is not touched by the cancelled run's fence.
    let next = json(c.env.post_json("/v1/libraries/pages/builds", "{}").await).await;
    assert_eq!(next["state"], "running");
    assert_eq!(c.queue.pending().await.unwrap(), 1);
}

#[tokio::test]
async fn an_entry_is_served_sandboxed_whatever_type_it_was_stored_with() {
    // A renderer's (or a `write` client's) HTML or SVG would otherwise run its scripts on
    // kiln's origin.
    let c = cache(false).await;
    for (key, ct) in [
        ("evil/html", "text/html"),
        ("evil/svg", "image/svg+xml"),
        ("evil/plain", "text/plain"),
    ] {
        let body = "<script>fetch('/v1/libraries/pages/pause',{method:'POST'})</script>";
        let uri = format!("/v1/cache/pages/{key}");
        let put = send_put(&c, &uri, body, &[("content-type", ct)]).await;
        assert_eq!(put.status(), StatusCode::OK);
        let resp = c.env.get(&format!("/v1/cache/pages/{key}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-type"), Some(ct));
        assert_eq!(
            header(&resp, "content-security-policy"),
            Some("sandbox"),
            "{key}"
        );
        assert_eq!(
            header(&resp, "x-content-type-options"),
            Some("nosniff"),
            "{key}"
        );
    }
}
