//! kiln-core: the domain types, backend traits, errors and layout rules of kiln; no IO.
//!
//! Everything here is shared by every other crate: ids ([`ids`]), how a course is cut into
//! chunks ([`layout`]), manifests and path resolution ([`manifest`]), how long a path may be ([`path_limits`]), time ([`time`]), the one
//! retry delay policy ([`backoff`]), and the backend traits with their contracts ([`catalog`],
//! [`ledger`], [`queue`], [`render_cache`]; and [`content`], the read path's view of the catalog), the throttles the queues share ([`throttle`]), and chunks' tables of contents ([`toc`]).

pub mod backoff;
pub mod catalog;
pub mod content;
pub mod error;
pub mod histogram;
pub mod ids;
pub mod layout;
pub mod ledger;
pub mod manifest;
pub mod manifest_codec;
pub mod path_limits;
pub mod queue;
pub mod render_cache;
pub mod throttle;
pub mod time;
pub mod toc;

pub use error::{Error, Result};
