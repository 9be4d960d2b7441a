//! Which entries a chunk may hold: the one rule, applied by sync when it builds a bundle (a
//! refusal there names the file) and by load when it unpacks one (a refusal there means the
//! bundle is corrupt or hostile).
//!
//! The loader links chunks into one tree and serves files through their links, so a path it
//! cannot serve or a link that escapes its chunk or never resolves must not be in a chunk.
//!
//! 1. Every entry's path is chunk-relative, `/`-separated and normal: not absolute, no empty,
//!    `.` or `..` segment, no backslash and no control character (what
//!    [`kiln_core::manifest::normalize_path`] accepts unchanged).
//! 2. No entry lies below a symlink of the chunk: a link is a leaf.
//! 3. A symlink's target is not empty, relative, and free of backslashes and control
//!    characters.
//! 4. A symlink resolves inside the chunk: lexically from its own directory, and also
//!    physically, through any other links of the chunk, the way the kernel resolves it once
//!    the chunk is on disk (`d/up -> ..` is inside, `x -> d/up/..` is not).
//! 5. A symlink does not loop (more than [`MAX_HOPS`] links followed: the kernel's `ELOOP`).
//!
//! [`Entries`] checks rules 1 to 4 (lexically) as entries come, in the bundle's ascending
//! path order, and rules 4 and 5 for all links together at the end ([`Entries::finish`]).
//! The rule says nothing about where a dangling link points: a link to a path the chunk
//! does not hold is allowed (the kernel then answers "not found").

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// Links followed before a path counts as a loop: Linux's own limit (`ELOOP`).
pub const MAX_HOPS: usize = 40;

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The entry's path is not normal (rule 1); the text says how.
    BadPath {
        /// What is wrong with it, e.g. `is absolute`.
        reason: &'static str,
    },
    /// The symlink's target is unusable (rule 3); the text says how.
    BadTarget {
        /// The target.
        target: String,
        /// What is wrong with it, e.g. `is absolute`.
        reason: &'static str,
    },
    /// Following the symlink leaves the chunk (rule 4).
    Outside {
        /// The target.
        target: String,
    },
    /// Following the symlink never ends (rule 5).
    Loop {
        /// The target.
        target: String,
    },
    /// The entry lies below the symlink `link` (rule 2).
    Through {
        /// The symlink's path.
        link: String,
    },
}

/// An entry the rule refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The entry's path (chunk-relative unless [`Refused::under`] prefixed it).
    pub path: String,
    /// Why.
    pub why: Why,
}

impl Refused {
    /// The same refusal with paths prefixed by `root` (a chunk's course-relative root), for
    /// a message that names the file in the course.
    pub fn under(mut self, root: &str) -> Refused {
        let join = |p: &str| {
            if root.is_empty() {
                p.to_string()
            } else {
                format!("{root}/{p}")
            }
        };
        self.path = join(&self.path);
        if let Why::Through { link } = &mut self.why {
            *link = join(link);
        }
        self
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.why {
            Why::BadPath { reason } => write!(f, "path {path:?} is unusable: it {reason}"),
            Why::BadTarget { target, reason } => {
                write!(
                    f,
                    "symlink {path} -> {target:?} is unusable: its target {reason}"
                )
            }
            Why::Outside { target } => {
                write!(f, "symlink {path} -> {target:?} points outside the chunk")
            }
            Why::Loop { target } => {
                write!(
                    f,
                    "symlink {path} -> {target:?} is a loop: it never resolves"
                )
            }
            Why::Through { link } => write!(f, "entry {path} goes through the symlink {link}"),
        }
    }
}

impl std::error::Error for Refused {}

/// The entries of one chunk, checked as they come (see the module docs); it keeps the
/// symlinks, which later entries and [`Entries::finish`] are checked against.
#[derive(Debug, Default, Clone)]
pub struct Entries {
    links: BTreeMap<String, String>,
}

impl Entries {
    /// No entries yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks an entry that is not a symlink (a file or a directory): its path is normal and
    /// does not lie below a symlink seen so far (rules 1 and 2). Entries come in ascending
    /// path order, so a symlink comes before what lies below it.
    pub fn entry(&self, path: &str) -> Result<(), Refused> {
        if let Some(reason) = bad_path(path) {
            return Err(Refused {
                path: path.to_string(),
                why: Why::BadPath { reason },
            });
        }
        if self.links.is_empty() {
            return Ok(());
        }
        match path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .find(|a| self.links.contains_key(*a))
        {
            Some(link) => Err(Refused {
                path: path.to_string(),
                why: Why::Through {
                    link: link.to_string(),
                },
            }),
            None => Ok(()),
        }
    }

    /// Checks the symlink `path -> target` on its own (rules 1 to 4, the last lexically) and
    /// keeps it.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), Refused> {
        self.entry(path)?;
        let refuse = |why| Refused {
            path: path.to_string(),
            why,
        };
        if let Some(reason) = bad_target(target) {
            return Err(refuse(Why::BadTarget {
                target: target.to_string(),
                reason,
            }));
        }
        if resolve_lexical(path, target).is_none() {
            return Err(refuse(Why::Outside {
                target: target.to_string(),
            }));
        }
        self.links.insert(path.to_string(), target.to_string());
        Ok(())
    }

    /// Checks every symlink against all the others: each resolves inside the chunk and does
    /// not loop (rules 4 and 5). The first refusal in path order is returned.
    pub fn finish(&self) -> Result<(), Refused> {
        for (path, target) in &self.links {
            let why = match self.resolve_physical(path) {
                Ok(()) => continue,
                Err(Unservable::Outside) => Why::Outside {
                    target: target.clone(),
                },
                Err(Unservable::Loop) => Why::Loop {
                    target: target.clone(),
                },
            };
            return Err(Refused {
                path: path.clone(),
                why,
            });
        }
        Ok(())
    }

    /// The symlinks seen, as (path, target) in path order.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str)> {
        self.links.iter().map(|(p, t)| (p.as_str(), t.as_str()))
    }

    /// Resolves `path` through the chunk's links the way the kernel would once the chunk
    /// is on disk: every component that is a link is replaced by its target, relative to
    /// the link's directory.
    fn resolve_physical(&self, path: &str) -> Result<(), Unservable> {
        let mut pending: VecDeque<String> = path.split('/').map(str::to_string).collect();
        let mut at: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(seg) = pending.pop_front() {
            match seg.as_str() {
                "" | "." => {}
                ".." => {
                    at.pop().ok_or(Unservable::Outside)?;
                }
                name => {
                    at.push(name.to_string());
                    let here = at.join("/");
                    if let Some(target) = self.links.get(here.as_str()) {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return Err(Unservable::Loop);
                        }
                        if target.starts_with('/') {
                            return Err(Unservable::Outside);
                        }
                        at.pop();
                        for (i, t) in target.split('/').enumerate() {
                            pending.insert(i, t.to_string());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Refuses a symlink that stands where a chunk's root would be, or a directory the layout
/// looks through for chunk roots: a link is a leaf (rule 2), so whatever it points to lies
/// outside the chunk it stands for (rule 4); a target unusable on its own (rule 3) is said
/// first. Sync applies it outside every chunk, so such a link gets the words a link inside
/// a chunk gets instead of vanishing from the version.
pub fn refuse_link_as_dir(path: &str, target: &str) -> Refused {
    let why = match bad_target(target) {
        Some(reason) => Why::BadTarget {
            target: target.to_string(),
            reason,
        },
        None => Why::Outside {
            target: target.to_string(),
        },
    };
    Refused {
        path: path.to_string(),
        why,
    }
}

/// Why a link cannot be served.
#[derive(Debug, PartialEq, Eq)]
enum Unservable {
    /// Following links leaves the chunk root.
    Outside,
    /// Following links never ends.
    Loop,
}

/// What is wrong with an entry's path (rule 1), if anything.
fn bad_path(path: &str) -> Option<&'static str> {
    if path.starts_with('/') {
        Some("is absolute")
    } else if path.contains('\\') {
        Some("holds a backslash")
    } else if path.chars().any(char::is_control) {
        Some("holds a control character")
    } else if path.split('/').any(str::is_empty) {
        Some("has an empty segment")
    } else if path.split('/').any(|s| s == "." || s == "..") {
        Some("has a dot segment")
    } else {
        None
    }
}

/// What is wrong with a symlink target on its own (rule 3), if anything.
fn bad_target(target: &str) -> Option<&'static str> {
    if target.is_empty() {
        Some("is empty")
    } else if target.starts_with('/') {
        Some("is absolute")
    } else if target.contains('\\') {
        Some("holds a backslash")
    } else if target.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    }
}

/// Resolves a symlink's `target` lexically from the directory of `link` (both chunk-relative,
/// `/`-separated), without following other links; `None` if it climbs above the chunk root
/// or is absolute. `a/link -> ../b` gives `b`.
pub fn resolve_lexical(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> Entries {
        let mut l = Entries::new();
        for (p, t) in pairs {
            l.links.insert(p.to_string(), t.to_string());
        }
        l
    }

    #[test]
    fn links_resolve_lexically() {
        assert_eq!(
            resolve_lexical("a/link", "b.txt").as_deref(),
            Some("a/b.txt")
        );
        assert_eq!(resolve_lexical("a/b/link", "../c").as_deref(), Some("a/c"));
        assert_eq!(
            resolve_lexical("a/b/c", "../../x/./y").as_deref(),
            Some("x/y")
        );
        assert_eq!(resolve_lexical("link", "../x"), None);
        assert_eq!(resolve_lexical("a/b", "../../c"), None);
        assert_eq!(resolve_lexical("a", ".."), None);
        assert_eq!(resolve_lexical("a/link", "/etc/passwd"), None);
    }

    #[test]
    fn paths_must_be_normal() {
        let l = Entries::new();
        assert!(l.entry("a/b.txt").is_ok());
        assert!(l.entry("info.json").is_ok());
        for (path, why) in [
            ("/etc/passwd", "absolute"),
            ("a\\b", "backslash"),
            ("a\tb", "control"),
            ("a//b", "empty segment"),
            ("", "empty segment"),
            ("a/", "empty segment"),
            ("./a", "dot segment"),
            ("a/../../b", "dot segment"),
        ] {
            let e = l.entry(path).unwrap_err();
            assert!(e.to_string().contains(why), "{path:?}: {e}");
            assert!(matches!(e.why, Why::BadPath { .. }));
            let normal = kiln_core::manifest::normalize_path(path).ok();
            assert_ne!(
                normal.as_deref(),
                Some(path),
                "{path:?} is not normal there either"
            );
        }
    }

    #[test]
    fn targets_must_be_usable_and_stay_inside() {
        let mut l = Entries::new();
        assert!(l.symlink("a/b", "c").is_ok());
        assert!(l.symlink("a/c", "../c").is_ok());
        assert!(
            l.symlink("a/b/c", "../../x/./y").is_err(),
            "below the link a/b"
        );
        for (target, why) in [
            ("../../c", "points outside"),
            ("/etc/passwd", "is absolute"),
            ("", "is empty"),
            ("x\\y", "backslash"),
            ("x\ny", "control character"),
        ] {
            let e = l.symlink("a/d", target).unwrap_err();
            assert!(e.to_string().contains(why), "{target:?}: {e}");
            assert!(e.to_string().contains("a/d"), "{e}");
        }
        assert_eq!(l.links().count(), 2);
        assert!(l.finish().is_ok());
    }

    #[test]
    fn nothing_lies_below_a_link() {
        let mut l = Entries::new();
        l.symlink("d", "sub").unwrap();
        assert!(l.entry("d2/file").is_ok());
        let e = l.entry("d/file").unwrap_err();
        assert_eq!(
            e.clone().under("questions/q1").to_string(),
            "entry questions/q1/d/file goes through the symlink questions/q1/d"
        );
        assert!(l.symlink("d/x/link", "y").is_err());
    }

    #[test]
    fn links_resolve_physically_through_other_links() {
        let l = links(&[
            ("self", "self"),
            ("a", "b"),
            ("b", "a"),
            ("deep", "deep/x"),
            ("dir", "."),
            ("up", "dir/.."),
            ("ok", "sub/file"),
            ("via", "dir/sub/file"),
        ]);
        assert_eq!(l.resolve_physical("self"), Err(Unservable::Loop));
        assert_eq!(l.resolve_physical("a"), Err(Unservable::Loop));
        assert_eq!(l.resolve_physical("deep"), Err(Unservable::Loop));
        assert_eq!(l.resolve_physical("up"), Err(Unservable::Outside));
        assert_eq!(l.resolve_physical("ok"), Ok(()));
        assert_eq!(l.resolve_physical("via"), Ok(()));
        let e = l.finish().unwrap_err();
        assert_eq!(e.path, "a", "the first in path order");
        assert!(e.to_string().contains("loop"), "{e}");
    }

    #[test]
    fn a_link_standing_for_a_directory_is_refused_as_inside_a_chunk() {
        let mut inside = Entries::new();
        let e = inside.symlink("elements", "/etc").unwrap_err();
        assert_eq!(refuse_link_as_dir("elements", "/etc"), e);
        let r = refuse_link_as_dir("clientFilesCourse", "questions/ok");
        assert_eq!(
            r.to_string(),
            "symlink clientFilesCourse -> \"questions/ok\" points outside the chunk"
        );
    }

    #[test]
    fn an_escape_through_another_link_is_refused() {
        let mut l = Entries::new();
        l.symlink("here", ".").unwrap();
        l.symlink("up", "here/..").unwrap();
        let e = l.finish().unwrap_err();
        assert_eq!(e.path, "up");
        assert_eq!(
            e.under("clientFilesCourse").to_string(),
            "symlink clientFilesCourse/up -> \"here/..\" points outside the chunk"
        );
    }
}
