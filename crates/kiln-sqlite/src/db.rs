//! Opening SQLite databases (WAL, one writer connection plus a read pool) and mapping sqlx
//! errors to kiln's semantic error variants.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use std::borrow::Cow;

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// How long a connection waits for another process's write lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Readers in the read pool: enough for concurrent readers on a small host.
const READERS: u32 = 8;

/// Rows buffered between a connection's worker thread and its reader.
const ROW_BUFFER: usize = 4096;

/// A migrator over SQL files embedded with `include_str!`: `(version, description, sql)`.
///
/// Built at run time because sqlx's `migrate!` macro needs sqlx's `macros` feature, which
/// the workspace leaves off (it pulls in the compile-time query checker).
pub(crate) fn migrator(steps: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = steps
        .iter()
        .map(|&(version, desc, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(desc),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// The backend's own failures, mapped to [`kiln_core::Error`] by meaning.
#[derive(Debug)]
pub(crate) enum Error {
    /// A query or connection failed.
    Sqlx(sqlx::Error),
    /// The schema could not be brought up to date.
    Migrate(MigrateError),
    /// Creating the database's directory failed.
    Io(PathBuf, std::io::Error),
    /// A stored value is not what this code writes.
    Corrupt(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Sqlx(e)
    }
}

impl From<Error> for kiln_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Sqlx(e) => {
                let transient = match &e {
                    sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
                    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                    sqlx::Error::Database(d) => d
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
                    _ => false,
                };
                if transient {
                    kiln_core::Error::Unavailable {
                        what: "sqlite".into(),
                        source: Box::new(e),
                    }
                } else {
                    kiln_core::Error::backend("sqlite", e)
                }
            }
            Error::Migrate(e) => kiln_core::Error::backend("sqlite", e),
            Error::Io(path, e) => kiln_core::Error::Unavailable {
                what: format!("sqlite database {}", path.display()),
                source: Box::new(e),
            },
            Error::Corrupt(msg) => kiln_core::Error::backend("sqlite", msg),
        }
    }
}

/// A stored value that this code does not write: `what` names it, `value` shows it.
pub(crate) fn corrupt(what: &str, value: &str) -> kiln_core::Error {
    Error::Corrupt(format!("stored {what} {value:?} is invalid")).into()
}

/// Maps a sqlx error straight to kiln's error (for `?` in trait methods).
pub(crate) fn err(e: sqlx::Error) -> kiln_core::Error {
    Error::Sqlx(e).into()
}

/// One database: a single writer connection (SQLite has one writer at a time, and one
/// connection avoids `SQLITE_BUSY` storms between our own writers) and a read pool that
/// WAL lets run beside it.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// The file, or `:memory:`.
    pub(crate) label: String,
}

impl Db {
    /// Opens (creating the file and its parent directories) and migrates a database.
    ///
    /// Any number of processes may open one fresh file at once: creating it, switching it to
    /// WAL and migrating it happen under an exclusive lock on `<file>.open-lock` (released
    /// when the process exits, however it exits), so one process migrates and the others
    /// find the schema current.
    pub(crate) async fn open(path: &Path, migrator: &Migrator) -> Result<Db, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        }
        let lock_path = {
            let mut p = path.as_os_str().to_owned();
            p.push(".open-lock");
            PathBuf::from(p)
        };
        let lock = {
            let p = lock_path.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&p)?;
                f.lock()?;
                Ok(f)
            })
            .await
            .map_err(|e| Error::Io(lock_path.clone(), std::io::Error::other(e)))?
            .map_err(|e| Error::Io(lock_path.clone(), e))?
        };
        let db = Db::open_locked(path, migrator).await;
        drop(lock);
        db
    }

    async fn open_locked(path: &Path, migrator: &Migrator) -> Result<Db, Error> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses at most the last transactions on power loss, never
            // consistency; FULL would fsync every commit and cap the queue's throughput.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Rows of a batch (a lease of 1,000 jobs) cross from SQLite's worker thread in
            // one go instead of waking the reader every 50 rows.
            .row_buffer_size(ROW_BUFFER)
            .statement_cache_capacity(256);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.clone())
            .await?;
        migrator.run(&writer).await.map_err(Error::Migrate)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Db {
            writer,
            reader,
            label: path.display().to_string(),
        })
    }

    /// A private in-memory database on one connection (readers share it).
    pub(crate) async fn open_in_memory(migrator: &Migrator) -> Result<Db, Error> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One connection that never closes: an in-memory database lives as long as it.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        migrator.run(&writer).await.map_err(Error::Migrate)?;
        Ok(Db {
            reader: writer.clone(),
            writer,
            label: ":memory:".into(),
        })
    }

    /// Begins a write transaction that takes the write lock at once, so that a transaction
    /// that reads before it writes never fails to upgrade its lock.
    pub(crate) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, kiln_core::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(err)
    }
}
