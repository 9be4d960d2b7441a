//! The reheat routes: `POST /v1/libraries/{library}/builds` (what a build pipeline calls,
//! as Theia emits its new-build job) and `GET /v1/runs/{run}`; the render cache's routes are
//! in [`crate::cache_routes`].

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use kiln_core::Error;
use kiln_core::ids::RunId;
use kiln_reheat::{Reheat, RunStatus, StartOptions};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// What the reheat handlers need: the reheat service (runs ledger, queue, cache, libraries).
#[derive(Debug, Clone)]
pub struct ReheatState {
    reheat: Reheat,
}

impl ReheatState {
    /// The routes' state over `reheat`.
    pub fn new(reheat: Reheat) -> Self {
        ReheatState { reheat }
    }

    /// The reheat service.
    pub(crate) fn reheat(&self) -> &Reheat {
        &self.reheat
    }
}

/// The reheat routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/libraries/{library}/builds", post(start_build))
        .route("/v1/runs/{run}", get(show_run))
        .route("/v1/runs/{run}/cancel", post(cancel_run))
        .route("/v1/libraries/{library}/pause", post(pause_library))
        .route("/v1/libraries/{library}/resume", post(resume_library))
}

pub(crate) fn reheat(st: &AppState) -> Result<&Reheat, ApiError> {
    st.reheat.as_ref().map(|r| &r.reheat).ok_or_else(|| {
        ApiError(Error::not_found(
            "reheat (this server has no [[library]] configured)",
        ))
    })
}

pub(crate) fn segment<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::invalid(format!("invalid path: {e}")))
}

/// The body of `POST /v1/libraries/{library}/builds`; every field optional, and an empty
/// body is a build with the defaults. The seed's new-build message body (`builtAt`,
/// `commitHash`, and whatever else a pipeline sends) is accepted as it is: the commit hash
/// is the build's label unless `build` is given, and fields kiln does not know are ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct BuildRequest {
    /// The build's label (a commit hash, a course version).
    build: Option<String>,
    /// Rewrite one producer group only.
    group: Option<String>,
    /// The commit of the build (the seed's message body): the label when `build` is absent.
    #[serde(rename = "commitHash")]
    commit_hash: Option<String>,
    /// When the build was made (the seed's message body); recorded in the log only.
    #[serde(rename = "builtAt")]
    built_at: Option<serde_json::Value>,
}

/// A run as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunView {
    /// The run's id.
    run: i64,
    /// The library.
    library: String,
    /// The build's label.
    build: String,
    /// The build's generation (strictly increasing per library).
    generation: u64,
    /// The producer group of a group run.
    group: Option<String>,
    /// `running`, `complete`, `failed`, `superseded` or `cancelled`.
    state: &'static str,
    /// Unix milliseconds.
    created_at: i64,
    /// Unix milliseconds, once the run has left `running`.
    finished_at: Option<i64>,
    /// Jobs created for the run.
    jobs_enqueued: u64,
    /// Jobs done.
    jobs_done: u64,
    /// Failed attempts.
    jobs_failed: u64,
    /// Jobs that became dead letters.
    jobs_dead: u64,
    /// Jobs a newer build fenced off.
    jobs_dropped: u64,
    /// What the run did beyond its job counts.
    summary: RunSummary,
}

/// A run's summary: wall time, renders and their latency, failures by reason, pruning.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunSummary {
    /// Start to finish (to now while running), in milliseconds.
    wall_ms: u64,
    /// Renders (successful or not).
    renders: u64,
    /// The latency below which half the renders fell: a bucket bound, in milliseconds
    /// (`null` without renders, or when it is above every bound, 30 s).
    render_p50_ms: Option<f64>,
    /// The same for 99% of the renders.
    render_p99_ms: Option<f64>,
    /// Failed attempts (retried or dead) by reason, keys elided.
    failures: std::collections::BTreeMap<String, u64>,
    /// Entries pruned: swept on completion, or marked to expire at the start.
    pruned: u64,
}

impl RunView {
    /// The view of `s` read at `now` (the wall time of a running run).
    pub(crate) fn at(s: RunStatus, now: kiln_core::time::Timestamp) -> Self {
        let summary = RunSummary {
            wall_ms: s.wall_time(now).as_millis() as u64,
            renders: s.stats.renders(),
            render_p50_ms: s
                .stats
                .latency_quantile(0.5)
                .and_then(kiln_reheat::reheat::seconds_to_ms),
            render_p99_ms: s
                .stats
                .latency_quantile(0.99)
                .and_then(kiln_reheat::reheat::seconds_to_ms),
            failures: s.stats.failures.clone(),
            pruned: s.stats.pruned,
        };
        RunView {
            summary,
            run: s.run.id.0,
            library: s.run.library.to_string(),
            build: s.run.build,
            generation: s.run.generation,
            group: s.run.group,
            state: s.run.state.as_str(),
            created_at: s.run.created_at.0,
            finished_at: s.run.finished_at.map(|t| t.0),
            jobs_enqueued: s.tally.enqueued,
            jobs_done: s.tally.done,
            jobs_failed: s.tally.failed,
            jobs_dead: s.tally.dead,
            jobs_dropped: s.tally.dropped,
        }
    }
}

/// `POST /v1/libraries/{library}/builds`: a new build of a library starts a run.
#[utoipa::path(post, path = "/v1/libraries/{library}/builds", tag = "reheat",
    params(("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    request_body(content = Option<BuildRequest>, content_type = "application/json"),
    responses(
        (status = 201, description = "The run started", body = RunView),
        (status = 400, description = "A bad body", body = crate::error::Body),
        (status = 404, description = "No such library (or no reheat configured)", body = crate::error::Body)))]
pub(crate) async fn start_build(
    State(st): State<AppState>,
    library: Result<Path<String>, PathRejection>,
    body: bytes::Bytes,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let library = segment(library)?;
    // An empty body is a build with default options (what a pipeline's bare POST sends).
    let req: BuildRequest = crate::body::optional_object(&body, "build request")?;
    let reheat = reheat(&st)?;
    if let Some(at) = &req.built_at {
        tracing::info!(%library, built_at = %at, "new build");
    }
    let run = reheat
        .start(
            &library,
            StartOptions {
                build: req.build.or(req.commit_hash),
                group: req.group,
            },
        )
        .await?;
    let status = reheat.status(run.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(RunView::at(status, reheat.clock().now())),
    ))
}

/// `GET /v1/runs/{run}`: a run and its counters.
#[utoipa::path(get, path = "/v1/runs/{run}", tag = "reheat",
    params(("run" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 400, description = "A bad id", body = crate::error::Body),
        (status = 404, description = "No such run", body = crate::error::Body)))]
pub(crate) async fn show_run(
    State(st): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> Result<Json<RunView>, ApiError> {
    let id = run_id(segment(run)?)?;
    let reheat = reheat(&st)?;
    Ok(Json(RunView::at(
        reheat.status(id).await?,
        reheat.clock().now(),
    )))
}

/// `POST /v1/runs/{run}/cancel`: drops the run's pending jobs and closes it as `cancelled`;
/// nothing is pruned.
#[utoipa::path(post, path = "/v1/runs/{run}/cancel", tag = "reheat",
    params(("run" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run, cancelled (or the state it reached first)", body = RunView),
        (status = 400, description = "A bad id", body = crate::error::Body),
        (status = 404, description = "No such run", body = crate::error::Body),
        (status = 409, description = "The run is not running", body = crate::error::Body)))]
pub(crate) async fn cancel_run(
    State(st): State<AppState>,
    run: Result<Path<String>, PathRejection>,
) -> Result<Json<RunView>, ApiError> {
    let id = run_id(segment(run)?)?;
    let reheat = reheat(&st)?;
    Ok(Json(RunView::at(
        reheat.cancel(id).await?,
        reheat.clock().now(),
    )))
}

pub(crate) fn run_id(raw: String) -> Result<RunId, ApiError> {
    raw.parse::<i64>()
        .map(RunId)
        .map_err(|_| ApiError::invalid(format!("invalid run id {raw:?}: expected an integer")))
}

/// Whether a library's reheat jobs are held back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PauseView {
    /// The library.
    library: String,
    /// Paused: no worker leases its runs' jobs.
    paused: bool,
    /// Whether this call changed it.
    changed: bool,
}

/// `POST /v1/libraries/{library}/pause`: no worker leases the library's runs' jobs until it
/// is resumed (leased ones finish; live renders and run events go on).
#[utoipa::path(post, path = "/v1/libraries/{library}/pause", tag = "reheat",
    params(("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    responses(
        (status = 200, description = "Paused", body = PauseView),
        (status = 404, description = "No such library", body = crate::error::Body)))]
pub(crate) async fn pause_library(
    State(st): State<AppState>,
    library: Result<Path<String>, PathRejection>,
) -> Result<Json<PauseView>, ApiError> {
    let library = segment(library)?;
    let changed = reheat(&st)?.pause(&library).await?;
    Ok(Json(PauseView {
        library,
        paused: true,
        changed,
    }))
}

/// `POST /v1/libraries/{library}/resume`: the library's jobs are leased again.
#[utoipa::path(post, path = "/v1/libraries/{library}/resume", tag = "reheat",
    params(("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    responses(
        (status = 200, description = "Resumed", body = PauseView),
        (status = 404, description = "No such library", body = crate::error::Body)))]
pub(crate) async fn resume_library(
    State(st): State<AppState>,
    library: Result<Path<String>, PathRejection>,
) -> Result<Json<PauseView>, ApiError> {
    let library = segment(library)?;
    let changed = reheat(&st)?.resume(&library).await?;
    Ok(Json(PauseView {
        library,
        paused: false,
        changed,
    }))
}
