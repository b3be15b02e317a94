//! `/console/alerts`: the alert list — filters (server, type, severity, status, source
//! address, principal, dates), the total that matches, sorted by a column (newest first,
//! highest severity first, or a column A to Z), paged; bulk dismiss / resolve of the rows
//! ticked; the current filter exported as CSV or JSON.

use super::{failed, layout, may_change, page, refused, s, view, Signed};
use crate::api::ApiState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use store::{AlertQuery, Order, PageKey, Role, Status, Store};

/// Counting stops here: past it the page says "more than".
const COUNT_CAP: u64 = 100_000;
/// Alerts in one export.
const EXPORT_CAP: usize = 10_000;
/// Alerts changed by one bulk action.
const BULK_CAP: usize = 1000;

/// The orders the list offers, in words.
const ORDERS: &[(Order, &str)] = &[
    (Order::Newest, "newest first"),
    (Order::Severity, "highest severity first"),
    (Order::AlertType, "by alert, A to Z"),
    (Order::Server, "by server, A to Z"),
    (Order::SourceIp, "by source, A to Z"),
    (Order::Principal, "by principal, A to Z"),
];

/// The list's columns, with the order a click on each heading sorts by.
const COLUMNS: &[(&str, Option<Order>)] = &[
    ("Severity", Some(Order::Severity)),
    ("Alert", Some(Order::AlertType)),
    ("Server", Some(Order::Server)),
    ("Source", Some(Order::SourceIp)),
    ("Principal", Some(Order::Principal)),
    ("Count", None),
    ("Status", None),
    ("Started", None),
    ("Last seen", Some(Order::Newest)),
];

/// The form's values as the API's filters: dates become the day's first and last instant.
fn filters_of(params: &HashMap<String, String>) -> HashMap<String, String> {
    let mut filters: HashMap<String, String> = HashMap::new();
    for (k, v) in params {
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "server" | "severity" | "status" | "alertType" | "skipToken" | "sourceIp"
            | "principal" => {
                filters.insert(k.clone(), v.trim().to_string());
            }
            "from" => {
                filters.insert(k.clone(), format!("{v}T00:00:00Z"));
            }
            "to" => {
                filters.insert(k.clone(), format!("{v}T23:59:59.999Z"));
            }
            "top" => {
                filters.insert("$top".into(), v.clone());
            }
            // Every order is the store's, over the whole list, not each page's.
            "sort" if Order::parse(v).is_some() => {
                filters.insert("orderBy".into(), v.clone());
            }
            _ => {}
        }
    }
    filters.entry("$top".into()).or_insert_with(|| "50".into());
    filters
}

/// The page's own parameters, for links that keep the filter (paging, export).
fn keep(params: &HashMap<String, String>, drop: &[&str]) -> String {
    let mut keys: Vec<(&String, &String)> = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !drop.contains(&k.as_str()))
        .collect();
    keys.sort();
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in keys {
        q.append_pair(k, v);
    }
    q.finish()
}

pub(super) async fn list_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = crate::api::alerts::parse_query(&filters_of(&params));
    let store = st.store.clone();
    let principal = params.get("principal").cloned().unwrap_or_default();
    // Filtered by a principal: what each server's profile knows of it (the pivot's other
    // half: is this role one the server sees every day?).
    let (servers, known) = crate::api::blocking(move || {
        let servers = store.list_servers()?;
        let mut known: Vec<(String, Value)> = Vec::new();
        if !principal.is_empty() {
            for sv in &servers {
                let profile = store
                    .server_profile(&sv.name)?
                    .flatten()
                    .unwrap_or_default();
                if let Some(p) = profile["principals"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == principal.as_str()))
                {
                    known.push((sv.name.clone(), p.clone()));
                }
            }
        }
        Ok((servers, known))
    })
    .await
    .unwrap_or_default();
    let (rows, next, total, problem) = match query {
        Ok(q) => {
            let store = st.store.clone();
            let got = crate::api::blocking(move || {
                let (rows, next) = store.list_stored(&q)?;
                let total = store.count_alerts(&q, COUNT_CAP)?;
                Ok((rows, next, total))
            })
            .await;
            match got {
                Ok((rows, next, total)) => (rows, next, total, None),
                Err(e) => (Vec::new(), None, 0, Some(e.message.clone())),
            }
        }
        Err(e) => (Vec::new(), None, 0, Some(e.message.clone())),
    };
    let order = params
        .get("sort")
        .and_then(|v| Order::parse(v))
        .unwrap_or_default();
    let older = next.map(|key| {
        let kept: HashMap<String, String> = params
            .iter()
            .filter(|(k, v)| !v.is_empty() && k.as_str() != "skipToken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::api::alerts::next_link(&kept, &key).replacen("/alerts?", "/console/alerts?", 1)
    });
    let pick = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let filter = keep(&params, &["skipToken", "top"]);
    let back = format!("/console/alerts?{}", keep(&params, &[]));
    let now = store::now_ms();
    let can_edit = caller.role == Role::Admin;
    let body = html! {
        form.filters method="get" action="/console/alerts" {
            label { "Server "
                select name="server" {
                    option value="" selected[pick("server").is_empty()] { "any" }
                    @for sv in &servers { option value=(sv.name) selected[pick("server") == sv.name] { (sv.name) } }
                    @if !pick("server").is_empty() && !servers.iter().any(|sv| sv.name == pick("server")) {
                        option value=(pick("server")) selected { (pick("server")) }
                    }
                }
            }
            label { "Type "
                select name="alertType" {
                    option value="" selected[pick("alertType").is_empty()] { "any" }
                    @for t in model::alert::AlertType::ALL {
                        option value=(t.as_str()) selected[pick("alertType") == t.as_str()] { (t.title()) }
                    }
                }
            }
            label { "Severity "
                select name="severity" {
                    @for o in ["", "High", "Medium", "Low"] {
                        option value=(o) selected[pick("severity") == o] { @if o.is_empty() { "any" } @else { (o) } }
                    }
                }
            }
            label { "Status "
                select name="status" {
                    @for o in ["", "Active", "InProgress", "Dismissed", "Resolved"] {
                        option value=(o) selected[pick("status") == o] { @if o.is_empty() { "any" } @else { (o) } }
                    }
                }
            }
            label { "Source " input name="sourceIp" size="15" value=(pick("sourceIp")) placeholder="address"; }
            label { "Principal " input name="principal" size="12" value=(pick("principal")); }
            label { "From " input type="date" name="from" value=(pick("from")); }
            label { "To " input type="date" name="to" value=(pick("to")); }
            label { "Order "
                select name="sort" {
                    @for (o, words) in ORDERS {
                        option value=(o.name()) selected[order == *o] { (words) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        p.exports {
            "Export this filter: "
            a href={"/console/alerts/export?format=csv&" (filter)} download { "CSV" } " · "
            a href={"/console/alerts/export?format=json&" (filter)} download { "JSON" }
        }
        @if !pick("principal").is_empty() {
            section.principal {
                h2 { "Principal " (pick("principal")) }
                @if known.is_empty() {
                    p { "No server's profile knows this principal: it has not logged in successfully while pgvigil watched." }
                } @else {
                    ul { @for (sv, p) in &known { li {
                        "Known on " (view::server(sv)) ": " (p["count"]) " logins, first "
                        (view::when(now, s(p, "firstSeen"))) ", last " (view::when(now, s(p, "lastSeen"))) "."
                    } } }
                }
            }
        }
        @if let Some(p) = problem {
            p.error role="alert" { (p) }
        }
        @if rows.is_empty() {
            p { "No alerts." }
        } @else {
            form.bulk method="post" action="/console/alerts/bulk" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="back" value=(back);
                div.table-wrap {
                    table.alerts {
                        caption {
                            @if total >= COUNT_CAP { "More than " (COUNT_CAP) " alerts" } @else { (total) @if total == 1 { " alert" } @else { " alerts" } }
                            @if total as usize > rows.len() { ", " (rows.len()) " on this page" }
                            ", " (ORDERS.iter().find(|(o, _)| *o == order).map_or("newest first", |x| x.1))
                        }
                        thead { tr {
                            @if can_edit { th scope="col" { span.visually-hidden { "Select" } } }
                            @for (c, by) in COLUMNS {
                                @match by {
                                    Some(by) => {
                                        th scope="col" aria-sort=[(order == *by).then_some(if *by == Order::Newest { "descending" } else { "ascending" })] {
                                            a.sort href={"/console/alerts?" (keep(&params, &["skipToken", "sort"])) "&sort=" (by.name())} title={"Sort: " (ORDERS.iter().find(|(o, _)| o == by).map_or("", |x| x.1))} { (c) }
                                        }
                                    }
                                    None => { th scope="col" { (c) } }
                                }
                            }
                        } }
                        tbody {
                            @for a in rows.iter().map(|r| &r.alert) {
                                tr {
                                    @if can_edit { td { input type="checkbox" name="id" value=(a.id) aria-label={"Select " (a.display_name)}; } }
                                    td data-label="Severity" { (view::severity(a)) }
                                    td data-label="Alert" { a href={"/console/alerts/" (a.id)} { (a.display_name) } (view::badge(a)) }
                                    td data-label="Server" { (view::server(&a.server)) }
                                    td data-label="Source" { (view::source_of(a)) }
                                    td data-label="Principal" { (view::principal_of(a)) }
                                    td data-label="Count" { @if let Some(n) = view::count(a) { (n) } }
                                    td data-label="Status" { (a.status) }
                                    td data-label="Started" { (view::when(now, &a.start_time_utc)) }
                                    td data-label="Last seen" { (view::when(now, &a.end_time_utc)) }
                                }
                            }
                        }
                    }
                }
                @if can_edit {
                    div.actions role="group" aria-label="Change the status of the selected alerts" {
                        button type="submit" name="action" value="dismiss" { "Dismiss selected" }
                        button type="submit" name="action" value="resolve" { "Resolve selected" }
                    }
                }
            }
        }
        @if let Some(link) = older {
            p { a.older href=(link) rel="next" { "Older alerts →" } }
        }
    };
    page(
        StatusCode::OK,
        layout("Alerts", Some((&caller, &csrf)), body),
    )
}

/// Ticked alerts dismissed or resolved at once, each recorded as if done one by one.
pub(super) async fn bulk(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    body: axum::body::Bytes,
) -> Response {
    let (mut form_csrf, mut action, mut back, mut ids) =
        (String::new(), String::new(), String::new(), Vec::new());
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => form_csrf = v.into_owned(),
            "action" => action = v.into_owned(),
            "back" => back = v.into_owned(),
            "id" if ids.len() < BULK_CAP => ids.push(v.into_owned()),
            _ => {}
        }
    }
    if let Some(no) = may_change(&caller, &csrf, &form_csrf, "alerts") {
        return no;
    }
    let to = match action.as_str() {
        "dismiss" => Status::Dismissed,
        "resolve" => Status::Resolved,
        _ => {
            return refused(
                &caller,
                &csrf,
                StatusCode::BAD_REQUEST,
                "Selected alerts can be dismissed or resolved.",
            )
        }
    };
    for id in &ids {
        if let Err(e) = st.set_alert_status(id, to, &caller.name).await {
            return failed(&caller, &csrf, &e);
        }
    }
    tracing::info!(alerts = ids.len(), status = to.as_str(), by = %caller.name, "alerts changed in bulk in the console");
    // Back to the same list, and nowhere else.
    let back = if back.starts_with("/console/alerts?") && !back.contains("//") {
        back
    } else {
        "/console/alerts".into()
    };
    Redirect::to(&back).into_response()
}

/// A value for a spreadsheet cell: text a spreadsheet would run as a formula (role and
/// application names come from attackers) is prefixed with a quote.
fn cell(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_string()
    }
}

pub(super) async fn export(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut filters = filters_of(&params);
    filters.insert("$top".into(), "1000".into());
    filters.remove("skipToken");
    let q = match crate::api::alerts::parse_query(&filters) {
        Ok(q) => q,
        Err(e) => return refused(&caller, &csrf, StatusCode::BAD_REQUEST, &e.message),
    };
    let store = st.store.clone();
    if params.get("format").map(String::as_str) == Some("json") {
        // The records as the API serves them.
        let rows = match crate::api::blocking(move || every(&store, q, Store::list_alerts)).await {
            Ok(r) => r,
            Err(e) => return failed(&caller, &csrf, &e),
        };
        tracing::info!(alerts = rows.len(), by = %caller.name, "alerts exported from the console");
        let body = serde_json::to_vec_pretty(&rows).unwrap_or_default();
        return download(
            "application/json",
            "attachment; filename=\"pgvigil-alerts.json\"",
            body,
        );
    }
    let rows = match crate::api::blocking(move || every(&store, q, Store::list_stored)).await {
        Ok(r) => r,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    tracing::info!(alerts = rows.len(), by = %caller.name, "alerts exported from the console");
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "id",
        "alertType",
        "displayName",
        "severity",
        "status",
        "server",
        "sourceIp",
        "country",
        "principal",
        "database",
        "application",
        "count",
        "loginSucceeded",
        "startTimeUtc",
        "endTimeUtc",
    ]);
    for a in rows.iter().map(|r| &r.alert) {
        let e = &a.entities;
        let ent = |v: &Option<String>| cell(v.as_deref().unwrap_or(""));
        let _ = w.write_record([
            cell(&a.id),
            cell(a.alert_type.as_str()),
            cell(&a.display_name),
            cell(&a.severity.to_string()),
            cell(&a.status),
            cell(&a.server),
            ent(&e.source_ip),
            cell(view::country(a)),
            ent(&e.principal),
            ent(&e.database),
            ent(&e.application),
            view::count(a).map(|n| n.to_string()).unwrap_or_default(),
            view::succeeded(a).to_string(),
            cell(&a.start_time_utc),
            cell(&a.end_time_utc),
        ]);
    }
    download(
        "text/csv; charset=utf-8",
        "attachment; filename=\"pgvigil-alerts.csv\"",
        w.into_inner().unwrap_or_default(),
    )
}

/// One page of alerts and the key of the next.
type Page<T> = (Vec<T>, Option<PageKey>);

/// Every alert `q` matches, page after page by `list`, up to [`EXPORT_CAP`].
fn every<T>(
    store: &Store,
    mut q: AlertQuery,
    list: fn(&Store, &AlertQuery) -> store::Result<Page<T>>,
) -> store::Result<Vec<T>> {
    let mut all = Vec::new();
    loop {
        let (rows, next) = list(store, &q)?;
        all.extend(rows);
        match next {
            Some(k) if all.len() < EXPORT_CAP => q.after = Some(k),
            _ => break,
        }
    }
    all.truncate(EXPORT_CAP);
    Ok(all)
}

/// `disposition`: `attachment; filename="…"`.
fn download(kind: &'static str, disposition: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_from_attackers_do_not_run_in_a_spreadsheet() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("app"), "app");
    }
}
