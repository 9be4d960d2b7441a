-- The gc protocol: a sync claims the chunks it will reference before it relies on their
-- objects; a gc marks the chunks it will delete. Both live until expires_at unless renewed.
-- claim_chunks and gc_mark serialise on an advisory lock (shared / exclusive).

CREATE TABLE chunk_claims (
    owner      text NOT NULL,
    chunk_id   bytea NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (owner, chunk_id)
);
CREATE INDEX chunk_claims_chunk ON chunk_claims (chunk_id, expires_at);

CREATE TABLE gc_marks (
    chunk_id   bytea PRIMARY KEY,
    owner      text NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX gc_marks_owner ON gc_marks (owner);

-- gc_mark asks whether any version references a chunk.
CREATE INDEX manifest_entries_chunk ON manifest_entries (chunk_id);
