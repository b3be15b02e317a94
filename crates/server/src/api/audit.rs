//! `GET /audit`: the audit trail, newest first, for admins: policy changes, tokens made and
//! revoked, proxy blocks lifted, alert status changes, each with who and when.

use super::alerts::{bad, page_link, time_param};
use super::{blocking, ApiError, ApiResult, ApiState, Caller};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use store::audit::{Action, AuditQuery};
use store::Role;

const DEFAULT_TOP: usize = 100;
/// Largest position a `skipToken` may name (the OpenAPI document's maximum).
const MAX_SKIP: i64 = 9_007_199_254_740_991;

fn parse(params: &HashMap<String, String>) -> ApiResult<AuditQuery> {
    let mut q = AuditQuery {
        top: DEFAULT_TOP,
        ..Default::default()
    };
    for (k, v) in params {
        match k.as_str() {
            "action" => {
                q.action = Some(Action::parse(v).ok_or_else(|| {
                    let all: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                    bad(k, format!("must be one of {}", all.join(", ")))
                })?)
            }
            "actor" => q.actor = Some(v.clone()),
            "from" => q.from = Some(time_param(k, v)?),
            "top" | "$top" => {
                q.top = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad(k, "must be a number from 1 to 1000"))?
            }
            "skipToken" | "$skipToken" => {
                q.before = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| (1..=MAX_SKIP).contains(n))
                        .ok_or_else(|| bad(k, "not a token from a nextLink"))?,
                )
            }
            _ => return Err(bad(k, "unknown parameter")),
        }
    }
    Ok(q)
}

pub(super) async fn list(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    // Who did what is for those who may do it.
    if caller.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            "the audit trail is for admin tokens",
        ));
    }
    let q = parse(&params)?;
    let store = st.store.clone();
    let q2 = q.clone();
    let entries = blocking(move || store.audit_log(&q2)).await?;
    let next = (entries.len() == q.top.clamp(1, 1000))
        .then(|| entries.last().map(|e| e.seq))
        .flatten()
        .map(|seq| page_link("/audit", &params, &seq.to_string()));
    Ok(Json(
        serde_json::json!({"value": entries, "nextLink": next}),
    ))
}
