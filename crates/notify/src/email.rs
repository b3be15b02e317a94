//! Email over SMTP (lettre): one readable plain-text message per alert update, to the
//! server's policy recipients.

use super::{render, DeliveryError, Secret};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use model::alert::Alert;
use model::duration::Span;
use model::setting::SettingError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refuses a server without it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this machine.
    None,
}

/// `[notify.email]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Read the password from this file instead (first line).
    pub password_file: Option<PathBuf>,
    /// Also trust this CA (PEM) for the server's certificate: for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Sender, e.g. `pgvigil <pgvigil@example.com>`.
    pub from: String,
    /// Mailed for every server whose policy has `emailAccountAdmins`.
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: Span,
}

fn default_timeout() -> Span {
    Span(10_000)
}

pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
}

impl Mailer {
    pub fn new(cfg: &EmailConfig) -> Result<Mailer, SettingError> {
        let from: Mailbox = cfg.from.parse().map_err(|e| {
            SettingError::new(
                "notify.email.from",
                format!("notify.email.from {:?}: {e}", cfg.from),
            )
        })?;
        for (i, a) in cfg.admins.iter().enumerate() {
            a.parse::<lettre::Address>().map_err(|e| {
                SettingError::new(
                    format!("notify.email.admins[{i}]"),
                    format!("notify.email.admins[{i}] {a:?}: {e}"),
                )
            })?;
        }
        let password = match (&cfg.password, &cfg.password_file) {
            (Some(p), None) => Some(p.expose().to_string()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        SettingError::new(
                            "notify.email.password_file",
                            format!("notify.email.password_file {}: {e}", f.display()),
                        )
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(SettingError::new(
                    "notify.email.password",
                    "notify.email: set password or password_file, not both",
                ))
            }
        };
        let host_err = |e: lettre::transport::smtp::Error| {
            SettingError::new(
                "notify.email.host",
                format!("notify.email.host {:?}: {e}", cfg.host),
            )
        };
        let builder = match (cfg.security, &cfg.ca_file) {
            (Security::None, _) => {
                SmtpTransport::builder_dangerous(&cfg.host).port(cfg.port.unwrap_or(25))
            }
            (sec, Some(ca)) => {
                let ca_err = |e: String| {
                    SettingError::new(
                        "notify.email.ca_file",
                        format!("notify.email.ca_file {}: {e}", ca.display()),
                    )
                };
                let pem = std::fs::read(ca).map_err(|e| ca_err(e.to_string()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| ca_err(e.to_string()))?;
                let params = TlsParameters::builder(cfg.host.clone())
                    .add_root_certificate(cert)
                    .build_rustls()
                    .map_err(host_err)?;
                let (tls, port) = if sec == Security::Tls {
                    (Tls::Wrapper(params), 465)
                } else {
                    (Tls::Required(params), 587)
                };
                SmtpTransport::builder_dangerous(&cfg.host)
                    .port(cfg.port.unwrap_or(port))
                    .tls(tls)
            }
            (Security::Starttls, None) => SmtpTransport::starttls_relay(&cfg.host)
                .map_err(host_err)?
                .port(cfg.port.unwrap_or(587)),
            (Security::Tls, None) => SmtpTransport::relay(&cfg.host)
                .map_err(host_err)?
                .port(cfg.port.unwrap_or(465)),
        };
        let mut builder = builder.timeout(Some(std::time::Duration::from_millis(
            cfg.timeout.ms().max(1) as u64,
        )));
        match (&cfg.username, password) {
            (Some(u), Some(p)) => builder = builder.credentials(Credentials::new(u.clone(), p)),
            (None, None) => {}
            _ => {
                return Err(SettingError::new(
                    "notify.email.username",
                    "notify.email: username and password go together",
                ))
            }
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    pub fn send(
        &self,
        a: &Alert,
        simulated: bool,
        recipients: &[String],
        public_url: Option<&str>,
    ) -> Result<(), DeliveryError> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(render::subject(a, simulated))
            .header(ContentType::TEXT_PLAIN);
        let mut any = false;
        for r in recipients {
            // Addresses were checked when the policy was stored.
            if let Ok(addr) = r.parse::<lettre::Address>() {
                m = m.to(Mailbox::new(None, addr));
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
        let msg = m
            .body(render::body(a, simulated, public_url))
            .map_err(|e| DeliveryError::Refused(e.to_string()))?;
        self.transport.send(&msg).map_err(|e| {
            if e.is_permanent() {
                DeliveryError::Refused(e.to_string())
            } else {
                DeliveryError::Failed(e.to_string())
            }
        })?;
        Ok(())
    }
}
