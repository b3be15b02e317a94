-- Version 9: alert suppression rules (Defender's alertsSuppressionRules): alerts an operator
-- judged benign ahead of time, stored dismissed as they are raised and notified to no one.
-- `properties` is the rule as a PUT body's properties.
CREATE TABLE suppression_rules (
    name        TEXT PRIMARY KEY,
    properties  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
