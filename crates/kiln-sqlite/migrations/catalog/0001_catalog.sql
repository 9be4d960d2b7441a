-- The catalog: courses, versions with their manifests, the sync memo, locks and runs.

CREATE TABLE courses (
    course          TEXT PRIMARY KEY NOT NULL,
    current_version TEXT
) STRICT;

-- seq orders versions by first publication (newest first = seq DESC).
CREATE TABLE versions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    course     TEXT NOT NULL REFERENCES courses (course),
    version    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- the manifest in kiln-sqlite's compact binary form (manifest_codec.rs)
    manifest   BLOB NOT NULL,
    UNIQUE (course, version)
) STRICT;

CREATE TABLE memo (
    key      TEXT PRIMARY KEY NOT NULL,
    chunk_id BLOB NOT NULL,
    size     INTEGER NOT NULL
) STRICT;
CREATE INDEX memo_chunk ON memo (chunk_id);

CREATE TABLE locks (
    name       TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    library     TEXT NOT NULL,
    build       TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    grp         TEXT,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    UNIQUE (library, generation)
) STRICT;
CREATE INDEX runs_running ON runs (library, state);
