//! The web console, served by the API's process under `/console`: plain server-rendered HTML
//! (maud escapes every value, and role names, application names and addresses come from
//! attackers), no script at all (the Content-Security-Policy forbids it), no asset from
//! elsewhere. Sign-in with an API token; the session is a random id in an HttpOnly,
//! SameSite=Strict cookie, and every form that changes something carries the session's CSRF
//! token. A reader sees no action buttons, and the handlers refuse readers anyway.

mod alert;
mod alerts;
mod blocks;
mod overview;
mod policy;
mod servers;
mod signin;
mod source;
mod suppression;
mod view;

use crate::api::{ApiState, Caller};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Role;

const COOKIE: &str = "pgvigil_session";
/// The sign-in form's own cookie: a sign-in is accepted only with the value the form was
/// served with, so a foreign page cannot sign a browser into a session of its choosing.
const SIGNIN_COOKIE: &str = "pgvigil_signin";
const SESSION_LIFE: Duration = Duration::from_secs(8 * 3600);
/// Failed sign-ins from one address within `SIGNIN_WINDOW` before it must wait.
const SIGNIN_FAILURES: u32 = 10;
const SIGNIN_WINDOW: Duration = Duration::from_secs(5 * 60);
const CSS: &str = include_str!("style.css");

struct Session {
    caller: Caller,
    csrf: String,
    /// What the store keeps of the token signed in with: the session lives while it does.
    token_hash: String,
    expires: Instant,
    last_seen: Instant,
}

/// What the console's handlers share: the API's state, and this process's sign-in sessions
/// (handlers that need only the former take `State<Arc<ApiState>>`).
#[derive(Clone)]
pub struct ConsoleState {
    pub api: Arc<ApiState>,
    pub sessions: Arc<Sessions>,
}

impl axum::extract::FromRef<ConsoleState> for Arc<ApiState> {
    fn from_ref(c: &ConsoleState) -> Self {
        c.api.clone()
    }
}

/// Console sessions of this process, and its failed sign-ins by address.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Served over HTTPS: cookies are `Secure`.
    https: AtomicBool,
    /// A session unused this long ends (`api.session_idle`).
    idle: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(Duration::from_secs(30 * 60))
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    // Without the OS's randomness there is no safe session: refuse rather than guess.
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            map: Mutex::default(),
            failures: Mutex::default(),
            https: AtomicBool::new(false),
            idle,
        }
    }

    pub fn set_https(&self, on: bool) {
        self.https.store(on, Ordering::Relaxed);
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64) -> String {
        let secure = if self.https.load(Ordering::Relaxed) {
            "; Secure"
        } else {
            ""
        };
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    fn start(&self, caller: Caller, token_hash: String) -> Option<(String, String)> {
        let (id, csrf) = (random_hex(), random_hex());
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, s| s.expires > now && now.duration_since(s.last_seen) < self.idle);
        m.insert(
            id.clone(),
            Session {
                caller,
                csrf: csrf.clone(),
                token_hash,
                expires: now + SESSION_LIFE,
                last_seen: now,
            },
        );
        Some((id, csrf))
    }

    /// The session of `headers` if it has neither expired nor been idle too long; marks it
    /// used. (id, caller, CSRF token, token hash).
    fn get(&self, headers: &HeaderMap) -> Option<(String, Caller, String, String)> {
        let id = session_cookie(headers, COOKIE)?;
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let s = m.get_mut(&id)?;
        if s.expires <= now || now.duration_since(s.last_seen) >= self.idle {
            m.remove(&id);
            return None;
        }
        s.last_seen = now;
        Some((id, s.caller.clone(), s.csrf.clone(), s.token_hash.clone()))
    }

    fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Whether `ip` has failed to sign in too often lately (and for how long it must wait).
    fn locked_out(&self, ip: IpAddr) -> Option<Duration> {
        let m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (n, since) = m.get(&ip)?;
        let left = SIGNIN_WINDOW.checked_sub(since.elapsed())?;
        (*n >= SIGNIN_FAILURES).then_some(left)
    }

    fn failed(&self, ip: IpAddr) -> u32 {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, since)| now.duration_since(*since) < SIGNIN_WINDOW);
        let e = m.entry(ip).or_insert((0, now));
        e.0 += 1;
        e.0
    }
}

fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The signed-in session of this request, while it is live: not expired, not idle too
/// long, and its token not revoked or changed (revoking a token ends its console sessions
/// at their next request, on every API instance).
async fn session(st: &ConsoleState, headers: &HeaderMap) -> Option<(String, Caller, String)> {
    let (id, caller, csrf, token_hash) = st.sessions.get(headers)?;
    let store = st.api.store.clone();
    let live = crate::api::blocking(move || store.token_by_hash(&token_hash)).await;
    match live {
        Ok(Some((name, role))) if name == caller.name && role == caller.role => {
            Some((id, caller, csrf))
        }
        Ok(_) => {
            st.sessions.end(&id);
            None
        }
        Err(_) => None,
    }
}

/// A request of a live console session (see [`session`]): its id, who signed in, and the
/// session's CSRF token. A request without one is sent to the sign-in page, before its
/// handler runs.
pub(super) struct Signed {
    pub id: String,
    pub caller: Caller,
    pub csrf: String,
}

impl axum::extract::FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &ConsoleState,
    ) -> Result<Self, Response> {
        match session(st, &parts.headers).await {
            Some((id, caller, csrf)) => Ok(Signed { id, caller, csrf }),
            None => Err(to_signin()),
        }
    }
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/console", get(overview::show))
        .route("/console/style.css", get(style))
        .route("/console/signin", get(signin::show).post(signin::submit))
        .route("/console/signout", post(signin::signout))
        .route("/console/alerts", get(alerts::list_page))
        .route("/console/alerts/export", get(alerts::export))
        .route("/console/alerts/bulk", post(alerts::bulk))
        .route("/console/alerts/{id}", get(alert::show))
        .route("/console/alerts/{id}/{action}", post(alert::act))
        .route("/console/blocks/{ip}/lift", post(blocks::lift))
        .route("/console/blocks/{ip}/block", post(blocks::block))
        .route("/console/servers", get(servers::list_page))
        .route("/console/servers/{server}", get(servers::server_page))
        .route(
            "/console/servers/{server}/policy",
            get(policy::show).post(policy::save),
        )
        .route(
            "/console/suppression",
            get(suppression::list_page).post(suppression::save),
        )
        .route("/console/suppression/{name}", get(suppression::rule_page))
        .route("/console/sources/{ip}", get(source::source_page))
        .route(
            "/console/suppression/{name}/delete",
            post(suppression::delete),
        )
}

/// Headers of every console answer: no script, nothing from elsewhere, not framed, not cached.
fn page(status: StatusCode, body: Markup) -> Response {
    // The templates hold no bidi control: any in the page came with a name from a log, and
    // would show the text after it reversed. Shown by its code point instead.
    let mut html = body.into_string();
    if html.chars().any(notify::render::is_bidi_control) {
        html = html
            .chars()
            .map(|c| {
                if notify::render::is_bidi_control(c) {
                    format!("&lt;U+{:04X}&gt;", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect();
    }
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

fn layout(title: &str, who: Option<(&Caller, &str)>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pgvigil" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "pgvigil" }
                    @if let Some((caller, csrf)) = who {
                        nav aria-label="Main" {
                            a href="/console" { "Overview" }
                            a href="/console/alerts" { "Alerts" }
                            a href="/console/servers" { "Servers" }
                            a href="/console/suppression" { "Rules" }
                        }
                        form.signout method="post" action="/console/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            span { (caller.name) " (" (role_name(caller.role)) ")" }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { h1 { (title) } (content) }
            }
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Reader => "reader",
    }
}

fn to_signin() -> Response {
    Redirect::to("/console/signin").into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

/// A table's header row.
fn head(cols: &[&str]) -> Markup {
    html! { tr { @for c in cols { th scope="col" { (c) } } } }
}

pub(super) fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A page that only says something: an error, a refusal, a missing alert.
pub(super) fn notice(
    caller: &Caller,
    csrf: &str,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    page(
        status,
        layout(
            title,
            Some((caller, csrf)),
            html! { p.error role="alert" { (text) } },
        ),
    )
}

fn refused(caller: &Caller, csrf: &str, status: StatusCode, why: &str) -> Response {
    notice(caller, csrf, status, "Refused", why)
}

/// The page for a request the store could not answer.
fn failed(caller: &Caller, csrf: &str, e: &crate::api::ApiError) -> Response {
    refused(caller, csrf, StatusCode::INTERNAL_SERVER_ERROR, &e.message)
}

/// The refusal of a state-changing form that this session did not issue, or that a reader
/// sent; `None` when the change may go ahead.
fn may_change(caller: &Caller, csrf: &str, form_csrf: &str, what: &str) -> Option<Response> {
    if !same(form_csrf, csrf) {
        return Some(refused(
            caller,
            csrf,
            StatusCode::FORBIDDEN,
            "The form was not issued by this session (CSRF token mismatch).",
        ));
    }
    (caller.role != Role::Admin).then(|| {
        refused(
            caller,
            csrf,
            StatusCode::FORBIDDEN,
            &format!("Reader tokens cannot change {what}."),
        )
    })
}

/// Field errors by form field, from the policy's JSON-path errors.
fn field_of(path: &str) -> &'static str {
    let p = path.strip_prefix("properties.").unwrap_or(path);
    if p.starts_with("emailAddresses") {
        "email_addresses"
    } else if p.starts_with("retentionDays") {
        "retention_days"
    } else if p.starts_with("disabledAlerts") {
        "disabled"
    } else if p.starts_with("state") {
        "state"
    } else {
        "form"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_from_logs_is_escaped() {
        let caller = Caller {
            name: "<b>x</b>".into(),
            role: Role::Admin,
        };
        let m = layout(
            "<script>alert(1)</script>",
            Some((&caller, "c\"srf")),
            html! {},
        )
        .into_string();
        assert!(!m.contains("<script>alert(1)"), "{m}");
        assert!(m.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(m.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(m.contains("value=\"c&quot;srf\""));
    }

    #[test]
    fn cookies_and_csrf() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; pgvigil_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        let s = Sessions::default();
        let (id, csrf) = s
            .start(
                Caller {
                    name: "ops".into(),
                    role: Role::Reader,
                },
                "h".into(),
            )
            .unwrap();
        assert_eq!(id.len(), 64);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("pgvigil_session={id}")).unwrap(),
        );
        let (_, c, c2, hash) = s.get(&h).unwrap();
        assert_eq!((c.name.as_str(), c2, hash.as_str()), ("ops", csrf, "h"));
        s.end(&id);
        assert!(s.get(&h).is_none());
    }
}
