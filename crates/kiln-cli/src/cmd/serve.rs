//! `kiln serve`: the HTTP API beside an app server.

use std::net::SocketAddr;

use anyhow::Context;
use futures::StreamExt;

use crate::args::CacheArgs;
use crate::backends::Env;
use crate::cmd::load::open_cache_with;

/// `kiln serve [--listen ADDR] [--cache-dir DIR] [--cache-budget BYTES]`.
pub(crate) async fn serve(
    env: &Env,
    listen: Option<SocketAddr>,
    args: &CacheArgs,
) -> anyhow::Result<()> {
    let (catalog, events) = env.catalog_with_events().await?;
    let cache = open_cache_with(env, args, catalog).await?;
    let mut state = kiln_server::AppState::new(cache.clone());
    if !env.config.libraries.is_empty() {
        let reheat = crate::cmd::reheat::service(env).await?;
        state = state.with_reheat(kiln_server::reheat_routes::ReheatState::new(reheat));
    }
    let addr = listen
        .or(env.config.server.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // The first line of stdout is the address, for scripts that listen on port 0.
    println!("listening on http://{}", listener.local_addr()?);

    // Where the catalog announces new versions (PostgreSQL NOTIFY), switch at once rather
    // than at the next refresh.
    let notified = events.map(|mut events| {
        let cache = cache.clone();
        tokio::spawn(async move {
            while let Some(course) = events.next().await {
                if let Err(e) = cache.refresh_now(&course).await {
                    tracing::warn!(%course, error = %e, "refreshing the current version");
                }
            }
        })
    });
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
    kiln_server::run_with(listener, state, options, crate::cmd::shutdown_signal()).await?;
    if let Some(n) = notified {
        n.abort();
    }
    Ok(())
}
