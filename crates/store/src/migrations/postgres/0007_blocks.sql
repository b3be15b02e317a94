-- Version 7: the proxy's blocks, so that a restart does not let a blocked source in again
-- and every proxy of a fleet refuses it; and the alerts an operator dismissed or resolved,
-- which block no more.
CREATE TABLE blocks (
    source_ip   TEXT PRIMARY KEY,
    since       TEXT NOT NULL,
    until       TEXT NOT NULL,
    alert_type  TEXT NOT NULL,
    alert_id    TEXT NOT NULL,
    causes      TEXT NOT NULL
);
CREATE INDEX blocks_until ON blocks (until);
CREATE TABLE lifted_alerts (
    alert_id    TEXT PRIMARY KEY,
    at          TEXT NOT NULL
);
