//! The `Handler` trait: what a library does for each job type, and the types it exchanges.
//!
//! Embedders implement [`Handler`] in Rust; the declarative handlers of the config file
//! ([`crate::declarative`]) implement it too. Handlers must be idempotent: jobs are
//! delivered at least once.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::Result;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::render_cache::{CacheEntry, Meta};
use kiln_core::time::Timestamp;
use serde_json::Value;

/// What a new-build or producer job hands to its handler.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The library.
    pub library: LibraryName,
    /// The run.
    pub run: RunId,
    /// The build's generation.
    pub generation: u64,
    /// The build's label (set on new-build jobs; empty on producer jobs).
    pub build: String,
    /// `Some(group)` when the run rewrites one producer group only.
    pub group: Option<String>,
    /// Items per producer page, from the library's config.
    pub page_size: u32,
}

/// One cache entry to render.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderItem {
    /// The cache key.
    pub key: String,
    /// The producer group the entry belongs to.
    pub group: String,
    /// Small props or a reference; the encoded job must stay under
    /// [`crate::payload::MAX_PAYLOAD_BYTES`].
    pub props: Value,
}

/// A job that a new-build or producer job asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A producer job with the handler's cursor (e.g. the next page).
    Producer {
        /// The cursor handed back to [`Handler::produce`].
        cursor: Value,
    },
    /// A render job.
    Render(RenderItem),
}

/// A render result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The entry's bytes.
    pub bytes: Bytes,
    /// Their media type.
    pub content_type: String,
    /// Named values to store beside them (an HTTP renderer's `x-kiln-meta-*` headers).
    pub meta: Meta,
}

impl Rendered {
    /// A result of `bytes` of `content_type`, with no metadata.
    pub fn new(bytes: impl Into<Bytes>, content_type: impl Into<String>) -> Self {
        Rendered {
            bytes: bytes.into(),
            content_type: content_type.into(),
            meta: Meta::new(),
        }
    }

    /// The cache entry of this result for `key` of `group` at `generation`, written at
    /// `written_at`, with no expiry: the one way a render becomes an entry (the worker's
    /// render jobs and the read path's render-through).
    pub(crate) fn into_entry(
        self,
        key: String,
        group: String,
        generation: u64,
        written_at: Timestamp,
    ) -> CacheEntry {
        CacheEntry {
            key,
            bytes: self.bytes,
            content_type: self.content_type,
            generation,
            group,
            written_at,
            expires_at: None,
            meta: self.meta,
            stale: false,
        }
    }
}

/// Why a render did not produce an entry: transient (try again) or permanent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// A transient failure (a 5xx, a timeout, a refused connection): retry with backoff,
    /// no sooner than `after` when the renderer said so.
    Retry {
        /// The renderer's own delay (e.g. `Retry-After`), if any.
        after: Option<Duration>,
        /// What failed, kept for the dead letter.
        reason: String,
    },
    /// A permanent failure: the job becomes a dead letter at once.
    Fail(String),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Retry { reason, .. } => write!(f, "{reason} (transient)"),
            RenderError::Fail(reason) => f.write_str(reason),
        }
    }
}

/// A library's job handlers.
///
/// `new_build` and `produce` return more jobs; a transient error
/// ([`kiln_core::Error::is_transient`]) is retried with backoff, any other error makes the
/// job a dead letter with its message. Pagination is the handler's choice: `new_build` may
/// return one producer for page 0 whose `produce` returns its render jobs plus the producer
/// of the next page, or every producer at once.
#[async_trait]
pub trait Handler: Send + Sync + Debug + 'static {
    /// The first job of a run: the run's producer (or render) jobs.
    async fn new_build(&self, ctx: &BuildContext) -> Result<Vec<Work>>;

    /// A producer job: its render jobs, and further producer jobs if any.
    async fn produce(&self, ctx: &BuildContext, cursor: &Value) -> Result<Vec<Work>>;

    /// Renders one key.
    async fn render(&self, key: &str, props: &Value) -> Result<Rendered, RenderError>;

    /// The item to render for a live miss of `key` (render-through), or `None` when the
    /// key is not one the library produces. The default renders the key with no props.
    async fn live_item(&self, key: &str) -> Result<Option<RenderItem>> {
        Ok(Some(RenderItem {
            key: key.to_string(),
            group: String::new(),
            props: Value::Null,
        }))
    }

    /// The build label when a reheat is started without one (e.g. a course's current
    /// version); `None` lets the caller pick one.
    async fn default_build(&self) -> Result<Option<String>> {
        Ok(None)
    }
}
