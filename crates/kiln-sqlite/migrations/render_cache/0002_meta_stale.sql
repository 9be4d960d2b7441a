-- Entries carry metadata (a JSON object, NULL when empty) and a stale mark.

ALTER TABLE entries ADD COLUMN meta TEXT;
ALTER TABLE entries ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
