-- Idempotent enqueue: one row per (run, dedupe key) the run has ever enqueued, with the id
-- of the job it created. Kept after the job is acked, so a redelivered producer creates
-- nothing twice; forgotten when a fence drops the key's generation.
CREATE TABLE job_keys (
    run       INTEGER NOT NULL,
    key       TEXT NOT NULL,
    job       INTEGER NOT NULL,
    fence_key TEXT,
    fence_gen INTEGER,
    PRIMARY KEY (run, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX job_keys_fence ON job_keys (fence_key, fence_gen) WHERE fence_key IS NOT NULL;

-- Worker liveness: a lease names the worker that holds it (`jobs.owner`); a worker whose
-- `alive_until` has passed is reclaimed by the next heartbeat of any worker. `owner` is not
-- indexed: a reclaim (a crashed worker) is rare, a lease is not.
CREATE TABLE workers (
    id          TEXT PRIMARY KEY NOT NULL,
    alive_until INTEGER NOT NULL
) STRICT;
ALTER TABLE jobs ADD COLUMN owner TEXT;
