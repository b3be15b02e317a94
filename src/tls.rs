//! TLS configurations built once, for every place pgvigil speaks TLS: the API and the proxy
//! as servers, the central store, the posture scan and the proxy's upstream as clients.
//! Certificates are always verified (the platform's roots plus an optional CA file).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from a certificate chain and key (PEM); `what` names the settings
/// in errors (`api.tls_cert`).
pub fn server_config(
    cert: &Path,
    key: &Path,
    what: &str,
) -> Result<rustls::ServerConfig, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("{what}_cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{what}_cert {}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("{what}_key {}: {e}", key.display())))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError(format!(
                "{what}_cert {} and {what}_key: they do not make a usable pair ({e})",
                cert.display()
            ))
        })
}

/// A client configuration trusting the platform's roots and the CAs of `ca_file`; `what`
/// names the setting in errors (`store.ca_file`).
pub fn client_config(ca_file: Option<&Path>, what: &str) -> Result<rustls::ClientConfig, TlsError> {
    let extra: Vec<CertificateDer<'static>> = match ca_file {
        Some(p) => CertificateDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError(format!("{what} {}: {e}", p.display())))?,
        None => Vec::new(),
    };
    if let Some(p) = ca_file {
        if extra.is_empty() {
            return Err(TlsError(format!(
                "{what} {}: no certificate in the file",
                p.display()
            )));
        }
    }
    let provider = provider();
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| TlsError(format!("TLS certificate verifier: {e}")))?;
    // `dangerous()` is rustls' door to any verifier of one's own; this one is the platform's,
    // with the extra CA added.
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}
