//! Opening the backends the config names: the only place that knows every backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use kiln_core::catalog::Catalog;
use kiln_core::ledger::RunLedger;
use kiln_core::queue::JobQueue;
use kiln_core::render_cache::RenderCache;
use object_store::ObjectStore;

use crate::config::{Backend, Config, DbConfig, StoreBackend};

/// Courses that published a new version, as the catalog announces them.
pub(crate) type VersionEvents =
    std::pin::Pin<Box<dyn futures::Stream<Item = kiln_core::ids::CourseId> + Send>>;

/// What the `[catalog]` database holds.
struct CatalogParts {
    catalog: Arc<dyn Catalog>,
    ledger: Arc<dyn RunLedger>,
    events: Option<VersionEvents>,
}

/// The config plus where the embedded backends live.
pub(crate) struct Env {
    pub(crate) config: Config,
    pub(crate) data_dir: PathBuf,
    /// Whether to say which backends are used (not under `--json`, which owns stdout; the
    /// message goes to stderr either way, but scripts parsing stderr prefer quiet).
    pub(crate) announce: bool,
}

impl Env {
    fn say(&self, what: &str, backend: &dyn std::fmt::Display) {
        if self.announce {
            eprintln!("kiln: {what}: {backend}");
        }
    }

    fn url<'a>(&self, section: &str, db: &'a DbConfig) -> anyhow::Result<&'a str> {
        db.url.as_deref().with_context(|| {
            format!(
                "invalid config: `{section}.url` is required for backend {}",
                format!("{:?}", db.backend).to_lowercase()
            )
        })
    }

    /// The catalog.
    pub(crate) async fn catalog(&self) -> anyhow::Result<Arc<dyn Catalog>> {
        Ok(self.open_catalog().await?.catalog)
    }

    /// The catalog, and a stream of courses that published a version where the backend
    /// tells at once (PostgreSQL LISTEN/NOTIFY); other backends are polled by the caller.
    pub(crate) async fn catalog_with_events(
        &self,
    ) -> anyhow::Result<(Arc<dyn Catalog>, Option<VersionEvents>)> {
        let parts = self.open_catalog().await?;
        Ok((parts.catalog, parts.events))
    }

    /// The catalog and the runs ledger in its database, on one connection pool.
    pub(crate) async fn catalog_and_ledger(
        &self,
    ) -> anyhow::Result<(Arc<dyn Catalog>, Arc<dyn RunLedger>)> {
        let parts = self.open_catalog().await?;
        Ok((parts.catalog, parts.ledger))
    }

    /// Opens the `[catalog]` database: the content catalog, the runs ledger sharing its
    /// connections, and (where the backend can tell) the new-version stream.
    async fn open_catalog(&self) -> anyhow::Result<CatalogParts> {
        let db = &self.config.catalog;
        let parts = match db.backend {
            Backend::Sqlite => {
                let catalog = kiln_sqlite::SqliteCatalog::open(&self.data_dir.join("catalog.db"))
                    .await
                    .context("opening the sqlite catalog")?;
                CatalogParts {
                    ledger: Arc::new(catalog.ledger()),
                    catalog: Arc::new(catalog),
                    events: None,
                }
            }
            Backend::Postgres => {
                let url = self.url("catalog", db)?;
                let pg = kiln_postgres::PgCatalog::connect(url, db.namespace.as_deref())
                    .await
                    .with_context(|| {
                        format!("connecting to the postgres catalog at {}", redact(url))
                    })?;
                let stream = pg
                    .subscribe_versions()
                    .await
                    .context("listening for new versions on the postgres catalog")?;
                CatalogParts {
                    ledger: Arc::new(pg.ledger()),
                    catalog: Arc::new(pg),
                    events: Some(Box::pin(stream) as VersionEvents),
                }
            }
            Backend::Redis => bail!("invalid config: `catalog.backend` cannot be redis"),
        };
        self.say("catalog", &parts.catalog);
        Ok(parts)
    }

    /// The job queue.
    pub(crate) async fn queue(&self) -> anyhow::Result<Arc<dyn JobQueue>> {
        let db = &self.config.queue;
        let queue: Arc<dyn JobQueue> = match db.backend {
            Backend::Sqlite => Arc::new(
                kiln_sqlite::SqliteQueue::open(&self.data_dir.join("queue.db"))
                    .await
                    .context("opening the sqlite queue")?,
            ),
            Backend::Postgres => {
                let url = self.url("queue", db)?;
                Arc::new(
                    kiln_postgres::PgQueue::connect(url, db.namespace.as_deref())
                        .await
                        .with_context(|| {
                            format!("connecting to the postgres queue at {}", redact(url))
                        })?,
                )
            }
            Backend::Redis => bail!("invalid config: `queue.backend` cannot be redis"),
        };
        self.say("queue", &queue);
        Ok(queue)
    }

    /// The render cache.
    pub(crate) async fn render_cache(&self) -> anyhow::Result<Arc<dyn RenderCache>> {
        let db = &self.config.cache;
        let cache: Arc<dyn RenderCache> = match db.backend {
            Backend::Sqlite => Arc::new(
                kiln_sqlite::SqliteRenderCache::open(&self.data_dir.join("render-cache.db"))
                    .await
                    .context("opening the sqlite render cache")?,
            ),
            Backend::Postgres => {
                let url = self.url("cache", db)?;
                Arc::new(
                    kiln_postgres::PgRenderCache::connect(url, db.namespace.as_deref())
                        .await
                        .with_context(|| {
                            format!("connecting to the postgres render cache at {}", redact(url))
                        })?,
                )
            }
            Backend::Redis => {
                let url = self.url("cache", db)?;
                Arc::new(
                    kiln_redis::RedisRenderCache::connect(
                        url,
                        db.namespace.as_deref().unwrap_or("kiln"),
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
        let s = &self.config.store;
        (s.backend == StoreBackend::Local).then(|| {
            s.path
                .clone()
                .unwrap_or_else(|| self.data_dir.join("objects"))
        })
    }

    /// The object store for bundles.
    pub(crate) fn store(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let s = &self.config.store;
        let store: Arc<dyn ObjectStore> = match s.backend {
            StoreBackend::Local => {
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
            StoreBackend::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::from_env();
                let bucket = s
                    .bucket
                    .as_deref()
                    .context("invalid config: `store.bucket` is required for backend s3")?;
                b = b.with_bucket_name(bucket);
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
                Arc::new(b.build().context("opening the s3 object store")?)
            }
        };
        self.say("object store", &store);
        Ok(store)
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
