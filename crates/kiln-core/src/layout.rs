//! Layout rules as data: which files of a course go into which chunk.
//!
//! A [`Layout`] is one table of [`Rule`]s. Each rule names a chunk kind, the path pattern of
//! the chunk's root directory ([`Segment`]s), and whether the chunk is the whole directory
//! ([`Shape::Dir`]) or some files of it, gathered with every other match of the same kind into
//! one course-wide chunk ([`Shape::Files`]). The walker in kiln-sync applies the table with
//! [`Layout::root_states`] and [`Layout::enter`]; nothing outside this file knows
//! PrairieLearn's directory names.

use crate::ids::ChunkKind;

/// One step of a chunk root's path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A directory with exactly this name.
    Lit(String),
    /// One or more directories, the last of which holds a file with this name
    /// (question ids, course instance ids and assessment ids nest).
    Marked(String),
}

/// What a rule's chunk holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// The whole directory at the root, one chunk per match.
    Dir,
    /// The files of the matched directory whose names match the glob; all matches of the
    /// rule's kind form one course-wide chunk, with paths relative to the course root.
    Files(Glob),
}

/// A file-name pattern with at most one `*` (`thumbnail.*`, `info*.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl Glob {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self.0.split_once('*') {
            None => self.0 == name,
            Some((pre, post)) => {
                name.len() >= pre.len() + post.len()
                    && name.starts_with(pre)
                    && name.ends_with(post)
            }
        }
    }
}

/// One row of the layout table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The chunk kind this rule produces.
    pub kind: ChunkKind,
    /// The path of the chunk root, from the course root.
    pub root: Vec<Segment>,
    /// Whole directory or selected files.
    pub shape: Shape,
}

/// A table of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The rules, applied together.
    pub rules: Vec<Rule>,
}

/// A partial match of one rule, attached to the directory being visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    rule: usize,
    /// How many segments of the rule's root the directory has matched.
    pos: usize,
    /// True while looking for the marker of `root[pos]` in this directory or below.
    searching: bool,
}

/// What a directory is, given its states and its entries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Visit {
    /// `Dir` rules whose root is this directory: (rule index, kind).
    pub dir_chunks: Vec<(usize, ChunkKind)>,
    /// Files of this directory that go into a `Files` chunk: (kind, file name).
    pub files: Vec<(ChunkKind, String)>,
    /// Child directories to visit, each with its states.
    pub children: Vec<(String, Vec<State>)>,
}

/// Options of the built-in PrairieLearn layout.
#[derive(Debug, Clone)]
pub struct PrairieLearnOptions {
    /// The file-name pattern of question thumbnails.
    pub thumbnail_glob: String,
}

impl Default for PrairieLearnOptions {
    fn default() -> Self {
        PrairieLearnOptions {
            thumbnail_glob: "thumbnail.*".to_string(),
        }
    }
}

fn lit(s: &str) -> Segment {
    Segment::Lit(s.to_string())
}

fn marked(s: &str) -> Segment {
    Segment::Marked(s.to_string())
}

impl Layout {
    /// The built-in layout of a PrairieLearn course.
    pub fn prairielearn(opts: &PrairieLearnOptions) -> Layout {
        use ChunkKind as K;
        let ci = || vec![lit("courseInstances"), marked("infoCourseInstance.json")];
        let assessment = || {
            let mut v = ci();
            v.extend([lit("assessments"), marked("infoAssessment.json")]);
            v
        };
        let question = || vec![lit("questions"), marked("info.json")];
        let with = |mut v: Vec<Segment>, last: &str| {
            v.push(lit(last));
            v
        };
        let dir = |kind, root| Rule {
            kind,
            root,
            shape: Shape::Dir,
        };
        let files = |kind, root, glob: &str| Rule {
            kind,
            root,
            shape: Shape::Files(Glob(glob.to_string())),
        };
        Layout {
            rules: vec![
                dir(K::Elements, vec![lit("elements")]),
                dir(K::ElementExtensions, vec![lit("elementExtensions")]),
                dir(K::ClientFilesCourse, vec![lit("clientFilesCourse")]),
                dir(K::ServerFilesCourse, vec![lit("serverFilesCourse")]),
                dir(
                    K::ClientFilesCourseInstance,
                    with(ci(), "clientFilesCourseInstance"),
                ),
                dir(
                    K::ServerFilesCourseInstance,
                    with(ci(), "serverFilesCourseInstance"),
                ),
                dir(
                    K::ClientFilesAssessment,
                    with(assessment(), "clientFilesAssessment"),
                ),
                dir(K::Question, question()),
                files(K::QuestionThumbnails, question(), &opts.thumbnail_glob),
                files(K::CourseInfo, vec![], "infoCourse.json"),
                files(K::CourseInfo, ci(), "infoCourseInstance.json"),
                files(K::CourseInfo, assessment(), "infoAssessment.json"),
                files(K::CourseInfo, question(), "info.json"),
            ],
        }
    }

    /// The states of the course root directory.
    pub fn root_states(&self) -> Vec<State> {
        (0..self.rules.len())
            .map(|rule| State {
                rule,
                pos: 0,
                searching: false,
            })
            .collect()
    }

    /// Visits a directory: `states` are the states it was reached with, `files` the names of
    /// its files (and symlinks), `dirs` the names of its subdirectories.
    pub fn enter(&self, states: &[State], files: &[&str], dirs: &[&str]) -> Visit {
        let mut visit = Visit::default();
        // Children by name: a flat `questions/` may hold thousands of directories, and a
        // linear search per (directory, state) would make the walk quadratic.
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut push_child = |visit: &mut Visit, name: &str, st: State| match index.get(name) {
            Some(&i) => visit.children[i].1.push(st),
            None => {
                index.insert(name.to_string(), visit.children.len());
                visit.children.push((name.to_string(), vec![st]));
            }
        };
        for &st in states {
            let rule = &self.rules[st.rule];
            let mut st = st;
            if st.searching {
                let Segment::Marked(marker) = &rule.root[st.pos] else {
                    continue;
                };
                if files.contains(&marker.as_str()) {
                    st = State {
                        rule: st.rule,
                        pos: st.pos + 1,
                        searching: false,
                    };
                } else {
                    for d in dirs {
                        push_child(&mut visit, d, st);
                    }
                    continue;
                }
            }
            if st.pos == rule.root.len() {
                match &rule.shape {
                    Shape::Dir => visit.dir_chunks.push((st.rule, rule.kind)),
                    Shape::Files(glob) => {
                        for f in files.iter().filter(|f| glob.matches(f)) {
                            visit.files.push((rule.kind, f.to_string()));
                        }
                    }
                }
                continue;
            }
            match &rule.root[st.pos] {
                Segment::Lit(name) => {
                    if dirs.contains(&name.as_str()) {
                        let next = State {
                            rule: st.rule,
                            pos: st.pos + 1,
                            searching: false,
                        };
                        push_child(&mut visit, name, next);
                    }
                }
                Segment::Marked(_) => {
                    for d in dirs {
                        let next = State {
                            rule: st.rule,
                            pos: st.pos,
                            searching: true,
                        };
                        push_child(&mut visit, d, next);
                    }
                }
            }
        }
        visit
    }

    /// The chunk name of a `Dir` rule's match at `root` (course-relative, `/`-separated):
    /// the root without the rule's leading and trailing literal segments, so
    /// `questions/topic/q1` names question `topic/q1` and `elements` names the course-wide
    /// elements chunk ``.
    pub fn chunk_name(&self, rule: usize, root: &str) -> String {
        let segs = &self.rules[rule].root;
        let lead = segs
            .iter()
            .take_while(|s| matches!(s, Segment::Lit(_)))
            .count();
        let trail = segs
            .iter()
            .rev()
            .take_while(|s| matches!(s, Segment::Lit(_)))
            .count();
        if lead == segs.len() {
            return String::new();
        }
        let parts: Vec<&str> = root.split('/').filter(|p| !p.is_empty()).collect();
        let end = parts.len().saturating_sub(trail);
        parts[lead.min(end)..end].join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_prefix_and_suffix() {
        let g = Glob("thumbnail.*".into());
        assert!(g.matches("thumbnail.png"));
        assert!(!g.matches("thumb.png"));
        assert!(Glob("info.json".into()).matches("info.json"));
        assert!(!Glob("info.json".into()).matches("info.jsonx"));
    }

    #[test]
    fn chunk_names_strip_literal_runs() {
        let l = Layout::prairielearn(&PrairieLearnOptions::default());
        let idx = |k| l.rules.iter().position(|r| r.kind == k).unwrap();
        assert_eq!(
            l.chunk_name(idx(ChunkKind::Question), "questions/topic/q1"),
            "topic/q1"
        );
        assert_eq!(l.chunk_name(idx(ChunkKind::Elements), "elements"), "");
        assert_eq!(
            l.chunk_name(
                idx(ChunkKind::ClientFilesAssessment),
                "courseInstances/Fa25/assessments/hw1/clientFilesAssessment"
            ),
            "Fa25/assessments/hw1"
        );
    }

    #[test]
    fn questions_nest_and_stop_at_their_marker() {
        let l = Layout::prairielearn(&PrairieLearnOptions::default());
        let root = l.enter(
            &l.root_states(),
            &["infoCourse.json"],
            &["questions", "misc"],
        );
        assert_eq!(
            root.files,
            vec![(ChunkKind::CourseInfo, "infoCourse.json".to_string())]
        );
        let (name, qs) = &root.children[0];
        assert_eq!(name, "questions");
        assert_eq!(root.children.len(), 1, "misc matches no rule");
        let topic = l.enter(qs, &[], &["topic"]);
        let (_, t) = &topic.children[0];
        let inner = l.enter(t, &[], &["q1"]);
        let q1 = l.enter(
            &inner.children[0].1,
            &["info.json", "thumbnail.png"],
            &["sub"],
        );
        assert_eq!(q1.dir_chunks.len(), 1);
        assert_eq!(q1.dir_chunks[0].1, ChunkKind::Question);
        assert!(
            q1.files
                .contains(&(ChunkKind::QuestionThumbnails, "thumbnail.png".into()))
        );
        assert!(
            q1.files
                .contains(&(ChunkKind::CourseInfo, "info.json".into()))
        );
        assert!(q1.children.is_empty(), "no question nests in a question");
    }
}
