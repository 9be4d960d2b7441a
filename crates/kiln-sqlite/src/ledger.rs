//! `SqliteLedger`: the [`RunLedger`] on SQLite, in the catalog's file (its `runs` table is
//! created by the catalog's migrations, which stay one history since they are persisted).

use std::fmt;

use async_trait::async_trait;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState, RunStats};
use kiln_core::time::{SharedClock, Timestamp};
use kiln_core::{Error, Result};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::db::{Db, corrupt, err};

/// The runs ledger in a catalog's SQLite file; made by [`crate::SqliteCatalog::ledger`],
/// sharing its writer connection, read pool and clock (run start and finish times).
#[derive(Debug, Clone)]
pub struct SqliteLedger {
    db: Db,
    clock: SharedClock,
}

impl SqliteLedger {
    pub(crate) fn new(db: Db, clock: SharedClock) -> Self {
        SqliteLedger { db, clock }
    }
}

impl fmt::Display for SqliteLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sqlite({})", self.db.label)
    }
}

const RUN_COLUMNS: &str = "id, library, build, generation, grp, state, created_at, finished_at";

fn run_from_row(row: &SqliteRow) -> Result<Run> {
    let library: String = row.try_get("library").map_err(err)?;
    let state: String = row.try_get("state").map_err(err)?;
    Ok(Run {
        id: RunId(row.try_get("id").map_err(err)?),
        library: LibraryName::new(&library).map_err(|_| corrupt("library", &library))?,
        build: row.try_get("build").map_err(err)?,
        generation: row.try_get::<i64, _>("generation").map_err(err)? as u64,
        group: row.try_get("grp").map_err(err)?,
        state: RunState::parse(&state).ok_or_else(|| corrupt("run state", &state))?,
        created_at: Timestamp(row.try_get("created_at").map_err(err)?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")
            .map_err(err)?
            .map(Timestamp),
    })
}

#[async_trait]
impl RunLedger for SqliteLedger {
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> Result<Run> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO runs (library, build, generation, grp, state, created_at)
             SELECT ?1, ?2, coalesce(max(generation), 0) + 1, ?3, 'running', ?4
             FROM runs WHERE library = ?1
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(library.as_str())
        .bind(&opts.build)
        .bind(&opts.group)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let run = run_from_row(&row)?;
        if run.group.is_none() {
            sqlx::query(
                "UPDATE runs SET state = 'superseded', finished_at = ?
                 WHERE library = ? AND state = 'running' AND id <> ?",
            )
            .bind(now.0)
            .bind(library.as_str())
            .bind(run.id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(run)
    }

    async fn run(&self, id: RunId) -> Result<Run> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.db.reader)
            .await
            .map_err(err)?;
        match row {
            Some(r) => run_from_row(&r),
            None => Err(Error::not_found(format!("run {id}"))),
        }
    }

    async fn runs(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR library = ?1
             ORDER BY id DESC LIMIT ?2"
        ))
        .bind(library.map(|l| l.as_str()))
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.db.reader)
        .await
        .map_err(err)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn finish_run(&self, id: RunId, state: RunState) -> Result<bool> {
        if state == RunState::Running {
            return Err(Error::invalid(format!(
                "cannot finish run {id} as \"running\": choose complete, failed or superseded"
            )));
        }
        let done = sqlx::query(
            "UPDATE runs SET state = ?, finished_at = ? WHERE id = ? AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(self.clock.now().0)
        .bind(id.0)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_run_stats(&self, id: RunId, stats: &RunStats) -> Result<()> {
        // Read, merge and write in one transaction on the one writer: adds never interleave.
        let mut tx = self.db.begin().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM runs WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        if known.is_none() {
            return Err(Error::not_found(format!("run {id}")));
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT stats FROM run_stats WHERE run = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
        let mut total =
            RunStats::decode(stored.as_deref()).map_err(|e| corrupt("run stats", &e))?;
        total.merge(stats);
        sqlx::query(
            "INSERT INTO run_stats (run, stats) VALUES (?, ?)
             ON CONFLICT (run) DO UPDATE SET stats = excluded.stats",
        )
        .bind(id.0)
        .bind(total.encode())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn run_stats(&self, id: RunId) -> Result<RunStats> {
        let row: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT r.id, s.stats FROM runs AS r LEFT JOIN run_stats AS s ON s.run = r.id
             WHERE r.id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(err)?;
        let Some((_, stored)) = row else {
            return Err(Error::not_found(format!("run {id}")));
        };
        RunStats::decode(stored.as_deref()).map_err(|e| corrupt("run stats", &e))
    }

    async fn claim_tick(&self, library: &LibraryName, tick: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO schedule_ticks (library, tick) VALUES (?, ?)
             ON CONFLICT (library) DO UPDATE SET tick = excluded.tick
             WHERE schedule_ticks.tick < excluded.tick",
        )
        .bind(library.as_str())
        .bind(tick.0)
        .execute(&self.db.writer)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }
}
