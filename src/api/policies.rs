//! `GET|PUT /servers/{server}/securityAlertPolicies/Default` and the list of a server's
//! policies (there is one, `Default`, as in Azure).

use super::{blocking, json_body, ApiError, ApiResult, ApiState};
use crate::policy::Policy;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use std::sync::Arc;

/// 404 unless some agent has registered the server.
pub(crate) async fn known_server(st: &ApiState, server: &str) -> ApiResult<()> {
    let store = st.store.clone();
    let name = server.to_string();
    if blocking(move || store.server_exists(&name)).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "server {:?} is not known to pgvigil",
            crate::event::truncate(server, 100)
        )))
    }
}

fn default_name(name: &str) -> ApiResult<()> {
    if name.eq_ignore_ascii_case("Default") {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "a server has one security alert policy, named Default",
        ))
    }
}

pub(super) async fn list(
    State(st): State<Arc<ApiState>>,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    known_server(&st, &server).await?;
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.get_policy(&s)).await?;
    Ok(Json(
        serde_json::json!({"value": [p.resource(&server)], "nextLink": null}),
    ))
}

pub(super) async fn get_one(
    State(st): State<Arc<ApiState>>,
    Path((server, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    default_name(&name)?;
    known_server(&st, &server).await?;
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.get_policy(&s)).await?;
    Ok(Json(p.resource(&server)))
}

pub(super) async fn put(
    State(st): State<Arc<ApiState>>,
    Path((server, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    default_name(&name)?;
    known_server(&st, &server).await?;
    let body = json_body(&headers, body)?;
    let update = Policy::from_put_body(&body, &server)
        .map_err(|e| ApiError::bad_request("InvalidParameterValue", e.to_string()))?;
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.put_policy(&s, &update)).await?;
    tracing::info!(server = %server, "security alert policy updated");
    Ok(Json(p.resource(&server)))
}
