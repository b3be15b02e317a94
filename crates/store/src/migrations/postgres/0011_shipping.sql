-- Version 11, fleets: see the SQLite migration of the same number. Agents no longer write
-- their checkpoints here (each keeps its own); the table stays for a one-time resume by an
-- agent upgraded from a version that did.
CREATE TABLE ship_queue (
    seq        BIGSERIAL PRIMARY KEY,
    alerts     BIGINT NOT NULL,
    queued_at  BIGINT NOT NULL,
    batch      TEXT NOT NULL
);
CREATE TABLE agent (id TEXT NOT NULL);
INSERT INTO agent (id) VALUES (md5(random()::text || clock_timestamp()::text));

CREATE TABLE shipped (
    agent   TEXT PRIMARY KEY,
    server  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    at      TEXT NOT NULL
);
