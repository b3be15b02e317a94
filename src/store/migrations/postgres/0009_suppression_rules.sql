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
