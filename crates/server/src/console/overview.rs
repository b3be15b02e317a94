//! `/console`: the overview — open alerts by severity and type, failed logins and alerts per
//! hour as charts drawn on the server.

use super::{failed, head, layout, page, url_encode, view, Signed};
use crate::api::ApiState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;
use store::{AlertQuery, StoredAlert};

/// A bar chart as SVG, drawn on the server: no script, and a table of the same numbers for
/// screen readers and for reading exact values.
fn bar_chart(title: &str, what: &str, bars: &[(String, i64)]) -> Markup {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    // Room on the left for the count axis, below for the time axis.
    let (left, w, h, gap) = (44.0_f64, 760.0_f64, 160.0_f64, 2.0_f64);
    let plot = w - left;
    let bw = if bars.is_empty() {
        plot
    } else {
        plot / bars.len() as f64
    };
    // Times shown as people read them: `2026-11-28T13` is "11-28 13:00".
    let tick = |label: &str| match label.split_once('T') {
        Some((d, hour)) => format!("{} {hour}:00", d.get(5..).unwrap_or(d)),
        None => label.get(5..).unwrap_or(label).to_string(),
    };
    let ticks: Vec<usize> = if bars.len() > 1 {
        vec![0, bars.len() / 2, bars.len() - 1]
    } else {
        vec![0]
    };
    html! {
        figure.chart {
            svg width="100%" viewBox={"0 0 " (w) " " (h + 22.0)} role="img" aria-label=(title) {
                @for (i, (label, n)) in bars.iter().enumerate() {
                    @let bh = (*n as f64 / max as f64) * h;
                    rect x=(left + i as f64 * bw + gap / 2.0) y=(h - bh) width=((bw - gap).max(1.0)) height=(bh) {
                        title { (label) ": " (n) }
                    }
                }
                line.axis x1=(left) y1=(h) x2=(w) y2=(h) {}
                line.axis x1=(left) y1="0" x2=(left) y2=(h) {}
                text x=(left - 6.0) y="12" font-size="12" text-anchor="end" { (max) }
                text x=(left - 6.0) y=(h) font-size="12" text-anchor="end" { "0" }
                @for i in &ticks {
                    @let x = left + (*i as f64 + 0.5) * bw;
                    @let anchor = if *i == 0 { "start" } else if *i + 1 == bars.len() { "end" } else { "middle" };
                    text x=(if anchor == "start" { left } else if anchor == "end" { w } else { x }) y=(h + 18.0) font-size="12" text-anchor=(anchor) { (tick(&bars[*i].0)) }
                }
            }
            figcaption { span.legend aria-hidden="true" {} " " (what) " — " (title) " (UTC; the axis on the left counts " (what.to_lowercase()) " per bar)" }
            details {
                summary { "The numbers" }
                table { thead { (head(&["When (UTC)", what])) }
                    tbody { @for (label, n) in bars { tr { td { (label) } td { (n) } } } } }
            }
        }
    }
}

/// An alertType as the catalogue names it.
fn type_title(t: &str) -> &str {
    model::alert::AlertType::ALL
        .into_iter()
        .find(|x| x.as_str() == t)
        .map_or(t, |x| x.title())
}

/// Open alerts as the overview lists them: what, where, who, how many, how long ago.
fn open_alerts(rows: &[StoredAlert], now: i64) -> Markup {
    html! {
        @if rows.is_empty() { p.hint { "None open." } } @else {
            div.table-wrap { table.alerts {
                thead { (head(&["Alert", "Server", "Source", "Principal", "Count", "Last seen"])) }
                tbody { @for a in rows.iter().map(|r| &r.alert) { tr {
                    td data-label="Alert" { (view::alert(a)) }
                    td data-label="Server" { (view::server(&a.server)) }
                    td data-label="Source" { (view::source_of(a)) }
                    td data-label="Principal" { (view::principal_of(a)) }
                    td data-label="Count" { @if let Some(n) = view::count(a) { (n) } }
                    td data-label="Last seen" { (view::when(now, &a.end_time_utc)) }
                } } }
            } }
        }
    }
}

pub(super) async fn show(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let range = params.get("range").map(String::as_str).unwrap_or("24h");
    let (span_ms, hourly, range) = match range {
        "7d" => (7 * 86_400_000, false, "7d"),
        "30d" => (30 * 86_400_000, false, "30d"),
        _ => (86_400_000, true, "24h"),
    };
    let server = params.get("server").cloned().unwrap_or_default();
    let since = model::event::format_time(store::now_ms() - span_ms);
    let store = st.store.clone();
    let (since2, server2) = (since.clone(), server.clone());
    let data = crate::api::blocking(move || {
        // The newest and the highest open alerts, of the server chosen.
        let open = |by_severity: bool| AlertQuery {
            status: Some("Active".into()),
            server: (!server2.is_empty()).then(|| server2.clone()),
            simulated: Some(false),
            top: 8,
            order: if by_severity {
                store::Order::Severity
            } else {
                store::Order::Newest
            },
            ..Default::default()
        };
        Ok::<_, store::StoreError>((
            store.overview(&since2, hourly, &server2)?,
            store.list_servers()?,
            store.list_stored(&open(false))?.0,
            store.list_stored(&open(true))?.0,
        ))
    })
    .await;
    let (ov, servers, newest, highest) = match data {
        Ok(x) => x,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    // Every bucket of the range, empty ones too, so the chart's time axis is even.
    let width = if hourly { 13 } else { 10 };
    let step = if hourly { 3_600_000 } else { 86_400_000 };
    let start = store::now_ms() - span_ms;
    let labels: Vec<String> = (0..=(span_ms / step))
        .map(|i| model::event::format_time(start + i * step)[..width].to_string())
        .collect();
    let alerts: HashMap<&str, i64> = ov.timeline.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    let failed: HashMap<&str, i64> = ov.logins.iter().map(|(k, n, _)| (k.as_str(), *n)).collect();
    let series = |counts: &HashMap<&str, i64>| -> Vec<(String, i64)> {
        labels
            .iter()
            .map(|l| (l.clone(), counts.get(l.as_str()).copied().unwrap_or(0)))
            .collect()
    };
    let (alert_bars, failed_bars) = (series(&alerts), series(&failed));
    let succeeded: i64 = ov.logins.iter().map(|l| l.2).sum();
    let failed_total: i64 = ov.logins.iter().map(|l| l.1).sum();
    let per = if hourly { "hour" } else { "day" };
    let now = store::now_ms();
    let of = if server.is_empty() {
        "all servers".to_string()
    } else {
        server.clone()
    };
    let link = |r: &str| {
        if server.is_empty() {
            format!("/console?range={r}")
        } else {
            format!("/console?range={r}&server={}", url_encode(&server))
        }
    };
    let body = html! {
        form.filters method="get" action="/console" {
            label for="server" { "Server" }
            select #server name="server" {
                option value="" selected[server.is_empty()] { "All servers" }
                @for sv in &servers { option value=(sv.name) selected[sv.name == server] { (sv.name) } }
            }
            input type="hidden" name="range" value=(range);
            button type="submit" { "Show" }
        }
        nav.ranges aria-label="Time range" {
            @for r in ["24h", "7d", "30d"] {
                @if r == range { strong aria-current="page" { (r) } } @else { a href=(link(r)) { (r) } }
            }
        }
        section.cards {
            h2 { "Open alerts by severity" }
            ul.counts {
                @for sev in ["High", "Medium", "Low"] {
                    @let n = ov.open_by_severity.iter().find(|(s, _)| s == sev).map_or(0, |x| x.1);
                    li { a href={"/console/alerts?status=Active&severity=" (sev)} { span class={"sev " (sev)} { (sev) } " " strong { (n) } } }
                }
            }
        }
        section.open {
            h2 { "Highest open alerts" }
            (open_alerts(&highest, now))
            h2 { "Newest open alerts" }
            (open_alerts(&newest, now))
        }
        section {
            h2 { "Open alerts by type" }
            @if ov.open_by_type.is_empty() { p.hint { "None open." } } @else {
                table { tbody { @for (t, n) in &ov.open_by_type { tr {
                    td { a href={"/console/alerts?status=Active&alertType=" (t)} { (type_title(t)) } } td { (n) }
                } } } }
            }
        }
        section {
            h2 { "Alerts started, last " (range) ", " (of) }
            (bar_chart(&format!("Alerts started per {per} since {since}"), "Alerts", &alert_bars))
        }
        section {
            h2 { "Failed logins, last " (range) ", " (of) }
            p.meta.logins { (failed_total) " failed and " (succeeded) " successful logins." }
            (bar_chart(&format!("Failed logins per {per} since {since}"), "Failed logins", &failed_bars))
        }
        section {
            h2 { "Top sources, last " (range) }
            @if ov.top_sources.is_empty() { p.hint { "None." } } @else {
                table {
                    thead { (head(&["Source", "Alerts", "Country", "Cloud"])) }
                    tbody { @for (ip, n, country, cloud) in &ov.top_sources { tr {
                        td { (view::source(ip)) } td { (n) } td { (country.as_deref().unwrap_or("")) } td { (cloud.as_deref().unwrap_or("")) }
                    } } }
                }
            }
        }
        section {
            h2 { "Servers" }
            table {
                thead { (head(&["Server", "Mode", "Open alerts", "Last event (UTC)"])) }
                tbody { @for sv in &servers { tr {
                    td { a href={"/console/servers/" (sv.name)} { (sv.name) } } td { (sv.mode) } td { (sv.open_alerts) } td { (sv.last_event.as_deref().unwrap_or("")) }
                } } }
            }
        }
    };
    page(
        StatusCode::OK,
        layout("Overview", Some((&caller, &csrf)), body),
    )
}
