//! Running one job: decode its payload, find its library, take the permits that bound
//! handler calls, and run it; a render job ends here (its result capped and made an
//! entry), new-build and producer jobs go on in `spawn`.

use std::time::{Duration, Instant};

use kiln_core::ids::RunId;
use kiln_core::queue::Job;
use serde_json::Value;

use super::Worker;
use super::outcome::{Action, Outcome};
use crate::chain::Position;
use crate::handler::{BuildContext, RenderError};
use crate::library::Library;
use crate::payload::JobPayload;

impl Worker {
    /// Runs `job`; how it ended, to settle with its batch.
    pub(super) async fn execute(&self, job: Job) -> Outcome {
        let (action, render_took) = self.act(&job).await;
        Outcome {
            lease: job.lease,
            run: job.run,
            action,
            render_took,
        }
    }

    /// How `job` ends, and how long its render took if it is a render job.
    async fn act(&self, job: &Job) -> (Action, Option<Duration>) {
        let payload = match JobPayload::decode(&job.payload) {
            Ok(p) => p,
            Err(e) => return (Action::Fail(e.to_string()), None),
        };
        if let JobPayload::Invalid { reason, .. } = &payload {
            return (Action::Fail(reason.clone()), None);
        }
        let lib = match self.reheat.libraries().get(payload.library().as_str()) {
            Ok(l) => l,
            Err(e) => return (Action::Fail(e.to_string()), None),
        };
        // Permits bound producers and handler calls across lanes; the semaphores are never
        // closed, so acquiring cannot fail.
        let _producer = match payload {
            JobPayload::NewBuild { .. } | JobPayload::Producer { .. } => {
                self.producers.acquire().await.ok()
            }
            _ => None,
        };
        let Ok(_permit) = self.limit.acquire().await else {
            let stopping = Action::Retry {
                delay: Duration::ZERO,
                reason: "worker stopping".into(),
            };
            return (stopping, None);
        };
        let action = match payload {
            JobPayload::Render {
                generation,
                group,
                key,
                props,
                ..
            } => {
                let started = Instant::now();
                let action = self
                    .render(lib, job.attempt, generation, group, key, &props)
                    .await;
                return (action, Some(started.elapsed()));
            }
            JobPayload::NewBuild {
                run,
                generation,
                build,
                group,
                ..
            } => {
                let ctx = context(lib, run, generation, build, group);
                let out = lib.handler.new_build(&ctx).await;
                self.spawned(lib, &ctx, job.attempt, None, out).await
            }
            JobPayload::Producer {
                run,
                generation,
                group,
                cursor,
                page,
                mark,
                idle,
                ..
            } => {
                let ctx = context(lib, run, generation, String::new(), group);
                let out = lib.handler.produce(&ctx, &cursor).await;
                let at = Position {
                    page,
                    cursor: &cursor,
                    mark: mark.as_ref(),
                    idle,
                };
                self.spawned(lib, &ctx, job.attempt, Some(at), out).await
            }
            JobPayload::Event { event, body, .. } => {
                let Some(url) = &lib.settings.webhook else {
                    // The webhook was removed from the config since: nothing to deliver to.
                    return (Action::Ack, None);
                };
                let sent =
                    crate::http::post_event(&lib.name, url, &event, &body, lib.settings.timeout)
                        .await;
                match sent {
                    Ok(()) => Action::Ack,
                    Err(RenderError::Retry { reason, .. }) => Action::Retry {
                        delay: self.opts.backoff.delay(job.attempt),
                        reason,
                    },
                    Err(RenderError::Fail(reason)) => Action::Fail(reason),
                }
            }
            JobPayload::Invalid { .. } => Action::Fail("invalid job".into()),
        };
        (action, None)
    }

    /// Renders `key` (attempt `attempt`) into an entry of `group` at `generation`, held to
    /// the library's `max_render_bytes`; a transient error is retried with backoff (no
    /// sooner than the renderer asked), any other is a dead letter.
    async fn render(
        &self,
        lib: &Library,
        attempt: u32,
        generation: u64,
        group: String,
        key: String,
        props: &Value,
    ) -> Action {
        let started = Instant::now();
        let result = lib.handler.render(&key, props).await;
        self.metrics
            .record_render(started.elapsed(), result.is_ok());
        match result {
            // Declarative renderers stop reading at the cap; this holds any handler to it.
            Ok(r) if r.bytes.len() > lib.settings.max_render_bytes => Action::Fail(format!(
                "library {}: the render of {key:?} is {} bytes, more than {} (max_render_bytes)",
                lib.name,
                r.bytes.len(),
                lib.settings.max_render_bytes
            )),
            Ok(r) => Action::Put {
                library: lib.name.clone(),
                entry: r.into_entry(key, group, generation, self.reheat.clock().now()),
            },
            Err(RenderError::Retry { after, reason }) => Action::Retry {
                delay: self
                    .opts
                    .backoff
                    .delay(attempt)
                    .max(after.unwrap_or_default()),
                reason: format!("library {}: {reason}", lib.name),
            },
            Err(RenderError::Fail(reason)) => {
                Action::Fail(format!("library {}: {reason}", lib.name))
            }
        }
    }
}

/// What a new-build or producer job of `lib` hands to its handler.
fn context(
    lib: &Library,
    run: RunId,
    generation: u64,
    build: String,
    group: Option<String>,
) -> BuildContext {
    BuildContext {
        library: lib.name.clone(),
        run,
        generation,
        build,
        group,
        page_size: lib.settings.page_size.get(),
    }
}
