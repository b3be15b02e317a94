//! The REST API: security alert policies (Azure's `securityAlertPolicies` shape), alerts and
//! their state changes, servers, health and metrics, and the OpenAPI document describing it.
//!
//! Every endpoint but `/healthz` needs `Authorization: Bearer <token>`; reader tokens may only
//! read. Errors have Azure's shape, `{"error": {"code": "…", "message": "…"}}`.

pub(crate) mod alerts;
mod audit;
mod metrics;
pub(crate) mod policies;
mod servers;
pub mod simulate;
mod suppression;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use store::{Role, Store, StoreError};

/// `[api]` in pgvigil.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API from `pgvigil run`.
    pub enabled: bool,
    /// Address to listen on. The default only accepts connections from this machine.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Base URL of the console, for links in notifications (e.g. `https://pgvigil.example.com`).
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM)…
    pub tls_cert: Option<std::path::PathBuf>,
    /// …and this private key (PEM).
    pub tls_key: Option<std::path::PathBuf>,
    /// A console session unused this long ends (it ends after 8 h in any case).
    pub session_idle: model::duration::Span,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8432)),
            max_body_bytes: 64 * 1024,
            public_url: None,
            tls_cert: None,
            tls_key: None,
            session_idle: model::duration::Span::mins(30),
        }
    }
}

pub use store::health::{Counters, FollowerHealth};

pub struct ApiState {
    pub store: Arc<Store>,
    pub counters: Arc<Counters>,
    /// Notification channels that simulated alerts are queued on, like real ones.
    pub channels: Vec<store::Channel>,
    pub admins: Vec<String>,
    /// The proxy, when this process runs it: its active-response blocks and its figures.
    pub proxy: Option<Arc<proxy::Proxy>>,
    /// Called (on a blocking thread) after a policy or suppression rule is written: an agent
    /// of a fleet copies them to its own store at once, so they apply to its next alert.
    pub settings_written: Option<SettingsHook>,
}

pub type SettingsHook = Arc<dyn Fn() + Send + Sync>;

impl ApiState {
    /// Runs the `settings_written` hook, if any.
    pub(crate) async fn settings_changed(&self) {
        if let Some(f) = self.settings_written.clone() {
            let _ = tokio::task::spawn_blocking(move || f()).await;
        }
    }
}

impl ApiState {
    /// Changes an alert's status for `who` (API or console alike). A dismissed or resolved
    /// alert lets its source in again: a false positive or a finished matter.
    pub async fn set_alert_status(
        &self,
        id: &str,
        to: store::Status,
        who: &str,
    ) -> std::result::Result<Option<serde_json::Value>, ApiError> {
        let store = self.store.clone();
        let (id2, who2) = (id.to_string(), who.to_string());
        let out = blocking(move || store.set_status(&id2, to, &who2)).await?;
        if out.is_some() && matches!(to, store::Status::Dismissed | store::Status::Resolved) {
            // The proxy of this process lets the source in at once; the store lifts the
            // block for every proxy of the fleet (and for this one after a restart), and
            // remembers the alert so that its later updates do not block again.
            let local: Vec<(String, Vec<String>)> = match &self.proxy {
                Some(p) => p
                    .blocks
                    .lift_alert(id, who)
                    .into_iter()
                    .map(|b| (b.source_ip.clone(), b.causes().to_vec()))
                    .collect(),
                None => Vec::new(),
            };
            let store = self.store.clone();
            let (id2, who2) = (id.to_string(), who.to_string());
            blocking(move || store.lift_blocks_of_alert(&id2, &local, &who2)).await?;
        }
        Ok(out)
    }
}

impl ApiState {
    /// Until when (RFC 3339 UTC) `ip` is refused now: by this process's proxy, or by the
    /// store's list that every proxy of the fleet enforces; `None` when it is not.
    pub async fn blocked_until(
        &self,
        ip: std::net::IpAddr,
    ) -> std::result::Result<Option<String>, ApiError> {
        let now = store::now_ms();
        let local = self.proxy.as_ref().and_then(|p| {
            p.blocks
                .is_blocked(ip, now)
                .then(|| {
                    p.blocks
                        .list()
                        .into_iter()
                        .find(|b| b.source_ip == ip.to_string())
                })
                .flatten()
        });
        if let Some(b) = local {
            return Ok(Some(b.until));
        }
        let store = self.store.clone();
        let stored = blocking(move || store.active_blocks(&store::now_utc())).await?;
        Ok(stored
            .into_iter()
            .find(|b| b.source_ip == ip.to_string())
            .map(|b| b.until))
    }

    /// An operator blocks the source of alert `alert_id` by hand for `minutes`: stored, so
    /// that every proxy of the fleet (this process's included) refuses it within a second.
    /// Refused (409) when the alert's source is another address or the address is on this
    /// proxy's allowlist.
    pub async fn block(
        &self,
        ip: std::net::IpAddr,
        alert_id: &str,
        minutes: u32,
        who: &str,
    ) -> std::result::Result<store::blocks::StoredBlock, ApiError> {
        if self.proxy.as_ref().is_some_and(|p| p.blocks.allows(ip)) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Allowlisted",
                format!("{ip} is on the proxy's allowlist (proxy.active_response.allowlist) and is never blocked"),
            ));
        }
        let store = self.store.clone();
        let id = alert_id.to_string();
        let alert = blocking(move || store.get_alert(&id))
            .await?
            .ok_or_else(|| ApiError::not_found("no such alert"))?;
        let source = alert["entities"]["sourceIp"].as_str().unwrap_or_default();
        if source.parse::<std::net::IpAddr>().ok() != Some(ip) {
            // The alert exists and the address is one: they do not go together (a conflict
            // of what is stored, not a malformed request).
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "SourceMismatch",
                format!("alertId: the alert's source is {source:?}, not {ip}"),
            ));
        }
        let until = model::event::format_time(store::now_ms() + i64::from(minutes) * 60_000);
        let alert_type = alert["alertType"].as_str().unwrap_or_default().to_string();
        let (store, who, id) = (self.store.clone(), who.to_string(), alert_id.to_string());
        let b = blocking(move || {
            store.block_by_hand(&ip.to_string(), (&id, &alert_type), &until, &who)
        })
        .await?;
        tracing::warn!(source = %ip, until = %b.until, by = %b.alert_id, "source blocked by an operator");
        Ok(b)
    }

    /// An operator lets `ip` in again: at once at this process's proxy, and through the
    /// store at every proxy of the fleet; its alerts block no more. The block lifted, or
    /// `None` when the source was not blocked.
    pub async fn lift_block(
        &self,
        ip: std::net::IpAddr,
        who: &str,
    ) -> std::result::Result<Option<serde_json::Value>, ApiError> {
        let local = self.proxy.as_ref().and_then(|p| p.blocks.lift(ip, who));
        let also: Vec<String> = local
            .as_ref()
            .map(|b| b.causes().to_vec())
            .unwrap_or_default();
        let store = self.store.clone();
        let who = who.to_string();
        let stored = blocking(move || store.lift_block(&ip.to_string(), &also, &who)).await?;
        Ok(match (local, stored) {
            (Some(b), _) => Some(serde_json::to_value(b).unwrap_or(serde_json::Value::Null)),
            (None, Some(s)) => Some(servers::stored_json(&s)),
            (None, None) => None,
        })
    }
}

/// An API error: HTTP status plus Azure's error code and a message naming what is wrong.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The message may name files; it goes to the log, not to the client.
        tracing::error!(error = %e, "store error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "the alert store failed; see pgvigil's log",
        )
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "store task failed");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal error",
            ))
        }
    }
}

/// A JSON value in which no object names a key twice: `{"state":"Enabled","state":"Disabled"}`
/// means different things to different parsers (the first or the last wins), so it is refused.
struct UniqueKeys;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element_seed(UniqueKeys)? {
            v.push(x);
        }
        Ok(serde_json::Value::Array(v))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut m = serde_json::Map::new();
        while let Some(k) = a.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(serde::de::Error::custom(format!(
                    "the key {:?} appears twice in one object",
                    model::event::truncate(&k, 100)
                )));
            }
            let v = a.next_value_seed(UniqueKeys)?;
            m.insert(k, v);
        }
        Ok(serde_json::Value::Object(m))
    }
}

/// A JSON request body, with body errors in the API's error shape: sent as
/// `application/json` (a form or text post from a browser page is not a policy change), valid
/// JSON, no key twice in an object.
pub(crate) fn json_body(
    headers: &axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<serde_json::Value> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| {
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the body must be sent as Content-Type: application/json",
        ));
    }
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "the request body is too large",
            )
        } else {
            ApiError::bad_request("InvalidRequestContent", e.body_text())
        }
    })?;
    let mut d = serde_json::Deserializer::from_slice(&bytes);
    let v = serde::de::DeserializeSeed::deserialize(UniqueKeys, &mut d)
        .and_then(|v| d.end().map(|()| v))
        .map_err(|e| {
            ApiError::bad_request(
                "InvalidRequestContent",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
    Ok(v)
}

/// Who is calling: set by the auth layer for the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

async fn auth(State(st): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let Some(token) = token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "an Authorization: Bearer <token> header is required",
        )
        .into_response();
    };
    let store = st.store.clone();
    let who = match blocking(move || store.verify_token(&token)).await {
        Ok(Some(w)) => w,
        Ok(None) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "the token is not valid",
            )
            .into_response()
        }
        Err(e) => return e.into_response(),
    };
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
    if who.1 == Role::Reader && !read_only {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "token {:?} is a reader token; this needs an admin token",
                who.0
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(Caller {
        name: who.0,
        role: who.1,
    });
    next.run(req).await
}

/// A request refused before its body was read (no token, a reader's PUT, too large) leaves
/// that body on the connection, and the server closes it after answering: say so in the
/// answer, so that a client does not send its next request down a connection about to close.
/// Longest request target accepted, in bytes.
const MAX_URI: usize = 8192;

/// Requests whose target is too long, or whose path is not UTF-8 once decoded, are answered
/// in the API's error shape here, before a route's own extractor refuses them in plain text.
async fn check_target(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let len = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "RequestUriTooLong",
            format!("the request target is {len} bytes; at most {MAX_URI} are accepted"),
        )
        .into_response();
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(uri.path()).collect();
    if std::str::from_utf8(&decoded).is_err() {
        return ApiError::bad_request(
            "InvalidParameterValue",
            "the request path is not UTF-8 once percent-decoded",
        )
        .into_response();
    }
    next.run(req).await
}

async fn close_after_unread_body(req: Request, next: Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut resp = next.run(req).await;
    if has_body && resp.status().is_client_error() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `ok`, or 503 saying what is wrong: the store cannot be read or written, a followed log
/// cannot be read, the logs are not being polled.
async fn healthz(State(st): State<Arc<ApiState>>) -> Response {
    let ship = &st.counters.ship;
    // An agent of a fleet says how its shipping goes rather than connect to the central
    // store for each probe: an idle agent holds no connection.
    let reachable = if ship.active.load(std::sync::atomic::Ordering::Relaxed) {
        Ok(())
    } else {
        let store = st.store.clone();
        tokio::task::spawn_blocking(move || store.ping())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
    };
    let problem = match reachable {
        Err(e) => {
            tracing::warn!(error = %e, "healthz: the store does not answer");
            Some("the alert store cannot be read".to_string())
        }
        Ok(()) if ship.unreachable.load(std::sync::atomic::Ordering::Relaxed) => Some(format!(
            "the central store cannot be reached; {} batch(es) kept here until it can",
            ship.backlog.load(std::sync::atomic::Ordering::Relaxed)
        )),
        Ok(()) => st.counters.follower.problem(store::now_ms()),
    };
    match problem {
        None => Json(serde_json::json!({"status": "ok"})).into_response(),
        Some(p) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unhealthy", "problem": p})),
        )
            .into_response(),
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "this endpoint does not take that method",
    )
}

/// The API's routes, `/healthz` open and the rest behind a token.
pub fn routes(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics::metrics))
        .route("/servers", get(servers::list))
        .route("/servers/{server}", get(servers::get_one))
        .route("/servers/{server}/profile", get(servers::profile))
        .route("/servers/{server}/posture", get(servers::posture))
        .route("/proxy/blocks", get(servers::blocks))
        .route(
            "/proxy/blocks/{ip}",
            delete(servers::lift_block).put(servers::put_block),
        )
        .route(
            "/servers/{server}/securityAlertPolicies",
            get(policies::list),
        )
        .route(
            "/servers/{server}/securityAlertPolicies/{name}",
            get(policies::get_one).put(policies::put),
        )
        // The same policy under Azure Resource Manager's paths, for Azure's clients.
        .route(
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.DBforPostgreSQL/servers/{server}/securityAlertPolicies",
            get(policies::arm_list),
        )
        .route(
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.DBforPostgreSQL/servers/{server}/securityAlertPolicies/{name}",
            get(policies::arm_get).put(policies::arm_put),
        )
        .route(
            "/servers/{server}/alerts/simulate",
            post(simulate::simulate),
        )
        .route("/alertsSuppressionRules", get(suppression::list))
        .route(
            "/alertsSuppressionRules/{name}",
            get(suppression::get_one)
                .put(suppression::put)
                .delete(suppression::delete),
        )
        .route("/audit", get(audit::list))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::get_one))
        .route("/alerts/{id}/{action}", post(alerts::transition))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .with_state(state)
}

/// What every response of the listener goes through, API and console alike: errors in the
/// API's shape for unknown paths and methods, the body limit, and the target checks.
pub(crate) fn finish(app: Router, max_body: usize) -> Router {
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(close_after_unread_body))
        .layer(axum::middleware::from_fn(check_target))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_lists_every_alert_type() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let params = doc["paths"]["/alerts"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let types = params.iter().find(|p| p["name"] == "alertType").unwrap()["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        let want: Vec<String> = model::alert::AlertType::ALL
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
        assert_eq!(types, want);
    }
}
