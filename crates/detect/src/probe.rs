//! `PostgreSQL_Probe`: connections that never log in — port scans, service-version probes,
//! non-PostgreSQL clients (`invalid length of startup packet`, `unsupported frontend
//! protocol`, SSL garbage), and floods of bare TCP connects.
//!
//! Bare connects alone are weak evidence (load-balancer health checks make them all day), so
//! they count only in large numbers, from sources that never tried to log in, and sources in
//! `ignore` never count.

use super::window::{keep_sample, Recent};
use super::Detector;
use compact_str::CompactString;
use ipnet::IpNet;
use model::alert::{AlertType, Entities, Finding, Severity};
use model::duration::Span;
use model::event::{format_time, Event, EventKind, EventTime, ProtocolErrorKind};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// `[detect.probe]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Connections with a malformed or foreign startup packet from one source within `window`.
    pub invalid_startups: u32,
    /// Bare TCP connects (nothing sent) from one source within `window`.
    pub bare_connects: u32,
    /// The window.
    pub window: Span,
    /// Networks whose probes are expected (health checks, monitoring), e.g. `["10.0.0.0/24"]`.
    pub ignore: Vec<IpNet>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            invalid_startups: 3,
            bare_connects: 30,
            window: Span::mins(10),
            ignore: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Incident {
    start: EventTime,
    last: EventTime,
    invalid: u64,
    bare: u64,
    reported: super::window::Reported,
    messages: Vec<String>,
    samples: Vec<Event>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Source {
    invalid: Recent,
    bare: Recent,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    sources: FxHashMap<CompactString, Source>,
    incidents: FxHashMap<CompactString, Incident>,
    /// Sources that have tried to log in: their bare connects are a tool's connectivity
    /// checks or a pool's, not a scan.
    talkers: FxHashSet<CompactString>,
    last_sweep: super::window::Sweep,
}

pub struct Probe {
    cfg: ProbeConfig,
    batch: bool,
    st: State,
}

const MAX_TALKERS: usize = 200_000;

impl Probe {
    pub fn new(cfg: ProbeConfig) -> Self {
        Probe {
            cfg,
            batch: false,
            st: State::default(),
        }
    }

    fn finding(&self, src: &str, inc: &Incident) -> Finding {
        let mut what = Vec::new();
        if inc.invalid > 0 {
            what.push(format!(
                "{} sent something that is not a PostgreSQL startup packet",
                inc.invalid
            ));
        }
        if inc.bare > 0 {
            what.push(format!("{} connected and sent nothing", inc.bare));
        }
        Finding {
            alert_type: AlertType::Probe,
            display_name: AlertType::Probe.title(),
            severity: Severity::Low,
            techniques: AlertType::Probe.techniques(),
            entity: src.to_string(),
            start: inc.start,
            end: inc.last,
            entities: Entities {
                source_ip: Some(src.to_string()),
                fingerprint: model::alert::fingerprint_of(&inc.samples),
                ..Entities::default()
            },
            evidence: model::evidence!({
                "invalidStartupPackets": inc.invalid,
                "bareConnects": inc.bare,
                "messages": inc.messages,
                "sampleEvents": model::alert::samples(&inc.samples),
            }),
            description: format!(
                "{} connections from {src} between {} and {} never attempted to log in: {}.",
                inc.invalid + inc.bare,
                format_time(inc.start),
                format_time(inc.last),
                what.join(", ")
            ),
            anomaly_context: format!(
                "PostgreSQL clients start every connection with a startup packet; {src} is probing the port (a scanner such as nmap, or a non-PostgreSQL client)."
            ),
            remediation: vec![
                format!("Check what runs on {src}; a scan is often the first step of an attack."),
                "Keep PostgreSQL's port reachable only from the networks that need it (firewall, listen_addresses).".into(),
                "If this is a health check or monitoring, add its network to detect.probe.ignore.".into(),
            ],
        }
    }
}

impl Detector for Probe {
    fn id(&self) -> &'static str {
        "probe"
    }

    fn observe(&mut self, ev: &Event, _cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        let what = match ev.kind {
            EventKind::ProtocolError { what } => what,
            EventKind::LoginFailed { .. } | EventKind::LoginSucceeded => {
                if self.st.talkers.len() < MAX_TALKERS && !self.st.talkers.contains(&ev.source) {
                    self.st.talkers.insert(ev.source_key());
                }
                return;
            }
            _ => return,
        };
        if let Some(ip) = ev.client_ip {
            if self.cfg.ignore.iter().any(|n| n.contains(&ip)) {
                return;
            }
        }
        let src = ev.source_key();
        if what == ProtocolErrorKind::NoStartup && self.st.talkers.contains(&src) {
            return;
        }
        let window = self.cfg.window.ms();
        let s = self.st.sources.entry(src.clone()).or_default();
        let reached = match what {
            ProtocolErrorKind::InvalidStartup => {
                let n = self.cfg.invalid_startups as usize;
                s.invalid.push(ev.time, n);
                s.invalid.reached(n, window)
            }
            ProtocolErrorKind::NoStartup => {
                let n = self.cfg.bare_connects as usize;
                s.bare.push(ev.time, n);
                s.bare.reached(n, window)
            }
        };
        let first = match what {
            ProtocolErrorKind::InvalidStartup => s.invalid.first(),
            ProtocolErrorKind::NoStartup => s.bare.first(),
        }
        .unwrap_or(ev.time);
        let active = self
            .st
            .incidents
            .get(&src)
            .is_some_and(|i| ev.time - i.last <= window);
        if !active {
            if !reached {
                return;
            }
            let n = match what {
                ProtocolErrorKind::InvalidStartup => self.cfg.invalid_startups,
                ProtocolErrorKind::NoStartup => self.cfg.bare_connects,
            } as u64;
            let inc = Incident {
                start: first,
                invalid: if what == ProtocolErrorKind::InvalidStartup {
                    n - 1
                } else {
                    0
                },
                bare: if what == ProtocolErrorKind::NoStartup {
                    n - 1
                } else {
                    0
                },
                ..Incident::default()
            };
            self.st.incidents.insert(src.clone(), inc);
        }
        let Some(inc) = self.st.incidents.get_mut(&src) else {
            return;
        };
        inc.last = inc.last.max(ev.time);
        match what {
            ProtocolErrorKind::InvalidStartup => inc.invalid += 1,
            ProtocolErrorKind::NoStartup => inc.bare += 1,
        }
        if let Some(m) = &ev.message {
            if !inc.messages.contains(m) && inc.messages.len() < 10 {
                inc.messages.push(m.clone());
            }
        }
        keep_sample(&mut inc.samples, ev, 5);
        let total = inc.invalid + inc.bare;
        if !self.batch && inc.reported.due(total, ev.time) {
            inc.reported.mark(total, ev.time);
            let inc = inc.clone();
            out.push(self.finding(&src, &inc));
        }
    }

    detector_state!();

    fn advance(&mut self, now: EventTime, out: &mut Vec<Finding>) {
        if !self.st.last_sweep.due(now, self.cfg.window.ms()) {
            return;
        }
        let window = self.cfg.window.ms();
        self.st.sources.retain(|_, s| {
            let last = s.invalid.last().into_iter().chain(s.bare.last()).max();
            last.is_some_and(|l| now - l <= window)
        });
        for (key, inc) in super::window::close_quiet(&mut self.st.incidents, now, window, |i| {
            (i.last, i.invalid + i.bare != i.reported.count)
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

    #[test]
    fn three_garbage_startups_are_a_probe() {
        let mut d = Probe::new(ProbeConfig::default());
        let f = run(
            &mut d,
            (0..3).map(|i| protocol(i * 100, "192.0.2.1", ProtocolErrorKind::InvalidStartup)),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Low);
        assert_eq!(f[0].evidence.value()["invalidStartupPackets"], 3);
    }

    #[test]
    fn bare_connects_from_a_client_that_logs_in_are_ignored() {
        let mut d = Probe::new(ProbeConfig::default());
        let mut evs = vec![failed(0, "192.0.2.1", "app", LoginFailure::BadPassword)];
        evs.extend((1..100).map(|i| protocol(i * 100, "192.0.2.1", ProtocolErrorKind::NoStartup)));
        assert!(run(&mut d, evs).is_empty());
        // …but a flood from a silent source is reported.
        let f = run(
            &mut d,
            (1..100).map(|i| protocol(20_000 + i * 100, "192.0.2.2", ProtocolErrorKind::NoStartup)),
        );
        assert!(!f.is_empty());
    }

    #[test]
    fn ignored_networks() {
        let cfg = ProbeConfig {
            ignore: vec!["192.0.2.0/24".parse().unwrap()],
            ..ProbeConfig::default()
        };
        let mut d = Probe::new(cfg);
        let f = run(
            &mut d,
            (0..10).map(|i| protocol(i * 100, "192.0.2.1", ProtocolErrorKind::InvalidStartup)),
        );
        assert!(f.is_empty());
    }
}
