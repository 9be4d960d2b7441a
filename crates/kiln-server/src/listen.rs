//! Where `kiln serve` listens: a TCP address or a Unix socket (`unix:/path`), how each is
//! bound, and whether it is private to this host (what serving without tokens needs).

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use kiln_core::Error;

/// A listen address as the config and `--listen` write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `127.0.0.1:7878`, `[::1]:0`, `0.0.0.0:80`.
    Tcp(SocketAddr),
    /// `unix:/run/kiln/kiln.sock`.
    Unix(PathBuf),
}

/// The file mode of a Unix socket unless the config says otherwise: the owner and its group
/// (an app server in the same group) may connect, nobody else.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

impl ListenAddr {
    /// Whether only this host can connect: a loopback address or a Unix socket. Serving
    /// anything else without tokens needs `allow_unauthenticated`.
    pub fn is_private(&self) -> bool {
        match self {
            ListenAddr::Tcp(a) => a.ip().is_loopback(),
            ListenAddr::Unix(_) => true,
        }
    }
}

impl FromStr for ListenAddr {
    type Err = Error;
    fn from_str(s: &str) -> Result<ListenAddr, Error> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(Error::invalid(format!(
                    "invalid listen address {s:?}: a Unix socket needs an absolute path (unix:/run/kiln.sock)"
                )));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(ListenAddr::Tcp).map_err(|_| {
            Error::invalid(format!(
                "invalid listen address {s:?}: expected IP:PORT (127.0.0.1:7878) or unix:/path"
            ))
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ListenAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses an octal file mode such as `"0660"` or `"660"`.
pub fn parse_mode(s: &str) -> Result<u32, Error> {
    u32::from_str_radix(s.strip_prefix("0o").unwrap_or(s), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            Error::invalid(format!(
                "invalid socket mode {s:?}: expected octal permission bits such as \"0660\""
            ))
        })
}

/// Binds a Unix socket at `path` with file mode `mode`, whatever the process's umask. A socket file left by a server that
/// is gone (nothing answers on it) is replaced; one that answers, or any other file, is not.
pub fn bind_unix(path: &Path, mode: u32) -> Result<tokio::net::UnixListener, Error> {
    let io = |what: &str, e: std::io::Error| {
        Error::backend("kiln-server", format!("{what} {}: {e}", path.display()))
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(Error::invalid(format!(
                    "cannot listen on {}: it exists and is not a socket",
                    path.display()
                )));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::invalid(format!(
                    "cannot listen on {}: another server is listening on it",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(|e| io("removing the stale socket", e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspecting", e)),
    }
    // Bound in a directory only this user may enter, given its mode there, then renamed into
    // place: the socket is never reachable with the mode the umask would give it.
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = tempfile::Builder::new()
        .prefix(".k")
        .tempdir_in(parent)
        .map_err(|e| io("making a private directory beside", e))?;
    let staged = private.path().join("s");
    let listener = tokio::net::UnixListener::bind(&staged).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("setting the mode of", e))?;
    std::fs::rename(&staged, path).map_err(|e| io("moving the socket to", e))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for s in [
            "127.0.0.1:7878",
            "[::1]:0",
            "0.0.0.0:80",
            "unix:/run/kiln.sock",
        ] {
            assert_eq!(s.parse::<ListenAddr>().unwrap().to_string(), s);
        }
        for bad in ["unix:", "unix:rel/path", "localhost:80", "7878"] {
            let err = bad.parse::<ListenAddr>().unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn only_loopback_and_unix_are_private() {
        for (s, private) in [
            ("127.0.0.1:1", true),
            ("[::1]:1", true),
            ("unix:/x", true),
            ("0.0.0.0:1", false),
            ("[::]:1", false),
            ("10.1.2.3:1", false),
        ] {
            assert_eq!(
                s.parse::<ListenAddr>().unwrap().is_private(),
                private,
                "{s}"
            );
        }
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert_eq!(parse_mode("0o777").unwrap(), 0o777);
        for bad in ["", "0999", "1777", "rw-"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_or_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sock");
        let live = bind_unix(&path, 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind_unix(&path, 0o600).unwrap_err().to_string();
        assert!(err.contains("another server"), "{err}");
        drop(live);
        // The file stays after its listener is gone; binding again replaces it.
        assert!(path.exists());
        bind_unix(&path, 0o660).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let err = bind_unix(&plain, 0o600).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&plain).unwrap(), b"x");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_socket_never_appears_with_a_wider_mode_than_asked() {
        // Under umask 000 a socket bound in place is 0777 until it is chmod'ed; another user
        // connecting in that moment is in. A watcher looks for the path all along.
        use std::os::unix::fs::MetadataExt;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sock");
        // SAFETY: umask only sets the process's file creation mask.
        let old = unsafe { libc::umask(0) };
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut wrong = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path)
                        && m.mode() & 0o777 != 0o600
                    {
                        wrong.push(m.mode() & 0o777);
                    }
                }
                wrong
            })
        };
        for _ in 0..300 {
            let l = bind_unix(&path, 0o600).unwrap();
            drop(l);
            std::fs::remove_file(&path).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let wrong = watcher.join().unwrap();
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let wrong: Vec<String> = wrong.iter().map(|m| format!("{m:o}")).collect();
        assert!(wrong.is_empty(), "the socket was seen with modes {wrong:?}");
        // Nothing is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
