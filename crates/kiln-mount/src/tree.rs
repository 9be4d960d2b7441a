//! One version's course tree, built in memory from its manifest and its chunks' tables of
//! contents (no chunk is downloaded to list or stat it).
//!
//! The tree follows the version directory kiln-load builds on disk (`kiln_load`'s links): a
//! directory chunk's files sit under its root; a gathered chunk's files sit at their
//! course-relative paths unless a directory chunk covers them (a question's thumbnail is the
//! question's); a chunk root inside another chunk's root is left out (the outer chunk wins).

use std::collections::HashMap;

use kiln_core::ids::ChunkId;
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::toc::{Toc, TocKind};

/// The index of a node in its [`Tree`]; the version directory is node 0.
pub(crate) type NodeIx = u32;

/// One version's tree.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The chunks files point into (manifest entries, by [`NodeKind::File::chunk`]).
    pub(crate) chunks: Vec<ManifestEntry>,
    /// The nodes; 0 is the version directory.
    pub(crate) nodes: Vec<Node>,
}

/// A file, directory or link of a version.
#[derive(Debug)]
pub(crate) struct Node {
    /// Its name in its parent (empty for the version directory).
    pub(crate) name: Box<str>,
    /// File, directory or link.
    pub(crate) kind: NodeKind,
}

/// What a node is.
#[derive(Debug)]
pub(crate) enum NodeKind {
    /// A directory; children sorted by name.
    Dir {
        /// Its entries, sorted by name.
        children: Vec<NodeIx>,
    },
    /// A regular file of chunk `chunk`, at `rel` inside the chunk's directory.
    File {
        /// Index into [`Tree::chunks`].
        chunk: u32,
        /// The path inside the chunk (its table of contents' path).
        rel: Box<str>,
        /// Size in bytes.
        size: u64,
        /// Executable.
        exec: bool,
    },
    /// A symbolic link.
    Link {
        /// Its target.
        target: Box<str>,
    },
}

impl Tree {
    /// Builds the tree of `manifest` from the tables of contents of its chunks. A chunk
    /// without one in `tocs` is left out (the caller reads it back first).
    pub(crate) fn build(manifest: &Manifest, tocs: &HashMap<ChunkId, Toc>) -> Tree {
        let mut b = Builder {
            nodes: vec![Node {
                name: "".into(),
                kind: NodeKind::Dir {
                    children: Vec::new(),
                },
            }],
            kids: vec![HashMap::new()],
            is_root: vec![false],
        };
        let mut chunks = Vec::new();
        let mut dirs: Vec<&ManifestEntry> = manifest
            .entries()
            .iter()
            .filter(|e| !e.is_gathered())
            .collect();
        // Outer roots first, so an inner root finds the outer chunk's root and is left out.
        dirs.sort_by(|a, b| a.root.len().cmp(&b.root.len()).then(a.root.cmp(&b.root)));
        for e in dirs {
            let Some(root) = b.chunk_root(&e.root) else {
                tracing::warn!(chunk = %e.chunk_ref(), root = %e.root, "chunk root is inside another chunk; left out of the mount");
                continue;
            };
            let Some(toc) = tocs.get(&e.id) else { continue };
            let chunk = chunks.len() as u32;
            chunks.push(e.clone());
            for t in &toc.entries {
                b.insert(root, &t.path, chunk, t);
            }
        }
        for e in manifest.entries().iter().filter(|e| e.is_gathered()) {
            let Some(toc) = tocs.get(&e.id) else { continue };
            let chunk = chunks.len() as u32;
            chunks.push(e.clone());
            for t in &toc.entries {
                // A file below a directory chunk's root is that chunk's (as
                // `Manifest::candidates_for_path` has it), found here in the tree built so far.
                if !b.covered(&t.path) {
                    b.insert(0, &t.path, chunk, t);
                }
            }
        }
        b.finish(chunks)
    }

    /// The child of directory `dir` named `name`.
    pub(crate) fn child(&self, dir: NodeIx, name: &[u8]) -> Option<NodeIx> {
        let NodeKind::Dir { children } = &self.nodes.get(dir as usize)?.kind else {
            return None;
        };
        children
            .binary_search_by(|&c| self.nodes[c as usize].name.as_bytes().cmp(name))
            .ok()
            .map(|i| children[i])
    }

    /// The node `ix`.
    pub(crate) fn node(&self, ix: NodeIx) -> Option<&Node> {
        self.nodes.get(ix as usize)
    }

    /// The node at a `/`-separated path below the version directory.
    #[cfg(test)]
    pub(crate) fn find(&self, path: &str) -> Option<NodeIx> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .try_fold(0, |dir, seg| self.child(dir, seg.as_bytes()))
    }
}

/// The tree while it is built: children by name per node.
struct Builder {
    nodes: Vec<Node>,
    kids: Vec<HashMap<Box<str>, NodeIx>>,
    /// Per node, whether it is a directory chunk's root.
    is_root: Vec<bool>,
}

impl Builder {
    /// The directory for a chunk rooted at `root`, made with its parents; `None` when a
    /// parent is another chunk's root or a file.
    fn chunk_root(&mut self, root: &str) -> Option<NodeIx> {
        let mut at = 0;
        for seg in root.split('/') {
            if self.is_root[at as usize] {
                return None;
            }
            at = self.dir(at, seg)?;
        }
        if self.is_root[at as usize] {
            return None;
        }
        self.is_root[at as usize] = true;
        Some(at)
    }

    /// Whether a directory chunk's root is above the course-relative `path`.
    fn covered(&self, path: &str) -> bool {
        let mut at = 0;
        let mut segs = path.split('/').peekable();
        while let Some(seg) = segs.next() {
            if segs.peek().is_none() {
                return false;
            }
            match self.kids[at as usize].get(seg) {
                Some(&d) if self.is_root[d as usize] => return true,
                Some(&d) => at = d,
                None => return false,
            }
        }
        false
    }

    /// The directory `name` in `parent`, made if missing; `None` if a file has that name.
    fn dir(&mut self, parent: NodeIx, name: &str) -> Option<NodeIx> {
        if let Some(&ix) = self.kids[parent as usize].get(name) {
            return matches!(self.nodes[ix as usize].kind, NodeKind::Dir { .. }).then_some(ix);
        }
        Some(self.add(
            parent,
            name,
            NodeKind::Dir {
                children: Vec::new(),
            },
        ))
    }

    fn add(&mut self, parent: NodeIx, name: &str, kind: NodeKind) -> NodeIx {
        let ix = self.nodes.len() as NodeIx;
        self.nodes.push(Node {
            name: name.into(),
            kind,
        });
        self.kids.push(HashMap::new());
        self.is_root.push(false);
        self.kids[parent as usize].insert(name.into(), ix);
        ix
    }

    /// Puts the file `t` of chunk `chunk` at `path` below `root`; a path taken already (by
    /// a file, or by a directory where a file should be) keeps what it has.
    fn insert(&mut self, root: NodeIx, path: &str, chunk: u32, t: &kiln_core::toc::TocEntry) {
        let Some((dirs, name)) = split_path(path) else {
            return;
        };
        let mut at = root;
        for seg in dirs {
            match self.dir(at, seg) {
                Some(d) => at = d,
                None => return,
            }
        }
        if self.kids[at as usize].contains_key(name) {
            return;
        }
        let kind = match &t.kind {
            TocKind::File { exec } => NodeKind::File {
                chunk,
                rel: t.path.as_str().into(),
                size: t.size,
                exec: *exec,
            },
            TocKind::Symlink { target } => NodeKind::Link {
                target: target.as_str().into(),
            },
        };
        self.add(at, name, kind);
    }

    fn finish(mut self, chunks: Vec<ManifestEntry>) -> Tree {
        for (ix, kids) in self.kids.into_iter().enumerate() {
            if let NodeKind::Dir { children } = &mut self.nodes[ix].kind {
                let mut named: Vec<(Box<str>, NodeIx)> = kids.into_iter().collect();
                named.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                *children = named.into_iter().map(|(_, c)| c).collect();
            }
        }
        Tree {
            chunks,
            nodes: self.nodes,
        }
    }
}

/// `a/b/c` as (`[a, b]`, `c`); `None` for an empty path or an empty segment.
fn split_path(path: &str) -> Option<(Vec<&str>, &str)> {
    let mut segs: Vec<&str> = path.split('/').collect();
    let name = segs.pop()?;
    if name.is_empty() || segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some((segs, name))
}

#[cfg(test)]
mod tests {
    use kiln_core::ids::ChunkKind;
    use kiln_core::toc::TocEntry;

    use super::*;

    fn entry(kind: ChunkKind, name: &str, root: &str, n: u8) -> ManifestEntry {
        ManifestEntry {
            kind,
            name: name.into(),
            id: ChunkId([n; 32]),
            size: 1,
            root: root.into(),
        }
    }

    fn file(path: &str, size: u64) -> TocEntry {
        TocEntry {
            path: path.into(),
            size,
            kind: TocKind::File { exec: false },
        }
    }

    #[test]
    fn files_sit_under_their_chunk_root_and_gathered_files_where_no_chunk_covers_them() {
        let q = entry(ChunkKind::Question, "topic/q1", "questions/topic/q1", 1);
        let info = entry(ChunkKind::CourseInfo, "", "", 2);
        let manifest = Manifest::new(vec![q.clone(), info.clone()]).unwrap();
        let tocs = HashMap::from([
            (
                q.id,
                Toc {
                    entries: vec![
                        file("info.json", 5),
                        file("question.html", 7),
                        TocEntry {
                            path: "latest.html".into(),
                            size: 13,
                            kind: TocKind::Symlink {
                                target: "question.html".into(),
                            },
                        },
                    ],
                },
            ),
            (
                info.id,
                Toc {
                    entries: vec![
                        file("infoCourse.json", 3),
                        file("questions/topic/q1/info.json", 99),
                    ],
                },
            ),
        ]);
        let tree = Tree::build(&manifest, &tocs);
        let ix = tree.find("questions/topic/q1/question.html").unwrap();
        match &tree.node(ix).unwrap().kind {
            NodeKind::File {
                chunk, rel, size, ..
            } => {
                assert_eq!(tree.chunks[*chunk as usize].id, q.id);
                assert_eq!((&**rel, *size), ("question.html", 7));
            }
            other => panic!("{other:?}"),
        }
        // The question's info.json is the question chunk's, not the gathered copy.
        let ix = tree.find("questions/topic/q1/info.json").unwrap();
        assert!(matches!(
            &tree.node(ix).unwrap().kind,
            NodeKind::File { size: 5, .. }
        ));
        let ix = tree.find("infoCourse.json").unwrap();
        assert!(matches!(
            &tree.node(ix).unwrap().kind,
            NodeKind::File { size: 3, .. }
        ));
        let ix = tree.find("questions/topic/q1/latest.html").unwrap();
        assert!(
            matches!(&tree.node(ix).unwrap().kind, NodeKind::Link { target } if &**target == "question.html")
        );
        assert!(tree.find("questions/topic/q2").is_none());
        // Children come sorted by name.
        let q1 = tree.find("questions/topic/q1").unwrap();
        let NodeKind::Dir { children } = &tree.node(q1).unwrap().kind else {
            panic!()
        };
        let names: Vec<&str> = children
            .iter()
            .map(|&c| &*tree.nodes[c as usize].name)
            .collect();
        assert_eq!(names, ["info.json", "latest.html", "question.html"]);
    }

    #[test]
    fn a_chunk_root_inside_another_chunk_is_left_out() {
        let outer = entry(ChunkKind::Question, "a", "questions/a", 1);
        let inner = entry(ChunkKind::Question, "a/b", "questions/a/b", 2);
        let manifest = Manifest::new(vec![outer.clone(), inner.clone()]).unwrap();
        let tocs = HashMap::from([
            (
                outer.id,
                Toc {
                    entries: vec![file("x.html", 1)],
                },
            ),
            (
                inner.id,
                Toc {
                    entries: vec![file("y.html", 1)],
                },
            ),
        ]);
        let tree = Tree::build(&manifest, &tocs);
        assert!(tree.find("questions/a/x.html").is_some());
        assert!(tree.find("questions/a/b").is_none());
        assert_eq!(tree.chunks.len(), 1);
    }
}
