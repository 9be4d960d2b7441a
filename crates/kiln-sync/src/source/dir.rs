//! The plain-directory source: a course on disk, not in git (its version id is a hash of the
//! manifest it bundles to). Nested `.git` directories (a checkout inside the course, with
//! its `.git/config` and credentials) are skipped at any depth: they are never content.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use kiln_core::{Error, Result};

use super::{Node, NodeKind, Oid, Reader, Source, Warnings, not_utf8, too_large};

/// A course directory on disk.
#[derive(Debug)]
pub(crate) struct DirSource {
    root: PathBuf,
    warnings: Warnings,
}

impl DirSource {
    /// The course rooted at `root`.
    pub(crate) fn new(root: PathBuf) -> Self {
        DirSource {
            root,
            warnings: Warnings::default(),
        }
    }
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::backend("fs", format!("{}: {e}", path.display()))
}

impl Source for DirSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn root_id(&self) -> Option<Oid> {
        None
    }

    fn reader(&self) -> Result<Box<dyn Reader>> {
        Ok(Box::new(DirReader {
            root: self.root.clone(),
            warnings: self.warnings.clone(),
        }))
    }

    fn warnings(&self) -> &Warnings {
        &self.warnings
    }
}

struct DirReader {
    root: PathBuf,
    warnings: Warnings,
}

impl DirReader {
    fn abs(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }
}

impl Reader for DirReader {
    fn list(&mut self, path: &str, _id: Option<Oid>) -> Result<Vec<Node>> {
        let abs = self.abs(path);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&abs).map_err(|e| io_err(&abs, e))? {
            let entry = entry.map_err(|e| io_err(&abs, e))?;
            let name = match entry.file_name().into_string() {
                Ok(n) => n,
                Err(raw) => return Err(not_utf8(path, &raw.to_string_lossy())),
            };
            // A repository's metadata (a `.git` directory, or the `.git` file of a worktree
            // or submodule checkout), never course content.
            if name == ".git" {
                continue;
            }
            let meta = entry.metadata().map_err(|e| io_err(&entry.path(), e))?;
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                NodeKind::Symlink
            } else if ft.is_dir() {
                NodeKind::Dir
            } else if ft.is_file() {
                NodeKind::File {
                    exec: meta.permissions().mode() & 0o111 != 0,
                }
            } else {
                // Sockets, fifos and devices are no course content.
                continue;
            };
            out.push(Node {
                name,
                kind,
                id: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&mut self, path: &str, _node: &Node, limit: u64, buf: &mut Vec<u8>) -> Result<()> {
        use std::io::Read;
        let abs = self.abs(path);
        let file = std::fs::File::open(&abs).map_err(|e| io_err(&abs, e))?;
        let size = file.metadata().map_err(|e| io_err(&abs, e))?.len();
        if size > limit {
            return Err(too_large(path, size, limit));
        }
        buf.clear();
        // Read at most one byte past the limit, in case the file grew since the stat.
        file.take(limit + 1)
            .read_to_end(buf)
            .map_err(|e| io_err(&abs, e))?;
        if buf.len() as u64 > limit {
            return Err(too_large(path, buf.len() as u64, limit));
        }
        Ok(())
    }

    fn link_target(&mut self, path: &str, _node: &Node) -> Result<String> {
        let abs = self.abs(path);
        let target = std::fs::read_link(&abs).map_err(|e| io_err(&abs, e))?;
        target
            .into_os_string()
            .into_string()
            .map_err(|_| Error::invalid(format!("symlink {path} has a target that is not UTF-8")))
    }

    fn warnings(&self) -> &Warnings {
        &self.warnings
    }
}
