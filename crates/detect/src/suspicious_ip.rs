//! `PostgreSQL_SuspiciousIpAnomaly`: a login attempt from a Tor exit or a blocklisted address.
//! Needs no baseline; High when the login succeeds.

use super::access::{entities, Anomaly};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{Event, EventKind};
use serde::{Deserialize, Serialize};

/// `[detect.suspicious_ip]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuspiciousIpConfig {
    pub enabled: bool,
    /// Also report failed logins (successful ones always are).
    pub failed_logins: bool,
}

impl Default for SuspiciousIpConfig {
    fn default() -> Self {
        SuspiciousIpConfig {
            enabled: true,
            failed_logins: true,
        }
    }
}

pub struct SuspiciousIp {
    cfg: SuspiciousIpConfig,
}

impl SuspiciousIp {
    pub fn new(cfg: SuspiciousIpConfig) -> Self {
        SuspiciousIp { cfg }
    }
}

impl Detector for SuspiciousIp {
    fn id(&self) -> &'static str {
        "suspicious_ip"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        let success = match ev.kind {
            EventKind::LoginSucceeded => true,
            EventKind::LoginFailed { .. } if self.cfg.failed_logins => false,
            _ => return,
        };
        let Some(en) = ev.enrichment.as_deref() else {
            return;
        };
        if !self.cfg.enabled || (!en.tor_exit && en.blocklists.is_empty()) {
            return;
        }
        let mut lists = en.blocklists.clone();
        if en.tor_exit {
            lists.insert(0, "Tor exit list".into());
        }
        let src = ev.source_key();
        let a = Anomaly {
            alert_type: AlertType::SuspiciousIpAnomaly,
            display_name: AlertType::SuspiciousIpAnomaly.title(),
            severity: if success {
                Severity::High
            } else {
                Severity::Medium
            },
            techniques: AlertType::SuspiciousIpAnomaly.techniques(),
            entity: src.to_string(),
            what: format!(
                "{} address on {}",
                if success {
                    "a successful login from an"
                } else {
                    "a login attempt from an"
                },
                lists.join(", ")
            ),
            why: format!(
                "{src} is on {}; {} hide who connects, and legitimate clients rarely use them.",
                lists.join(", "),
                if en.tor_exit {
                    "Tor exits"
                } else {
                    "listed addresses"
                }
            ),
            remediation: vec![format!(
                "If no one should reach the database through {src} (or through Tor at all), {}.",
                super::advice::block_advice(&src)
            )],
        };
        let mut f = super::access::finding(ev, cx, a);
        f.entities = entities(ev, Some(en));
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use enrich::Enrichment;
    use model::event::LoginFailure;
    use std::sync::Arc;

    fn tor(mut e: Event) -> Event {
        e.enrichment = Some(Arc::new(Enrichment {
            tor_exit: true,
            ..Enrichment::default()
        }));
        e
    }

    #[test]
    fn tor_logins_during_learning_too_and_high_on_success() {
        let mut d = SuspiciousIp::new(SuspiciousIpConfig::default());
        let f = run(
            &mut d,
            [
                tor(failed(0, "185.220.101.1", "app", LoginFailure::BadPassword)),
                tor(succeeded(10, "185.220.101.1", "app")),
            ],
        );
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[1].severity, Severity::High);
        assert!(f[1].anomaly_context.contains("Tor exit list"));
        let mut d = SuspiciousIp::new(SuspiciousIpConfig::default());
        assert!(run(&mut d, [succeeded(0, "198.51.100.1", "app")]).is_empty());
    }
}
