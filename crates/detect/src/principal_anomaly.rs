//! `PostgreSQL_PrincipalAnomaly`: a successful login by a role not seen logging in during the
//! look-back period, after the learning period, unless a principal the server knows created
//! the role or enabled it for login in that time (seen with `log_statement = 'ddl'`).

use super::access::{listing, Anomaly};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{Event, EventKind};
use serde::{Deserialize, Serialize};

/// `[detect.principal_anomaly]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalAnomalyConfig {
    pub enabled: bool,
}

impl Default for PrincipalAnomalyConfig {
    fn default() -> Self {
        PrincipalAnomalyConfig { enabled: true }
    }
}

pub struct PrincipalAnomaly {
    cfg: PrincipalAnomalyConfig,
}

impl PrincipalAnomaly {
    pub fn new(cfg: PrincipalAnomalyConfig) -> Self {
        PrincipalAnomaly { cfg }
    }
}

impl Detector for PrincipalAnomaly {
    fn id(&self) -> &'static str {
        "principal_anomaly"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        // Judged without enrichment too: a unix-socket or private-network login counts.
        if !self.cfg.enabled
            || ev.kind != EventKind::LoginSucceeded
            || cx.profile.learning(ev.time, cx.profile_cfg)
        {
            return;
        }
        let Some(principal) = &ev.principal else {
            return;
        };
        let p = cx.profile;
        // Known, or created / enabled for login by a known principal (a new admin, a new
        // application's role): a change someone made, not a dormant or unknown role.
        if p.principals.get(principal).is_some() || p.announced.get(principal).is_some() {
            return;
        }
        let seen = listing(
            p.principals
                .recent()
                .into_iter()
                .map(|(c, _)| c.to_string()),
            5,
        );
        let a = Anomaly {
            alert_type: AlertType::PrincipalAnomaly,
            display_name: AlertType::PrincipalAnomaly.title(),
            severity: Severity::Low,
            techniques: AlertType::PrincipalAnomaly.techniques(),
            entity: principal.to_string(),
            what: format!("role {principal:?} had not logged in before"),
            why: format!(
                "Role {principal:?} has not logged in to this server in {} days; the roles that do are {seen}.",
                crate::profile::days(cx.profile_cfg.look_back.ms().min(p.age(ev.time)))
            ),
            remediation: vec![format!(
                "Check who created or enabled {principal:?} and why (pg_roles, the change log); disable it with {} if it should not be used.",
                super::advice::alter_role(principal, "NOLOGIN")
            )],
        };
        out.push(super::access::finding(ev, cx, a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ev, run, succeeded};
    use model::event::EventTime;

    const DAY: EventTime = 86_400_000;

    fn ddl(t: EventTime, by: &str, change: &str) -> Event {
        let mut e = ev(t, EventKind::Statement, "10.0.0.2", Some(by));
        e.message = Some(change.into());
        e
    }

    fn alerts_for(events: Vec<Event>) -> Vec<String> {
        run(
            &mut PrincipalAnomaly::new(PrincipalAnomalyConfig::default()),
            events,
        )
        .into_iter()
        .map(|f| f.entity)
        .collect()
    }

    #[test]
    fn a_role_created_by_a_known_admin_is_a_change_not_an_anomaly() {
        let mut evs: Vec<Event> = (0..10)
            .map(|d| succeeded(d * DAY, "10.0.0.2", "carol"))
            .collect();
        evs.push(ddl(10 * DAY, "carol", "CREATE ROLE dave"));
        evs.push(succeeded(10 * DAY + 60_000, "10.0.0.3", "dave"));
        // A dormant role nobody re-enabled, and one enabled by a role the server does not know.
        evs.push(succeeded(11 * DAY, "10.0.0.3", "backup_old"));
        evs.push(ddl(11 * DAY + 1, "intruder", "ALTER ROLE ghost"));
        evs.push(succeeded(11 * DAY + 60_000, "10.0.0.3", "ghost"));
        assert_eq!(alerts_for(evs), ["backup_old", "ghost"]);
    }
}
