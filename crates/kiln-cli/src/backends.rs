//! Opening the backends the config names: the only place that knows every backend.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kiln_core::catalog::Catalog;
use kiln_core::ledger::RunLedger;
use kiln_core::queue::JobQueue;
use kiln_core::render_cache::RenderCache;
use object_store::ObjectStore;

use crate::config::{Announce, CacheDb, Config, Server, SqlDb, StoreConfig};

/// What the `[catalog]` database holds.
struct CatalogParts {
    catalog: Arc<dyn Catalog>,
    ledger: Arc<dyn RunLedger>,
}

/// The config plus where the embedded backends live.
pub(crate) struct Env {
    pub(crate) config: Config,
    pub(crate) data_dir: PathBuf,
    /// Whether to say which backends are used (not under `--json`, which owns stdout; the
    /// message goes to stderr either way, but scripts parsing stderr prefer quiet).
    pub(crate) announce: bool,
    /// The PostgreSQL databases opened so far, one per server and schema: traits on the
    /// same schema share one pool and one migration run.
    pub(crate) postgres: tokio::sync::Mutex<HashMap<Server, kiln_postgres::PgDb>>,
    /// The most connections one PostgreSQL pool opens: 10 for the control plane's own
    /// processes (sync, workers), 2 in a server, which reads content from the store and
    /// reaches the catalog only for the control-plane routes.
    pub(crate) pg_max_connections: u32,
}

impl Env {
    /// The config plus where the embedded backends live.
    pub(crate) fn new(config: Config, data_dir: PathBuf, announce: bool) -> Env {
        Env {
            config,
            data_dir,
            announce,
            postgres: tokio::sync::Mutex::default(),
            pg_max_connections: 10,
        }
    }

    /// The PostgreSQL database at `server`, connected and migrated on first use; `what`
    /// names the trait for the error.
    async fn postgres(&self, server: &Server, what: &str) -> anyhow::Result<kiln_postgres::PgDb> {
        let mut open = self.postgres.lock().await;
        if let Some(db) = open.get(server) {
            return Ok(db.clone());
        }
        let mut config = kiln_postgres::PgConfig::new(&server.url);
        config.schema = server.namespace.clone();
        config.max_connections = self.pg_max_connections;
        let db = kiln_postgres::PgDb::connect_with(&config)
            .await
            .with_context(|| {
                format!(
                    "connecting to the postgres {what} at {}",
                    redact(&server.url)
                )
            })?;
        open.insert(server.clone(), db.clone());
        Ok(db)
    }

    /// The embedded backends' files.
    fn sqlite(&self) -> kiln_sqlite::DataDir {
        kiln_sqlite::DataDir::new(&self.data_dir)
    }

    fn say(&self, what: &str, backend: &dyn std::fmt::Display) {
        if self.announce {
            eprintln!("kiln: {what}: {backend}");
        }
    }

    /// The catalog.
    pub(crate) async fn catalog(&self) -> anyhow::Result<Arc<dyn Catalog>> {
        Ok(self.open_catalog().await?.catalog)
    }

    /// The catalog and the runs ledger in its database, on one connection pool.
    pub(crate) async fn catalog_and_ledger(
        &self,
    ) -> anyhow::Result<(Arc<dyn Catalog>, Arc<dyn RunLedger>)> {
        let parts = self.open_catalog().await?;
        Ok((parts.catalog, parts.ledger))
    }

    /// Opens the `[catalog]` database: the content catalog and the runs ledger sharing its
    /// connections.
    async fn open_catalog(&self) -> anyhow::Result<CatalogParts> {
        let parts = match &self.config.catalog {
            SqlDb::Sqlite => {
                let catalog = self
                    .sqlite()
                    .catalog()
                    .await
                    .context("opening the sqlite catalog")?;
                CatalogParts {
                    ledger: Arc::new(catalog.ledger()),
                    catalog: Arc::new(catalog),
                }
            }
            SqlDb::Postgres(server) => {
                let pg = kiln_postgres::PgCatalog::new(self.postgres(server, "catalog").await?);
                CatalogParts {
                    ledger: Arc::new(pg.ledger()),
                    catalog: Arc::new(pg),
                }
            }
        };
        self.say("catalog", &parts.catalog);
        Ok(parts)
    }

    /// The job queue.
    pub(crate) async fn queue(&self) -> anyhow::Result<Arc<dyn JobQueue>> {
        let queue: Arc<dyn JobQueue> = match &self.config.queue {
            SqlDb::Sqlite => Arc::new(
                self.sqlite()
                    .queue()
                    .await
                    .context("opening the sqlite queue")?,
            ),
            SqlDb::Postgres(server) => Arc::new(kiln_postgres::PgQueue::new(
                self.postgres(server, "queue").await?,
            )),
        };
        self.say("queue", &queue);
        Ok(queue)
    }

    /// The render cache.
    pub(crate) async fn render_cache(&self) -> anyhow::Result<Arc<dyn RenderCache>> {
        let cache: Arc<dyn RenderCache> = match &self.config.cache {
            CacheDb::Sqlite => Arc::new(
                self.sqlite()
                    .render_cache()
                    .await
                    .context("opening the sqlite render cache")?,
            ),
            CacheDb::Postgres(server) => Arc::new(kiln_postgres::PgRenderCache::new(
                self.postgres(server, "render cache").await?,
            )),
            CacheDb::Redis(redis) => {
                let url = &redis.url;
                Arc::new(
                    kiln_redis::RedisRenderCache::connect(
                        url,
                        redis.namespace.as_deref().unwrap_or("kiln"),
                    )
                    .await
                    .with_context(|| {
                        format!("connecting to the redis render cache at {}", redact(url))
                    })?,
                )
            }
        };
        self.say("render cache", &cache);
        Ok(cache)
    }

    /// The directory of a local object store (`None` for S3).
    pub(crate) fn local_store_root(&self) -> Option<std::path::PathBuf> {
        match &self.config.store {
            StoreConfig::Local { path } => Some(
                path.clone()
                    .unwrap_or_else(|| self.data_dir.join("objects")),
            ),
            StoreConfig::S3(_) => None,
        }
    }

    /// The object store for bundles.
    pub(crate) fn store(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let store: Arc<dyn ObjectStore> = match &self.config.store {
            StoreConfig::Local { .. } => {
                let path = self
                    .local_store_root()
                    .context("a local store has a directory")?;
                std::fs::create_dir_all(&path)
                    .with_context(|| format!("creating the object directory {}", path.display()))?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&path).with_context(
                        || format!("opening the object directory {}", path.display()),
                    )?,
                )
            }
            StoreConfig::S3(s) => {
                let mut b = object_store::aws::AmazonS3Builder::from_env();
                b = b.with_bucket_name(&s.bucket);
                if let Some(e) = &s.endpoint {
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                    if e.starts_with("http://") {
                        b = b.with_allow_http(true);
                    }
                }
                if let Some(r) = &s.region {
                    b = b.with_region(r);
                }
                if let Some(k) = &s.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &s.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                if let Some(h) = s.allow_http {
                    b = b.with_allow_http(h);
                }
                let s3 = b.build().context("opening the s3 object store")?;
                match &s.prefix {
                    Some(p) => Arc::new(object_store::prefix::PrefixStore::new(s3, p.as_str())),
                    None => Arc::new(s3),
                }
            }
        };
        self.say("object store", &store);
        Ok(store)
    }

    /// The published view in the store: what a server reads content from, never the
    /// catalog. Roots and segments are kept under `<cache dir>/published`.
    pub(crate) async fn published_view(
        &self,
        store: Arc<dyn ObjectStore>,
        cache_dir: &Path,
    ) -> anyhow::Result<kiln_publish::PublishedView> {
        let poll = self.config.load.head_poll.unwrap_or(
            match (&self.config.announce, &self.config.store) {
                (Announce::Redis(_), _) => std::time::Duration::from_secs(10),
                (Announce::Poll, StoreConfig::Local { .. }) => {
                    std::time::Duration::from_millis(250)
                }
                (Announce::Poll, StoreConfig::S3(_)) => std::time::Duration::from_secs(1),
            },
        );
        let options = kiln_publish::ViewOptions {
            cache_dir: Some(cache_dir.join("published")),
            poll_interval: poll,
            // Three missed polls, and never under 10 s: a slow store is not an outage.
            stale_after: (poll * 3).max(std::time::Duration::from_secs(10)),
        };
        let view = kiln_publish::PublishedView::open(store, options)
            .await
            .context("reading the published head from the object store")?;
        Ok(view)
    }

    /// Wake-ups when a sync announces a new head (`[announce]`), for a server to read it
    /// at once; `None` without a push channel.
    pub(crate) fn head_announcements(
        &self,
    ) -> anyhow::Result<Option<futures::stream::BoxStream<'static, ()>>> {
        match &self.config.announce {
            Announce::Poll => Ok(None),
            Announce::Redis(s) => {
                let channel =
                    kiln_redis::announce::channel(s.namespace.as_deref().unwrap_or("kiln"));
                self.say(
                    "announcements",
                    &format!("redis at {} ({channel})", redact(&s.url)),
                );
                Ok(Some(kiln_redis::announce::subscribe(&s.url, &channel)?))
            }
        }
    }

    /// Tells every subscribed server that head `seq` was written; a failure is logged (the
    /// servers read the head at their next poll).
    pub(crate) async fn announce_head(&self, seq: u64) {
        if let Announce::Redis(s) = &self.config.announce {
            let channel = kiln_redis::announce::channel(s.namespace.as_deref().unwrap_or("kiln"));
            match kiln_redis::announce::announce(&s.url, &channel, seq).await {
                Ok(n) => tracing::debug!(seq, servers = n, "announced the published head"),
                Err(e) => tracing::warn!(
                    "announcing published head {seq} (servers will read it at their next poll): {e}"
                ),
            }
        }
    }

    /// The local chunk cache directory.
    pub(crate) fn cache_dir(&self, flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| self.config.load.cache_dir.clone())
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Env, Server};
    use crate::config::{CacheDb, Config, SqlDb};

    #[tokio::test]
    async fn traits_on_one_postgres_schema_share_one_pool() {
        let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
        let schema = format!("kiln_test_cli_pool_{}", std::process::id());
        let server = Server {
            url,
            namespace: Some(schema),
        };
        let config = Config {
            catalog: SqlDb::Postgres(server.clone()),
            queue: SqlDb::Postgres(server.clone()),
            cache: CacheDb::Postgres(server.clone()),
            ..Config::default()
        };
        let env = Env::new(config, std::env::temp_dir(), false);
        env.catalog().await.unwrap();
        env.queue().await.unwrap();
        env.render_cache().await.unwrap();
        // The schema (`kiln_test_*`) is dropped by CI's service set-up, as every suite's is.
        assert_eq!(
            env.postgres.lock().await.len(),
            1,
            "one database for three traits"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
