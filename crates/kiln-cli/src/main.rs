//! The `kiln` binary: parses the command line, loads the config, opens the backends and
//! calls the library crates. Every subcommand lives in `cmd/`.

mod args;
mod backends;
mod cmd;
mod config;
mod output;
mod progress;

use clap::Parser;

use crate::args::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost context and its causes, like `error: a: b: c`.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
