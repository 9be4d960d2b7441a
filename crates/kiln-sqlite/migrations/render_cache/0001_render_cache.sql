-- The render cache: entries by (library, key), and each library's generation floor.

CREATE TABLE entries (
    library      TEXT NOT NULL,
    key          TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    content_type TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    grp          TEXT NOT NULL,
    written_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    PRIMARY KEY (library, key)
) STRICT;

-- Pruning a producer group (mark_expiring, sweep) by generation.
CREATE INDEX entries_group ON entries (library, grp, generation);
-- purge_expired: only marked entries are in it.
CREATE INDEX entries_expiring ON entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE floors (
    library    TEXT PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL
) STRICT;
