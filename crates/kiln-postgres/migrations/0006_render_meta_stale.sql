-- Render entries carry metadata (a JSON object, NULL when empty) and a stale mark.

ALTER TABLE render_entries
    ADD COLUMN meta text,
    ADD COLUMN stale boolean NOT NULL DEFAULT false;
