//! The `kiln` binary: parses the command line, loads the config, opens the backends and
//! calls the library crates. Every subcommand lives in `cmd/`.

mod args;
mod backends;
mod cmd;
mod config;
mod output;
mod progress;

use std::io::IsTerminal;

use clap::Parser;

use crate::args::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Colour only for a person at a terminal: logs piped to a file or a collector stay plain.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let as_json = cli.global.json;
    // The usual soft limit (1024) is far below what a server's connections, a sync's files
    // and a mount need; the hard limit is what the administrator allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!("file descriptor limit: {n}"),
        Err(e) => tracing::warn!("could not raise the file descriptor limit: {e}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("starting the runtime");
            output::error(as_json, &e);
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::error(as_json, &e);
            std::process::ExitCode::FAILURE
        }
    }
}
