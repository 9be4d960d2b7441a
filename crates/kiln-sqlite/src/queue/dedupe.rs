//! Idempotent enqueue on SQLite: which jobs of a batch are new for their `(run, dedupe)`
//! key, and the `job_keys` rows that remember them once they are created.

use std::collections::HashMap;

use kiln_core::Result;
use kiln_core::ids::JobId;
use kiln_core::queue::{Enqueued, NewJob};
use sqlx::{Row, Sqlite, Transaction};

use crate::db::err;

/// Where a job of the batch ends up.
enum Slot {
    /// Created: the `n`th job inserted.
    Fresh(usize),
    /// Its key was enqueued before, as this job.
    Existing(i64),
    /// Its key appears earlier in the batch, at this position.
    SameAs(usize),
}

/// A batch's jobs sorted into new ones and duplicates of known keys.
pub(super) struct Dedupe {
    /// Positions of the jobs to insert, in batch order.
    pub(super) fresh: Vec<usize>,
    slots: Vec<Slot>,
}

impl Dedupe {
    /// Looks the batch's keys up (inside the write transaction, so no other writer can
    /// claim one meanwhile).
    pub(super) async fn resolve(
        tx: &mut Transaction<'static, Sqlite>,
        jobs: &[NewJob],
    ) -> Result<Dedupe> {
        let keyed: Vec<(i64, &str)> = jobs
            .iter()
            .filter_map(|j| Some((j.run?.0, j.dedupe.as_deref()?)))
            .collect();
        let mut known: HashMap<(i64, String), i64> = HashMap::new();
        if !keyed.is_empty() {
            let rows = sqlx::query(
                "SELECT k.run, k.key, k.job FROM json_each(?) AS j JOIN job_keys AS k
                 ON k.run = json_extract(j.value, '$[0]') AND k.key = json_extract(j.value, '$[1]')",
            )
            .bind(serde_json::to_string(&keyed).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut **tx)
            .await
            .map_err(err)?;
            for r in rows {
                known.insert(
                    (r.try_get(0).map_err(err)?, r.try_get(1).map_err(err)?),
                    r.try_get(2).map_err(err)?,
                );
            }
        }
        let mut first: HashMap<(i64, &str), usize> = HashMap::new();
        let mut fresh = Vec::with_capacity(jobs.len());
        let mut slots = Vec::with_capacity(jobs.len());
        for (pos, j) in jobs.iter().enumerate() {
            let key = j.run.zip(j.dedupe.as_deref()).map(|(r, k)| (r.0, k));
            let slot = match key {
                Some((run, k)) => {
                    if let Some(&id) = known.get(&(run, k.to_string())) {
                        Slot::Existing(id)
                    } else if let Some(&p) = first.get(&(run, k)) {
                        Slot::SameAs(p)
                    } else {
                        first.insert((run, k), pos);
                        fresh.push(pos);
                        Slot::Fresh(fresh.len() - 1)
                    }
                }
                None => {
                    fresh.push(pos);
                    Slot::Fresh(fresh.len() - 1)
                }
            };
            slots.push(slot);
        }
        Ok(Dedupe { fresh, slots })
    }

    /// Records the keys of the created jobs (whose ids run from `first` in `fresh` order)
    /// and returns every position's job id and whether it was created.
    pub(super) async fn record(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        jobs: &[NewJob],
        first: i64,
    ) -> Result<Vec<Enqueued>> {
        let mut rows = Vec::new();
        for (n, &pos) in self.fresh.iter().enumerate() {
            let j = &jobs[pos];
            if let (Some(run), Some(key)) = (j.run, j.dedupe.as_deref()) {
                let fence = j.fence.as_ref();
                rows.push(serde_json::json!([
                    run.0,
                    key,
                    first + n as i64,
                    fence.map(|f| f.0.as_str()),
                    fence.map(|f| f.1 as i64),
                ]));
            }
        }
        if !rows.is_empty() {
            sqlx::query(
                "INSERT INTO job_keys (run, key, job, fence_key, fence_gen)
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                     json_extract(value, '$[2]'), json_extract(value, '$[3]'),
                     json_extract(value, '$[4]')
                 FROM json_each(?)",
            )
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        }
        let mut ids: Vec<Enqueued> = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let (id, created) = match *slot {
                Slot::Fresh(n) => (first + n as i64, true),
                Slot::Existing(id) => (id, false),
                // An earlier position: its id is already in `ids`.
                Slot::SameAs(p) => (ids[p].id.0, false),
            };
            ids.push(Enqueued {
                id: JobId(id),
                created,
            });
        }
        Ok(ids)
    }
}
