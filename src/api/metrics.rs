//! `GET /metrics` in the Prometheus text format.

use super::{blocking, ApiResult, ApiState};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Label values are log-derived (server names): quote them as the format requires.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(m: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric with one sample per server (servers without a value are left out).
fn per_server(
    m: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    servers: &[crate::store::ServerStatus],
    value: impl Fn(&crate::store::ServerStatus) -> Option<String>,
) {
    family(m, name, kind, help);
    for s in servers {
        if let Some(v) = value(s) {
            let _ = writeln!(m, "{name}{{server=\"{}\"}} {v}", label(&s.name));
        }
    }
}

/// A metric with one sample.
fn single(m: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(m, name, kind, help);
    let _ = writeln!(m, "{name} {value}");
}

pub(super) async fn metrics(State(st): State<Arc<ApiState>>) -> ApiResult<Response> {
    let store = st.store.clone();
    let (servers, by_type, (backlog, failing)) = blocking(move || {
        Ok((
            store.list_servers()?,
            store.alerts_by_type()?,
            store.outbox_backlog()?,
        ))
    })
    .await?;
    let mut m = String::new();
    let c = &st.counters;
    per_server(
        &mut m,
        "pgvigil_events_total",
        "counter",
        "Events read from the server's logs.",
        &servers,
        |s| Some(s.events.to_string()),
    );
    per_server(
        &mut m,
        "pgvigil_parse_errors_total",
        "counter",
        "Malformed log lines.",
        &servers,
        |s| Some(s.parse_errors.to_string()),
    );
    per_server(
        &mut m,
        "pgvigil_log_lag_seconds",
        "gauge",
        "Wall-clock time minus the time of the newest event read.",
        &servers,
        |s| s.lag_seconds.map(|l| l.to_string()),
    );
    per_server(
        &mut m,
        "pgvigil_open_alerts",
        "gauge",
        "Active or in-progress alerts.",
        &servers,
        |s| Some(s.open_alerts.to_string()),
    );
    family(
        &mut m,
        "pgvigil_alerts",
        "gauge",
        "Stored alerts by type and severity.",
    );
    for (t, sev, n) in &by_type {
        let _ = writeln!(
            m,
            "pgvigil_alerts{{alert_type=\"{t}\",severity=\"{sev}\"}} {n}"
        );
    }
    single(
        &mut m,
        "pgvigil_notifications_pending",
        "gauge",
        "Notifications not yet delivered.",
        backlog,
    );
    single(
        &mut m,
        "pgvigil_notifications_failing",
        "gauge",
        "Undelivered notifications whose last attempt failed.",
        failing,
    );
    single(
        &mut m,
        "pgvigil_notifications_sent_total",
        "counter",
        "Notifications delivered by this process.",
        c.notifications_sent.load(Ordering::Relaxed),
    );
    single(
        &mut m,
        "pgvigil_notification_failures_total",
        "counter",
        "Failed delivery attempts by this process.",
        c.notification_failures.load(Ordering::Relaxed),
    );
    single(
        &mut m,
        "pgvigil_alerts_suppressed_total",
        "counter",
        "Alerts not raised because the server's policy turns them off.",
        c.alerts_suppressed.load(Ordering::Relaxed),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m,
    )
        .into_response())
}
