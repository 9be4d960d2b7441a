-- Manifests as segments shared between versions (kiln_core::manifest_codec): a version
-- published from now on lists its segment ids in `versions.segments`; each segment is
-- stored once, by its BLAKE3, with one `segment_chunks` row per chunk (what gc and
-- referenced_chunks look up). Versions published before keep their `manifest_entries`
-- rows. Segments are written only with the version that first names them, and versions
-- are never deleted, so every segment is referenced.

ALTER TABLE versions ADD COLUMN segments bytea;

CREATE TABLE manifest_segments (
    id   bytea PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE segment_chunks (
    segment  bytea NOT NULL REFERENCES manifest_segments (id),
    chunk_id bytea NOT NULL
);
CREATE INDEX segment_chunks_chunk ON segment_chunks (chunk_id);
