//! The central store's alerts by month. On PostgreSQL, alerts and their history are
//! partitioned by the month an alert was first stored (migration 12); retention drops a
//! month whose alerts have all expired under their servers' policies, instead of deleting
//! them row by row, which on a fleet's store would write every deleted row to the WAL again.
//! Alerts of a month that cannot go whole yet are deleted one by one, as on SQLite.

use super::{db::Db, Result, Store};
use std::collections::HashMap;

/// A partition's name as the migration's `pgvigil_partition` makes it: `alerts_pYYYY_MM`.
/// Only names that match are ever put into a statement.
fn month_of(relname: &str) -> Option<String> {
    let m = relname.strip_prefix("alerts_p")?;
    let b = m.as_bytes();
    let ok = b.len() == 7
        && b[4] == b'_'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit());
    ok.then(|| m.replace('_', "-"))
}

/// Each server's latest alert end in partition `table`: one index probe per server.
fn last_ends(tx: &mut dyn Db, table: &str) -> Result<Vec<(String, String)>> {
    let sql = format!(
        "WITH RECURSIVE s(server, last) AS (
             (SELECT server, end_time FROM \"{table}\" ORDER BY server, end_time DESC LIMIT 1)
             UNION ALL
             SELECT n.server, n.end_time FROM s CROSS JOIN LATERAL
                 (SELECT server, end_time FROM \"{table}\" WHERE server > s.server
                  ORDER BY server, end_time DESC LIMIT 1) n
         )
         SELECT server, last FROM s"
    );
    tx.query(&sql, &[])?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect()
}

/// Whether every alert in the partition ended before its server's cutoff (a server without
/// one keeps its alerts).
fn expired(last: &[(String, String)], cutoffs: &HashMap<String, String>) -> bool {
    last.iter()
        .all(|(server, end)| cutoffs.get(server).is_some_and(|c| end < c))
}

impl Store {
    /// Drops the past months whose alerts have all expired; returns the alerts dropped.
    pub(super) fn drop_expired_months(
        &self,
        cutoffs: &HashMap<String, String>,
        now_ms: i64,
    ) -> Result<usize> {
        let this_month = model::event::format_time(now_ms)[..7].to_string();
        // A month detached but not yet dropped (the process stopped in between) first.
        let mut dropped = 0;
        let detached = self.read(|c| {
            c.query(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition
                   AND relname LIKE 'alerts\\_p%'",
                &[],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>>>()
        })?;
        for table in detached.iter().filter(|t| month_of(t).is_some()) {
            dropped += self.write(|tx| drop_detached(tx, table))?;
        }
        let parts = self.read(|c| {
            c.query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'alerts'::regclass ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>>>()
        })?;
        for table in parts {
            let Some(month) = month_of(&table) else {
                continue;
            };
            if month >= this_month || !expired(&self.read(|c| last_ends(c, &table))?, cutoffs) {
                continue;
            }
            // Taken out of `alerts` under a short exclusive lock, looked at again under it
            // (an agent may have just extended one of its alerts), then counted out and
            // dropped with no lock on `alerts` at all.
            let detached = self.write(|tx| {
                tx.exec("SET LOCAL lock_timeout = '5s'", &[])?;
                tx.exec("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE", &[])?;
                if !expired(&last_ends(tx, &table)?, cutoffs) {
                    return Ok(false);
                }
                let suffix = &table["alerts_p".len()..];
                tx.exec(&format!("DROP TABLE \"alert_history_p{suffix}\""), &[])?;
                tx.exec(
                    &format!("ALTER TABLE alerts DETACH PARTITION \"{table}\""),
                    &[],
                )?;
                Ok(true)
            });
            match detached {
                Ok(true) => dropped += self.write(|tx| drop_detached(tx, &table))?,
                Ok(false) => {}
                // Busy (a long read holds `alerts`): the next round tries again.
                Err(e) => tracing::warn!(month, error = %e, "retention could not drop a month"),
            }
        }
        Ok(dropped)
    }
}

/// Takes a detached month's alerts out of the kept counts and drops it; returns its alerts.
fn drop_detached(tx: &mut dyn Db, table: &str) -> Result<usize> {
    // Dropping a table fires no row trigger: the counts the triggers keep are mended here.
    tx.exec(
        &format!(
            "UPDATE alert_counts c SET n = c.n - d.n FROM
               (SELECT server, alert_type, severity, status, is_simulated, count(*) AS n
                FROM \"{table}\" GROUP BY 1, 2, 3, 4, 5) d
             WHERE c.server = d.server AND c.alert_type = d.alert_type
               AND c.severity = d.severity AND c.status = d.status
               AND c.is_simulated = d.is_simulated"
        ),
        &[],
    )?;
    tx.exec(
        &format!(
            "UPDATE alert_hours h SET n = h.n - d.n FROM
               (SELECT server, substr(start_time, 1, 13) AS hour, is_simulated, count(*) AS n
                FROM \"{table}\" GROUP BY 1, 2, 3) d
             WHERE h.hour = d.hour AND h.server = d.server AND h.is_simulated = d.is_simulated"
        ),
        &[],
    )?;
    let n = tx
        .query_opt(&format!("SELECT count(*) FROM \"{table}\""), &[])?
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0);
    tx.exec(&format!("DROP TABLE \"{table}\""), &[])?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_names_become_months() {
        assert_eq!(month_of("alerts_p2026_11").as_deref(), Some("2026-11"));
        for bad in [
            "alerts_p2026_1",
            "alerts_p2026-11",
            "alerts_p2026_11\"; DROP",
            "alerts",
        ] {
            assert_eq!(month_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_month_goes_only_when_every_server_in_it_has_expired() {
        let cut: HashMap<String, String> = [("a", "2026-10-01"), ("b", "2026-09-01")]
            .iter()
            .map(|(s, c)| (s.to_string(), c.to_string()))
            .collect();
        let last = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(s, e)| (s.to_string(), e.to_string()))
                .collect()
        };
        assert!(expired(
            &last(&[("a", "2026-09-30"), ("b", "2026-08-31")]),
            &cut
        ));
        assert!(!expired(
            &last(&[("a", "2026-09-30"), ("b", "2026-09-02")]),
            &cut
        ));
        // A server that keeps its alerts keeps its month.
        assert!(!expired(&last(&[("c", "2020-01-01")]), &cut));
        assert!(expired(&[], &cut));
    }
}
