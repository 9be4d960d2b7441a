-- The job queue. state: 0 ready, 1 leased, 2 dead, 3 dropped at enqueue (deleted in the
-- same transaction). A job is ready when state < 2 and avail_at has passed: a ready job's
-- avail_at is its not-before time, a leased job's its lease expiry, so an expired lease makes
-- the job ready again without a sweeper. Acked and fenced jobs are deleted.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    state        INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    avail_at     INTEGER NOT NULL,
    token        INTEGER NOT NULL DEFAULT 0,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run          INTEGER,
    fence_key    TEXT,
    fence_gen    INTEGER,
    payload      BLOB NOT NULL,
    error        TEXT,
    failed_at    INTEGER
) STRICT;

-- Covers the lease scan: priority order, and the readiness test without a table lookup.
CREATE INDEX jobs_queue ON jobs (priority DESC, id, avail_at) WHERE state < 2;
CREATE INDEX jobs_dead ON jobs (failed_at, id) WHERE state = 2;

CREATE TABLE fences (
    key        TEXT PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL
) STRICT;

-- One row per run, updated in the transaction of each batch of transitions (SQLite has one
-- writer, so a shared counter row costs no contention).
CREATE TABLE tallies (
    run      INTEGER PRIMARY KEY NOT NULL,
    enqueued INTEGER NOT NULL DEFAULT 0,
    done     INTEGER NOT NULL DEFAULT 0,
    failed   INTEGER NOT NULL DEFAULT 0,
    dead     INTEGER NOT NULL DEFAULT 0,
    dropped  INTEGER NOT NULL DEFAULT 0
) STRICT;
