//! The sync memo's keys: the one place that names its three namespaces, which the catalog
//! stores (`Catalog::memo_get`/`memo_put`) and so are a persisted format.
//!
//! - `git:<tree id>`: the chunk a directory chunk's git tree bundled to.
//! - `gathered:<hash>`: the chunk a gathered chunk's member list (path, blob id, mode of
//!   each) bundled to.
//! - `basis:<course>:<version>`: what a version was synced with (subdirectory, layout,
//!   bundle format), so that the next sync may walk beside it.

use std::fmt::Display;

use kiln_core::ids::{CourseId, VersionId};

/// The key of a directory chunk by its git tree id.
pub(crate) fn git(tree: impl Display) -> String {
    format!("git:{tree}")
}

/// The key of a gathered chunk by the hash of its member list.
pub(crate) fn gathered(members_hash: impl Display) -> String {
    format!("gathered:{members_hash}")
}

/// The key recording what `version` of `course` was synced with.
pub(crate) fn basis(course: &CourseId, version: &VersionId) -> String {
    format!("basis:{course}:{version}")
}
