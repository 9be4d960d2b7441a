//! The OpenAPI document: the committed `docs/openapi.json` is what the code generates, and
//! the server serves the same document.

use std::path::PathBuf;

use axum::http::StatusCode;

use crate::support::{Env, json};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_document_is_current() {
    let generated = kiln_server::openapi::json();
    let path = committed_path();
    if std::env::var_os("KILN_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the document the code generates: run \
         `KILN_BLESS=1 cargo test -p kiln-server --test it openapi` and commit the file"
    );
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let env = Env::new().await;
    let resp = env.get("/v1/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let served = json(resp).await;
    let generated: serde_json::Value = serde_json::from_str(&kiln_server::openapi::json()).unwrap();
    assert_eq!(served, generated);
    assert_eq!(served["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    for path in ["/v1/leases/{id}/renew", "/v1/runs/{run}", "/healthz"] {
        assert!(served["paths"][path].is_object(), "{path} is described");
    }
}

#[test]
fn every_route_is_described_with_its_scope() {
    use kiln_server::auth::{Access, ROUTES};
    let doc: serde_json::Value = serde_json::from_str(&kiln_server::openapi::json()).unwrap();
    let mut described = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_some() {
                described.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    let listed: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), kiln_server::openapi::doc_path(m, p)))
        .collect();
    assert_eq!(
        described, listed,
        "the routes table and the document list the same routes"
    );
    for (method, path, access) in ROUTES {
        let op = &doc["paths"][kiln_server::openapi::doc_path(method, path)]
            [method.as_str().to_ascii_lowercase()];
        match access {
            Access::Open => assert!(op["security"].is_null(), "{method} {path} is open"),
            Access::Needs(scope) => {
                let want: Vec<&str> = scope.iter().map(|s| s.as_str()).collect();
                assert_eq!(
                    op["security"][0]["bearer"],
                    serde_json::json!(want),
                    "{method} {path}"
                );
                for status in ["401", "403"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
        if *method == axum::http::Method::POST {
            assert!(op["responses"]["415"].is_object(), "{method} {path} 415");
        }
        assert!(
            op["responses"]["200"].is_object()
                || op["responses"]["201"].is_object()
                || op["responses"]["202"].is_object()
                || op["responses"]["204"].is_object(),
            "{method} {path} has a success answer"
        );
    }
}
