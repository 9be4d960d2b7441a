//! Small blocking filesystem helpers: read-only trees, removing them, what they take on disk,
//! file locks; and [`blocking`], which runs such work off the async threads.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Makes every directory under `dir` (not `dir` itself, see [`seal`]) read-only, without
/// following symlinks. Files are written read-only already.
pub(crate) fn seal_subdirs(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            seal_subdirs(&e.path())?;
            fs::set_permissions(e.path(), fs::Permissions::from_mode(0o555))?;
        }
    }
    Ok(())
}

/// Makes `dir` itself read-only. Done after the rename into place: Linux wants write
/// permission on a directory to move it to another parent.
pub(crate) fn seal(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
}

/// Makes `dir` itself writable again, so that it can be renamed away.
pub(crate) fn unseal(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
}

/// Removes a tree that may hold read-only directories. Symlinks are removed, never followed.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    if meta.permissions().mode() & 0o200 == 0 {
        unseal(path)?;
    }
    for e in fs::read_dir(path)? {
        remove_tree(&e?.path())?;
    }
    fs::remove_dir(path)
}

/// What each file, directory and link costs beyond the blocks `stat` reports: its inode.
/// 512 bytes is XFS's default inode size (ext4's is 256, set aside when the file system is
/// made, so there this counts inodes that are not free space: a bound, not a measure).
/// Without it a chunk of many empty files would count as nothing.
pub(crate) const INODE_BYTES: u64 = 512;

/// What the tree at `dir` takes on disk: for `dir` itself and every entry below it (links
/// not followed), its allocated blocks (`st_blocks` x 512, what `du` sums, so a one-byte
/// file counts a whole block) plus [`INODE_BYTES`]. Measured rather than computed from the
/// file sizes, so it holds for any block size, inline data or compression.
pub(crate) fn disk_usage(dir: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(dir)?;
    let mut total = meta.blocks() * 512 + INODE_BYTES;
    if meta.is_dir() {
        for e in fs::read_dir(dir)? {
            total += disk_usage(&e?.path())?;
        }
    }
    Ok(total)
}

/// Opens (creating) a lock file and takes its exclusive lock, blocking until it is free.
/// The lock is released when the returned file is dropped (or the process dies).
pub(crate) fn lock_exclusive(path: &Path) -> io::Result<File> {
    let f = open_lock(path)?;
    f.lock()?;
    Ok(f)
}

/// Like [`lock_exclusive`] but `None` when another holder has it.
pub(crate) fn try_lock_exclusive(path: &Path) -> io::Result<Option<File>> {
    let f = open_lock(path)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

fn open_lock(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    };
    match open() {
        // The lock directory was deleted with the rest of a disposable cache: make it again.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_parent(path)?;
            open()
        }
        r => r,
    }
}

/// Creates the parent directory of `path` (and its ancestors) if missing.
pub(crate) fn make_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) => fs::create_dir_all(p),
        None => Ok(()),
    }
}

/// `rename(from, to)`, creating `to`'s parent if it was deleted (staging is disposable too).
pub(crate) fn rename_into(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && from.exists() => {
            make_parent(to)?;
            fs::rename(from, to)
        }
        r => r,
    }
}

/// Runs blocking filesystem work off the async threads. An IO error is the cache disk's:
/// a [`kiln_core::Error::Disk`] saying `what` was being done (naming a chunk where there
/// is one, since an ensure's error reaches HTTP clients).
pub(crate) async fn blocking<T: Send + 'static>(
    what: impl Into<String>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> kiln_core::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| kiln_core::Error::disk(what, e)),
        Err(e) => Err(kiln_core::Error::backend("kiln-load", e)),
    }
}
