//! kiln-publish: the published view of the catalog in the object store, which is all a
//! server reads to serve content.
//!
//! A sync publishes, beside the chunks and in the same publish that writes the catalog:
//! - per version a **root** (`kiln/roots/<id>.json`) listing its manifest's **segments**
//!   (`kiln/segments/<id>.json`) and their chunks' tables of contents (`kiln/tocs/<id>.json`),
//!   all named by the BLAKE3 of their bytes, so immutable and shared between versions: a
//!   one-question change writes one segment, one table-of-contents segment and a root;
//! - per version a **pointer** `kiln/versions/<course>/<version>.json` naming its root;
//! - one fleet-wide **head** `kiln/head.json`: every course's current version and root, with
//!   a sequence number. It is the only object that changes.
//!
//! [`writer`] makes them from the catalog (the truth); [`PublishedView`] reads them with a
//! disk cache by id and follows the head (a conditional GET on an interval, or at once when
//! told); [`CatalogView`] answers the same [`ContentView`](kiln_core::content::ContentView)
//! from the catalog itself; [`check`] compares the published objects with the catalog for
//! `kiln verify` and rewrites what is wrong.

pub mod check;
pub mod format;
pub mod writer;

mod catalog_view;
mod keys;
mod objects;
mod view;

pub use catalog_view::CatalogView;
pub use view::{HeadChange, PublishedView, ViewMetrics, ViewOptions};
