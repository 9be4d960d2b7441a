//! A worker's liveness in the queue: its id, and the heartbeat that keeps it alive and
//! reclaims the leases of workers that stopped heartbeating (a `kill -9`, a lost host), so
//! their jobs come back within seconds rather than after the visibility timeout.

use std::time::Duration;

use kiln_core::queue::{JobQueue, Liveness};

/// A fresh worker id: the process id and a random part, unique across a fleet's hosts and
/// restarts (a restarted worker must not inherit its predecessor's leases).
pub(crate) fn worker_id() -> String {
    format!("w{}-{:016x}", std::process::id(), rand::random::<u64>())
}

/// How often a worker with liveness `ttl` heartbeats: five beats per ttl, so a few slow or
/// failed beats in a row do not make a live worker look dead.
pub(crate) fn interval(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(50))
}

/// One heartbeat; failures are logged, and the next beat tries again.
pub(crate) async fn beat(queue: &dyn JobQueue, me: &Liveness) {
    match queue.heartbeat(me).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(worker = %me.worker, reclaimed = n, "reclaimed leases of lapsed workers")
        }
        Err(e) => tracing::warn!(worker = %me.worker, error = %e, "liveness heartbeat failed"),
    }
}
