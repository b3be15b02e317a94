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
    let provider = provider();
    let verifier = platform_verifier(ca_file, what, &provider)?;
    // `dangerous()` is rustls' door to any verifier of one's own; this one is the platform's,
    // with the extra CA added.
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The platform's certificate verifier with the CAs of `ca_file` added.
fn platform_verifier(
    ca_file: Option<&Path>,
    what: &str,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls_platform_verifier::Verifier>, TlsError> {
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
    rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        .map(Arc::new)
        .map_err(|e| TlsError(format!("TLS certificate verifier: {e}")))
}

/// How much of the server's certificate a libpq-style client checks (`sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertCheck {
    /// `prefer`/`require` without a root certificate: encrypted, the certificate unchecked
    /// (libpq's meaning: protection from eavesdropping, not from an impostor).
    None,
    /// `verify-ca` (or `require` with `sslrootcert`): signed by a trusted CA, any name.
    Chain,
    /// `verify-full`: signed by a trusted CA and issued to the host connected to.
    Full,
}

/// A client configuration for a libpq-style `sslmode`: see [`CertCheck`]. The handshake's
/// signatures are checked in every mode.
pub fn libpq_client_config(
    check: CertCheck,
    ca_file: Option<&Path>,
    what: &str,
) -> Result<rustls::ClientConfig, TlsError> {
    if check == CertCheck::Full {
        return client_config(ca_file, what);
    }
    let provider = provider();
    let inner = platform_verifier(ca_file, what, &provider)?;
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LibpqVerifier {
                inner,
                check,
                provider,
            }))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct LibpqVerifier {
    inner: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    check: CertCheck,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        if self.check == CertCheck::None {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // verify-ca: the chain is what counts, not the name.
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
