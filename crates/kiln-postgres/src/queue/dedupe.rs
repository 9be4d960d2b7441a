//! Idempotent enqueue on PostgreSQL: the ids of a batch's jobs that were not created because
//! their run already had their dedupe key.

use crate::error::{Error, Result};

/// Fills the `None` slots of `ids` (jobs not created) with the id of the job their
/// `(run, dedupe)` key names. Runs in the enqueue's transaction, in a statement of its own:
/// READ COMMITTED gives it a fresh snapshot, so it sees keys that a concurrent batch
/// committed while the enqueue statement waited on them.
pub(super) async fn existing_ids(
    tx: &mut sqlx::PgConnection,
    runs: &[Option<i64>],
    dedupes: &[Option<&str>],
    ids: &mut [Option<i64>],
) -> Result<()> {
    let mut pos = Vec::new();
    let mut want_runs = Vec::new();
    let mut want_keys = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if id.is_none() {
            let (Some(run), Some(key)) = (runs[i], dedupes[i]) else {
                return Err(Error::Corrupt(
                    format!("job {i} of the batch has no key and was not created").into(),
                ));
            };
            pos.push(i);
            want_runs.push(run);
            want_keys.push(key);
        }
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT t.ord, k.job_id \
         FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS t(run_id, dedupe, ord) \
         JOIN job_keys k ON k.run_id = t.run_id \
           AND k.key_hash = sha256(convert_to(t.dedupe, 'UTF8'))",
    )
    .bind(&want_runs)
    .bind(&want_keys)
    .fetch_all(tx)
    .await?;
    for (ord, job) in rows {
        if let Some(&i) = usize::try_from(ord - 1).ok().and_then(|o| pos.get(o)) {
            ids[i] = Some(job);
        }
    }
    Ok(())
}
