-- Lease tokens: one number per lease call, shared by the jobs it delivers, so that acks of
-- a batch match by (ids, one token) rather than by per-job pairs.
CREATE TABLE lease_seq (
    n INTEGER NOT NULL
) STRICT;
INSERT INTO lease_seq (n) SELECT coalesce(max(token), 0) FROM jobs;
