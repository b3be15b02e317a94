//! `PostgreSQL_DomainAnomaly`: a successful login from a registrable domain (the client's
//! reverse DNS, reduced with the Public Suffix List) that the server has not seen in the
//! look-back period. Needs `[enrich.reverse_dns]`; judged only once domains have been learned
//! for a whole learning period, so turning reverse DNS on does not flag every client.

use super::access::{listing, Anomaly};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{Event, EventKind};
use serde::{Deserialize, Serialize};

/// `[detect.domain_anomaly]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainAnomalyConfig {
    pub enabled: bool,
}

impl Default for DomainAnomalyConfig {
    fn default() -> Self {
        DomainAnomalyConfig { enabled: true }
    }
}

pub struct DomainAnomaly {
    cfg: DomainAnomalyConfig,
}

impl DomainAnomaly {
    pub fn new(cfg: DomainAnomalyConfig) -> Self {
        DomainAnomaly { cfg }
    }
}

impl Detector for DomainAnomaly {
    fn id(&self) -> &'static str {
        "domain_anomaly"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled || ev.kind != EventKind::LoginSucceeded {
            return;
        }
        let Some(domain) = &ev.domain else { return };
        let p = cx.profile;
        let learned_for = p.domains_since.map_or(0, |s| ev.time - s);
        if learned_for < cx.profile_cfg.learning_period.ms() || p.domains.get(domain).is_some() {
            return;
        }
        let seen = listing(
            p.domains.recent().into_iter().map(|(d, _)| d.to_string()),
            5,
        );
        let principal = ev.principal.as_deref().unwrap_or("");
        let a = Anomaly {
            alert_type: AlertType::DomainAnomaly,
            display_name: AlertType::DomainAnomaly.title(),
            severity: Severity::Medium,
            techniques: AlertType::DomainAnomaly.techniques(),
            entity: format!("{principal}|{domain}"),
            what: format!("the first login from a host in {domain}"),
            why: format!(
                "First login from {domain}; the clients of this server resolve to {seen} in {} days.",
                crate::profile::days(learned_for.min(cx.profile_cfg.look_back.ms()))
            ),
            remediation: vec![
                format!("Find out who runs the client in {domain} and whether {principal:?} should be used from there."),
                "If it is not expected, change the role's password and restrict pg_hba.conf to the networks clients really use.".into(),
            ],
        };
        out.push(super::access::finding(ev, cx, a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run, succeeded};
    use model::event::EventTime;

    const DAY: EventTime = 86_400_000;

    fn from(t: EventTime, ip: &str, domain: Option<&str>) -> Event {
        let mut e = succeeded(t, ip, "app");
        e.domain = domain.map(Into::into);
        e
    }

    fn flagged(events: Vec<Event>) -> Vec<String> {
        run(
            &mut DomainAnomaly::new(DomainAnomalyConfig::default()),
            events,
        )
        .into_iter()
        .map(|f| f.entity)
        .collect()
    }

    #[test]
    fn a_new_domain_after_learning_is_flagged_a_known_one_is_not() {
        let mut evs: Vec<Event> = (0..8)
            .map(|d| from(d * DAY, "10.0.0.2", Some("corp.example")))
            .collect();
        evs.push(from(8 * DAY, "10.0.0.3", Some("corp.example")));
        evs.push(from(8 * DAY + 1, "203.0.113.9", Some("evil.example")));
        evs.push(from(8 * DAY + 2, "203.0.113.10", None));
        assert_eq!(flagged(evs), ["app|evil.example"]);
    }

    #[test]
    fn turning_reverse_dns_on_late_learns_first() {
        // Logins for weeks without domains, then the first domains: not anomalies yet.
        let mut evs: Vec<Event> = (0..20).map(|d| from(d * DAY, "10.0.0.2", None)).collect();
        evs.push(from(20 * DAY, "10.0.0.2", Some("corp.example")));
        evs.push(from(21 * DAY, "203.0.113.9", Some("other.example")));
        assert!(flagged(evs).is_empty());
    }
}
