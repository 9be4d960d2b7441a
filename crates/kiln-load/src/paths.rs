//! Where everything lives under the cache directory.

use std::path::PathBuf;

use kiln_core::ids::{ChunkId, CourseId, VersionId};

/// The directory names of the cache layout, rooted at a canonical cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    root: PathBuf,
}

/// The directory of a course's extracted chunks, inside the course directory. A version id
/// never starts with '.', so it cannot collide with a version directory.
pub(crate) const CHUNKS_DIR: &str = ".chunks";

impl Paths {
    /// `root` must be canonical: [`Paths::chunk_dir`] is compared with canonical paths.
    pub(crate) fn new(root: PathBuf) -> Self {
        Paths { root }
    }

    /// The canonical cache directory.
    pub(crate) fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub(crate) fn courses(&self) -> PathBuf {
        self.root.join("courses")
    }

    pub(crate) fn course_dir(&self, course: &CourseId) -> PathBuf {
        self.courses().join(course.as_str())
    }

    pub(crate) fn chunks_dir(&self, course: &CourseId) -> PathBuf {
        self.course_dir(course).join(CHUNKS_DIR)
    }

    pub(crate) fn chunk_dir(&self, course: &CourseId, id: &ChunkId) -> PathBuf {
        self.chunks_dir(course).join(id.to_hex())
    }

    pub(crate) fn version_dir(&self, course: &CourseId, version: &VersionId) -> PathBuf {
        self.course_dir(course).join(version.as_str())
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// The lock file that serialises fetches of one chunk of one course across processes.
    pub(crate) fn lock_file(&self, course: &CourseId, id: &ChunkId) -> PathBuf {
        self.locks().join(format!("{course}.{id}.lock"))
    }

    /// A fresh staging path for a chunk; the name lets start-up recovery find its lock.
    pub(crate) fn staging(&self, course: &CourseId, id: &ChunkId) -> PathBuf {
        self.tmp()
            .join(format!("{course}.{id}.{:016x}", rand::random::<u64>()))
    }

    /// A fresh path in staging for a directory on its way out.
    pub(crate) fn trash(&self, what: &str) -> PathBuf {
        self.tmp()
            .join(format!("trash-{what}-{:016x}", rand::random::<u64>()))
    }
}
