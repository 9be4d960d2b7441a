-- The job queue. A job is ready when it is not dead and `visible_at` has passed: a pending
-- job's time is its `not_before`, a leased job's its lease expiry, so an expired lease makes
-- the job ready again without a sweeper. Only `dead` is part of an index predicate, so
-- leasing (which changes `leased`, `visible_at`, `token`, `attempt`) can be a HOT update.

CREATE TABLE jobs (
    id           bigserial PRIMARY KEY,
    priority     integer NOT NULL,
    visible_at   bigint NOT NULL,
    leased       boolean NOT NULL DEFAULT false,
    dead         boolean NOT NULL DEFAULT false,
    token        bigint NOT NULL DEFAULT 0,
    attempt      integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_id       bigint,
    fence_key    text COLLATE "C",
    fence_gen    bigint,
    payload      bytea NOT NULL,
    last_error   text,
    failed_at    bigint
) WITH (fillfactor = 50);

CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE NOT dead;
CREATE INDEX jobs_fence ON jobs (fence_key, fence_gen) WHERE fence_key IS NOT NULL;
CREATE INDEX jobs_dead ON jobs (failed_at, id) WHERE dead;

CREATE TABLE fences (
    key        text COLLATE "C" PRIMARY KEY,
    generation bigint NOT NULL
);

-- Tallies are kept as deltas, one row per run per transition batch, and summed on read:
-- concurrent workers acking jobs of one run never wait on a shared counter row.
CREATE TABLE tally_deltas (
    run_id   bigint NOT NULL,
    enqueued bigint NOT NULL DEFAULT 0,
    done     bigint NOT NULL DEFAULT 0,
    failed   bigint NOT NULL DEFAULT 0,
    dead     bigint NOT NULL DEFAULT 0,
    dropped  bigint NOT NULL DEFAULT 0
);
CREATE INDEX tally_deltas_run ON tally_deltas (run_id);
