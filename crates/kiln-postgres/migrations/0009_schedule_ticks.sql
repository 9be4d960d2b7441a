-- The newest scheduled tick each library has claimed (`schedule` in the config): a tick's
-- build is started by the one worker whose claim moved it forward.

CREATE TABLE schedule_ticks (
    library text COLLATE "C" PRIMARY KEY,
    tick    bigint NOT NULL
);
