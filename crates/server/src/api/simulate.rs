//! `POST /servers/{server}/alerts/simulate`: one sample alert of every type, flagged
//! `isSimulated`, stored and notified like real ones, so that an operator can check that mail,
//! webhooks and the SIEM receive what they should. Sample sources are documentation addresses
//! (RFC 5737), which never belong to anyone.

use super::policies::known_server;
use super::{blocking, ApiResult, ApiState};
use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use std::sync::Arc;
use store::Ingest;

pub(super) async fn simulate(
    State(st): State<Arc<ApiState>>,
    Path(server): Path<String>,
) -> ApiResult<Json<Value>> {
    known_server(&st, &server).await?;
    let alerts = model::sample::alerts(&server, store::now_ms());
    let st2 = st.clone();
    let out = blocking(move || {
        st2.store.ingest(Ingest {
            alerts: &alerts,
            simulated: true,
            channels: &st2.channels,
            admins: &st2.admins,
            checkpoint: None,
            report: None,
            ..Default::default()
        })
    })
    .await?;
    let value: Vec<Value> = out
        .accepted
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("isSimulated".into(), Value::Bool(true));
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({"value": value, "nextLink": null})))
}
