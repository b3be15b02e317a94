//! `PostgreSQL_DistributedBruteForce`: many sources fail logins on one role, each below the
//! single-source threshold. Sources that have logged in as that role before do not count:
//! a fleet of application servers failing after a password rotation is an outage, not an
//! attack.

use super::window::{keep_sample, NameCounts, Reported, Tally};
use super::Detector;
use compact_str::CompactString;
use model::alert::{AlertType, Entities, Finding, Severity};
use model::duration::Span;
use model::event::{format_time, Event, EventKind, EventTime};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// `[detect.distributed_brute_force]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributedBruteForceConfig {
    /// Distinct unfamiliar sources failing on one role within `window`.
    pub sources: u32,
    /// Failed logins on the role within `window`, all sources together.
    pub failures: u32,
    /// No single source may account for more than this share of the failures (else it is a
    /// plain brute force, reported as such).
    pub max_share: f64,
    /// The window.
    pub window: Span,
}

impl Default for DistributedBruteForceConfig {
    fn default() -> Self {
        DistributedBruteForceConfig {
            sources: 5,
            failures: 20,
            max_share: 0.5,
            window: Span::mins(30),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Incident {
    start: EventTime,
    last: EventTime,
    failures: u64,
    reported: Reported,
    sources: NameCounts,
    success: Option<(EventTime, String)>,
    samples: Vec<Event>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    recent: FxHashMap<CompactString, Tally<CompactString>>,
    incidents: FxHashMap<CompactString, Incident>,
    /// (role, source) pairs seen logging in.
    familiar: FxHashMap<CompactString, FxHashSet<CompactString>>,
    familiar_count: usize,
    last_sweep: super::window::Sweep,
}

pub struct DistributedBruteForce {
    cfg: DistributedBruteForceConfig,
    batch: bool,
    st: State,
}

const MAX_FAMILIAR: usize = 200_000;

impl DistributedBruteForce {
    pub fn new(cfg: DistributedBruteForceConfig) -> Self {
        DistributedBruteForce {
            cfg,
            batch: false,
            st: State::default(),
        }
    }

    fn finding(&self, role: &str, inc: &Incident) -> Finding {
        let n_sources = inc.sources.distinct();
        let mut description = format!(
            "{} failed logins as {role:?} from {n_sources} different sources between {} and {}, none of which had logged in as {role:?} before.",
            inc.failures,
            format_time(inc.start),
            format_time(inc.last)
        );
        let mut severity = Severity::Medium;
        let mut remediation = Vec::new();
        if let Some((t, src)) = &inc.success {
            severity = Severity::High;
            description.push_str(&format!(
                " Then {src} logged in as {role:?} at {}.",
                format_time(*t)
            ));
            remediation.push(format!(
                "Treat role {role:?} as compromised: change its password now and terminate its sessions from {src}."
            ));
        }
        remediation.push(format!(
            "Restrict where {role:?} may log in from in pg_hba.conf to the networks of its legitimate clients."
        ));
        remediation.push(format!(
            "Give {role:?} a long, unique password (scram-sha-256), or certificate authentication; rename or disable it if it is a well-known default role exposed to the network."
        ));
        remediation.push(
            "Block the listed sources at the firewall; an attack spread over many addresses often comes from a botnet or a rented cloud range.".into(),
        );
        Finding {
            alert_type: AlertType::DistributedBruteForce,
            display_name: AlertType::DistributedBruteForce.title(),
            severity,
            techniques: AlertType::DistributedBruteForce.techniques(),
            entity: role.to_string(),
            start: inc.start,
            end: inc.success.as_ref().map_or(inc.last, |(t, _)| (*t).max(inc.last)),
            entities: Entities {
                source_ip: inc.success.as_ref().map(|(_, s)| s.clone()),
                principal: Some(role.to_string()),
                fingerprint: model::alert::fingerprint_of(&inc.samples),
                ..Entities::default()
            },
            evidence: model::evidence!({
                "failedLogins": inc.failures,
                "distinctSources": n_sources,
                "sources": inc.sources.json(),
                "successfulSource": inc.success.as_ref().map(|(_, s)| s.clone()),
                "firstSuccessAfterFailures": inc.success.as_ref().map(|(t, _)| format_time(*t)),
                "threshold": serde_json::json!({
                    "sources": self.cfg.sources,
                    "failures": self.cfg.failures,
                    "maxShare": self.cfg.max_share,
                    "window": self.cfg.window.to_string(),
                }),
                "sampleEvents": model::alert::samples(&inc.samples),
            }),
            description,
            anomaly_context: format!(
                "{n_sources} unfamiliar addresses failed on the same role within {}; legitimate clients of a role come from a few known addresses.",
                self.cfg.window
            ),
            remediation,
        }
    }
}

impl Detector for DistributedBruteForce {
    fn id(&self) -> &'static str {
        "distributed_brute_force"
    }

    fn observe(&mut self, ev: &Event, _cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        let window = self.cfg.window.ms();
        let Some(role) = ev.principal.clone() else {
            return;
        };
        match ev.kind {
            EventKind::LoginFailed { .. } => {
                let src = ev.source_key();
                if self
                    .st
                    .familiar
                    .get(&role)
                    .is_some_and(|s| s.contains(&src))
                {
                    return;
                }
                let tally = self.st.recent.entry(role.clone()).or_default();
                tally.push(ev.time, src.clone(), window, 50_000);
                let total = tally.total();
                // Finding the loudest source walks the whole tally: only when it matters.
                let hit = || {
                    tally.distinct() >= self.cfg.sources as usize
                        && total >= self.cfg.failures as usize
                        && tally
                            .top()
                            .is_some_and(|(_, c)| c as f64 <= total as f64 * self.cfg.max_share)
                };
                let active = self
                    .st
                    .incidents
                    .get(&role)
                    .is_some_and(|i| ev.time - i.last <= window);
                if !active {
                    if !hit() {
                        return;
                    }
                    let mut inc = Incident {
                        start: tally.first().unwrap_or(ev.time),
                        failures: total as u64 - 1,
                        ..Incident::default()
                    };
                    for (k, c) in tally.keys() {
                        for _ in 0..c.saturating_sub(u32::from(*k == src)) {
                            inc.sources.add(k, 500);
                        }
                    }
                    self.st.incidents.insert(role.clone(), inc);
                }
                let Some(inc) = self.st.incidents.get_mut(&role) else {
                    return;
                };
                inc.failures += 1;
                inc.last = inc.last.max(ev.time);
                inc.sources.add(&src, 500);
                keep_sample(&mut inc.samples, ev, 5);
                if !self.batch && inc.reported.due(inc.failures, ev.time) {
                    inc.reported.mark(inc.failures, ev.time);
                    let inc = inc.clone();
                    out.push(self.finding(&role, &inc));
                }
            }
            EventKind::LoginSucceeded => {
                let src = ev.source_key();
                let attacked = self.st.incidents.get_mut(&role).filter(|i| {
                    i.success.is_none() && ev.time - i.last <= window && i.sources.contains(&src)
                });
                if let Some(inc) = attacked {
                    inc.success = Some((ev.time, src.to_string()));
                    keep_sample(&mut inc.samples, ev, 6);
                    if !self.batch {
                        let inc = inc.clone();
                        out.push(self.finding(&role, &inc));
                    }
                } else if self.st.familiar_count < MAX_FAMILIAR
                    && !self
                        .st
                        .familiar
                        .get(&role)
                        .is_some_and(|s| s.contains(&src))
                    && self.st.familiar.entry(role).or_default().insert(src)
                {
                    self.st.familiar_count += 1;
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
    use model::event::LoginFailure;

    fn attack(sources: usize, per_source: usize) -> Vec<Event> {
        let mut v = Vec::new();
        let mut t = 0;
        for k in 0..per_source {
            for s in 0..sources {
                t += 1000 + k as i64;
                v.push(failed(
                    t,
                    &format!("203.0.113.{}", s + 1),
                    "postgres",
                    LoginFailure::BadPassword,
                ));
            }
        }
        v
    }

    #[test]
    fn eight_sources_three_tries_each() {
        let mut d = DistributedBruteForce::new(DistributedBruteForceConfig::default());
        let f = run(&mut d, attack(8, 3));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].entities.principal.as_deref(), Some("postgres"));
        assert_eq!(f[0].evidence.value()["distinctSources"], 8);
        assert_eq!(f[0].evidence.value()["failedLogins"], 20);
    }

    #[test]
    fn one_loud_source_is_not_distributed() {
        let mut d = DistributedBruteForce::new(DistributedBruteForceConfig::default());
        let mut evs: Vec<Event> = (0..30)
            .map(|i| {
                failed(
                    i * 100,
                    "203.0.113.99",
                    "postgres",
                    LoginFailure::BadPassword,
                )
            })
            .collect();
        evs.extend(attack(4, 1));
        assert!(run(&mut d, evs).is_empty());
    }

    #[test]
    fn familiar_sources_failing_after_a_password_change_are_not_an_attack() {
        let mut d = DistributedBruteForce::new(DistributedBruteForceConfig::default());
        let mut evs: Vec<Event> = (0..8)
            .map(|s| succeeded(s, &format!("203.0.113.{}", s + 1), "postgres"))
            .collect();
        evs.extend(attack(8, 5));
        assert!(run(&mut d, evs).is_empty());
    }
}
