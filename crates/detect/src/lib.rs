//! Detection: one detector per alert family behind [`Detector`], an explicit [`registry`], and
//! [`dedup::AlertBook`], the one place where findings become (de-duplicated) alerts.
//!
//! Detectors are deterministic and read only event time: `analyze` over old logs and `run`
//! over the same lines live raise the same alerts.

/// `set_batch`, `save` and `restore` of a detector whose state is `self.st` and batch flag
/// `self.batch`: the same in every detector.
macro_rules! detector_state {
    () => {
        fn set_batch(&mut self, batch: bool) {
            self.batch = batch;
        }

        fn save(&self) -> Vec<u8> {
            $crate::save_state(&self.st)
        }

        fn restore(&mut self, bytes: &[u8]) -> Result<(), $crate::DetectError> {
            self.st = $crate::load_state(self.id(), bytes)?;
            Ok(())
        }
    };
}

pub mod access;
pub mod advice;
pub mod brute_force;
pub mod cloud_anomaly;
pub mod data_exfiltration;
pub mod dedup;
pub mod distributed_brute_force;
pub mod domain_anomaly;
pub mod fold;
pub mod geo_anomaly;
pub mod harmful_application;
pub mod impossible_travel;
pub mod password_spray;
pub mod principal_anomaly;
pub mod privilege_escalation;
pub mod probe;
/// What is normal for each server, learnt from its successful logins.
pub mod profile;
pub mod rate;
pub mod registry;
pub mod sql_injection;
pub mod statement;
pub mod suspicious_ip;
pub mod unsafe_action;
pub mod window;

use model::alert::{Alert, Finding};
use model::event::{Event, EventTime};
use serde::{de::DeserializeOwned, Serialize};

/// Errors of the detection stage.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("saved state of detector {id} could not be read: {reason}")]
    State { id: &'static str, reason: String },
}

/// What a detector may read besides the event.
pub struct Context<'a> {
    pub profile: &'a crate::profile::Profile,
    pub profile_cfg: &'a crate::profile::ProfileConfig,
    /// For a failed login: its pace, whether it retries another, whether its source is a
    /// known client of the role ([`rate`]).
    pub failure: Option<rate::FailureRate>,
}

/// One alert family.
pub trait Detector: Send {
    /// Stable snake_case id; also its config table, e.g. `[detect.brute_force]`.
    fn id(&self) -> &'static str;
    /// Every event, in event-time order, with the server's profile as it was before it.
    fn observe(&mut self, ev: &Event, cx: &Context<'_>, out: &mut Vec<Finding>);
    /// Batch mode (`analyze`): only the final state of each incident matters, so report
    /// incidents when they end instead of as they grow. A detector that judges each event on
    /// its own (against the profile) reports the same either way.
    fn set_batch(&mut self, _batch: bool) {}
    /// Event time moved on to `now`: expire windows, close incidents that went quiet.
    fn advance(&mut self, _now: EventTime, _out: &mut Vec<Finding>) {}
    /// State for a checkpoint: none for a detector that keeps nothing between events.
    fn save(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _bytes: &[u8]) -> Result<(), DetectError> {
        Ok(())
    }
}

/// Serialises a detector's state (MessagePack: compact, and maps may have any key).
pub fn save_state<T: Serialize>(state: &T) -> Vec<u8> {
    // Serialising plain data structures into a Vec cannot fail.
    rmp_serde::to_vec_named(state).unwrap_or_default()
}

pub fn load_state<T: DeserializeOwned>(id: &'static str, bytes: &[u8]) -> Result<T, DetectError> {
    rmp_serde::from_slice(bytes).map_err(|e| DetectError::State {
        id,
        reason: e.to_string(),
    })
}

/// All detectors of one server, and its alert book.
pub struct Engine {
    detectors: Vec<Box<dyn Detector>>,
    pub profile: crate::profile::Profile,
    profile_cfg: crate::profile::ProfileConfig,
    rates: rate::LoginRates,
    /// Access anomalies held back by the per-server rate limit.
    pub rate: fold::RateLimit,
    max_anomalies_per_hour: u32,
    pub book: dedup::AlertBook,
    findings: Vec<Finding>,
    last_advance: EventTime,
    /// Report every update of an alert (`run`); `analyze` wants only the final states.
    pub updates: bool,
    /// Alerts closed (quiet for the quiet period), in their final state.
    pub closed: Vec<Alert>,
}

/// How often (event time) detectors are told time moved on.
const ADVANCE_EVERY_MS: EventTime = 1000;

impl Engine {
    pub fn new(server: &str, config: &registry::DetectConfig) -> Engine {
        Engine {
            detectors: registry::build(config),
            profile: crate::profile::Profile::default(),
            profile_cfg: config.profile.clone(),
            rates: rate::LoginRates::default(),
            rate: fold::RateLimit::default(),
            max_anomalies_per_hour: config.max_anomalies_per_hour,
            book: dedup::AlertBook::new(server, config.quiet_period),
            findings: Vec::new(),
            last_advance: EventTime::MIN,
            updates: true,
            closed: Vec::new(),
        }
    }

    /// `analyze`: no intermediate updates, only final alert states (in `closed`).
    pub fn set_batch(&mut self) {
        self.updates = false;
        for d in &mut self.detectors {
            d.set_batch(true);
        }
    }

    /// Feeds one event; alerts created or updated by it go to `out`.
    pub fn observe(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        if ev.time.saturating_sub(self.last_advance) >= ADVANCE_EVERY_MS {
            self.advance(ev.time, out);
        }
        let failure = self.rates.observe(ev, self.profile_cfg.look_back.ms());
        let cx = Context {
            profile: &self.profile,
            profile_cfg: &self.profile_cfg,
            failure,
        };
        let before = self.findings.len();
        for d in &mut self.detectors {
            d.observe(ev, &cx, &mut self.findings);
        }
        fold::access_anomalies(&mut self.findings, before);
        self.rate
            .apply(&mut self.findings, before, self.max_anomalies_per_hour, ev);
        self.profile.learn(ev, &self.profile_cfg);
        self.drain(out);
    }

    /// Event time reached so far (to the second), if any event was seen.
    pub fn now(&self) -> Option<EventTime> {
        (self.last_advance != EventTime::MIN).then_some(self.last_advance)
    }

    pub fn advance(&mut self, now: EventTime, out: &mut Vec<Alert>) {
        self.last_advance = now;
        self.rates.advance(now, self.profile_cfg.look_back.ms());
        for d in &mut self.detectors {
            d.advance(now, &mut self.findings);
        }
        self.drain(out);
        self.book.expire(now, &mut self.closed);
    }

    /// End of input: close every open incident so its final counts are reported.
    pub fn finish(&mut self, last: EventTime, out: &mut Vec<Alert>) {
        self.advance(last.saturating_add(366 * 86_400_000), out);
    }

    fn drain(&mut self, out: &mut Vec<Alert>) {
        for f in self.findings.drain(..) {
            let a = self.book.fold(f);
            if self.updates {
                out.push(a.clone());
            }
        }
    }

    /// The state in named parts, each serialised only when taken: a checkpoint writes and
    /// drops them one at a time, rather than holding the whole state twice.
    pub fn save_parts(&self) -> impl ExactSizeIterator<Item = (String, Vec<u8>)> + '_ {
        let n = self.detectors.len();
        (0..n + 5).map(move |i| match i.checked_sub(n) {
            None => (self.detectors[i].id().to_string(), self.detectors[i].save()),
            Some(0) => ("alert_book".into(), save_state(&self.book.state())),
            Some(1) => ("profile".into(), save_state(&self.profile)),
            Some(2) => ("rate".into(), save_state(&self.rate)),
            Some(3) => ("login_rates".into(), save_state(&self.rates)),
            Some(_) => ("engine".into(), save_state(&self.last_advance)),
        })
    }

    pub fn restore(&mut self, parts: &[(String, Vec<u8>)]) -> Result<(), DetectError> {
        for (id, bytes) in parts {
            if id == "alert_book" {
                self.book
                    .restore(load_state("alert_book", bytes)?)
                    .map_err(|e| DetectError::State {
                        id: "alert_book",
                        reason: e.to_string(),
                    })?;
            } else if id == "profile" {
                self.profile = load_state("profile", bytes)?;
            } else if id == "rate" {
                self.rate = load_state("rate", bytes)?;
            } else if id == "login_rates" {
                self.rates = load_state("login_rates", bytes)?;
            } else if id == "engine" {
                self.last_advance = load_state("engine", bytes)?;
            } else if let Some(d) = self.detectors.iter_mut().find(|d| d.id() == id) {
                d.restore(bytes)?;
            }
        }
        Ok(())
    }
}

/// Event builders for detector tests.
#[cfg(test)]
pub mod testing {
    use model::alert::Finding;
    use model::event::{Event, EventKind, EventTime, LoginFailure, ProtocolErrorKind};

    pub fn ev(t: EventTime, kind: EventKind, src: &str, role: Option<&str>) -> Event {
        let mut e = Event::new(t, kind);
        e.client_ip = src.parse().ok();
        e.principal = role.map(Into::into);
        e
    }

    pub fn failed(t: EventTime, src: &str, role: &str, reason: LoginFailure) -> Event {
        ev(t, EventKind::LoginFailed { reason }, src, Some(role))
    }

    pub fn succeeded(t: EventTime, src: &str, role: &str) -> Event {
        ev(t, EventKind::LoginSucceeded, src, Some(role))
    }

    /// A bare finding, for the tests of what handles findings (the alert book, folding).
    pub fn finding(
        ty: model::alert::AlertType,
        entity: &str,
        start: EventTime,
        end: EventTime,
    ) -> Finding {
        Finding {
            alert_type: ty,
            display_name: "test finding",
            severity: model::alert::Severity::Medium,
            techniques: &[],
            entity: entity.into(),
            start,
            end,
            entities: model::alert::Entities::default(),
            evidence: model::evidence!({}),
            description: String::new(),
            anomaly_context: String::new(),
            remediation: vec![],
        }
    }

    pub fn protocol(t: EventTime, src: &str, what: ProtocolErrorKind) -> Event {
        ev(t, EventKind::ProtocolError { what }, src, None)
    }

    /// Feeds events in order (with time advancing and the profile learning as the engine
    /// would) and returns findings.
    pub fn run(
        d: &mut dyn super::Detector,
        events: impl IntoIterator<Item = Event>,
    ) -> Vec<Finding> {
        let cfg = crate::profile::ProfileConfig::default();
        let mut profile = crate::profile::Profile::default();
        run_with(d, events, &mut profile, &cfg)
    }

    /// [`run`], then time moves a day past the last event, as at the end of `analyze`'s
    /// input: what waits for more (an outcome, a quiet period) is decided.
    pub fn run_to_end(
        d: &mut dyn super::Detector,
        events: impl IntoIterator<Item = Event>,
    ) -> Vec<Finding> {
        let events: Vec<Event> = events.into_iter().collect();
        let end = events.iter().map(|e| e.time).max().unwrap_or(0) + 86_400_000;
        let mut out = run(d, events);
        d.advance(end, &mut out);
        out
    }

    pub fn run_with(
        d: &mut dyn super::Detector,
        events: impl IntoIterator<Item = Event>,
        profile: &mut crate::profile::Profile,
        cfg: &crate::profile::ProfileConfig,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut rates = super::rate::LoginRates::default();
        for e in events {
            d.advance(e.time, &mut out);
            let failure = rates.observe(&e, cfg.look_back.ms());
            let cx = super::Context {
                profile,
                profile_cfg: cfg,
                failure,
            };
            d.observe(&e, &cx, &mut out);
            profile.learn(&e, cfg);
        }
        out
    }
}
