//! This crate's private error type and its mapping onto kiln-core's semantic variants.

/// Everything that can go wrong inside kiln-redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A command failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// A stored value does not decode (a key written by something else).
    #[error("corrupt entry {key:?}: {why}")]
    Corrupt {
        /// The Redis key.
        key: String,
        /// What is wrong with it.
        why: std::borrow::Cow<'static, str>,
    },
    /// An error that already has its kiln meaning (bad input, ...).
    #[error(transparent)]
    Core(#[from] kiln_core::Error),
}

impl From<Error> for kiln_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(e) => e,
            Error::Redis(e)
                if e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_connection_dropped()
                    || e.is_timeout() =>
            {
                kiln_core::Error::Unavailable {
                    what: "redis".into(),
                    source: Box::new(e),
                }
            }
            e => kiln_core::Error::backend("redis", e),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
