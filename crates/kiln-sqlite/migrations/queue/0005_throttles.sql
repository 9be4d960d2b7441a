-- Throttles (kiln_core::throttle): a job's throttle key, never changed after enqueue, and a
-- token bucket per rate-limited key. The lease scan is split: unthrottled jobs in priority
-- order, and each key's jobs in priority order, so that a key no lease names (or one at its
-- limit) is never walked past. A key's valid leases are counted on their own index.

ALTER TABLE jobs ADD COLUMN throttle TEXT;
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (priority DESC, id, avail_at) WHERE state < 2 AND throttle IS NULL;
CREATE INDEX jobs_throttled ON jobs (throttle, priority DESC, id, avail_at)
    WHERE state < 2 AND throttle IS NOT NULL;
CREATE INDEX jobs_throttle_held ON jobs (throttle, avail_at) WHERE state = 1 AND throttle IS NOT NULL;

CREATE TABLE throttle_buckets (
    key    TEXT PRIMARY KEY NOT NULL,
    tokens REAL NOT NULL,
    at     INTEGER NOT NULL
) STRICT;
