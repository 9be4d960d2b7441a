//! Identifiers: courses, versions, chunks and their kinds, libraries, runs and jobs.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A content address: BLAKE3 of a chunk's canonical uncompressed bundle (kiln-chunk owns the
/// bundle format and the chunk's object key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The lowercase hex form (64 characters).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
            s.push(char::from_digit((b & 15) as u32, 16).unwrap_or('0'));
        }
        s
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.to_hex())
    }
}

impl FromStr for ChunkId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("invalid chunk id {s:?}: expected 64 hex digits"));
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ChunkId(out))
    }
}

fn check_name(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {what} {s:?}: use 1-200 of [A-Za-z0-9._-], not starting with '.'"
        )))
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `s` and wraps it.
            pub fn new(s: impl Into<String>) -> Result<Self> {
                let s = s.into();
                check_name($what, &s)?;
                Ok(Self(s))
            }

            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }
    };
}

name_type!(
    /// A course id: safe as one path segment and one URL segment.
    CourseId,
    "course id"
);
name_type!(
    /// A version id: a git commit hash, or `dir-<hash>` for a plain directory.
    VersionId,
    "version id"
);
name_type!(
    /// A render library's name.
    LibraryName,
    "library name"
);

/// The kinds of chunk of the built-in PrairieLearn layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChunkKind {
    /// `elements/`, one per course.
    Elements,
    /// `elementExtensions/`, one per course.
    ElementExtensions,
    /// `clientFilesCourse/`, one per course.
    ClientFilesCourse,
    /// `serverFilesCourse/`, one per course.
    ServerFilesCourse,
    /// `courseInstances/<ci>/clientFilesCourseInstance/`.
    ClientFilesCourseInstance,
    /// `courseInstances/<ci>/serverFilesCourseInstance/`.
    ServerFilesCourseInstance,
    /// `courseInstances/<ci>/assessments/<aid>/clientFilesAssessment/`.
    ClientFilesAssessment,
    /// `questions/<qid>/`.
    Question,
    /// Every question's thumbnail, in one chunk.
    QuestionThumbnails,
    /// Every `info*.json`, in one chunk.
    CourseInfo,
}

impl ChunkKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ChunkKind; 10] = [
        ChunkKind::Elements,
        ChunkKind::ElementExtensions,
        ChunkKind::ClientFilesCourse,
        ChunkKind::ServerFilesCourse,
        ChunkKind::ClientFilesCourseInstance,
        ChunkKind::ServerFilesCourseInstance,
        ChunkKind::ClientFilesAssessment,
        ChunkKind::Question,
        ChunkKind::QuestionThumbnails,
        ChunkKind::CourseInfo,
    ];

    /// Whether a version has at most one chunk of this kind, named `""`: the course-wide
    /// directories and the gathered chunks. Every other kind is named by the question, course
    /// instance or assessment it belongs to.
    pub fn is_course_wide(self) -> bool {
        matches!(
            self,
            ChunkKind::Elements
                | ChunkKind::ElementExtensions
                | ChunkKind::ClientFilesCourse
                | ChunkKind::ServerFilesCourse
                | ChunkKind::QuestionThumbnails
                | ChunkKind::CourseInfo
        )
    }

    /// Whether a version may lack a chunk of this kind without the request for it being
    /// wrong. A course need not have `elements/`, `clientFilesCourse/`, a course instance's
    /// `serverFilesCourseInstance/` or any thumbnail, and PrairieLearn's own loader treats a
    /// missing one as empty; asking for it is then answered with the chunk listed as absent.
    /// A question is the one kind named by something the caller must already know exists:
    /// asking for a question the version does not have is an error, as in PrairieLearn.
    pub fn may_be_absent(self) -> bool {
        self != ChunkKind::Question
    }

    /// The kind's name as the CLI, the API and the catalog spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Elements => "elements",
            ChunkKind::ElementExtensions => "elementExtensions",
            ChunkKind::ClientFilesCourse => "clientFilesCourse",
            ChunkKind::ServerFilesCourse => "serverFilesCourse",
            ChunkKind::ClientFilesCourseInstance => "clientFilesCourseInstance",
            ChunkKind::ServerFilesCourseInstance => "serverFilesCourseInstance",
            ChunkKind::ClientFilesAssessment => "clientFilesAssessment",
            ChunkKind::Question => "question",
            ChunkKind::QuestionThumbnails => "questionThumbnails",
            ChunkKind::CourseInfo => "courseInfo",
        }
    }
}

impl fmt::Display for ChunkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChunkKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ChunkKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown chunk kind {s:?}")))
    }
}

/// A chunk by kind and name, e.g. `question:topic/q1`; course-wide chunks have an empty name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRef {
    /// The kind.
    pub kind: ChunkKind,
    /// The name within the kind (`topic/q1`), or empty for a course-wide chunk.
    pub name: String,
}

impl fmt::Display for ChunkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}:{}", self.kind, self.name)
        }
    }
}

impl FromStr for ChunkRef {
    type Err = Error;
    /// Parses `KIND:NAME`, or `KIND` for a course-wide kind ([`ChunkKind::is_course_wide`]);
    /// a course-wide kind with a name, or another kind without one, is invalid input.
    fn from_str(s: &str) -> Result<Self> {
        let (kind, name) = s.split_once(':').unwrap_or((s, ""));
        let kind: ChunkKind = kind.parse()?;
        if kind.is_course_wide() != name.is_empty() {
            let want = if kind.is_course_wide() {
                format!("{kind} is course-wide and takes no name")
            } else {
                format!("{kind} needs a name ({kind}:NAME)")
            };
            return Err(Error::invalid(format!("invalid chunk {s:?}: {want}")));
        }
        Ok(ChunkRef {
            kind,
            name: name.to_string(),
        })
    }
}

/// A reheat run's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A job's id in its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{ChunkId, ChunkRef};

    #[test]
    fn chunk_refs_name_what_their_kind_needs() {
        for ok in [
            "elements",
            "courseInfo",
            "question:topic/q1",
            "clientFilesAssessment:a/b",
        ] {
            assert_eq!(ok.parse::<ChunkRef>().unwrap().to_string(), ok);
        }
        for bad in [
            "elements:x",
            "question",
            "question:",
            "clientFilesCourseInstance",
            "nope",
        ] {
            assert!(bad.parse::<ChunkRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let id = ChunkId([0xab; 32]);
        assert_eq!(id.to_hex(), "ab".repeat(32));
        assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
        assert!("ab".parse::<ChunkId>().is_err());
        assert!("zz".repeat(32).parse::<ChunkId>().is_err());
    }
}
