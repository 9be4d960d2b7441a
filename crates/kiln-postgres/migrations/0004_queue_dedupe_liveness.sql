-- Idempotent enqueue and worker liveness for the job queue. Written to be safe to run more
-- than once (IF NOT EXISTS throughout): the queue applies it itself on first use, under an
-- advisory lock, so that it also holds on schemas migrated before this file existed.

-- One row per (run, dedupe key) a run has ever enqueued, with the job it created; kept after
-- the job is acked, forgotten when a fence drops the key's generation. The key is stored as
-- its SHA-256: a render key can be longer than a btree entry may be.
CREATE TABLE IF NOT EXISTS job_keys (
    run_id    bigint NOT NULL,
    key_hash  bytea NOT NULL,
    job_id    bigint NOT NULL,
    fence_key text COLLATE "C",
    fence_gen bigint,
    PRIMARY KEY (run_id, key_hash)
);
CREATE INDEX IF NOT EXISTS job_keys_fence ON job_keys (fence_key, fence_gen)
    WHERE fence_key IS NOT NULL;

-- Workers that take leases, and until when each counts as alive.
CREATE TABLE IF NOT EXISTS workers (
    id          text COLLATE "C" PRIMARY KEY,
    alive_until bigint NOT NULL
);

-- The worker holding a job's lease. Not indexed, so that a lease stays a HOT update; only a
-- reclaim (a crashed worker) scans for it.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner text COLLATE "C";
