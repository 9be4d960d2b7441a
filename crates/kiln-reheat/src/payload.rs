//! Job payloads, and the one place jobs are made: the three job types of a reheat
//! (new-build, producer, render) as JSON, and the [`NewJob`]s that carry them.
//!
//! Payloads carry references (library, run, generation, cursor, key) and small props, never
//! large ones: an encoded payload over [`MAX_PAYLOAD_BYTES`] is refused with an error naming
//! the key and the size. JSON keeps dead letters readable in `kiln dlq list`.
//!
//! The JSON is a persisted format (jobs wait in the queue across upgrades, dead letters
//! stay): the core ids serialize as the plain strings and integers they always were, and a
//! test pins the JSON of each kind.

use std::num::NonZeroU32;

use bytes::Bytes;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::queue::{NewJob, priority};
use kiln_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::Mark;
use crate::handler::{BuildContext, RenderItem};
use crate::library::Library;

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
        #[serde(with = "library_name")]
        library: LibraryName,
        /// The run.
        #[serde(with = "run_id")]
        run: RunId,
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
        #[serde(with = "library_name")]
        library: LibraryName,
        /// The run.
        #[serde(with = "run_id")]
        run: RunId,
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
        /// How many pages in a row before this one, in its listing, added no new key to the
        /// run ([`crate::chain`]).
        #[serde(default, skip_serializing_if = "is_zero")]
        idle: u64,
    },
    /// Render one key and store it.
    Render {
        /// The library.
        #[serde(with = "library_name")]
        library: LibraryName,
        /// The run, or none for a live render-through.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_run_id")]
        run: Option<RunId>,
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
    /// A run's event for the library's webhook: `POST`ed as `body`, retried with backoff.
    Event {
        /// The library.
        #[serde(with = "library_name")]
        library: LibraryName,
        /// `run.complete`, `run.failed`, `run.superseded` or `run.cancelled`.
        event: String,
        /// The JSON body: the run's summary.
        body: Value,
    },
    /// A job that could not be enqueued as it was (e.g. oversized): the worker makes it a
    /// dead letter at once with `reason`, so the run's counters show it.
    Invalid {
        /// The library.
        #[serde(with = "library_name")]
        library: LibraryName,
        /// What the job was for (e.g. the key).
        what: String,
        /// Why it could not run.
        reason: String,
    },
}

impl JobPayload {
    /// The library the job belongs to.
    pub fn library(&self) -> &LibraryName {
        match self {
            JobPayload::NewBuild { library, .. }
            | JobPayload::Producer { library, .. }
            | JobPayload::Render { library, .. }
            | JobPayload::Event { library, .. }
            | JobPayload::Invalid { library, .. } => library,
        }
    }

    /// What the job is about, for error messages: `render "key"`, `producer page 3`...
    pub fn describe(&self) -> String {
        match self {
            JobPayload::NewBuild { build, .. } => format!("new-build {build:?}"),
            JobPayload::Producer { cursor, .. } => format!("producer {cursor}"),
            JobPayload::Render { key, .. } => format!("render {key:?}"),
            JobPayload::Event { event, .. } => format!("event {event}"),
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
            JobPayload::Render { run: None, .. }
            | JobPayload::Event { .. }
            | JobPayload::Invalid { .. } => None,
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

    /// Encodes the payload, or, when it cannot be (oversized), an [`JobPayload::Invalid`]
    /// marker in its place: that job becomes a dead letter naming the key and the size,
    /// and the jobs enqueued with it go on. Fails only if the marker cannot be encoded
    /// either.
    fn encode_or_invalid(&self) -> Result<Bytes> {
        self.encode().or_else(|e| {
            JobPayload::Invalid {
                library: self.library().clone(),
                what: self.describe(),
                reason: e.to_string(),
            }
            .encode()
        })
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
            JobPayload::NewBuild { run, .. } | JobPayload::Producer { run, .. } => Some(*run),
            JobPayload::Render { run, .. } => *run,
            JobPayload::Event { .. } | JobPayload::Invalid { .. } => None,
        }
    }
}

/// Whether `n` is 0 (a count serde leaves out, so older payloads read the same).
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The fence key of a run's jobs: the library for a library-wide run, `library@group` for a
/// group run (a newer run of the same scope drops them).
pub fn fence_key(library: &LibraryName, group: Option<&str>) -> String {
    match group {
        None => library.to_string(),
        Some(g) => format!("{library}@{g}"),
    }
}

/// The jobs of one run, made here and nowhere else: what they share (library, run,
/// generation, the run's group and so its fence, attempts), with each kind's priority
/// and dedupe key.
#[derive(Debug, Clone)]
pub(crate) struct RunJobs {
    library: LibraryName,
    run: RunId,
    generation: u64,
    group: Option<String>,
    max_attempts: NonZeroU32,
}

impl RunJobs {
    /// The jobs of run `run` of `lib` at `generation`, rewriting `group` or, with `None`,
    /// the whole library.
    pub(crate) fn new(lib: &Library, run: RunId, generation: u64, group: Option<String>) -> Self {
        RunJobs {
            library: lib.name.clone(),
            run,
            generation,
            group,
            max_attempts: lib.settings.max_attempts,
        }
    }

    /// The jobs that a new-build or producer job of `ctx` asks for.
    pub(crate) fn of(lib: &Library, ctx: &BuildContext) -> Self {
        Self::new(lib, ctx.run, ctx.generation, ctx.group.clone())
    }

    /// The fence of the run's jobs: its scope's key and its generation.
    pub(crate) fn fence(&self) -> (String, u64) {
        (
            fence_key(&self.library, self.group.as_deref()),
            self.generation,
        )
    }

    /// The run's new-build job; a payload that cannot be encoded is an error, since the
    /// run has no other job.
    pub(crate) fn new_build(&self, build: String) -> Result<NewJob> {
        let payload = JobPayload::NewBuild {
            library: self.library.clone(),
            run: self.run,
            generation: self.generation,
            build,
            group: self.group.clone(),
        };
        Ok(self.job(payload.encode()?, &payload, priority::NEW_BUILD))
    }

    /// A producer job for `cursor`, at `page` of its listing with `mark`, after `idle` pages
    /// that added no new key (see [`crate::chain`]); an oversized one is an invalid marker.
    pub(crate) fn producer(
        &self,
        cursor: Value,
        page: u64,
        mark: Mark,
        idle: u64,
    ) -> Result<NewJob> {
        let payload = JobPayload::Producer {
            library: self.library.clone(),
            run: self.run,
            generation: self.generation,
            group: self.group.clone(),
            cursor,
            page,
            mark: Some(mark),
            idle,
        };
        Ok(self.job(payload.encode_or_invalid()?, &payload, priority::PRODUCER))
    }

    /// A render job for `item`; an oversized one is an invalid marker.
    pub(crate) fn render(&self, item: RenderItem) -> Result<NewJob> {
        let payload = JobPayload::Render {
            library: self.library.clone(),
            run: Some(self.run),
            generation: self.generation,
            group: item.group,
            key: item.key,
            props: item.props,
        };
        let mut job = self.job(payload.encode_or_invalid()?, &payload, priority::RENDER);
        job.throttle = Some(self.library.as_str().to_owned());
        Ok(job)
    }

    fn job(&self, bytes: Bytes, payload: &JobPayload, priority: i32) -> NewJob {
        NewJob {
            payload: bytes,
            priority,
            not_before: None,
            max_attempts: self.max_attempts,
            run: Some(self.run),
            fence: Some(self.fence()),
            dedupe: payload.dedupe_key(),
            throttle: None,
        }
    }
}

/// The render job of a live render-through that failed transiently: no run, no fence, at
/// [`priority::LIVE`] so a worker retries it ahead of any reheat work, within the library's
/// limits like every render job. A payload that
/// cannot be encoded is an error for the reader.
pub(crate) fn live_render(lib: &Library, generation: u64, item: RenderItem) -> Result<NewJob> {
    let payload = JobPayload::Render {
        library: lib.name.clone(),
        run: None,
        generation,
        group: item.group,
        key: item.key,
        props: item.props,
    };
    Ok(NewJob {
        payload: payload.encode()?,
        priority: priority::LIVE,
        not_before: None,
        max_attempts: lib.settings.max_attempts,
        run: None,
        fence: None,
        dedupe: None,
        throttle: Some(lib.name.as_str().to_owned()),
    })
}

/// The job that delivers `event` of a run of `lib` to its webhook, or `None` when the
/// library has none. It belongs to no run (its delivery does not hold the run open), and
/// is at [`priority::EVENT`].
pub(crate) fn event(lib: &Library, event: &str, body: Value) -> Result<Option<NewJob>> {
    if lib.settings.webhook.is_none() {
        return Ok(None);
    }
    let payload = JobPayload::Event {
        library: lib.name.clone(),
        event: event.to_string(),
        body,
    };
    Ok(Some(NewJob {
        payload: payload.encode()?,
        priority: priority::EVENT,
        not_before: None,
        max_attempts: lib.settings.max_attempts,
        run: None,
        fence: None,
        dedupe: None,
        throttle: None,
    }))
}

/// Serde for a [`LibraryName`] as its string (checked when read).
mod library_name {
    use kiln_core::ids::LibraryName;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(name: &LibraryName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LibraryName, D::Error> {
        LibraryName::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Serde for a [`RunId`] as its integer.
mod run_id {
    use kiln_core::ids::RunId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(run: &RunId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(run.0)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RunId, D::Error> {
        i64::deserialize(d).map(RunId)
    }
}

/// Serde for an optional [`RunId`] as an integer or null.
mod opt_run_id {
    use kiln_core::ids::RunId;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(run: &Option<RunId>, s: S) -> Result<S::Ok, S::Error> {
        run.map(|r| r.0).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RunId>, D::Error> {
        Option::<i64>::deserialize(d).map(|r| r.map(RunId))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guides() -> LibraryName {
        LibraryName::new("guides").unwrap()
    }

    #[test]
    fn round_trip_and_cap() {
        let p = JobPayload::Render {
            library: guides(),
            run: Some(RunId(3)),
            generation: 7,
            group: "g".into(),
            key: "k".into(),
            props: serde_json::json!({"a": 1}),
        };
        let b = p.encode().unwrap();
        assert_eq!(JobPayload::decode(&b).unwrap(), p);
        let big = JobPayload::Render {
            library: guides(),
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
                JobPayload::Event {
                    library: guides(),
                    event: "run.complete".into(),
                    body: serde_json::json!({"run": 3}),
                },
                r#"{"type":"event","library":"guides","event":"run.complete","body":{"run":3}}"#,
            ),
            (
                JobPayload::NewBuild {
                    library: guides(),
                    run: RunId(3),
                    generation: 7,
                    build: "abc".into(),
                    group: None,
                },
                r#"{"type":"new-build","library":"guides","run":3,"generation":7,"build":"abc"}"#,
            ),
            (
                JobPayload::NewBuild {
                    library: guides(),
                    run: RunId(3),
                    generation: 7,
                    build: "abc".into(),
                    group: Some("g1".into()),
                },
                r#"{"type":"new-build","library":"guides","run":3,"generation":7,"build":"abc","group":"g1"}"#,
            ),
            (
                JobPayload::Producer {
                    library: guides(),
                    run: RunId(3),
                    generation: 7,
                    group: None,
                    cursor: serde_json::json!({"page": 2}),
                    page: 0,
                    mark: None,
                    idle: 0,
                },
                r#"{"type":"producer","library":"guides","run":3,"generation":7,"cursor":{"page":2},"page":0}"#,
            ),
            (
                JobPayload::Producer {
                    library: guides(),
                    run: RunId(3),
                    generation: 7,
                    group: Some("g1".into()),
                    cursor: serde_json::json!(5),
                    page: 4,
                    mark: Some(Mark {
                        page: 4,
                        cursor: serde_json::json!(5),
                    }),
                    idle: 0,
                },
                r#"{"type":"producer","library":"guides","run":3,"generation":7,"group":"g1","cursor":5,"page":4,"mark":{"page":4,"cursor":5}}"#,
            ),
            (
                JobPayload::Producer {
                    library: guides(),
                    run: RunId(3),
                    generation: 7,
                    group: None,
                    cursor: serde_json::json!(6),
                    page: 5,
                    mark: Some(Mark {
                        page: 4,
                        cursor: serde_json::json!(5),
                    }),
                    idle: 2,
                },
                r#"{"type":"producer","library":"guides","run":3,"generation":7,"cursor":6,"page":5,"mark":{"page":4,"cursor":5},"idle":2}"#,
            ),
            (
                JobPayload::Render {
                    library: guides(),
                    run: Some(RunId(3)),
                    generation: 7,
                    group: "g".into(),
                    key: "k/1".into(),
                    props: serde_json::json!({"a": 1}),
                },
                r#"{"type":"render","library":"guides","run":3,"generation":7,"group":"g","key":"k/1","props":{"a":1}}"#,
            ),
            (
                JobPayload::Render {
                    library: guides(),
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
                    library: guides(),
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
                idle: 0,
                ..
            }
        ));
    }
}
