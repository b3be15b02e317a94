-- Version 9: alert suppression rules (Defender's alertsSuppressionRules): alerts an operator
-- judged benign ahead of time, stored dismissed as they are raised and notified to no one.
-- `properties` is the rule as a PUT body's properties.
CREATE TABLE suppression_rules (
    name        TEXT PRIMARY KEY,
    properties  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- A principal's alerts, newest first (the console's pivot from a role name, GET /alerts?principal=).
CREATE INDEX alerts_principal_end ON alerts (principal, end_time);

-- The console's overview: alerts started per hour or day, and the sources with most alerts,
-- over a range, counted from this index alone (an alert that started in the range ended in
-- it: the end time leads, so that it serves no time filter better than alerts_end_start).
CREATE INDEX alerts_end_cover ON alerts (end_time, start_time, is_simulated, server, source_ip);

-- The highest open alerts (a status in the severity order).
CREATE INDEX alerts_status_rank_end ON alerts
    (status, (CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END), end_time DESC, id DESC);
