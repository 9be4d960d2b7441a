//! `kiln serve`: the HTTP API beside an app server, on TCP or a Unix socket, with the
//! config's tokens.

use anyhow::Context;
use kiln_server::auth::Auth;
use kiln_server::hosts::Hosts;
use kiln_server::listen::{DEFAULT_SOCKET_MODE, ListenAddr};

use crate::args::{CacheArgs, MountArgs};
use crate::backends::Env;
use crate::cmd::follow::{PublishedCollector, follow};
use crate::cmd::load::open_cache;

/// `kiln serve [--listen ADDR|unix:PATH] [--cache-dir DIR] [--cache-budget BYTES]`.
pub(crate) async fn serve(
    env: &Env,
    listen: Option<ListenAddr>,
    mount: Option<(std::path::PathBuf, MountArgs)>,
    prefetch: &[kiln_core::ids::CourseId],
    args: &CacheArgs,
) -> anyhow::Result<()> {
    let addr = listen
        .or_else(|| env.config.server.listen.clone())
        .unwrap_or_else(|| ListenAddr::Tcp(([127, 0, 0, 1], 7878).into()));
    let auth = auth(env, &addr)?;
    let (cache, view) = open_cache(env, args).await?;
    // A mount's counters go to this server's /metrics.
    let mount_metrics = std::sync::Arc::new(kiln_mount::MountMetrics::default());
    let mut registry = match mount {
        Some(_) => crate::cmd::mount::registry(&mount_metrics),
        None => prometheus_client::registry::Registry::default(),
    };
    registry.register_collector(Box::new(PublishedCollector(view.clone())));
    let mut prefetch = prefetch.to_vec();
    for c in &env.config.load.prefetch {
        prefetch.push(
            c.parse()
                .with_context(|| format!("invalid config: load.prefetch: {c:?}"))?,
        );
    }
    // A Unix socket is beyond a browser's reach: no Host to check there.
    let hosts = match &addr {
        ListenAddr::Tcp(_) => Hosts::named(env.config.server.hosts.iter().map(|h| h.0.clone())),
        ListenAddr::Unix(_) => Hosts::Any,
    };
    let mut state = kiln_server::AppState::with_registry(cache.clone(), registry)
        .with_auth(auth)
        .with_hosts(hosts);
    if !env.config.libraries.is_empty() {
        let reheat = crate::cmd::reheat::service(env).await?;
        state = state.with_reheat(kiln_server::reheat_routes::ReheatState::new(reheat));
    }
    let listener = match &addr {
        ListenAddr::Tcp(a) => Listener::Tcp(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a}"))?,
        ),
        ListenAddr::Unix(path) => {
            let mode = match &env.config.server.socket_mode {
                Some(m) => kiln_server::listen::parse_mode(m)?,
                None => DEFAULT_SOCKET_MODE,
            };
            Listener::Unix(kiln_server::listen::bind_unix(path, mode)?, path.clone())
        }
    };
    // The first line of stdout is the address, for scripts that listen on port 0.
    match &listener {
        Listener::Tcp(l) => println!("listening on http://{}", l.local_addr()?),
        Listener::Unix(_, path) => println!("listening on unix:{}", path.display()),
    }
    // The mount shares this server's cache: one budget, one set of pins; announced versions
    // reach it as they reach the cache.
    let mount_changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let mounted = match mount {
        Some((mountpoint, margs)) => {
            let m = crate::cmd::mount::start(
                &cache,
                mountpoint,
                &margs,
                mount_metrics,
                mount_changed.clone(),
            )
            .await?;
            eprintln!("mounted at {}", m.mountpoint().display());
            Some(m)
        }
        None => None,
    };

    let following = follow(env, &view, &cache, &mount_changed, prefetch)?;
    let server = &env.config.server;
    let mut options = kiln_server::ServeOptions::default();
    if let Some(d) = server.header_read_timeout {
        options.header_read_timeout = d;
    }
    if let Some(d) = server.idle_timeout {
        options.idle_timeout = d;
    }
    if let Some(n) = server.max_connections {
        options.max_connections = n;
    }
    let shutdown = crate::cmd::shutdown_signal();
    match listener {
        Listener::Tcp(l) => kiln_server::run_with(l, state, options, shutdown).await?,
        Listener::Unix(l, path) => {
            let served = kiln_server::run_with(l, state, options, shutdown).await;
            // The socket file outlives its listener; a clean stop removes it.
            let _ = std::fs::remove_file(&path);
            served?
        }
    }
    drop(following);
    if let Some(m) = mounted {
        m.unmount().await?;
    }
    Ok(())
}

/// A bound listener.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

/// The config's tokens, with their secrets read; refuses to serve an address other hosts
/// can reach without any, unless the config allows it.
pub(crate) fn auth(env: &Env, addr: &ListenAddr) -> anyhow::Result<Auth> {
    let tokens = env
        .config
        .tokens
        .iter()
        .map(|t| t.resolve(|var| std::env::var(var).ok()))
        .collect::<Result<Vec<_>, _>>()?;
    let auth = Auth::new(tokens)?;
    if auth.is_open() && !addr.is_private() {
        if !env.config.server.allow_unauthenticated {
            return Err(kiln_core::Error::invalid(format!(
                "refusing to serve {addr} without tokens: any host that reaches it could read \
                 every course and start or cancel reheats. Add a [[token]] (see `kiln token new`), \
                 listen on loopback or unix:/path, or set server.allow_unauthenticated = true"
            ))
            .into());
        }
        tracing::warn!(%addr, "serving without tokens on an address other hosts can reach (server.allow_unauthenticated)");
    }
    Ok(auth)
}
