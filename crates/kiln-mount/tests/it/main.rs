//! Integration tests of kiln-mount: a real FUSE mount in this process over a real chunk
//! cache, read with plain file system calls. Skipped (saying so) where FUSE is missing,
//! unless `KILN_REQUIRE_FUSE=1` (as `.ci/run` sets), which makes a missing FUSE a failure.

mod faults;
mod reads;
mod support;
mod versions;
