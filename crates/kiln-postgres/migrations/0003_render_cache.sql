-- The render cache: entries by (library, key), and each library's generation floor.

CREATE TABLE render_entries (
    library      text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    bytes        bytea NOT NULL,
    content_type text NOT NULL,
    generation   bigint NOT NULL,
    grp          text COLLATE "C" NOT NULL,
    written_at   bigint NOT NULL,
    expires_at   bigint,
    PRIMARY KEY (library, key)
);
CREATE INDEX render_entries_scope ON render_entries (library, grp, generation);
CREATE INDEX render_entries_expiry ON render_entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE render_floors (
    library    text COLLATE "C" PRIMARY KEY,
    generation bigint NOT NULL
);
