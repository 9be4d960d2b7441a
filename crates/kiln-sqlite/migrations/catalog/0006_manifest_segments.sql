-- Manifests as segments shared between versions (manifest_codec.rs): a version's
-- `manifest` holds a list of segment ids; each segment is stored once, by its BLAKE3.
-- Segments are written only with the version that first names them, and versions are
-- never deleted, so every row here is referenced.
CREATE TABLE manifest_segments (
    id   BLOB PRIMARY KEY NOT NULL,
    body BLOB NOT NULL
) STRICT;
