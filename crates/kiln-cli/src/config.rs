//! `kiln.toml`: one serde tree with a backend per trait. Parsing is pure; opening is in
//! `backends.rs`. Every key can be overridden by `KILN_<SECTION>_<KEY>`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

mod server;
pub(crate) use server::{ServerConfig, TokenConfig};

/// The whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Where the embedded backends keep their files (default `./kiln-data`).
    pub(crate) data_dir: Option<PathBuf>,
    /// The catalog backend.
    #[serde(default)]
    pub(crate) catalog: SqlDb,
    /// The job queue backend.
    #[serde(default)]
    pub(crate) queue: SqlDb,
    /// The render cache backend.
    #[serde(default)]
    pub(crate) cache: CacheDb,
    /// The object store for bundles.
    #[serde(default)]
    pub(crate) store: StoreConfig,
    /// How servers learn of a new published head at once (default: they poll it).
    #[serde(default)]
    pub(crate) announce: Announce,
    /// Sync settings.
    #[serde(default)]
    pub(crate) sync: SyncConfig,
    /// Local chunk cache settings.
    #[serde(default)]
    pub(crate) load: LoadConfig,
    /// HTTP server settings.
    #[serde(default)]
    pub(crate) server: ServerConfig,
    /// Worker settings.
    #[serde(default)]
    pub(crate) worker: WorkerConfig,
    /// Render libraries.
    #[serde(default, rename = "library")]
    pub(crate) libraries: Vec<kiln_reheat::LibraryConfig>,
    /// Per-course settings.
    #[serde(default, rename = "course")]
    pub(crate) courses: Vec<CourseConfig>,
    /// The bearer tokens `kiln serve` accepts (none: loopback or a Unix socket only).
    #[serde(default, rename = "token")]
    pub(crate) tokens: Vec<TokenConfig>,
}

/// Which backend a trait uses, as the config names it (`backend = "..."`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// The embedded default, in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
    /// A Redis server (render cache only).
    Redis,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
        }
    }
}

/// A database-backed trait's section as written: `backend`, and `url` + `namespace` for a
/// server. [`Db::check`] turns it into a [`Db`], which holds a URL exactly when it needs one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    #[serde(default)]
    backend: Backend,
    url: Option<String>,
    namespace: Option<String>,
}

/// Where a server backend lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Server {
    /// The server URL (postgres://..., redis://...).
    pub(crate) url: String,
    /// A PostgreSQL schema or a Redis key prefix.
    pub(crate) namespace: Option<String>,
}

/// A database section's backend with what it needs, before its trait narrows it.
enum Db {
    Sqlite,
    Postgres(Server),
    Redis(Server),
}

impl Db {
    /// Checks a section against the backends its trait allows: a server backend needs a
    /// URL, the embedded one takes none.
    fn check(raw: RawDb, allowed: &[Backend]) -> Result<Db, String> {
        let names = || {
            allowed
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(" or ")
        };
        if !allowed.contains(&raw.backend) {
            return Err(format!(
                "`backend` cannot be {} here (use {})",
                raw.backend.name(),
                names()
            ));
        }
        let server = |url: Option<String>| {
            url.map(|url| Server {
                url,
                namespace: raw.namespace.clone(),
            })
            .ok_or_else(|| format!("`url` is required for backend {}", raw.backend.name()))
        };
        match raw.backend {
            Backend::Sqlite => match (raw.url, raw.namespace) {
                (None, None) => Ok(Db::Sqlite),
                (url, _) => Err(format!(
                    "`{}` is not used by backend sqlite (did you mean backend = \"postgres\"?)",
                    if url.is_some() { "url" } else { "namespace" }
                )),
            },
            Backend::Postgres => server(raw.url.clone()).map(Db::Postgres),
            Backend::Redis => server(raw.url.clone()).map(Db::Redis),
        }
    }
}

/// The `[catalog]` and `[queue]` sections: sqlite or postgres.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawDb")]
pub(crate) enum SqlDb {
    /// A database file in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL server.
    Postgres(Server),
}

impl TryFrom<RawDb> for SqlDb {
    type Error = String;
    fn try_from(raw: RawDb) -> Result<Self, String> {
        match Db::check(raw, &[Backend::Sqlite, Backend::Postgres])? {
            Db::Sqlite => Ok(SqlDb::Sqlite),
            Db::Postgres(s) => Ok(SqlDb::Postgres(s)),
            Db::Redis(_) => Err("`backend` cannot be redis here".into()),
        }
    }
}

/// The `[cache]` section: sqlite, postgres or redis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawDb")]
pub(crate) enum CacheDb {
    /// `render-cache.db` in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL server.
    Postgres(Server),
    /// A Redis server; `namespace` is the key prefix (default `kiln`).
    Redis(Server),
}

impl TryFrom<RawDb> for CacheDb {
    type Error = String;
    fn try_from(raw: RawDb) -> Result<Self, String> {
        Ok(
            match Db::check(raw, &[Backend::Sqlite, Backend::Postgres, Backend::Redis])? {
                Db::Sqlite => CacheDb::Sqlite,
                Db::Postgres(s) => CacheDb::Postgres(s),
                Db::Redis(s) => CacheDb::Redis(s),
            },
        )
    }
}

/// The `[announce]` section: the push channel a sync announces each new published head on
/// and every server subscribes to. Without it, servers read the head every `head_poll`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawDb")]
pub(crate) enum Announce {
    /// No push channel: servers poll the head.
    #[default]
    Poll,
    /// Redis pub/sub, on the channel `<namespace>:published-head` (namespace `kiln`).
    Redis(Server),
}

impl TryFrom<RawDb> for Announce {
    type Error = String;
    fn try_from(raw: RawDb) -> Result<Self, String> {
        // An empty section (every key commented out) is the default.
        if raw.backend == Backend::Sqlite && raw.url.is_none() && raw.namespace.is_none() {
            return Ok(Announce::Poll);
        }
        match Db::check(raw, &[Backend::Redis])? {
            Db::Redis(s) => Ok(Announce::Redis(s)),
            _ => unreachable!("checked"),
        }
    }
}

/// The `[store]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    backend: StoreKind,
    path: Option<PathBuf>,
    endpoint: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    allow_http: Option<bool>,
}

/// Object store kinds, as the config names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    #[default]
    Local,
    S3,
}

/// The object store for bundles; S3 credentials also come from the usual AWS variables.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawStore")]
pub(crate) enum StoreConfig {
    /// A directory (default `<data_dir>/objects`).
    Local {
        /// The directory.
        path: Option<PathBuf>,
    },
    /// Any S3-compatible store.
    S3(S3Config),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Local { path: None }
    }
}

/// An S3-compatible store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Config {
    /// The bucket.
    pub(crate) bucket: String,
    /// A key prefix every object lives under (`kiln/prod`): several installations, each
    /// with its own catalog, can share a bucket, since each has its own published head.
    pub(crate) prefix: Option<String>,
    /// The endpoint (e.g. `http://127.0.0.1:9100`; default AWS).
    pub(crate) endpoint: Option<String>,
    /// The region.
    pub(crate) region: Option<String>,
    /// The access key id.
    pub(crate) access_key_id: Option<String>,
    /// The secret access key.
    pub(crate) secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint.
    pub(crate) allow_http: Option<bool>,
}

impl TryFrom<RawStore> for StoreConfig {
    type Error = String;
    fn try_from(raw: RawStore) -> Result<Self, String> {
        match raw.backend {
            StoreKind::Local => {
                let s3_key = [
                    ("endpoint", raw.endpoint.is_some()),
                    ("bucket", raw.bucket.is_some()),
                    ("prefix", raw.prefix.is_some()),
                    ("region", raw.region.is_some()),
                    ("access_key_id", raw.access_key_id.is_some()),
                    ("secret_access_key", raw.secret_access_key.is_some()),
                    ("allow_http", raw.allow_http.is_some()),
                ]
                .into_iter()
                .find(|(_, set)| *set);
                match s3_key {
                    Some((key, _)) => Err(format!(
                        "`{key}` is not used by backend local (did you mean backend = \"s3\"?)"
                    )),
                    None => Ok(StoreConfig::Local { path: raw.path }),
                }
            }
            StoreKind::S3 => {
                if raw.path.is_some() {
                    return Err("`path` is not used by backend s3".into());
                }
                let bucket = raw
                    .bucket
                    .ok_or_else(|| "`bucket` is required for backend s3".to_string())?;
                let prefix = match raw.prefix.as_deref().map(|p| p.trim_matches('/')) {
                    Some("") | None => None,
                    Some(p) if p.split('/').all(|s| !s.is_empty() && s != "." && s != "..") => {
                        Some(p.to_string())
                    }
                    Some(p) => return Err(format!("`prefix` {p:?} is not a key prefix (`a/b`)")),
                };
                Ok(StoreConfig::S3(S3Config {
                    bucket,
                    prefix,
                    endpoint: raw.endpoint,
                    region: raw.region,
                    access_key_id: raw.access_key_id,
                    secret_access_key: raw.secret_access_key,
                    allow_http: raw.allow_http,
                }))
            }
        }
    }
}

/// Sync settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncConfig {
    /// Files larger than this many bytes fail the sync (default 100 MiB).
    pub(crate) max_file_size: Option<u64>,
    /// Uploads at once (default 16).
    pub(crate) upload_concurrency: Option<std::num::NonZeroUsize>,
    /// The question thumbnail pattern (default `thumbnail.*`).
    pub(crate) thumbnail_glob: Option<String>,
}

/// Local chunk cache settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadConfig {
    /// The cache directory (default `<data_dir>/cache`).
    pub(crate) cache_dir: Option<PathBuf>,
    /// The byte budget of extracted chunks (default 10 GiB).
    pub(crate) budget: Option<u64>,
    /// How often the current version is re-read from the content view (default `0s`:
    /// every request asks it; the published view answers from memory).
    #[serde(default, with = "opt_duration")]
    pub(crate) refresh_interval: Option<std::time::Duration>,
    /// How often a server reads the published head (a conditional GET; default `1s`, or
    /// `250ms` on a local store, or `10s` where `[announce]` pushes new heads).
    #[serde(default, with = "opt_duration")]
    pub(crate) head_poll: Option<std::time::Duration>,
    /// How long an old version directory is kept (default `10m`).
    #[serde(default, with = "opt_duration")]
    pub(crate) version_grace: Option<std::time::Duration>,
    /// How long the last known current version is served while the catalog is
    /// unreachable (default `5m`; `0s` never).
    #[serde(default, with = "opt_duration")]
    pub(crate) max_stale: Option<std::time::Duration>,
    /// Courses whose current version `kiln serve` fetches at start (see `--prefetch`).
    #[serde(default)]
    pub(crate) prefetch: Vec<String>,
    /// Whether a new version's changed chunks are fetched in the background where this
    /// server held the old ones (default `true`).
    pub(crate) prefetch_changes: Option<bool>,
    /// How long an ensure's lease lasts unless the request names a duration (default `60s`).
    #[serde(default, with = "opt_duration")]
    pub(crate) lease_ttl: Option<std::time::Duration>,
    /// The longest lease a request may ask for (default `1h`).
    #[serde(default, with = "opt_duration")]
    pub(crate) lease_max_ttl: Option<std::time::Duration>,
    /// Leases the server holds at once (default 50000); past it an ensure is a 429.
    pub(crate) lease_max_count: Option<std::num::NonZeroUsize>,
    /// Leases one token holds at once (default 10000); past it an ensure is a 429.
    pub(crate) lease_max_count_per_token: Option<std::num::NonZeroUsize>,
    /// Bytes leases may keep the cache past its budget (default: the budget); past it an
    /// ensure is a 507.
    pub(crate) lease_max_over_budget: Option<u64>,
    /// Bytes the chunks of one token's leases may take (default: the budget); past it an
    /// ensure is a 507.
    pub(crate) lease_max_bytes_per_token: Option<u64>,
}

/// Worker settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerConfig {
    /// Jobs run at once (default 64).
    pub(crate) concurrency: Option<std::num::NonZeroUsize>,
    /// The lease's visibility timeout, e.g. `"30s"` (default 30s): the backstop that frees
    /// a lease whose worker is gone without a trace.
    #[serde(default, with = "opt_duration")]
    pub(crate) visibility: Option<std::time::Duration>,
    /// How long a worker counts as alive after a heartbeat, e.g. `"5s"` (default 5s): a
    /// crashed worker's leases are reclaimed this soon after its last one.
    #[serde(default, with = "opt_duration")]
    pub(crate) liveness: Option<std::time::Duration>,
}

/// Per-course settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CourseConfig {
    /// The course id.
    pub(crate) id: String,
    /// A library to reheat after each published version.
    pub(crate) reheat: Option<String>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Config {
    /// Reads `path` (if any), applies `KILN_<SECTION>_<KEY>` overrides from `env`, and
    /// deserializes; errors name the file and the key.
    pub(crate) fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut value = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for (k, v) in env {
            apply_env(&mut value, &k, &v)?;
        }
        let origin = path.map_or("environment".to_string(), |p| p.display().to_string());
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
                // The message alone: toml's Display adds a line naming the table, which
                // the path already says.
                kiln_core::Error::invalid(format!(
                    "invalid config {origin}: key `{}`: {}",
                    e.path(),
                    e.inner().message()
                ))
            })?;
        config
            .check_references()
            .map_err(|why| kiln_core::Error::invalid(format!("invalid config {origin}: {why}")))?;
        Ok(config)
    }

    /// Checks what one part of the config says about another, so that a mistake fails when
    /// the config is read rather than after a sync has published (a course that reheats an
    /// undeclared library), and checks each library's settings. The error names the entry.
    fn check_references(&self) -> Result<(), String> {
        let mut libraries = std::collections::BTreeSet::new();
        for (i, lib) in self.libraries.iter().enumerate() {
            lib.settings()
                .map_err(|e| format!("library[{i}] ({:?}): {e}", lib.name))?;
            if !libraries.insert(lib.name.as_str()) {
                return Err(format!(
                    "library[{i}].name: library {:?} is declared twice",
                    lib.name
                ));
            }
        }
        let mut tokens = std::collections::BTreeSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if !tokens.insert(token.name.as_str()) {
                return Err(format!(
                    "token[{i}].name: token {:?} is declared twice",
                    token.name
                ));
            }
        }
        if let Some(mode) = &self.server.socket_mode {
            kiln_server::listen::parse_mode(mode)
                .map_err(|e| format!("server.socket_mode: {e}"))?;
        }
        let mut courses = std::collections::BTreeSet::new();
        for (i, course) in self.courses.iter().enumerate() {
            kiln_core::ids::CourseId::new(course.id.as_str())
                .map_err(|e| format!("course[{i}].id: {e}"))?;
            if !courses.insert(course.id.as_str()) {
                return Err(format!(
                    "course[{i}].id: course {:?} is declared twice",
                    course.id
                ));
            }
            if let Some(lib) = &course.reheat
                && !libraries.contains(lib.as_str())
            {
                let known = if libraries.is_empty() {
                    "none".to_string()
                } else {
                    libraries.iter().copied().collect::<Vec<_>>().join(", ")
                };
                return Err(format!(
                    "course[{i}].reheat: course {:?} reheats library {lib:?}, which is not \
                     declared (known libraries: {known})",
                    course.id
                ));
            }
        }
        Ok(())
    }
}

/// Sections whose keys the environment may set.
const SECTIONS: [&str; 8] = [
    "catalog", "queue", "cache", "store", "sync", "load", "server", "worker",
];

fn apply_env(table: &mut toml::Table, key: &str, raw: &str) -> anyhow::Result<()> {
    let Some(rest) = key.strip_prefix("KILN_") else {
        return Ok(());
    };
    let rest = rest.to_ascii_lowercase();
    let Some((section, field)) = rest.split_once('_') else {
        return Ok(());
    };
    if !SECTIONS.contains(&section) {
        return Ok(());
    }
    if field.is_empty() {
        bail!("invalid environment variable {key}: no key after the section");
    }
    // A value that parses as a TOML scalar keeps its type (numbers, booleans); anything else
    // is a string.
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(field.to_string(), value);
            Ok(())
        }
        _ => bail!("invalid config: `{section}` must be a table to apply {key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kiln.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(
            Some(&p),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn env_overrides_file_and_keeps_types() {
        let c = load_str(
            "[queue]\nbackend = \"sqlite\"\n",
            &[
                ("KILN_QUEUE_BACKEND", "postgres"),
                ("KILN_QUEUE_URL", "postgres://h/db"),
                ("KILN_LOAD_BUDGET", "1000"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert!(matches!(c.queue, SqlDb::Postgres(_)), "{:?}", c.queue);
        assert_eq!(c.load.budget, Some(1000));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = load_str("[store]\nbuckit = \"x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("buckit"), "{err}");
    }

    #[test]
    fn a_course_that_reheats_an_unknown_library_is_refused_at_load() {
        let text = r#"
[[library]]
name = "cards"
source = { course = "demo" }
renderer = { command = ["cat"] }

[[course]]
id = "demo"
reheat = "nosuchlib"
"#;
        let err = format!("{:#}", load_str(text, &[]).unwrap_err());
        for part in [
            "kiln.toml",
            "\"demo\"",
            "\"nosuchlib\"",
            "known libraries: cards",
        ] {
            assert!(err.contains(part), "{part} in {err}");
        }
        assert!(!err.contains('\n'), "{err}");
        let ok = text.replace("nosuchlib", "cards");
        assert!(load_str(&ok, &[]).is_ok());
    }

    #[test]
    fn a_librarys_page_limits_are_read_and_a_bad_one_is_named() {
        let lib = |extra: &str| {
            format!(
                "[[library]]\nname = \"cards\"\nsource = {{ course = \"demo\" }}\n\
                 renderer = {{ command = [\"cat\"] }}\npage_size = 100\n{extra}"
            )
        };
        let c = load_str(&lib(""), &[]).unwrap();
        let s = c.libraries[0].settings().unwrap();
        assert_eq!((s.max_pages.get(), s.max_idle_pages.get()), (100_000, 100));
        let c = load_str(&lib("max_pages = 50\nmax_idle_pages = 7\n"), &[]).unwrap();
        let s = c.libraries[0].settings().unwrap();
        assert_eq!((s.max_pages.get(), s.max_idle_pages.get()), (50, 7));
        for (extra, key) in [
            ("max_idle_pages = 0\n", "library[0].max_idle_pages"),
            ("max_idle_pages = -1\n", "library[0].max_idle_pages"),
            ("max_pages = 0\n", "library[0].max_pages"),
        ] {
            let err = format!("{:#}", load_str(&lib(extra), &[]).unwrap_err());
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn duplicate_names_are_refused_at_load() {
        let lib = "[[library]]\nname = \"cards\"\nsource = { course = \"demo\" }\nrenderer = { command = [\"cat\"] }\n";
        let err = format!("{:#}", load_str(&format!("{lib}{lib}"), &[]).unwrap_err());
        assert!(
            err.contains("library[1].name") && err.contains("twice"),
            "{err}"
        );
        let course = "[[course]]\nid = \"demo\"\n";
        let err = format!(
            "{:#}",
            load_str(&format!("{course}{course}"), &[]).unwrap_err()
        );
        assert!(
            err.contains("course[1].id") && err.contains("twice"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            load_str("[[course]]\nid = \"no/slash\"\n", &[]).unwrap_err()
        );
        assert!(err.contains("course[0].id"), "{err}");
    }

    #[test]
    fn each_backend_states_what_it_needs() {
        let cases = [
            (
                "[catalog]\nbackend = \"postgres\"\n",
                "catalog",
                "`url` is required for backend postgres",
            ),
            (
                "[cache]\nbackend = \"redis\"\n",
                "cache",
                "`url` is required for backend redis",
            ),
            (
                "[queue]\nbackend = \"redis\"\nurl = \"redis://h\"\n",
                "queue",
                "cannot be redis here (use sqlite or postgres)",
            ),
            (
                "[store]\nbackend = \"s3\"\nbucket = \"b\"\nprefix = \"a/../b\"\n",
                "store",
                "`prefix` \"a/../b\" is not a key prefix",
            ),
            (
                "[announce]\nbackend = \"redis\"\n",
                "announce",
                "`url` is required for backend redis",
            ),
            (
                "[announce]\nbackend = \"postgres\"\nurl = \"postgres://h/db\"\n",
                "announce",
                "cannot be postgres here (use redis)",
            ),
            (
                "[catalog]\nurl = \"postgres://h/db\"\n",
                "catalog",
                "`url` is not used by backend sqlite",
            ),
            (
                "[store]\nbackend = \"s3\"\n",
                "store",
                "`bucket` is required for backend s3",
            ),
            (
                "[store]\nbucket = \"b\"\n",
                "store",
                "`bucket` is not used by backend local",
            ),
            (
                "[store]\nbackend = \"s3\"\nbucket = \"b\"\npath = \"/x\"\n",
                "store",
                "`path` is not used by backend s3",
            ),
        ];
        for (text, key, why) in cases {
            let err = format!("{:#}", load_str(text, &[]).unwrap_err());
            assert!(
                err.contains(&format!("key `{key}`")) && err.contains(why),
                "{text}: {err}"
            );
        }
        let c = load_str(
            "[cache]\nbackend = \"redis\"\nurl = \"redis://h\"\nnamespace = \"n\"\n\n[store]\nbackend = \"s3\"\nbucket = \"b\"\n",
            &[],
        )
        .unwrap();
        let server = Server {
            url: "redis://h".into(),
            namespace: Some("n".into()),
        };
        assert_eq!(c.cache, CacheDb::Redis(server));
        assert!(
            matches!(&c.store, StoreConfig::S3(s) if s.bucket == "b"),
            "{:?}",
            c.store
        );
        assert_eq!(c.catalog, SqlDb::Sqlite);
    }

    #[test]
    fn zero_is_refused_where_it_means_nothing() {
        for (text, key) in [
            ("[worker]\nconcurrency = 0\n", "worker.concurrency"),
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
        ] {
            let err = format!("{:#}", load_str(text, &[]).unwrap_err());
            assert!(
                err.contains(key) && err.contains("nonzero"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load_str("[catalog]\nbackend = \"oracle\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("catalog.backend"), "{err}");
    }
}

#[cfg(test)]
mod token_tests {
    use super::server::Secret;
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kiln.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), std::iter::empty()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn the_example_config_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/kiln.example.toml");
        let c = Config::load(Some(&p), std::iter::empty()).unwrap();
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[1].secret, Secret::Env("KILN_OPS_TOKEN".into()));
    }

    #[test]
    fn a_bad_token_entry_is_named() {
        let h = kiln_server::auth::hash_token("x").to_string();
        for (entry, needle) in [
            (
                "name = \"a\"\nscopes = [\"read\"]".to_string(),
                "exactly one of",
            ),
            (
                format!("name = \"a\"\nscopes = [\"read\"]\nhash = \"{h}\"\nenv = \"V\""),
                "exactly one of",
            ),
            (
                format!("name = \"a\"\nscopes = [\"reed\"]\nhash = \"{h}\""),
                "unknown scope \"reed\"",
            ),
            (
                format!("name = \"a\"\nscopes = []\nhash = \"{h}\""),
                "no scopes",
            ),
            (
                "name = \"a\"\nscopes = [\"read\"]\nhash = \"md5:00\"".to_string(),
                "invalid token hash",
            ),
            (
                format!("name = \"a\"\nscopes = [\"read\"]\nhash = \"{h}\"\nsecret = \"x\""),
                "secret",
            ),
        ] {
            let err = load(&format!("[[token]]\n{entry}\n")).unwrap_err();
            assert!(
                err.contains("token[0]") && err.contains(needle),
                "{needle}: {err}"
            );
        }
        let twice = format!(
            "[[token]]\nname = \"a\"\nscopes = [\"read\"]\nenv = \"A\"\n\
             [[token]]\nname = \"a\"\nscopes = [\"read\"]\nhash = \"{h}\"\n"
        );
        let err = load(&twice).unwrap_err();
        assert!(
            err.contains("token[1].name") && err.contains("twice"),
            "{err}"
        );
        let err = load("[server]\nsocket_mode = \"999\"\n").unwrap_err();
        assert!(err.contains("server.socket_mode"), "{err}");
        let err = load("[server]\nlisten = \"unix:relative\"\n").unwrap_err();
        assert!(
            err.contains("server.listen") && err.contains("absolute"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_read_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "  kiln_from_file\n").unwrap();
        let text = format!(
            "[[token]]\nname = \"f\"\nscopes = [\"read\"]\nfile = {:?}\n\
             [[token]]\nname = \"e\"\nscopes = [\"admin\", \"read\"]\nenv = \"TOK\"\n",
            file.display().to_string()
        );
        let c = load(&text).unwrap();
        let f = c.tokens[0].resolve(|_| None).unwrap();
        assert_eq!(f.hash, kiln_server::auth::hash_token("kiln_from_file"));
        let e = c.tokens[1]
            .resolve(|v| (v == "TOK").then(|| "kiln_from_env".to_string()))
            .unwrap();
        assert_eq!(e.hash, kiln_server::auth::hash_token("kiln_from_env"));
        assert!(e.scopes.contains(kiln_server::auth::Scope::Admin));
        let err = c.tokens[1].resolve(|_| None).unwrap_err().to_string();
        assert!(err.contains("\"e\"") && err.contains("TOK"), "{err}");
        std::fs::write(&file, "\n").unwrap();
        let err = c.tokens[0].resolve(|_| None).unwrap_err().to_string();
        assert!(err.contains("\"f\"") && err.contains("empty"), "{err}");
    }
}
