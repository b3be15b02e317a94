-- Version 11, fleets. An agent keeps its checkpoint and what it has for the central store in
-- its own file, written in one transaction; a shipper sends the queue, in order, and the
-- central store keeps the last batch it took from each agent, in the same transaction as the
-- batch, so that a crash on either side neither loses a batch nor applies one twice.

-- On an agent: batches of alerts and server reports not yet in the central store.
CREATE TABLE ship_queue (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Alerts in the batch: a batch with alerts goes at once, a report alone can wait.
    alerts     INTEGER NOT NULL,
    queued_at  INTEGER NOT NULL,
    batch      TEXT NOT NULL
);
-- This file's identity for the central store: a state directory made afresh (its queue
-- numbered from 1 again) is another agent, not one whose batches were all seen.
CREATE TABLE agent (id TEXT NOT NULL);
INSERT INTO agent (id) VALUES (lower(hex(randomblob(16))));

-- On the central store: the last batch taken from each agent.
CREATE TABLE shipped (
    agent   TEXT PRIMARY KEY,
    server  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    at      TEXT NOT NULL
);
