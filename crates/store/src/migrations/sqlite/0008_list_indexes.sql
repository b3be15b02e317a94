-- Version 8: the indexes GET /alerts, /servers and /metrics need at 100k alerts.
--
-- orderBy=severity: High first, then newest. The expression is the store's SEVERITY_RANK as
-- the queries write it, so the order comes from the index instead of sorting every alert.
CREATE INDEX alerts_rank_end ON alerts
    ((CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END), end_time DESC, id DESC);
CREATE INDEX alerts_server_rank_end ON alerts
    (server, (CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END), end_time DESC, id DESC);
-- severity=…, newest first.
CREATE INDEX alerts_severity_end ON alerts (severity, end_time DESC, id DESC);
-- from/to: the start time beside the end time, so alerts outside the range are passed over in
-- the index without reading their records.
CREATE INDEX alerts_end_start ON alerts (end_time DESC, id DESC, start_time);
CREATE INDEX alerts_status_end_start ON alerts (status, end_time DESC, id DESC, start_time);
DROP INDEX alerts_status_end;
DROP INDEX alerts_end;
-- /servers and /metrics count alerts by server and status, and by type and severity: from
-- these indexes alone, not from every record.
CREATE INDEX alerts_open_server ON alerts (status, is_simulated, server);
CREATE INDEX alerts_type_severity ON alerts (is_simulated, alert_type, severity);

-- Alerts counted by what /servers and /metrics ask (server, type, severity, status), kept by
-- triggers as alerts come, change status and go: counting 100k alerts at each scrape, even from
-- an index, took tens of milliseconds.
CREATE TABLE alert_counts (
    server        TEXT NOT NULL,
    alert_type    TEXT NOT NULL,
    severity      TEXT NOT NULL,
    status        TEXT NOT NULL,
    is_simulated  INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (server, alert_type, severity, status, is_simulated)
);
INSERT INTO alert_counts
    SELECT server, alert_type, severity, status, is_simulated, count(*) FROM alerts
    GROUP BY server, alert_type, severity, status, is_simulated;
CREATE TRIGGER alert_counts_insert AFTER INSERT ON alerts BEGIN
    INSERT INTO alert_counts VALUES (NEW.server, NEW.alert_type, NEW.severity, NEW.status, NEW.is_simulated, 1)
        ON CONFLICT (server, alert_type, severity, status, is_simulated) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alert_counts_delete AFTER DELETE ON alerts BEGIN
    UPDATE alert_counts SET n = n - 1
        WHERE server = OLD.server AND alert_type = OLD.alert_type AND severity = OLD.severity
          AND status = OLD.status AND is_simulated = OLD.is_simulated;
END;
CREATE TRIGGER alert_counts_update AFTER UPDATE OF server, alert_type, severity, status, is_simulated ON alerts BEGIN
    UPDATE alert_counts SET n = n - 1
        WHERE server = OLD.server AND alert_type = OLD.alert_type AND severity = OLD.severity
          AND status = OLD.status AND is_simulated = OLD.is_simulated;
    INSERT INTO alert_counts VALUES (NEW.server, NEW.alert_type, NEW.severity, NEW.status, NEW.is_simulated, 1)
        ON CONFLICT (server, alert_type, severity, status, is_simulated) DO UPDATE SET n = n + 1;
END;
