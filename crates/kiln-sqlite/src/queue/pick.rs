//! The lease's choice of jobs: the unthrottled ready jobs and each named throttle key's,
//! within the key's limit, merged into one priority order (see `kiln_core::throttle`).

use std::time::Duration;

use kiln_core::Result;
use kiln_core::queue::LeaseOptions;
use kiln_core::throttle::{self, Bucket, Plan};
use kiln_core::time::Timestamp;
use sqlx::{Row, Sqlite, Transaction};

use crate::db::err;

/// Ready jobs (`state < 2`, their time come) of no paused library, in lease order; the
/// caller adds the throttle test and the limit.
const READY: &str = "SELECT json_group_array(json_array(priority, id)) FROM (
     SELECT priority, id FROM jobs
     WHERE state < 2 AND avail_at <= ?1
       AND (fence_key IS NULL OR NOT EXISTS (SELECT 1 FROM paused AS p
            WHERE p.library = substr(fence_key, 1, instr(fence_key || '@', '@') - 1)))";

/// What the lease takes.
pub(super) struct Picked {
    /// The job ids as a JSON array, in lease order.
    pub ids: String,
    /// How many.
    pub n: usize,
    /// When a throttle held jobs back, how long until more may be leased.
    pub throttled: Option<Duration>,
}

async fn ready(
    tx: &mut Transaction<'static, Sqlite>,
    key: Option<&str>,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<(i32, i64)>> {
    let sql = match key {
        None => format!("{READY} AND throttle IS NULL ORDER BY priority DESC, id LIMIT ?2)"),
        Some(_) => format!(
            "{READY} AND throttle IS NOT NULL AND throttle = ?3 ORDER BY priority DESC, id LIMIT ?2)"
        ),
    };
    let json: String = sqlx::query_scalar(&sql)
        .bind(now.0)
        .bind(limit.min(i64::MAX as usize) as i64)
        .bind(key)
        .fetch_one(&mut **tx)
        .await
        .map_err(err)?;
    serde_json::from_str(&json)
        .map_err(|e| crate::db::Error::Corrupt(format!("lease candidates {json}: {e}")).into())
}

/// The key's part of a lease of `want`: its valid leases counted, its bucket read.
async fn plan(
    tx: &mut Transaction<'static, Sqlite>,
    t: &throttle::Throttle,
    want: usize,
    now: Timestamp,
) -> Result<Plan> {
    let held: i64 = if t.limit.concurrency.is_some() {
        sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE throttle = ? AND state = 1 AND avail_at > ?",
        )
        .bind(&t.key)
        .bind(now.0)
        .fetch_one(&mut **tx)
        .await
        .map_err(err)?
    } else {
        0
    };
    let bucket = if t.limit.rate.is_some() {
        sqlx::query("SELECT tokens, at FROM throttle_buckets WHERE key = ?")
            .bind(&t.key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(err)?
            .map(|r| {
                Ok::<_, sqlx::Error>(Bucket {
                    tokens: r.try_get(0)?,
                    at: Timestamp(r.try_get(1)?),
                })
            })
            .transpose()
            .map_err(err)?
    } else {
        None
    };
    Ok(t.plan(want, held.max(0) as u64, bucket, now))
}

/// Picks up to `opts.max_jobs` ready jobs, and stores the buckets of the keys it took from.
pub(super) async fn pick(
    tx: &mut Transaction<'static, Sqlite>,
    opts: &LeaseOptions,
    now: Timestamp,
) -> Result<Picked> {
    let max = opts.max_jobs.get();
    // (priority, id, which throttle: usize::MAX for none)
    let mut all: Vec<(i32, i64, usize)> = ready(tx, None, now, max)
        .await?
        .into_iter()
        .map(|(p, id)| (p, id, usize::MAX))
        .collect();
    let mut plans = Vec::with_capacity(opts.throttles.len());
    for (i, t) in opts.throttles.iter().enumerate() {
        let plan = plan(tx, t, max, now).await?;
        if plan.cap > 0 {
            let got = ready(tx, Some(&t.key), now, plan.cap).await?;
            all.extend(got.into_iter().map(|(p, id)| (p, id, i)));
        }
        plans.push(plan);
    }
    all.sort_unstable_by_key(|&(p, id, _)| (std::cmp::Reverse(p), id));
    all.truncate(max);
    let mut got = vec![0usize; plans.len()];
    for &(_, _, i) in &all {
        if let Some(n) = got.get_mut(i) {
            *n += 1;
        }
    }
    let mut throttled = None;
    for ((t, plan), got) in opts.throttles.iter().zip(plans).zip(got) {
        let (bucket, wait) = plan.settle(got);
        throttled = throttle::sooner(throttled, wait);
        // An untouched bucket need not be written: refilling the stored one gives the same.
        if let Some(b) = bucket.filter(|_| got > 0) {
            sqlx::query(
                "INSERT INTO throttle_buckets (key, tokens, at) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
            )
            .bind(&t.key)
            .bind(b.tokens)
            .bind(b.at.0)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        }
    }
    let ids = serde_json::to_string(&all.iter().map(|&(_, id, _)| id).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    Ok(Picked {
        ids,
        n: all.len(),
        throttled,
    })
}
