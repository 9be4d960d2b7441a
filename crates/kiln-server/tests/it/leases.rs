//! Leases over HTTP: an app reads what ensure returned from disk, after the response, and
//! finds every file while its lease holds, even under a budget smaller than its working set.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures::future::join_all;
use kiln_testkit::chunks::{TestChunk, question_chunk};

use crate::support::{Env, body_bytes, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_of_ensured_directories_never_miss_a_file_under_a_small_budget() {
    const FILES: usize = 4;
    let qs: Vec<TestChunk> = (0..48)
        .map(|i| question_chunk(&format!("t/q{i}"), FILES, 2_000, i))
        .collect();
    let one = qs[0].entry.size;
    // Three questions fit; 32 readers want two each at once.
    let env = Arc::new(
        Env::with_config(|c| kiln_load::LoadConfig {
            budget_bytes: 3 * one,
            // 128 leases kept to the end: what this test reads, not what limits allow.
            lease_limits: kiln_load::LeaseLimits {
                max_over_budget: Some(u64::MAX),
                max_bytes_per_holder: Some(u64::MAX),
                ..kiln_load::LeaseLimits::default()
            },
            ..c
        })
        .await,
    );
    env.publish("v1", &qs.iter().collect::<Vec<_>>()).await;
    let names: Vec<String> = std::iter::once("info.json".to_string())
        .chain((0..FILES - 1).map(|i| format!("file{i}.html")))
        .collect();
    let readers = (0..32u64).map(|n| {
        let (env, names) = (env.clone(), names.clone());
        tokio::spawn(async move {
            let mut missing = Vec::new();
            let mut leases = Vec::new();
            for round in 0..4u64 {
                let a = (n * 7 + round * 13) % 48;
                let b = (a + 1 + n % 5) % 48;
                let body = format!(r#"{{"chunks":["question:t/q{a}","question:t/q{b}"]}}"#);
                let resp = env.post_json("/v1/courses/demo/ensure", &body).await;
                assert_eq!(resp.status(), StatusCode::OK);
                let v = json(resp).await;
                for p in v["paths"].as_array().unwrap() {
                    let dir = std::path::PathBuf::from(p.as_str().unwrap());
                    for name in &names {
                        // Other readers' ensures run between these reads.
                        tokio::task::yield_now().await;
                        if std::fs::read(dir.join(name)).is_err() {
                            missing.push(dir.join(name));
                        }
                    }
                }
                leases.push(v["lease"]["id"].as_str().map(str::to_string));
            }
            (missing, leases)
        })
    });
    let mut missing = Vec::new();
    for r in join_all(readers).await {
        let (m, leases) = r.unwrap();
        missing.extend(m);
        for id in leases {
            let id = id.expect("ensure answers with a lease");
            let resp = env.delete(&format!("/v1/leases/{id}")).await;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
    }
    assert!(
        missing.is_empty(),
        "{} files missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let m = env.state.cache.metrics();
    assert!(m.evictions > 0, "the workload must exceed the budget");
    assert_eq!(m.leases_active, 0);
    assert!(
        m.cache_bytes <= 3 * one,
        "released leases give the budget back: {m:?}"
    );
}

#[tokio::test]
async fn a_lease_is_shown_renewed_and_released() {
    let env = Env::new().await;
    let v = json(
        env.post_json(
            "/v1/courses/demo/ensure",
            r#"{"chunks":["courseInfo"],"lease_ttl_ms":5000}"#,
        )
        .await,
    )
    .await;
    let lease = &v["lease"];
    assert_eq!(lease["ttl_ms"], 5000);
    let id = lease["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let expires = lease["expires_at"].as_u64().unwrap();
    assert!(expires > now_ms && expires <= now_ms + 5_000, "{lease}");

    let text = String::from_utf8(body_bytes(env.get("/metrics").await).await).unwrap();
    assert!(text.contains("kiln_load_leases_active 1"), "{text}");
    assert!(text.contains("kiln_load_bytes_over_budget 0"), "{text}");

    let resp = env
        .post_json(&format!("/v1/leases/{id}/renew"), r#"{"ttl_ms":120000}"#)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let renewed = json(resp).await;
    assert_eq!(renewed["id"], id.as_str());
    assert_eq!(renewed["ttl_ms"], 120000);
    let resp = env.post_json(&format!("/v1/leases/{id}/renew"), "").await;
    assert_eq!(
        json(resp).await["ttl_ms"],
        Duration::from_secs(60).as_millis() as u64
    );
    let resp = env
        .post_json(&format!("/v1/leases/{id}/renew"), r#"{"ttl_ms":0}"#)
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    assert_eq!(
        env.delete(&format!("/v1/leases/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    for resp in [
        env.delete(&format!("/v1/leases/{id}")).await,
        env.post_json(&format!("/v1/leases/{id}/renew"), "").await,
    ] {
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(json(resp).await["message"].as_str().unwrap().contains(&id));
    }
    let resp = env.delete("/v1/leases/not-a-lease").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("invalid lease id")
    );
    let text = String::from_utf8(body_bytes(env.get("/metrics").await).await).unwrap();
    assert!(text.contains("kiln_load_leases_active 0"), "{text}");
}

/// An env whose course has `n` questions of `size` bytes each and a small budget.
async fn many_questions(
    n: usize,
    f: impl FnOnce(kiln_load::LoadConfig) -> kiln_load::LoadConfig,
) -> Env {
    let qs: Vec<TestChunk> = (0..n)
        .map(|i| question_chunk(&format!("t/q{i}"), 2, 10_000, i as u64))
        .collect();
    let env = Env::with_config(f).await;
    env.publish("v1", &qs.iter().collect::<Vec<_>>()).await;
    env
}

/// What one of [`many_questions`]'s questions is accounted at on disk.
async fn accounted_question() -> u64 {
    let env = many_questions(1, |c| c).await;
    let resp = env
        .post_json("/v1/courses/demo/ensure", &ensure_body(0))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    env.state.cache.metrics().cache_bytes
}

fn ensure_body(q: usize) -> String {
    format!(r#"{{"chunks":["question:t/q{q}"],"lease_ttl_ms":3600000}}"#)
}

#[tokio::test]
async fn a_client_cannot_hold_leases_without_bound_and_renewals_and_releases_still_work() {
    let env = many_questions(4, |c| kiln_load::LoadConfig {
        lease_limits: kiln_load::LeaseLimits {
            max_count_per_holder: 3,
            ..kiln_load::LeaseLimits::default()
        },
        ..c
    })
    .await;
    // One question ensured again and again, never released: three leases, then 429.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = env
            .post_json("/v1/courses/demo/ensure", &ensure_body(0))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        ids.push(
            json(resp).await["lease"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let gets = env.store.gets();
    let resp = env
        .post_json("/v1/courses/demo/ensure", &ensure_body(1))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let v = json(resp).await;
    assert_eq!(v["error"], "too_many");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("3 leases") && msg.contains("lease_max_count_per_token"),
        "{msg}"
    );
    assert_eq!(env.store.gets(), gets, "a refused ensure downloads nothing");
    assert_eq!(env.state.cache.metrics().leases_active, 3);
    // Renewing is never refused.
    let resp = env
        .post_json(&format!("/v1/leases/{}/renew", ids[0]), "{}")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // One request ends many; an id already ended is named, a bad one refuses the call.
    let gone = "0".repeat(32);
    let body = format!(r#"{{"ids":["{}","{}","{gone}"]}}"#, ids[0], ids[1]);
    let bad = format!(r#"{{"ids":["{}","nope"]}}"#, ids[2]);
    let resp = env.send_json("DELETE", "/v1/leases", &bad).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        json(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\"")
    );
    assert_eq!(
        env.state.cache.metrics().leases_active,
        3,
        "a refused call releases nothing"
    );
    let resp = env.send_json("DELETE", "/v1/leases", &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = json(resp).await;
    assert_eq!(v["released"], 2);
    assert_eq!(v["ended"], serde_json::json!([gone]));
    assert_eq!(env.state.cache.metrics().leases_active, 1);
    let resp = env
        .post_json("/v1/courses/demo/ensure", &ensure_body(1))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn leases_keep_at_most_the_bytes_they_may_past_the_budget() {
    // 40 questions, never released, under a budget of 4: without a limit the cache would
    // hold all 40 (10x). Leases may keep it one budget over: the rest is a 507.
    let one = accounted_question().await;
    let env = many_questions(40, |c| kiln_load::LoadConfig {
        budget_bytes: 4 * one,
        lease_limits: kiln_load::LeaseLimits {
            max_bytes_per_holder: Some(u64::MAX),
            ..kiln_load::LeaseLimits::default()
        },
        ..c
    })
    .await;
    let (mut ok, mut full) = (0, 0);
    for q in 0..40 {
        let resp = env
            .post_json("/v1/courses/demo/ensure", &ensure_body(q))
            .await;
        match resp.status() {
            StatusCode::OK => ok += 1,
            StatusCode::INSUFFICIENT_STORAGE => {
                full += 1;
                let v = json(resp).await;
                assert_eq!(v["error"], "insufficient_storage");
                assert!(
                    v["message"]
                        .as_str()
                        .unwrap()
                        .contains("lease_max_over_budget"),
                    "{v}"
                );
            }
            s => panic!("ensure of q{q}: {s}"),
        }
    }
    assert!(full > 0, "{ok} leased, none refused");
    let m = env.state.cache.metrics();
    // At most one question's worth past the line (the lease that crossed it).
    assert!(
        m.cache_bytes <= 8 * one + one + one / 2,
        "{} bytes held, budget {}",
        m.cache_bytes,
        4 * one
    );
    assert!(ok >= 8, "only {ok} leased");
}

#[tokio::test]
async fn one_token_cannot_keep_more_bytes_than_its_share() {
    let one = accounted_question().await;
    let env = many_questions(10, |c| kiln_load::LoadConfig {
        budget_bytes: 100 * one,
        lease_limits: kiln_load::LeaseLimits {
            max_bytes_per_holder: Some(3 * one + one / 2),
            ..kiln_load::LeaseLimits::default()
        },
        ..c
    })
    .await;
    for q in 0..3 {
        let resp = env
            .post_json("/v1/courses/demo/ensure", &ensure_body(q))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // The same question again adds no bytes: each chunk counts once.
    let resp = env
        .post_json("/v1/courses/demo/ensure", &ensure_body(0))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = env
        .post_json("/v1/courses/demo/ensure", &ensure_body(3))
        .await;
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    let v = json(resp).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("lease_max_bytes_per_token"),
        "{v}"
    );
}
