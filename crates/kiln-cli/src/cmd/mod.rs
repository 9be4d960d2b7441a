//! Subcommand dispatch: each command opens only the backends it needs.

mod catalog;
mod follow;
mod load;
mod mount;
pub(crate) mod reheat;
mod serve;
mod sync;
mod token;
mod verify;

use std::path::PathBuf;

use crate::args::{Cli, Command};
use crate::backends::Env;
use crate::config::Config;

/// Runs one command line.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.global.config.as_deref(), std::env::vars())?;
    let data_dir = cli
        .global
        .data_dir
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("kiln-data"));
    let mut env = Env::new(config, data_dir, std::env::var_os("KILN_QUIET").is_none());
    if matches!(cli.command, Command::Serve { .. } | Command::Mount { .. }) {
        // A server reads content from the store; the catalog only for control-plane routes.
        env.pg_max_connections = 2;
    }
    let json = cli.global.json;
    match cli.command {
        Command::Sync(args) => sync::sync(&env, args, json).await,
        Command::Versions { course } => catalog::versions(&env, &course, json).await,
        Command::Chunks { course, version } => {
            catalog::chunks(&env, &course, version.as_deref(), json).await
        }
        Command::Ensure {
            course,
            chunks,
            cache,
        } => load::ensure(&env, &course, &chunks, &cache, json).await,
        Command::Cat {
            course,
            path,
            version,
            cache,
        } => load::cat(&env, &course, &path, version.as_deref(), &cache).await,
        Command::Serve {
            listen,
            mount,
            prefetch,
            mount_args,
            cache,
        } => {
            if mount.is_none()
                && (!mount_args.courses.is_empty() || mount_args.allow_other || mount_args.no_hold)
            {
                return Err(kiln_core::Error::invalid(
                    "--course, --allow-other and --no-hold of kiln serve are options of --mount MOUNTPOINT, which is missing",
                )
                .into());
            }
            let mount = mount.map(|m| (m, mount_args));
            serve::serve(&env, listen, mount, &prefetch, &cache).await
        }
        Command::Mount {
            mountpoint,
            metrics,
            mount_args,
            cache,
        } => mount::mount(&env, mountpoint, metrics, &mount_args, &cache).await,
        Command::Worker {
            concurrency,
            exit_when_idle,
        } => reheat::worker(&env, concurrency, exit_when_idle).await,
        Command::Reheat {
            library, key, work, ..
        } if !key.is_empty() => reheat::reheat_keys(&env, &library, key, work, json).await,
        Command::Reheat {
            library,
            build,
            group,
            wait,
            timeout,
            work,
            ..
        } => {
            let wait = wait.then(|| reheat::waiting(timeout));
            reheat::reheat(&env, &library, build, group, wait, work, json).await
        }
        Command::Cancel { run } => reheat::cancel(&env, run, json).await,
        Command::Pause { library } => reheat::pause(&env, &library, true, json).await,
        Command::Resume { library } => reheat::pause(&env, &library, false, json).await,
        Command::Runs { library, limit } => {
            reheat::runs(&env, library.as_deref(), limit, json).await
        }
        Command::Dlq { command } => reheat::dlq(&env, command, json).await,
        Command::Token { command } => token::token(command, json),
        Command::Gc { grace } => catalog::gc(&env, grace, json).await,
        Command::Verify {
            course,
            repair,
            source,
            subdir,
        } => {
            verify::verify(
                &env,
                course,
                repair,
                repair.then_some(source).flatten(),
                subdir,
                json,
            )
            .await
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
