//! kiln-chunk: a chunk as it is stored, the one owner of kiln's persisted chunk format.
//!
//! kiln-sync writes chunks and kiln-load reads them; everything both sides must agree on
//! lives here, once:
//!
//! - [`bundle`]: the bundle format (a deterministic tar, zstd-compressed at
//!   [`bundle::ZSTD_LEVEL`], named by the BLAKE3 of the uncompressed tar): the writer, the
//!   in-memory reader and the streamed content check.
//! - [`unpack`]: the verified unpack into a directory (hashed while it is decompressed).
//! - [`scan`]: a stored bundle's id and entry paths in one pass (`kiln verify`).
//! - [`entry`]: the one rule for which entries (paths and symlink targets) a chunk may
//!   hold, applied by sync when it builds a bundle and by load when it unpacks one.
//! - [`key`]: the object key `chunks/<id[0..2]>/<id>.tar.zst` and its inverse.
//! - [`store_error`]: which object-store errors are transient, and how they become
//!   [`kiln_core::Error`]s.
//! - [`retry`]: the one retry loop for object-store calls, over [`kiln_core::backoff::Backoff`].
//! - [`tocs`]: chunks' tables of contents written to the catalog, read back from bundles
//!   where the catalog lacks one.
//!
//! The bundle bytes and the object keys are a persisted format: existing stores must keep
//! working and chunk ids must not change (the tests of [`bundle`] pin known ids and bytes).

pub mod bundle;
pub mod entry;
pub mod key;
pub mod retry;
pub mod scan;
pub mod store_error;
pub mod tocs;
pub mod unpack;
