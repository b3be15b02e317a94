//! `/console/alerts/{id}`: one alert — its record, evidence and timeline, the source's other
//! alerts — and its actions (dismiss, activate, in progress, resolve).

use super::{blocks, head, layout, may_change, notice, page, s, view, CsrfForm, Signed};
use crate::api::ApiState;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use model::alert::Alert;
use model::place::AddressClass;
use serde_json::Value;
use std::sync::Arc;
use store::{AlertQuery, Role, Status};

pub(super) async fn show(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(id): Path<String>,
) -> Response {
    let store = st.store.clone();
    let id2 = id.clone();
    let stored = match crate::api::blocking(move || store.get_stored(&id2)).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return notice(
                &caller,
                &csrf,
                StatusCode::NOT_FOUND,
                "No such alert",
                "There is no alert with this id.",
            )
        }
        Err(e) => {
            return notice(
                &caller,
                &csrf,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                &e.message,
            )
        }
    };
    let a = &stored.alert;
    let e = &a.entities;
    let loc = e.location.clone().unwrap_or_default();
    // Sample events and the proxy's response get their own sections; the rest as it is.
    let mut rest = a.evidence.value();
    let samples = rest
        .as_object_mut()
        .and_then(|o| o.remove("sampleEvents"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let response = rest
        .as_object_mut()
        .and_then(|o| o.remove("activeResponse"));
    let evidence = serde_json::to_string_pretty(&rest).unwrap_or_default();
    // The evidence's plain facts (numbers, words, short lists) as a list; the rest stays in
    // the raw JSON.
    let facts: Vec<(String, String)> = rest
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        Value::String(t) => t.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
                        Value::Array(items) if !items.is_empty() && items.len() <= 20 => items
                            .iter()
                            .map(|i| match i {
                                Value::String(t) => Some(t.clone()),
                                Value::Number(n) => Some(n.to_string()),
                                _ => None,
                            })
                            .collect::<Option<Vec<_>>>()?
                            .join(", "),
                        _ => return None,
                    };
                    Some((words_of(k), text))
                })
                .collect()
        })
        .unwrap_or_default();
    let now = store::now_ms();
    // Other alerts about the same source, on any server: the Tor listing beside the brute
    // force, the fleet-wide incident beside one server's.
    let related: Vec<Alert> = match e.source_ip.as_deref() {
        Some(ip) => {
            let store = st.store.clone();
            let q = AlertQuery {
                source_ip: Some(ip.to_string()),
                top: 21,
                ..Default::default()
            };
            crate::api::blocking(move || store.list_stored(&q))
                .await
                .map(|(rows, _)| rows)
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.alert)
                .filter(|r| r.id != a.id)
                .take(20)
                .collect()
        }
        None => Vec::new(),
    };
    let status = a.status.as_str();
    // Whether the source is blocked now (the alert's evidence says only that it was).
    let source: Option<std::net::IpAddr> = e.source_ip.as_deref().and_then(|ip| ip.parse().ok());
    let blocked_now = match source {
        Some(ip) => st.blocked_until(ip).await.is_ok_and(|u| u.is_some()),
        None => false,
    };
    let actions: [(&str, &str, &str); 4] = [
        ("dismiss", "Dismiss", "Dismissed"),
        ("inProgress", "Mark in progress", "InProgress"),
        ("resolve", "Resolve", "Resolved"),
        ("activate", "Reactivate", "Active"),
    ];
    let body = html! {
        p.meta {
            (view::severity(a))
            " " (a.alert_type.as_str()) " · server " (view::server(&a.server)) " · " (status)
            " · started " (view::when(now, &a.start_time_utc)) ", last seen " (view::when(now, &a.end_time_utc))
            (view::badge(a))
        }
        @if caller.role == Role::Admin {
            div.actions role="group" aria-label="Change the status" {
                @for (action, label, to) in actions {
                    @if to != status {
                        form method="post" action={"/console/alerts/" (id) "/" (action)} {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { (label) }
                        }
                    }
                }
            }
        }
        section { h2 { "What happened" } p { (a.description) } }
        section { h2 { "Why it is unusual" } p { (a.anomaly_context) } }
        section {
            h2 { "Entities" }
            dl {
                dt { "Source" } dd { @match e.source_ip.as_deref() { Some(ip) => { (view::source(ip)) }, None => { "unknown" } } }
                dt { "Location" } dd {
                    @match (&loc.country, loc.address_class) {
                        (Some(c), _) => { (c) }
                        (None, Some(class)) if class != AddressClass::Public => { (class.as_str()) " address" }
                        _ => { "unknown country" }
                    }
                    @if let Some(c) = &loc.city { ", " (c) }
                    @if let Some(n) = loc.asn { " · AS" (n) }
                    @if let Some(o) = &loc.org { " " (o) }
                }
                // "No cloud" beside a network named after one would read as a contradiction:
                // the network's owner is shown above, the cloud only when its ranges say so.
                @if let Some(p) = e.cloud.as_ref().and_then(|c| c.provider.as_deref()) {
                    dt { "Cloud" } dd { (p) " " (e.cloud.as_ref().and_then(|c| c.region.as_deref()).unwrap_or("")) }
                } @else if loc.org.is_none() {
                    dt { "Cloud" } dd { "not in a published cloud range" }
                }
                dt { "Principal" } dd { (view::principal(e.principal.as_deref().unwrap_or(""))) }
                dt { "Database" } dd { (e.database.as_deref().unwrap_or("")) }
                dt { "Application" } dd { (e.application.as_deref().unwrap_or("")) }
                dt { "Client fingerprint" } dd { (e.fingerprint.as_deref().unwrap_or("not seen (logs only)")) }
            }
        }
        section.take-action {
            h2 { "Take action" }
            h3 { "What to do" }
            ol { @for step in &a.remediation_steps { li { (step) } } }
            h3 { "What pgvigil can do" }
            ul.can {
                @if let Some(ip) = e.source_ip.as_deref() {
                    li { "See everything about " (view::source(ip)) ": its alerts on every server, where it is, whether it is blocked." }
                }
                @if caller.role == Role::Admin {
                    li { a href=(suppress_link(a)) { "Suppress similar alerts…" } ": a rule that dismisses future alerts like this one (a known scanner, a monitoring role), with an expiry." }
                    @if let (Some(ip), true) = (source, blocked_now) {
                        li {
                            form.lift method="post" action={"/console/blocks/" (ip) "/lift"} {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="alert" value=(id);
                                button type="submit" { "Lift the block" }
                                " of " (ip) " at the proxy, if it is a false positive."
                            }
                        }
                    } @else if let Some(ip) = source {
                        li {
                            (blocks::form(&ip.to_string(), &id, &csrf, "alert"))
                            " Proxies with active response on refuse it within a second."
                        }
                    }
                } @else {
                    li { "An admin token can dismiss it, suppress alerts like it, or block or unblock its source at the proxy." }
                }
            }
        }
        section {
            h2 { "MITRE ATT&CK" }
            ul.techniques { @for t in &a.techniques { li { (view::technique(t)) } } }
        }
        section {
            h2 { "History" }
            ul.history { @for h in &stored.history {
                li { (view::history_entry(now, h)) }
            } }
        }
        @if let Some(r) = &response {
            section.response {
                h2 { "Active response" }
                @if s(r, "action") == "blocked" {
                    p { "The proxy refused new connections from " (e.source_ip.as_deref().unwrap_or("this source"))
                        " from " (s(r, "since")) " until " (s(r, "until")) " (UTC)." }
                    @if blocked_now {
                        p { "It is blocked now (see Take action to lift the block)." }
                    } @else {
                        p { "It is not blocked now." }
                    }
                } @else {
                    p { "Not blocked: " (s(r, "reason")) "." }
                }
            }
        }
        section {
            h2 { "Evidence timeline" }
            @if samples.is_empty() { p.hint { "No sample events." } } @else {
                div.table-wrap { table.samples {
                    caption { "Sample events, in order" }
                    thead { (head(&["Time (UTC)", "Event", "Source", "Principal", "Database", "Application", "Client", "Message"])) }
                    tbody { @for ev in &samples { tr {
                        td { (s(ev, "time")) } td { (s(ev, "kind")) }
                        td { (s(ev, "sourceIp")) @if let Some(p) = ev["sourcePort"].as_u64() { ":" (p) } }
                        td { (s(ev, "principal")) } td { (s(ev, "database")) } td { (s(ev, "application")) }
                        td {
                            (s(ev, "fingerprint"))
                            @if let Some(us) = ev["clientAuthUs"].as_u64() {
                                " (answered the login in " (format!("{:.1}", us as f64 / 1000.0)) " ms)"
                            }
                        }
                        td { @if let Some(c) = ev["sqlstate"].as_str() { code { (c) } " " } (s(ev, "message")) }
                    } } }
                } }
            }
        }
        section.related {
            h2 { "Related alerts" }
            @if related.is_empty() { p.hint { "No other alert about this source." } } @else {
                div.table-wrap { table.alerts {
                    caption { "Other alerts about " (e.source_ip.as_deref().unwrap_or("this source")) ", on any server" }
                    thead { (head(&["Alert", "Server", "Principal", "Status", "Last seen"])) }
                    tbody { @for r in &related { tr {
                        td data-label="Alert" { (view::alert(r)) }
                        td data-label="Server" { (view::server(&r.server)) }
                        td data-label="Principal" { (view::principal_of(r)) }
                        td data-label="Status" { (r.status) }
                        td data-label="Last seen" { (view::when(now, &r.end_time_utc)) }
                    } } }
                } }
            }
        }
        section {
            h2 { "Evidence" }
            @if !facts.is_empty() { dl.facts { @for (k, v) in &facts { dt { (k) } dd { (v) } } } }
            details { summary { "Raw evidence (JSON)" } pre { (evidence) } }
        }
        p { a href="/console/alerts" { "Back to the alerts" } }
    };
    page(
        StatusCode::OK,
        layout(&a.display_name, Some((&caller, &csrf)), body),
    )
}

pub(super) async fn act(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(no) = may_change(&caller, &csrf, &f.csrf, "alerts") {
        return no;
    }
    let Some(to) = Status::of_action(&action) else {
        return notice(
            &caller,
            &csrf,
            StatusCode::NOT_FOUND,
            "No such action",
            "Alert actions are dismiss, activate, inProgress and resolve.",
        );
    };
    // As through the API: dismissing or resolving lets a blocked source in again.
    match st.set_alert_status(&id, to, &caller.name).await {
        Ok(Some(_)) => {
            tracing::info!(alert = %id, status = to.as_str(), by = %caller.name, "alert status changed in the console");
            Redirect::to(&format!("/console/alerts/{id}")).into_response()
        }
        Ok(None) => notice(
            &caller,
            &csrf,
            StatusCode::NOT_FOUND,
            "No such alert",
            "There is no alert with this id.",
        ),
        Err(e) => notice(
            &caller,
            &csrf,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            &e.message,
        ),
    }
}

/// An evidence key in words: `failedLogins` → "Failed logins".
fn words_of(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The rule form filled in with an alert's type, server, source and principal.
fn suppress_link(a: &Alert) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("alertType", a.alert_type.as_str());
    q.append_pair("server", &a.server);
    let e = &a.entities;
    for (k, v) in [("sourceIp", &e.source_ip), ("principal", &e.principal)] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    format!("/console/suppression?{}", q.finish())
}
