-- Version 12. Alerts and their history are partitioned by the month an alert was first
-- stored (`part`, 'YYYY-MM', fixed for the alert's life), so that retention drops a month
-- whose alerts have all expired instead of deleting them row by row. The month an alert was
-- stored, not its start: an alert's start can move earlier as evidence merges, and a row
-- never moves between partitions.
ALTER TABLE alerts RENAME TO alerts_unpartitioned;
ALTER TABLE alert_history RENAME TO alert_history_unpartitioned;

CREATE TABLE alerts (
    id            TEXT COLLATE "C" NOT NULL,
    part          TEXT COLLATE "C" NOT NULL,
    server        TEXT NOT NULL,
    alert_type    TEXT NOT NULL,
    severity      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    status        TEXT NOT NULL,
    start_time    TEXT COLLATE "C" NOT NULL,
    end_time      TEXT COLLATE "C" NOT NULL,
    source_ip     TEXT,
    principal     TEXT,
    is_simulated  BIGINT NOT NULL DEFAULT 0,
    version       BIGINT NOT NULL DEFAULT 1,
    record        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    -- A partition key must be in every unique key. An id is still one alert: the writer
    -- looks it up before inserting, and an alert's month is the one it was stored in.
    CONSTRAINT alerts_id_part PRIMARY KEY (id, part)
) PARTITION BY LIST (part);

-- Identity columns are not allowed on partitioned tables before PostgreSQL 17.
CREATE SEQUENCE alert_history_seqs;
CREATE TABLE alert_history (
    seq         BIGINT NOT NULL DEFAULT nextval('alert_history_seqs'),
    alert_id    TEXT NOT NULL,
    part        TEXT COLLATE "C" NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    CONSTRAINT alert_history_seq_part PRIMARY KEY (seq, part)
) PARTITION BY LIST (part);
ALTER SEQUENCE alert_history_seqs OWNED BY alert_history.seq;

-- The partitions of a month, made when first needed. Agents reaching a new month together:
-- the lock lets one make them and the others find them.
CREATE FUNCTION pgvigil_partition(month TEXT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    suffix TEXT := replace(month, '-', '_');
BEGIN
    IF month !~ '^[0-9]{4}-[0-9]{2}$' THEN
        RAISE EXCEPTION 'pgvigil_partition: % is not a month (YYYY-MM)', month;
    END IF;
    PERFORM pg_advisory_xact_lock(7417701);
    IF to_regclass('alerts_p' || suffix) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF alerts FOR VALUES IN (%L)',
                   'alerts_p' || suffix, month);
    EXECUTE format('CREATE TABLE %I PARTITION OF alert_history FOR VALUES IN (%L)',
                   'alert_history_p' || suffix, month);
    RETURN true;
END
$$;

SELECT pgvigil_partition(m) FROM (
    SELECT DISTINCT substr(created_at, 1, 7) AS m FROM alerts_unpartitioned
    UNION SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')
) months;

-- Copied before the triggers exist: the counts kept in alert_counts and alert_hours already
-- hold these alerts.
INSERT INTO alerts
    SELECT id, substr(created_at, 1, 7), server, alert_type, severity, display_name, status,
           start_time, end_time, source_ip, principal, is_simulated, version, record,
           created_at, updated_at
    FROM alerts_unpartitioned;
INSERT INTO alert_history (seq, alert_id, part, at, actor, action, from_status, to_status)
    SELECT h.seq, h.alert_id, a.part, h.at, h.actor, h.action, h.from_status, h.to_status
    FROM alert_history_unpartitioned h JOIN alerts a ON a.id = h.alert_id;
SELECT setval('alert_history_seqs', coalesce((SELECT max(seq) FROM alert_history), 0) + 1, false);

DROP TABLE alert_history_unpartitioned;
DROP TABLE alerts_unpartitioned;

ALTER TABLE alert_history ADD CONSTRAINT alert_history_alert_fk
    FOREIGN KEY (alert_id, part) REFERENCES alerts (id, part) ON DELETE CASCADE;
CREATE INDEX alert_history_alert ON alert_history (alert_id, seq);

CREATE INDEX alerts_server_end ON alerts (server, end_time DESC);
CREATE INDEX alerts_type_end ON alerts (alert_type, end_time DESC);
CREATE INDEX alerts_rank_end ON alerts
    ((CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END), end_time DESC, id DESC);
CREATE INDEX alerts_server_rank_end ON alerts
    (server, (CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END), end_time DESC, id DESC);
CREATE INDEX alerts_severity_end ON alerts (severity, end_time DESC, id DESC);
CREATE INDEX alerts_end_start ON alerts (end_time DESC, id DESC, start_time);
CREATE INDEX alerts_status_end_start ON alerts (status, end_time DESC, id DESC, start_time);
CREATE INDEX alerts_open_server ON alerts (status, is_simulated, server);
CREATE INDEX alerts_type_severity ON alerts (is_simulated, alert_type, severity);
CREATE INDEX alerts_end_cover ON alerts (end_time, start_time, is_simulated, server, source_ip);
CREATE INDEX alerts_status_rank_end ON alerts
    (status, (CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END), end_time DESC, id DESC);
CREATE INDEX alerts_source_sort ON alerts (coalesce(source_ip, ''), end_time DESC, id DESC)
    INCLUDE (source_ip);
CREATE INDEX alerts_principal_sort ON alerts (coalesce(principal, ''), end_time DESC, id DESC)
    INCLUDE (principal);

CREATE TRIGGER alert_counts_track
    AFTER INSERT OR UPDATE OF server, alert_type, severity, status, is_simulated ON alerts
    FOR EACH ROW EXECUTE FUNCTION alert_counts_track();
CREATE TRIGGER alert_hours_track
    AFTER INSERT OR UPDATE OF server, start_time, is_simulated ON alerts
    FOR EACH ROW EXECUTE FUNCTION alert_hours_track();

-- Deletes are counted once per statement: retention deleting a month's alerts row by row
-- updated the same few count rows once per alert in one transaction, each update walking
-- every version the ones before it left (100,000 alerts took minutes).
CREATE FUNCTION alerts_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE alert_counts c SET n = c.n - d.n FROM
        (SELECT server, alert_type, severity, status, is_simulated, count(*) AS n
         FROM gone GROUP BY 1, 2, 3, 4, 5) d
     WHERE c.server = d.server AND c.alert_type = d.alert_type AND c.severity = d.severity
       AND c.status = d.status AND c.is_simulated = d.is_simulated;
    UPDATE alert_hours h SET n = h.n - d.n FROM
        (SELECT server, substr(start_time, 1, 13) AS hour, is_simulated, count(*) AS n
         FROM gone GROUP BY 1, 2, 3) d
     WHERE h.hour = d.hour AND h.server = d.server AND h.is_simulated = d.is_simulated;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_forget AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION alerts_forget();

-- Fleet alerts are worked out after the batches that feed them have committed, once per
-- source for however many batches came meanwhile, so that agents under one campaign do not
-- queue behind each other. A batch notes its sources here, one row per transaction, so that
-- writers never wait on each other's rows.
CREATE TABLE fleet_pending (
    source    TEXT NOT NULL,
    xid       BIGINT NOT NULL,
    alert_id  TEXT NOT NULL,
    end_time  TEXT COLLATE "C" NOT NULL,
    at        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source, xid, alert_id)
);
