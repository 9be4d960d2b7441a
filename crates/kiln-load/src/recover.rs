//! Start-up recovery and scans of the cache directory (blocking code).
//!
//! The cache directory is not the truth, only a copy: recovery trusts nothing in memory,
//! deletes abandoned staging work and takes the chunk directories on disk as the index
//! (a chunk directory is complete or absent: it only appears by rename).

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use kiln_core::ids::{ChunkId, CourseId, VersionId};

use crate::fsutil;
use crate::index::Key;
use crate::paths::{CHUNKS_DIR, Paths};

/// Creates the layout, empties staging and lists the chunks present, oldest first, each
/// with what it takes on disk ([`fsutil::disk_usage`]).
pub(crate) fn recover(dir: &Path) -> io::Result<(Paths, Vec<(Key, u64)>)> {
    fs::create_dir_all(dir)?;
    let paths = Paths::new(fs::canonicalize(dir)?);
    for d in [paths.tmp(), paths.locks(), paths.courses()] {
        fs::create_dir_all(d)?;
    }
    clean_staging(&paths)?;
    let mut found = Vec::new();
    for course in fs::read_dir(paths.courses())? {
        let course = course?;
        let Some(course_id) = parse::<CourseId>(&course.file_name()) else {
            continue;
        };
        let chunks = course.path().join(CHUNKS_DIR);
        let Ok(entries) = fs::read_dir(&chunks) else {
            continue;
        };
        for e in entries {
            let e = e?;
            let Some(id) = e
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<ChunkId>().ok())
            else {
                tracing::warn!(path = %e.path().display(), "ignoring a stray entry in the chunk directory");
                continue;
            };
            let mtime = e.metadata()?.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((
                mtime,
                (course_id.clone(), id),
                fsutil::disk_usage(&e.path())?,
            ));
        }
    }
    found.sort_by_key(|(mtime, _, _)| *mtime);
    Ok((paths, found.into_iter().map(|(_, k, s)| (k, s)).collect()))
}

/// Deletes staging entries nobody works on. A staging directory is named
/// `<course>.<chunk id>.<random>` and is only written under that chunk's lock, so if the lock
/// is free its writer died; another live process sharing the cache keeps its own.
fn clean_staging(paths: &Paths) -> io::Result<()> {
    for e in fs::read_dir(paths.tmp())? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = name.split_once('.').and_then(|(c, rest)| {
            Some((
                CourseId::new(c).ok()?,
                rest.split_once('.')?.0.parse::<ChunkId>().ok()?,
            ))
        });
        let _lock = match owner {
            Some((course, id)) => match fsutil::try_lock_exclusive(&paths.lock_file(&course, &id))?
            {
                Some(lock) => Some(lock),
                None => continue,
            },
            None => None,
        };
        if let Err(err) = fsutil::remove_tree(&e.path()) {
            tracing::warn!(path = %e.path().display(), "cannot clean staging: {err}");
        }
    }
    Ok(())
}

/// Every course directory and its version directories.
pub(crate) fn list_versions(courses: &Path) -> io::Result<Vec<(CourseId, Vec<VersionId>)>> {
    let mut out = Vec::new();
    let listing = match fs::read_dir(courses) {
        Ok(l) => l,
        // Deleted from outside: nothing to remove; ensures recreate what they need.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for course in listing {
        let course = course?;
        let Some(id) = parse::<CourseId>(&course.file_name()) else {
            continue;
        };
        let mut versions = Vec::new();
        for v in fs::read_dir(course.path())? {
            let v = v?;
            if v.file_type()?.is_dir()
                && let Some(version) = parse::<VersionId>(&v.file_name())
            {
                versions.push(version);
            }
        }
        out.push((id, versions));
    }
    Ok(out)
}

/// Parses a directory name as an id; names starting with '.' never parse.
fn parse<T: std::str::FromStr>(name: &std::ffi::OsStr) -> Option<T> {
    name.to_str()?.parse().ok()
}
