//! `GET|PUT /servers/{server}/securityAlertPolicies/Default` and the list of a server's
//! policies (there is one, `Default`, as in Azure).

use super::{blocking, json_body, ApiError, ApiResult, ApiState, Caller};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Extension;
use axum::Json;
use model::policy::Policy;
use serde_json::Value;
use std::sync::Arc;

/// 404 unless some agent has registered the server. The fleet's own policy (for alerts on
/// several servers) can be set before its first alert.
pub(crate) async fn known_server(st: &ApiState, server: &str) -> ApiResult<()> {
    if server == store::fleet::FLEET {
        return Ok(());
    }
    let store = st.store.clone();
    let name = server.to_string();
    if blocking(move || store.server_exists(&name)).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "server {:?} is not known to pgvigil",
            model::event::truncate(server, 100)
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

/// Where the request came in: pgvigil's own paths, or Azure Resource Manager's
/// (`/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/servers/…`),
/// whose clients expect ids in the same form back.
fn resource(p: &Policy, server: &str, arm: Option<(&str, &str)>) -> Value {
    let mut v = p.resource(server);
    if let Some((sub, rg)) = arm {
        v["id"] = Value::String(format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/servers/{server}/securityAlertPolicies/Default"
        ));
    }
    v
}

async fn list_of(
    st: Arc<ApiState>,
    server: String,
    arm: Option<(&str, &str)>,
) -> ApiResult<Json<Value>> {
    known_server(&st, &server).await?;
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.get_policy(&s)).await?;
    Ok(Json(
        serde_json::json!({"value": [resource(&p, &server, arm)], "nextLink": null}),
    ))
}

async fn get_of(
    st: Arc<ApiState>,
    server: String,
    name: &str,
    arm: Option<(&str, &str)>,
) -> ApiResult<Json<Value>> {
    default_name(name)?;
    known_server(&st, &server).await?;
    let store = st.store.clone();
    let s = server.clone();
    let p = blocking(move || store.get_policy(&s)).await?;
    Ok(Json(resource(&p, &server, arm)))
}

async fn put_of(
    st: Arc<ApiState>,
    caller: Caller,
    server: String,
    name: &str,
    arm: Option<(&str, &str)>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    default_name(name)?;
    known_server(&st, &server).await?;
    let body = json_body(headers, body)?;
    let update = Policy::from_put_body(&body, &server)
        .map_err(|e| ApiError::bad_request("InvalidParameterValue", e.to_string()))?;
    let st2 = st.clone();
    let (s, who) = (server.clone(), caller.name.clone());
    let p = blocking(move || {
        st2.store.put_policy(
            &s,
            &update,
            &store::PolicyChange {
                actor: &who,
                channels: &st2.channels,
                admins: &st2.admins,
            },
        )
    })
    .await?;
    st.settings_changed().await;
    tracing::info!(server = %server, actor = %caller.name, "security alert policy updated");
    Ok(Json(resource(&p, &server, arm)))
}

pub(super) async fn list(
    State(st): State<Arc<ApiState>>,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    list_of(st, server, None).await
}

pub(super) async fn get_one(
    State(st): State<Arc<ApiState>>,
    Path((server, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    get_of(st, server, &name, None).await
}

pub(super) async fn put(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((server, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    put_of(st, caller, server, &name, None, &headers, body).await
}

pub(super) async fn arm_list(
    State(st): State<Arc<ApiState>>,
    Path((sub, rg, server)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    list_of(st, server, Some((&sub, &rg))).await
}

pub(super) async fn arm_get(
    State(st): State<Arc<ApiState>>,
    Path((sub, rg, server, name)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    get_of(st, server, &name, Some((&sub, &rg))).await
}

pub(super) async fn arm_put(
    State(st): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((sub, rg, server, name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    put_of(st, caller, server, &name, Some((&sub, &rg)), &headers, body).await
}
