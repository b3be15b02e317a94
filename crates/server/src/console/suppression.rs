//! `/console/suppression`: the suppression rules, listed, created (also from an alert's page,
//! its type, server, source and principal filled in), edited and deleted. The form becomes the
//! same body as `PUT /alertsSuppressionRules/{name}`, checked by the same code.

use super::{failed, layout, may_change, page, refused, Signed};
use crate::api::{blocking, ApiState, Caller};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use model::suppression::{Field, Rule, RuleError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use store::Role;

/// The form's fields; conditions are lists separated by commas, spaces or line breaks.
#[derive(Debug, Default, Clone)]
struct RuleForm {
    csrf: String,
    name: String,
    alert_type: String,
    state: String,
    reason: String,
    comment: String,
    /// `YYYY-MM-DD` (the end of that day, UTC), or a full RFC 3339 time.
    expires: String,
    servers: String,
    sources: String,
    principals: String,
    databases: String,
    applications: String,
}

/// The form field each condition is written in.
const CONDITION_FIELDS: [(Field, &str); 5] = [
    (Field::Server, "servers"),
    (Field::SourceIp, "sources"),
    (Field::Principal, "principals"),
    (Field::Database, "databases"),
    (Field::Application, "applications"),
];

impl RuleForm {
    fn parse(body: &[u8]) -> RuleForm {
        let mut f = RuleForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            match k.as_ref() {
                "csrf" => f.csrf = v,
                "name" => f.name = v,
                "alert_type" => f.alert_type = v,
                "state" => f.state = v,
                "reason" => f.reason = v,
                "comment" => f.comment = v,
                "expires" => f.expires = v,
                "servers" => f.servers = v,
                "sources" => f.sources = v,
                "principals" => f.principals = v,
                "databases" => f.databases = v,
                "applications" => f.applications = v,
                _ => {}
            }
        }
        f
    }

    fn of_rule(r: &Rule) -> RuleForm {
        let mut f = RuleForm {
            name: r.name.clone(),
            alert_type: r.alert_type.map_or("*", |t| t.as_str()).to_string(),
            state: if r.enabled { "Enabled" } else { "Disabled" }.into(),
            reason: r.reason.clone(),
            comment: r.comment.clone(),
            expires: r.expires.clone().unwrap_or_default(),
            ..RuleForm::default()
        };
        for c in &r.scope {
            let v = c.values().join(", ");
            match c.field() {
                Field::Server => f.servers = v,
                Field::SourceIp => f.sources = v,
                Field::Principal => f.principals = v,
                Field::Database => f.databases = v,
                Field::Application => f.applications = v,
            }
        }
        f
    }

    /// Filled in from an alert's page: `?alertType=…&server=…&sourceIp=…&principal=…`.
    fn of_query(q: &HashMap<String, String>) -> RuleForm {
        let g = |k: &str| q.get(k).cloned().unwrap_or_default();
        RuleForm {
            alert_type: g("alertType"),
            servers: g("server"),
            sources: g("sourceIp"),
            principals: g("principal"),
            applications: g("application"),
            state: "Enabled".into(),
            ..RuleForm::default()
        }
    }

    fn text(&self, field: &str) -> &str {
        match field {
            "servers" => &self.servers,
            "sources" => &self.sources,
            "principals" => &self.principals,
            "databases" => &self.databases,
            _ => &self.applications,
        }
    }

    /// The API body the form stands for. Names may hold spaces only in the principal,
    /// database and application lists when one value is given per line.
    fn body(&self) -> Value {
        let split = |s: &str, by_line: bool| -> Vec<String> {
            let parts: Vec<&str> = if by_line && s.contains('\n') {
                s.lines().collect()
            } else if by_line {
                s.split(',').collect()
            } else {
                s.split(|c: char| c == ',' || c.is_whitespace()).collect()
            };
            parts
                .into_iter()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        };
        let all_of: Vec<Value> = CONDITION_FIELDS
            .iter()
            .filter_map(|(f, name)| {
                let by_line = !matches!(f, Field::Server | Field::SourceIp);
                let v = split(self.text(name), by_line);
                (!v.is_empty()).then(|| json!({"field": f.as_str(), "in": v}))
            })
            .collect();
        let expires = self.expires.trim();
        let expires = if expires.is_empty() {
            Value::Null
        } else if expires.len() == 10 {
            // A date: the rule lasts through that day.
            json!(format!("{expires}T23:59:59Z"))
        } else {
            json!(expires)
        };
        json!({"properties": {
            "alertType": self.alert_type,
            "state": if self.state == "Disabled" { "Disabled" } else { "Enabled" },
            "reason": self.reason,
            "comment": self.comment,
            "expirationDateUtc": expires,
            "suppressionAlertsScope": {"allOf": all_of},
        }})
    }
}

/// The form field an error of the rule's body belongs to.
fn field_of(path: &str) -> &'static str {
    let p = path.strip_prefix("properties.").unwrap_or(path);
    if p == "name" {
        "name"
    } else if p.starts_with("alertType") {
        "alert_type"
    } else if p.starts_with("reason") {
        "reason"
    } else if p.starts_with("comment") {
        "comment"
    } else if p.starts_with("expirationDateUtc") {
        "expires"
    } else {
        "conditions"
    }
}

fn conditions_text(r: &Rule) -> String {
    r.scope
        .iter()
        .map(|c| format!("{} in {}", c.field().label(), c.values().join(", ")))
        .collect::<Vec<_>>()
        .join("; and ")
}

fn rules_markup(
    rules: &[Rule],
    form: &RuleForm,
    error: Option<&RuleError>,
    editing: bool,
    caller: &Caller,
    csrf: &str,
    saved: bool,
) -> Markup {
    let now = store::now_utc();
    let can_edit = caller.role == Role::Admin;
    let err_for = |f: &str| {
        error
            .filter(|e| field_of(&e.field) == f)
            .map(|e| e.to_string())
    };
    html! {
        p.hint {
            "New alerts that match a rule's type and every condition are stored dismissed and sent to no one, until the rule expires. "
            "A rule never hides an escalation: an alert it dismissed that later succeeds or grows in severity is opened again and notified."
        }
        @if saved { p.saved role="status" { "Saved." } }
        @if rules.is_empty() {
            p { "No suppression rules." }
        } @else {
            div.table-wrap {
                table.rules {
                    caption { (rules.len()) @if rules.len() == 1 { " rule" } @else { " rules" } }
                    thead { tr { th { "Name" } th { "Alerts" } th { "Conditions" } th { "Reason" } th { "State" } th { "Expires" } @if can_edit { th { "" } } } }
                    tbody {
                        @for r in rules {
                            tr {
                                td data-label="Name" { a href={"/console/suppression/" (r.name)} { (r.name) } }
                                td data-label="Alerts" { (r.alert_type.map_or("every alert type", |t| t.title())) }
                                td data-label="Conditions" { (conditions_text(r)) }
                                td data-label="Reason" { (r.reason) @if !r.comment.is_empty() { br; small { (r.comment) } } }
                                td data-label="State" { (r.state(&now)) }
                                td data-label="Expires" { (r.expires.as_deref().unwrap_or("never")) }
                                @if can_edit {
                                    td {
                                        form method="post" action={"/console/suppression/" (r.name) "/delete"} {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button type="submit" aria-label={"Delete rule " (r.name)} { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_edit {
            @if let Some(e) = err_for("conditions") { p.error role="alert" { (e) } }
            form.policy method="post" action="/console/suppression" {
                input type="hidden" name="csrf" value=(csrf);
                fieldset {
                    legend { @if editing { "Edit rule " (form.name) } @else { "New rule" } }
                    label for="name" { "Name (letters, digits, - _ .)" }
                    input id="name" name="name" value=(form.name) required readonly[editing]
                        aria-invalid=[err_for("name").map(|_| "true")];
                    @if let Some(e) = err_for("name") { p.error role="alert" { (e) } }
                    label for="alert_type" { "Alert type" }
                    select id="alert_type" name="alert_type" {
                        option value="*" selected[form.alert_type == "*"] { "Every alert type (needs a condition)" }
                        @for t in model::alert::AlertType::ALL {
                            option value=(t.as_str()) selected[form.alert_type == t.as_str()] { (t.title()) }
                        }
                    }
                    @if let Some(e) = err_for("alert_type") { p.error role="alert" { (e) } }
                    @for (f, name) in CONDITION_FIELDS {
                        label for=(name) { "Only when the " (f.label()) " is one of (separated by commas" @if !matches!(f, Field::Server | Field::SourceIp) { " or lines" } ")" }
                        input id=(name) name=(name) value=(form.text(name))
                            placeholder=[matches!(f, Field::SourceIp).then_some("10.8.0.0/16, 192.0.2.7")];
                    }
                    label for="reason" { "Reason" }
                    input id="reason" name="reason" value=(form.reason) required
                        aria-invalid=[err_for("reason").map(|_| "true")];
                    @if let Some(e) = err_for("reason") { p.error role="alert" { (e) } }
                    label for="comment" { "Comment" }
                    input id="comment" name="comment" value=(form.comment);
                    label for="expires" { "Expires (a date, UTC; empty: never)" }
                    input id="expires" name="expires" type="date" value=(form.expires.get(..10).unwrap_or(&form.expires))
                        aria-invalid=[err_for("expires").map(|_| "true")];
                    @if let Some(e) = err_for("expires") { p.error role="alert" { (e) } }
                    label for="state" { "State" }
                    select id="state" name="state" {
                        option value="Enabled" selected[form.state != "Disabled"] { "Enabled" }
                        option value="Disabled" selected[form.state == "Disabled"] { "Disabled" }
                    }
                    button type="submit" { "Save rule" }
                }
            }
        } @else {
            p.hint { "A reader token can look, not change." }
        }
    }
}

async fn load(st: &ApiState) -> Result<Vec<Rule>, crate::api::ApiError> {
    let store = st.store.clone();
    blocking(move || store.suppression_rules()).await
}

/// The session's caller and CSRF token with the form sent, when it may change rules; or the
/// answer that ends the request.
fn change_form(
    Signed { caller, csrf, .. }: Signed,
    body: &[u8],
) -> Result<(Caller, String, RuleForm), Box<Response>> {
    let f = RuleForm::parse(body);
    match may_change(&caller, &csrf, &f.csrf, "suppression rules") {
        Some(no) => Err(Box::new(no)),
        None => Ok((caller, csrf, f)),
    }
}

/// The session's caller and CSRF token with the rules, or the answer that ends the request
/// (the way to sign in, or the store's failure).
async fn signed_in_with_rules(
    st: &Arc<ApiState>,
    Signed { caller, csrf, .. }: Signed,
) -> Result<(Caller, String, Vec<Rule>), Response> {
    match load(st).await {
        Ok(r) => Ok((caller, csrf, r)),
        Err(e) => Err(failed(&caller, &csrf, &e)),
    }
}

pub(super) async fn list_page(
    State(st): State<Arc<ApiState>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (caller, csrf, rules) = match signed_in_with_rules(&st, signed).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = RuleForm::of_query(&q);
    let body = rules_markup(
        &rules,
        &form,
        None,
        false,
        &caller,
        &csrf,
        q.contains_key("saved"),
    );
    page(
        StatusCode::OK,
        layout("Suppression rules", Some((&caller, &csrf)), body),
    )
}

pub(super) async fn rule_page(
    State(st): State<Arc<ApiState>>,
    signed: Signed,
    Path(name): Path<String>,
) -> Response {
    let (caller, csrf, rules) = match signed_in_with_rules(&st, signed).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(rule) = rules.iter().find(|r| r.name == name) else {
        return refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such rule.");
    };
    let body = rules_markup(
        std::slice::from_ref(rule),
        &RuleForm::of_rule(rule),
        None,
        true,
        &caller,
        &csrf,
        false,
    );
    page(
        StatusCode::OK,
        layout(
            &format!("Suppression rule {name}"),
            Some((&caller, &csrf)),
            body,
        ),
    )
}

pub(super) async fn save(
    State(st): State<Arc<ApiState>>,
    signed: Signed,
    body: axum::body::Bytes,
) -> Response {
    let (caller, csrf, f) = match change_form(signed, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now = store::now_utc();
    let rule = match Rule::from_body(f.name.trim(), &f.body(), &now) {
        Ok(r) => r,
        Err(e) => {
            let rules = load(&st).await.unwrap_or_default();
            let editing = rules.iter().any(|r| r.name == f.name);
            let markup = rules_markup(&rules, &f, Some(&e), editing, &caller, &csrf, false);
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                layout("Suppression rules", Some((&caller, &csrf)), markup),
            );
        }
    };
    let store = st.store.clone();
    let (r, who) = (rule.clone(), caller.name.clone());
    match blocking(move || store.put_suppression_rule(&r, &who)).await {
        Ok(_) => {
            st.settings_changed().await;
            tracing::info!(rule = %rule.name, by = %caller.name, "suppression rule saved in the console");
            Redirect::to("/console/suppression?saved").into_response()
        }
        Err(e) => refused(&caller, &csrf, StatusCode::CONFLICT, &e.message),
    }
}

pub(super) async fn delete(
    State(st): State<Arc<ApiState>>,
    signed: Signed,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (caller, csrf, _) = match change_form(signed, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let store = st.store.clone();
    let (n, who) = (name.clone(), caller.name.clone());
    match blocking(move || store.delete_suppression_rule(&n, &who)).await {
        Ok(true) => {
            st.settings_changed().await;
            tracing::info!(rule = %name, by = %caller.name, "suppression rule deleted in the console");
            Redirect::to("/console/suppression?saved").into_response()
        }
        Ok(false) => refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such rule."),
        Err(e) => failed(&caller, &csrf, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_the_api_body() {
        let f = RuleForm::parse(
            b"csrf=x&name=scanner&alert_type=PostgreSQL_BruteForce&state=Enabled&reason=weekly+scan\
              &sources=10.8.0.0%2F16%2C+192.0.2.7&servers=db1&principals=&expires=2026-12-31",
        );
        let r = Rule::from_body("scanner", &f.body(), "2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(r.expires.as_deref(), Some("2026-12-31T23:59:59.000Z"));
        assert_eq!(
            conditions_text(&r),
            "server in db1; and source address in 10.8.0.0/16, 192.0.2.7"
        );
        // Read back into the form, it is the same rule.
        let again = Rule::from_body(
            "scanner",
            &RuleForm::of_rule(&r).body(),
            "2026-01-01T00:00:00.000Z",
        )
        .unwrap();
        assert_eq!(again, r);
        // A principal with a space, one per line.
        let f = RuleForm::parse(b"name=m&alert_type=*&reason=r&principals=night+batch%0Anagios");
        let r = Rule::from_body("m", &f.body(), "2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(conditions_text(&r), "principal in night batch, nagios");
    }
}
