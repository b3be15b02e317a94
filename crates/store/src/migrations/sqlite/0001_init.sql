-- pgvigil store, version 1. Times are RFC 3339 UTC text: they sort as they compare.

CREATE TABLE alerts (
    id            TEXT PRIMARY KEY,
    server        TEXT NOT NULL,
    alert_type    TEXT NOT NULL,
    severity      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    -- Active | InProgress | Dismissed | Resolved; set by people, kept across detector updates.
    status        TEXT NOT NULL,
    start_time    TEXT NOT NULL,
    end_time      TEXT NOT NULL,
    source_ip     TEXT,
    principal     TEXT,
    is_simulated  INTEGER NOT NULL DEFAULT 0,
    -- Bumped when the detector escalates the alert (new variant or severity); notifications
    -- are sent once per version.
    version       INTEGER NOT NULL DEFAULT 1,
    -- The alert record as the detector last wrote it (status excluded: see the column).
    record        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX alerts_end ON alerts (end_time DESC, id);
CREATE INDEX alerts_server_end ON alerts (server, end_time DESC);
CREATE INDEX alerts_type_end ON alerts (alert_type, end_time DESC);
CREATE INDEX alerts_status_end ON alerts (status, end_time DESC);
CREATE INDEX alerts_source ON alerts (source_ip);

CREATE TABLE alert_history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, seq);

CREATE TABLE policies (
    server      TEXT PRIMARY KEY,
    -- The policy's properties as JSON, without the access key.
    properties  TEXT NOT NULL,
    -- storageAccountAccessKey: write-only through the API, never returned.
    storage_key TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE servers (
    name          TEXT PRIMARY KEY,
    events        INTEGER NOT NULL DEFAULT 0,
    parse_errors  INTEGER NOT NULL DEFAULT 0,
    first_event   TEXT,
    last_event    TEXT,
    -- End of the learning period in event time; NULL until the first login.
    learning_until TEXT,
    -- Wall-clock time of the agent's last report, and how far its log reading lags.
    reported_at   TEXT,
    lag_seconds   REAL
);

CREATE TABLE checkpoints (
    server     TEXT PRIMARY KEY,
    data       BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('reader', 'admin')),
    -- SHA-256 of the token: tokens are 256-bit random, so a plain hash is enough.
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used  TEXT
);

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    -- The alert as it was at this update, so a retry sends what was meant then.
    payload       TEXT NOT NULL,
    -- Email recipients, `;`-separated; NULL for other channels.
    recipients    TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  TEXT NOT NULL,
    last_error    TEXT,
    delivered_at  TEXT,
    UNIQUE (alert_id, version, channel)
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt);
