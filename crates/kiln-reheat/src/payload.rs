//! Job payloads: the three job types of a reheat (new-build, producer, render), as JSON.
//!
//! Payloads carry references (library, run, generation, cursor, key) and small props, never
//! large ones: an encoded payload over [`MAX_PAYLOAD_BYTES`] is refused with an error naming
//! the key and the size. JSON keeps dead letters readable in `kiln dlq list`.

use bytes::Bytes;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::Mark;

/// The largest encoded payload a job may carry (64 KiB): props beyond that belong in the
/// handler's own store, referenced by key.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A job of a reheat, as stored in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum JobPayload {
    /// The first job of a run: asks the handler for the run's producer (or render) jobs.
    NewBuild {
        /// The library.
        library: String,
        /// The run.
        run: i64,
        /// The build's generation.
        generation: u64,
        /// The build's label.
        build: String,
        /// The producer group of a group run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// One page of the listing: asks the handler for its render jobs (and the next page).
    Producer {
        /// The library.
        library: String,
        /// The run.
        run: i64,
        /// The build's generation.
        generation: u64,
        /// The producer group this job rewrites, if it rewrites one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// The handler's cursor (a page number, a document range, a course version...).
        cursor: Value,
        /// How many producer jobs precede this one in its listing (0 for those of the
        /// new-build job).
        #[serde(default)]
        page: u64,
        /// A cursor seen earlier in this listing, for cycle detection ([`crate::chain`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mark: Option<Mark>,
    },
    /// Render one key and store it.
    Render {
        /// The library.
        library: String,
        /// The run, or none for a live render-through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<i64>,
        /// The generation the entry is written at.
        generation: u64,
        /// The producer group of the entry.
        group: String,
        /// The cache key.
        key: String,
        /// Small props, or a reference the handler resolves.
        #[serde(default, skip_serializing_if = "Value::is_null")]
        props: Value,
    },
    /// A job that could not be enqueued as it was (e.g. oversized): the worker makes it a
    /// dead letter at once with `reason`, so the run's counters show it.
    Invalid {
        /// The library.
        library: String,
        /// What the job was for (e.g. the key).
        what: String,
        /// Why it could not run.
        reason: String,
    },
}

impl JobPayload {
    /// The library the job belongs to.
    pub fn library(&self) -> &str {
        match self {
            JobPayload::NewBuild { library, .. }
            | JobPayload::Producer { library, .. }
            | JobPayload::Render { library, .. }
            | JobPayload::Invalid { library, .. } => library,
        }
    }

    /// What the job is about, for error messages: `render "key"`, `producer page 3`...
    pub fn describe(&self) -> String {
        match self {
            JobPayload::NewBuild { build, .. } => format!("new-build {build:?}"),
            JobPayload::Producer { cursor, .. } => format!("producer {cursor}"),
            JobPayload::Render { key, .. } => format!("render {key:?}"),
            JobPayload::Invalid { what, .. } => what.clone(),
        }
    }

    /// The job's identity within its run, for the queue's idempotent enqueue: a redelivered
    /// new-build or producer job asks for the same jobs again, and they are created once.
    /// A producer is named by its page and cursor (so a listing that cycles makes new
    /// pages, which [`crate::chain`] detects), a render by its key.
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            JobPayload::NewBuild { .. } => Some("new-build".to_string()),
            JobPayload::Producer { page, cursor, .. } => Some(format!("producer:{page}:{cursor}")),
            JobPayload::Render {
                run: Some(_), key, ..
            } => Some(format!("render:{key}")),
            JobPayload::Render { run: None, .. } | JobPayload::Invalid { .. } => None,
        }
    }

    /// Encodes the payload; an encoding over [`MAX_PAYLOAD_BYTES`] is an
    /// [`Error::InvalidInput`] naming the job and its size.
    pub fn encode(&self) -> Result<Bytes> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| Error::invalid(format!("cannot encode {}: {e}", self.describe())))?;
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::invalid(format!(
                "library {}: {} payload is {} bytes, over the {MAX_PAYLOAD_BYTES}-byte cap: \
                 carry a reference to the props, not the props",
                self.library(),
                self.describe(),
                bytes.len()
            )));
        }
        Ok(Bytes::from(bytes))
    }

    /// Decodes a payload; the error quotes the start of an unreadable one.
    pub fn decode(bytes: &[u8]) -> Result<JobPayload> {
        serde_json::from_slice(bytes).map_err(|e| {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
            Error::invalid(format!("unreadable job payload {start:?}: {e}"))
        })
    }

    /// The run, if the job belongs to one.
    pub fn run(&self) -> Option<RunId> {
        match self {
            JobPayload::NewBuild { run, .. } | JobPayload::Producer { run, .. } => {
                Some(RunId(*run))
            }
            JobPayload::Render { run, .. } => run.map(RunId),
            JobPayload::Invalid { .. } => None,
        }
    }
}

/// The fence key of a run's jobs: the library for a library-wide run, `library@group` for a
/// group run (a newer run of the same scope drops them).
pub fn fence_key(library: &LibraryName, group: Option<&str>) -> String {
    match group {
        None => library.to_string(),
        Some(g) => format!("{library}@{g}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_cap() {
        let p = JobPayload::Render {
            library: "guides".into(),
            run: Some(3),
            generation: 7,
            group: "g".into(),
            key: "k".into(),
            props: serde_json::json!({"a": 1}),
        };
        let b = p.encode().unwrap();
        assert_eq!(JobPayload::decode(&b).unwrap(), p);
        let big = JobPayload::Render {
            library: "guides".into(),
            run: None,
            generation: 1,
            group: "g".into(),
            key: "huge".into(),
            props: Value::String("x".repeat(MAX_PAYLOAD_BYTES)),
        };
        let err = big.encode().unwrap_err().to_string();
        assert!(err.contains("\"huge\"") && err.contains("65536"), "{err}");
        assert!(JobPayload::decode(b"nope").is_err());
    }

    /// Payloads are a persisted format (queued jobs, dead letters): their JSON must not
    /// change. One case per kind, with and without the optional fields.
    #[test]
    fn payload_json_is_pinned() {
        let cases = [
            (
                JobPayload::NewBuild {
                    library: "guides".into(),
                    run: 3,
                    generation: 7,
                    build: "abc".into(),
                    group: None,
                },
                r#"{"type":"new-build","library":"guides","run":3,"generation":7,"build":"abc"}"#,
            ),
            (
                JobPayload::NewBuild {
                    library: "guides".into(),
                    run: 3,
                    generation: 7,
                    build: "abc".into(),
                    group: Some("g1".into()),
                },
                r#"{"type":"new-build","library":"guides","run":3,"generation":7,"build":"abc","group":"g1"}"#,
            ),
            (
                JobPayload::Producer {
                    library: "guides".into(),
                    run: 3,
                    generation: 7,
                    group: None,
                    cursor: serde_json::json!({"page": 2}),
                    page: 0,
                    mark: None,
                },
                r#"{"type":"producer","library":"guides","run":3,"generation":7,"cursor":{"page":2},"page":0}"#,
            ),
            (
                JobPayload::Producer {
                    library: "guides".into(),
                    run: 3,
                    generation: 7,
                    group: Some("g1".into()),
                    cursor: serde_json::json!(5),
                    page: 4,
                    mark: Some(Mark {
                        page: 4,
                        cursor: serde_json::json!(5),
                    }),
                },
                r#"{"type":"producer","library":"guides","run":3,"generation":7,"group":"g1","cursor":5,"page":4,"mark":{"page":4,"cursor":5}}"#,
            ),
            (
                JobPayload::Render {
                    library: "guides".into(),
                    run: Some(3),
                    generation: 7,
                    group: "g".into(),
                    key: "k/1".into(),
                    props: serde_json::json!({"a": 1}),
                },
                r#"{"type":"render","library":"guides","run":3,"generation":7,"group":"g","key":"k/1","props":{"a":1}}"#,
            ),
            (
                JobPayload::Render {
                    library: "guides".into(),
                    run: None,
                    generation: 0,
                    group: String::new(),
                    key: "k".into(),
                    props: Value::Null,
                },
                r#"{"type":"render","library":"guides","generation":0,"group":"","key":"k"}"#,
            ),
            (
                JobPayload::Invalid {
                    library: "guides".into(),
                    what: "render \"huge\"".into(),
                    reason: "too big".into(),
                },
                r#"{"type":"invalid","library":"guides","what":"render \"huge\"","reason":"too big"}"#,
            ),
        ];
        for (payload, json) in cases {
            let encoded = payload.encode().unwrap();
            assert_eq!(std::str::from_utf8(&encoded).unwrap(), json);
            assert_eq!(JobPayload::decode(json.as_bytes()).unwrap(), payload);
        }
        // Fields with defaults may be missing from older payloads.
        let old = r#"{"type":"producer","library":"guides","run":3,"generation":7,"cursor":1}"#;
        assert!(matches!(
            JobPayload::decode(old.as_bytes()).unwrap(),
            JobPayload::Producer {
                page: 0,
                mark: None,
                group: None,
                ..
            }
        ));
    }
}
