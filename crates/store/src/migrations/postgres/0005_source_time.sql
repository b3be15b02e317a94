-- Version 5: alerts by source address and end time. Cross-server correlation looks up one
-- source's alerts of the last hour; with the address alone, every alert it ever had was read.
CREATE INDEX alerts_source_end ON alerts (source_ip, end_time);
DROP INDEX alerts_source;
