//! The object keys of the published view, all under `kiln/`, beside `chunks/`.

use kiln_core::ids::{CourseId, VersionId};
use object_store::path::Path;

use crate::format::Digest;

/// The fleet-wide head: every course's current version and root.
pub(crate) fn head() -> Path {
    Path::from("kiln/head.json")
}

/// What a content-addressed object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A version's root: its segments.
    Root,
    /// A run of manifest entries.
    Segment,
    /// The tables of contents of one segment's chunks.
    Tocs,
}

impl Kind {
    /// The directory name, under `kiln/` in the store and in the disk cache.
    pub(crate) fn dir(self) -> &'static str {
        match self {
            Kind::Root => "roots",
            Kind::Segment => "segments",
            Kind::Tocs => "tocs",
        }
    }
}

/// A content-addressed object's key.
pub(crate) fn object(kind: Kind, id: &Digest) -> Path {
    Path::from(format!("kiln/{}/{id}.json", kind.dir()))
}

/// The pointer from a version to its root.
pub(crate) fn pointer(course: &CourseId, version: &VersionId) -> Path {
    Path::from(format!("kiln/versions/{course}/{version}.json"))
}

/// The prefix listing a course's version pointers.
pub(crate) fn pointers(course: &CourseId) -> Path {
    Path::from(format!("kiln/versions/{course}"))
}

/// The version a pointer key names, if `key` is one of `course`'s.
pub(crate) fn pointer_version(course: &CourseId, key: &Path) -> Option<VersionId> {
    let key = key.as_ref();
    let rest = key.strip_prefix(&format!("kiln/versions/{course}/"))?;
    VersionId::new(rest.strip_suffix(".json")?).ok()
}
