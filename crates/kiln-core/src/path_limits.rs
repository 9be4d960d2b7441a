//! How long a course's paths may be: what every server's file system can hold once the chunk
//! cache lays the course out below its own directory.
//!
//! Linux refuses a name over 255 bytes (`NAME_MAX`, on ext4, XFS, btrfs and tmpfs alike) and
//! a path of 4,096 bytes or more, its NUL included (`PATH_MAX`), with `ENAMETOOLONG`. The
//! cache puts a course-relative path `p` below prefixes of its own, the longest being
//! `<cache>/courses/<course>/<version>/p` (the course and version ids are at most 200 bytes
//! each: 411 bytes with their separators) and `<cache>/courses/<course>/.chunks/<id>/p`, and it
//! links a course-level file at `<version>/p` with the relative target
//! `../../../.chunks/<id>/p`: one `../` per segment of `p`, 73 bytes more. So a path is
//! counted as laid out, [`laid_out_len`]: its bytes and three for each segment, and that
//! may be at most [`MAX_PATH_BYTES`] (3,072). What is left of `PATH_MAX` (4,095 - 3,072 -
//! 411 = 612 bytes) is the cache directory's, [`MAX_CACHE_DIR_BYTES`]: the cache refuses a
//! longer one at start, so that every path sync accepts can be served.
//!
//! Sync checks every path it ships with [`check`] (naming the file), and `kiln verify`
//! flags a version published before it did.

use crate::{Error, Result};

/// The longest name of one path segment, in bytes (`NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// The longest course-relative path, as [`laid_out_len`] counts it.
pub const MAX_PATH_BYTES: usize = 3_072;

/// The longest (canonical) cache directory, in bytes: `PATH_MAX` less its NUL, less
/// [`MAX_PATH_BYTES`], less the 411 bytes of `/courses/<course>/<version>/`.
pub const MAX_CACHE_DIR_BYTES: usize = 4_095 - MAX_PATH_BYTES - 411;

/// A course-relative path's length as the cache lays it out: its bytes, and three for each
/// segment (the `../` a link to it climbs from its directory to the course directory).
pub fn laid_out_len(path: &str) -> usize {
    path.len() + 3 * path.split('/').count()
}

/// Checks a course-relative (`/`-separated) path against the limits; the error names the
/// path (escaped, so the message stays one line) and says which limit it exceeds.
pub fn check(path: &str) -> Result<()> {
    if let Some(name) = path.split('/').find(|n| n.len() > MAX_NAME_BYTES) {
        return Err(Error::invalid(format!(
            "path {path:?} has a name of {} bytes ({name:?}), over the {MAX_NAME_BYTES} bytes \
             a file system holds",
            name.len()
        )));
    }
    let laid_out = laid_out_len(path);
    if laid_out > MAX_PATH_BYTES {
        return Err(Error::invalid(format!(
            "path {path:?} is too long to serve: {} bytes in {} segments, {laid_out} bytes laid \
             out in the cache (3 more per segment), over the limit of {MAX_PATH_BYTES}",
            path.len(),
            path.split('/').count()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_within_the_limits_pass() {
        assert!(check("questions/topic/q1/clientFilesQuestion/figure.png").is_ok());
        assert!(check(&"n".repeat(255)).is_ok());
        let deep = vec!["d".repeat(200); 14].join("/");
        assert_eq!(laid_out_len(&deep), 14 * 200 + 13 + 14 * 3);
        assert!(check(&deep).is_ok());
    }

    #[test]
    fn a_long_name_is_named_with_its_length() {
        let path = format!("q/{}", "n".repeat(256));
        let m = check(&path).unwrap_err().to_string();
        assert!(m.contains("256 bytes") && m.contains(&path), "{m}");
    }

    #[test]
    fn a_long_path_is_counted_as_laid_out() {
        let m = check(&vec!["d".repeat(200); 16].join("/"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("too long") && m.contains("16 segments"), "{m}");
        // Short segments: fewer bytes, but each climbs a `../` of its own.
        let shallow_bytes = vec!["a"; 800].join("/");
        assert_eq!(shallow_bytes.len(), 1_599);
        assert!(check(&shallow_bytes).is_err());
    }

    #[test]
    fn the_cache_keeps_room_for_its_own_prefix() {
        assert_eq!(MAX_CACHE_DIR_BYTES, 612);
        let longest = MAX_CACHE_DIR_BYTES + "/courses/".len() + 200 + 1 + 200 + 1;
        assert_eq!(longest + MAX_PATH_BYTES, 4_095);
    }
}
