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
    let family = |m: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut m,
        "pgvigil_events_total",
        "counter",
        "Events read from the server's logs.",
    );
    for s in &servers {
        let _ = writeln!(
            m,
            "pgvigil_events_total{{server=\"{}\"}} {}",
            label(&s.name),
            s.events
        );
    }
    family(
        &mut m,
        "pgvigil_parse_errors_total",
        "counter",
        "Malformed log lines.",
    );
    for s in &servers {
        let _ = writeln!(
            m,
            "pgvigil_parse_errors_total{{server=\"{}\"}} {}",
            label(&s.name),
            s.parse_errors
        );
    }
    family(
        &mut m,
        "pgvigil_log_lag_seconds",
        "gauge",
        "Wall-clock time minus the time of the newest event read.",
    );
    for s in &servers {
        if let Some(l) = s.lag_seconds {
            let _ = writeln!(
                m,
                "pgvigil_log_lag_seconds{{server=\"{}\"}} {l}",
                label(&s.name)
            );
        }
    }
    family(
        &mut m,
        "pgvigil_open_alerts",
        "gauge",
        "Active or in-progress alerts.",
    );
    for s in &servers {
        let _ = writeln!(
            m,
            "pgvigil_open_alerts{{server=\"{}\"}} {}",
            label(&s.name),
            s.open_alerts
        );
    }
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
    family(
        &mut m,
        "pgvigil_notifications_pending",
        "gauge",
        "Notifications not yet delivered.",
    );
    let _ = writeln!(m, "pgvigil_notifications_pending {backlog}");
    family(
        &mut m,
        "pgvigil_notifications_failing",
        "gauge",
        "Undelivered notifications whose last attempt failed.",
    );
    let _ = writeln!(m, "pgvigil_notifications_failing {failing}");
    let c = &st.counters;
    family(
        &mut m,
        "pgvigil_notifications_sent_total",
        "counter",
        "Notifications delivered by this process.",
    );
    let _ = writeln!(
        m,
        "pgvigil_notifications_sent_total {}",
        c.notifications_sent.load(Ordering::Relaxed)
    );
    family(
        &mut m,
        "pgvigil_notification_failures_total",
        "counter",
        "Failed delivery attempts by this process.",
    );
    let _ = writeln!(
        m,
        "pgvigil_notification_failures_total {}",
        c.notification_failures.load(Ordering::Relaxed)
    );
    family(
        &mut m,
        "pgvigil_alerts_suppressed_total",
        "counter",
        "Alerts not raised because the server's policy turns them off.",
    );
    let _ = writeln!(
        m,
        "pgvigil_alerts_suppressed_total {}",
        c.alerts_suppressed.load(Ordering::Relaxed)
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
