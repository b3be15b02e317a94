//! `GET /servers`: the monitored servers and what their agents last reported.

use super::{blocking, ApiError, ApiResult, ApiState};
use axum::extract::{Path, State};
use axum::Extension;
use axum::Json;
use serde_json::Value;
use std::sync::Arc;

pub(super) async fn list(State(st): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    let servers = blocking(move || store.list_servers()).await?;
    Ok(Json(
        serde_json::json!({"value": servers, "nextLink": null}),
    ))
}

pub(super) async fn get_one(
    State(st): State<Arc<ApiState>>,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    let servers = blocking(move || store.list_servers()).await?;
    let s = servers
        .into_iter()
        .find(|s| s.name == server)
        .ok_or_else(|| ApiError::not_found("no such server"))?;
    Ok(Json(serde_json::to_value(s).unwrap_or(Value::Null)))
}

/// `GET /servers/{server}/profile`: what the server's agent has learned is normal.
pub(super) async fn profile(
    State(st): State<Arc<ApiState>>,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.server_profile(&s))
        .await?
        .ok_or_else(|| ApiError::not_found("no such server"))?;
    Ok(Json(serde_json::json!({"server": server, "profile": p})))
}

/// `GET /servers/{server}/posture`: the server's last posture scan (`[scan]` in `run`).
pub(super) async fn posture(
    State(st): State<Arc<ApiState>>,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.server_posture(&s))
        .await?
        .ok_or_else(|| ApiError::not_found("no such server"))?;
    let p = p.unwrap_or(Value::Null);
    Ok(Json(serde_json::json!({
        "server": server,
        "scannedAt": p.get("scannedAt"),
        "findings": p.get("findings"),
        "error": p.get("error"),
    })))
}

/// `DELETE /proxy/blocks/{ip}`: an operator lets a blocked source in again, on every proxy
/// that enforces the store's blocks (and this process's at once); its alerts block no more.
/// The block lifted, or 404.
pub(super) async fn lift_block(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<super::Caller>,
    Path(ip): Path<String>,
) -> ApiResult<Json<Value>> {
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request("InvalidParameterValue", "ip: not an IP address"))?;
    let lifted = st
        .lift_block(ip, &caller.name)
        .await?
        .ok_or_else(|| ApiError::not_found("this source is not blocked"))?;
    Ok(Json(lifted))
}

/// Longest block an operator sets by hand: 30 days.
const MAX_BLOCK_MINUTES: u32 = 30 * 24 * 60;

/// The body of `PUT /proxy/blocks/{ip}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BlockBody {
    alert_id: String,
    duration_minutes: u32,
}

/// `PUT /proxy/blocks/{ip}`: an operator blocks the source of an alert for a while.
pub(super) async fn put_block(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<super::Caller>,
    Path(ip): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request("InvalidParameterValue", "ip: not an IP address"))?;
    let body: BlockBody = serde_json::from_value(super::json_body(&headers, body)?)
        .map_err(|e| ApiError::bad_request("InvalidRequestContent", format!("body: {e}")))?;
    if !(1..=MAX_BLOCK_MINUTES).contains(&body.duration_minutes) {
        return Err(ApiError::bad_request(
            "InvalidParameterValue",
            format!("durationMinutes: must be from 1 to {MAX_BLOCK_MINUTES} (30 days)"),
        ));
    }
    let b = st
        .block(ip, &body.alert_id, body.duration_minutes, &caller.name)
        .await?;
    Ok(Json(stored_json(&b)))
}

pub(super) fn stored_json(b: &store::blocks::StoredBlock) -> Value {
    serde_json::json!({
        "sourceIp": b.source_ip,
        "since": b.since,
        "until": b.until,
        "alertType": b.alert_type,
        "alertId": b.alert_id,
    })
}

/// `GET /proxy/blocks`: the sources refused now (active response), with the alert that
/// caused each and until when: the store's list, which every proxy of the fleet enforces,
/// and this process's proxy's.
pub(super) async fn blocks(State(st): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let store = st.store.clone();
    let stored = blocking(move || store.active_blocks(&store::now_utc())).await?;
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    if let Some(p) = &st.proxy {
        p.blocks.expire(store::now_ms());
        for b in p.blocks.list() {
            seen.insert(b.source_ip.clone());
            out.push(serde_json::to_value(b).unwrap_or(Value::Null));
        }
    }
    for b in stored.iter().filter(|b| !seen.contains(&b.source_ip)) {
        out.push(stored_json(b));
    }
    Ok(Json(serde_json::json!({"value": out, "nextLink": null})))
}
