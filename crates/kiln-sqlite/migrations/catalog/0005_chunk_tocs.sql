-- Chunks' tables of contents (kiln_core::toc), by chunk id, in Toc::encode's form: a
-- function of the chunk's bytes, written once and shared by every version that holds it.

CREATE TABLE chunk_tocs (
    chunk_id BLOB PRIMARY KEY NOT NULL,
    toc      BLOB NOT NULL
) STRICT, WITHOUT ROWID;
