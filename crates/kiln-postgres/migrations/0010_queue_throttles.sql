-- Throttles (kiln_core::throttle). A job's throttle key is set at enqueue and never changed,
-- so the split lease indexes below keep leasing a HOT update. A limited key's row in
-- `throttle_buckets` is locked by every lease that takes its jobs (serialising them), and
-- holds its token bucket (`tokens` NULL: never drawn, full). `throttle_slots` lists the
-- leases a concurrency-limited key handed out; a slot counts while its job still holds that
-- lease, and is deleted by the next lease of the key once it does not.

ALTER TABLE jobs ADD COLUMN throttle text COLLATE "C";
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE NOT dead AND throttle IS NULL;
CREATE INDEX jobs_throttled ON jobs (throttle, priority DESC, id) WHERE NOT dead AND throttle IS NOT NULL;

CREATE TABLE throttle_buckets (
    key    text COLLATE "C" PRIMARY KEY,
    tokens float8,
    at     bigint NOT NULL
);

CREATE TABLE throttle_slots (
    key   text COLLATE "C" NOT NULL,
    job   bigint NOT NULL,
    token bigint NOT NULL,
    PRIMARY KEY (key, job)
);
