//! `/console/servers/{server}/policy`: a server's security alert policy, shown and changed
//! (admins only).

use super::{failed, field_of, layout, may_change, page, refused, Signed};
use crate::api::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use store::Role;

/// The policy form as posted.
#[derive(Default)]
pub(super) struct PolicyForm {
    csrf: String,
    state: String,
    email_addresses: String,
    email_account_admins: Option<String>,
    retention_days: String,
    /// Checked categories arrive as `disabled=Brute_Force&disabled=…`.
    disabled: Vec<String>,
}

impl PolicyForm {
    /// Parsed by hand: repeated keys (`disabled`) make a list, which serde's form decoding
    /// does not.
    fn parse(body: &[u8]) -> PolicyForm {
        let mut f = PolicyForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "csrf" => f.csrf = v.into_owned(),
                "state" => f.state = v.into_owned(),
                "email_addresses" => f.email_addresses = v.into_owned(),
                "email_account_admins" => f.email_account_admins = Some(v.into_owned()),
                "retention_days" => f.retention_days = v.into_owned(),
                "disabled" => f.disabled.push(v.into_owned()),
                _ => {}
            }
        }
        f
    }
}

fn policy_markup(
    server: &str,
    p: &model::policy::Policy,
    values: Option<&PolicyForm>,
    error: Option<&model::policy::PolicyError>,
    can_edit: bool,
    csrf: &str,
    saved: bool,
) -> Markup {
    let err_for = |f: &str| {
        error
            .filter(|e| field_of(&e.field) == f)
            .map(|e| e.message.clone())
    };
    let emails = values
        .map(|v| v.email_addresses.clone())
        .unwrap_or_else(|| p.email_addresses.join("; "));
    let retention = values
        .map(|v| v.retention_days.clone())
        .unwrap_or_else(|| p.retention_days.to_string());
    let enabled = values.map_or(p.state == model::policy::PolicyState::Enabled, |v| {
        v.state == "Enabled"
    });
    let admins = values.map_or(p.email_account_admins, |v| v.email_account_admins.is_some());
    let disabled: Vec<String> = values.map_or(p.disabled_alerts.clone(), |v| v.disabled.clone());
    html! {
        @if saved { p.saved role="status" { "Saved." } }
        @if let Some(e) = err_for("form") { p.error role="alert" { (e) } }
        form.policy method="post" action={"/console/servers/" (server) "/policy"} {
            input type="hidden" name="csrf" value=(csrf);
            fieldset disabled[!can_edit] {
                legend { "Security alert policy of " (server) }
                label for="state" { "State" }
                select id="state" name="state" {
                    option value="Enabled" selected[enabled] { "Enabled" }
                    option value="Disabled" selected[!enabled] { "Disabled" }
                }
                fieldset.categories aria-describedby=[err_for("disabled").map(|_| "disabled-error")] {
                    legend { "Disabled alert categories" }
                    @for c in model::policy::CATEGORIES {
                        label { input type="checkbox" name="disabled" value=(c) checked[disabled.iter().any(|d| d == c)]; " " (c) }
                    }
                    @if let Some(e) = err_for("disabled") { p.error id="disabled-error" { (e) } }
                }
                label for="email_addresses" { "Email recipients (separated by ;)" }
                input id="email_addresses" name="email_addresses" value=(emails)
                    aria-invalid=[err_for("email_addresses").map(|_| "true")]
                    aria-describedby=[err_for("email_addresses").map(|_| "email-error")];
                @if let Some(e) = err_for("email_addresses") { p.error id="email-error" role="alert" { (e) } }
                label.inline { input type="checkbox" name="email_account_admins" value="on" checked[admins]; " Also email the administrators" }
                label for="retention_days" { "Keep alerts for (days, 0 = forever)" }
                input id="retention_days" name="retention_days" inputmode="numeric" value=(retention)
                    aria-invalid=[err_for("retention_days").map(|_| "true")]
                    aria-describedby=[err_for("retention_days").map(|_| "retention-error")];
                @if let Some(e) = err_for("retention_days") { p.error id="retention-error" role="alert" { (e) } }
                @if can_edit { button type="submit" { "Save" } }
            }
        }
        @if !can_edit { p.hint { "A reader token can look, not change." } }
    }
}

pub(super) async fn show(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(server): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if crate::api::policies::known_server(&st, &server)
        .await
        .is_err()
    {
        return refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such server.");
    }
    let store = st.store.clone();
    let name = server.clone();
    let p = match crate::api::blocking(move || store.get_policy(&name)).await {
        Ok(p) => p,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    let body = policy_markup(
        &server,
        &p,
        None,
        None,
        caller.role == Role::Admin,
        &csrf,
        q.contains_key("saved"),
    );
    page(
        StatusCode::OK,
        layout(
            &format!("Alert policy · {server}"),
            Some((&caller, &csrf)),
            body,
        ),
    )
}

pub(super) async fn save(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(server): Path<String>,
    body_bytes: axum::body::Bytes,
) -> Response {
    let f = PolicyForm::parse(&body_bytes);
    if let Some(no) = may_change(&caller, &csrf, &f.csrf, "the policy") {
        return no;
    }
    if crate::api::policies::known_server(&st, &server)
        .await
        .is_err()
    {
        return refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such server.");
    }
    let retention: Value = match f.retention_days.trim().parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => f.retention_days.clone().into(),
    };
    let body = serde_json::json!({"properties": {
        "state": f.state,
        "disabledAlerts": f.disabled,
        "emailAddresses": f.email_addresses,
        "emailAccountAdmins": f.email_account_admins.is_some(),
        "retentionDays": retention,
    }});
    match model::policy::Policy::from_put_body(&body, &server) {
        Ok(u) => {
            let st2 = st.clone();
            let (name, who) = (server.clone(), caller.name.clone());
            let saved = crate::api::blocking(move || {
                st2.store.put_policy(
                    &name,
                    &u,
                    &store::PolicyChange {
                        actor: &who,
                        channels: &st2.channels,
                        admins: &st2.admins,
                    },
                )
            });
            match saved.await {
                Ok(_) => {
                    st.settings_changed().await;
                    tracing::info!(server = %server, by = %caller.name, "policy changed in the console");
                    Redirect::to(&format!("/console/servers/{server}/policy?saved")).into_response()
                }
                Err(e) => refused(
                    &caller,
                    &csrf,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &e.message,
                ),
            }
        }
        Err(e) => {
            let store = st.store.clone();
            let name = server.clone();
            let p = crate::api::blocking(move || store.get_policy(&name))
                .await
                .unwrap_or_default();
            let markup = policy_markup(&server, &p, Some(&f), Some(&e), true, &csrf, false);
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                layout(
                    &format!("Alert policy · {server}"),
                    Some((&caller, &csrf)),
                    markup,
                ),
            )
        }
    }
}
