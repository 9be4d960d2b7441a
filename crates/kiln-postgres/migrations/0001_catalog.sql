-- The catalog: courses, versions, manifests, the sync memo, leases, generations and runs.
-- Text that is sorted or compared byte-wise uses COLLATE "C" so the order matches Rust's.

CREATE TABLE courses (
    course          text COLLATE "C" PRIMARY KEY,
    current_version text COLLATE "C"
);

CREATE TABLE versions (
    course     text COLLATE "C" NOT NULL REFERENCES courses (course),
    version    text COLLATE "C" NOT NULL,
    -- First-publish order: `versions` lists newest first by it (clocks may disagree).
    seq        bigserial NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (course, version)
);

CREATE TABLE manifest_entries (
    course   text COLLATE "C" NOT NULL,
    version  text COLLATE "C" NOT NULL,
    kind     text COLLATE "C" NOT NULL,
    name     text COLLATE "C" NOT NULL,
    chunk_id bytea NOT NULL,
    size     bigint NOT NULL,
    root     text NOT NULL,
    PRIMARY KEY (course, version, kind, name),
    FOREIGN KEY (course, version) REFERENCES versions (course, version)
);

CREATE TABLE memo (
    key      text COLLATE "C" PRIMARY KEY,
    chunk_id bytea NOT NULL,
    size     bigint NOT NULL
);
CREATE INDEX memo_chunk ON memo (chunk_id);

CREATE TABLE locks (
    name       text COLLATE "C" PRIMARY KEY,
    owner      text NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE library_generations (
    library    text COLLATE "C" PRIMARY KEY,
    generation bigint NOT NULL
);

CREATE TABLE runs (
    id          bigserial PRIMARY KEY,
    library     text COLLATE "C" NOT NULL,
    build       text NOT NULL,
    generation  bigint NOT NULL,
    grp         text,
    state       text NOT NULL,
    created_at  bigint NOT NULL,
    finished_at bigint
);
CREATE INDEX runs_library ON runs (library, id);
CREATE INDEX runs_running ON runs (library) WHERE state = 'running';
