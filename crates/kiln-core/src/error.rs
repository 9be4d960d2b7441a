//! The one error type of kiln's library crates, with semantic variants that callers match on.
//!
//! An error's `Display` is its whole message, causes included (`sqlite: database is locked`),
//! so `std::error::Error::source` returns nothing: a printer that walks the chain (anyhow's
//! `{:#}`, a log line) would otherwise say every cause twice.

/// A boxed error from a backend client or the operating system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which kind of limit an [`Error::Limit`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// A count (leases held): HTTP 429.
    Count,
    /// Bytes of storage: HTTP 507.
    Storage,
}

/// What went wrong, by meaning rather than by origin.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The named thing does not exist.
    NotFound {
        /// What was looked for, e.g. `course "demo"`.
        what: String,
    },
    /// The thing exists already and may not be replaced.
    AlreadyExists {
        /// What exists.
        what: String,
    },
    /// A precondition failed (a lock is held, a lease expired, a newer generation exists).
    Precondition(String),
    /// The input is invalid; the message names the culprit.
    InvalidInput(String),
    /// A service that kiln called refused the request (a renderer answered 4xx): retrying
    /// the same request will not help. The message carries the service's own.
    Upstream(String),
    /// A caller reached a limit on what it may hold (leases, the bytes they keep on disk):
    /// it must release something, or wait for it to expire, before asking again. The
    /// message names the limit and the setting that sets it.
    Limit {
        /// Whether things (429) or bytes of storage (507) ran out.
        kind: LimitKind,
        /// What was reached, naming the setting.
        message: String,
    },
    /// A transient failure: retrying may succeed.
    Unavailable {
        /// What could not be reached.
        what: String,
        /// Why (part of the message).
        source: BoxError,
    },
    /// The local disk refused an operation (no space left, a name too long, no permission):
    /// retrying the same operation will not help until the disk changes. `what` names the
    /// thing being written (a chunk, never a path of the machine), `source` the operating
    /// system's error, by whose kind a caller tells a full disk (`StorageFull`,
    /// `QuotaExceeded`) from the rest.
    Disk {
        /// What was being done, e.g. `extracting chunk question:q1 (<id>) of course demo`.
        what: String,
        /// The operating system's error (part of the message).
        source: std::io::Error,
    },
    /// Any other failure of a backend.
    Backend {
        /// The backend, e.g. `sqlite`.
        backend: &'static str,
        /// The underlying error (part of the message).
        source: BoxError,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotFound { what } => write!(f, "{what} not found"),
            Error::AlreadyExists { what } => write!(f, "{what} already exists"),
            Error::Precondition(m) | Error::InvalidInput(m) | Error::Upstream(m) => f.write_str(m),
            Error::Limit { message, .. } => f.write_str(message),
            Error::Unavailable { what, source } => {
                write!(f, "{what} unavailable: {}", Chain(&**source))
            }
            Error::Disk { what, source } => write!(f, "{what}: {source}"),
            Error::Backend { backend, source } => write!(f, "{backend}: {}", Chain(&**source)),
        }
    }
}

/// The message already holds every cause (see the module docs).
impl std::error::Error for Error {}

/// An error and its sources on one line, each cause once: a cause whose text the message
/// so far already holds (many client errors print their source in their own `Display`) is
/// not repeated.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut next = self.0.source();
        while let Some(e) = next {
            let m = e.to_string();
            if !m.is_empty() && !text.contains(&m) {
                text.push_str(": ");
                text.push_str(&m);
            }
            next = e.source();
        }
        f.write_str(&text)
    }
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

    /// A [`Error::Disk`]: `what` was being done when the disk answered `source`.
    pub fn disk(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Disk {
            what: what.into(),
            source,
        }
    }

    /// Whether the disk is full (no space, or a quota reached).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Disk { source, .. } if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ))
    }

    /// Whether retrying the operation may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Leaf;
    impl std::fmt::Display for Leaf {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("file is not a database")
        }
    }
    impl std::error::Error for Leaf {}

    /// Like many client errors: prints its source and returns it too.
    #[derive(Debug)]
    struct Wrapper(Leaf);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// A cause that only `source()` reports.
    #[derive(Debug)]
    struct Outer(Leaf);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("opening catalog.db")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_disk_error_says_what_and_why() {
        let e = Error::disk(
            "extracting chunk question:q1 of course demo",
            std::io::Error::from_raw_os_error(36),
        );
        assert!(
            e.to_string()
                .starts_with("extracting chunk question:q1 of course demo: "),
            "{e}"
        );
        assert!(!e.is_disk_full() && !e.is_transient());
        let full = Error::disk("x", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(full.is_disk_full());
    }

    #[test]
    fn each_cause_is_said_once() {
        let e = Error::backend("sqlite", Wrapper(Leaf));
        assert_eq!(
            e.to_string(),
            "sqlite: error returned from database: file is not a database"
        );
        assert!(std::error::Error::source(&e).is_none());
        let e = Error::backend("sqlite", Outer(Leaf));
        assert_eq!(
            e.to_string(),
            "sqlite: opening catalog.db: file is not a database"
        );
    }
}
