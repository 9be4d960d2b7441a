//! Tokens and scopes: every route checks its scope, refusals are JSON 401/403 with a
//! `WWW-Authenticate` challenge, and a POST that a web page could send cross-site is refused.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kiln_server::auth::{Auth, Scope, Token, hash_token};

use crate::support::{Env, json};

const READER: &str = "kiln_reader-secret";
const ENSURER: &str = "kiln_ensurer-secret";
const ADMIN: &str = "kiln_admin-secret";

fn token(name: &str, secret: &str, scopes: &[Scope]) -> Token {
    Token {
        name: name.into(),
        scopes: scopes.iter().copied().collect(),
        hash: hash_token(secret),
    }
}

async fn env_with_tokens() -> Env {
    let mut env = Env::new().await;
    let auth = Auth::new([
        token("reader", READER, &[Scope::Read]),
        token("app", ENSURER, &[Scope::Read, Scope::Ensure]),
        token("ops", ADMIN, &[Scope::Admin]),
    ])
    .unwrap();
    env.state = env.state.clone().with_auth(auth);
    env
}

fn req(method: &str, uri: &str, bearer: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(text) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(text.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

const ENSURE: &str = r#"{"chunks":["question:topic/q1"]}"#;

#[tokio::test]
async fn each_route_wants_its_scope() {
    let env = env_with_tokens().await;
    let file = "/v1/courses/demo/files/questions/topic/q1/question.html";
    for (method, uri, body, bearer, want) in [
        ("GET", "/healthz", None, None, StatusCode::OK),
        ("GET", "/v1/openapi.json", None, None, StatusCode::OK),
        (
            "GET",
            "/v1/courses/demo",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "GET",
            "/v1/courses/demo",
            None,
            Some(READER),
            StatusCode::OK,
        ),
        (
            "GET",
            "/v1/courses/demo",
            None,
            Some(ADMIN),
            StatusCode::FORBIDDEN,
        ),
        ("GET", file, None, Some(READER), StatusCode::OK),
        (
            "GET",
            file,
            None,
            Some("kiln_wrong"),
            StatusCode::UNAUTHORIZED,
        ),
        ("GET", "/metrics", None, None, StatusCode::UNAUTHORIZED),
        ("GET", "/metrics", None, Some(READER), StatusCode::OK),
        (
            "POST",
            "/v1/courses/demo/ensure",
            Some(ENSURE),
            Some(READER),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/v1/courses/demo/ensure",
            Some(ENSURE),
            Some(ENSURER),
            StatusCode::OK,
        ),
        (
            "POST",
            "/v1/libraries/cards/builds",
            Some("{}"),
            Some(ENSURER),
            StatusCode::FORBIDDEN,
        ),
        // Admin may start a build; this server has no reheat configured, so 404 after auth.
        (
            "POST",
            "/v1/libraries/cards/builds",
            Some("{}"),
            Some(ADMIN),
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/v1/runs/1", None, None, StatusCode::UNAUTHORIZED),
        // An unknown route needs a known token before it is a 404.
        ("GET", "/v1/nope", None, None, StatusCode::UNAUTHORIZED),
        ("GET", "/v1/nope", None, Some(ADMIN), StatusCode::NOT_FOUND),
    ] {
        let resp = env.send(req(method, uri, bearer, body)).await;
        let status = resp.status();
        assert_eq!(status, want, "{method} {uri} with {bearer:?}");
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let challenge = resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .to_string();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let v = json(resp).await;
            let code = if status == StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "unauthorized"
            };
            assert_eq!(v["error"], code, "{v}");
            assert!(v["message"].as_str().unwrap().len() > 10, "{v}");
        }
    }
}

#[tokio::test]
async fn a_refusal_names_the_scope_and_the_token_but_never_the_secret() {
    let env = env_with_tokens().await;
    let resp = env
        .send(req(
            "POST",
            "/v1/courses/demo/ensure",
            Some(READER),
            Some(ENSURE),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let challenge = resp.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("ensure"),
        "{challenge}"
    );
    let v = json(resp).await;
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("`ensure`") && msg.contains("\"reader\""),
        "{msg}"
    );
    assert!(!msg.contains(READER), "{msg}");
}

#[tokio::test]
async fn a_post_a_web_page_could_send_is_refused_without_a_token() {
    // No tokens: every route is open, but a form or text/plain POST (which a browser sends
    // cross-site without asking) is refused, and nothing is ensured.
    let env = Env::new().await;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut b = Request::post("/v1/courses/demo/ensure");
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let resp = env.send(b.body(Body::from(ENSURE)).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        let v = json(resp).await;
        assert_eq!(v["error"], "unsupported_media_type");
        assert!(
            v["message"].as_str().unwrap().contains("application/json"),
            "{v}"
        );
    }
    assert_eq!(env.store.gets(), 0, "a refused ensure downloads nothing");
    let resp = env.post_json("/v1/courses/demo/ensure", ENSURE).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // With a token, the content type is the handler's business (a token is never sent
    // cross-site by a browser on its own).
    let env = env_with_tokens().await;
    let resp = env
        .send(
            Request::post("/v1/courses/demo/ensure")
                .header(header::AUTHORIZATION, format!("Bearer {ENSURER}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(ENSURE))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn two_tokens_with_one_secret_are_refused() {
    let err = Auth::new([
        token("a", READER, &[Scope::Read]),
        token("b", READER, &[Scope::Admin]),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"a\"") && err.contains("\"b\""), "{err}");
}

/// A request as a browser on `origin` sends it to a server reached by `host`.
fn from_browser(method: &str, uri: &str, host: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(ENSURE)).unwrap()
}

#[tokio::test]
async fn without_tokens_a_rebound_name_is_refused_and_addresses_are_answered() {
    // A page on attacker.example whose name now points at 127.0.0.1 is same-origin with
    // kiln: its requests carry `Host: attacker.example:7878`.
    let env = Env::new().await;
    let evil = "attacker.example:7878";
    for (method, uri) in [
        ("GET", "/v1/courses/demo"),
        ("POST", "/v1/courses/demo/ensure"),
        ("POST", "/v1/libraries/pages/pause"),
    ] {
        let resp = env
            .send(from_browser(
                method,
                uri,
                evil,
                Some("http://attacker.example:7878"),
            ))
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{method} {uri}");
        let v = json(resp).await;
        assert_eq!(v["error"], "host_not_allowed");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(evil) && msg.contains("server.hosts"), "{msg}");
    }
    assert_eq!(env.store.gets(), 0, "a refused ensure downloads nothing");
    for host in ["127.0.0.1:7878", "localhost:7878", "[::1]:7878"] {
        let resp = env
            .send(from_browser("GET", "/v1/courses/demo", host, None))
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{host}");
    }
    // A configured name is answered.
    let mut named = Env::new().await;
    named.state = named
        .state
        .clone()
        .with_hosts(kiln_server::hosts::Hosts::named([
            "kiln.internal".to_string()
        ]));
    let resp = named
        .send(from_browser(
            "GET",
            "/v1/courses/demo",
            "kiln.internal:7878",
            None,
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = named
        .send(from_browser("GET", "/v1/courses/demo", evil, None))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_state_change_from_another_origin_is_refused_with_or_without_tokens() {
    let host = "127.0.0.1:7878";
    let env = Env::new().await;
    for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
        let resp = env
            .send(from_browser(
                "POST",
                "/v1/courses/demo/ensure",
                host,
                Some(origin),
            ))
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin}");
        let v = json(resp).await;
        assert_eq!(v["error"], "origin_not_allowed");
        assert!(v["message"].as_str().unwrap().contains(origin), "{v}");
    }
    assert_eq!(env.store.gets(), 0);
    // kiln's own pages (same origin) and programs (no Origin) may.
    for origin in [Some("http://127.0.0.1:7878"), None] {
        let resp = env
            .send(from_browser(
                "POST",
                "/v1/courses/demo/ensure",
                host,
                origin,
            ))
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{origin:?}");
    }
    // With tokens any Host is answered (a rebinding page has no token), but a foreign
    // origin still changes nothing, even with a token.
    let env = env_with_tokens().await;
    let mut req = from_browser(
        "POST",
        "/v1/courses/demo/ensure",
        "kiln.example",
        Some("null"),
    );
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {ENSURER}").parse().unwrap(),
    );
    assert_eq!(env.send(req).await.status(), StatusCode::FORBIDDEN);
    let mut req = from_browser("POST", "/v1/courses/demo/ensure", "kiln.example", None);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {ENSURER}").parse().unwrap(),
    );
    assert_eq!(env.send(req).await.status(), StatusCode::OK);
}
