//! The command line: every subcommand and flag of DESIGN.md's contract, parsed by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kiln: course content on demand and render-cache reheating.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The data directory of the embedded backends (SQLite + local objects).
    #[arg(long, global = true, env = "KILN_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A kiln.toml config file (backends, libraries, courses).
    #[arg(long, global = true, env = "KILN_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print one JSON object on stdout instead of a human summary.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sync a course from a git repository or a directory.
    Sync(SyncArgs),
    /// List a course's versions.
    Versions {
        /// The course id.
        course: String,
    },
    /// Show a version's manifest.
    Chunks {
        /// The course id.
        course: String,
        /// The version (default: current).
        #[arg(long)]
        version: Option<String>,
    },
    /// Load chunks into the local cache.
    Ensure {
        /// The course id.
        course: String,
        /// Chunks as KIND:NAME (or KIND for a course-wide chunk).
        #[arg(required = true)]
        chunks: Vec<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Write a course file's bytes to stdout.
    Cat {
        /// The course id.
        course: String,
        /// The course-relative path.
        path: String,
        /// The version (default: current).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on: `IP:PORT` or `unix:/path` (default `127.0.0.1:7878`).
        #[arg(long)]
        listen: Option<kiln_server::listen::ListenAddr>,
        /// Also mount the courses read-only here (as `kiln mount`), sharing this server's
        /// chunk cache, budget and pins.
        #[arg(long, value_name = "MOUNTPOINT")]
        mount: Option<PathBuf>,
        /// Fetch this course's current version at start, in the background, as far as the
        /// budget allows (repeatable; added to `[load] prefetch`).
        #[arg(long, value_name = "COURSE")]
        prefetch: Vec<kiln_core::ids::CourseId>,
        #[command(flatten)]
        mount_args: MountArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Mount the courses as a read-only file system: `<mountpoint>/<course>/<version>/...`
    /// and `<mountpoint>/<course>/current`; a file's chunk loads when it is first opened.
    Mount {
        /// Where to mount (created if missing; a dead mount there is cleared first).
        mountpoint: PathBuf,
        /// Serve `/metrics`, `/healthz` and `/readyz` here (`IP:PORT`, port 0 for any); the
        /// address goes to stderr as `metrics on http://...`.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        #[command(flatten)]
        mount_args: MountArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Run reheat jobs.
    Worker {
        /// Jobs run at once.
        #[arg(long)]
        concurrency: Option<std::num::NonZeroUsize>,
        /// Stop once the queue stays empty this long (e.g. `2s`); run forever without it.
        #[arg(long, value_parser = humantime::parse_duration)]
        exit_when_idle: Option<std::time::Duration>,
    },
    /// Start a reheat of a library.
    Reheat {
        /// The library.
        library: String,
        /// A label for the build (a commit hash, a version).
        #[arg(long)]
        build: Option<String>,
        /// Only this producer group.
        #[arg(long, conflicts_with = "key")]
        group: Option<String>,
        /// Only these keys (repeatable): each is marked stale, still served, and
        /// re-rendered at live priority; no run is started.
        #[arg(long, conflicts_with_all = ["build", "wait"])]
        key: Vec<String>,
        /// Wait for the run to end, with a progress bar. A backend that is unavailable for
        /// a while is tried again (saying so on stderr) until the run ends or `--timeout`.
        #[arg(long)]
        wait: bool,
        /// With `--wait`: stop waiting after this long (e.g. `30m`) and fail; the run goes
        /// on. By default, wait as long as the run takes.
        #[arg(long, requires = "wait", value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Also run jobs in this process (no separate `kiln worker` needed).
        #[arg(long)]
        work: bool,
    },
    /// Cancel a running reheat run: its jobs are dropped and nothing is pruned.
    Cancel {
        /// The run's id.
        run: i64,
    },
    /// Pause a library: no worker takes its runs' jobs until `kiln resume`.
    Pause {
        /// The library.
        library: String,
    },
    /// Resume a paused library.
    Resume {
        /// The library.
        library: String,
    },
    /// List reheat runs.
    Runs {
        /// Only this library.
        library: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Check that every object a version references is stored whole; optionally repair.
    Verify {
        /// Only this course (default: every course).
        course: Option<String>,
        /// Rewrite the published view where it differs from the catalog, and store bad chunk
        /// objects again, rebuilt from the course's source (`--source`).
        #[arg(long)]
        repair: bool,
        /// The course's git repository or directory, for `--repair`.
        #[arg(long)]
        source: Option<PathBuf>,
        /// The course's directory inside the source, for `--repair`.
        #[arg(long)]
        subdir: Option<String>,
    },
    /// Bearer tokens for `kiln serve`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Delete store objects that no version references.
    Gc {
        /// Only objects older than this (e.g. `1h`).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        grace: std::time::Duration,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// A git repository (bare or not) or a plain directory.
    pub(crate) path: PathBuf,
    /// The course id (default: the directory's name).
    #[arg(long)]
    pub(crate) course: Option<String>,
    /// The git revision (default: HEAD).
    #[arg(long)]
    pub(crate) rev: Option<String>,
    /// The course's directory inside the repository.
    #[arg(long)]
    pub(crate) subdir: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// The local chunk cache directory.
    #[arg(long)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// The cache's byte budget.
    #[arg(long)]
    pub(crate) cache_budget: Option<u64>,
}

/// What a mount shows, and to whom.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MountArgs {
    /// Only this course (repeatable); every course of the catalog without it.
    #[arg(long = "course", value_name = "ID")]
    pub(crate) courses: Vec<String>,
    /// Let other users read the mount (an app server's user, a container's).
    #[arg(long)]
    pub(crate) allow_other: bool,
    /// Do not hold a file's chunk while it is open: the kernel opens files without asking
    /// (warm opens cost no round trip) and asks only for pages it lacks, each read pinning
    /// the chunk while it runs.
    #[arg(long)]
    pub(crate) no_hold: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Make dead letters ready again (all, or the given ids).
    Redrive {
        /// Job ids.
        ids: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a new random token and print it with the `[[token]]` entry (its hash) to add.
    New {
        /// The token's name (who uses it).
        name: String,
        /// Its scopes, comma-separated: read, ensure, write, admin.
        #[arg(long, value_delimiter = ',', default_value = "read")]
        scopes: Vec<String>,
    },
    /// Print the hash of a token read from stdin, for a `[[token]]` entry.
    Hash,
}
