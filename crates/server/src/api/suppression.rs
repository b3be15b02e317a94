//! `GET /alertsSuppressionRules`, `GET|PUT|DELETE /alertsSuppressionRules/{name}`: Defender
//! for Cloud's suppression rules, for the alerts of every server this store holds.

use super::{blocking, json_body, ApiError, ApiResult, ApiState, Caller};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use model::suppression::Rule;
use serde_json::Value;
use std::sync::Arc;
use store::now_utc;

fn named(name: &str) -> ApiResult<()> {
    model::suppression::check_name(name)
        .map_err(|e| ApiError::bad_request("InvalidParameterValue", e.to_string()))
}

fn missing(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "there is no suppression rule {:?}",
        model::event::truncate(name, 100)
    ))
}

pub(super) async fn list(State(st): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    let rules = blocking(move || store.suppression_rules()).await?;
    let now = now_utc();
    Ok(Json(serde_json::json!({
        "value": rules.iter().map(|r| r.resource(&now)).collect::<Vec<_>>(),
        "nextLink": null,
    })))
}

pub(super) async fn get_one(
    State(st): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    named(&name)?;
    let store = st.store.clone();
    let n = name.clone();
    let rule = blocking(move || store.suppression_rule(&n))
        .await?
        .ok_or_else(|| missing(&name))?;
    Ok(Json(rule.resource(&now_utc())))
}

/// Creates (201) or replaces (200) a rule; it applies to alerts raised from then on.
pub(super) async fn put(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = json_body(&headers, body)?;
    let now = now_utc();
    let rule = Rule::from_body(&name, &body, &now)
        .map_err(|e| ApiError::bad_request("InvalidParameterValue", e.to_string()))?;
    let store = st.store.clone();
    let (r, who) = (rule.clone(), caller.name.clone());
    let created = blocking(move || match store.put_suppression_rule(&r, &who) {
        Err(store::StoreError::Invalid(why)) => Ok(Err(why)),
        other => other.map(Ok),
    })
    .await?
    .map_err(|why| ApiError::new(StatusCode::CONFLICT, "QuotaExceeded", why))?;
    st.settings_changed().await;
    tracing::info!(rule = %rule.name, actor = %caller.name, "suppression rule saved");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(rule.resource(&now))).into_response())
}

pub(super) async fn delete(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    named(&name)?;
    let store = st.store.clone();
    let (n, who) = (name.clone(), caller.name.clone());
    if blocking(move || store.delete_suppression_rule(&n, &who)).await? {
        st.settings_changed().await;
        tracing::info!(rule = %name, actor = %caller.name, "suppression rule deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(&name))
    }
}
