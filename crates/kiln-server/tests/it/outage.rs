//! A real PostgreSQL catalog that becomes unreachable (a TCP proxy in front of it, then
//! stopped): content already on disk is still served, marked stale, without waiting for
//! the pool; health and readiness name the failing backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ids::VersionId;
use kiln_core::manifest::Manifest;
use kiln_postgres::{PgCatalog, PgConfig, PgDb};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::{Env, json};

/// Forwards TCP connections to `to` until stopped; stopping closes the listener and every
/// forwarded connection, as a database host that went away.
struct Proxy {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let mut stopped = stopped.clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(to).await else { return };
                            tokio::select! {
                                _ = stopped.changed() => {}
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            }
                        });
                    }
                }
            }
        });
        Proxy { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

/// `postgres://user@host:port/db` -> (host:port, the same URL through `via`).
fn split_url(url: &str, via: SocketAddr) -> (SocketAddr, String) {
    let (head, rest) = url
        .split_once('@')
        .expect("a TEST_POSTGRES_URL with user@host");
    let (hostport, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let target = hostport
        .parse()
        .expect("TEST_POSTGRES_URL with an IP:port host");
    (target, format!("{head}@{via}/{tail}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_on_disk_outlives_a_catalog_outage() {
    let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let (target, _) = split_url(&url, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(target).await;
    let (_, proxied) = split_url(&url, proxy.addr);
    let mut config = PgConfig::new(proxied);
    config.schema = Some(format!("kiln_test_{:016x}", rand::random::<u64>()));
    let catalog = Arc::new(PgCatalog::new(PgDb::connect_with(&config).await.unwrap()));
    let dyn_catalog: Arc<dyn Catalog> = catalog.clone();
    let env = Env::with_catalog(Some(dyn_catalog.clone()), |c| c).await;
    let strict = Env::with_catalog(Some(dyn_catalog), |c| kiln_load::LoadConfig {
        max_stale: Duration::ZERO,
        ..c
    })
    .await;
    catalog
        .publish(NewVersion {
            course: env.course(),
            version: VersionId::new("v1").unwrap(),
            manifest: Manifest::new(vec![env.q1.entry.clone(), env.info.entry.clone()]).unwrap(),
        })
        .await
        .unwrap();
    let file = "/v1/courses/demo/files/questions/topic/q1/question.html";
    for e in [&env, &strict] {
        let resp = e.get(file).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("x-kiln-stale").is_none());
    }
    let resp = env.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", json(resp).await);

    proxy.stop().await;

    // The first request after the outage began may wait for the pool's short connect
    // timeout; it must not fail.
    let resp = env.get(file).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-kiln-stale").is_some());
    // Later ones do not wait for a catalog known to fail: twenty of them take less than
    // one connect timeout (each would take one if they waited).
    let started = Instant::now();
    for _ in 0..20 {
        let resp = env.get(file).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let stale: u64 = resp.headers()["x-kiln-stale"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(stale < 300, "{stale}");
    }
    assert!(
        started.elapsed() < config.connect_timeout,
        "{:?}",
        started.elapsed()
    );
    let resp = env
        .post_json(
            "/v1/courses/demo/ensure",
            r#"{"chunks":["question:topic/q1"]}"#,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-kiln-stale").is_some());
    assert_eq!(json(resp).await["version"], "v1");
    let resp = env.get("/v1/courses/demo").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-kiln-stale").is_some());

    // Past max_stale the catalog's failure is the answer, a 503.
    let resp = strict.get(file).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(resp).await["error"], "unavailable");

    // Liveness answers 200 and says what it last saw; readiness asks and says 503.
    let resp = env.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = json(resp).await;
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["backends"]["catalog"]["ok"], false, "{v}");
    assert!(
        v["backends"]["catalog"]["error"]
            .as_str()
            .unwrap()
            .contains("postgres"),
        "{v}"
    );
    let resp = env.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v = json(resp).await;
    assert_eq!(v["backends"]["catalog"]["ok"], false, "{v}");
    assert_eq!(v["backends"]["object_store"]["ok"], true, "{v}");
    assert_eq!(v["backends"]["cache_dir"]["ok"], true, "{v}");
}
