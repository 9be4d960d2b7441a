//! The declarative HTTP listing source and HTTP renderer.
//!
//! Listing: `GET URL?page=N&page_size=S[&group=G]` answers
//! `{"items":[{"key","group","props"}],"next":N+1|null}`. Renderer: `POST URL` with the props
//! as JSON (and the key in the `x-kiln-key` header, percent-encoded); a 2xx body is the
//! entry, its `content-type` the entry's, its `x-kiln-meta-*` headers the entry's metadata. 408, 429, 5xx, timeouts and refused connections
//! are transient; any other answer is permanent.

use std::time::Duration;

use kiln_core::ids::LibraryName;
use kiln_core::{Error, Result};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::Value;

use crate::body::{self, ReadError};
use crate::handler::{RenderError, RenderItem, Rendered, Work};

/// The documented listing format, quoted in errors.
pub const LISTING_FORMAT: &str = r#"{"items":[{"key","group","props"}],"next":N+1|null}"#;

/// An HTTP client with the library's timeout.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| Error::backend("http", e))
}

/// An error with its chain of sources, on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(e) = src {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = e.source();
    }
    s
}

/// A listing page. Fields the format does not name (a `total`, an item's `title`) are
/// ignored, so that a listing can grow without breaking its readers.
#[derive(Deserialize)]
struct Listing {
    items: Vec<ListingItem>,
    next: Option<u64>,
}

#[derive(Deserialize)]
struct ListingItem {
    key: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    props: Value,
}

/// A paginated JSON listing.
#[derive(Debug, Clone)]
pub struct HttpSource {
    library: LibraryName,
    url: String,
    client: reqwest::Client,
}

impl HttpSource {
    /// A source listing `url` for `library`.
    pub fn new(library: LibraryName, url: String, timeout: Duration) -> Result<Self> {
        Ok(HttpSource {
            library,
            url,
            client: client(timeout)?,
        })
    }

    /// Fetches page `page`: its render jobs (only `group`'s when set) and the producer of
    /// the next page.
    pub async fn page(&self, page: u64, page_size: u32, group: Option<&str>) -> Result<Vec<Work>> {
        let mut url = format!(
            "{}{}page={page}&page_size={page_size}",
            self.url,
            sep(&self.url)
        );
        if let Some(g) = group {
            url.push_str("&group=");
            url.extend(utf8_percent_encode(g, NON_ALPHANUMERIC));
        }
        let what = format!("library {}: listing {url}", self.library);
        let unavailable = |source: kiln_core::error::BoxError| Error::Unavailable {
            what: what.clone(),
            source,
        };
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| unavailable(chain(&e).into()))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(unavailable(format!("answered {status}").into()));
        }
        if !status.is_success() {
            return Err(Error::invalid(format!("{what}: answered {status}")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| unavailable(chain(&e).into()))?;
        let listing: Listing = serde_json::from_slice(&body).map_err(|e| {
            Error::invalid(format!(
                "{what}: not the documented JSON {LISTING_FORMAT}: {e}"
            ))
        })?;
        if listing.next == Some(page) {
            return Err(Error::invalid(format!(
                "{what}: \"next\" is {page} again: the listing does not advance"
            )));
        }
        let mut out: Vec<Work> = listing
            .items
            .into_iter()
            .filter(|i| group.is_none_or(|g| g == i.group))
            .map(|i| {
                Work::Render(RenderItem {
                    key: i.key,
                    group: i.group,
                    props: i.props,
                })
            })
            .collect();
        if let Some(next) = listing.next {
            out.push(Work::Producer {
                cursor: Value::from(next),
            });
        }
        Ok(out)
    }
}

fn sep(url: &str) -> char {
    if url.contains('?') { '&' } else { '?' }
}

/// Renders by POSTing the props to a URL.
#[derive(Debug, Clone)]
pub struct HttpRenderer {
    library: LibraryName,
    url: String,
    client: reqwest::Client,
    max_bytes: usize,
}

/// How much of an error answer's body is read, for the dead letter's excerpt.
const ERROR_BODY_BYTES: usize = 4096;

impl HttpRenderer {
    /// A renderer at `url` for `library`, whose results may be at most `max_bytes` long.
    pub fn new(
        library: LibraryName,
        url: String,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Self> {
        Ok(HttpRenderer {
            library,
            url,
            client: client(timeout)?,
            max_bytes,
        })
    }

    /// Renders `key`.
    pub async fn render(&self, key: &str, props: &Value) -> Result<Rendered, RenderError> {
        let retry = |reason: String, after: Option<Duration>| RenderError::Retry { after, reason };
        let resp = self
            .client
            .post(&self.url)
            .header(
                "x-kiln-key",
                utf8_percent_encode(key, NON_ALPHANUMERIC).to_string(),
            )
            .header("x-kiln-library", self.library.as_str())
            .json(props)
            .send()
            .await
            .map_err(|e| {
                retry(
                    format!("renderer {} for {key:?}: {}", self.url, chain(&e)),
                    None,
                )
            })?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(retry(
                format!("renderer {} answered {status} for {key:?}", self.url),
                after,
            ));
        }
        let meta = meta_headers(resp.headers());
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        if !status.is_success() {
            // Only the start of an error answer is read: it is quoted, not stored.
            let body = match body::http(resp, ERROR_BODY_BYTES).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            };
            let excerpt: String = body.chars().take(200).collect();
            return Err(RenderError::Fail(format!(
                "renderer {} answered {status} for {key:?}: {excerpt}",
                self.url
            )));
        }
        let body = body::http(resp, self.max_bytes)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge(t) => RenderError::Fail(format!(
                    "renderer {} answered more than {} bytes for {key:?} (max_render_bytes)",
                    self.url, t.cap
                )),
                ReadError::Io(e) => retry(
                    format!(
                        "renderer {} for {key:?}: reading the body: {}",
                        self.url,
                        chain(&e)
                    ),
                    None,
                ),
            })?;
        Ok(Rendered {
            bytes: body,
            content_type,
            meta,
        })
    }
}

/// The prefix of the headers that carry an entry's metadata, on a renderer's answer and
/// on the cache's reads and writes.
pub const META_PREFIX: &str = "x-kiln-meta-";

/// The `x-kiln-meta-*` headers as metadata (names without the prefix; values that are not
/// text are skipped).
pub fn meta_headers(headers: &reqwest::header::HeaderMap) -> kiln_core::render_cache::Meta {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix(META_PREFIX)?;
            Some((name.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

/// Delivers a run's event: `POST url` with `body` as JSON and the event's name in
/// `x-kiln-event`. 2xx is delivered; 408, 429, 5xx, timeouts and refused connections are
/// transient; any other answer is permanent (the job becomes a dead letter).
pub(crate) async fn post_event(
    library: &LibraryName,
    url: &str,
    event: &str,
    body: &Value,
    timeout: Duration,
) -> Result<(), RenderError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(reqwest::Client::new);
    let what = format!("library {library}: webhook {url} for {event}");
    let resp = client
        .post(url)
        .timeout(timeout)
        .header("x-kiln-event", event)
        .json(body)
        .send()
        .await
        .map_err(|e| RenderError::Retry {
            after: None,
            reason: format!("{what}: {}", chain(&e)),
        })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(RenderError::Retry {
            after: None,
            reason: format!("{what}: answered {status}"),
        });
    }
    Err(RenderError::Fail(format!("{what}: answered {status}")))
}
