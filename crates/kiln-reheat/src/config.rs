//! Library configuration: the `[[library]]` tables of the config file, parsed and validated.
//!
//! Parsing is pure ([`parse_libraries`], or serde from the caller's own config tree);
//! [`LibraryConfig::settings`] validates the values and names the offending key.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use kiln_core::ids::LibraryName;
use kiln_core::{Error, Result};
use serde::Deserialize;

use kiln_core::throttle::{Limit, Rate};

use crate::schedule::Schedule;

/// One `[[library]]` table, as written:
///
/// ```toml
/// [[library]]
/// name = "guides"
/// source   = { http = "http://127.0.0.1:9000/items" }   # or { course = "COURSE-ID" }
/// renderer = { http = "http://127.0.0.1:9000/render" }  # or { command = ["prog", "arg"] }
/// page_size = 1000
/// first_page = 0                                         # or 1: the listing's first page
/// prune = "on-complete"                                  # or { ttl = "2h" }
/// schedule = "0 3 * * *"                                 # cron, UTC: a build each tick
/// limits = { concurrency = 8, rate = 200 }               # renders at once, renders/s
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryConfig {
    /// The library's name (`[A-Za-z0-9._-]`).
    pub name: String,
    /// Where the items to render come from.
    pub source: SourceConfig,
    /// How an item is rendered.
    pub renderer: RendererConfig,
    /// Items per producer page (default 1000).
    #[serde(default = "default_page_size")]
    pub page_size: NonZeroU32,
    /// The number of an HTTP listing's first page: 0 (the default) or 1.
    #[serde(default)]
    pub first_page: u64,
    /// How entries that a build no longer produces are removed (default `on-complete`).
    #[serde(default)]
    pub prune: PruneConfig,
    /// Attempts per job before it becomes a dead letter (default 5).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: NonZeroU32,
    /// Whether a read that misses renders the key at once (default false).
    #[serde(default)]
    pub render_through: bool,
    /// Timeout of one listing request or render, e.g. `"30s"` (default 30s).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// How long a key whose render-through the renderer refused (a 4xx) answers with that
    /// refusal before the renderer is asked again, e.g. `"30s"` (default 30s; `"0s"` asks
    /// every time).
    #[serde(default = "default_failure_ttl")]
    pub failure_ttl: String,
    /// Where the library's run events go: `POST URL` with a JSON summary when a run is
    /// complete, failed, superseded or cancelled (retried with backoff).
    #[serde(default)]
    pub webhook: Option<String>,
    /// A cron expression (UTC; five fields, or six with seconds first): every worker
    /// running the library starts a build at each tick, and exactly one of them does.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The renderer's limits across every worker together (default: none).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The media type of a command renderer's output (default `text/html; charset=utf-8`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Pages a listing may have in one run: a listing whose `next` never ends fails the run
    /// at this page. By default, enough pages of `page_size` for [`MAX_ITEMS`] items
    /// (10,000 pages of the default 1,000).
    #[serde(default)]
    pub max_pages: Option<NonZeroU64>,
    /// Pages in a row that may add no new key to the run (default 100): a listing whose
    /// pages go on listing items it listed before (or nothing) fails the run at the page
    /// that reaches it, rather than at `max_pages`.
    #[serde(default = "default_max_idle_pages")]
    pub max_idle_pages: NonZeroU64,
    /// The largest render result in bytes (default 8 MiB): a larger one is not read past the
    /// cap and its job is a dead letter naming the key.
    #[serde(default = "default_max_render_bytes")]
    pub max_render_bytes: NonZeroU64,
}

/// `limits = { concurrency = N, rate = R, burst = B }`: at most N renders at once and R
/// renders per second (at most B at once after an idle spell; default R/5), counted across
/// every worker of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Renders at once.
    pub concurrency: Option<NonZeroU32>,
    /// Renders per second.
    pub rate: Option<f64>,
    /// Renders at once after an idle spell (needs `rate`).
    pub burst: Option<u32>,
}

/// Where a library's items come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// A paginated JSON listing: `GET URL?page=N` ->
    /// `{"items":[{"key","group","props"}],"next":N+1|null}`.
    Http(String),
    /// The questions of a course's current version: key = qid, group = course.
    Course(String),
}

/// How an item is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RendererConfig {
    /// `POST URL` with the props as JSON; the response body is the entry.
    Http(String),
    /// Runs the program with the props as JSON on stdin; stdout is the entry.
    Command(Vec<String>),
}

/// Pruning: `"on-complete"` (sweep older entries when the run completes) or
/// `{ ttl = "2h" }` (the seed's option b: mark them to expire at the start).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum PruneConfig {
    /// Sweep-on-complete.
    #[default]
    OnComplete,
    /// Mark-to-expire with this TTL (a humantime duration such as `"2h"`).
    Ttl(String),
}

fn default_page_size() -> NonZeroU32 {
    NonZeroU32::new(1000).expect("not zero")
}
fn default_max_attempts() -> NonZeroU32 {
    NonZeroU32::new(5).expect("not zero")
}
/// The most items one run of a library is expected to list (10 million): what the default
/// `max_pages` allows at the library's `page_size`. A listing past it is taken for one that
/// never ends (a `next` that always goes on with new keys); a library that does hold more
/// sets `max_pages`.
pub const MAX_ITEMS: u64 = 10_000_000;

/// The default `max_pages`: [`MAX_ITEMS`] items in pages of `page_size`.
fn default_max_pages(page_size: NonZeroU32) -> NonZeroU64 {
    NonZeroU64::new(MAX_ITEMS.div_ceil(u64::from(page_size.get()))).expect("at least one page")
}
fn default_max_idle_pages() -> NonZeroU64 {
    NonZeroU64::new(100).expect("not zero")
}
fn default_max_render_bytes() -> NonZeroU64 {
    NonZeroU64::new(8 * 1024 * 1024).expect("not zero")
}
fn default_timeout() -> String {
    "30s".to_string()
}
fn default_failure_ttl() -> String {
    "30s".to_string()
}

/// A library's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LibrarySettings {
    /// Items per producer page.
    pub page_size: NonZeroU32,
    /// The number of an HTTP listing's first page.
    pub first_page: u64,
    /// How long a refused render-through is remembered.
    pub failure_ttl: Duration,
    /// The pruning mode.
    pub prune: Prune,
    /// Attempts per job.
    pub max_attempts: NonZeroU32,
    /// Whether a read miss renders through.
    pub render_through: bool,
    /// Timeout of one listing request or render.
    pub timeout: Duration,
    /// Pages a listing may have in one run.
    pub max_pages: NonZeroU64,
    /// Pages in a row that may add no new key to the run.
    pub max_idle_pages: NonZeroU64,
    /// The largest render result in bytes.
    pub max_render_bytes: usize,
    /// Where run events go.
    pub webhook: Option<String>,
    /// When builds start by themselves.
    pub schedule: Option<Schedule>,
    /// The renderer's limits across the fleet.
    pub limits: Limit,
}

impl Default for LibrarySettings {
    fn default() -> Self {
        LibrarySettings {
            page_size: default_page_size(),
            first_page: 0,
            failure_ttl: Duration::from_secs(30),
            prune: Prune::OnComplete,
            max_attempts: default_max_attempts(),
            render_through: false,
            timeout: Duration::from_secs(30),
            max_pages: default_max_pages(default_page_size()),
            max_idle_pages: default_max_idle_pages(),
            max_render_bytes: default_max_render_bytes().get() as usize,
            webhook: None,
            schedule: None,
            limits: Limit::default(),
        }
    }
}

/// The pruning mode of a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Sweep the scope's older entries when a run completes.
    OnComplete,
    /// Mark the scope's older entries to expire after this TTL when a run starts.
    Ttl(Duration),
}

impl LibraryConfig {
    /// The library's name, checked.
    pub fn library_name(&self) -> Result<LibraryName> {
        LibraryName::new(&self.name).map_err(|e| Error::invalid(format!("library.name: {e}")))
    }

    /// Validates the values; the error names the library and the key.
    pub fn settings(&self) -> Result<LibrarySettings> {
        let name = self.library_name()?;
        let bad =
            |key: &str, why: String| Error::invalid(format!("library {name:?}: {key}: {why}"));
        let max_render_bytes = usize::try_from(self.max_render_bytes.get())
            .map_err(|_| bad("max_render_bytes", "too large for this machine".into()))?;
        let timeout = humantime::parse_duration(&self.timeout).map_err(|e| {
            bad(
                "timeout",
                format!("invalid duration {:?}: {e}", self.timeout),
            )
        })?;
        if timeout.is_zero() {
            return Err(bad("timeout", "must be more than 0".into()));
        }
        let failure_ttl = humantime::parse_duration(&self.failure_ttl).map_err(|e| {
            bad(
                "failure_ttl",
                format!("invalid duration {:?}: {e}", self.failure_ttl),
            )
        })?;
        if self.first_page > 1 {
            return Err(bad(
                "first_page",
                format!("{} is neither 0 nor 1", self.first_page),
            ));
        }
        let prune = match &self.prune {
            PruneConfig::OnComplete => Prune::OnComplete,
            PruneConfig::Ttl(s) => {
                let d = humantime::parse_duration(s)
                    .map_err(|e| bad("prune.ttl", format!("invalid duration {s:?}: {e}")))?;
                if d.is_zero() {
                    return Err(bad("prune.ttl", "must be more than 0".into()));
                }
                Prune::Ttl(d)
            }
        };
        match &self.source {
            SourceConfig::Http(url) => check_url(url).map_err(|why| bad("source.http", why))?,
            SourceConfig::Course(c) => {
                kiln_core::ids::CourseId::new(c)
                    .map_err(|e| bad("source.course", e.to_string()))?;
            }
        }
        match &self.renderer {
            RendererConfig::Http(url) => check_url(url).map_err(|why| bad("renderer.http", why))?,
            RendererConfig::Command(argv) => {
                if argv.first().is_none_or(|p| p.is_empty()) {
                    return Err(bad(
                        "renderer.command",
                        "needs a program: [\"prog\", \"arg\"...]".into(),
                    ));
                }
            }
        }
        if let Some(url) = &self.webhook {
            check_url(url).map_err(|why| bad("webhook", why))?;
        }
        let schedule = match &self.schedule {
            Some(text) => Some(Schedule::parse(text).map_err(|why| bad("schedule", why))?),
            None => None,
        };
        let limits = self.limits.limit().map_err(|why| bad("limits", why))?;
        Ok(LibrarySettings {
            webhook: self.webhook.clone(),
            schedule,
            limits,
            page_size: self.page_size,
            first_page: self.first_page,
            failure_ttl,
            prune,
            max_attempts: self.max_attempts,
            render_through: self.render_through,
            timeout,
            max_pages: self
                .max_pages
                .unwrap_or_else(|| default_max_pages(self.page_size)),
            max_idle_pages: self.max_idle_pages,
            max_render_bytes,
        })
    }
}

impl LimitsConfig {
    fn limit(&self) -> std::result::Result<Limit, String> {
        let rate = match (self.rate, self.burst) {
            (Some(r), burst) => Some(Rate::new(r, burst).map_err(|e| e.to_string())?),
            (None, Some(b)) => return Err(format!("burst {b} needs a rate")),
            (None, None) => None,
        };
        Ok(Limit {
            concurrency: self.concurrency,
            rate,
        })
    }
}

fn check_url(url: &str) -> std::result::Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        Ok(u) => Err(format!("unsupported scheme {:?} in {url:?}", u.scheme())),
        Err(e) => Err(format!("invalid URL {url:?}: {e}")),
    }
}

/// Reads the `[[library]]` tables of a TOML config file (other keys are ignored) and
/// validates each; an error names the key path and line, e.g.
/// `library[0].page_size: invalid type: string "x", expected u32 (line 5)`.
pub fn parse_libraries(text: &str) -> Result<Vec<LibraryConfig>> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        library: Vec<LibraryConfig>,
    }
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| {
            format!(
                " (line {})",
                text[..s.start.min(text.len())].lines().count().max(1)
            )
        })
        .unwrap_or_default()
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        Error::invalid(format!(
            "invalid config: {}{}",
            e.message(),
            line_of(e.span())
        ))
    })?;
    let file: File = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        Error::invalid(format!(
            "invalid config: {path}: {}{}",
            inner.message().trim_end(),
            line_of(inner.span())
        ))
    })?;
    let mut seen = std::collections::HashSet::new();
    for (i, lib) in file.library.iter().enumerate() {
        lib.settings()
            .map_err(|e| Error::invalid(format!("invalid config: library[{i}]: {e}")))?;
        if !seen.insert(lib.name.clone()) {
            return Err(Error::invalid(format!(
                "invalid config: library[{i}].name: library {:?} is declared twice",
                lib.name
            )));
        }
    }
    Ok(file.library)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_parses() {
        let libs = parse_libraries(
            r#"
            [[library]]
            name = "guides"
            source   = { http = "http://127.0.0.1:9000/items" }
            renderer = { http = "http://127.0.0.1:9000/render" }
            page_size = 1000
            prune = "on-complete"

            [[library]]
            name = "questions"
            source = { course = "demo" }
            renderer = { command = ["cat"] }
            prune = { ttl = "2h" }
            "#,
        )
        .unwrap();
        assert_eq!(libs.len(), 2);
        assert_eq!(
            libs[1].settings().unwrap().prune,
            Prune::Ttl(Duration::from_secs(7200))
        );
        assert_eq!(libs[0].settings().unwrap().page_size.get(), 1000);
    }

    #[test]
    fn page_limits_default_from_the_page_size_and_name_a_bad_value() {
        let lib = |extra: &str| {
            parse_libraries(&format!(
                r#"
                [[library]]
                name = "guides"
                source   = {{ http = "http://127.0.0.1:9000/items" }}
                renderer = {{ http = "http://127.0.0.1:9000/render" }}
                {extra}
                "#
            ))
            .map(|libs| libs[0].settings().unwrap())
        };
        let s = lib("").unwrap();
        assert_eq!((s.max_pages.get(), s.max_idle_pages.get()), (10_000, 100));
        assert_eq!(s, LibrarySettings::default());
        let s = lib("page_size = 30").unwrap();
        assert_eq!(
            s.max_pages.get(),
            333_334,
            "10 million items in pages of 30"
        );
        let s = lib("page_size = 30\nmax_pages = 12\nmax_idle_pages = 3").unwrap();
        assert_eq!((s.max_pages.get(), s.max_idle_pages.get()), (12, 3));
        for (extra, says) in [
            ("max_idle_pages = 0", "library[0].max_idle_pages"),
            ("max_pages = 0", "library[0].max_pages"),
            ("max_idle_pages = \"many\"", "library[0].max_idle_pages"),
        ] {
            let e = lib(extra).unwrap_err().to_string();
            assert!(e.contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn a_bad_schedule_names_the_library_and_the_key() {
        let e = parse_libraries(
            r#"
            [[library]]
            name = "guides"
            source   = { http = "http://127.0.0.1:9000/items" }
            renderer = { http = "http://127.0.0.1:9000/render" }
            schedule = "every hour"
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("library[0]"), "{e}");
        assert!(
            e.contains("schedule: invalid cron expression \"every hour\""),
            "{e}"
        );
    }

    fn guides(limits: &str) -> Result<Vec<LibraryConfig>> {
        parse_libraries(&format!(
            r#"
            [[library]]
            name = "guides"
            source   = {{ http = "http://127.0.0.1:9000/items" }}
            renderer = {{ http = "http://127.0.0.1:9000/render" }}
            limits = {limits}
            "#
        ))
    }

    #[test]
    fn limits_parse_into_a_rate_and_a_concurrency() {
        let libs = guides("{ concurrency = 8, rate = 200 }").unwrap();
        let limit = libs[0].settings().unwrap().limits;
        assert_eq!(limit.concurrency.map(|c| c.get()), Some(8));
        let rate = limit.rate.unwrap();
        assert_eq!((rate.per_second(), rate.burst()), (200.0, 40));
        let burst = guides("{ rate = 0.5, burst = 3 }").unwrap()[0]
            .settings()
            .unwrap()
            .limits;
        assert_eq!(burst.rate.map(|r| r.burst()), Some(3));
        assert_eq!(burst.concurrency, None);
    }

    #[test]
    fn bad_limits_name_the_library_and_the_value() {
        for (limits, says) in [
            (
                "{ rate = 0 }",
                "limits: rate 0: renders per second must be a positive",
            ),
            ("{ rate = -3 }", "limits: rate -3"),
            ("{ burst = 4 }", "limits: burst 4 needs a rate"),
            ("{ rate = 5, burst = 0 }", "limits: burst 0"),
            ("{ concurrency = 0 }", "limits.concurrency"),
            ("{ conc = 3 }", "unknown field `conc`"),
        ] {
            let e = guides(limits).unwrap_err().to_string();
            assert!(e.contains("library[0]"), "{limits}: {e}");
            assert!(e.contains(says), "{limits}: {e}");
        }
    }
}
