//! Connecting to PostgreSQL: the URL and schema, the shared pool, and the embedded migrations.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::error::Error;

/// The schema migrations, embedded in the binary: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "catalog", include_str!("../migrations/0001_catalog.sql")),
    (2, "queue", include_str!("../migrations/0002_queue.sql")),
    (
        3,
        "render cache",
        include_str!("../migrations/0003_render_cache.sql"),
    ),
    (
        4,
        "queue dedupe and liveness",
        include_str!("../migrations/0004_queue_dedupe_liveness.sql"),
    ),
    (
        5,
        "claims and marks",
        include_str!("../migrations/0005_claims_marks.sql"),
    ),
    (
        6,
        "render entries: metadata and stale marks",
        include_str!("../migrations/0006_render_meta_stale.sql"),
    ),
    (
        7,
        "run stats",
        include_str!("../migrations/0007_run_stats.sql"),
    ),
    (
        8,
        "paused libraries",
        include_str!("../migrations/0008_queue_paused.sql"),
    ),
    (
        9,
        "schedule ticks",
        include_str!("../migrations/0009_schedule_ticks.sql"),
    ),
    (
        10,
        "queue throttles",
        include_str!("../migrations/0010_queue_throttles.sql"),
    ),
    (
        11,
        "chunk tables of contents",
        include_str!("../migrations/0011_chunk_tocs.sql"),
    ),
    (
        12,
        "manifest segments",
        include_str!("../migrations/0012_manifest_segments.sql"),
    ),
];

/// The embedded migrations as a sqlx migration source.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// A `postgres://` URL.
    pub url: String,
    /// The schema that holds kiln's tables (created if missing); `public` when `None`.
    /// Several kiln deployments (or test runs) can share a database with one schema each.
    pub schema: Option<String>,
    /// The pool's size.
    pub max_connections: u32,
    /// How long to wait for a connection (a new one, or a free one of the pool) before
    /// reporting PostgreSQL unavailable. Short: a caller with something better to do while
    /// the database is away (serve what it has) learns of it quickly.
    pub connect_timeout: Duration,
}

impl PgConfig {
    /// The defaults for `url`: schema `public`, 10 connections, a 3 s connect timeout.
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: None,
            max_connections: 10,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// A migrated PostgreSQL schema and a pool of connections to it, shared by
/// [`crate::PgCatalog`], [`crate::PgQueue`] and [`crate::PgRenderCache`]. Cheap to clone.
#[derive(Clone)]
pub struct PgDb {
    pool: PgPool,
    schema: Arc<str>,
    server: Arc<str>,
}

impl fmt::Debug for PgDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDb")
            .field("server", &self.server)
            .field("schema", &self.schema)
            .finish()
    }
}

impl fmt::Display for PgDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} schema {}", self.server, self.schema)
    }
}

/// Checks a schema name: it is spliced into SQL and into NOTIFY channel names (at most 63
/// bytes, so the name leaves room for a suffix).
pub(crate) fn check_schema(s: &str) -> kiln_core::Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(kiln_core::Error::invalid(format!(
            "invalid postgres schema {s:?}: use 1-48 of [a-z0-9_], starting with a letter or '_'"
        )))
    }
}

impl PgDb {
    /// Connects to `url`, creates `schema` (default `public`) if missing and migrates it.
    pub async fn connect(url: &str, schema: Option<&str>) -> kiln_core::Result<PgDb> {
        let mut config = PgConfig::new(url);
        config.schema = schema.map(str::to_string);
        PgDb::connect_with(&config).await
    }

    /// Like [`PgDb::connect`], with every option.
    pub async fn connect_with(config: &PgConfig) -> kiln_core::Result<PgDb> {
        let schema = config.schema.as_deref().unwrap_or("public");
        check_schema(schema)?;
        if !(config.url.starts_with("postgres://") || config.url.starts_with("postgresql://")) {
            return Err(kiln_core::Error::invalid(
                "invalid postgres url: expected postgres://USER@HOST:PORT/DB",
            ));
        }
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| kiln_core::Error::invalid(format!("invalid postgres url: {e}")))?;
        let server = format!("postgres at {}:{}", options.get_host(), options.get_port());
        // The search path is a startup parameter, so every connection (including ones the
        // pool opens after a reconnect, and listeners) sees only this schema.
        let options = options
            .options([("search_path", schema)])
            .application_name("kiln");
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(2))
            .acquire_timeout(config.connect_timeout)
            .connect_lazy_with(options.clone());
        let unavailable = |e: Error| match kiln_core::Error::from(e) {
            kiln_core::Error::Unavailable { source, .. } => kiln_core::Error::Unavailable {
                what: server.clone(),
                source,
            },
            other => other,
        };
        // One connection of our own first: the pool retries a refused connection until its
        // timeout and then reports only that it timed out; this says why, at once.
        let probe = options.clone();
        match tokio::time::timeout(config.connect_timeout, probe.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => return Err(unavailable(e.into())),
            Err(_) => {
                return Err(kiln_core::Error::Unavailable {
                    what: server.clone(),
                    source: format!(
                        "no connection within {} ms",
                        config.connect_timeout.as_millis()
                    )
                    .into(),
                });
            }
        }
        // Concurrent creators of one schema may race; the loser's error is harmless.
        if let Err(e) = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&pool)
            .await
        {
            let duplicate = matches!(&e, sqlx::Error::Database(d)
                if matches!(d.code().as_deref(), Some("23505" | "42P06")));
            if !duplicate {
                return Err(unavailable(e.into()));
            }
        }
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| unavailable(e.into()))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| unavailable(e.into()))?;
        Ok(PgDb {
            pool,
            schema: schema.into(),
            server: server.into(),
        })
    }

    /// The pool (for callers that run their own queries on kiln's schema).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema kiln's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The NOTIFY channel of `topic` in this schema: deployments sharing a database do not
    /// wake each other.
    pub(crate) fn channel(&self, topic: &str) -> String {
        format!("{}.{topic}", self.schema)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{PgConfig, PgDb};

    #[tokio::test]
    async fn a_refused_connection_says_so_at_once() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = PgConfig::new(format!("postgres://postgres@127.0.0.1:{port}/test"));
        config.connect_timeout = Duration::from_secs(30);
        let started = Instant::now();
        let err = PgDb::connect_with(&config).await.unwrap_err();
        let text = err.to_string();
        assert!(err.is_transient(), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        // Far below the connect timeout: the refusal is not retried until it runs out.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
}
