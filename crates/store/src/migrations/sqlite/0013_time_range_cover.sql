-- Version 13. A time range sorted by severity (or by status) finds its page in this index
-- alone: which alerts are in the range, their severity, status and id, and only then reads
-- the records of the page (a day's 3,000 alerts were read whole and sorted, records and
-- all, to show 50). It replaces the overview's index, which it still covers.
DROP INDEX alerts_end_cover;
CREATE INDEX alerts_end_cover
    ON alerts (end_time, start_time, is_simulated, server, source_ip, severity, status, id);
