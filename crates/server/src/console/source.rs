//! `/console/sources/{ip}`: one source address across the fleet — where it is (country, ASN,
//! cloud), whether it is on a threat list, when it was first and last seen, its alerts on
//! every server, and whether the proxy blocks it now (with "Lift the block").

use super::{failed, head, layout, notice, page, view, Signed};
use crate::api::{blocking, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use model::alert::{Alert, AlertType};
use model::place::AddressClass;
use std::sync::Arc;
use store::{AlertQuery, Role};

/// Alerts listed on the page; the count says how many there are in all.
const LISTED: usize = 200;
const COUNTED: u64 = 100_000;

pub(super) async fn source_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(ip): Path<String>,
) -> Response {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return notice(
            &caller,
            &csrf,
            StatusCode::NOT_FOUND,
            "Not an address",
            "Source pages are found by IP address.",
        );
    };
    let ip = addr.to_string();
    let store = st.store.clone();
    let q = AlertQuery {
        source_ip: Some(ip.clone()),
        top: LISTED,
        ..Default::default()
    };
    let data = blocking(move || {
        Ok::<_, store::StoreError>((store.list_stored(&q)?.0, store.count_alerts(&q, COUNTED)?))
    })
    .await;
    let (alerts, total) = match data {
        Ok(x) => x,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    let until = match st.blocked_until(addr).await {
        Ok(u) => u,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    let alerts: Vec<Alert> = alerts.into_iter().map(|r| r.alert).collect();
    // What the newest alert with a location knows of where the address is.
    let placed = alerts.iter().find(|a| a.entities.location.is_some());
    let loc = placed
        .and_then(|a| a.entities.location.clone())
        .unwrap_or_default();
    let cloud = placed
        .and_then(|a| a.entities.cloud.clone())
        .unwrap_or_default();
    let listed = alerts
        .iter()
        .find(|a| a.alert_type == AlertType::SuspiciousIpAnomaly);
    let first = alerts.iter().map(|a| a.start_time_utc.as_str()).min();
    let last = alerts.iter().map(|a| a.end_time_utc.as_str()).max();
    let mut servers: Vec<&str> = alerts.iter().map(|a| a.server.as_str()).collect();
    servers.sort_unstable();
    servers.dedup();
    let now = store::now_ms();
    let body = html! {
        section {
            h2 { "Where it is" }
            dl {
                dt { "Location" } dd {
                    @match (&loc.country, loc.address_class) {
                        (Some(c), _) => { (c) @if let Some(city) = &loc.city { ", " (city) } }
                        (None, Some(class)) if class != AddressClass::Public => { (class.as_str()) " address" }
                        _ => { "unknown" }
                    }
                }
                @if let Some(n) = loc.asn {
                    dt { "Network" } dd { "AS" (n) @if let Some(o) = &loc.org { " " (o) } }
                }
                @if let Some(p) = &cloud.provider {
                    dt { "Cloud" } dd { (p) @if let Some(r) = &cloud.region { " " (r) } }
                }
                dt { "Threat lists" } dd {
                    @match listed {
                        Some(a) => {
                            a href={"/console/alerts/" (a.id)} { "listed" }
                            ": " (a.anomaly_context)
                        }
                        None => { "not on the Tor exit list or a blocklist pgvigil reads" }
                    }
                }
                dt { "First seen" } dd { @if let Some(t) = first { (view::when(now, t)) } @else { "never" } }
                dt { "Last seen" } dd { @if let Some(t) = last { (view::when(now, t)) } @else { "never" } }
                dt { "Servers" } dd {
                    @for (i, sv) in servers.iter().enumerate() { @if i > 0 { ", " } (view::server(sv)) }
                }
            }
        }
        section.response {
            h2 { "Proxy" }
            @if let Some(u) = &until {
                p { "Blocked until " (u) " UTC." }
                @if caller.role == Role::Admin {
                    form.lift method="post" action={"/console/blocks/" (ip) "/lift"} {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="back" value="source";
                        button type="submit" { "Lift the block" }
                    }
                }
            } @else {
                p { "Not blocked." }
                @if let (Role::Admin, Some(newest)) = (caller.role, alerts.first()) {
                    (super::blocks::form(&ip, &newest.id, &csrf, "source"))
                    p.hint { "The block names its newest alert; proxies with active response on refuse it within a second." }
                }
            }
        }
        section {
            h2 { "Alerts" }
            @if alerts.is_empty() { p { "No alerts from this address." } } @else {
                div.table-wrap {
                    table.alerts {
                        caption {
                            @if total as usize > alerts.len() { "The newest " (alerts.len()) " of " (total) " alerts" }
                            @else { (total) @if total == 1 { " alert" } @else { " alerts" } }
                        }
                        thead { (head(&["Severity", "Alert", "Server", "Principal", "Count", "Status", "Last seen"])) }
                        tbody { @for a in &alerts { tr {
                            td data-label="Severity" { (view::severity(a)) }
                            td data-label="Alert" { a href={"/console/alerts/" (a.id)} { (a.display_name) } (view::badge(a)) }
                            td data-label="Server" { (view::server(&a.server)) }
                            td data-label="Principal" { (view::principal_of(a)) }
                            td data-label="Count" { @if let Some(n) = view::count(a) { (n) } }
                            td data-label="Status" { (a.status) }
                            td data-label="Last seen" { (view::when(now, &a.end_time_utc)) }
                        } } }
                    }
                }
            }
        }
    };
    page(
        StatusCode::OK,
        layout(&format!("Source {ip}"), Some((&caller, &csrf)), body),
    )
}
