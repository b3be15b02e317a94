-- Version 12. The central PostgreSQL store partitions alerts and their history by the month
-- an alert was first stored (`part`, 'YYYY-MM'). SQLite has no partitions: the column is
-- kept here only so that both stores take the same statements.
ALTER TABLE alerts ADD COLUMN part TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_history ADD COLUMN part TEXT NOT NULL DEFAULT '';
