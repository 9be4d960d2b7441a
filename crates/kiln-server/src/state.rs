//! What every handler shares: the chunk cache, the content view it reads, the metrics registry, and the
//! reheat part once it is wired in.

use std::sync::Arc;

use kiln_core::content::ContentView;
use kiln_load::ChunkCache;
use prometheus_client::registry::Registry;

use crate::auth::Auth;
use crate::files::SmallFiles;
use crate::hosts::Hosts;
use crate::metrics::{HttpMetrics, LoadCollector};
use crate::reheat_routes::ReheatState;
use crate::sampler::Sampler;

/// The server's state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The local chunk cache.
    pub cache: ChunkCache,
    /// What the cache reads courses, versions and manifests from (the published view on a
    /// server): the course routes read it too, never the catalog.
    pub content: Arc<dyn ContentView>,
    /// Every metric `/metrics` renders; callers may register their own.
    pub registry: Arc<Registry>,
    pub(crate) http: Arc<HttpMetrics>,
    pub(crate) small_files: Arc<SmallFiles>,
    /// The reheat side, when this server also serves reheat routes.
    pub reheat: Option<ReheatState>,
    /// The tokens the routes accept (default none: every route open).
    pub(crate) auth: Auth,
    /// The names a server without tokens answers to (default: IP addresses and localhost).
    pub(crate) hosts: Hosts,
    /// Runs' progress over time, sampled while this server runs.
    pub(crate) sampler: Arc<Sampler>,
}

impl AppState {
    /// State over a cache and what it reads, with the cache's and the HTTP metrics registered.
    pub fn new(cache: ChunkCache) -> AppState {
        AppState::with_registry(cache, Registry::default())
    }

    /// Like [`AppState::new`], adding to a registry that holds the caller's own metrics.
    pub fn with_registry(cache: ChunkCache, mut registry: Registry) -> AppState {
        let http = Arc::new(HttpMetrics::register(&mut registry));
        registry.register_collector(Box::new(LoadCollector(cache.clone())));
        AppState {
            content: cache.content().clone(),
            cache,
            registry: Arc::new(registry),
            http,
            small_files: Arc::default(),
            reheat: None,
            auth: Auth::open(),
            hosts: Hosts::default(),
            sampler: Arc::default(),
        }
    }

    /// Adds the reheat side.
    pub fn with_reheat(mut self, reheat: ReheatState) -> AppState {
        self.reheat = Some(reheat);
        self
    }

    /// Answers a server without tokens only on `hosts` ([`crate::hosts`]).
    pub fn with_hosts(mut self, hosts: Hosts) -> AppState {
        self.hosts = hosts;
        self
    }

    /// Checks every request against `auth`'s tokens and [`crate::auth::ROUTES`].
    pub fn with_auth(mut self, auth: Auth) -> AppState {
        self.auth = auth;
        self
    }
}
