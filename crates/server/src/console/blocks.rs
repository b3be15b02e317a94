//! Blocks at the proxy from the console: an admin blocks the source of an alert for a while
//! (`PUT /proxy/blocks/{ip}`) or lifts a block (`DELETE /proxy/blocks/{ip}`), from the
//! alert's page or the source's.

use super::{failed, may_change, notice, Signed};
use crate::api::{ApiState, Caller};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

/// The durations offered, in minutes, with their words.
const DURATIONS: [(u32, &str); 4] = [
    (60, "1 hour"),
    (24 * 60, "1 day"),
    (7 * 24 * 60, "7 days"),
    (30 * 24 * 60, "30 days"),
];

/// The form that blocks `ip`, the source of alert `alert_id`; `back` is `alert` or `source`,
/// the page to come back to.
pub(super) fn form(ip: &str, alert_id: &str, csrf: &str, back: &str) -> Markup {
    html! {
        form.block method="post" action={"/console/blocks/" (ip) "/block"} {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="alert" value=(alert_id);
            input type="hidden" name="back" value=(back);
            label { "Block " (ip) " at the proxy for "
                select name="minutes" {
                    @for (m, words) in DURATIONS { option value=(m) selected[m == 24 * 60] { (words) } }
                }
            }
            " "
            button type="submit" { "Block" }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct BlockForm {
    csrf: String,
    alert: String,
    minutes: u32,
    #[serde(default)]
    back: String,
}

/// Where a form sends the admin back: the alert's page or the source's, and nowhere else.
fn back_to(ip: &std::net::IpAddr, alert: &str, back: &str) -> String {
    let is_id = !alert.is_empty() && alert.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    match back {
        "source" => format!("/console/sources/{ip}"),
        _ if is_id => format!("/console/alerts/{alert}"),
        _ => "/console".to_string(),
    }
}

/// The signed-in admin whose form (with its CSRF token) acts on address `ip`, and the
/// address; or the page that refuses.
fn admin_at(
    Signed { caller, csrf, .. }: Signed,
    form_csrf: &str,
    ip: &str,
) -> Result<(Caller, String, std::net::IpAddr), Box<Response>> {
    if let Some(no) = may_change(&caller, &csrf, form_csrf, "blocks") {
        return Err(Box::new(no));
    }
    match ip.parse() {
        Ok(addr) => Ok((caller, csrf, addr)),
        Err(_) => Err(Box::new(notice(
            &caller,
            &csrf,
            StatusCode::BAD_REQUEST,
            "Not an address",
            "Blocks are set and lifted by IP address.",
        ))),
    }
}

/// An admin blocks the source of an alert, as `PUT /proxy/blocks/{ip}`.
pub(super) async fn block(
    State(st): State<Arc<ApiState>>,
    signed: Signed,
    Path(ip): Path<String>,
    Form(f): Form<BlockForm>,
) -> Response {
    let (caller, csrf, addr) = match admin_at(signed, &f.csrf, &ip) {
        Ok(x) => x,
        Err(no) => return *no,
    };
    if !DURATIONS.iter().any(|(m, _)| *m == f.minutes) {
        return notice(
            &caller,
            &csrf,
            StatusCode::BAD_REQUEST,
            "Not a duration offered",
            "Choose one of the durations the form offers.",
        );
    }
    match st.block(addr, &f.alert, f.minutes, &caller.name).await {
        Ok(b) => {
            tracing::info!(source = %addr, until = %b.until, by = %caller.name, "source blocked in the console");
            Redirect::to(&back_to(&addr, &f.alert, &f.back)).into_response()
        }
        Err(e) if e.status.is_client_error() => {
            notice(&caller, &csrf, e.status, "Not blocked", &e.message)
        }
        Err(e) => failed(&caller, &csrf, &e),
    }
}

#[derive(Deserialize)]
pub(super) struct LiftForm {
    csrf: String,
    #[serde(default)]
    alert: String,
    #[serde(default)]
    back: String,
}

/// An admin lifts a source's block, as `DELETE /proxy/blocks/{ip}`.
pub(super) async fn lift(
    State(st): State<Arc<ApiState>>,
    signed: Signed,
    Path(ip): Path<String>,
    Form(f): Form<LiftForm>,
) -> Response {
    let (caller, csrf, addr) = match admin_at(signed, &f.csrf, &ip) {
        Ok(x) => x,
        Err(no) => return *no,
    };
    match st.lift_block(addr, &caller.name).await {
        Ok(_) => {
            tracing::info!(source = %addr, by = %caller.name, "block lifted in the console");
            Redirect::to(&back_to(&addr, &f.alert, &f.back)).into_response()
        }
        Err(e) => failed(&caller, &csrf, &e),
    }
}
