//! The git source: a commit of a repository (bare or not), read from the object database
//! with gitoxide, without a checkout.

use std::path::{Path, PathBuf};

use gix::objs::FindExt;
use kiln_core::ids::VersionId;
use kiln_core::{Error, Result};

use super::{Node, NodeKind, Oid, Reader, Source, Warnings, not_utf8, too_large};

/// After touching about this many bytes of packs a reader reopens the repository, which
/// unmaps the pack pages it touched: mapped pages count towards the resident set, and without
/// this a full sync of a 1 GB course would keep the whole pack resident.
const REOPEN_AFTER_BYTES: u64 = 32 << 20;
/// What one object read is taken to touch at least: the kernel maps pages around a fault
/// (64 KiB by default), so scattered small reads touch far more than their size.
const TOUCH_BYTES: usize = 64 << 10;

fn git_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::backend("git", format!("{what}: {e}"))
}

/// A commit of a repository, and the course root tree inside it.
#[derive(Debug)]
pub(crate) struct GitSource {
    git_dir: PathBuf,
    display: String,
    version: VersionId,
    root: Oid,
    subdir: Option<String>,
    warnings: Warnings,
}

fn open_repo(git_dir: &Path) -> Result<gix::Repository> {
    let opts = gix::open::Options::isolated();
    gix::open_opts(git_dir, opts).map_err(|e| git_err(format!("opening {}", git_dir.display()), e))
}

/// The course root tree of `commit` (at `subdir`), or `None` if the subdir is missing.
fn tree_at(repo: &gix::Repository, commit: Oid, subdir: Option<&str>) -> Result<Option<Oid>> {
    let commit = repo
        .find_commit(commit)
        .map_err(|e| git_err(format!("reading commit {commit}"), e))?;
    let tree = commit
        .tree_id()
        .map_err(|e| git_err("reading a commit's tree", e))?
        .detach();
    let Some(sub) = subdir.filter(|s| !s.is_empty()) else {
        return Ok(Some(tree));
    };
    let tree = repo
        .find_tree(tree)
        .map_err(|e| git_err(format!("reading tree {tree}"), e))?;
    let entry = tree
        .lookup_entry_by_path(sub)
        .map_err(|e| git_err(format!("looking up {sub}"), e))?;
    Ok(entry.filter(|e| e.mode().is_tree()).map(|e| e.object_id()))
}

impl GitSource {
    /// Resolves `rev` in `repo` to a commit and the course root tree at `subdir`.
    pub(crate) fn open(
        repo: gix::Repository,
        path: &Path,
        rev: &str,
        subdir: Option<&str>,
    ) -> Result<GitSource> {
        let id = repo
            .rev_parse_single(rev)
            .map_err(|_| Error::not_found(format!("revision {rev:?} in {}", path.display())))?;
        let commit = id
            .object()
            .map_err(|e| git_err(format!("reading {rev}"), e))?
            .peel_to_commit()
            .map_err(|_| Error::invalid(format!("revision {rev:?} is not a commit")))?
            .id;
        let root = tree_at(&repo, commit, subdir)?.ok_or_else(|| {
            Error::not_found(format!(
                "subdirectory {:?} at revision {rev:?} of {}",
                subdir.unwrap_or_default(),
                path.display()
            ))
        })?;
        let short = commit.to_hex_with_len(12).to_string();
        Ok(GitSource {
            git_dir: repo.git_dir().to_path_buf(),
            display: format!("{} at {short}", path.display()),
            version: VersionId::new(commit.to_hex().to_string())?,
            root,
            subdir: subdir.map(str::to_string),
            warnings: Warnings::default(),
        })
    }

    /// The commit's version id.
    pub(crate) fn version(&self) -> &VersionId {
        &self.version
    }

    /// The course root tree of an older commit of the same repository (hex id), if it is
    /// there and has the subdirectory.
    pub(crate) fn root_of(&self, commit_hex: &str) -> Option<Oid> {
        let oid = Oid::from_hex(commit_hex.as_bytes()).ok()?;
        let repo = open_repo(&self.git_dir).ok()?;
        tree_at(&repo, oid, self.subdir.as_deref()).ok().flatten()
    }
}

impl Source for GitSource {
    fn describe(&self) -> String {
        self.display.clone()
    }

    fn root_id(&self) -> Option<Oid> {
        Some(self.root)
    }

    fn reader(&self) -> Result<Box<dyn Reader>> {
        Ok(Box::new(GitReader {
            repo: open_repo(&self.git_dir)?,
            git_dir: self.git_dir.clone(),
            buf: Vec::new(),
            since_open: 0,
            warnings: self.warnings.clone(),
        }))
    }

    fn warnings(&self) -> &Warnings {
        &self.warnings
    }
}

struct GitReader {
    repo: gix::Repository,
    git_dir: PathBuf,
    buf: Vec<u8>,
    since_open: u64,
    warnings: Warnings,
}

impl GitReader {
    fn account(&mut self, n: usize) -> Result<()> {
        self.since_open += n.max(TOUCH_BYTES) as u64;
        if self.since_open > REOPEN_AFTER_BYTES {
            self.repo = open_repo(&self.git_dir)?;
            self.since_open = 0;
        }
        Ok(())
    }
}

impl Reader for GitReader {
    fn list(&mut self, path: &str, id: Option<Oid>) -> Result<Vec<Node>> {
        let id = id.ok_or_else(|| git_err(path, "no tree id"))?;
        let iter = self
            .repo
            .objects
            .find_tree_iter(&id, &mut self.buf)
            .map_err(|e| git_err(format!("reading tree {id} ({path})"), e))?;
        let mut out = Vec::new();
        for entry in iter {
            let e = entry.map_err(|e| git_err(format!("decoding tree {id} ({path})"), e))?;
            let name = match std::str::from_utf8(e.filename) {
                Ok(n) => n.to_string(),
                Err(_) => return Err(not_utf8(path, &String::from_utf8_lossy(e.filename))),
            };
            let kind = if e.mode.is_tree() {
                NodeKind::Dir
            } else if e.mode.is_link() {
                NodeKind::Symlink
            } else if e.mode.is_blob() {
                NodeKind::File {
                    exec: e.mode.is_executable(),
                }
            } else {
                // A gitlink: the walk warns about it (on the new side only) and skips it.
                NodeKind::Submodule
            };
            out.push(Node {
                name,
                kind,
                id: Some(e.oid.to_owned()),
            });
        }
        let n = self.buf.len();
        self.account(n)?;
        Ok(out)
    }

    fn read(&mut self, path: &str, node: &Node, limit: u64, buf: &mut Vec<u8>) -> Result<()> {
        let id = node.id.ok_or_else(|| git_err(path, "no blob id"))?;
        let size = self
            .repo
            .find_header(id)
            .map_err(|e| git_err(format!("reading {path}"), e))?
            .size();
        if size > limit {
            return Err(too_large(path, size, limit));
        }
        let blob = self
            .repo
            .objects
            .find_blob(&id, buf)
            .map_err(|e| git_err(format!("reading {path}"), e))?;
        let (at, n) = (blob.data.as_ptr() as usize, blob.data.len());
        // `find_blob` may leave the data at an offset of `buf`: make `buf` exactly the data.
        let start = at.saturating_sub(buf.as_ptr() as usize);
        if start != 0 || n != buf.len() {
            buf.drain(..start);
            buf.truncate(n);
        }
        self.account(n)
    }

    fn link_target(&mut self, path: &str, node: &Node) -> Result<String> {
        let mut buf = Vec::new();
        self.read(path, node, 4096, &mut buf)?;
        String::from_utf8(buf)
            .map_err(|_| Error::invalid(format!("symlink {path} has a target that is not UTF-8")))
    }

    fn warnings(&self) -> &Warnings {
        &self.warnings
    }
}
