//! The web console, served by the API's process under `/console`: plain server-rendered HTML
//! (maud escapes every value, and role names, application names and addresses come from
//! attackers), no script at all (the Content-Security-Policy forbids it), no asset from
//! elsewhere. Sign-in with an API token; the session is a random id in an HttpOnly,
//! SameSite=Strict cookie, and every form that changes something carries the session's CSRF
//! token. A reader sees no action buttons, and the handlers refuse readers anyway.

mod alerts;
mod blocks;
mod servers;
mod source;
mod suppression;
mod view;

use crate::api::{ApiState, Caller};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{AlertQuery, Role, Status};

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
        .route("/console", get(overview_page))
        .route("/console/style.css", get(style))
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signout", post(signout))
        .route("/console/alerts", get(alerts::list_page))
        .route("/console/alerts/export", get(alerts::export))
        .route("/console/alerts/bulk", post(alerts::bulk))
        .route("/console/alerts/{id}", get(alert_page))
        .route("/console/alerts/{id}/{action}", post(act))
        .route("/console/blocks/{ip}/lift", post(blocks::lift))
        .route("/console/blocks/{ip}/block", post(blocks::block))
        .route("/console/servers", get(servers::list_page))
        .route("/console/servers/{server}", get(servers::server_page))
        .route(
            "/console/servers/{server}/policy",
            get(policy_page).post(policy_save),
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
struct SigninForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// The sign-in page, with a fresh form token in a cookie and in the form.
async fn signin_page(State(st): State<ConsoleState>) -> Response {
    signin_response(&st, StatusCode::OK, None)
}

fn signin_response(st: &ConsoleState, status: StatusCode, error: Option<&str>) -> Response {
    let form = random_hex();
    let mut r = page(status, signin_markup(&form, error));
    let cookie = st
        .sessions
        .cookie(SIGNIN_COOKIE, &form, "/console/signin", 600);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn signin_markup(form: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            form.signin method="post" action="/console/signin" {
                input type="hidden" name="csrf" value=(form);
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required
                    aria-describedby=[error.map(|_| "token-error")];
                @if let Some(e) = error {
                    p.error id="token-error" role="alert" { (e) }
                }
                p.hint { "A reader or admin token made with " code { "pgvigil token add" } "." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn signin(
    State(st): State<ConsoleState>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Form(f): Form<SigninForm>,
) -> Response {
    let peer = ext
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    // A sign-in posted from another site comes without the form's cookie (SameSite=Strict).
    let form_ok =
        session_cookie(&headers, SIGNIN_COOKIE).is_some_and(|c| !c.is_empty() && same(&c, &f.csrf));
    if !form_ok {
        tracing::warn!(source = %peer, "console sign-in refused: the form did not come from this console");
        return signin_response(
            &st,
            StatusCode::FORBIDDEN,
            Some("This sign-in did not come from this page. Sign in again."),
        );
    }
    if let Some(wait) = st.sessions.locked_out(peer) {
        tracing::warn!(source = %peer, "console sign-in refused: too many failed sign-ins");
        let mins = wait.as_secs().div_ceil(60).max(1);
        return signin_response(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed sign-ins from this address. Try again in {mins} min."
            )),
        );
    }
    let store = st.api.store.clone();
    let token = f.token.trim().to_string();
    let token_hash = store::token_hash(&token);
    let who = crate::api::blocking(move || store.verify_token(&token)).await;
    let Ok(Some((name, role))) = who else {
        let n = st.sessions.failed(peer);
        // The token itself is never logged, not even a wrong one (it may be a real one
        // with a typo).
        tracing::warn!(source = %peer, failures = n, "console sign-in with a token that is not valid");
        return signin_response(
            &st,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid."),
        );
    };
    let Some((id, _)) = st.sessions.start(
        Caller {
            name: name.clone(),
            role,
        },
        token_hash,
    ) else {
        return signin_response(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("No session could be started."),
        );
    };
    tracing::info!(source = %peer, token = %name, "console sign-in");
    let mut r = Redirect::to("/console").into_response();
    let h = r.headers_mut();
    for c in [
        st.sessions
            .cookie(COOKIE, &id, "/console", SESSION_LIFE.as_secs()),
        st.sessions.cookie(SIGNIN_COOKIE, "", "/console/signin", 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Signs out only with the session's own CSRF token: a foreign page cannot sign anyone out.
async fn signout(
    State(st): State<ConsoleState>,
    Signed { id, caller, csrf }: Signed,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !same(&f.csrf, &csrf) {
        return refused(
            &caller,
            &csrf,
            StatusCode::FORBIDDEN,
            "This form is out of date or did not come from this console. Reload the page and try again.",
        );
    }
    st.sessions.end(&id);
    let mut r = to_signin();
    if let Ok(v) = HeaderValue::from_str(&st.sessions.cookie(COOKIE, "", "/console", 0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

async fn alert_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(id): Path<String>,
) -> Response {
    let store = st.store.clone();
    let id2 = id.clone();
    let a = match crate::api::blocking(move || store.get_alert(&id2)).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return notice(
                &caller,
                &csrf,
                StatusCode::NOT_FOUND,
                "No such alert",
                "There is no alert with this id.",
            )
        }
        Err(e) => {
            return notice(
                &caller,
                &csrf,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                &e.message,
            )
        }
    };
    let e = &a["entities"];
    let loc = &e["location"];
    // Sample events and the proxy's response get their own sections; the rest as it is.
    let mut rest = a["evidence"].clone();
    let samples = rest
        .as_object_mut()
        .and_then(|o| o.remove("sampleEvents"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let response = rest
        .as_object_mut()
        .and_then(|o| o.remove("activeResponse"));
    let evidence = serde_json::to_string_pretty(&rest).unwrap_or_default();
    // The evidence's plain facts (numbers, words, short lists) as a list; the rest stays in
    // the raw JSON.
    let facts: Vec<(String, String)> = rest
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        Value::String(t) => t.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
                        Value::Array(items) if !items.is_empty() && items.len() <= 20 => items
                            .iter()
                            .map(|i| match i {
                                Value::String(t) => Some(t.clone()),
                                Value::Number(n) => Some(n.to_string()),
                                _ => None,
                            })
                            .collect::<Option<Vec<_>>>()?
                            .join(", "),
                        _ => return None,
                    };
                    Some((words_of(k), text))
                })
                .collect()
        })
        .unwrap_or_default();
    let now = store::now_ms();
    // Other alerts about the same source, on any server: the Tor listing beside the brute
    // force, the fleet-wide incident beside one server's.
    let related: Vec<Value> = match e["sourceIp"].as_str() {
        Some(ip) => {
            let store = st.store.clone();
            let q = AlertQuery {
                source_ip: Some(ip.to_string()),
                top: 21,
                ..Default::default()
            };
            crate::api::blocking(move || store.list_alerts(&q))
                .await
                .map(|(rows, _)| rows)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r["id"] != a["id"])
                .take(20)
                .collect()
        }
        None => Vec::new(),
    };
    let status = s(&a, "status");
    // Whether the source is blocked now (the alert's evidence says only that it was).
    let source: Option<std::net::IpAddr> = e["sourceIp"].as_str().and_then(|ip| ip.parse().ok());
    let blocked_now = match source {
        Some(ip) => st.blocked_until(ip).await.is_ok_and(|u| u.is_some()),
        None => false,
    };
    let actions: [(&str, &str, &str); 4] = [
        ("dismiss", "Dismiss", "Dismissed"),
        ("inProgress", "Mark in progress", "InProgress"),
        ("resolve", "Resolve", "Resolved"),
        ("activate", "Reactivate", "Active"),
    ];
    let body = html! {
        p.meta {
            span class={"sev " (s(&a, "severity"))} { (s(&a, "severity")) }
            " " (s(&a, "alertType")) " · server " (view::server(s(&a, "server"))) " · " (status)
            " · started " (view::when(now, s(&a, "startTimeUtc"))) ", last seen " (view::when(now, s(&a, "endTimeUtc")))
            (view::badge(&a))
        }
        @if caller.role == Role::Admin {
            div.actions role="group" aria-label="Change the status" {
                @for (action, label, to) in actions {
                    @if to != status {
                        form method="post" action={"/console/alerts/" (id) "/" (action)} {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { (label) }
                        }
                    }
                }
            }
        }
        section { h2 { "What happened" } p { (s(&a, "description")) } }
        section { h2 { "Why it is unusual" } p { (s(&a, "anomalyContext")) } }
        section {
            h2 { "Entities" }
            dl {
                dt { "Source" } dd { @match e["sourceIp"].as_str() { Some(ip) => { (view::source(ip)) }, None => { "unknown" } } }
                dt { "Location" } dd {
                    @match (loc["country"].as_str(), loc["addressClass"].as_str()) {
                        (Some(c), _) => { (c) }
                        (None, Some(class)) if class != "public" => { (class) " address" }
                        _ => { "unknown country" }
                    }
                    @if let Some(c) = loc["city"].as_str() { ", " (c) }
                    @if let Some(n) = loc["asn"].as_u64() { " · AS" (n) }
                    @if let Some(o) = loc["org"].as_str() { " " (o) }
                }
                // "No cloud" beside a network named after one would read as a contradiction:
                // the network's owner is shown above, the cloud only when its ranges say so.
                @if let Some(p) = e["cloud"]["provider"].as_str() {
                    dt { "Cloud" } dd { (p) " " (e["cloud"]["region"].as_str().unwrap_or("")) }
                } @else if loc["org"].is_null() {
                    dt { "Cloud" } dd { "not in a published cloud range" }
                }
                dt { "Principal" } dd { (view::principal(e["principal"].as_str().unwrap_or(""))) }
                dt { "Database" } dd { (e["database"].as_str().unwrap_or("")) }
                dt { "Application" } dd { (e["application"].as_str().unwrap_or("")) }
                dt { "Client fingerprint" } dd { (e["fingerprint"].as_str().unwrap_or("not seen (logs only)")) }
            }
        }
        section.take-action {
            h2 { "Take action" }
            h3 { "What to do" }
            ol { @for step in a["remediationSteps"].as_array().into_iter().flatten() { li { (step.as_str().unwrap_or("")) } } }
            h3 { "What pgvigil can do" }
            ul.can {
                @if let Some(ip) = e["sourceIp"].as_str() {
                    li { "See everything about " (view::source(ip)) ": its alerts on every server, where it is, whether it is blocked." }
                }
                @if caller.role == Role::Admin {
                    li { a href=(suppress_link(&a)) { "Suppress similar alerts…" } ": a rule that dismisses future alerts like this one (a known scanner, a monitoring role), with an expiry." }
                    @if let (Some(ip), true) = (source, blocked_now) {
                        li {
                            form.lift method="post" action={"/console/blocks/" (ip) "/lift"} {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="alert" value=(id);
                                button type="submit" { "Lift the block" }
                                " of " (ip) " at the proxy, if it is a false positive."
                            }
                        }
                    } @else if let Some(ip) = source {
                        li {
                            (blocks::form(&ip.to_string(), &id, &csrf, "alert"))
                            " Proxies with active response on refuse it within a second."
                        }
                    }
                } @else {
                    li { "An admin token can dismiss it, suppress alerts like it, or block or unblock its source at the proxy." }
                }
            }
        }
        section {
            h2 { "MITRE ATT&CK" }
            ul.techniques { @for t in a["techniques"].as_array().into_iter().flatten() { li { (view::technique(t.as_str().unwrap_or(""))) } } }
        }
        section {
            h2 { "History" }
            ul.history { @for h in a["stateHistory"].as_array().into_iter().flatten() {
                li { (view::history_entry(now, h)) }
            } }
        }
        @if let Some(r) = &response {
            section.response {
                h2 { "Active response" }
                @if s(r, "action") == "blocked" {
                    p { "The proxy refused new connections from " (e["sourceIp"].as_str().unwrap_or("this source"))
                        " from " (s(r, "since")) " until " (s(r, "until")) " (UTC)." }
                    @if blocked_now {
                        p { "It is blocked now (see Take action to lift the block)." }
                    } @else {
                        p { "It is not blocked now." }
                    }
                } @else {
                    p { "Not blocked: " (s(r, "reason")) "." }
                }
            }
        }
        section {
            h2 { "Evidence timeline" }
            @if samples.is_empty() { p.hint { "No sample events." } } @else {
                div.table-wrap { table.samples {
                    caption { "Sample events, in order" }
                    thead { (head(&["Time (UTC)", "Event", "Source", "Principal", "Database", "Application", "Client", "Message"])) }
                    tbody { @for ev in &samples { tr {
                        td { (s(ev, "time")) } td { (s(ev, "kind")) }
                        td { (s(ev, "sourceIp")) @if let Some(p) = ev["sourcePort"].as_u64() { ":" (p) } }
                        td { (s(ev, "principal")) } td { (s(ev, "database")) } td { (s(ev, "application")) }
                        td {
                            (s(ev, "fingerprint"))
                            @if let Some(us) = ev["clientAuthUs"].as_u64() {
                                " (answered the login in " (format!("{:.1}", us as f64 / 1000.0)) " ms)"
                            }
                        }
                        td { @if let Some(c) = ev["sqlstate"].as_str() { code { (c) } " " } (s(ev, "message")) }
                    } } }
                } }
            }
        }
        section.related {
            h2 { "Related alerts" }
            @if related.is_empty() { p.hint { "No other alert about this source." } } @else {
                div.table-wrap { table.alerts {
                    caption { "Other alerts about " (e["sourceIp"].as_str().unwrap_or("this source")) ", on any server" }
                    thead { (head(&["Alert", "Server", "Principal", "Status", "Last seen"])) }
                    tbody { @for r in &related { tr {
                        td data-label="Alert" { (view::alert(r)) }
                        td data-label="Server" { (view::server(s(r, "server"))) }
                        td data-label="Principal" { (view::principal_of(r)) }
                        td data-label="Status" { (s(r, "status")) }
                        td data-label="Last seen" { (view::when(now, s(r, "endTimeUtc"))) }
                    } } }
                } }
            }
        }
        section {
            h2 { "Evidence" }
            @if !facts.is_empty() { dl.facts { @for (k, v) in &facts { dt { (k) } dd { (v) } } } }
            details { summary { "Raw evidence (JSON)" } pre { (evidence) } }
        }
        p { a href="/console/alerts" { "Back to the alerts" } }
    };
    page(
        StatusCode::OK,
        layout(s(&a, "displayName"), Some((&caller, &csrf)), body),
    )
}

async fn act(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(no) = may_change(&caller, &csrf, &f.csrf, "alerts") {
        return no;
    }
    let Some(to) = Status::of_action(&action) else {
        return notice(
            &caller,
            &csrf,
            StatusCode::NOT_FOUND,
            "No such action",
            "Alert actions are dismiss, activate, inProgress and resolve.",
        );
    };
    // As through the API: dismissing or resolving lets a blocked source in again.
    match st.set_alert_status(&id, to, &caller.name).await {
        Ok(Some(_)) => {
            tracing::info!(alert = %id, status = to.as_str(), by = %caller.name, "alert status changed in the console");
            Redirect::to(&format!("/console/alerts/{id}")).into_response()
        }
        Ok(None) => notice(
            &caller,
            &csrf,
            StatusCode::NOT_FOUND,
            "No such alert",
            "There is no alert with this id.",
        ),
        Err(e) => notice(
            &caller,
            &csrf,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            &e.message,
        ),
    }
}

/// A bar chart as SVG, drawn on the server: no script, and a table of the same numbers for
/// screen readers and for reading exact values.
fn bar_chart(title: &str, what: &str, bars: &[(String, i64)]) -> Markup {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    // Room on the left for the count axis, below for the time axis.
    let (left, w, h, gap) = (44.0_f64, 760.0_f64, 160.0_f64, 2.0_f64);
    let plot = w - left;
    let bw = if bars.is_empty() {
        plot
    } else {
        plot / bars.len() as f64
    };
    // Times shown as people read them: `2026-11-28T13` is "11-28 13:00".
    let tick = |label: &str| match label.split_once('T') {
        Some((d, hour)) => format!("{} {hour}:00", d.get(5..).unwrap_or(d)),
        None => label.get(5..).unwrap_or(label).to_string(),
    };
    let ticks: Vec<usize> = if bars.len() > 1 {
        vec![0, bars.len() / 2, bars.len() - 1]
    } else {
        vec![0]
    };
    html! {
        figure.chart {
            svg width="100%" viewBox={"0 0 " (w) " " (h + 22.0)} role="img" aria-label=(title) {
                @for (i, (label, n)) in bars.iter().enumerate() {
                    @let bh = (*n as f64 / max as f64) * h;
                    rect x=(left + i as f64 * bw + gap / 2.0) y=(h - bh) width=((bw - gap).max(1.0)) height=(bh) {
                        title { (label) ": " (n) }
                    }
                }
                line.axis x1=(left) y1=(h) x2=(w) y2=(h) {}
                line.axis x1=(left) y1="0" x2=(left) y2=(h) {}
                text x=(left - 6.0) y="12" font-size="12" text-anchor="end" { (max) }
                text x=(left - 6.0) y=(h) font-size="12" text-anchor="end" { "0" }
                @for i in &ticks {
                    @let x = left + (*i as f64 + 0.5) * bw;
                    @let anchor = if *i == 0 { "start" } else if *i + 1 == bars.len() { "end" } else { "middle" };
                    text x=(if anchor == "start" { left } else if anchor == "end" { w } else { x }) y=(h + 18.0) font-size="12" text-anchor=(anchor) { (tick(&bars[*i].0)) }
                }
            }
            figcaption { span.legend aria-hidden="true" {} " " (what) " — " (title) " (UTC; the axis on the left counts " (what.to_lowercase()) " per bar)" }
            details {
                summary { "The numbers" }
                table { thead { (head(&["When (UTC)", what])) }
                    tbody { @for (label, n) in bars { tr { td { (label) } td { (n) } } } } }
            }
        }
    }
}

/// An alertType as the catalogue names it.
fn type_title(t: &str) -> &str {
    model::alert::AlertType::ALL
        .into_iter()
        .find(|x| x.as_str() == t)
        .map_or(t, |x| x.title())
}

/// Open alerts as the overview lists them: what, where, who, how many, how long ago.
fn open_alerts(rows: &[Value], now: i64) -> Markup {
    html! {
        @if rows.is_empty() { p.hint { "None open." } } @else {
            div.table-wrap { table.alerts {
                thead { (head(&["Alert", "Server", "Source", "Principal", "Count", "Last seen"])) }
                tbody { @for a in rows { tr {
                    td data-label="Alert" { (view::alert(a)) }
                    td data-label="Server" { (view::server(s(a, "server"))) }
                    td data-label="Source" { (view::source_of(a)) }
                    td data-label="Principal" { (view::principal_of(a)) }
                    td data-label="Count" { @if let Some(n) = view::count(a) { (n) } }
                    td data-label="Last seen" { (view::when(now, s(a, "endTimeUtc"))) }
                } } }
            } }
        }
    }
}

/// An evidence key in words: `failedLogins` → "Failed logins".
fn words_of(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else if i == 0 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The rule form filled in with an alert's type, server, source and principal.
fn suppress_link(a: &Value) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("alertType", s(a, "alertType"));
    q.append_pair("server", s(a, "server"));
    let e = &a["entities"];
    for k in ["sourceIp", "principal"] {
        if let Some(v) = e[k].as_str() {
            q.append_pair(k, v);
        }
    }
    format!("/console/suppression?{}", q.finish())
}

/// A table's header row.
fn head(cols: &[&str]) -> Markup {
    html! { tr { @for c in cols { th scope="col" { (c) } } } }
}

pub(super) fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn overview_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let range = params.get("range").map(String::as_str).unwrap_or("24h");
    let (span_ms, hourly, range) = match range {
        "7d" => (7 * 86_400_000, false, "7d"),
        "30d" => (30 * 86_400_000, false, "30d"),
        _ => (86_400_000, true, "24h"),
    };
    let server = params.get("server").cloned().unwrap_or_default();
    let since = model::event::format_time(store::now_ms() - span_ms);
    let store = st.store.clone();
    let (since2, server2) = (since.clone(), server.clone());
    let data = crate::api::blocking(move || {
        // The newest and the highest open alerts, of the server chosen.
        let open = |by_severity: bool| AlertQuery {
            status: Some("Active".into()),
            server: (!server2.is_empty()).then(|| server2.clone()),
            simulated: Some(false),
            top: 8,
            order: if by_severity {
                store::Order::Severity
            } else {
                store::Order::Newest
            },
            ..Default::default()
        };
        Ok::<_, store::StoreError>((
            store.overview(&since2, hourly, &server2)?,
            store.list_servers()?,
            store.list_alerts(&open(false))?.0,
            store.list_alerts(&open(true))?.0,
        ))
    })
    .await;
    let (ov, servers, newest, highest) = match data {
        Ok(x) => x,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    // Every bucket of the range, empty ones too, so the chart's time axis is even.
    let width = if hourly { 13 } else { 10 };
    let step = if hourly { 3_600_000 } else { 86_400_000 };
    let start = store::now_ms() - span_ms;
    let labels: Vec<String> = (0..=(span_ms / step))
        .map(|i| model::event::format_time(start + i * step)[..width].to_string())
        .collect();
    let alerts: HashMap<&str, i64> = ov.timeline.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    let failed: HashMap<&str, i64> = ov.logins.iter().map(|(k, n, _)| (k.as_str(), *n)).collect();
    let series = |counts: &HashMap<&str, i64>| -> Vec<(String, i64)> {
        labels
            .iter()
            .map(|l| (l.clone(), counts.get(l.as_str()).copied().unwrap_or(0)))
            .collect()
    };
    let (alert_bars, failed_bars) = (series(&alerts), series(&failed));
    let succeeded: i64 = ov.logins.iter().map(|l| l.2).sum();
    let failed_total: i64 = ov.logins.iter().map(|l| l.1).sum();
    let per = if hourly { "hour" } else { "day" };
    let now = store::now_ms();
    let of = if server.is_empty() {
        "all servers".to_string()
    } else {
        server.clone()
    };
    let link = |r: &str| {
        if server.is_empty() {
            format!("/console?range={r}")
        } else {
            format!("/console?range={r}&server={}", url_encode(&server))
        }
    };
    let body = html! {
        form.filters method="get" action="/console" {
            label for="server" { "Server" }
            select #server name="server" {
                option value="" selected[server.is_empty()] { "All servers" }
                @for sv in &servers { option value=(sv.name) selected[sv.name == server] { (sv.name) } }
            }
            input type="hidden" name="range" value=(range);
            button type="submit" { "Show" }
        }
        nav.ranges aria-label="Time range" {
            @for r in ["24h", "7d", "30d"] {
                @if r == range { strong aria-current="page" { (r) } } @else { a href=(link(r)) { (r) } }
            }
        }
        section.cards {
            h2 { "Open alerts by severity" }
            ul.counts {
                @for sev in ["High", "Medium", "Low"] {
                    @let n = ov.open_by_severity.iter().find(|(s, _)| s == sev).map_or(0, |x| x.1);
                    li { a href={"/console/alerts?status=Active&severity=" (sev)} { span class={"sev " (sev)} { (sev) } " " strong { (n) } } }
                }
            }
        }
        section.open {
            h2 { "Highest open alerts" }
            (open_alerts(&highest, now))
            h2 { "Newest open alerts" }
            (open_alerts(&newest, now))
        }
        section {
            h2 { "Open alerts by type" }
            @if ov.open_by_type.is_empty() { p.hint { "None open." } } @else {
                table { tbody { @for (t, n) in &ov.open_by_type { tr {
                    td { a href={"/console/alerts?status=Active&alertType=" (t)} { (type_title(t)) } } td { (n) }
                } } } }
            }
        }
        section {
            h2 { "Alerts started, last " (range) ", " (of) }
            (bar_chart(&format!("Alerts started per {per} since {since}"), "Alerts", &alert_bars))
        }
        section {
            h2 { "Failed logins, last " (range) ", " (of) }
            p.meta.logins { (failed_total) " failed and " (succeeded) " successful logins." }
            (bar_chart(&format!("Failed logins per {per} since {since}"), "Failed logins", &failed_bars))
        }
        section {
            h2 { "Top sources, last " (range) }
            @if ov.top_sources.is_empty() { p.hint { "None." } } @else {
                table {
                    thead { (head(&["Source", "Alerts", "Country", "Cloud"])) }
                    tbody { @for (ip, n, country, cloud) in &ov.top_sources { tr {
                        td { (view::source(ip)) } td { (n) } td { (country.as_deref().unwrap_or("")) } td { (cloud.as_deref().unwrap_or("")) }
                    } } }
                }
            }
        }
        section {
            h2 { "Servers" }
            table {
                thead { (head(&["Server", "Mode", "Open alerts", "Last event (UTC)"])) }
                tbody { @for sv in &servers { tr {
                    td { a href={"/console/servers/" (sv.name)} { (sv.name) } } td { (sv.mode) } td { (sv.open_alerts) } td { (sv.last_event.as_deref().unwrap_or("")) }
                } } }
            }
        }
    };
    page(
        StatusCode::OK,
        layout("Overview", Some((&caller, &csrf)), body),
    )
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

/// The policy form as posted.
#[derive(Default)]
struct PolicyForm {
    csrf: String,
    state: String,
    email_addresses: String,
    email_account_admins: Option<String>,
    retention_days: String,
    /// Checked categories arrive as `disabled=Brute_Force&disabled=…`.
    disabled: Vec<String>,
}

impl PolicyForm {
    /// Parsed by hand: repeated keys (`disabled`) make a list, which serde's form decoding
    /// does not.
    fn parse(body: &[u8]) -> PolicyForm {
        let mut f = PolicyForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "csrf" => f.csrf = v.into_owned(),
                "state" => f.state = v.into_owned(),
                "email_addresses" => f.email_addresses = v.into_owned(),
                "email_account_admins" => f.email_account_admins = Some(v.into_owned()),
                "retention_days" => f.retention_days = v.into_owned(),
                "disabled" => f.disabled.push(v.into_owned()),
                _ => {}
            }
        }
        f
    }
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

fn policy_markup(
    server: &str,
    p: &model::policy::Policy,
    values: Option<&PolicyForm>,
    error: Option<&model::policy::PolicyError>,
    can_edit: bool,
    csrf: &str,
    saved: bool,
) -> Markup {
    let err_for = |f: &str| {
        error
            .filter(|e| field_of(&e.field) == f)
            .map(|e| e.message.clone())
    };
    let emails = values
        .map(|v| v.email_addresses.clone())
        .unwrap_or_else(|| p.email_addresses.join("; "));
    let retention = values
        .map(|v| v.retention_days.clone())
        .unwrap_or_else(|| p.retention_days.to_string());
    let enabled = values.map_or(p.state == model::policy::PolicyState::Enabled, |v| {
        v.state == "Enabled"
    });
    let admins = values.map_or(p.email_account_admins, |v| v.email_account_admins.is_some());
    let disabled: Vec<String> = values.map_or(p.disabled_alerts.clone(), |v| v.disabled.clone());
    html! {
        @if saved { p.saved role="status" { "Saved." } }
        @if let Some(e) = err_for("form") { p.error role="alert" { (e) } }
        form.policy method="post" action={"/console/servers/" (server) "/policy"} {
            input type="hidden" name="csrf" value=(csrf);
            fieldset disabled[!can_edit] {
                legend { "Security alert policy of " (server) }
                label for="state" { "State" }
                select id="state" name="state" {
                    option value="Enabled" selected[enabled] { "Enabled" }
                    option value="Disabled" selected[!enabled] { "Disabled" }
                }
                fieldset.categories aria-describedby=[err_for("disabled").map(|_| "disabled-error")] {
                    legend { "Disabled alert categories" }
                    @for c in model::policy::CATEGORIES {
                        label { input type="checkbox" name="disabled" value=(c) checked[disabled.iter().any(|d| d == c)]; " " (c) }
                    }
                    @if let Some(e) = err_for("disabled") { p.error id="disabled-error" { (e) } }
                }
                label for="email_addresses" { "Email recipients (separated by ;)" }
                input id="email_addresses" name="email_addresses" value=(emails)
                    aria-invalid=[err_for("email_addresses").map(|_| "true")]
                    aria-describedby=[err_for("email_addresses").map(|_| "email-error")];
                @if let Some(e) = err_for("email_addresses") { p.error id="email-error" role="alert" { (e) } }
                label.inline { input type="checkbox" name="email_account_admins" value="on" checked[admins]; " Also email the administrators" }
                label for="retention_days" { "Keep alerts for (days, 0 = forever)" }
                input id="retention_days" name="retention_days" inputmode="numeric" value=(retention)
                    aria-invalid=[err_for("retention_days").map(|_| "true")]
                    aria-describedby=[err_for("retention_days").map(|_| "retention-error")];
                @if let Some(e) = err_for("retention_days") { p.error id="retention-error" role="alert" { (e) } }
                @if can_edit { button type="submit" { "Save" } }
            }
        }
        @if !can_edit { p.hint { "A reader token can look, not change." } }
    }
}

async fn policy_page(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(server): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if crate::api::policies::known_server(&st, &server)
        .await
        .is_err()
    {
        return refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such server.");
    }
    let store = st.store.clone();
    let name = server.clone();
    let p = match crate::api::blocking(move || store.get_policy(&name)).await {
        Ok(p) => p,
        Err(e) => return failed(&caller, &csrf, &e),
    };
    let body = policy_markup(
        &server,
        &p,
        None,
        None,
        caller.role == Role::Admin,
        &csrf,
        q.contains_key("saved"),
    );
    page(
        StatusCode::OK,
        layout(
            &format!("Alert policy · {server}"),
            Some((&caller, &csrf)),
            body,
        ),
    )
}

async fn policy_save(
    State(st): State<Arc<ApiState>>,
    Signed { caller, csrf, .. }: Signed,
    Path(server): Path<String>,
    body_bytes: axum::body::Bytes,
) -> Response {
    let f = PolicyForm::parse(&body_bytes);
    if let Some(no) = may_change(&caller, &csrf, &f.csrf, "the policy") {
        return no;
    }
    if crate::api::policies::known_server(&st, &server)
        .await
        .is_err()
    {
        return refused(&caller, &csrf, StatusCode::NOT_FOUND, "No such server.");
    }
    let retention: Value = match f.retention_days.trim().parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => f.retention_days.clone().into(),
    };
    let body = serde_json::json!({"properties": {
        "state": f.state,
        "disabledAlerts": f.disabled,
        "emailAddresses": f.email_addresses,
        "emailAccountAdmins": f.email_account_admins.is_some(),
        "retentionDays": retention,
    }});
    match model::policy::Policy::from_put_body(&body, &server) {
        Ok(u) => {
            let st2 = st.clone();
            let (name, who) = (server.clone(), caller.name.clone());
            let saved = crate::api::blocking(move || {
                st2.store.put_policy(
                    &name,
                    &u,
                    &store::PolicyChange {
                        actor: &who,
                        channels: &st2.channels,
                        admins: &st2.admins,
                    },
                )
            });
            match saved.await {
                Ok(_) => {
                    st.settings_changed().await;
                    tracing::info!(server = %server, by = %caller.name, "policy changed in the console");
                    Redirect::to(&format!("/console/servers/{server}/policy?saved")).into_response()
                }
                Err(e) => refused(
                    &caller,
                    &csrf,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &e.message,
                ),
            }
        }
        Err(e) => {
            let store = st.store.clone();
            let name = server.clone();
            let p = crate::api::blocking(move || store.get_policy(&name))
                .await
                .unwrap_or_default();
            let markup = policy_markup(&server, &p, Some(&f), Some(&e), true, &csrf, false);
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                layout(
                    &format!("Alert policy · {server}"),
                    Some((&caller, &csrf)),
                    markup,
                ),
            )
        }
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
