//! `/console/servers` and `/console/servers/{server}`: each server's agent health (last
//! report, lag, parse errors, the files it follows), whether it is still learning and for how
//! long, its posture scan, and what it has learned is normal.

use super::{failed, head, layout, page, refused, s, view, Signed};
use crate::api::{blocking, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::Value;
use std::sync::Arc;
use store::ServerStatus;

/// The profile's kinds of entity, in the order shown, with their headings.
const PROFILE_PARTS: [(&str, &str); 10] = [
    ("principals", "Principals (roles that log in)"),
    ("countries", "Countries"),
    ("principalCountries", "Countries per principal"),
    ("asns", "Networks (ASN)"),
    ("cloudProviders", "Cloud providers"),
    ("cloudRegions", "Cloud regions"),
    ("applications", "Applications"),
    ("fingerprints", "Client fingerprints (proxy)"),
    ("domains", "Client domains (reverse DNS)"),
    (
        "announcedRoles",
        "Roles created or enabled by known principals",
    ),
];

/// "learning, 12 days left", "active", "waiting for a first login".
fn mode(sv: &ServerStatus, now: i64) -> String {
    match (sv.mode, sv.learning_until.as_deref()) {
        ("learning", Some(until)) => {
            let left = chrono::DateTime::parse_from_rfc3339(until)
                .map(|t| (t.timestamp_millis() - now).max(0) / 86_400_000)
                .unwrap_or(0);
            // Learning runs in event time: a log read late is still learning.
            match left {
                0 => "learning, less than a day left".into(),
                1 => "learning, 1 day left".into(),
                n => format!("learning, {n} days left"),
            }
        }
        ("waiting", _) => "waiting for a first login".into(),
        (m, _) => m.to_string(),
    }
}

/// The agent's last report and how far behind the log it was.
fn health(sv: &ServerStatus, now: i64) -> Markup {
    html! {
        @match &sv.reported_at {
            Some(t) => {
                "reported " (view::when(now, t))
                @if let Some(l) = sv.lag_seconds { ", " (format!("{l:.1}")) " s behind its log" }
            }
            None => { "never reported" }
        }
        @if sv.parse_errors > 0 { "; " strong.error { (sv.parse_errors) " lines not understood" } }
    }
}

/// What the agent follows: its open files with their format and what is left to read, the
/// files closed until they grow, or the stream it reads instead.
fn inputs(sv: &ServerStatus) -> Markup {
    let Some(i) = &sv.inputs else {
        return html! { "not reported yet" };
    };
    let open = i["open"].as_array().cloned().unwrap_or_default();
    let more = i["openTotal"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(open.len() as u64);
    html! {
        @if let Some(stream) = i["stream"].as_str() { (stream) }
        @else if open.is_empty() { "no log file open" }
        ul.inputs { @for f in &open { li {
            code { (s(f, "path")) } " (" (s(f, "format"))
            @if let Some(b) = f["bytesBehind"].as_u64().filter(|b| *b > 0) { ", " (b) " bytes to read" }
            ")"
        } } }
        @if more > 0 { p.hint { "and " (more) " more open" } }
        @if let Some(c) = i["closed"].as_u64().filter(|c| *c > 0) {
            p.hint { (c) " older files closed, read again if they grow" }
        }
    }
}

/// The posture scan in a few words: its findings by severity.
fn posture_summary(p: &Value) -> String {
    if !p["error"].is_null() {
        return format!("scan failed: {}", s(p, "error"));
    }
    let Some(findings) = p["findings"].as_array() else {
        return "not scanned".into();
    };
    if findings.is_empty() {
        return "no findings".into();
    }
    let by = |sev: &str| findings.iter().filter(|f| f["severity"] == sev).count();
    let parts: Vec<String> = ["High", "Medium", "Low"]
        .iter()
        .filter(|sev| by(sev) > 0)
        .map(|sev| format!("{} {sev}", by(sev)))
        .collect();
    format!(
        "{} finding{}: {}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

pub(super) async fn list_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
) -> Response {
    let store = st.store.clone();
    let got = blocking(move || {
        let servers = store.list_servers()?;
        let mut postures = Vec::new();
        for sv in &servers {
            postures.push(store.server_posture(&sv.name)?.flatten());
        }
        Ok((servers, postures))
    })
    .await;
    let (servers, postures) = match got {
        Ok(v) => v,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    let now = store::now_ms();
    let body = html! {
        @if servers.is_empty() {
            p { "No server has reported yet." }
        } @else {
            table {
                caption { "Servers: their agents, whether each is still learning what is normal, their posture" }
                thead { (head(&["Server", "Mode", "Open alerts", "Agent", "Last event", "Posture", "Policy"])) }
                tbody { @for (sv, posture) in servers.iter().zip(&postures) { tr {
                    td { (view::server(&sv.name)) }
                    td { (mode(sv, now)) }
                    td { a href={"/console/alerts?status=Active&server=" (sv.name)} { (sv.open_alerts) } }
                    td { (health(sv, now)) }
                    td { @if let Some(t) = &sv.last_event { (view::when(now, t)) } }
                    td { @match posture { Some(p) => { (posture_summary(p)) }, None => { "not scanned" } } }
                    td { a href={"/console/servers/" (sv.name) "/policy"} { "Alert policy" } }
                } } }
            }
        }
    };
    page(
        StatusCode::OK,
        layout("Servers", Some((&caller, &csrf)), body),
    )
}

pub(super) async fn server_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(server): Path<String>,
) -> Response {
    let store = st.store.clone();
    let name = server.clone();
    let got = blocking(move || {
        let Some(profile) = store.server_profile(&name)? else {
            return Ok(None);
        };
        let status = store.list_servers()?.into_iter().find(|s| s.name == name);
        let posture = store.server_posture(&name)?.flatten();
        Ok(Some((profile, status, posture)))
    })
    .await;
    let (profile, status, posture) = match got {
        Ok(Some(x)) => x,
        Ok(None) => return refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such server."),
        Err(e) => return failed(&caller, &csrf, &e),
    };
    let now = store::now_ms();
    let title = format!("Server {server}");
    let body = html! {
        @if let Some(sv) = &status {
            section {
                h2 { "Agent" }
                dl {
                    dt { "Mode" } dd { (mode(sv, now)) }
                    dt { "Health" } dd { (health(sv, now)) }
                    dt { "Log read" } dd {
                        (sv.events) " events"
                        @if let (Some(a), Some(b)) = (&sv.first_event, &sv.last_event) { ", from " (view::when(now, a)) " to " (view::when(now, b)) }
                    }
                    dt { "Open alerts" } dd { a href={"/console/alerts?status=Active&server=" (sv.name)} { (sv.open_alerts) } }
                    dt { "Follows" } dd { (inputs(sv)) }
                }
            }
        }
        section.posture {
            h2 { "Posture scan" }
            @match &posture {
                None => { p.hint { "Not scanned: set scan.url in the agent's configuration for a scan at its start and every interval after." } }
                Some(p) => {
                    p.meta { "Scanned " (view::when(now, s(p, "scannedAt"))) ": " (posture_summary(p)) "." }
                    @let findings = p["findings"].as_array().cloned().unwrap_or_default();
                    @if !findings.is_empty() {
                        div.table-wrap { table.alerts {
                            thead { (head(&["Severity", "Finding", "Evidence", "Fix"])) }
                            tbody { @for f in &findings { tr {
                                td data-label="Severity" { span class={"sev " (s(f, "severity"))} { (s(f, "severity")) } }
                                td data-label="Finding" { (s(f, "title")) @if let Some(c) = f["cis"]["item"].as_str() { br; small { "CIS " (c) } } }
                                td data-label="Evidence" { (s(f, "evidence")) }
                                td data-label="Fix" { (s(f, "fix")) }
                            } } }
                        } }
                    }
                }
            }
        }
        h2 { "What is normal for " (server) }
        @match &profile {
            None => p { "The agent has not sent a profile yet." },
            Some(p) => {
                p.meta {
                    "Learning since " (s(p, "firstLogin")) ", until " (s(p, "learningUntil"))
                    "; entities unseen for " (p["lookBackDays"]) " days are forgotten. Alerts compare new logins with these."
                }
                @for (key, heading) in PROFILE_PARTS {
                    @let rows = p[key].as_array().cloned().unwrap_or_default();
                    section {
                        h3 { (heading) }
                        @if rows.is_empty() { p.hint { "None seen." } } @else {
                            table {
                                thead { (head(&["Seen", "First seen", "Last seen", "Count"])) }
                                tbody { @for r in &rows { tr {
                                    td { (s(r, "name")) } td { (s(r, "firstSeen")) } td { (s(r, "lastSeen")) } td { (r["count"]) }
                                } } }
                            }
                        }
                    }
                }
            }
        }
        p { a href={"/console/servers/" (server) "/policy"} { "Alert policy of " (server) } }
    };
    page(StatusCode::OK, layout(&title, Some((&caller, &csrf)), body))
}
