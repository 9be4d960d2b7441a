-- Libraries whose jobs leases skip (kiln pause): a job's library is its fence key up to '@'.

CREATE TABLE paused (
    library TEXT PRIMARY KEY NOT NULL
) STRICT;
