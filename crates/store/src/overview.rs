//! The console's overview, from the counts the store keeps (open alerts by severity and
//! type, alerts and logins per hour) and one covering index (the top sources).

use super::db::vals;
use super::{Result, Store};
use serde_json::Value;
use std::collections::HashMap;

/// What the console's overview shows: open alerts by severity and type, alerts started per
/// time bucket, and the sources with the most alerts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Overview {
    pub open_by_severity: Vec<(String, i64)>,
    pub open_by_type: Vec<(String, i64)>,
    /// (bucket start as a prefix of RFC 3339, e.g. `2026-11-28T13` or `2026-11-28`, count).
    pub timeline: Vec<(String, i64)>,
    /// (bucket as in `timeline`, failed logins, successful logins).
    pub logins: Vec<(String, i64, i64)>,
    /// (address, alerts, country, cloud provider).
    pub top_sources: Vec<(String, i64, Option<String>, Option<String>)>,
}

impl Store {
    /// The overview of real (not simulated) alerts and of logins since `since` (RFC 3339),
    /// bucketed by hour or by day; of one server, or of all when `server` is empty.
    pub fn overview(&self, since: &str, hourly: bool, server: &str) -> Result<Overview> {
        let width: i64 = if hourly { 13 } else { 10 };
        self.read(|c| {
            let pairs = |rows: Vec<crate::db::Row>| -> Result<Vec<(String, i64)>> {
                rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
            };
            // Open alerts are counted from the counts the triggers keep, not by reading them.
            let open_by_severity = pairs(c.query(
                "SELECT severity, CAST(sum(n) AS BIGINT) FROM alert_counts
                 WHERE status IN ('Active', 'InProgress') AND is_simulated = 0
                   AND ($1 = '' OR server = $1)
                 GROUP BY severity HAVING sum(n) > 0 ORDER BY severity",
                vals![server],
            )?)?;
            let open_by_type = pairs(c.query(
                "SELECT alert_type, CAST(sum(n) AS BIGINT) FROM alert_counts
                 WHERE status IN ('Active', 'InProgress') AND is_simulated = 0
                   AND ($1 = '' OR server = $1)
                 GROUP BY alert_type HAVING sum(n) > 0 ORDER BY 2 DESC, alert_type",
                vals![server],
            )?)?;
            // Alerts started per hour are kept by triggers (alert_hours): a month is at most
            // 720 rows a server instead of every alert's index entry. The hour `since` falls in
            // counts whole, as it does for logins.
            // The width is one of two constants: part of the SQL, not a parameter (PostgreSQL
            // would want an int4 where the driver sends int8). Sums cast back: PostgreSQL sums
            // BIGINT into NUMERIC.
            let timeline = pairs(c.query(
                &format!(
                    "SELECT substr(hour, 1, {width}), CAST(sum(n) AS BIGINT) FROM alert_hours
                     WHERE hour >= $1 AND is_simulated = 0 AND ($2 = '' OR server = $2)
                     GROUP BY substr(hour, 1, {width}) HAVING sum(n) > 0 ORDER BY 1"
                ),
                vals![&since[..since.len().min(13)], server],
            )?)?;
            let logins = c
                .query(
                    &format!(
                        "SELECT substr(hour, 1, {width}), CAST(sum(failed) AS BIGINT),
                           CAST(sum(succeeded) AS BIGINT) FROM login_hours
                         WHERE hour >= $1 AND ($2 = '' OR server = $2)
                         GROUP BY substr(hour, 1, {width}) ORDER BY 1"
                    ),
                    vals![&since[..since.len().min(13)], server],
                )?
                .iter()
                .map(|r| Ok((r.text(0)?, r.int(1)?, r.int(2)?)))
                .collect::<Result<Vec<_>>>()?;
            // The ten sources with most alerts, counted from the index alone
            // (alerts_end_cover); then one record each for where it is (reading every record
            // of a month took seconds at 100k alerts).
            let counted: Vec<(String, i64)> = if !c.is_sqlite() {
                pairs(c.query(
                    "SELECT source_ip, count(*) FROM alerts
                     WHERE end_time >= $1 AND start_time >= $1 AND is_simulated = 0
                       AND ($2 = '' OR server = $2) AND source_ip <> ''
                     GROUP BY source_ip ORDER BY 2 DESC, 1 LIMIT 10",
                    vals![since, server],
                )?)?
            } else {
                // `+` keeps SQLite, which has no statistics, from preferring the simulated
                // flag's index.
                let mut by_source: HashMap<String, i64> = HashMap::new();
                for r in c.query(
                    "SELECT source_ip FROM alerts
                     WHERE end_time >= $1 AND start_time >= $1 AND +is_simulated = 0
                       AND ($2 = '' OR server = $2) AND source_ip <> ''",
                    vals![since, server],
                )? {
                    *by_source.entry(r.text(0)?).or_default() += 1;
                }
                let mut v: Vec<(String, i64)> = by_source.into_iter().collect();
                v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                v.truncate(10);
                v
            };
            let mut top_sources = Vec::new();
            for (ip, n) in counted {
                let rec: Value = c
                    .query_opt(
                        "SELECT record FROM alerts WHERE coalesce(source_ip, '') = $1
                         ORDER BY end_time DESC LIMIT 1",
                        vals![ip.as_str()],
                    )?
                    .map(|r| r.text(0))
                    .transpose()?
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                let e = &rec["entities"];
                top_sources.push((
                    ip,
                    n,
                    e["location"]["country"].as_str().map(str::to_string),
                    e["cloud"]["provider"].as_str().map(str::to_string),
                ));
            }
            Ok(Overview {
                open_by_severity,
                open_by_type,
                timeline,
                logins,
                top_sources,
            })
        })
    }
}
