//! Who holds a lease or a claim: an owner string that names the process, so that a waiter
//! on the same host can tell that the holder is gone without waiting for the lease to end.
//!
//! Format: `<role>@<host>/<pid namespace>/<boot id>/<pid>/<start time>/<random>`. A process
//! is the holder while one with that PID exists in the same PID namespace, since the same
//! boot, with the same start time (so a reused PID is not taken for the holder). A holder
//! on another host, or whose format this code does not know, is never judged gone: its
//! lease simply expires.

use std::sync::OnceLock;

/// This process's identity.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    host: String,
    pid_ns: String,
    boot: String,
    pid: u32,
    start: String,
}

impl Holder {
    /// The identity of this process (read once).
    pub(crate) fn current() -> &'static Holder {
        static ME: OnceLock<Holder> = OnceLock::new();
        ME.get_or_init(|| {
            let pid = std::process::id();
            Holder {
                host: read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
                pid_ns: std::fs::read_link("/proc/self/ns/pid")
                    .ok()
                    .map(|p| p.to_string_lossy().replace(['/', '@'], "_"))
                    .unwrap_or_else(|| "unknown".into()),
                boot: read_trim("/proc/sys/kernel/random/boot_id")
                    .map(|b| b.chars().take(8).collect())
                    .unwrap_or_else(|| "unknown".into()),
                pid,
                start: start_time(pid).unwrap_or_else(|| "unknown".into()),
            }
        })
    }

    /// A fresh owner string for `role` (`sync`, `gc`, ...): unique per call.
    pub(crate) fn owner(&self, role: &str) -> String {
        format!(
            "{role}@{}/{}/{}/{}/{}/{:016x}",
            self.host,
            self.pid_ns,
            self.boot,
            self.pid,
            self.start,
            rand::random::<u64>()
        )
    }

    /// Whether the process that took `owner` is known to be gone.
    pub(crate) fn is_gone(owner: &str) -> bool {
        let Some(p) = Parsed::of(owner) else {
            return false;
        };
        let me = Holder::current();
        if p.host != me.host || p.pid_ns != me.pid_ns || p.boot != me.boot || me.start == "unknown"
        {
            return false;
        }
        let Ok(pid) = p.pid.parse::<u32>() else {
            return false;
        };
        start_time(pid).as_deref() != Some(p.start)
    }

    /// `owner` for people: "sync on host h, process 123".
    pub(crate) fn describe(owner: &str) -> String {
        match Parsed::of(owner) {
            Some(p) => format!("{} on host {}, process {}", p.role, p.host, p.pid),
            None => owner.to_string(),
        }
    }
}

struct Parsed<'a> {
    role: &'a str,
    host: &'a str,
    pid_ns: &'a str,
    boot: &'a str,
    pid: &'a str,
    start: &'a str,
}

impl<'a> Parsed<'a> {
    fn of(owner: &'a str) -> Option<Parsed<'a>> {
        let (role, rest) = owner.split_once('@')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [host, pid_ns, boot, pid, start, _rand] = parts[..] else {
            return None;
        };
        Some(Parsed {
            role,
            host,
            pid_ns,
            boot,
            pid,
            start,
        })
    }
}

fn read_trim(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.replace(['/', '@'], "_"))
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
/// `None` if there is no such process.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::Holder;

    #[test]
    fn this_process_is_not_gone_and_a_dead_one_is() {
        let me = Holder::current().owner("sync");
        assert!(!Holder::is_gone(&me), "{me}");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let h = Holder::current();
        let dead = format!(
            "sync@{}/{}/{}/{pid}/{}/0",
            h.host, h.pid_ns, h.boot, h.start
        );
        assert!(Holder::is_gone(&dead), "{dead}");
        // Same PID, other start time: a reused PID is not the holder.
        let reused = format!(
            "sync@{}/{}/{}/{}/1/0",
            h.host,
            h.pid_ns,
            h.boot,
            std::process::id()
        );
        assert!(Holder::is_gone(&reused));
    }

    #[test]
    fn other_hosts_and_foreign_owners_are_never_gone() {
        let h = Holder::current();
        assert!(!Holder::is_gone(&format!(
            "sync@elsewhere/{}/{}/1/1/0",
            h.pid_ns, h.boot
        )));
        assert!(!Holder::is_gone("sync-123-abc"));
        assert_eq!(
            Holder::describe(&Holder::current().owner("gc")),
            format!("gc on host {}, process {}", h.host, std::process::id())
        );
    }
}
