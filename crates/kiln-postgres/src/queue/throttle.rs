//! Throttled leases on PostgreSQL: before the lease statement, each limited key's row is
//! locked (in key order) and its held leases counted; after it, the new leases' slots and
//! the drawn buckets are written, in the same transaction (see `kiln_core::throttle`).

use std::time::Duration;

use kiln_core::throttle::{self, Bucket, Plan, Throttle};
use kiln_core::time::Timestamp;
use sqlx::Row;

use crate::error::Result;

/// Each throttle's part of a lease of `want` jobs, in `throttles` order; limited keys are
/// locked until the transaction ends.
pub(super) async fn plan(
    tx: &mut sqlx::PgConnection,
    throttles: &[Throttle],
    want: usize,
    now: Timestamp,
) -> Result<Vec<Plan>> {
    let mut limited: Vec<&str> = throttles
        .iter()
        .filter(|t| !t.limit.is_none())
        .map(|t| t.key.as_str())
        .collect();
    limited.sort_unstable();
    limited.dedup();
    sqlx::query(
        "INSERT INTO throttle_buckets (key, tokens, at) SELECT k, NULL, 0 FROM unnest($1::text[]) AS k \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(&limited)
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query(
        "SELECT key, tokens, at FROM throttle_buckets WHERE key = ANY($1) ORDER BY key FOR UPDATE",
    )
    .bind(&limited)
    .fetch_all(&mut *tx)
    .await?;
    let mut buckets = std::collections::HashMap::new();
    for r in rows {
        let key: String = r.try_get(0)?;
        if let Some(tokens) = r.try_get::<Option<f64>, _>(1)? {
            let at = Timestamp(r.try_get(2)?);
            buckets.insert(key, Bucket { tokens, at });
        }
    }
    let counted: Vec<&str> = throttles
        .iter()
        .filter(|t| t.limit.concurrency.is_some())
        .map(|t| t.key.as_str())
        .collect();
    let mut held = std::collections::HashMap::new();
    if !counted.is_empty() {
        sqlx::query(
            "DELETE FROM throttle_slots s WHERE s.key = ANY($1) AND NOT EXISTS ( \
               SELECT 1 FROM jobs j WHERE j.id = s.job AND j.token = s.token AND j.leased \
                 AND NOT j.dead AND j.visible_at > $2)",
        )
        .bind(&counted)
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key, count(*) FROM throttle_slots WHERE key = ANY($1) GROUP BY key",
        )
        .bind(&counted)
        .fetch_all(&mut *tx)
        .await?;
        held.extend(rows);
    }
    Ok(throttles
        .iter()
        .map(|t| {
            let n = held.get(&t.key).copied().unwrap_or(0).max(0) as u64;
            t.plan(want, n, buckets.get(&t.key).copied(), now)
        })
        .collect())
}

/// Records what the lease took (`leased`: each job's throttle key, id and token): the slots
/// of concurrency-limited keys and the buckets of rate-limited ones. Returns how long until
/// a throttle that held jobs back may give more.
pub(super) async fn settle(
    tx: &mut sqlx::PgConnection,
    throttles: &[Throttle],
    plans: Vec<Plan>,
    leased: &[(String, i64, i64)],
) -> Result<Option<Duration>> {
    let mut throttled = None;
    let mut slot_keys = Vec::new();
    let mut slot_jobs = Vec::new();
    let mut slot_tokens = Vec::new();
    for (t, plan) in throttles.iter().zip(plans) {
        let mine = leased.iter().filter(|(k, _, _)| *k == t.key);
        let got = mine.clone().count();
        if t.limit.concurrency.is_some() {
            for (k, id, token) in mine {
                slot_keys.push(k.as_str());
                slot_jobs.push(*id);
                slot_tokens.push(*token);
            }
        }
        let (bucket, wait) = plan.settle(got);
        throttled = throttle::sooner(throttled, wait);
        if let Some(b) = bucket.filter(|_| got > 0) {
            sqlx::query("UPDATE throttle_buckets SET tokens = $2, at = $3 WHERE key = $1")
                .bind(&t.key)
                .bind(b.tokens)
                .bind(b.at.0)
                .execute(&mut *tx)
                .await?;
        }
    }
    if !slot_jobs.is_empty() {
        sqlx::query(
            "INSERT INTO throttle_slots (key, job, token) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[]) \
             ON CONFLICT (key, job) DO UPDATE SET token = excluded.token",
        )
        .bind(&slot_keys)
        .bind(&slot_jobs)
        .bind(&slot_tokens)
        .execute(&mut *tx)
        .await?;
    }
    Ok(throttled)
}
