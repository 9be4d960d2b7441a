//! This crate's private error type and its mapping onto kiln-core's semantic variants.

use std::borrow::Cow;

/// Everything that can go wrong inside kiln-postgres.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A query or connection failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// The schema migrations failed.
    #[error("migrating the schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not decode (a row written by something else).
    #[error("corrupt row: {0}")]
    Corrupt(Cow<'static, str>),
    /// An error that already has its kiln meaning (bad input, not found, ...).
    #[error(transparent)]
    Core(#[from] kiln_core::Error),
}

/// SQLSTATE codes after which a retry may succeed: connection exceptions (class 08),
/// serialization failures, deadlocks, shutdowns and too many connections.
fn transient_code(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
        )
}

impl From<Error> for kiln_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(e) => e,
            Error::Migrate(sqlx::migrate::MigrateError::Execute(e)) => Error::Sqlx(e).into(),
            Error::Sqlx(e) => {
                let transient = match &e {
                    sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed => true,
                    sqlx::Error::Database(d) => d.code().is_some_and(|c| transient_code(&c)),
                    _ => false,
                };
                if transient {
                    kiln_core::Error::Unavailable {
                        what: "postgres".into(),
                        source: connection_error(e),
                    }
                } else {
                    kiln_core::Error::backend("postgres", e)
                }
            }
            e @ (Error::Migrate(_) | Error::Corrupt(_)) => kiln_core::Error::backend("postgres", e),
        }
    }
}

/// The cause of a transient error, worded for an operator: a refused connection says so
/// (sqlx words it "error communicating with database"), a pool timeout says what it means.
fn connection_error(e: sqlx::Error) -> kiln_core::error::BoxError {
    match &e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused ({io})").into()
        }
        sqlx::Error::PoolTimedOut => {
            "no connection within the connect timeout (the server is unreachable, or every \
             pooled connection is busy)"
                .into()
        }
        _ => Box::new(e),
    }
}

/// `Result` with this crate's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
