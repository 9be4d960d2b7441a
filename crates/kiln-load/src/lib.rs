//! kiln-load: the local chunk cache that every app server runs.
//!
//! [`ChunkCache::ensure`] makes chunks of a course version present on local disk and returns
//! the version directory to read them from. The layout on disk (see [`ChunkCache`]):
//!
//! ```text
//! <cache>/courses/<course>/.chunks/<chunk id>/     extracted chunk: complete or absent, read-only
//! <cache>/courses/<course>/<version>/<chunk root>  -> relative symlink into ../.chunks/<chunk id>
//! <cache>/courses/<course>/<version>/.kiln/<kind>  -> a gathered chunk (root ""), whole
//! <cache>/courses/<course>/<version>/<file>        -> a gathered chunk's file outside every chunk root
//! <cache>/tmp/                                     staging, emptied at start
//! <cache>/locks/                                   one lock file per chunk, across processes
//! ```
//!
//! A chunk is downloaded once per course however many requests, versions or processes want it
//! (a shared future in the process, a file lock across processes), verified against its id
//! while it is decompressed, and renamed into place, so a reader never sees half a chunk.
//! Chunk directories are kept under a byte budget (LRU, never evicting a pinned chunk), and
//! version directories that are no longer current are removed after a grace period by
//! [`ChunkCache::maintain`].
//!
//! The budget counts what a chunk directory takes on disk, measured once it is unpacked:
//! every entry's allocated blocks (what `du` sums: a one-byte file is a 4 KiB block on
//! ext4) plus an inode allowance, so a question of 5,000 one-byte files counts about 23 MB,
//! not 5 KB. So at rest `du` of the chunk directories stays within the budget (or within
//! what pins and leases hold past it). The slack: before a fetch only the bundle's tar size
//! is known, and room is made for that; while chunks are being unpacked the disk may hold
//! each one's difference (block rounding and inodes) past the budget, until it is measured
//! and the eviction after it runs. Version directories (a link per chunk root, and real
//! directories above them), staging, lock files and the published view's objects are not
//! counted.

mod cache;
mod config;
mod current;
mod fetch;
mod fsutil;
mod health;
mod index;
mod lease;
mod links;
mod metrics;
mod paths;
mod prefetch;
mod probe;
mod recover;
mod resolve;

pub use cache::{ChunkCache, Ensured, Maintained, Pin};
pub use config::{LeaseLimits, LoadConfig};
pub use current::Current;
pub use health::{Backend, BackendState};
pub use lease::{LeaseId, LeaseInfo};
pub use metrics::MetricsSnapshot;
pub use resolve::ResolvedFile;
