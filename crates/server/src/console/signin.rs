//! `/console/signin` and `/console/signout`: sign-in with an API token (a form token in a
//! cookie and in the form, failed sign-ins from one address limited), sign-out with the
//! session's CSRF token.

use super::{
    layout, page, random_hex, refused, same, session_cookie, to_signin, ConsoleState, CsrfForm,
    Signed, COOKIE, SESSION_LIFE, SIGNIN_COOKIE,
};
use crate::api::Caller;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

#[derive(Deserialize)]
pub(super) struct SigninForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// The sign-in page, with a fresh form token in a cookie and in the form.
pub(super) async fn show(State(st): State<ConsoleState>) -> Response {
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

pub(super) async fn submit(
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

/// Signs out only with the session's own CSRF token: a foreign page cannot sign anyone out.
pub(super) async fn signout(
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
