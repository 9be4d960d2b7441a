//! The walker: applies a [`Layout`] to a source's tree, optionally side by side with the tree
//! of the previously synced commit, and says which chunks the course has.
//!
//! With an old tree, a subdirectory whose git tree id and layout states are the same on both
//! sides is not entered: everything it contributes is what it contributed last time
//! ([`Walk::reused`]). Only the directories on the path to a change are listed, so the cost of
//! an incremental walk follows the change, not the course.
//!
//! Only the new side is checked and warned about: every shipped path (a gathered member, or
//! anything under a directory chunk's root) must have a printable name no longer than a
//! server's file system holds, a symlink must not stand where the layout expects a
//! directory, and a submodule is reported as not shipped.

use std::collections::{BTreeMap, HashMap};

use kiln_core::ids::ChunkKind;
use kiln_core::layout::{Layout, State};
use kiln_core::{Error, Result};

use crate::build::chunk_label;
use crate::source::{Node, NodeKind, Oid, Reader, check_path, check_printable, join};

/// A directory chunk found by the walk.
#[derive(Debug, Clone)]
pub(crate) struct DirChunk {
    /// Its kind.
    pub(crate) kind: ChunkKind,
    /// Its name within the kind.
    pub(crate) name: String,
    /// The course-relative root directory.
    pub(crate) root: String,
    /// The git tree id of the root, if the source is git.
    pub(crate) tree: Option<Oid>,
}

/// A file that belongs to a gathered (course-wide, files-only) chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Course-relative path.
    pub(crate) path: String,
    /// The entry (kind, mode and git blob id).
    pub(crate) node: Node,
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Directory chunks in the walked part of the new tree.
    pub(crate) dir_chunks: Vec<DirChunk>,
    /// Gathered-chunk members in the walked part of the new tree.
    pub(crate) members: BTreeMap<ChunkKind, Vec<Member>>,
    /// Gathered-chunk members in the walked part of the old tree.
    pub(crate) old_members: BTreeMap<ChunkKind, Vec<Member>>,
    /// Subtrees identical on both sides (course-relative paths), not entered.
    pub(crate) reused: Vec<String>,
    /// The names at the course root, if the root was listed.
    pub(crate) root_names: Option<Vec<String>>,
}

/// One side of a directory: its tree id and the layout states it was reached with.
#[derive(Debug, Clone)]
struct Side {
    id: Option<Oid>,
    states: Vec<State>,
}

/// Walks the new tree `new_root`, and the old tree `old_root` where given.
pub(crate) fn walk(
    layout: &Layout,
    reader: &mut dyn Reader,
    new_root: Option<Oid>,
    old_root: Option<Oid>,
) -> Result<Walk> {
    let mut out = Walk::default();
    let new = Side {
        id: new_root,
        states: layout.root_states(),
    };
    let old = old_root.map(|id| Side {
        id: Some(id),
        states: layout.root_states(),
    });
    // An explicit stack: nesting is data-driven and may be deep.
    let mut stack: Vec<(String, Option<Side>, Option<Side>)> =
        vec![(String::new(), Some(new), old)];
    while let Some((path, new, old)) = stack.pop() {
        if let (Some(n), Some(o)) = (&new, &old)
            && n.id.is_some()
            && n.id == o.id
            && n.states == o.states
        {
            out.reused.push(path);
            continue;
        }
        let mut children: BTreeMap<String, (Option<Side>, Option<Side>)> = BTreeMap::new();
        if let Some(n) = new {
            let nodes = reader.list(&path, n.id)?;
            if path.is_empty() {
                out.root_names = Some(nodes.iter().map(|n| n.name.clone()).collect());
            }
            for node in nodes.iter().filter(|n| n.kind == NodeKind::Submodule) {
                reader.warnings().submodule(&join(&path, &node.name));
            }
            let visit = visit(layout, &n.states, &nodes);
            let index = index(&nodes);
            refuse_links_as_dirs(layout, reader, &path, &n.states, &nodes)?;
            for (rule, kind) in visit.dir_chunks {
                check_printable(&path)?;
                out.dir_chunks.push(DirChunk {
                    kind,
                    name: layout.chunk_name(rule, &path),
                    root: path.clone(),
                    tree: n.id,
                });
            }
            collect_members(&path, &nodes, &index, visit.files, &mut out.members);
            for (name, states) in visit.children {
                let id = index.get(name.as_str()).and_then(|&i| nodes[i].id);
                children.entry(name).or_default().0 = Some(Side { id, states });
            }
        }
        if let Some(o) = old {
            let nodes = reader.list(&path, o.id)?;
            let visit = visit(layout, &o.states, &nodes);
            let index = index(&nodes);
            collect_members(&path, &nodes, &index, visit.files, &mut out.old_members);
            for (name, states) in visit.children {
                let id = index.get(name.as_str()).and_then(|&i| nodes[i].id);
                children.entry(name).or_default().1 = Some(Side { id, states });
            }
        }
        for (name, (n, o)) in children.into_iter().rev() {
            stack.push((join(&path, &name), n, o));
        }
    }
    out.dir_chunks.sort_by(|a, b| a.root.cmp(&b.root));
    for m in out.members.values().flatten() {
        check_path(&m.path)?;
    }
    for v in out.members.values_mut().chain(out.old_members.values_mut()) {
        v.sort_by(|a, b| a.path.cmp(&b.path));
        // Two rules of one kind may match the same file: keep it once.
        v.dedup_by(|a, b| a.path == b.path);
    }
    Ok(out)
}

/// Refuses the first symlink (by name) of the directory at `path` that the layout would
/// enter were it a directory: a chunk's root (`elements -> /etc`) or a directory it looks
/// through for chunks (`questions/topic -> other`). The walk does not follow links, so what
/// such a link stands for would vanish from the version without a word; it is refused with
/// kiln-chunk's words for a link inside a chunk, naming it. A link the layout ships as a
/// file (a gathered member) or never looks at (like any file outside every chunk) passes.
fn refuse_links_as_dirs(
    layout: &Layout,
    reader: &mut dyn Reader,
    path: &str,
    states: &[State],
    nodes: &[Node],
) -> Result<()> {
    let links: Vec<&str> = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Symlink)
        .map(|n| n.name.as_str())
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    let files: Vec<&str> = nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::File { .. } | NodeKind::Symlink))
        .map(|n| n.name.as_str())
        .collect();
    let entered = layout.enter(states, &files, &links);
    let Some((name, below)) = entered.children.iter().min_by(|a, b| a.0.cmp(&b.0)) else {
        return Ok(());
    };
    let Some(node) = nodes.iter().find(|n| &n.name == name) else {
        return Ok(());
    };
    let link = join(path, name);
    check_printable(&link)?;
    let target = reader.link_target(&link, node)?;
    let refused = kiln_chunk::entry::refuse_link_as_dir(&link, &target);
    let chunk = layout
        .enter(below, &[], &[])
        .dir_chunks
        .first()
        .map(|&(rule, kind)| chunk_label(kind, &layout.chunk_name(rule, &link)));
    Err(Error::invalid(match chunk {
        Some(chunk) => format!("{refused} (in chunk {chunk})"),
        None => format!("{refused} (where the layout looks for chunks; links are not followed)"),
    }))
}

/// Entry positions by name: a directory may hold thousands of questions.
fn index(nodes: &[Node]) -> HashMap<&str, usize> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect()
}

fn visit(layout: &Layout, states: &[State], nodes: &[Node]) -> kiln_core::layout::Visit {
    let files: Vec<&str> = nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::File { .. } | NodeKind::Symlink))
        .map(|n| n.name.as_str())
        .collect();
    let dirs: Vec<&str> = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .map(|n| n.name.as_str())
        .collect();
    layout.enter(states, &files, &dirs)
}

fn collect_members(
    path: &str,
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    files: Vec<(ChunkKind, String)>,
    into: &mut BTreeMap<ChunkKind, Vec<Member>>,
) {
    for (kind, name) in files {
        if let Some(&i) = index.get(name.as_str()) {
            into.entry(kind).or_default().push(Member {
                path: join(path, &name),
                node: nodes[i].clone(),
            });
        }
    }
}

/// Lists every file and symlink below a chunk root, as (path relative to the root, node),
/// sorted by path. Fails on a path with a control character, or a file's path too long to
/// serve; warns about submodules.
pub(crate) fn list_tree(
    reader: &mut dyn Reader,
    root: &str,
    id: Option<Oid>,
) -> Result<Vec<(String, Node)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), id)];
    while let Some((rel, id)) = stack.pop() {
        for node in reader.list(&join(root, &rel), id)? {
            let p = join(&rel, &node.name);
            let course_path = join(root, &p);
            check_printable(&course_path)?;
            match node.kind {
                NodeKind::Dir => stack.push((p, node.id)),
                NodeKind::Submodule => reader.warnings().submodule(&course_path),
                NodeKind::File { .. } | NodeKind::Symlink => {
                    check_path(&course_path)?;
                    out.push((p, node))
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
