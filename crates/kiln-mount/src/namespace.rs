//! The mount's namespace: `/<course>/<version>/...` and `/<course>/current`, with inode
//! numbers, kept in memory and refreshed from the catalog by [`Namespace::refresh`].
//!
//! Inode numbers are never reused while mounted: the root is 1, each course directory, its
//! `current` link and each version directory get one when first seen, and a version's tree
//! gets a contiguous range when it is first looked into (node `i` is `base + i`). A version
//! tree is built from the catalog alone (manifest and tables of contents), so listing and
//! stat'ing never wait on the object store; a chunk the catalog has no table of contents
//! for is read back from its bundle once and its table stored (as `kiln verify --repair`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use kiln_core::ids::{CourseId, VersionId};
use kiln_core::{Error, Result};
use kiln_load::ChunkCache;

use crate::tree::{NodeIx, Tree};

/// The root directory's inode.
pub(crate) const ROOT: u64 = 1;

/// A version's tree with where its inodes start.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) course: CourseId,
    pub(crate) version: VersionId,
    /// The version directory's inode (node 0).
    pub(crate) dir_ino: u64,
    /// Node `i > 0` is inode `base + i`.
    pub(crate) base: u64,
    /// When the version was published: every node's mtime.
    pub(crate) mtime: SystemTime,
    pub(crate) tree: Tree,
}

impl Loaded {
    /// The inode of node `ix`.
    pub(crate) fn ino(&self, ix: NodeIx) -> u64 {
        if ix == 0 {
            self.dir_ino
        } else {
            self.base + u64::from(ix)
        }
    }
}

/// What an inode is.
#[derive(Debug, Clone)]
pub(crate) enum Inode {
    /// The mount's root: one directory per course.
    Root,
    /// A course directory: `current` and one directory per version.
    Course(CourseId),
    /// A course's `current` link, pointing at its current version's directory.
    Current(CourseId),
    /// A node of a version's tree (node 0 is the version directory).
    Node(Arc<Loaded>, NodeIx),
}

/// The namespace. Reads take a read lock; only discovery and refreshes write.
pub(crate) struct Namespace {
    cache: ChunkCache,
    rt: tokio::runtime::Handle,
    /// The courses to show; `None` for every course of the catalog.
    only: Option<Vec<CourseId>>,
    state: RwLock<State>,
    /// Tells the kernel a `current` link changed (set once the session runs).
    pub(crate) notifier: OnceLock<fuser::Notifier>,
}

#[derive(Default)]
struct State {
    next: u64,
    courses: BTreeMap<String, Course>,
    /// Course directories, `current` links and version directories.
    named: HashMap<u64, Named>,
    /// Loaded trees by their `base`.
    trees: BTreeMap<u64, Arc<Loaded>>,
}

#[derive(Debug, Clone)]
enum Named {
    Course(String),
    Current(String),
    Version(String, String),
}

struct Course {
    id: CourseId,
    ino: u64,
    link_ino: u64,
    current: Option<VersionId>,
    versions: BTreeMap<String, Version>,
}

struct Version {
    id: VersionId,
    ino: u64,
    mtime: SystemTime,
    tree: Option<Arc<Loaded>>,
}

/// A directory entry as readdir lists it.
pub(crate) struct DirEntry {
    pub(crate) ino: u64,
    pub(crate) name: String,
    pub(crate) dir: bool,
    pub(crate) link: bool,
}

impl State {
    fn alloc(&mut self, n: u64) -> u64 {
        let ino = self.next;
        self.next += n;
        ino
    }
}

impl Namespace {
    /// An empty namespace; [`Namespace::refresh`] fills it.
    pub(crate) fn new(
        cache: ChunkCache,
        rt: tokio::runtime::Handle,
        only: Option<Vec<CourseId>>,
    ) -> Namespace {
        Namespace {
            cache,
            rt,
            only,
            state: RwLock::new(State {
                next: ROOT + 1,
                ..State::default()
            }),
            notifier: OnceLock::new(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the courses, their versions and their current versions from the catalog. A
    /// course the catalog cannot answer for keeps what the namespace knew.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let courses = match &self.only {
            Some(c) => c.clone(),
            None => self.cache.content().courses().await?,
        };
        for course in courses {
            let current = match self.cache.current_version(&course).await {
                Ok(v) => Some(v),
                Err(Error::NotFound { .. }) => None,
                Err(e) => {
                    tracing::debug!(%course, "current version: {e}");
                    self.read()
                        .courses
                        .get(course.as_str())
                        .and_then(|c| c.current.clone())
                }
            };
            let known = {
                let st = self.read();
                st.courses.get(course.as_str()).is_some_and(|c| {
                    current
                        .as_ref()
                        .is_none_or(|v| c.versions.contains_key(v.as_str()))
                })
            };
            let versions = if known {
                None
            } else {
                match self.cache.content().versions(&course).await {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::debug!(%course, "versions: {e}");
                        None
                    }
                }
            };
            let mut st = self.write();
            if !st.courses.contains_key(course.as_str()) {
                let ino = st.alloc(2);
                st.named.insert(ino, Named::Course(course.to_string()));
                st.named.insert(ino + 1, Named::Current(course.to_string()));
                st.courses.insert(
                    course.to_string(),
                    Course {
                        id: course.clone(),
                        ino,
                        link_ino: ino + 1,
                        current: None,
                        versions: BTreeMap::new(),
                    },
                );
            }
            for v in versions.into_iter().flatten() {
                if st.courses[course.as_str()]
                    .versions
                    .contains_key(v.version.as_str())
                {
                    continue;
                }
                let ino = st.alloc(1);
                st.named.insert(
                    ino,
                    Named::Version(course.to_string(), v.version.to_string()),
                );
                let mtime = SystemTime::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(v.created_at.0).unwrap_or(0));
                let c = st.courses.get_mut(course.as_str()).expect("inserted above");
                c.versions.insert(
                    v.version.to_string(),
                    Version {
                        id: v.version,
                        ino,
                        mtime,
                        tree: None,
                    },
                );
            }
            let c = st.courses.get_mut(course.as_str()).expect("inserted above");
            if current.is_some() && c.current != current {
                let flipped = c.current.is_some();
                c.current = current;
                let link = c.link_ino;
                drop(st);
                // The kernel caches link targets: drop the old one.
                if let (true, Some(n)) = (flipped, self.notifier.get())
                    && let Err(e) = n.inval_inode(fuser::INodeNo(link), 0, 0)
                {
                    tracing::debug!(%course, "invalidating the current link: {e}");
                }
            }
        }
        Ok(())
    }

    /// What inode `ino` is; a version directory's tree is loaded on first use.
    pub(crate) fn inode(&self, ino: u64) -> Result<Inode> {
        if ino == ROOT {
            return Ok(Inode::Root);
        }
        let named = {
            let st = self.read();
            if let Some(n) = st.named.get(&ino) {
                n.clone()
            } else {
                let Some((_, loaded)) = st.trees.range(..=ino).next_back() else {
                    return Err(Error::not_found(format!("inode {ino}")));
                };
                let ix = ino - loaded.base;
                if ix == 0 || ix >= loaded.tree.nodes.len() as u64 {
                    return Err(Error::not_found(format!("inode {ino}")));
                }
                return Ok(Inode::Node(loaded.clone(), ix as NodeIx));
            }
        };
        Ok(match named {
            Named::Course(c) => Inode::Course(self.course_id(&c)?),
            Named::Current(c) => Inode::Current(self.course_id(&c)?),
            Named::Version(c, v) => Inode::Node(self.tree(&c, &v)?, 0),
        })
    }

    /// When version directory `ino` was published, if `ino` is one (its tree not needed).
    pub(crate) fn version_mtime(&self, ino: u64) -> Option<SystemTime> {
        let st = self.read();
        let Some(Named::Version(c, v)) = st.named.get(&ino) else {
            return None;
        };
        st.courses.get(c)?.versions.get(v).map(|v| v.mtime)
    }

    fn course_id(&self, name: &str) -> Result<CourseId> {
        self.read()
            .courses
            .get(name)
            .map(|c| c.id.clone())
            .ok_or_else(|| Error::not_found(format!("course {name:?}")))
    }

    /// The course directory named `name` in the root.
    pub(crate) fn course(&self, name: &str) -> Option<u64> {
        self.read().courses.get(name).map(|c| c.ino)
    }

    /// Looks up `name` in course `course`: `current`, or a version directory.
    pub(crate) fn in_course(&self, course: &CourseId, name: &str) -> Option<u64> {
        let st = self.read();
        let c = st.courses.get(course.as_str())?;
        if name == "current" {
            return c.current.as_ref().map(|_| c.link_ino);
        }
        c.versions.get(name).map(|v| v.ino)
    }

    /// The version `current` points at.
    pub(crate) fn current(&self, course: &CourseId) -> Option<VersionId> {
        self.read()
            .courses
            .get(course.as_str())
            .and_then(|c| c.current.clone())
    }

    /// The root's entries: one directory per course.
    pub(crate) fn root_entries(&self) -> Vec<DirEntry> {
        self.read()
            .courses
            .values()
            .map(|c| DirEntry {
                ino: c.ino,
                name: c.id.to_string(),
                dir: true,
                link: false,
            })
            .collect()
    }

    /// A course directory's entries: `current` (when the course has one) and its versions.
    pub(crate) fn course_entries(&self, course: &CourseId) -> Vec<DirEntry> {
        let st = self.read();
        let Some(c) = st.courses.get(course.as_str()) else {
            return Vec::new();
        };
        let link = c.current.as_ref().map(|_| DirEntry {
            ino: c.link_ino,
            name: "current".into(),
            dir: false,
            link: true,
        });
        link.into_iter()
            .chain(c.versions.values().map(|v| DirEntry {
                ino: v.ino,
                name: v.id.to_string(),
                dir: true,
                link: false,
            }))
            .collect()
    }

    /// The tree of version `version` of `course`, built from the catalog on first use.
    fn tree(&self, course: &str, version: &str) -> Result<Arc<Loaded>> {
        let (course_id, version_id, dir_ino, mtime) = {
            let st = self.read();
            let c = st
                .courses
                .get(course)
                .ok_or_else(|| Error::not_found(format!("course {course:?}")))?;
            let v = c
                .versions
                .get(version)
                .ok_or_else(|| Error::not_found(format!("version {version} of course {course}")))?;
            if let Some(t) = &v.tree {
                return Ok(t.clone());
            }
            (c.id.clone(), v.id.clone(), v.ino, v.mtime)
        };
        let tree = self
            .rt
            .block_on(build_tree(&self.cache, &course_id, &version_id))?;
        let mut st = self.write();
        let base = st.alloc(tree.nodes.len() as u64) - 1;
        let v = st
            .courses
            .get_mut(course)
            .and_then(|c| c.versions.get_mut(version))
            .expect("a version is never forgotten");
        // Another thread may have built it meanwhile: its tree (and inodes) win.
        if let Some(t) = &v.tree {
            return Ok(t.clone());
        }
        let loaded = Arc::new(Loaded {
            course: course_id,
            version: version_id,
            dir_ino,
            base,
            mtime,
            tree,
        });
        v.tree = Some(loaded.clone());
        st.trees.insert(base, loaded.clone());
        Ok(loaded)
    }
}

/// Builds a version's tree from its manifest and its chunks' tables of contents (the
/// content view's: published with the version, or the catalog's, which reads back from
/// their bundles those it lacks).
async fn build_tree(cache: &ChunkCache, course: &CourseId, version: &VersionId) -> Result<Tree> {
    let manifest = cache.manifest(course, version).await?;
    let tocs = cache.content().tocs(course, version).await?;
    Ok(Tree::build(&manifest, &tocs))
}
