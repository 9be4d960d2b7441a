//! From a course-relative path to an open file: which chunk holds it, ensure that chunk,
//! and open the file without ever leaving the chunk's directory.

use std::fs::{File, Metadata};
use std::io;
use std::path::PathBuf;

use kiln_core::ids::{CourseId, VersionId};
use kiln_core::manifest::{ManifestEntry, normalize_path};
use kiln_core::{Error, Result};

use crate::cache::{ChunkCache, Ensured};

/// A file of a version, with its chunk ensured and pinned while this value lives.
#[derive(Debug)]
pub struct ResolvedFile {
    /// The ensured chunk (and the pin).
    pub ensured: Ensured,
    /// The chunk that holds the file.
    pub chunk: ManifestEntry,
    /// The normalised course-relative path.
    pub rel_path: String,
    /// Where the file is inside the chunk's directory (not yet checked: see
    /// [`ResolvedFile::open`]).
    pub file: PathBuf,
    /// The chunk's directory; every byte served comes from below it.
    pub chunk_dir: PathBuf,
}

impl ResolvedFile {
    /// Opens the file (blocking). Its real path, with every symlink resolved, must stay
    /// inside the chunk's directory and be a regular file; anything else is not found.
    pub fn open(&self) -> Result<(File, Metadata)> {
        let missing = || Error::not_found(format!("file {:?}", self.rel_path));
        let io_err = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => missing(),
            _ => Error::backend("kiln-load", e),
        };
        let real = match self.without_symlinks().map_err(io_err)? {
            Some(p) => p,
            None => {
                // A symlink on the way (legal inside a chunk): resolve it fully and check.
                let real = std::fs::canonicalize(&self.file).map_err(io_err)?;
                if !real.starts_with(&self.chunk_dir) {
                    tracing::warn!(path = %self.rel_path, "refusing a file whose real path leaves its chunk");
                    return Err(missing());
                }
                real
            }
        };
        let file = File::open(&real).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(missing());
        }
        Ok((file, meta))
    }

    /// The file's path when no component below the (canonical) chunk directory is a
    /// symlink, checked with one `lstat` per component; `None` if one is. Much cheaper than
    /// `canonicalize`, which reads every link of the whole path, and the common case.
    fn without_symlinks(&self) -> io::Result<Option<PathBuf>> {
        let Ok(rel) = self.file.strip_prefix(&self.chunk_dir) else {
            return Ok(None);
        };
        let mut cur = self.chunk_dir.clone();
        for c in rel.components() {
            cur.push(c);
            if std::fs::symlink_metadata(&cur)?.file_type().is_symlink() {
                return Ok(None);
            }
        }
        Ok(Some(cur))
    }
}

impl ChunkCache {
    /// Finds the chunk of `version` (default: the current version) that holds the
    /// course-relative `path`, ensures it, and says where the file is. Bad paths (`..`,
    /// absolute, backslashes, control characters) are invalid input.
    pub async fn resolve_file(
        &self,
        course: &CourseId,
        version: Option<&VersionId>,
        path: &str,
    ) -> Result<ResolvedFile> {
        self.timed(self.resolve_inner(course, version, path)).await
    }

    async fn resolve_inner(
        &self,
        course: &CourseId,
        version: Option<&VersionId>,
        path: &str,
    ) -> Result<ResolvedFile> {
        let rel = normalize_path(path)?;
        let at = self.at(course, version).await?;
        let version = &at.version;
        let candidates: Vec<ManifestEntry> = at
            .manifest
            .candidates_for_path(&rel)
            .into_iter()
            .cloned()
            .collect();
        let missing = || {
            Error::not_found(format!(
                "file {rel:?} in version {version} of course {course}"
            ))
        };
        let Some(first) = candidates.first() else {
            return Err(missing());
        };
        let paths = self.inner().paths.clone();
        if !first.is_gathered() {
            let chunk = first.clone();
            let ensured = self
                .ensure_entries(course, &at, vec![chunk.clone()])
                .await?;
            let chunk_dir = paths.chunk_dir(course, &chunk.id);
            let file = chunk_dir.join(&rel[chunk.root.len() + 1..]);
            return Ok(ResolvedFile {
                ensured,
                chunk,
                rel_path: rel,
                file,
                chunk_dir,
            });
        }
        // Gathered chunks: ensure them all (few, small), take the first that has the file.
        let ensured = self.ensure_entries(course, &at, candidates.clone()).await?;
        for chunk in candidates {
            let chunk_dir = paths.chunk_dir(course, &chunk.id);
            let file = chunk_dir.join(&rel);
            if tokio::fs::symlink_metadata(&file).await.is_ok() {
                return Ok(ResolvedFile {
                    ensured,
                    chunk,
                    rel_path: rel,
                    file,
                    chunk_dir,
                });
            }
        }
        Err(missing())
    }
}
