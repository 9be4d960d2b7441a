//! The FUSE file system: lookups, attributes and listings from the [`Namespace`], opens and
//! reads through [`Opens`]. Read-only (mounted `ro`): modes are git's (0644, 0755 for an
//! executable, 0755 for a directory), and nothing can be written.
//!
//! Versions never change, so the kernel may keep a version's entries and attributes for a
//! long time ([`LONG`]); the root, course directories and `current` links change as courses
//! and versions are published, and are kept for [`SHORT`].

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};
use kiln_core::Error;

use crate::namespace::{DirEntry, Inode, Namespace, ROOT};
use crate::open::Opens;
use crate::tree::NodeKind;

/// How long the kernel keeps a version's entries and attributes: versions are immutable.
pub(crate) const LONG: Duration = Duration::from_secs(24 * 3600);
/// How long it keeps the root's, a course directory's and a `current` link's.
pub(crate) const SHORT: Duration = Duration::from_secs(1);

/// The file system a session serves.
pub(crate) struct KilnFs {
    pub(crate) ns: Arc<Namespace>,
    pub(crate) opens: Arc<Opens>,
    /// Whether opens are seen and hold their chunk ([`crate::MountOptions::hold_open_files`]).
    pub(crate) hold: bool,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The mount's start: the mtime of the root and course directories.
    pub(crate) started: SystemTime,
}

fn errno(e: &Error) -> Errno {
    match e {
        Error::NotFound { .. } => Errno::ENOENT,
        _ => {
            tracing::warn!("mount: {e}");
            Errno::EIO
        }
    }
}

impl KilnFs {
    fn attr(&self, ino: u64, kind: FileType, size: u64, perm: u16, mtime: SystemTime) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// An inode's attributes and how long the kernel may keep them.
    fn getattr_of(&self, ino: u64) -> Result<(FileAttr, Duration), Errno> {
        // A version directory's attributes need no tree: `ls -l <course>` builds none.
        if let Some(mtime) = self.ns.version_mtime(ino) {
            return Ok((self.attr(ino, FileType::Directory, 0, 0o755, mtime), LONG));
        }
        let inode = self.ns.inode(ino).map_err(|e| errno(&e))?;
        Ok(match inode {
            Inode::Root | Inode::Course(_) => (
                self.attr(ino, FileType::Directory, 0, 0o755, self.started),
                SHORT,
            ),
            Inode::Current(course) => {
                let target = self.ns.current(&course).ok_or(Errno::ENOENT)?;
                (
                    self.attr(
                        ino,
                        FileType::Symlink,
                        target.as_str().len() as u64,
                        0o777,
                        self.started,
                    ),
                    SHORT,
                )
            }
            Inode::Node(t, ix) => {
                let node = t.tree.node(ix).ok_or(Errno::ENOENT)?;
                let a = match &node.kind {
                    NodeKind::Dir { .. } => self.attr(ino, FileType::Directory, 0, 0o755, t.mtime),
                    NodeKind::File { size, exec, .. } => self.attr(
                        ino,
                        FileType::RegularFile,
                        *size,
                        if *exec { 0o755 } else { 0o644 },
                        t.mtime,
                    ),
                    NodeKind::Link { target } => {
                        self.attr(ino, FileType::Symlink, target.len() as u64, 0o777, t.mtime)
                    }
                };
                (a, LONG)
            }
        })
    }

    fn lookup_ino(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let name_str = name.to_str().ok_or(Errno::ENOENT)?;
        match self.ns.inode(parent).map_err(|e| errno(&e))? {
            Inode::Root => self.ns.course(name_str).ok_or(Errno::ENOENT),
            Inode::Course(course) => self.ns.in_course(&course, name_str).ok_or(Errno::ENOENT),
            Inode::Current(_) => Err(Errno::ENOTDIR),
            Inode::Node(t, ix) => match &t.tree.node(ix).ok_or(Errno::ENOENT)?.kind {
                NodeKind::Dir { .. } => t
                    .tree
                    .child(ix, name.as_encoded_bytes())
                    .map(|c| t.ino(c))
                    .ok_or(Errno::ENOENT),
                _ => Err(Errno::ENOTDIR),
            },
        }
    }

    fn entries(&self, ino: u64) -> Result<Vec<DirEntry>, Errno> {
        match self.ns.inode(ino).map_err(|e| errno(&e))? {
            Inode::Root => Ok(self.ns.root_entries()),
            Inode::Course(course) => Ok(self.ns.course_entries(&course)),
            Inode::Current(_) => Err(Errno::ENOTDIR),
            Inode::Node(t, ix) => match &t.tree.node(ix).ok_or(Errno::ENOENT)?.kind {
                NodeKind::Dir { children } => Ok(children
                    .iter()
                    .map(|&c| {
                        let n = &t.tree.nodes[c as usize];
                        DirEntry {
                            ino: t.ino(c),
                            name: n.name.to_string(),
                            dir: matches!(n.kind, NodeKind::Dir { .. }),
                            link: matches!(n.kind, NodeKind::Link { .. }),
                        }
                    })
                    .collect()),
                _ => Err(Errno::ENOTDIR),
            },
        }
    }
}

impl Filesystem for KilnFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Link targets live in the page cache: a version's never change, and a `current`
        // link's cache is dropped when it flips (`Namespace::refresh`). A kernel without
        // the capability asks on every path walk instead.
        let _ = config.add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS);
        Ok(())
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Not a terminal (what `isatty` asks on every open in Python): the answer a regular
        // file gives.
        reply.error(Errno::ENOTTY);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self
            .lookup_ino(parent.0, name)
            .and_then(|ino| self.getattr_of(ino))
        {
            Ok((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_of(ino.0) {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.ns.inode(ino.0) {
            Ok(Inode::Current(course)) => match self.ns.current(&course) {
                Some(v) => reply.data(v.as_str().as_bytes()),
                None => reply.error(Errno::ENOENT),
            },
            Ok(Inode::Node(t, ix)) => match t.tree.node(ix).map(|n| &n.kind) {
                Some(NodeKind::Link { target }) => reply.data(target.as_bytes()),
                _ => reply.error(Errno::EINVAL),
            },
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if !self.hold {
            // ENOSYS: from now on the kernel opens files without asking, keeping their
            // pages across opens, and asks only to read a page it lacks (`read`, fh 0).
            return reply.error(Errno::ENOSYS);
        }
        match self.ns.inode(ino.0) {
            Ok(Inode::Node(t, ix)) => {
                let (chunk, rel) = match t.tree.node(ix).map(|n| &n.kind) {
                    Some(NodeKind::File { chunk, rel, .. }) => (*chunk, rel.clone()),
                    Some(NodeKind::Dir { .. }) => return reply.error(Errno::EISDIR),
                    _ => return reply.error(Errno::EINVAL),
                };
                self.opens.open(t, chunk, rel, reply);
            }
            Ok(Inode::Root | Inode::Course(_)) => reply.error(Errno::EISDIR),
            Ok(Inode::Current(_)) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if fh.0 != 0 {
            return self.opens.read(fh.0, offset, size, reply);
        }
        // A file the kernel opened without asking.
        match self.ns.inode(ino.0) {
            Ok(Inode::Node(t, ix)) => match t.tree.node(ix).map(|n| &n.kind) {
                Some(NodeKind::File { chunk, rel, .. }) => {
                    let (chunk, rel) = (*chunk, rel.clone());
                    self.opens.read_unheld(t, chunk, rel, offset, size, reply)
                }
                _ => reply.error(Errno::EISDIR),
            },
            Ok(_) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.opens.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // A version's directories never change: the kernel may keep their listings.
        let flags = match self.ns.inode(ino.0) {
            Ok(Inode::Node(..)) => FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            Ok(_) => FopenFlags::empty(),
            Err(e) => return reply.error(errno(&e)),
        };
        reply.opened(FileHandle(0), flags);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.entries(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        // Offsets: 1 and 2 are `.` and `..`, then entry i is 3 + i.
        let dots = [
            (ino.0, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
        ];
        for (i, (ino, kind, name)) in dots.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, e) in entries.iter().enumerate().skip(skip) {
            let kind = if e.dir {
                FileType::Directory
            } else if e.link {
                FileType::Symlink
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(e.ino), i as u64 + 3, kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // No extended attributes: ENOSYS makes the kernel stop asking.
        reply.error(Errno::ENOSYS);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to write back (files opened without asking, under --no-hold, get no
        // FOPEN_NOFLUSH): ENOSYS makes the kernel stop sending flushes.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        if mask.contains(fuser::AccessFlags::W_OK) {
            reply.error(Errno::EROFS)
        } else {
            reply.ok()
        }
    }
}
