//! Before mounting: is FUSE here at all, and is a dead mount (its process killed) in the way?
//!
//! A FUSE mount whose process died stays in the mount table, and every access to it fails
//! with ENOTCONN ("Transport endpoint is not connected") until it is unmounted. `kiln mount`
//! on such a mountpoint unmounts it lazily (`fusermount3 -uz`, or `umount2(MNT_DETACH)` as
//! root) and says so; a mountpoint some live process serves is refused.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_core::{Error, Result};

/// What [`prepare`] found at the mountpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// A directory to mount on.
    Ready,
    /// A dead mount was there; it was unmounted lazily.
    RecoveredDeadMount,
}

/// Checks that this machine can mount FUSE file systems: the device, and (unless root) the
/// `fusermount3` helper from the fuse3 package.
pub fn check_fuse(device: &Path) -> Result<()> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::invalid(format!(
                "FUSE is not available on this machine: {} is missing. Load the kernel module \
                 (`modprobe fuse`); in a container, pass the device (`--device /dev/fuse`) and \
                 the SYS_ADMIN capability",
                device.display()
            )));
        }
        Err(e) => {
            return Err(Error::invalid(format!(
                "FUSE is not usable: cannot open {}: {e}",
                device.display()
            )));
        }
    }
    if !is_root() && fusermount().is_none() {
        return Err(Error::invalid(
            "FUSE is not usable: fusermount3 is not installed (it mounts FUSE file systems for \
             users other than root). Install the fuse3 package (Debian/Ubuntu: `apt-get install fuse3`)",
        ));
    }
    Ok(())
}

/// Makes `mountpoint` ready to mount on: created if missing; a dead FUSE mount there is
/// lazily unmounted; a live mount there is refused.
pub fn prepare(mountpoint: &Path) -> Result<Prepared> {
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {
            if !is_mounted(mountpoint) {
                return Ok(Prepared::Ready);
            }
            // The kernel answers `stat` of a mount's root from its attribute cache even
            // after its process died; listing it asks the process.
            match std::fs::read_dir(mountpoint) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    lazy_unmount(mountpoint)?;
                    Ok(Prepared::RecoveredDeadMount)
                }
                _ => Err(Error::invalid(format!(
                    "{} is already mounted by a live process; unmount it first (`fusermount3 -u {}`)",
                    mountpoint.display(),
                    mountpoint.display()
                ))),
            }
        }
        Ok(_) => Err(Error::invalid(format!(
            "mountpoint {} is not a directory",
            mountpoint.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(mountpoint).map_err(|e| {
                Error::invalid(format!("creating mountpoint {}: {e}", mountpoint.display()))
            })?;
            Ok(Prepared::Ready)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            lazy_unmount(mountpoint)?;
            Ok(Prepared::RecoveredDeadMount)
        }
        Err(e) => Err(Error::invalid(format!(
            "mountpoint {}: {e}",
            mountpoint.display()
        ))),
    }
}

/// Claims `mountpoint` for this process: an exclusive lock on the directory under it, held
/// (by the returned file) for as long as the mount lives and dropped by the kernel if the
/// process dies. Of two processes mounting at once, the second is refused here; one that
/// comes after the mount is there is refused by the mount table, checked again under the lock.
pub fn claim(mountpoint: &Path) -> Result<std::fs::File> {
    let busy = || {
        Error::invalid(format!(
            "{} is being mounted by another process; unmount it first (`fusermount3 -u {}`)",
            mountpoint.display(),
            mountpoint.display()
        ))
    };
    let dir = std::fs::File::open(mountpoint)
        .map_err(|e| Error::invalid(format!("mountpoint {}: {e}", mountpoint.display())))?;
    match dir.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy()),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::invalid(format!(
                "locking mountpoint {}: {e}",
                mountpoint.display()
            )));
        }
    }
    if is_mounted(mountpoint) {
        return Err(busy());
    }
    Ok(dir)
}

/// Unmounts `mountpoint` lazily: it leaves the namespace now, and goes once no one uses it.
pub fn lazy_unmount(mountpoint: &Path) -> Result<()> {
    if let Some(bin) = fusermount() {
        let out = Command::new(&bin)
            .arg("-uz")
            .arg(mountpoint)
            .output()
            .map_err(|e| Error::invalid(format!("running {}: {e}", bin.display())))?;
        if out.status.success() {
            return Ok(());
        }
        if !is_root() {
            return Err(Error::invalid(format!(
                "unmounting {}: {}",
                mountpoint.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()).map_err(|_| {
        Error::invalid(format!(
            "mountpoint {} has a NUL byte",
            mountpoint.display()
        ))
    })?;
    // SAFETY: a valid NUL-terminated path; umount2 reads it and keeps nothing.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(Error::invalid(format!(
            "unmounting {}: {}",
            mountpoint.display(),
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Whether `path` is a mountpoint in this process's mount table.
fn is_mounted(path: &Path) -> bool {
    let Ok(path) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // Field 5 is the mountpoint, with spaces and the like escaped as \040 etc.
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == path.as_os_str().as_encoded_bytes())
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `fusermount3` (or `fusermount`) on the PATH.
fn fusermount() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["fusermount3", "fusermount"].iter().find_map(|bin| {
        std::env::split_paths(&path)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_fuse_device_is_named_with_what_to_do() {
        let e = check_fuse(Path::new("/nonexistent/fuse"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("FUSE is not available"), "{e}");
        assert!(e.contains("/nonexistent/fuse is missing"), "{e}");
        assert!(e.contains("--device /dev/fuse"), "{e}");
    }

    #[test]
    fn a_mountpoint_that_is_a_file_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = prepare(f.path()).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn a_missing_mountpoint_is_created() {
        let d = tempfile::tempdir().unwrap();
        let mp = d.path().join("a/b");
        assert_eq!(prepare(&mp).unwrap(), Prepared::Ready);
        assert!(mp.is_dir());
    }

    #[test]
    fn a_mountpoint_claimed_by_another_process_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let first = claim(d.path()).unwrap();
        // A second open file description is what another process would hold.
        let e = claim(d.path()).unwrap_err().to_string();
        assert!(e.contains("is being mounted by another process"), "{e}");
        drop(first);
        claim(d.path()).unwrap();
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape(r"/mnt/a\040b"), b"/mnt/a b");
        assert_eq!(unescape("/plain"), b"/plain");
    }
}
