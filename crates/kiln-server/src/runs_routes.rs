//! What an operator looks at (the dashboard's reheat pages read these): the libraries with
//! their latest runs, a library's run history, a run's throughput over time, the queue by job
//! type, and the dead letters with their redrive.

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use kiln_core::ids::{JobId, LibraryName, RunId};
use kiln_core::ledger::RunState;
use kiln_core::queue::priority;
use kiln_reheat::payload::JobPayload;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::reheat_routes::{RunView, reheat, run_id, segment};
use crate::sampler::Sample;

/// The most runs a listing returns.
const MAX_RUNS: usize = 200;

/// The runs routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/libraries", get(list_libraries))
        .route("/v1/libraries/{library}/runs", get(library_runs))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{run}/throughput", get(run_throughput))
        .route("/v1/queue", get(queue_depth))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/redrive", post(redrive))
}

/// A library as the dashboard lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LibraryView {
    /// Its name.
    name: String,
    /// Whether its jobs are held back.
    paused: bool,
    /// Renders at once across all workers, if limited.
    concurrency: Option<u32>,
    /// Renders per second across all workers, if limited.
    rate: Option<f64>,
    /// Its cron schedule, if any.
    schedule: Option<String>,
    /// Its newest run.
    last_run: Option<RunView>,
}

/// `GET /v1/libraries`: every configured library with its newest run.
#[utoipa::path(get, path = "/v1/libraries", tag = "reheat",
    responses((status = 200, description = "The libraries, by name", body = Vec<LibraryView>)))]
pub(crate) async fn list_libraries(
    State(st): State<AppState>,
) -> Result<Json<Vec<LibraryView>>, ApiError> {
    let reheat = reheat(&st)?;
    let paused = reheat.queue().paused().await?;
    let now = reheat.clock().now();
    let mut out = Vec::new();
    for lib in reheat.libraries().iter() {
        let last = reheat.ledger().runs(Some(&lib.name), 1).await?;
        let last_run = match last.into_iter().next() {
            Some(run) => Some(RunView::at(reheat.status(run.id).await?, now)),
            None => None,
        };
        out.push(LibraryView {
            name: lib.name.to_string(),
            paused: paused.iter().any(|p| p == lib.name.as_str()),
            concurrency: lib.settings.limits.concurrency.map(|c| c.get()),
            rate: lib.settings.limits.rate.map(|r| r.per_second()),
            schedule: lib
                .settings
                .schedule
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            last_run,
        });
    }
    Ok(Json(out))
}

/// A listing's size.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Limit {
    /// At most this many (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

impl Limit {
    fn get(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_RUNS).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(format!(
                "limit {n}: expected 1 to {MAX_RUNS}"
            ))),
        }
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))
}

async fn views(
    st: &AppState,
    library: Option<&LibraryName>,
    limit: usize,
    running: bool,
) -> Result<Vec<RunView>, ApiError> {
    let reheat = reheat(st)?;
    let now = reheat.clock().now();
    let mut out = Vec::new();
    for run in reheat.ledger().runs(library, limit).await? {
        if running && run.state != RunState::Running {
            continue;
        }
        out.push(RunView::at(reheat.status(run.id).await?, now));
    }
    Ok(out)
}

/// `GET /v1/libraries/{library}/runs`: the library's runs, newest first.
#[utoipa::path(get, path = "/v1/libraries/{library}/runs", tag = "reheat",
    params(("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"), Limit),
    responses(
        (status = 200, description = "Its runs, newest first", body = Vec<RunView>),
        (status = 400, description = "A bad name or limit", body = crate::error::Body),
        (status = 404, description = "No such library", body = crate::error::Body)))]
pub(crate) async fn library_runs(
    State(st): State<AppState>,
    library: Result<Path<String>, PathRejection>,
    limit: Result<Query<Limit>, QueryRejection>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let name = segment(library)?;
    let limit = query(limit)?.get()?;
    let lib = reheat(&st)?.libraries().get(&name)?.name.clone();
    Ok(Json(views(&st, Some(&lib), limit, false).await?))
}

/// Which runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only runs in progress.
    running: Option<bool>,
    /// At most this many of the newest runs are looked at (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// `GET /v1/runs`: the newest runs of every library (`?running=true`: those in progress).
#[utoipa::path(get, path = "/v1/runs", tag = "reheat",
    params(RunsQuery),
    responses(
        (status = 200, description = "Runs, newest first", body = Vec<RunView>),
        (status = 400, description = "A bad query", body = crate::error::Body)))]
pub(crate) async fn list_runs(
    State(st): State<AppState>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let q = query(q)?;
    let limit = Limit { limit: q.limit }.get()?;
    Ok(Json(
        views(&st, None, limit, q.running.unwrap_or(false)).await?,
    ))
}

/// `GET /v1/runs/{run}/throughput`: the run's progress as this server sampled it (every
/// [`crate::sampler::EVERY`] while it ran and this server was up; empty for a run it never
/// saw running).
#[utoipa::path(get, path = "/v1/runs/{run}/throughput", tag = "reheat",
    params(("run" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Samples, oldest first", body = Vec<Sample>),
        (status = 400, description = "A bad id", body = crate::error::Body),
        (status = 404, description = "No such run", body = crate::error::Body)))]
pub(crate) async fn run_throughput(
    State(st): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<Sample>>, ApiError> {
    let id = run_id(segment(run)?)?;
    reheat(&st)?.ledger().run(id).await?;
    Ok(Json(st.sampler.samples(id)))
}

/// Jobs of one type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QueueRow {
    /// `live-render`, `event`, `new-build`, `producer`, `render` (or `other`).
    job_type: &'static str,
    /// The priority the type runs at.
    priority: i32,
    /// Waiting to be leased (ready, delayed or back from an expired lease).
    waiting: u64,
    /// Under a valid lease.
    leased: u64,
}

/// The queue at a glance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QueueView {
    /// Jobs by type, highest priority first.
    by_type: Vec<QueueRow>,
    /// Dead letters.
    dead: u64,
    /// Paused libraries.
    paused: Vec<String>,
}

/// `GET /v1/queue`: jobs by type, dead letters and paused libraries.
#[utoipa::path(get, path = "/v1/queue", tag = "reheat",
    responses((status = 200, description = "The queue", body = QueueView)))]
pub(crate) async fn queue_depth(State(st): State<AppState>) -> Result<Json<QueueView>, ApiError> {
    let q = reheat(&st)?.queue();
    let (depth, dead) = q.depth().await?;
    Ok(Json(QueueView {
        by_type: depth
            .into_iter()
            .map(|d| QueueRow {
                job_type: priority::name(d.priority),
                priority: d.priority,
                waiting: d.waiting,
                leased: d.leased,
            })
            .collect(),
        dead,
        paused: q.paused().await?,
    }))
}

/// Which dead letters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadQuery {
    /// Only this run's.
    run: Option<i64>,
    /// At most this many (default 50, at most 200), oldest first.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// A dead letter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeadLetterView {
    /// The job's id (what a redrive names).
    id: i64,
    /// Its run.
    run: Option<i64>,
    /// Its library, when the payload says.
    library: Option<String>,
    /// What the job was: `render "key"`, `producer ...`.
    job: String,
    /// Attempts made.
    attempts: u32,
    /// The last error.
    error: String,
    /// Unix milliseconds.
    failed_at: i64,
}

/// `GET /v1/dead-letters`: dead letters, oldest first (`?run=`: one run's).
#[utoipa::path(get, path = "/v1/dead-letters", tag = "reheat",
    params(DeadQuery),
    responses(
        (status = 200, description = "Dead letters, oldest first", body = Vec<DeadLetterView>),
        (status = 400, description = "A bad query", body = crate::error::Body)))]
pub(crate) async fn dead_letters(
    State(st): State<AppState>,
    q: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<Vec<DeadLetterView>>, ApiError> {
    let q = query(q)?;
    let limit = Limit { limit: q.limit }.get()?;
    let queue = reheat(&st)?.queue();
    // One run's letters are picked from the oldest few thousand: a dashboard's view.
    let scan = if q.run.is_some() { 5000 } else { limit };
    let out = queue
        .dead_letters(scan)
        .await?
        .into_iter()
        .filter(|d| q.run.is_none_or(|r| d.run == Some(RunId(r))))
        .take(limit)
        .map(|d| {
            let payload = JobPayload::decode(&d.payload).ok();
            DeadLetterView {
                id: d.id.0,
                run: d.run.map(|r| r.0),
                library: payload.as_ref().map(|p| p.library().to_string()),
                job: payload.map_or_else(|| "unreadable payload".into(), |p| p.describe()),
                attempts: d.attempts,
                error: d.error,
                failed_at: d.failed_at.0,
            }
        })
        .collect();
    Ok(Json(out))
}

/// Which dead letters to redrive.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveRequest {
    /// The jobs' ids; absent: every dead letter. (Read as JSON numbers: `7.0` is 7, as JSON
    /// Schema's `integer` has it.)
    #[schema(value_type = Option<Vec<i64>>)]
    ids: Option<Vec<serde_json::Number>>,
}

/// A job id from a JSON number that is an integer, however written.
fn job_id(n: &serde_json::Number) -> Result<JobId, ApiError> {
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .map(JobId)
        .ok_or_else(|| ApiError::invalid(format!("invalid job id {n}: expected an integer")))
}

/// What a redrive did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Redriven {
    /// Dead letters made ready again.
    redriven: u64,
}

/// `POST /v1/dead-letters/redrive`: makes dead letters ready again with fresh attempts.
#[utoipa::path(post, path = "/v1/dead-letters/redrive", tag = "reheat",
    request_body(content = Option<RedriveRequest>, content_type = "application/json",
        description = "Which letters (empty or `null`: every dead letter)"),
    responses(
        (status = 200, description = "Redriven", body = Redriven),
        (status = 400, description = "A bad body", body = crate::error::Body)))]
pub(crate) async fn redrive(
    State(st): State<AppState>,
    body: bytes::Bytes,
) -> Result<Json<Redriven>, ApiError> {
    let req: RedriveRequest = crate::body::optional_object(&body, "redrive request")?;
    let queue = reheat(&st)?.queue();
    let ids: Option<Vec<JobId>> = req
        .ids
        .map(|v| v.iter().map(job_id).collect::<Result<_, _>>())
        .transpose()?;
    let redriven = queue.redrive(ids.as_deref()).await?;
    Ok(Json(Redriven { redriven }))
}
