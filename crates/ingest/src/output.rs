//! Printing alerts: a table for people, JSON lines for machines.

use model::alert::{Alert, AlertType};
use std::io::Write;

fn short_type(t: AlertType) -> &'static str {
    t.as_str().trim_start_matches("PostgreSQL_")
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// Control characters in log-derived strings (role names, application names are chosen by
/// whoever connects) must not reach the terminal as escape sequences.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A count worth showing in the table: failures, sources, or probe connections.
fn headline_count(a: &Alert) -> String {
    let e = &a.evidence.value();
    for k in ["failedLogins", "events", "statements"] {
        if let Some(n) = e.get(k).and_then(|v| v.as_u64()) {
            return n.to_string();
        }
    }
    let inv = e
        .get("invalidStartupPackets")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let bare = e.get("bareConnects").and_then(|v| v.as_u64()).unwrap_or(0);
    (inv + bare).to_string()
}

pub fn write_table_header(w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        w,
        "{:<8} {:<22} {:<47} {:<16} {:<14} {:>6}  {:<20} {:<20}",
        "SEVERITY", "TYPE", "ALERT", "SOURCE", "PRINCIPAL", "COUNT", "START (UTC)", "END (UTC)"
    )
}

pub fn write_table_row(w: &mut dyn Write, a: &Alert) -> std::io::Result<()> {
    {
        let time = |s: &str| {
            s.replace('T', " ")
                .trim_end_matches('Z')
                .chars()
                .take(19)
                .collect::<String>()
        };
        writeln!(
            w,
            "{:<8} {:<22} {:<47} {:<16} {:<14} {:>6}  {:<20} {:<20}",
            a.severity.to_string(),
            short_type(a.alert_type),
            cut(&a.display_name, 47),
            cut(&clean(a.entities.source_ip.as_deref().unwrap_or("-")), 16),
            cut(&clean(a.entities.principal.as_deref().unwrap_or("-")), 14),
            headline_count(a),
            time(&a.start_time_utc),
            time(&a.end_time_utc),
        )?;
    }
    Ok(())
}

pub fn write_json_line(w: &mut dyn Write, alert: &Alert) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, alert)?;
    w.write_all(b"\n")
}

/// Alerts in the order they started, high severity first among equals.
pub fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        a.start_time_utc
            .cmp(&b.start_time_utc)
            .then(b.severity.cmp(&a.severity))
            .then(a.alert_type.cmp(&b.alert_type))
            .then(a.id.cmp(&b.id))
    });
}

/// An event as `analyze --events` prints it: the vocabulary of the alert record (camelCase
/// fields, RFC 3339 UTC times, the same names as an alert's `sampleEvents`), plus what only
/// the full event holds. Described by `schema/event.schema.json`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    #[serde(flatten)]
    pub sample: model::alert::SampleEvent,
    /// The client's host name, when the log has it (`log_hostname`) or for `[local]`.
    pub source_host: Option<String>,
    pub pid: Option<u32>,
    pub session_id: Option<String>,
    pub auth_method: Option<String>,
    pub ssl: Option<bool>,
    /// Rows a statement returned or changed, from pgaudit or the proxy.
    pub rows: Option<u64>,
    /// The statement, with literals replaced (it may hold secrets), cut to 200 characters.
    pub sql: Option<String>,
}

pub fn event_record(ev: &model::event::Event) -> EventRecord {
    let s = |v: &Option<compact_str::CompactString>| v.as_ref().map(|x| x.to_string());
    EventRecord {
        sample: model::alert::sample(ev),
        source_host: s(&ev.client_host),
        pid: ev.pid,
        session_id: s(&ev.session_id),
        auth_method: s(&ev.auth_method),
        ssl: ev.ssl,
        rows: ev.rows,
        sql: ev.sql.as_ref().map(|q| q.redacted(200)),
    }
}
