//! Notifications: email, webhooks (JSON, Slack, Teams) and syslog (RFC 5424, CEF).
//!
//! Alerts reach the outbox in the store in the same transaction that stores them (see
//! [`store`]); the sender here delivers due items and retries failures with
//! exponential backoff, across restarts, until they go through.

pub mod email;
pub mod render;
pub mod syslog;
pub mod webhook;

use model::alert::Alert;
use model::duration::Span;
use model::setting::SettingError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use store::health::Counters;
use store::{Channel, OutboxItem, Store, StoreError};

pub use model::secret::Secret;

/// Why a notification did not go.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Sending the same message again cannot succeed until the receiver or the
    /// configuration changes: the receiver refused it (an HTTP 4xx other than 408 and 429,
    /// an SMTP 5xx), or the queued alert or its channel is gone.
    #[error("{0}")]
    Refused(String),
    /// The receiver could not be reached, timed out or failed for now.
    #[error("{0}")]
    Failed(String),
}

impl DeliveryError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Refused(_))
    }
}

/// `[notify]` in pgvigil.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub email: Option<email::EmailConfig>,
    pub webhook: Vec<webhook::WebhookConfig>,
    pub syslog: Vec<syslog::SyslogConfig>,
    /// First retry after a failed delivery; each further one waits twice as long.
    pub retry_base: Span,
    /// Longest wait between retries.
    pub retry_max: Span,
    /// Time limit of one delivery attempt.
    pub timeout: Span,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            email: None,
            webhook: Vec::new(),
            syslog: Vec::new(),
            retry_base: Span(5_000),
            retry_max: Span(3_600_000),
            timeout: Span(10_000),
        }
    }
}

pub struct Notifier {
    cfg: NotifyConfig,
    agent: ureq::Agent,
    mailer: Option<email::Mailer>,
    public_url: Option<String>,
    hostname: String,
}

impl Notifier {
    /// Checks the configuration (names unique, URLs and addresses valid, password files
    /// readable) and prepares the channels.
    pub fn new(cfg: &NotifyConfig, public_url: Option<String>) -> Result<Notifier, SettingError> {
        let mut names = std::collections::HashSet::new();
        for (i, w) in cfg.webhook.iter().enumerate() {
            if !names.insert(Channel::Webhook(w.name.clone())) {
                return Err(SettingError::new(
                    format!("notify.webhook[{i}].name"),
                    format!("notify.webhook[{i}].name {:?} is used twice", w.name),
                ));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return Err(SettingError::new(
                    format!("notify.webhook[{i}].url"),
                    format!("notify.webhook[{i}].url {:?}: not an http(s) URL", w.url),
                ));
            }
        }
        for (i, s) in cfg.syslog.iter().enumerate() {
            if !names.insert(Channel::Syslog(s.name.clone())) {
                return Err(SettingError::new(
                    format!("notify.syslog[{i}].name"),
                    format!("notify.syslog[{i}].name {:?} is used twice", s.name),
                ));
            }
            if !s.address.contains(':') {
                return Err(SettingError::new(
                    format!("notify.syslog[{i}].address"),
                    format!(
                        "notify.syslog[{i}].address {:?}: expected host:port",
                        s.address
                    ),
                ));
            }
        }
        let mailer = cfg.email.as_ref().map(email::Mailer::new).transpose()?;
        let timeout = cfg.timeout.duration();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Webhook receivers answer 2xx or fail; a redirect is a misconfiguration.
            .max_redirects(0)
            .build()
            .into();
        Ok(Notifier {
            cfg: cfg.clone(),
            agent,
            mailer,
            public_url,
            hostname: hostname(),
        })
    }

    /// The channels alerts are queued on.
    pub fn channels(&self) -> Vec<Channel> {
        let mut v = Vec::new();
        if self.mailer.is_some() {
            v.push(Channel::Email);
        }
        v.extend(
            self.cfg
                .webhook
                .iter()
                .map(|w| Channel::Webhook(w.name.clone())),
        );
        v.extend(
            self.cfg
                .syslog
                .iter()
                .map(|s| Channel::Syslog(s.name.clone())),
        );
        v
    }

    pub fn admins(&self) -> Vec<String> {
        self.cfg
            .email
            .as_ref()
            .map(|e| e.admins.clone())
            .unwrap_or_default()
    }

    /// Delivers one outbox item.
    pub fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let record: serde_json::Value = serde_json::from_str(&item.payload)
            .map_err(|e| DeliveryError::Refused(format!("queued alert is not readable: {e}")))?;
        let simulated = record.get("isSimulated") == Some(&serde_json::Value::Bool(true));
        let a: Alert = serde_json::from_value(record)
            .map_err(|e| DeliveryError::Refused(format!("queued alert is not readable: {e}")))?;
        let url = self.public_url.as_deref();
        let timeout = self.cfg.timeout.duration();
        let channel = item
            .channel
            .parse::<Channel>()
            .map_err(|e| DeliveryError::Refused(e.to_string()))?;
        match channel {
            Channel::Email => {
                let m = self.mailer.as_ref().ok_or_else(|| gone("email"))?;
                m.send(&a, simulated, &item.recipients, url)
            }
            Channel::Webhook(name) => {
                let w = self
                    .cfg
                    .webhook
                    .iter()
                    .find(|w| w.name == name)
                    .ok_or_else(|| gone("this webhook"))?;
                let delivery = format!("{}/{}", item.alert_id, item.version);
                webhook::send(&self.agent, w, &a, simulated, &item.payload, &delivery, url)
            }
            Channel::Syslog(name) => {
                let s = self
                    .cfg
                    .syslog
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| gone("this syslog receiver"))?;
                syslog::send(
                    s,
                    &syslog::message(s, &a, simulated, &item.payload, &self.hostname),
                    timeout,
                )
            }
        }
    }

    fn backoff_ms(&self, attempts: u32) -> i64 {
        let base = self.cfg.retry_base.ms().max(1);
        base.saturating_mul(1i64 << attempts.min(30))
            .min(self.cfg.retry_max.ms().max(base))
    }

    /// Delivers what is due on this notifier's channels; returns how many were delivered.
    pub fn drain(&self, store: &Store, counters: &Counters) -> Result<usize, StoreError> {
        let channels = self.channels();
        // Long enough for one batch of attempts, each bounded by the timeout.
        let lease = (self.cfg.timeout.ms().max(1) * 2).max(30_000);
        let mut delivered = 0;
        loop {
            let now = store::now_ms();
            let due = store.outbox_claim(
                &channels,
                &model::event::format_time(now),
                &model::event::format_time(now + lease),
                20,
            )?;
            if due.is_empty() {
                return Ok(delivered);
            }
            let mut progressed = false;
            for item in &due {
                match self.deliver(item) {
                    Ok(()) => {
                        store.outbox_delivered(item.seq, &store::now_utc())?;
                        counters.notifications_sent.fetch_add(1, Ordering::Relaxed);
                        delivered += 1;
                        progressed = true;
                    }
                    Err(e) => {
                        // Refused as it is, it would be refused again at once: it waits the
                        // longest, for whoever fixes the receiver or the configuration.
                        let wait = if e.is_permanent() {
                            self.backoff_ms(u32::MAX)
                        } else {
                            self.backoff_ms(item.attempts)
                        };
                        let next = model::event::format_time(store::now_ms() + wait);
                        if e.is_permanent() {
                            tracing::error!(channel = %item.channel, alert = %item.alert_id, attempt = item.attempts + 1, retry_in_ms = wait, error = %e, "notification refused; it cannot go through until the receiver or the configuration changes");
                        } else {
                            tracing::warn!(channel = %item.channel, alert = %item.alert_id, attempt = item.attempts + 1, retry_in_ms = wait, error = %e, "notification failed");
                        }
                        store.outbox_failed(item.seq, &e.to_string(), &next)?;
                        counters
                            .notification_failures
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if !progressed {
                return Ok(delivered);
            }
        }
    }
}

/// Runs the sender on its own thread: drains the outbox every `every`, for the life of the
/// process.
pub fn spawn_sender(
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    counters: Arc<Counters>,
    every: std::time::Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("pgvigil-notify".into())
        .spawn(move || loop {
            if let Err(e) = notifier.drain(&store, &counters) {
                tracing::error!(error = %e, "notification outbox");
            }
            std::thread::sleep(every);
        })
        .expect("spawning a thread")
}

fn gone(what: &str) -> DeliveryError {
    DeliveryError::Refused(format!("{what} is no longer configured"))
}

/// This machine's host name, or `localhost`. From the kernel (uname), which a sandbox
/// without /proc/sys still answers.
pub fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::alert::{AlertType, Severity};
    use store::test_support::{alert, temp_store};

    /// A receiver on 127.0.0.1 that answers every request with `status`.
    pub(super) fn answering(status: u16) -> String {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length announces.
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        url
    }

    /// A channel that cannot work is refused at start, naming the setting at fault.
    #[test]
    fn a_bad_channel_setting_is_named() {
        let setting = |toml: &str| -> String {
            let cfg: NotifyConfig = toml::from_str(toml).unwrap();
            Notifier::new(&cfg, None)
                .err()
                .map(|e| e.setting)
                .unwrap_or_default()
        };
        let hook = |name: &str, url: &str| format!("[[webhook]]\nname = {name:?}\nurl = {url:?}\n");
        assert_eq!(setting(&hook("a", "ftp://x")), "notify.webhook[0].url");
        assert_eq!(
            setting(&(hook("a", "http://127.0.0.1/") + &hook("a", "http://127.0.0.1/"))),
            "notify.webhook[1].name"
        );
        assert_eq!(
            setting("[[syslog]]\nname = \"s\"\naddress = \"nowhere\"\n"),
            "notify.syslog[0].address"
        );
        let mail = "[email]\nhost = \"127.0.0.1\"\nfrom = \"pgvigil@example.com\"\n";
        assert_eq!(
            setting(&format!("{mail}admins = [\"not an address\"]\n")),
            "notify.email.admins[0]"
        );
        assert_eq!(
            setting(&format!("{mail}username = \"u\"\n")),
            "notify.email.username"
        );
        assert_eq!(setting(&hook("a", "http://127.0.0.1/")), "");
    }

    #[test]
    fn a_refused_notification_waits_the_longest_and_a_failed_one_the_first() {
        let (_dir, store) = temp_store();
        // Nothing listens on `down`'s port; `refusing` answers 403.
        let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down_url = format!("http://{}/hook", down.local_addr().unwrap());
        drop(down);
        let hook = |name: &str, url: String| webhook::WebhookConfig {
            name: name.into(),
            url,
            format: Default::default(),
            secret: None,
        };
        let cfg = NotifyConfig {
            webhook: vec![hook("refusing", answering(403)), hook("down", down_url)],
            retry_base: "1s".parse().unwrap(),
            retry_max: "1h".parse().unwrap(),
            ..Default::default()
        };
        let notifier = Notifier::new(&cfg, None).unwrap();
        let channels = notifier.channels();
        let a = alert(
            "n1",
            "db1",
            AlertType::BruteForce,
            Severity::Medium,
            "2026-11-01T00:00:01.000Z",
        );
        store
            .ingest(store::Ingest {
                alerts: std::slice::from_ref(&a),
                channels: &channels,
                ..Default::default()
            })
            .unwrap();
        let counters = Counters::default();
        assert_eq!(notifier.drain(&store, &counters).unwrap(), 0);
        assert_eq!(counters.notification_failures.load(Ordering::Relaxed), 2);
        // A few seconds on, only the receiver that was down is tried again.
        let later = store::now_ms() + 5_000;
        let due = store
            .outbox_claim(
                &channels,
                &model::event::format_time(later),
                &model::event::format_time(later + 30_000),
                10,
            )
            .unwrap();
        let due: Vec<&str> = due.iter().map(|i| i.channel.as_str()).collect();
        assert_eq!(due, ["webhook:down"]);
    }
}
