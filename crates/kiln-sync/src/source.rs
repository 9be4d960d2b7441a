//! Sources of course content behind one small trait: a git revision or a plain directory.
//!
//! A [`Source`] is shared by the walker and the bundling threads; each thread asks it for its
//! own [`Reader`] (gix repositories are not `Sync`, and a reader that is dropped now and then
//! releases the pack pages it mapped, which keeps the resident set small on a large course).

pub(crate) mod dir;
pub(crate) mod git;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_core::ids::VersionId;
use kiln_core::{Error, Result};

/// A git object id, as the git source names trees and blobs.
pub(crate) type Oid = gix::ObjectId;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Whether git's exec bit (or the file's x bit) is set.
        exec: bool,
    },
    /// A symbolic link.
    Symlink,
    /// A git submodule (gitlink): its content is in another repository, so it is not shipped.
    Submodule,
}

/// One entry of a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// The entry's name (UTF-8: listing fails on any other name).
    pub(crate) name: String,
    /// Directory, file or symlink.
    pub(crate) kind: NodeKind,
    /// The git object id; `None` for a plain directory.
    pub(crate) id: Option<Oid>,
}

/// A course's content at one version.
pub(crate) trait Source: Send + Sync {
    /// A short description for messages, e.g. `/srv/course.git at 1a2b3c`.
    fn describe(&self) -> String;

    /// The git tree id of the course root, if the source has one.
    fn root_id(&self) -> Option<Oid>;

    /// A reader for the calling thread.
    fn reader(&self) -> Result<Box<dyn Reader>>;

    /// The warnings of this sync so far (shared with every reader).
    fn warnings(&self) -> &Warnings;
}

/// Reads directories and files of a [`Source`] (or of an older commit of the same repo).
pub(crate) trait Reader {
    /// Lists the directory at course-relative `path` (`""` is the root) with git tree `id`.
    /// Fails with an error naming the path on a name that is not UTF-8.
    fn list(&mut self, path: &str, id: Option<Oid>) -> Result<Vec<Node>>;

    /// Reads the file at course-relative `path` into `buf`; fails naming the path if it is
    /// larger than `limit` bytes.
    fn read(&mut self, path: &str, node: &Node, limit: u64, buf: &mut Vec<u8>) -> Result<()>;

    /// The target of the symlink at course-relative `path`.
    fn link_target(&mut self, path: &str, node: &Node) -> Result<String>;

    /// Where the walk and the builders report what syncs but deserves a look.
    fn warnings(&self) -> &Warnings;
}

/// The warnings of one sync (a submodule, a Git LFS pointer): each is logged once with
/// `tracing::warn!` and ends up in the sync report. Shared by the walk and the bundling
/// threads; a set, because the walk and a builder may both see one directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Warnings(Arc<Mutex<BTreeSet<String>>>);

impl Warnings {
    /// Records `msg` (and logs it the first time).
    pub(crate) fn push(&self, msg: String) {
        // A poisoned set means a builder panicked; the sync fails anyway.
        if let Ok(mut set) = self.0.lock()
            && !set.contains(&msg)
        {
            tracing::warn!("{msg}");
            set.insert(msg);
        }
    }

    /// Every warning so far, sorted.
    pub(crate) fn to_vec(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Warns about a submodule at course-relative `path`.
    pub(crate) fn submodule(&self, path: &str) {
        self.push(format!(
            "submodule {path:?} is not shipped: its content is in another repository"
        ));
    }

    /// Warns if `data`, the file at `path`, is a Git LFS pointer rather than the content.
    pub(crate) fn check_lfs(&self, path: &str, data: &[u8]) {
        if data.starts_with(LFS_POINTER) {
            self.push(format!(
                "{path:?} is a Git LFS pointer: kiln ships the pointer, not the file it stands for"
            ));
        }
    }
}

/// How every Git LFS pointer file begins.
const LFS_POINTER: &[u8] = b"version https://git-lfs.github.com/spec/v1";

/// Refuses a course-relative path with a control character (a newline, a tab, ...) in a
/// name: such a file syncs but cannot be served (HTTP paths, log lines and the app's own
/// listings all break on it). The message escapes the path, so it stays one line.
pub(crate) fn check_printable(path: &str) -> Result<()> {
    if path.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "path {path:?} has a control character in its name (kiln ships printable names only)"
        )));
    }
    Ok(())
}

/// Refuses the course-relative path of a file or link that syncs but cannot be served:
/// one [`check_printable`] refuses, or one longer than a server's file system holds once
/// the cache lays it out ([`kiln_core::path_limits`]: a name over 255 bytes, a path over
/// 3,072 as counted there). Checked on files rather than directories, so the error names
/// the whole path (a directory too long has no file that fits below it).
pub(crate) fn check_path(path: &str) -> Result<()> {
    check_printable(path)?;
    kiln_core::path_limits::check(path)
}

/// An opened source and what sync needs to know about it.
pub(crate) struct Opened {
    /// The source.
    pub(crate) source: std::sync::Arc<dyn Source>,
    /// The version id, known up front for git (`None` for a directory: computed at the end).
    pub(crate) version: Option<VersionId>,
    /// The git source, for incremental sync against an older commit.
    pub(crate) git: Option<std::sync::Arc<git::GitSource>>,
}

/// Opens `path` as a git repository (bare or not) at `rev`, else as a plain directory.
pub(crate) fn open(path: &Path, rev: Option<&str>, subdir: Option<&str>) -> Result<Opened> {
    let subdir = match subdir {
        Some(s) => Some(clean_subdir(s)?),
        None => None,
    };
    if !path.is_dir() {
        return Err(Error::invalid(format!(
            "{}: neither a git repository nor a directory",
            path.display()
        )));
    }
    match gix::open(path) {
        Ok(repo) => {
            let git = std::sync::Arc::new(git::GitSource::open(
                repo,
                path,
                rev.unwrap_or("HEAD"),
                subdir.as_deref(),
            )?);
            Ok(Opened {
                version: Some(git.version().clone()),
                source: git.clone(),
                git: Some(git),
            })
        }
        Err(_) => {
            if let Some(rev) = rev {
                return Err(Error::invalid(format!(
                    "{}: not a git repository, so --rev {rev:?} cannot apply",
                    path.display()
                )));
            }
            let root = match &subdir {
                Some(s) => path.join(s),
                None => path.to_path_buf(),
            };
            if !root.is_dir() {
                return Err(Error::not_found(format!(
                    "subdirectory {:?} of {}",
                    subdir.unwrap_or_default(),
                    path.display()
                )));
            }
            Ok(Opened {
                source: std::sync::Arc::new(dir::DirSource::new(root)),
                version: None,
                git: None,
            })
        }
    }
}

/// Checks a `--subdir` value: relative, `/`-separated, no `.` or `..` segments.
fn clean_subdir(s: &str) -> Result<String> {
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    kiln_core::manifest::normalize_path(trimmed)
        .map_err(|_| Error::invalid(format!("invalid --subdir {s:?}: use a relative path")))
}

/// The default course id of a source: its directory name, made a valid [`kiln_core::ids::CourseId`].
pub(crate) fn default_course_name(path: &Path) -> String {
    let abs: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.strip_suffix(".git").unwrap_or(&name);
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with('.') {
        out.remove(0);
    }
    out.truncate(200);
    if out.is_empty() {
        "course".to_string()
    } else {
        out
    }
}

/// Joins a course-relative directory and a name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The error for a file name that is not UTF-8.
pub(crate) fn not_utf8(dir: &str, lossy: &str) -> Error {
    Error::invalid(format!(
        "path is not UTF-8: {:?} (kiln ships UTF-8 paths only)",
        join(dir, lossy)
    ))
}

/// The error for a file over the size limit.
pub(crate) fn too_large(path: &str, size: u64, limit: u64) -> Error {
    Error::invalid(format!(
        "file {path} is {size} bytes, over the limit of {limit} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn course_names_are_sanitised() {
        assert_eq!(
            default_course_name(Path::new("/x/my course.git")),
            "my-course"
        );
        assert_eq!(default_course_name(Path::new("/x/.hidden")), "hidden");
    }
}
