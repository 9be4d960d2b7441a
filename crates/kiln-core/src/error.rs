//! The one error type of kiln's library crates, with semantic variants that callers match on.

/// A boxed error from a backend client or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by meaning rather than by origin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `course "demo"`.
        what: String,
    },
    /// The thing exists already and may not be replaced.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists.
        what: String,
    },
    /// A precondition failed (a lock is held, a lease expired, a newer generation exists).
    #[error("{0}")]
    Precondition(String),
    /// The input is invalid; the message names the culprit.
    #[error("{0}")]
    InvalidInput(String),
    /// A transient failure: retrying may succeed.
    #[error("{what} unavailable: {source}")]
    Unavailable {
        /// What could not be reached.
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Any other failure of a backend.
    #[error("{backend}: {source}")]
    Backend {
        /// The backend, e.g. `sqlite`.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// An [`Error::InvalidInput`] with `msg`.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    /// A [`Error::Backend`] from any error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// Whether retrying the operation may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}
