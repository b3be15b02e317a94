//! Notifications: email, webhooks (JSON, Slack, Teams) and syslog (RFC 5424, CEF).
//!
//! Alerts reach the outbox in the store in the same transaction that stores them (see
//! [`crate::store`]); the sender here delivers due items and retries failures with
//! exponential backoff, across restarts, until they go through.

pub mod email;
pub mod render;
pub mod syslog;
pub mod webhook;

use crate::alert::Alert;
use crate::duration::Span;
use crate::health::Counters;
use crate::store::{OutboxItem, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use crate::secret::Secret;

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
    pub fn new(cfg: &NotifyConfig, public_url: Option<String>) -> Result<Notifier, String> {
        let mut names = std::collections::HashSet::new();
        for (i, w) in cfg.webhook.iter().enumerate() {
            if !names.insert(format!("webhook:{}", w.name)) {
                return Err(format!(
                    "notify.webhook[{i}].name {:?} is used twice",
                    w.name
                ));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return Err(format!(
                    "notify.webhook[{i}].url {:?}: not an http(s) URL",
                    w.url
                ));
            }
        }
        for (i, s) in cfg.syslog.iter().enumerate() {
            if !names.insert(format!("syslog:{}", s.name)) {
                return Err(format!(
                    "notify.syslog[{i}].name {:?} is used twice",
                    s.name
                ));
            }
            if !s.address.contains(':') {
                return Err(format!(
                    "notify.syslog[{i}].address {:?}: expected host:port",
                    s.address
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
    pub fn channels(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.mailer.is_some() {
            v.push("email".to_string());
        }
        v.extend(
            self.cfg
                .webhook
                .iter()
                .map(|w| format!("webhook:{}", w.name)),
        );
        v.extend(self.cfg.syslog.iter().map(|s| format!("syslog:{}", s.name)));
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
    pub fn deliver(&self, item: &OutboxItem) -> Result<(), String> {
        let record: serde_json::Value = serde_json::from_str(&item.payload)
            .map_err(|e| format!("queued alert is not readable: {e}"))?;
        let simulated = record.get("isSimulated") == Some(&serde_json::Value::Bool(true));
        let a: Alert = serde_json::from_value(record)
            .map_err(|e| format!("queued alert is not readable: {e}"))?;
        let url = self.public_url.as_deref();
        let timeout = self.cfg.timeout.duration();
        if item.channel == "email" {
            let m = self
                .mailer
                .as_ref()
                .ok_or("email is no longer configured")?;
            return m.send(&a, simulated, &item.recipients, url);
        }
        if let Some(name) = item.channel.strip_prefix("webhook:") {
            let w = self
                .cfg
                .webhook
                .iter()
                .find(|w| w.name == name)
                .ok_or("this webhook is no longer configured")?;
            let delivery = format!("{}/{}", item.alert_id, item.version);
            return webhook::send(&self.agent, w, &a, simulated, &item.payload, &delivery, url);
        }
        if let Some(name) = item.channel.strip_prefix("syslog:") {
            let s = self
                .cfg
                .syslog
                .iter()
                .find(|s| s.name == name)
                .ok_or("this syslog receiver is no longer configured")?;
            return syslog::send(
                s,
                &syslog::message(s, &a, simulated, &item.payload, &self.hostname),
                timeout,
            );
        }
        Err(format!("unknown channel {:?}", item.channel))
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
            let now = crate::store::now_ms();
            let due = store.outbox_claim(
                &channels,
                &crate::event::format_time(now),
                &crate::event::format_time(now + lease),
                20,
            )?;
            if due.is_empty() {
                return Ok(delivered);
            }
            let mut progressed = false;
            for item in &due {
                match self.deliver(item) {
                    Ok(()) => {
                        store.outbox_delivered(item.seq, &crate::store::now_utc())?;
                        counters.notifications_sent.fetch_add(1, Ordering::Relaxed);
                        delivered += 1;
                        progressed = true;
                    }
                    Err(e) => {
                        let wait = self.backoff_ms(item.attempts);
                        let next = crate::event::format_time(crate::store::now_ms() + wait);
                        tracing::warn!(channel = %item.channel, alert = %item.alert_id, attempt = item.attempts + 1, retry_in_ms = wait, error = %e, "notification failed");
                        store.outbox_failed(item.seq, &e, &next)?;
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
