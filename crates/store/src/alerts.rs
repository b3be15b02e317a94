//! Alerts in the store: ingesting detector output (with the policy applied and notifications
//! queued), listing with filters and keyset paging, and status changes made by people.

use super::db::{vals, Db, Val};
use super::ingest::history;
use super::{now_utc, Result, Store, StoreError};
use model::alert::Alert;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// Alert status, as Azure names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    InProgress,
    Dismissed,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::InProgress,
        Status::Dismissed,
        Status::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "Active",
            Status::InProgress => "InProgress",
            Status::Dismissed => "Dismissed",
            Status::Resolved => "Resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
    }

    /// The status an action (`POST /alerts/{id}/<action>`) leads to.
    pub fn of_action(action: &str) -> Option<Status> {
        match action {
            "dismiss" => Some(Status::Dismissed),
            "activate" => Some(Status::Active),
            "inProgress" => Some(Status::InProgress),
            "resolve" => Some(Status::Resolved),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    /// The alert's place in an order other than newest first.
    pub sort: Option<SortKey>,
    pub end: String,
    pub id: String,
}

/// An alert's value in the order a list is sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// Its severity's rank (High 0, Medium 1, Low 2).
    Rank(i64),
    /// Its server, type, source or principal (an alert without one sorts as '').
    Text(String),
}

/// The order of a list of alerts. Every order ends with newest first, then the id, so
/// that a page position is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Newest,
    /// Highest severity first.
    Severity,
    /// By one column, A to Z.
    Server,
    AlertType,
    SourceIp,
    Principal,
}

impl Order {
    /// The API's name for it (`orderBy`).
    pub const ALL: [(&'static str, Order); 6] = [
        ("endTime", Order::Newest),
        ("severity", Order::Severity),
        ("server", Order::Server),
        ("alertType", Order::AlertType),
        ("sourceIp", Order::SourceIp),
        ("principal", Order::Principal),
    ];

    pub fn parse(s: &str) -> Option<Order> {
        Order::ALL.iter().find(|(n, _)| *n == s).map(|(_, o)| *o)
    }

    pub fn name(self) -> &'static str {
        Order::ALL
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("endTime", |(n, _)| n)
    }

    /// The column a text order sorts by, as SQL.
    fn column(self) -> Option<&'static str> {
        match self {
            Order::Server => Some("server"),
            Order::AlertType => Some("alert_type"),
            Order::SourceIp => Some("coalesce(source_ip, '')"),
            Order::Principal => Some("coalesce(principal, '')"),
            Order::Newest | Order::Severity => None,
        }
    }
}

/// The severity's rank in SQL, for ordering by severity (High first).
const SEVERITY_RANK: &str = "(CASE severity WHEN 'High' THEN 0 WHEN 'Medium' THEN 1 ELSE 2 END)";

/// Filters and paging of `GET /alerts`.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub server: Option<String>,
    pub alert_type: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub source_ip: Option<String>,
    pub principal: Option<String>,
    /// Alerts active at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Alerts that started at or before this time.
    pub to: Option<String>,
    pub simulated: Option<bool>,
    /// Page size.
    pub top: usize,
    pub order: Order,
    /// Continue after this alert, the previous page's last.
    pub after: Option<PageKey>,
}

impl Store {
    pub fn load_checkpoint(&self, server: &str) -> Result<Option<Vec<u8>>> {
        self.read(|c| {
            c.query_opt(
                "SELECT data FROM checkpoints WHERE server = $1",
                vals![server],
            )?
            .map(|r| r.blob(0))
            .transpose()
        })
    }

    /// How many alerts match `q`'s filters (its paging aside), counting up to `cap`: the
    /// answer is at most `cap`, so that a broad filter over a large store stays quick.
    pub fn count_alerts(&self, q: &AlertQuery, cap: u64) -> Result<u64> {
        let (filter, args) = filter_sql(q, &[]);
        let sql = format!("SELECT count(*) FROM (SELECT 1 FROM alerts WHERE 1 = 1{filter} LIMIT {cap}) AS matching");
        self.read(|c| {
            c.query_opt(&sql, &args)?
                .map(|r| r.int(0))
                .transpose()
                .map(|n| n.unwrap_or(0) as u64)
        })
    }

    /// Alerts matching `q`, in its order, with the key of the next page if there is one.
    pub fn list_alerts(&self, q: &AlertQuery) -> Result<(Vec<Value>, Option<PageKey>)> {
        self.list_served(q, served)
    }

    /// [`Store::list_alerts`] as JSON text, for a caller that only writes the records out
    /// (the API): a page of 1,000 was mostly building and dropping each record's tree.
    pub fn list_alert_records(
        &self,
        q: &AlertQuery,
    ) -> Result<(Vec<Box<RawValue>>, Option<PageKey>)> {
        self.list_served(q, served_text)
    }

    /// The page of `q`, each record made by `serve` from its text, status and simulation.
    fn list_served<T>(
        &self,
        q: &AlertQuery,
        serve: fn(&str, &str, bool) -> Result<T>,
    ) -> Result<(Vec<T>, Option<PageKey>)> {
        let top = q.top.clamp(1, 1000);
        self.read(|c| {
            let (sql, args) = list_sql(q, top, c.is_sqlite());
            let rows = c.query(&sql, &args)?;
            let mut out = Vec::new();
            let mut next = None;
            for r in rows {
                if out.len() == top {
                    next = out.last().map(|(_, k): &(T, PageKey)| k.clone());
                    break;
                }
                let sort = match q.order {
                    Order::Newest => None,
                    Order::Severity => Some(SortKey::Rank(r.int(5)?)),
                    _ => Some(SortKey::Text(r.text(5)?)),
                };
                out.push((
                    serve(r.str(0)?, r.str(1)?, r.int(2)? != 0)?,
                    PageKey {
                        sort,
                        end: r.text(3)?,
                        id: r.text(4)?,
                    },
                ));
            }
            Ok((out.into_iter().map(|(v, _)| v).collect(), next))
        })
    }

    /// One alert with its state history, or `None`.
    pub fn get_alert(&self, id: &str) -> Result<Option<Value>> {
        self.read(|c| get(c, id))
    }

    /// [`Store::list_alerts`] as typed records, for a reader of their fields (the console).
    pub fn list_stored(&self, q: &AlertQuery) -> Result<(Vec<StoredAlert>, Option<PageKey>)> {
        self.list_served(q, stored)
    }

    /// [`Store::get_alert`] as a typed record, with its state history.
    pub fn get_stored(&self, id: &str) -> Result<Option<StoredAlert>> {
        self.read(|c| {
            let Some(mut a) = one(c, id, stored)? else {
                return Ok(None);
            };
            a.history = history_of(c, id)?;
            Ok(Some(a))
        })
    }

    /// Sets an alert's status on someone's behalf and records it in its history. `None` if
    /// there is no such alert.
    pub fn set_status(&self, id: &str, to: Status, actor: &str) -> Result<Option<Value>> {
        self.write(|tx| {
            let (from, part) =
                match tx.query_opt("SELECT status, part FROM alerts WHERE id = $1", vals![id])? {
                    Some(r) => (r.text(0)?, r.text(1)?),
                    None => return Ok(None),
                };
            if from != to.as_str() {
                let now = now_utc();
                tx.exec(
                    "UPDATE alerts SET status = $2, updated_at = $3 WHERE id = $1 AND part = $4",
                    vals![id, to.as_str(), now.as_str(), part.as_str()],
                )?;
                history(
                    tx,
                    id,
                    &part,
                    &now,
                    actor,
                    "status",
                    Some(&from),
                    to.as_str(),
                )?;
                super::audit::record(
                    tx,
                    actor,
                    super::audit::Action::AlertStatus,
                    id,
                    &serde_json::json!({"from": from, "to": to.as_str()}),
                    &now,
                )?;
            }
            get(tx, id)
        })
    }

    /// Open alerts (Active or InProgress) per server.
    pub fn open_alerts_by_server(&self) -> Result<HashMap<String, u64>> {
        self.read(|c| {
            c.query(
                "SELECT server, CAST(sum(n) AS BIGINT) FROM alert_counts
                 WHERE status IN ('Active', 'InProgress') AND is_simulated = 0
                 GROUP BY server HAVING sum(n) > 0",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)? as u64)))
            .collect()
        })
    }

    /// Stored alerts per alertType and severity (for metrics).
    pub fn alerts_by_type(&self) -> Result<Vec<(String, String, u64)>> {
        self.read(|c| {
            c.query(
                "SELECT alert_type, severity, CAST(sum(n) AS BIGINT) FROM alert_counts
                 WHERE is_simulated = 0 GROUP BY alert_type, severity HAVING sum(n) > 0
                 ORDER BY 1, 2",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)? as u64)))
            .collect()
        })
    }

    /// Deletes alerts that ended longer ago than their server's `retentionDays` (0 keeps
    /// them), and delivered notifications older than a week. Returns the alerts deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let policies = self.read(|c| {
            c.query("SELECT server, properties FROM policies", &[])?
                .iter()
                .map(|r| Ok((r.text(0)?, r.text(1)?)))
                .collect::<Result<Vec<_>>>()
        })?;
        // Each server's cutoff: alerts that ended before it go.
        let mut cutoffs = HashMap::new();
        for (server, props) in policies {
            let p = super::policies::parse(&server, &props)?;
            if p.retention_days > 0 {
                let cutoff =
                    model::event::format_time(now_ms - i64::from(p.retention_days) * 86_400_000);
                cutoffs.insert(server, cutoff);
            }
        }
        let mut deleted = 0;
        if self.is_central() {
            deleted += self.drop_expired_months(&cutoffs, now_ms)?;
        }
        for (server, cutoff) in &cutoffs {
            deleted += self.write(|tx| {
                tx.exec(
                    "DELETE FROM alerts WHERE server = $1 AND end_time < $2",
                    vals![server.as_str(), cutoff.as_str()],
                )
            })?;
        }
        // The console shows logins over 30 days at most.
        let month_ago = model::event::format_time(now_ms - 31 * 86_400_000);
        self.write(|tx| {
            tx.exec(
                "DELETE FROM login_hours WHERE hour < $1",
                vals![&month_ago[..13]],
            )
        })?;
        let week_ago = model::event::format_time(now_ms - 7 * 86_400_000);
        self.write(|tx| {
            tx.exec(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1",
                vals![week_ago],
            )
        })?;
        Ok(deleted)
    }
}

/// The WHERE conditions of `q`'s filters (each starting with ` AND `) and their arguments.
/// The query of one page of `q` (`top` alerts and one more, to know whether a next page
/// exists): record, status, simulated flag, end time, id, and the value sorted by.
fn list_sql(q: &AlertQuery, top: usize, sqlite: bool) -> (String, Vec<Val>) {
    // Sorted by a column, SQLite is kept from the index of a filter that many alerts meet
    // (status, severity, type, server) and walks the order's index instead: it reads about
    // `top` divided by the filter's share of the alerts, rather than sorting all that meet
    // it (160 ms for the active alerts by source at 100k alerts).
    let broad: Vec<&str> = match q.order.column() {
        Some(col) if sqlite => ["status", "severity", "alert_type", "server"]
            .into_iter()
            .filter(|f| *f != col)
            .collect(),
        _ => Vec::new(),
    };
    let (filter, mut args) = filter_sql(q, &broad);
    // The value each row sorts by: the severity's rank or a column's text.
    let sort_value = q.order.column().unwrap_or(SEVERITY_RANK);
    let ranged = q.from.is_some() || q.to.is_some();
    // A range in severity order is sorted by its keys alone (alerts_end_cover holds them),
    // and only the page's records are read.
    let deferred = q.order == Order::Severity && ranged;
    let key = if sqlite { "rowid" } else { "id" };
    let columns = if deferred {
        format!("{key} AS k")
    } else {
        format!("record, status, is_simulated, end_time, id, {sort_value}")
    };
    let mut sql = format!("SELECT {columns} FROM alerts WHERE 1 = 1{filter}");
    if let Some(k) = &q.after {
        args.push(Val::from(&k.end));
        let a = args.len();
        args.push(Val::from(&k.id));
        let b = args.len();
        let after_time = format!("(end_time < ${a} OR (end_time = ${a} AND id < ${b}))");
        match (q.order, &k.sort) {
            (Order::Severity, Some(SortKey::Rank(r))) => sql.push_str(&format!(
                " AND ({SEVERITY_RANK} > {r} OR ({SEVERITY_RANK} = {r} AND {after_time}))"
            )),
            (o, Some(SortKey::Text(t))) if o.column().is_some() => {
                args.push(Val::from(t));
                let c = args.len();
                sql.push_str(&format!(
                    " AND ({sort_value} > ${c} OR ({sort_value} = ${c} AND {after_time}))"
                ))
            }
            _ => sql.push_str(&format!(" AND {after_time}")),
        }
    }
    let order = match q.order {
        // A time range is narrower than a severity: its alerts are found by time, then
        // sorted (`+ 0` keeps the planners from walking the severity index instead).
        Order::Severity if ranged => format!("{SEVERITY_RANK} + 0, end_time DESC, id DESC"),
        Order::Severity => format!("{SEVERITY_RANK}, end_time DESC, id DESC"),
        Order::Newest => "end_time DESC, id DESC".to_string(),
        _ => format!("{sort_value}, end_time DESC, id DESC"),
    };
    sql.push_str(&format!(" ORDER BY {order} LIMIT {}", top + 1));
    if deferred {
        sql = format!(
            "SELECT a.record, a.status, a.is_simulated, a.end_time, a.id, {sort_value}
             FROM alerts a JOIN ({sql}) p ON a.{key} = p.k
             ORDER BY {SEVERITY_RANK}, a.end_time DESC, a.id DESC"
        );
    }
    (sql, args)
}

/// The filters of `q` as SQL conditions. Columns in `unindexed` are compared through an
/// expression (`col || ''`), which no planner takes an index for.
fn filter_sql(q: &AlertQuery, unindexed: &[&str]) -> (String, Vec<Val>) {
    let mut sql = String::new();
    let mut args: Vec<Val> = Vec::new();
    let mut cond = |clause: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(Val::from(v));
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        }
    };
    let col = |c: &str| {
        if unindexed.contains(&c) {
            format!(" AND ({c} || '') = ?")
        } else {
            format!(" AND {c} = ?")
        }
    };
    cond(&col("server"), &q.server);
    cond(&col("alert_type"), &q.alert_type);
    cond(&col("severity"), &q.severity);
    cond(&col("status"), &q.status);
    // As the sort indexes spell them (alerts_source_sort, alerts_principal_sort).
    cond(" AND coalesce(source_ip, '') = ?", &q.source_ip);
    cond(" AND coalesce(principal, '') = ?", &q.principal);
    cond(" AND end_time >= ?", &q.from);
    cond(" AND start_time <= ?", &q.to);
    if let Some(s) = q.simulated {
        sql.push_str(if s {
            " AND is_simulated = 1"
        } else {
            " AND is_simulated = 0"
        });
    }
    (sql, args)
}

/// An alert as the store holds it: the record, with the status it has now.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    /// The record; its `status` is the alert's current one.
    pub alert: Alert,
    /// A sample alert (`POST …/alerts/simulate`), not a detection.
    pub is_simulated: bool,
    /// Its changes of status, oldest first: read with one alert, empty in a list.
    pub history: Vec<StatusChange>,
}

/// One entry of an alert's state history.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// When, RFC 3339 UTC.
    pub time: String,
    /// Who: `pgvigil`, a token's name, or `rule:<name>` for a suppression rule.
    pub actor: String,
    /// What: `raised`, `escalated`, `suppressed`, or the action that changed the status.
    pub action: String,
    pub from: Option<String>,
    pub to: String,
}

/// The record of [`served`], typed.
fn stored(record: &str, status: &str, simulated: bool) -> Result<StoredAlert> {
    let mut alert: Alert = serde_json::from_str(record).map_err(|e| StoreError::Corrupt {
        what: "alert record".into(),
        reason: e.to_string(),
    })?;
    alert.status = status.to_string();
    Ok(StoredAlert {
        alert,
        is_simulated: simulated,
        history: Vec::new(),
    })
}

/// The alert record as served: the stored record with the current status and whether it is
/// a sample.
fn served(record: &str, status: &str, simulated: bool) -> Result<Value> {
    let mut v: Value = serde_json::from_str(record).map_err(|e| StoreError::Corrupt {
        what: "alert record".into(),
        reason: e.to_string(),
    })?;
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), Value::String(status.into()));
        o.insert("isSimulated".into(), Value::Bool(simulated));
    }
    Ok(v)
}

/// [`served`] as text, without building the record's tree: its top-level members are kept as
/// written and put in name order, as [`served`] orders them, with `status` and
/// `isSimulated` set from the columns.
fn served_text(record: &str, status: &str, simulated: bool) -> Result<Box<RawValue>> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        what: "alert record".into(),
        reason: e.to_string(),
    };
    let Ok(mut members) =
        serde_json::from_str::<std::collections::BTreeMap<Cow<'_, str>, &RawValue>>(record)
    else {
        // Not an object (no record is written so): as the tree would serve it.
        let tree = served(record, status, simulated)?;
        return serde_json::value::to_raw_value(&tree).map_err(corrupt);
    };
    let status_text = serde_json::value::to_raw_value(status).map_err(corrupt)?;
    let simulated_text = serde_json::value::to_raw_value(&simulated).map_err(corrupt)?;
    members.insert("status".into(), &status_text);
    members.insert("isSimulated".into(), &simulated_text);
    serde_json::value::to_raw_value(&members).map_err(corrupt)
}

/// One alert's record, made by `serve` from its text, status and simulation.
fn one<T>(c: &mut dyn Db, id: &str, serve: fn(&str, &str, bool) -> Result<T>) -> Result<Option<T>> {
    c.query_opt(
        "SELECT record, status, is_simulated FROM alerts WHERE id = $1",
        vals![id],
    )?
    .map(|r| serve(r.str(0)?, r.str(1)?, r.int(2)? != 0))
    .transpose()
}

fn get(c: &mut dyn Db, id: &str) -> Result<Option<Value>> {
    let Some(mut v) = one(c, id, served)? else {
        return Ok(None);
    };
    let hist = history_of(c, id)?
        .into_iter()
        .map(|h| {
            serde_json::json!({
                "time": h.time,
                "actor": h.actor,
                "action": h.action,
                "fromStatus": h.from,
                "toStatus": h.to,
            })
        })
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("stateHistory".into(), Value::Array(hist));
    }
    Ok(Some(v))
}

/// An alert's state history, oldest first.
fn history_of(c: &mut dyn Db, id: &str) -> Result<Vec<StatusChange>> {
    c.query(
        "SELECT at, actor, action, from_status, to_status FROM alert_history
         WHERE alert_id = $1 ORDER BY seq",
        vals![id],
    )?
    .iter()
    .map(|r| {
        Ok(StatusChange {
            time: r.text(0)?,
            actor: r.text(1)?,
            action: r.text(2)?,
            from: r.opt_text(3)?,
            to: r.text(4)?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::on_each_store;
    use crate::test_support::alert;
    use crate::{Ingest, Ingested};
    use model::alert::{Alert, AlertType, Severity};
    use model::policy::Policy;

    /// The page the API writes holds the same records as the trees the console reads: every
    /// member, nested ones too, and status and simulation from the columns, not the record.
    #[test]
    fn records_written_as_text_are_the_served_trees() {
        for record in [
            r#"{"id":"a1","status":"Active","isSimulated":true,"n":1.5,"z":{"b":[1,{"y":null,"x":"\u00e9"}],"a":"q\"uote"},"esc\u0041ped":2}"#,
            r#"{}"#,
            r#"[1,2]"#,
        ] {
            for (status, simulated) in [("Dismissed", false), ("Active", true)] {
                let text = served_text(record, status, simulated).unwrap();
                let tree = served(record, status, simulated).unwrap();
                assert_eq!(
                    serde_json::from_str::<Value>(text.get()).unwrap(),
                    tree,
                    "{record}"
                );
                if tree.is_object() {
                    assert_eq!(tree["status"], status);
                    assert_eq!(tree["isSimulated"], simulated);
                }
            }
        }
        assert!(served_text("{not json", "Active", false).is_err());
    }

    /// The console's typed records say what the API's JSON says: each field of a listed
    /// alert, its current status (not the one it was raised with), and one alert's history.
    fn typed_records_match_the_served_json(s: &Store) {
        let a = alert(
            "t1",
            "db1",
            AlertType::BruteForce,
            Severity::High,
            "2026-11-01T00:05:00.000Z",
        );
        let b = alert(
            "t2",
            "db2",
            AlertType::Probe,
            Severity::Low,
            "2026-11-01T00:06:00.000Z",
        );
        ingest(s, &[a.clone(), b]);
        s.set_status("t1", Status::Dismissed, "ops").unwrap();
        let q = AlertQuery {
            top: 10,
            ..Default::default()
        };
        let (typed, next) = s.list_stored(&q).unwrap();
        let (json, json_next) = s.list_alerts(&q).unwrap();
        assert_eq!(next.is_some(), json_next.is_some());
        assert_eq!(typed.len(), 2);
        for (t, j) in typed.iter().zip(&json) {
            let mut record = serde_json::to_value(&t.alert).unwrap();
            record["isSimulated"] = Value::Bool(t.is_simulated);
            assert_eq!(&record, j);
            assert!(t.history.is_empty());
        }
        let one = s.get_stored("t1").unwrap().unwrap();
        assert_eq!(one.alert.status, "Dismissed");
        assert_eq!(one.alert.evidence, a.evidence);
        let served = s.get_alert("t1").unwrap().unwrap();
        let history = served["stateHistory"].as_array().unwrap();
        assert_eq!(one.history.len(), history.len());
        let last = one.history.last().unwrap();
        assert_eq!(
            (last.actor.as_str(), last.to.as_str()),
            ("ops", "Dismissed")
        );
        assert_eq!(last.from.as_deref(), Some("Active"));
        assert_eq!(history.last().unwrap()["time"], last.time.as_str());
        assert!(s.get_stored("none").unwrap().is_none());
    }

    fn ingest(s: &Store, alerts: &[Alert]) -> Ingested {
        s.ingest(Ingest {
            alerts,
            simulated: false,
            channels: &[crate::Channel::Webhook("0".into())],
            admins: &[],
            checkpoint: None,
            report: None,
            ..Default::default()
        })
        .unwrap()
    }

    /// A suppression rule dismisses the new alerts it matches as they are stored, queues no
    /// notification for them and says so in their history; alerts it does not match, and
    /// all alerts once it has expired or is deleted, go as before; an alert it dismissed
    /// that escalates is opened again and notified.
    fn suppression_rules_dismiss_matching_new_alerts_without_notifying(s: &Store) {
        let rule = |expires: serde_json::Value| {
            model::suppression::Rule::from_body(
                "scanner",
                &serde_json::json!({"properties": {
                    "alertType": "PostgreSQL_BruteForce",
                    "reason": "the weekly vulnerability scan",
                    "expirationDateUtc": expires,
                    "suppressionAlertsScope": {"allOf": [
                        {"field": "entities.sourceIp", "in": ["127.0.0.0/29"]},
                        {"field": "server", "in": ["db1"]},
                    ]},
                }}),
                &now_utc(),
            )
            .unwrap()
        };
        assert!(s.put_suppression_rule(&rule(Value::Null), "alice").unwrap());
        let end = "2026-11-01T00:01:00.000Z";
        let mut a = alert("s1", "db1", AlertType::BruteForce, Severity::Medium, end);
        a.entities.source_ip = Some("127.0.0.5".into());
        let mut other_server = alert("s2", "db2", AlertType::BruteForce, Severity::Medium, end);
        other_server.entities.source_ip = Some("127.0.0.20".into());
        let mut other_source = alert("s3", "db1", AlertType::BruteForce, Severity::Medium, end);
        other_source.entities.source_ip = Some("127.0.0.9".into());
        let r = ingest(s, &[a.clone(), other_server, other_source]);
        let status = |id: &str| s.get_alert(id).unwrap().unwrap()["status"].clone();
        assert_eq!(status("s1"), "Dismissed");
        assert_eq!(
            (status("s2"), status("s3")),
            ("Active".into(), "Active".into())
        );
        assert_eq!(
            r.queued, 2,
            "only the two alerts outside the rule are notified"
        );
        assert_eq!(
            r.dismissed_by_rule,
            [("s1".to_string(), "scanner".to_string())]
        );
        let hist = s.get_alert("s1").unwrap().unwrap()["stateHistory"].clone();
        assert!(
            hist.as_array()
                .unwrap()
                .iter()
                .any(|h| h["actor"] == "rule:scanner" && h["toStatus"] == "Dismissed"),
            "{hist:#}"
        );
        // More of the same attack: still dismissed, still quiet.
        a.end_time_utc = "2026-11-01T00:02:00.000Z".into();
        assert_eq!(ingest(s, &[a.clone()]).queued, 0);
        assert_eq!(status("s1"), "Dismissed");
        // The attack succeeds: news whatever the rule says.
        a.end_time_utc = "2026-11-01T00:03:00.000Z".into();
        a.severity = Severity::High;
        a.display_name = "Suspected successful brute force attack".into();
        assert_eq!(ingest(s, &[a]).queued, 1);
        assert_eq!(status("s1"), "Active");
        // An expired rule, and a deleted one, dismiss nothing.
        s.put_suppression_rule(&rule(serde_json::json!("2020-01-01T00:00:00Z")), "alice")
            .unwrap();
        let mut b = alert("s4", "db1", AlertType::BruteForce, Severity::Medium, end);
        b.entities.source_ip = Some("127.0.0.6".into());
        assert_eq!(ingest(s, &[b]).queued, 1);
        assert_eq!(status("s4"), "Active");
        assert!(s.delete_suppression_rule("scanner", "alice").unwrap());
        assert!(!s.delete_suppression_rule("scanner", "alice").unwrap());
        let mut c = alert("s5", "db1", AlertType::BruteForce, Severity::Medium, end);
        c.entities.source_ip = Some("127.0.0.7".into());
        ingest(s, &[c]);
        assert_eq!(status("s5"), "Active");
        // Every change is in the audit trail.
        let trail = s
            .audit_log(&crate::audit::AuditQuery {
                top: 100,
                ..Default::default()
            })
            .unwrap();
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions
                .iter()
                .filter(|a| a.starts_with("suppressionRule."))
                .count(),
            3,
            "{actions:?}"
        );
    }

    /// The counts /servers and /metrics read are kept as alerts come, escalate, change status
    /// and are deleted by retention: always what counting the alerts gives.
    fn the_kept_counts_are_the_alerts_counted(s: &Store) {
        let counted = |s: &Store| {
            s.read(|c| {
                c.query(
                    "SELECT alert_type, severity, count(*) FROM alerts WHERE is_simulated = 0
                     GROUP BY alert_type, severity ORDER BY 1, 2",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)? as u64)))
                .collect::<Result<Vec<_>>>()
            })
            .unwrap()
        };
        let open = |s: &Store| {
            s.read(|c| {
                c.query(
                    "SELECT server, count(*) FROM alerts WHERE status IN ('Active', 'InProgress')
                     AND is_simulated = 0 GROUP BY server",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.text(0)?, r.int(1)? as u64)))
                .collect::<Result<HashMap<_, _>>>()
            })
            .unwrap()
        };
        let check = |s: &Store| {
            assert_eq!(s.alerts_by_type().unwrap(), counted(s));
            assert_eq!(s.open_alerts_by_server().unwrap(), open(s));
        };
        let end = "2026-11-01T00:01:00.000Z";
        let mut a = alert("a1", "db1", AlertType::BruteForce, Severity::Medium, end);
        ingest(
            s,
            &[
                a.clone(),
                alert("a2", "db2", AlertType::BruteForce, Severity::Medium, end),
                alert("a3", "db2", AlertType::Probe, Severity::Low, end),
            ],
        );
        check(s);
        a.severity = Severity::High;
        ingest(s, &[a]);
        check(s);
        s.set_status("a2", Status::Dismissed, "alice").unwrap();
        check(s);
        assert_eq!(s.open_alerts_by_server().unwrap().get("db2"), Some(&1));
        s.write(|tx| tx.exec("DELETE FROM alerts WHERE id = $1", vals!["a3"]))
            .unwrap();
        check(s);
        assert_eq!(s.open_alerts_by_server().unwrap().get("db2"), None);
    }

    /// The overview's alerts per hour, kept by triggers, agree with counting the alerts as
    /// they come, as an incident's start moves back into an earlier hour, and as they go.
    fn alerts_per_hour_follow_alerts_that_come_move_and_go(s: &Store) {
        let counted = |s: &Store, server: &str| {
            s.read(|c| {
                c.query(
                    "SELECT substr(start_time, 1, 13), count(*) FROM alerts
                     WHERE is_simulated = 0 AND ($1 = '' OR server = $1)
                     GROUP BY substr(start_time, 1, 13) ORDER BY 1",
                    vals![server],
                )?
                .iter()
                .map(|r| Ok((r.text(0)?, r.int(1)?)))
                .collect::<Result<Vec<_>>>()
            })
            .unwrap()
        };
        let check = |s: &Store| {
            for server in ["", "db1", "db2"] {
                let kept = s.overview("2026-10-31T00", true, server).unwrap().timeline;
                assert_eq!(kept, counted(s, server), "server {server:?}");
            }
        };
        let at = |id: &str, server: &str, start: &str| {
            let mut a = alert(
                id,
                server,
                AlertType::BruteForce,
                Severity::Medium,
                "2026-11-01T05:00:00.000Z",
            );
            a.start_time_utc = start.into();
            // A source of its own: one source on two servers would add a fleet alert.
            a.entities.source_ip = Some(format!("127.0.1.{}", &id[1..]));
            a
        };
        let mut a1 = at("a1", "db1", "2026-11-01T04:10:00.000Z");
        ingest(
            s,
            &[
                a1.clone(),
                at("a2", "db2", "2026-11-01T04:20:00.000Z"),
                at("a3", "db2", "2026-11-01T02:00:00.000Z"),
            ],
        );
        check(s);
        assert_eq!(
            s.overview("2026-10-31T00", true, "").unwrap().timeline,
            [
                ("2026-11-01T02".to_string(), 1),
                ("2026-11-01T04".to_string(), 2)
            ]
        );
        // Failures that arrived late move the incident's start back an hour.
        a1.start_time_utc = "2026-11-01T03:59:00.000Z".into();
        ingest(s, &[a1]);
        check(s);
        s.write(|tx| tx.exec("DELETE FROM alerts WHERE id = $1", vals!["a3"]))
            .unwrap();
        check(s);
        // By day, the hours add up.
        assert_eq!(
            s.overview("2026-10-31T00", false, "").unwrap().timeline,
            [("2026-11-01".to_string(), 2)]
        );
    }

    fn an_update_keeps_a_dismissal_but_an_escalation_reopens_and_notifies(s: &Store) {
        let mut a = alert(
            "a1",
            "db1",
            AlertType::BruteForce,
            Severity::Medium,
            "2026-11-01T00:01:00.000Z",
        );
        assert_eq!(ingest(s, &[a.clone()]).queued, 1);
        s.set_status("a1", Status::Dismissed, "alice")
            .unwrap()
            .unwrap();
        a.end_time_utc = "2026-11-01T00:05:00.000Z".into();
        a.evidence = model::evidence!({"failedLogins": 40});
        let r = ingest(s, &[a.clone()]);
        assert_eq!((r.queued, r.accepted[0].status.as_str()), (0, "Dismissed"));
        a.severity = Severity::High;
        a.display_name = "Suspected successful brute force attack".into();
        let r = ingest(s, &[a]);
        assert_eq!((r.queued, r.accepted[0].status.as_str()), (1, "Active"));
        let got = s.get_alert("a1").unwrap().unwrap();
        assert_eq!(got["evidence"]["failedLogins"], 40);
        let actions: Vec<_> = got["stateHistory"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                format!(
                    "{}:{}",
                    h["actor"].as_str().unwrap(),
                    h["toStatus"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            actions,
            ["pgvigil:Active", "alice:Dismissed", "pgvigil:Active"]
        );
    }

    fn pages_follow_each_other_without_gaps_or_repeats(s: &Store) {
        let alerts: Vec<Alert> = (0..25)
            .map(|i| {
                alert(
                    &format!("id{i:02}"),
                    if i % 2 == 0 { "db1" } else { "db2" },
                    AlertType::Probe,
                    Severity::Medium,
                    // Pairs share an end time, to exercise the tie-break on id.
                    &format!("2026-11-01T00:{:02}:00.000Z", i / 2),
                )
            })
            .collect();
        ingest(s, &alerts);
        let mut seen = Vec::new();
        let mut q = AlertQuery {
            top: 4,
            ..Default::default()
        };
        loop {
            let (page, next) = s.list_alerts(&q).unwrap();
            seen.extend(page.iter().map(|a| a["id"].as_str().unwrap().to_string()));
            match next {
                Some(k) => q.after = Some(k),
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 25);
        assert_eq!(seen[0], "id24");
        q = AlertQuery {
            server: Some("db2".into()),
            top: 100,
            ..Default::default()
        };
        assert_eq!(s.list_alerts(&q).unwrap().0.len(), 12);
    }

    /// Sorted by a column, the pages hold every alert once, A to Z (alerts without the
    /// field first), newest first among equals, across page ends inside a run of equals.
    fn by_a_column_the_pages_hold_every_alert_once_in_order(s: &Store) {
        let alerts: Vec<Alert> = (0..23)
            .map(|i| {
                let mut a = alert(
                    &format!("id{i:02}"),
                    ["db-b", "db-a", "db-c"][i % 3],
                    [AlertType::Probe, AlertType::BruteForce][i % 2],
                    Severity::Low,
                    &format!("2026-11-01T00:{:02}:00.000Z", i / 3),
                );
                a.entities.source_ip = (i % 4 != 0).then(|| format!("127.0.2.{}", i % 5));
                a.entities.principal =
                    (i % 5 != 0).then(|| ["zoe", "Émile", "alice"][i % 3].into());
                a
            })
            .collect();
        ingest(s, &alerts);
        // With the fleet alerts of sources seen on several servers.
        let all = s.count_alerts(&AlertQuery::default(), 1000).unwrap() as usize;
        assert!(all > 23);
        for (order, field) in [
            (Order::Server, "server"),
            (Order::AlertType, "alertType"),
            (Order::SourceIp, "sourceIp"),
            (Order::Principal, "principal"),
        ] {
            let mut q = AlertQuery {
                top: 4,
                order,
                ..Default::default()
            };
            let mut seen: Vec<(String, String, String)> = Vec::new();
            loop {
                let (page, next) = s.list_alerts(&q).unwrap();
                seen.extend(page.iter().map(|a| {
                    let v = a[field]
                        .as_str()
                        .or(a["entities"][field].as_str())
                        .unwrap_or("");
                    (
                        v.to_string(),
                        a["endTimeUtc"].as_str().unwrap().to_string(),
                        a["id"].as_str().unwrap().to_string(),
                    )
                }));
                match next {
                    Some(k) => q.after = Some(k),
                    None => break,
                }
            }
            let mut ids: Vec<&str> = seen.iter().map(|x| x.2.as_str()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!((seen.len(), ids.len()), (all, all), "{order:?}: {seen:?}");
            let mut want = seen.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
            assert_eq!(seen, want, "{order:?}");
            assert!(
                seen.first().is_some_and(|x| x.0 < seen.last().unwrap().0),
                "{order:?}"
            );
        }
    }

    fn by_severity_the_pages_hold_every_high_before_any_medium_or_low(s: &Store) {
        let sev = [Severity::Low, Severity::High, Severity::Medium];
        let alerts: Vec<Alert> = (0..30)
            .map(|i| {
                alert(
                    &format!("id{i:02}"),
                    "db1",
                    AlertType::Probe,
                    sev[i % 3],
                    &format!("2026-11-01T00:{:02}:00.000Z", i / 2),
                )
            })
            .collect();
        ingest(s, &alerts);
        // All of them, and those that ended from 00:05 on (the range's page is found by
        // its keys first), each walked page by page.
        for (from, n, high) in [(None, 30, 10), (Some("2026-11-01T00:05:00.000Z"), 20, 7)] {
            let mut q = AlertQuery {
                top: 7,
                order: Order::Severity,
                from: from.map(String::from),
                to: from.map(|_| "2026-11-02T00:00:00.000Z".to_string()),
                ..Default::default()
            };
            let mut seen: Vec<(String, String, String)> = Vec::new();
            loop {
                let (page, next) = s.list_alerts(&q).unwrap();
                seen.extend(page.iter().map(|a| {
                    (
                        a["severity"].as_str().unwrap().to_string(),
                        a["endTimeUtc"].as_str().unwrap().to_string(),
                        a["id"].as_str().unwrap().to_string(),
                    )
                }));
                match next {
                    Some(k) => q.after = Some(k),
                    None => break,
                }
            }
            assert_eq!(seen.len(), n, "{seen:?}");
            let ranks: Vec<u8> = seen
                .iter()
                .map(|(s, _, _)| match s.as_str() {
                    "High" => 0,
                    "Medium" => 1,
                    _ => 2,
                })
                .collect();
            assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
            assert_eq!(ranks.iter().filter(|r| **r == 0).count(), high);
            // Within a severity, newest first.
            for w in seen.windows(2) {
                if w[0].0 == w[1].0 {
                    assert!(w[0].1 >= w[1].1, "{seen:?}");
                }
            }
            let mut ids: Vec<&String> = seen.iter().map(|x| &x.2).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), n);
        }
    }

    fn a_disabled_category_is_neither_stored_nor_queued(s: &Store) {
        s.register_server("db1").unwrap();
        let body = serde_json::json!({"properties": {"state": "Enabled", "disabledAlerts": ["Brute_Force"]}});
        s.put_policy(
            "db1",
            &Policy::from_put_body(&body, "db1").unwrap(),
            &crate::PolicyChange::by("test"),
        )
        .unwrap();
        let r = ingest(
            s,
            &[
                alert(
                    "x",
                    "db1",
                    AlertType::BruteForce,
                    Severity::Medium,
                    "2026-11-01T00:01:00.000Z",
                ),
                alert(
                    "y",
                    "db1",
                    AlertType::Probe,
                    Severity::Low,
                    "2026-11-01T00:01:00.000Z",
                ),
            ],
        );
        assert_eq!((r.accepted.len(), r.suppressed, r.queued), (1, 1, 1));
        assert!(s.get_alert("x").unwrap().is_none());
    }

    fn retention_deletes_only_what_the_policy_lets_go(s: &Store) {
        s.register_server("db1").unwrap();
        s.register_server("db2").unwrap();
        let body = serde_json::json!({"properties": {"state": "Enabled", "retentionDays": 10}});
        s.put_policy(
            "db1",
            &Policy::from_put_body(&body, "db1").unwrap(),
            &crate::PolicyChange::by("test"),
        )
        .unwrap();
        ingest(
            s,
            &[
                alert(
                    "old1",
                    "db1",
                    AlertType::Probe,
                    Severity::Low,
                    "2026-10-01T00:00:00.000Z",
                ),
                alert(
                    "new1",
                    "db1",
                    AlertType::Probe,
                    Severity::Low,
                    "2026-11-20T00:00:00.000Z",
                ),
                alert(
                    "old2",
                    "db2",
                    AlertType::Probe,
                    Severity::Low,
                    "2026-10-01T00:00:00.000Z",
                ),
            ],
        );
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(s.enforce_retention(now).unwrap(), 1);
        assert!(s.get_alert("old1").unwrap().is_none());
        assert!(s.get_alert("new1").unwrap().is_some());
        assert!(
            s.get_alert("old2").unwrap().is_some(),
            "db2 keeps alerts forever"
        );
    }

    fn one_source_on_two_servers_is_one_fleet_alert_listing_both(s: &Store) {
        let a1 = alert(
            "a1",
            "db1",
            AlertType::BruteForce,
            Severity::Medium,
            "2026-11-01T00:01:00.000Z",
        );
        let r = ingest(s, &[a1]);
        assert_eq!(r.accepted.len(), 1, "one server: no fleet alert yet");
        let mut a2 = alert(
            "a2",
            "db2",
            AlertType::BruteForce,
            Severity::High,
            "2026-11-01T00:02:00.000Z",
        );
        a2.display_name = "Suspected successful brute force attack".into();
        let r = ingest(s, &[a2]);
        assert_eq!(r.accepted.len(), 2);
        let fleet = &r.accepted[1];
        assert_eq!(
            (fleet.server.as_str(), fleet.severity),
            ("fleet", Severity::High)
        );
        assert_eq!(fleet.entities.source_ip.as_deref(), Some("127.0.0.9"));
        let ev = fleet.evidence.value();
        assert_eq!(ev["servers"], serde_json::json!(["db1", "db2"]));
        assert_eq!(ev["successOn"], serde_json::json!(["db2"]));
        assert_eq!(ev["failedLogins"], 24);
        // A third server joins the same fleet alert.
        let a3 = alert(
            "a3",
            "db3",
            AlertType::BruteForce,
            Severity::Medium,
            "2026-11-01T00:03:00.000Z",
        );
        let r = ingest(s, &[a3]);
        assert_eq!(r.accepted[1].id, fleet.id);
        assert_eq!(
            r.accepted[1].evidence.value()["servers"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let (all, _) = s
            .list_alerts(&AlertQuery {
                server: Some("fleet".into()),
                top: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 1);
    }

    on_each_store!(
        typed_records_match_the_served_json,
        suppression_rules_dismiss_matching_new_alerts_without_notifying,
        the_kept_counts_are_the_alerts_counted,
        alerts_per_hour_follow_alerts_that_come_move_and_go,
        an_update_keeps_a_dismissal_but_an_escalation_reopens_and_notifies,
        pages_follow_each_other_without_gaps_or_repeats,
        by_a_column_the_pages_hold_every_alert_once_in_order,
        by_severity_the_pages_hold_every_high_before_any_medium_or_low,
        a_disabled_category_is_neither_stored_nor_queued,
        retention_deletes_only_what_the_policy_lets_go,
        one_source_on_two_servers_is_one_fleet_alert_listing_both,
    );
}
