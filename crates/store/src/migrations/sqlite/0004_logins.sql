-- Version 4: logins per server and hour (event time), for the console's timeline. The hour is
-- the first 13 characters of an RFC 3339 time (`2026-11-28T21`): it sorts, and a day is its
-- first 10.
CREATE TABLE login_hours (
    server    TEXT NOT NULL,
    hour      TEXT NOT NULL,
    failed    INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server, hour)
);
