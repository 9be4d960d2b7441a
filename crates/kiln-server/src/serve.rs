//! The accept loop: HTTP/1.1 connections with a header-read timeout, an idle timeout and a
//! connection limit, so that slow or idle clients cannot exhaust the process's file
//! descriptors and starve everyone else (health checks included).
//!
//! - **Header-read timeout** (hyper's): a client has this long to send a request's complete
//!   headers, counted from when the connection opened or answered its previous request.
//!   It closes slowloris clients that trickle header bytes, and keep-alive connections that
//!   sit without a next request.
//! - **Idle timeout**: a connection on which no byte has moved either way for this long, and
//!   no handler works (none runs, or the one that runs waits for request body bytes), is
//!   closed: a client that stopped sending its request body or stopped reading its
//!   response. A handler that is working (waiting for a download, say) keeps its connection
//!   however long it takes.
//! - **Connection limit**: at most this many connections at once, and never more than the
//!   process's descriptors allow (its soft `RLIMIT_NOFILE` less [`RESERVED_FDS`] for cache
//!   files, databases and the object store: [`fit_connections`], which says in the log when
//!   it lowers the limit). At the limit, a new connection sheds the oldest one that no
//!   handler works for (one still sending its first request, or kept alive between
//!   requests), so that a health check or a scrape of `/metrics` gets in however many
//!   clients sit idle; only when every connection is being served does the loop stop
//!   accepting (new clients wait in the kernel's backlog) until one closes.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

use crate::AppState;

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time to send a request's complete headers (from connect, or from the previous
    /// response on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Time without a running handler and without a byte moving before a connection closes.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: std::num::NonZeroUsize,
}

impl Default for ServeOptions {
    /// 10 s to send headers, 60 s idle, 1024 connections.
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: std::num::NonZeroUsize::new(1024).expect("not zero"),
        }
    }
}

/// What the idle watchdog of one connection reads: when a byte last moved, and how many
/// handlers run.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
    /// A handler waits for request body bytes from the client: its time is the client's.
    awaiting_body: AtomicBool,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            awaiting_body: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the connection waits on the client only: no handler works for it.
    fn client_bound(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 || self.awaiting_body.load(Ordering::Relaxed)
    }

    fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Descriptors kept out of the connection limit: the cache's files, the catalog and the
/// object store's connections, a mount, the listener itself.
pub(crate) const RESERVED_FDS: usize = 128;

/// The connection limit that fits `soft_nofile` descriptors: `wanted`, or fewer with the
/// reason when the descriptors would not go round.
pub(crate) fn fit_connections(wanted: usize, soft_nofile: u64) -> (usize, Option<String>) {
    let soft = usize::try_from(soft_nofile).unwrap_or(usize::MAX);
    let reserve = RESERVED_FDS.min(soft / 2);
    let fits = soft.saturating_sub(reserve).max(1);
    if wanted <= fits {
        return (wanted, None);
    }
    let why = format!(
        "max_connections lowered from {wanted} to {fits}: the process may open {soft} file \
         descriptors (RLIMIT_NOFILE), and {reserve} are kept for files and backends; raise the \
         limit (ulimit -n, LimitNOFILE=) to serve more connections"
    );
    (fits, Some(why))
}

/// The open connections by accept order, each with its activity: at the limit the loop
/// sheds the oldest one no handler works for. A connection enters at accept and leaves when
/// it closes; requests take no lock.
#[derive(Default)]
struct Conns {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Open>>,
}

/// An open connection as [`Conns`] holds it: how to close it, and whether a handler works.
type Open = (Arc<Notify>, Arc<Activity>);

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection; it leaves when the returned [`Conn`] is dropped.
    fn enter(self: &Arc<Conns>, activity: &Arc<Activity>) -> Conn {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        self.lock().insert(id, (close.clone(), activity.clone()));
        Conn {
            id,
            close,
            conns: self.clone(),
        }
    }

    /// Tells the oldest connection no handler works for to close; whether there was one.
    fn shed_oldest(&self) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .find(|(_, (_, a))| a.busy.load(Ordering::Relaxed) == 0)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some((close, _)) => {
                close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One connection's place in [`Conns`].
struct Conn {
    id: u64,
    close: Arc<Notify>,
    conns: Arc<Conns>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
    }
}

/// Counts a running handler for as long as it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(a: &Arc<Activity>) -> Busy {
        a.busy.fetch_add(1, Ordering::Relaxed);
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A request body that tells the watchdog while its handler waits for the client.
struct WatchedBody {
    inner: hyper::body::Incoming,
    activity: Arc<Activity>,
}

impl hyper::body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        self.activity
            .awaiting_body
            .store(r.is_pending(), Ordering::Relaxed);
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.activity.awaiting_body.store(false, Ordering::Relaxed);
    }
}

/// A stream that records when bytes move.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` (TCP or a Unix socket) until `shutdown`, then waits for open
/// connections to finish their requests (idle ones close at once).
pub(crate) async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft);
    let (max, lowered) = fit_connections(options.max_connections.get(), soft);
    if let Some(why) = lowered {
        tracing::warn!("{why}");
    }
    let limit = Arc::new(Semaphore::new(max));
    let conns = Arc::new(Conns::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        // Room for more fields than a request may have, so that the refusal is kiln's JSON.
        .max_headers(crate::limits::PARSE_HEADERS);
    tokio::pin!(shutdown);
    loop {
        // axum's `Listener::accept` retries failed accepts itself (out of file descriptors,
        // a connection reset before accept), pausing rather than spinning.
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            (stream, _) = listener.accept() => stream,
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the limit: the oldest connection nobody works for makes room.
                if conns.shed_oldest() {
                    state.http.shed.inc();
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    p = limit.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        // Small responses go out at once on TCP; the listener type is generic, so ask.
        if let Some(tcp) = (&stream as &dyn std::any::Any).downcast_ref::<tokio::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
        let activity = Activity::new();
        let conn = conns.enter(&activity);
        let served = http.serve_connection(
            TokioIo::new(Watched {
                inner: stream,
                activity: activity.clone(),
            }),
            service(app.clone(), activity.clone()),
        );
        let served = graceful.watch(served);
        let gauge = state.http.connections.clone();
        let idle_timeout = options.idle_timeout;
        tokio::spawn(async move {
            gauge.inc();
            tokio::select! {
                _ = watch_idle(served, &activity, idle_timeout) => {}
                _ = conn.close.notified() => tracing::debug!("shedding a connection at the limit"),
            }
            drop(conn);
            gauge.dec();
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Runs a connection until it ends, or drops it (closing the socket) once it is idle.
async fn watch_idle<F, E>(conn: F, activity: &Activity, idle_timeout: Duration)
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let check = (idle_timeout / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = tokio::time::sleep(check) => {
                if activity.client_bound() && activity.idle_for() >= idle_timeout {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        }
    }
}

fn service(
    app: Router,
    activity: Arc<Activity>,
) -> TowerToHyperService<
    impl tower::Service<
        Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone,
> {
    TowerToHyperService::new(tower::service_fn(
        move |req: Request<hyper::body::Incoming>| {
            let (app, activity) = (app.clone(), activity.clone());
            let busy = Busy::enter(&activity);
            async move {
                let _busy = busy;
                let req = req.map(|inner| {
                    axum::body::Body::new(WatchedBody {
                        inner,
                        activity: activity.clone(),
                    })
                });
                app.oneshot(req).await
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_fits_the_descriptors_and_says_why_when_lowered() {
        assert_eq!(fit_connections(1024, 20_000), (1024, None));
        let (n, why) = fit_connections(1024, 1024);
        assert_eq!(n, 1024 - RESERVED_FDS);
        let why = why.unwrap();
        for part in ["1024", "RLIMIT_NOFILE", &(1024 - RESERVED_FDS).to_string()] {
            assert!(why.contains(part), "{part} in {why}");
        }
        // A tiny limit keeps half for the rest of the process.
        assert_eq!(fit_connections(1024, 100).0, 50);
        assert_eq!(fit_connections(10, 0).0, 1);
    }
}
