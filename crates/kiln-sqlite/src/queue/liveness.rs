//! Worker liveness on SQLite: the `workers` table, refreshed by leases and heartbeats, and
//! the reclaim of the leases of workers that stopped heartbeating.

use kiln_core::Result;
use kiln_core::queue::Liveness;
use kiln_core::time::Timestamp;
use sqlx::{Sqlite, Transaction};

use crate::db::err;

/// Marks `worker` alive until `now + ttl`.
pub(super) async fn refresh(
    tx: &mut Transaction<'static, Sqlite>,
    worker: &Liveness,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, alive_until) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until",
    )
    .bind(&worker.worker)
    .bind(now.plus(worker.ttl).0)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

/// Makes the jobs leased by `owners` (a JSON array of ids) ready now; returns how many.
/// The attempt stays spent, as after an expired lease; the next lease draws a new token.
async fn free(tx: &mut Transaction<'static, Sqlite>, owners: &str, now: Timestamp) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 0, avail_at = ?2, owner = NULL
         WHERE state = 1 AND owner IN (SELECT value FROM json_each(?1))",
    )
    .bind(owners)
    .bind(now.0)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(done.rows_affected())
}

/// Forgets every worker whose liveness lapsed before `now` and frees its leases.
pub(super) async fn reclaim_lapsed(
    tx: &mut Transaction<'static, Sqlite>,
    now: Timestamp,
) -> Result<u64> {
    // The common case (nobody lapsed) costs one lookup in a table of a few rows.
    let lapsed: String =
        sqlx::query_scalar("SELECT json_group_array(id) FROM workers WHERE alive_until < ?")
            .bind(now.0)
            .fetch_one(&mut **tx)
            .await
            .map_err(err)?;
    if lapsed == "[]" {
        return Ok(0);
    }
    sqlx::query("DELETE FROM workers WHERE id IN (SELECT value FROM json_each(?))")
        .bind(&lapsed)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    let n = free(tx, &lapsed, now).await?;
    if n > 0 {
        tracing::info!(workers = %lapsed, reclaimed = n, "reclaimed the leases of lapsed workers");
    }
    Ok(n)
}

/// Forgets `worker` and frees what it still holds.
pub(super) async fn retire(
    tx: &mut Transaction<'static, Sqlite>,
    worker: &str,
    now: Timestamp,
) -> Result<u64> {
    sqlx::query("DELETE FROM workers WHERE id = ?")
        .bind(worker)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    let owners = serde_json::json!([worker]).to_string();
    free(tx, &owners, now).await
}
