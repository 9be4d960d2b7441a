//! `/metrics` in the Prometheus text format: the chunk cache's counters (read from
//! [`kiln_load::ChunkCache::metrics`] at each scrape) and per-route HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_core::Error;
use kiln_core::histogram::HistogramSnapshot;
use kiln_load::ChunkCache;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Route {
    route: String,
}

/// Requests by route and status, and their latency by route.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram>,
    /// Open connections (see [`crate::ServeOptions::max_connections`]).
    pub(crate) connections: Gauge,
    /// Connections closed at the limit to make room (see [`crate::ServeOptions`]).
    pub(crate) shed: Counter,
}

impl HttpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> HttpMetrics {
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<Route, Histogram>::new_with_constructor(|| {
            // 50 us .. ~13 s
            Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
        });
        registry.register(
            "kiln_http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "kiln_http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "kiln_http_connections",
            "Open HTTP connections",
            connections.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "kiln_http_connections_shed",
            "Connections no handler worked for, closed at the connection limit to make room",
            shed.clone(),
        );
        HttpMetrics {
            requests,
            latency,
            connections,
            shed,
        }
    }
}

/// Middleware: counts and times every request by its route template.
pub(crate) async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    st.http
        .latency
        .get_or_create(&Route {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    st.http
        .requests
        .get_or_create(&RouteStatus {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
pub(crate) async fn render(State(st): State<AppState>) -> Result<Response, ApiError> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &st.registry)
        .map_err(|e| ApiError(Error::backend("kiln-server", e)))?;
    let ct = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, ct)], out).into_response())
}

/// Renders a [`ChunkCache`]'s counters at each scrape.
#[derive(Debug)]
pub(crate) struct LoadCollector(pub(crate) ChunkCache);

impl Collector for LoadCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.metrics();
        let counters = [
            (
                "kiln_load_downloads",
                "Chunks downloaded from the object store",
                m.downloads,
            ),
            (
                "kiln_load_hits",
                "Chunk requests served from the local cache",
                m.hits,
            ),
            (
                "kiln_load_misses",
                "Chunk requests that waited for a fetch",
                m.misses,
            ),
            (
                "kiln_load_bytes_downloaded",
                "Compressed bytes read from the object store",
                m.bytes_downloaded,
            ),
            (
                "kiln_load_bytes_extracted",
                "Bytes of chunk files written to disk",
                m.bytes_extracted,
            ),
            (
                "kiln_load_evictions",
                "Chunk directories evicted to stay within budget",
                m.evictions,
            ),
            (
                "kiln_load_versions_removed",
                "Old version directories removed",
                m.versions_removed,
            ),
            ("kiln_load_errors", "Failed chunk fetches", m.errors),
            (
                "kiln_load_corrupt",
                "Bundles that did not match their chunk id",
                m.corrupt,
            ),
            (
                "kiln_load_retries",
                "Transient object store errors retried",
                m.retries,
            ),
            (
                "kiln_load_healed",
                "Chunks missing on disk behind the index's back, fetched again",
                m.healed,
            ),
            (
                "kiln_load_prefetched",
                "Chunks fetched ahead of any request (a new version's changes, --prefetch)",
                m.prefetched,
            ),
            (
                "kiln_load_prefetch_used",
                "Prefetched chunks that a request then found on disk",
                m.prefetch_used,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        for (name, help, v) in [
            (
                "kiln_load_cache_bytes",
                "Disk bytes of the chunk directories (allocated blocks plus 512 per inode)",
                m.cache_bytes,
            ),
            (
                "kiln_load_cache_chunks",
                "Chunk directories present",
                m.cache_chunks,
            ),
            (
                "kiln_load_budget_bytes",
                "The byte budget of the chunk directories",
                m.budget_bytes,
            ),
            (
                "kiln_load_bytes_over_budget",
                "Bytes of chunk directories past the budget, held by leases or requests",
                m.bytes_over_budget,
            ),
            (
                "kiln_load_leases_active",
                "Leases neither released nor expired",
                m.leases_active,
            ),
        ] {
            let g = ConstGauge::new(v as i64);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        for (name, help, h) in [
            (
                "kiln_load_ensure_duration_seconds",
                "Latency of ensure calls",
                &m.ensure_latency,
            ),
            (
                "kiln_load_download_duration_seconds",
                "Latency of chunk downloads",
                &m.download_latency,
            ),
        ] {
            let buckets = per_bucket(h);
            enc.encode_descriptor(name, help, None, MetricType::Histogram)?
                .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)?;
        }
        Ok(())
    }
}

/// The encoder wants per-bucket counts with a final `+Inf` bucket; the snapshot is cumulative.
fn per_bucket(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut prev = 0;
    let mut out: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|(le, cum)| {
            let n = cum - prev;
            prev = *cum;
            (*le, n)
        })
        .collect();
    out.push((f64::INFINITY, h.count.saturating_sub(prev)));
    out
}
