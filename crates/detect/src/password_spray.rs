//! `PostgreSQL_PasswordSpray`: one source tries many roles, a few passwords each — including
//! the enumeration of roles that do not exist. Below the brute-force threshold per role, so
//! only the breadth gives it away.

use super::window::{keep_sample, NameCounts, Reported, Tally, Window};
use super::Detector;
use compact_str::CompactString;
use model::alert::{AlertType, Entities, Finding, Severity};
use model::duration::Span;
use model::event::{format_time, Event, EventKind, EventTime, LoginFailure};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// `[detect.password_spray]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSprayConfig {
    /// Distinct roles one source must fail on within `window`.
    pub principals: u32,
    /// At most this many attempts per role on average: more is a brute force, not a spray
    /// (libpq's immediate retry of a failure without TLS is part of the same attempt).
    pub max_attempts_per_principal: u32,
    /// Distinct roles that make a spray when the source fails at a tool's pace (failures in
    /// a row, each within a second of the one before).
    pub principals_at_machine_pace: u32,
    /// The window.
    pub window: Span,
}

impl Default for PasswordSprayConfig {
    fn default() -> Self {
        PasswordSprayConfig {
            principals: 5,
            max_attempts_per_principal: 3,
            principals_at_machine_pace: 3,
            window: Span::mins(30),
        }
    }
}

/// Failures in a row at a tool's pace that lower the roles a spray needs.
const MACHINE_RUN: u32 = 4;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Incident {
    start: EventTime,
    last: EventTime,
    failures: u64,
    reported: Reported,
    principals: NameCounts,
    no_such_role: u64,
    success: Option<(EventTime, String)>,
    samples: Vec<Event>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Per source: (role, role does not exist) of recent failures.
    recent: FxHashMap<CompactString, Tally<(CompactString, bool)>>,
    /// Per source: attempts (a failure and its immediate retry are one).
    #[serde(default)]
    attempts: FxHashMap<CompactString, Window>,
    incidents: FxHashMap<CompactString, Incident>,
    last_sweep: super::window::Sweep,
}

pub struct PasswordSpray {
    cfg: PasswordSprayConfig,
    batch: bool,
    st: State,
}

impl PasswordSpray {
    pub fn new(cfg: PasswordSprayConfig) -> Self {
        PasswordSpray {
            cfg,
            batch: false,
            st: State::default(),
        }
    }

    fn finding(&self, src: &str, inc: &Incident) -> Finding {
        let roles = inc.principals.distinct();
        let mut description = format!(
            "{src} failed {} logins against {roles} different roles between {} and {}",
            inc.failures,
            format_time(inc.start),
            format_time(inc.last)
        );
        if inc.no_such_role > 0 {
            description.push_str(&format!(
                "; {} of the attempts named roles that do not exist (role enumeration)",
                inc.no_such_role
            ));
        }
        description.push('.');
        let mut severity = Severity::Medium;
        let mut principal = None;
        let mut remediation = Vec::new();
        if let Some((t, p)) = &inc.success {
            severity = Severity::High;
            principal = Some(p.clone());
            description.push_str(&format!(
                " Then it logged in as {p:?} at {}: one of the sprayed passwords worked.",
                format_time(*t)
            ));
            remediation.push(format!(
                "Treat role {p:?} as compromised: change its password now and review what it did after {}.",
                format_time(*t)
            ));
        }
        remediation.push(format!(
            "If {src} is not a known client, {}.",
            super::advice::block_advice(src)
        ));
        remediation.push(
            "Look for roles with common or default passwords (the sprayed ones are likely seasonal or default passwords) and change them.".into(),
        );
        remediation.push(
            "List in pg_hba.conf which roles may log in from which networks instead of `all`, so unknown roles are rejected before authentication.".into(),
        );
        Finding {
            alert_type: AlertType::PasswordSpray,
            display_name: AlertType::PasswordSpray.title(),
            severity,
            techniques: AlertType::PasswordSpray.techniques(),
            entity: src.to_string(),
            start: inc.start,
            end: inc.success.as_ref().map_or(inc.last, |(t, _)| (*t).max(inc.last)),
            entities: Entities {
                source_ip: Some(src.to_string()),
                principal,
                fingerprint: model::alert::fingerprint_of(&inc.samples),
                ..Entities::default()
            },
            evidence: model::evidence!({
                "failedLogins": inc.failures,
                "distinctPrincipals": roles,
                "principals": inc.principals.json(),
                "nonExistentRoleFailures": inc.no_such_role,
                "successfulPrincipal": inc.success.as_ref().map(|(_, p)| p.clone()),
                "firstSuccessAfterFailures": inc.success.as_ref().map(|(t, _)| format_time(*t)),
                "threshold": serde_json::json!({
                    "principals": self.cfg.principals,
                    "maxAttemptsPerPrincipal": self.cfg.max_attempts_per_principal,
                    "window": self.cfg.window.to_string(),
                }),
                "sampleEvents": model::alert::samples(&inc.samples),
            }),
            description,
            anomaly_context: format!(
                "One source trying {roles} roles with about {:.1} attempts each is guessing common passwords across accounts; clients log in as one or two roles.",
                inc.failures as f64 / roles.max(1) as f64
            ),
            remediation,
        }
    }
}

impl Detector for PasswordSpray {
    fn id(&self) -> &'static str {
        "password_spray"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        let window = self.cfg.window.ms();
        match ev.kind {
            EventKind::LoginFailed { reason } => {
                let src = ev.source_key();
                let role = ev.principal.clone().unwrap_or_default();
                let rate = cx.failure.unwrap_or_default();
                let attempts = self.st.attempts.entry(src.clone()).or_default();
                attempts.push(ev.time, rate.attempts, window, 10_000);
                let attempts = attempts.total();
                let tally = self.st.recent.entry(src.clone()).or_default();
                let missing = reason == LoginFailure::NoSuchRole;
                tally.push(ev.time, (role.clone(), missing), window, 10_000);
                let distinct = tally.distinct();
                let total = tally.total();
                let first = tally.first().unwrap_or(ev.time);
                let needed = if rate.source_run >= MACHINE_RUN {
                    self.cfg.principals_at_machine_pace.min(self.cfg.principals)
                } else {
                    self.cfg.principals
                };
                let spray = distinct >= needed.max(2) as usize
                    && attempts <= distinct * self.cfg.max_attempts_per_principal as usize;
                let active = self
                    .st
                    .incidents
                    .get(&src)
                    .is_some_and(|i| ev.time - i.last <= window);
                if !active {
                    if !spray {
                        return;
                    }
                    let mut inc = Incident {
                        start: first,
                        failures: total as u64 - 1,
                        ..Incident::default()
                    };
                    for ((k, nosuch), c) in tally.keys() {
                        let earlier = c.saturating_sub(u32::from(*k == role));
                        for _ in 0..earlier {
                            inc.principals.add(k, 200);
                        }
                        if *nosuch {
                            inc.no_such_role += earlier as u64;
                        }
                    }
                    self.st.incidents.insert(src.clone(), inc);
                }
                let Some(inc) = self.st.incidents.get_mut(&src) else {
                    return;
                };
                inc.failures += 1;
                inc.last = inc.last.max(ev.time);
                inc.principals.add(&role, 200);
                if missing {
                    inc.no_such_role += 1;
                }
                keep_sample(&mut inc.samples, ev, 5);
                if !self.batch && inc.reported.due(inc.failures, ev.time) {
                    inc.reported.mark(inc.failures, ev.time);
                    let inc = inc.clone();
                    out.push(self.finding(&src, &inc));
                }
            }
            EventKind::LoginSucceeded => {
                let src = ev.source_key();
                let Some(role) = &ev.principal else { return };
                if let Some(inc) = self.st.incidents.get_mut(&src) {
                    let sprayed = inc.principals.contains(role);
                    if sprayed && inc.success.is_none() && ev.time - inc.last <= window {
                        inc.success = Some((ev.time, role.to_string()));
                        keep_sample(&mut inc.samples, ev, 6);
                        if !self.batch {
                            let inc = inc.clone();
                            out.push(self.finding(&src, &inc));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    detector_state!();

    fn advance(&mut self, now: EventTime, out: &mut Vec<Finding>) {
        if !self.st.last_sweep.due(now, self.cfg.window.ms()) {
            return;
        }
        let window = self.cfg.window.ms();
        self.st.recent.retain(|_, t| {
            t.expire(now - window);
            !t.is_empty()
        });
        self.st.attempts.retain(|_, t| {
            t.expire(now - window);
            !t.is_empty()
        });
        for (key, inc) in super::window::close_quiet(&mut self.st.incidents, now, window, |i| {
            (i.last, i.failures != i.reported.count)
        }) {
            out.push(self.finding(&key, &inc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn spray(roles: &[&str], tries: usize) -> Vec<Event> {
        spray_every(roles, tries, 3_000)
    }

    fn spray_every(roles: &[&str], tries: usize, gap: i64) -> Vec<Event> {
        let mut v = Vec::new();
        let mut t = 0;
        for _ in 0..tries {
            for r in roles {
                t += gap;
                v.push(failed(t, "198.51.100.9", r, LoginFailure::NoSuchRole));
            }
        }
        v
    }

    #[test]
    fn many_roles_few_tries_is_a_spray() {
        let mut d = PasswordSpray::new(PasswordSprayConfig::default());
        let f = run(
            &mut d,
            spray(
                &["postgres", "admin", "root", "test", "oracle", "report"],
                2,
            ),
        );
        assert!(!f.is_empty());
        assert_eq!(f[0].alert_type, AlertType::PasswordSpray);
        let mut all = f;
        d.advance(10_000_000, &mut all);
        let last = all.last().unwrap();
        assert_eq!(last.evidence.value()["failedLogins"], 12);
        assert_eq!(last.evidence.value()["distinctPrincipals"], 6);
        assert_eq!(last.evidence.value()["nonExistentRoleFailures"], 12);
    }

    #[test]
    fn four_roles_is_not_enough_and_many_tries_each_is_brute_force_not_spray() {
        let mut d = PasswordSpray::new(PasswordSprayConfig::default());
        assert!(run(&mut d, spray(&["a", "b", "c", "d"], 3)).is_empty());
        // A dictionary per role, one role after the other (hydra -L -P): brute force.
        let mut d = PasswordSpray::new(PasswordSprayConfig::default());
        let evs: Vec<Event> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                (0..10).map(move |k| {
                    failed(
                        (i * 10 + k) as i64 * 500,
                        "198.51.100.9",
                        r,
                        LoginFailure::BadPassword,
                    )
                })
            })
            .collect();
        assert!(run(&mut d, evs).is_empty());
    }

    #[test]
    fn three_roles_at_a_tools_pace_are_a_spray_at_a_persons_pace_not() {
        let mut d = PasswordSpray::new(PasswordSprayConfig::default());
        assert!(run(&mut d, spray(&["a", "b", "c"], 2)).is_empty());
        let mut d = PasswordSpray::new(PasswordSprayConfig::default());
        let f = run(&mut d, spray_every(&["a", "b", "c"], 2, 20));
        assert_eq!(f[0].alert_type, AlertType::PasswordSpray);
    }

    #[test]
    fn a_sprayed_role_logging_in_is_high() {
        let mut d = PasswordSpray::new(PasswordSprayConfig::default());
        let mut evs = spray(&["postgres", "admin", "root", "test", "app"], 2);
        evs.push(succeeded(60_000, "198.51.100.9", "app"));
        let f = run(&mut d, evs);
        assert_eq!(f.last().unwrap().severity, Severity::High);
    }
}
