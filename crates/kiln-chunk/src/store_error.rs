//! Object-store errors: which may go away on retry, and what they mean as a
//! [`kiln_core::Error`]. Every caller of the store (sync's uploads, checks and gc, load's
//! fetches) classifies them here.

use kiln_core::Error;

/// Whether an object-store error may go away on retry. A `Generic` error is a request that
/// failed on its way (a refused connection, a timeout, a 5xx after the client's own retries)
/// and a `JoinError` a lost task; every other error is the store's answer (not found,
/// exists, a failed precondition, no permission, a bad configuration), which asking again
/// does not change.
pub fn is_transient(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// Maps a store error to kiln's error; `what` says what was being done (`reading <key>`).
/// Transient errors become [`Error::Unavailable`], a missing or existing object
/// [`Error::NotFound`] or [`Error::AlreadyExists`], anything else [`Error::Backend`].
pub fn to_error(what: &str, e: object_store::Error) -> Error {
    if is_transient(&e) {
        return Error::Unavailable {
            what: format!("object store ({what})"),
            source: Box::new(e),
        };
    }
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound {
            what: format!("{what}: object"),
        },
        object_store::Error::AlreadyExists { .. } => Error::AlreadyExists {
            what: format!("{what}: object"),
        },
        e => Error::backend("object_store", format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_meaning() {
        let generic = || object_store::Error::Generic {
            store: "test",
            source: "connection refused".into(),
        };
        assert!(is_transient(&generic()));
        let e = to_error("reading chunks/ab/x", generic());
        assert!(e.is_transient(), "{e:?}");
        assert!(e.to_string().contains("reading chunks/ab/x"), "{e}");

        let missing = object_store::Error::NotFound {
            path: "chunks/ab/x".into(),
            source: "no such file".into(),
        };
        assert!(!is_transient(&missing));
        let e = to_error("reading chunks/ab/x", missing);
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");

        let e = to_error("writing chunks/ab/x", object_store::Error::NotImplemented);
        assert!(matches!(e, Error::Backend { .. }), "{e:?}");
        assert!(!e.is_transient());
    }
}
