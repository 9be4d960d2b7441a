//! `PgLedger`: the RunLedger trait on PostgreSQL, on the catalog's schema (its `runs` and
//! `library_generations` tables come from the catalog's migration, which is persisted).

use std::fmt;

use async_trait::async_trait;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState, RunStats};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::catalog::u64_of;
use crate::db::PgDb;
use crate::error::{Error, Result};

/// The runs ledger on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgLedger {
    db: PgDb,
    clock: SharedClock,
}

impl fmt::Display for PgLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgLedger({})", self.db)
    }
}

fn run_of(row: &PgRow) -> Result<Run> {
    let state: String = row.try_get("state")?;
    Ok(Run {
        id: RunId(row.try_get("id")?),
        library: LibraryName::new(row.try_get::<String, _>("library")?)
            .map_err(|e| Error::Corrupt(e.to_string().into()))?,
        build: row.try_get("build")?,
        generation: u64_of(row.try_get("generation")?, "generation")?,
        group: row.try_get("grp")?,
        state: RunState::parse(&state)
            .ok_or_else(|| Error::Corrupt(format!("run state {state:?}").into()))?,
        created_at: Timestamp(row.try_get("created_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
    })
}

const RUN_COLUMNS: &str = "id, library, build, generation, grp, state, created_at, finished_at";

impl PgLedger {
    /// The ledger on an open database (usually the catalog's: [`crate::PgCatalog::ledger`]),
    /// reading the wall clock.
    pub fn new(db: PgDb) -> Self {
        PgLedger::with_clock(db, SystemClock::shared())
    }

    /// The ledger on an open database, reading time from `clock` (run start and finish).
    pub fn with_clock(db: PgDb, clock: SharedClock) -> Self {
        PgLedger { db, clock }
    }

    async fn begin_run_inner(&self, library: &LibraryName, opts: BeginRun) -> Result<Run> {
        let now = self.clock.now().0;
        let mut tx = self.db.pool().begin().await?;
        // The upsert locks the library's row: concurrent begin_runs get distinct generations.
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO library_generations (library, generation) VALUES ($1, 1) \
             ON CONFLICT (library) DO UPDATE SET generation = library_generations.generation + 1 \
             RETURNING generation",
        )
        .bind(library.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if opts.group.is_none() {
            sqlx::query(
                "UPDATE runs SET state = 'superseded', finished_at = $2 \
                 WHERE library = $1 AND state = 'running'",
            )
            .bind(library.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(&format!(
            "INSERT INTO runs (library, build, generation, grp, state, created_at) \
             VALUES ($1, $2, $3, $4, 'running', $5) RETURNING {RUN_COLUMNS}"
        ))
        .bind(library.as_str())
        .bind(&opts.build)
        .bind(generation)
        .bind(&opts.group)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        run_of(&row)
    }

    async fn run_inner(&self, id: RunId) -> Result<Run> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(r) => run_of(&r),
            None => Err(kiln_core::Error::not_found(format!("run {id}")).into()),
        }
    }

    async fn runs_inner(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE $1::text IS NULL OR library = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(library.map(LibraryName::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(run_of).collect()
    }

    async fn finish_run_inner(&self, id: RunId, state: RunState) -> Result<bool> {
        if state == RunState::Running {
            return Err(kiln_core::Error::invalid(format!(
                "cannot finish run {id} as running: pick complete, failed or superseded"
            ))
            .into());
        }
        let done = sqlx::query(
            "UPDATE runs SET state = $2, finished_at = $3 WHERE id = $1 AND state = 'running'",
        )
        .bind(id.0)
        .bind(state.as_str())
        .bind(self.clock.now().0)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_stats_inner(&self, id: RunId, stats: &RunStats) -> Result<()> {
        let mut tx = self.db.pool().begin().await?;
        // The run's row, locked: concurrent adds to one run queue up behind it.
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM runs WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(kiln_core::Error::not_found(format!("run {id}")).into());
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT stats FROM run_stats WHERE run = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let mut total =
            RunStats::decode(stored.as_deref()).map_err(|e| Error::Corrupt(e.into()))?;
        total.merge(stats);
        sqlx::query(
            "INSERT INTO run_stats (run, stats) VALUES ($1, $2) \
             ON CONFLICT (run) DO UPDATE SET stats = excluded.stats",
        )
        .bind(id.0)
        .bind(total.encode())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_tick_inner(&self, library: &LibraryName, tick: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO schedule_ticks (library, tick) VALUES ($1, $2) \
             ON CONFLICT (library) DO UPDATE SET tick = excluded.tick \
             WHERE schedule_ticks.tick < excluded.tick",
        )
        .bind(library.as_str())
        .bind(tick.0)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn stats_inner(&self, id: RunId) -> Result<RunStats> {
        let row: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT r.id, s.stats FROM runs AS r LEFT JOIN run_stats AS s ON s.run = r.id \
             WHERE r.id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.db.pool())
        .await?;
        let Some((_, stored)) = row else {
            return Err(kiln_core::Error::not_found(format!("run {id}")).into());
        };
        RunStats::decode(stored.as_deref()).map_err(|e| Error::Corrupt(e.into()))
    }
}

#[async_trait]
impl RunLedger for PgLedger {
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> kiln_core::Result<Run> {
        Ok(self.begin_run_inner(library, opts).await?)
    }

    async fn run(&self, id: RunId) -> kiln_core::Result<Run> {
        Ok(self.run_inner(id).await?)
    }

    async fn runs(
        &self,
        library: Option<&LibraryName>,
        limit: usize,
    ) -> kiln_core::Result<Vec<Run>> {
        Ok(self.runs_inner(library, limit).await?)
    }

    async fn finish_run(&self, id: RunId, state: RunState) -> kiln_core::Result<bool> {
        Ok(self.finish_run_inner(id, state).await?)
    }

    async fn add_run_stats(&self, id: RunId, stats: &RunStats) -> kiln_core::Result<()> {
        Ok(self.add_stats_inner(id, stats).await?)
    }

    async fn run_stats(&self, id: RunId) -> kiln_core::Result<RunStats> {
        Ok(self.stats_inner(id).await?)
    }

    async fn claim_tick(&self, library: &LibraryName, tick: Timestamp) -> kiln_core::Result<bool> {
        Ok(self.claim_tick_inner(library, tick).await?)
    }
}
