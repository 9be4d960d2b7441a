//! A server state over a temporary store, an in-memory catalog and a cache; request helpers.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use kiln_core::ids::{ChunkKind, CourseId, VersionId};
use kiln_load::{ChunkCache, LoadConfig};
use kiln_server::{AppState, router};
use kiln_testkit::chunks::{BundleBuilder, TestChunk, question_chunk};
use kiln_testkit::mem::catalog::MemCatalog;
use kiln_testkit::store::CountingStore;
use object_store::local::LocalFileSystem;
use tower::ServiceExt;

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) catalog: Arc<MemCatalog>,
    pub(crate) store: Arc<CountingStore>,
    pub(crate) state: AppState,
    pub(crate) q1: TestChunk,
    pub(crate) info: TestChunk,
}

impl Env {
    /// Course `demo`, version `v1`: question `topic/q1` (with a symlink) and `courseInfo`.
    pub(crate) async fn new() -> Env {
        Env::with_config(|c| c).await
    }

    /// Like [`Env::new`], with the cache's configuration changed by `f`.
    pub(crate) async fn with_config(f: impl FnOnce(LoadConfig) -> LoadConfig) -> Env {
        Env::with_catalog(None, f).await
    }

    /// Like [`Env::with_config`], over `catalog` rather than the in-memory one (which
    /// then only receives `publish` calls nobody reads).
    pub(crate) async fn with_catalog(
        catalog: Option<Arc<dyn kiln_core::catalog::Catalog>>,
        f: impl FnOnce(LoadConfig) -> LoadConfig,
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        let local = LocalFileSystem::new_with_prefix(dir.path().join("store")).unwrap();
        let store = CountingStore::new(Arc::new(local));
        let mem = Arc::new(MemCatalog::new());
        let q1 = BundleBuilder::new()
            .file("info.json", "{\"uuid\":\"q1\"}")
            .file("question.html", "<p>hello</p>")
            .file("clientFilesQuestion/fig.png", vec![0x89, b'P', b'N', b'G'])
            .file("big.bin", vec![7u8; 600_000])
            .symlink("alias.html", "question.html")
            .build(ChunkKind::Question, "topic/q1", "questions/topic/q1");
        let info = BundleBuilder::new()
            .file("infoCourse.json", "{\"name\":\"demo\"}")
            .build(ChunkKind::CourseInfo, "", "");
        let env = Env {
            state: AppState::new(
                ChunkCache::open(
                    f(LoadConfig {
                        refresh_interval: std::time::Duration::ZERO,
                        ..LoadConfig::new(dir.path().join("cache"))
                    }),
                    Arc::new(kiln_publish::CatalogView::new(
                        catalog
                            .clone()
                            .unwrap_or_else(|| mem.clone() as Arc<dyn kiln_core::catalog::Catalog>),
                        store.clone(),
                    )),
                    store.clone(),
                )
                .await
                .unwrap(),
            ),
            dir,
            catalog: mem,
            store,
            q1,
            info,
        };
        env.publish("v1", &[&env.q1, &env.info]).await;
        env
    }

    pub(crate) fn course(&self) -> CourseId {
        CourseId::new("demo").unwrap()
    }

    pub(crate) async fn publish(&self, version: &str, chunks: &[&TestChunk]) {
        for c in chunks {
            c.put(&*self.store).await.unwrap();
        }
        self.catalog.set_current(
            &self.course(),
            &VersionId::new(version).unwrap(),
            chunks.iter().map(|c| c.entry.clone()).collect(),
        );
    }

    /// Publishes `v2` with a different question.
    pub(crate) async fn publish_v2(&self) -> TestChunk {
        let q = question_chunk("topic/q1", 2, 10, 99);
        self.publish("v2", &[&q, &self.info]).await;
        q
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> Response<Body> {
        router(self.state.clone()).oneshot(req).await.unwrap()
    }

    pub(crate) async fn get(&self, uri: &str) -> Response<Body> {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub(crate) async fn delete(&self, uri: &str) -> Response<Body> {
        self.send(Request::delete(uri).body(Body::empty()).unwrap())
            .await
    }

    pub(crate) async fn post_json(&self, uri: &str, body: &str) -> Response<Body> {
        self.send_json("POST", uri, body).await
    }

    pub(crate) async fn send_json(&self, method: &str, uri: &str, body: &str) -> Response<Body> {
        self.send(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }
}

pub(crate) async fn body_bytes(resp: Response<Body>) -> Vec<u8> {
    axum::body::to_bytes(resp.into_body(), 10 << 20)
        .await
        .unwrap()
        .to_vec()
}

pub(crate) async fn json(resp: Response<Body>) -> serde_json::Value {
    serde_json::from_slice(&body_bytes(resp).await).unwrap()
}
