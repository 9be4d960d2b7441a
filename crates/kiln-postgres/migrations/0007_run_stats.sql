-- What each run did beyond its job counts (render latency, failures by reason, pruned), as
-- the JSON of kiln_core::ledger::RunStats; added to by every worker.

CREATE TABLE run_stats (
    run   bigint PRIMARY KEY REFERENCES runs (id),
    stats text NOT NULL
);
