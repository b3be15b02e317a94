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

/// `DELETE /proxy/blocks/{ip}`: an operator lets a blocked source in again (its alert
/// blocks no more); the block lifted, or 404.
pub(super) async fn lift_block(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<super::Caller>,
    Path(ip): Path<String>,
) -> ApiResult<Json<Value>> {
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request("InvalidParameterValue", "ip: not an IP address"))?;
    let b = &st
        .proxy
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no proxy runs in this process"))?
        .blocks;
    let lifted = b
        .lift(ip, &caller.name)
        .ok_or_else(|| ApiError::not_found("this source is not blocked"))?;
    st.audit_block_lift(&caller.name, &lifted, None).await;
    Ok(Json(serde_json::to_value(lifted).unwrap_or(Value::Null)))
}

/// `GET /proxy/blocks`: the sources the proxy refuses now (active response), with the alert
/// that caused each and until when.
pub(super) async fn blocks(State(st): State<Arc<ApiState>>) -> ApiResult<Json<Value>> {
    let b = &st
        .proxy
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no proxy runs in this process"))?
        .blocks;
    b.expire(crate::store::now_ms());
    Ok(Json(
        serde_json::json!({"value": b.list(), "nextLink": null}),
    ))
}
