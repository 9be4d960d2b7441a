-- The gc protocol: a sync claims the chunks it will reference before it relies on their
-- objects; a gc marks the chunks it will delete. Both live until expires_at unless renewed.

CREATE TABLE chunk_claims (
    owner      TEXT NOT NULL,
    chunk_id   BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (owner, chunk_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX chunk_claims_chunk ON chunk_claims (chunk_id, expires_at);

CREATE TABLE gc_marks (
    chunk_id   BLOB PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX gc_marks_owner ON gc_marks (owner);
