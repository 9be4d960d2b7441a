//! Worker liveness on PostgreSQL: heartbeats refresh a worker's row in `workers`, and reclaim
//! the leases of workers whose row has lapsed.

use kiln_core::queue::Liveness;
use kiln_core::time::Timestamp;

use crate::error::Result;

/// Refreshes `worker`, then reclaims the leases of the workers lapsed by `now`; returns how
/// many.
pub(super) async fn heartbeat(
    pool: &sqlx::PgPool,
    channel: &str,
    worker: &Liveness,
    now: Timestamp,
) -> Result<u64> {
    // Committed on its own before any reclaim: a concurrent reclaimer then sees this
    // worker alive, and two lapsed workers heartbeating at once never wait on each other.
    sqlx::query(
        "INSERT INTO workers (id, alive_until) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until",
    )
    .bind(&worker.worker)
    .bind(now.plus(worker.ttl).0)
    .execute(pool)
    .await?;
    let mut tx = pool.begin().await?;
    // One reclaimer at a time; the others skip (the next heartbeat looks again).
    let mine: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("kiln.queue.reclaim.{channel}"))
            .fetch_one(&mut *tx)
            .await?;
    if !mine {
        return Ok(0);
    }
    // Deleting a lapsed row waits for a lease that is refreshing it (the lease's upsert holds
    // its lock) and then sees it alive again, so a lease is never taken by a worker as it is
    // reclaimed.
    let lapsed: Vec<String> =
        sqlx::query_scalar("DELETE FROM workers WHERE alive_until < $1 RETURNING id")
            .bind(now.0)
            .fetch_all(&mut *tx)
            .await?;
    if lapsed.is_empty() {
        return Ok(0);
    }
    let n = free(&mut tx, channel, &lapsed, now).await?;
    tx.commit().await?;
    if n > 0 {
        tracing::info!(workers = ?lapsed, reclaimed = n, "reclaimed the leases of lapsed workers");
    }
    Ok(n)
}

/// Forgets `worker` and reclaims what it still holds.
pub(super) async fn retire(
    pool: &sqlx::PgPool,
    channel: &str,
    worker: &str,
    now: Timestamp,
) -> Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    let n = free(&mut tx, channel, &[worker.to_string()], now).await?;
    tx.commit().await?;
    Ok(n)
}

/// Makes the jobs leased by `owners` ready now, as if their leases had expired (the attempt
/// stays spent; the next lease draws a new token), and wakes idle workers.
async fn free(
    tx: &mut sqlx::PgConnection,
    channel: &str,
    owners: &[String],
    now: Timestamp,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET leased = false, visible_at = $2, owner = NULL \
         WHERE leased AND NOT dead AND owner = ANY($1)",
    )
    .bind(owners)
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() > 0 {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel)
            .execute(&mut *tx)
            .await?;
    }
    Ok(done.rows_affected())
}
