//! LISTEN/NOTIFY: one background listener per channel that turns notifications into a wake-up
//! counter (idle workers) or a broadcast of payloads (new course versions).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Aborts the listener task when the last handle of its backend is dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a listener delivers what it hears.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    /// Bump a counter on every notification (and after a reconnect, when some may be lost).
    Wake(Arc<watch::Sender<u64>>),
    /// Send each payload on.
    Payloads(broadcast::Sender<String>),
}

impl Sink {
    fn bump(&self) {
        if let Sink::Wake(tx) = self {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Starts listening on `channel`; returns once LISTEN is in effect, so a NOTIFY committed
/// after this returns is delivered.
pub(crate) async fn listen(
    pool: &PgPool,
    channel: &str,
    sink: Sink,
) -> Result<AbortOnDrop, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    // Anything notified before LISTEN was missed: wake waiters once so they look.
    sink.bump();
    let channel = channel.to_string();
    let task = tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match &sink {
                    Sink::Wake(_) => sink.bump(),
                    Sink::Payloads(tx) => {
                        // No receivers is fine: nobody is subscribed right now.
                        let _ = tx.send(n.payload().to_string());
                    }
                },
                // The connection dropped and was re-established: notifications may be lost.
                Ok(None) => sink.bump(),
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "postgres listener failed; retrying");
                    sink.bump();
                    // Back off before reconnecting (try_recv reconnects on the next call).
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(AbortOnDrop(task))
}
