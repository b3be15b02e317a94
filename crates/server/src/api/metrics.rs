//! `GET /metrics` in the Prometheus text format.

use super::{blocking, ApiResult, ApiState};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
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
    servers: &[store::ServerStatus],
    value: impl Fn(&store::ServerStatus) -> Option<String>,
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

/// The proxy's figures, when this process runs it.
fn proxy(m: &mut String, p: &proxy::ProxyStats) {
    let counters = [
        (
            "pgvigil_proxy_connections_total",
            "Client connections accepted.",
            p.accepted,
        ),
        (
            "pgvigil_proxy_logins_total",
            "Logins through the proxy that succeeded.",
            p.logins,
        ),
        (
            "pgvigil_proxy_invalid_startups_total",
            "Connections that sent what is not PostgreSQL's protocol.",
            p.invalid_startup,
        ),
        (
            "pgvigil_proxy_timeouts_total",
            "Connections cut for not finishing their login in time (or, with every client slot taken, the oldest not logged in yet).",
            p.timeouts,
        ),
        (
            "pgvigil_proxy_cancels_total",
            "Cancel requests (passed on only with the key of a session relayed now).",
            p.cancels,
        ),
        (
            "pgvigil_proxy_spares_used_total",
            "Logins that went over a spare connection to the server.",
            p.spares_used,
        ),
        (
            "pgvigil_proxy_tls_retries_total",
            "Connections that were a client's retry without TLS after the proxy declined it.",
            p.tls_retries,
        ),
        (
            "pgvigil_proxy_logins_held_total",
            "Logins the server accepted amid failures from their source, held until detection had acted on those failures.",
            p.held,
        ),
        (
            "pgvigil_proxy_events_dropped_total",
            "Events the proxy dropped because detection was too far behind to take them (each waited 2 s for room first).",
            p.events_dropped,
        ),
    ];
    for (name, help, v) in counters {
        single(m, name, "counter", help, v);
    }
    let name = "pgvigil_proxy_refused_total";
    family(m, name, "counter", "Connections refused, by reason.");
    let _ = writeln!(m, "{name}{{reason=\"blocked\"}} {}", p.refused_blocked);
    let _ = writeln!(m, "{name}{{reason=\"limit\"}} {}", p.refused_limit);
    let gauges = [
        (
            "pgvigil_proxy_clients",
            "Client connections open.",
            p.clients,
        ),
        (
            "pgvigil_proxy_spare_connections",
            "Spare connections to the server ready.",
            p.spares_ready,
        ),
        (
            "pgvigil_proxy_blocked_sources",
            "Sources the proxy refuses now.",
            p.blocked,
        ),
    ];
    for (name, help, v) in gauges {
        single(m, name, "gauge", help, v);
    }
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
    let ship = &c.ship;
    if ship.active.load(Ordering::Relaxed) {
        let oldest = ship.oldest_ms.load(Ordering::Relaxed);
        let age = if oldest > 0 {
            (store::now_ms() - oldest).max(0) / 1000
        } else {
            0
        };
        for (name, kind, help, v) in [
            (
                "pgvigil_ship_backlog_batches",
                "gauge",
                "Batches (alerts, reports) kept here for the central store.",
                ship.backlog.load(Ordering::Relaxed),
            ),
            (
                "pgvigil_ship_oldest_seconds",
                "gauge",
                "Age of the oldest batch kept here for the central store.",
                age as u64,
            ),
            (
                "pgvigil_shipped_batches_total",
                "counter",
                "Batches the central store took from this agent.",
                ship.shipped.load(Ordering::Relaxed),
            ),
            (
                "pgvigil_ship_unreachable",
                "gauge",
                "1 when the last try to reach the central store failed.",
                ship.unreachable.load(Ordering::Relaxed) as u64,
            ),
        ] {
            single(&mut m, name, kind, help, v);
        }
    }
    let f = &c.follower;
    if f.active.load(Ordering::Relaxed) {
        let g = |x: &AtomicU64| x.load(Ordering::Relaxed);
        for (name, kind, help, v) in [
            (
                "pgvigil_follower_files",
                "gauge",
                "Log files followed (open, and closed until they grow).",
                g(&f.files),
            ),
            (
                "pgvigil_follower_open_files",
                "gauge",
                "Followed log files open now.",
                g(&f.open),
            ),
            (
                "pgvigil_follower_bytes_behind",
                "gauge",
                "Bytes written to the followed logs and not read yet.",
                g(&f.bytes_behind),
            ),
            (
                "pgvigil_follower_read_errors_total",
                "counter",
                "Reads of followed logs that failed.",
                g(&f.read_errors),
            ),
            (
                "pgvigil_follower_oversize_entries_total",
                "counter",
                "Log entries skipped for their length (input.max_entry_bytes).",
                g(&f.oversize),
            ),
            (
                "pgvigil_follower_recovered_bytes_total",
                "counter",
                "Bytes read from rotated copies after a copytruncate.",
                g(&f.recovered_bytes),
            ),
        ] {
            single(&mut m, name, kind, help, v);
        }
        family(
            &mut m,
            "pgvigil_logins_total",
            "counter",
            "Logins read since this process started (the logs' and the proxy's), by outcome.",
        );
        let _ = writeln!(
            m,
            "pgvigil_logins_total{{outcome=\"succeeded\"}} {}\npgvigil_logins_total{{outcome=\"failed\"}} {}",
            g(&f.logins_succeeded),
            g(&f.logins_failed)
        );
        let now = store::now_ms();
        let last = f.last_poll_ms.load(Ordering::Relaxed);
        if last > 0 {
            family(
                &mut m,
                "pgvigil_follower_last_poll_seconds",
                "gauge",
                "Seconds since the logs were last polled.",
            );
            let _ = writeln!(
                m,
                "pgvigil_follower_last_poll_seconds {}",
                (now - last) as f64 / 1000.0
            );
        }
        let newest = f.newest_event_ms.load(Ordering::Relaxed);
        if newest > 0 {
            family(
                &mut m,
                "pgvigil_follower_lag_seconds",
                "gauge",
                "Wall-clock time minus the time of the newest event read, now.",
            );
            let _ = writeln!(
                m,
                "pgvigil_follower_lag_seconds {}",
                (now - newest) as f64 / 1000.0
            );
        }
    }
    if let Some(p) = &st.proxy {
        proxy(&mut m, &p.stats());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m,
    )
        .into_response())
}
