//! One listener for the API and the web console: their routes under one set of limits,
//! over HTTPS when `[api]` has a certificate, on a thread of its own.

pub mod api;
pub mod console;

use crate::api::{ApiConfig, ApiState};
use crate::console::{ConsoleState, Sessions};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// The API's routes and the console's, as served.
pub fn router(state: Arc<ApiState>, sessions: Arc<Sessions>, max_body: usize) -> Router {
    let console = crate::console::router().with_state(ConsoleState {
        api: state.clone(),
        sessions,
    });
    crate::api::finish(crate::api::routes(state).merge(console), max_body)
}

/// The TLS settings of `[api]`, loaded now so that a bad file stops pgvigil with its name.
fn tls_config(cfg: &ApiConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => anyhow::bail!("api.tls_cert and api.tls_key go together"),
    };
    let mut sc = tls::server_config(cert, key, "api.tls")?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(sc)))
}

/// Binds the API's address (so that a taken port or a bad certificate is an error at
/// startup) and serves it, over HTTPS when `tls_cert`/`tls_key` are set, on `runtime` for as
/// long as it runs. Returns the bound address.
pub fn spawn(
    cfg: &ApiConfig,
    state: Arc<ApiState>,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let tls = tls_config(cfg)?;
    let std_listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("api.listen {}", cfg.listen))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    if !cfg.listen.ip().is_loopback() && tls.is_none() {
        tracing::warn!(listen = %addr, "the API listens beyond this machine without TLS: tokens cross the network in clear; set api.tls_cert and api.tls_key");
    }
    let https = tls.is_some();
    let sessions = Arc::new(Sessions::new(cfg.session_idle.duration()));
    sessions.set_https(https);
    let mut app = router(state, sessions, cfg.max_body_bytes);
    if https {
        // Browsers that once reached the console over HTTPS never fall back to plain HTTP.
        app = app.layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                );
                r
            },
        ));
    }
    // Handlers see the client's address (failed console sign-ins are limited per address).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    runtime.spawn(async move {
        let served = match tls {
            Some(sc) => {
                let rc = axum_server::tls_rustls::RustlsConfig::from_config(sc);
                match axum_server::tls_rustls::from_tcp_rustls(std_listener, rc) {
                    Ok(server) => server.serve(app).await,
                    Err(e) => Err(e),
                }
            }
            None => match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => axum::serve(l, app).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    tracing::info!(listen = %addr, https, "API listening");
    Ok(addr)
}
