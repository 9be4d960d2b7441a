//! Building a version directory: real directories down to each chunk root, and there a
//! relative symlink into the course's `.chunks/` (blocking code).
//!
//! A directory chunk (root `questions/topic/q1`) is linked at its root:
//! `<version>/questions/topic/q1 -> ../../../.chunks/<id>`. A gathered chunk (root "", paths
//! inside it course-relative, e.g. `courseInfo`) is linked whole at `<version>/.kiln/<kind>`,
//! and each of its files that no directory chunk of the manifest covers is linked at its own
//! course-relative path (`<version>/infoCourse.json -> ../.chunks/<id>/infoCourse.json`).
//! Files under a directory chunk's root (a question's `info.json`, its thumbnail) are served
//! by that chunk. Every link is relative and stays inside the course directory, so the course
//! directory can be bind-mounted whole.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kiln_core::manifest::{Manifest, ManifestEntry};

use crate::paths::CHUNKS_DIR;

/// Where gathered chunks are linked whole inside a version directory. A version's course
/// paths never start with '.', so it cannot collide with course content of a chunk root.
pub(crate) const GATHERED_DIR: &str = ".kiln";

/// The path an [`crate::Ensured`] reports for a chunk.
pub(crate) fn chunk_path(version_dir: &Path, e: &ManifestEntry) -> PathBuf {
    if e.is_gathered() {
        version_dir.join(GATHERED_DIR).join(e.kind.as_str())
    } else {
        version_dir.join(&e.root)
    }
}

/// Creates the links of chunk `e` in `version_dir`; `chunk_dir` is its extracted directory.
/// Idempotent: links that exist are left alone (a version never changes).
pub(crate) fn link_chunk(
    version_dir: &Path,
    chunk_dir: &Path,
    manifest: &Manifest,
    e: &ManifestEntry,
) -> io::Result<()> {
    fs::create_dir_all(version_dir)?;
    let id = e.id.to_hex();
    if !e.is_gathered() {
        let target = format!("{}{CHUNKS_DIR}/{id}", up(&e.root));
        return make_link(version_dir, &e.root, &target);
    }
    let whole = format!("{GATHERED_DIR}/{}", e.kind.as_str());
    make_link(
        version_dir,
        &whole,
        &format!("{}{CHUNKS_DIR}/{id}", up(&whole)),
    )?;
    let mut files = Vec::new();
    list_files(chunk_dir, "", &mut files)?;
    for rel in files {
        let covered = manifest
            .candidates_for_path(&rel)
            .first()
            .is_some_and(|c| !c.is_gathered());
        if !covered {
            make_link(
                version_dir,
                &rel,
                &format!("{}{CHUNKS_DIR}/{id}/{rel}", up(&rel)),
            )?;
        }
    }
    Ok(())
}

/// `../` once per segment of `rel`: from the link's parent directory up to the course
/// directory (the link's parent is `rel` minus one segment, below the version directory).
fn up(rel: &str) -> String {
    "../".repeat(rel.split('/').count())
}

/// Creates the symlink `version_dir/rel -> target`, and real directories above it.
fn make_link(version_dir: &Path, rel: &str, target: &str) -> io::Result<()> {
    let mut dir = version_dir.to_path_buf();
    let segs: Vec<&str> = rel.split('/').collect();
    let (name, parents) = segs.split_last().unwrap_or((&"", &[]));
    for seg in parents {
        dir.push(seg);
        match fs::symlink_metadata(&dir) {
            // A chunk root inside another chunk's root: creating directories here would
            // write into the outer chunk, which is immutable. The outer chunk wins.
            Ok(m) if m.file_type().is_symlink() => {
                tracing::warn!(path = %dir.display(), "chunk root {rel:?} is inside another chunk; not linked");
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    match std::os::unix::fs::symlink(target, dir.join(name)) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Every file and symlink under `dir`, as `/`-separated paths relative to it.
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if e.file_type()?.is_dir() {
            list_files(&e.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_climb_to_the_course_directory() {
        assert_eq!(up("elements"), "../");
        assert_eq!(up("questions/topic/q1"), "../../../");
    }
}
