//! `PostgreSQL_BruteForce`: many failed logins from one source against a role.
//!
//! Three variants, one alert per source (it escalates in place):
//! - *Suspected brute force attack*: the failures reach the threshold;
//! - *…using a valid user*: the role under attack exists (28P01 without `Role "x" does not
//!   exist`, or the role has logged in before);
//! - *Suspected successful brute force attack* (High): that source then logs in as that role.

use super::rate::FailureRate;
use super::window::{keep_sample, NameCounts, Recent, Reported};
use super::Detector;
use compact_str::CompactString;
use model::alert::{AlertType, Entities, Finding, Severity};
use model::duration::Span;
use model::event::{format_time, Event, EventKind, EventTime, LoginFailure};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// `[detect.brute_force]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BruteForceConfig {
    /// Failed login attempts from one source on one role, within `window`, that make an
    /// attack at any pace (libpq's immediate retry of a failure without TLS is part of the
    /// same attempt).
    pub failures: u32,
    /// Failed logins from one source on one role at a tool's pace that make an attack: in a
    /// row, each attempt begun within a second of the failure before (no one types passwords
    /// that fast, a tool does), or as many in all within `window` among runs of three or
    /// more (a tool's run cut by a lost packet or a stalled server is still a tool's).
    pub burst_failures: u32,
    /// A source that logs in as the role routinely (a known client) is a client with an old
    /// password more likely than a guesser: it needs this many times `failures`, and its
    /// login afterwards is not taken for the attack succeeding.
    pub known_client_factor: u32,
    /// The window for `failures`; also how long after the last failure a login from the same
    /// source counts as the attack succeeding, and how long the attack may pause.
    pub window: Span,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            failures: 10,
            burst_failures: 4,
            known_client_factor: 3,
            window: Span::mins(10),
        }
    }
}

const PLAIN: &str = AlertType::BruteForce.title();
const VALID_USER: &str = "Suspected brute force attack using a valid user";
const SUCCESS: &str = "Suspected successful brute force attack";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pair {
    /// Attempts (a failure and its immediate retry are one).
    fails: Recent,
    /// Every failure, for the evidence.
    #[serde(default)]
    raw: Recent,
    /// Failures that were part of a run of three or more at a tool's pace.
    #[serde(default)]
    paced: Recent,
    /// For the same failures, newest in bit 0: whether the role was missing. With `db` and
    /// `db_run` (the last database and how many failures in a row named it), seeds a new
    /// incident's evidence with the failures before the threshold.
    missing: u64,
    db: Option<CompactString>,
    db_run: u32,
    /// A login that succeeded in the middle of the failures, before they reached the
    /// threshold (parallel tools: the right password can come back before the 10th wrong one).
    success: Option<Success>,
    /// Failures went on within a minute of `success`: it happened amid a burst.
    success_amid: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Success {
    time: EventTime,
    principal: String,
    database: Option<String>,
    application: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Incident {
    start: EventTime,
    /// When the failures crossed the threshold: successes before it were only candidates.
    start_reported_at: EventTime,
    last: EventTime,
    failures: u64,
    reported: Reported,
    principals: NameCounts,
    valid_principals: Vec<String>,
    databases: NameCounts,
    no_such_role: u64,
    success: Option<Success>,
    variant: u8,
    samples: Vec<Event>,
    /// Opened by a run of failures at a tool's pace (not by their number).
    #[serde(default)]
    burst: bool,
    /// The longest run of failures each within a second of the one before.
    #[serde(default)]
    longest_run: u32,
    /// Failures within the window in runs of three or more at a tool's pace.
    #[serde(default)]
    paced: u32,
    /// Opened on a known client's failures: its login afterwards is not the attack succeeding.
    #[serde(default)]
    known_client: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    pairs: FxHashMap<(CompactString, CompactString), Pair>,
    incidents: FxHashMap<CompactString, Incident>,
    /// Roles seen logging in: they exist.
    known_roles: FxHashSet<CompactString>,
    last_sweep: super::window::Sweep,
}

pub struct BruteForce {
    cfg: BruteForceConfig,
    batch: bool,
    st: State,
}

const MAX_KNOWN_ROLES: usize = 100_000;
/// Failure times kept per source and role, for the evidence of an attack's start: more than
/// any threshold needs (a known client's 30 attempts, each with its retry).
const MAX_RAW: usize = 64;

impl BruteForce {
    pub fn new(cfg: BruteForceConfig) -> Self {
        BruteForce {
            cfg,
            batch: false,
            st: State::default(),
        }
    }

    fn variant(inc: &Incident) -> u8 {
        if inc.success.is_some() {
            2
        } else if !inc.valid_principals.is_empty() {
            1
        } else {
            0
        }
    }

    fn finding(&self, src: &str, inc: &Incident) -> Finding {
        let window = self.cfg.window;
        let top = inc.principals.top().unwrap_or("").to_string();
        let (name, severity, techniques): (&'static str, Severity, &'static [&'static str]) =
            match inc.variant {
                2 => (SUCCESS, Severity::High, &["T1110.001", "T1078"]),
                1 => (VALID_USER, Severity::Medium, &["T1110.001"]),
                _ => (PLAIN, Severity::Medium, &["T1110.001"]),
            };
        let roles = inc.principals.distinct();
        let role_text = if roles == 1 {
            format!("role {top:?}")
        } else {
            format!("{roles} roles (most often {top:?})")
        };
        let mut description = format!(
            "{} failed logins from {src} between {} and {}, against {role_text}.",
            inc.failures,
            format_time(inc.start),
            format_time(inc.last)
        );
        if !inc.valid_principals.is_empty() {
            description.push_str(&format!(
                " The role{} {} exist{} on this server, so only the password stood between the attacker and a login.",
                if inc.valid_principals.len() > 1 { "s" } else { "" },
                inc.valid_principals.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", "),
                if inc.valid_principals.len() > 1 { "" } else { "s" },
            ));
        }
        let mut remediation = Vec::new();
        let principal = match &inc.success {
            Some(s) => {
                description.push_str(&format!(
                    " Then {src} logged in successfully as {:?} at {}: the password was guessed.",
                    s.principal,
                    format_time(s.time)
                ));
                remediation.push(format!(
                    "Treat role {:?} as compromised: change its password now ({}) and rotate it everywhere it is used.",
                    s.principal,
                    super::advice::alter_role(&s.principal, "PASSWORD '…'")
                ));
                remediation.push(format!(
                    "Terminate its sessions from {src}: {}",
                    super::advice::terminate_from(src)
                ));
                remediation.push(format!(
                    "Review what {:?} did after {} (statement logs, pg_stat_statements, audit logs) and what it can reach (its grants and memberships).",
                    s.principal,
                    format_time(s.time)
                ));
                s.principal.clone()
            }
            None => top.clone(),
        };
        remediation.push(format!(
            "If {src} is not a known client, {}.",
            super::advice::block_advice(src)
        ));
        remediation.push(
            "Allow logins only from the networks that need them in pg_hba.conf, and do not expose PostgreSQL's port to the internet.".into(),
        );
        remediation.push(
            "Use long, unique passwords stored as scram-sha-256 (password_encryption = scram-sha-256); consider certificate authentication for service roles.".into(),
        );
        let then = if inc.success.is_some() {
            " and then succeeded"
        } else {
            ""
        };
        let anomaly_context = if inc.longest_run >= self.cfg.burst_failures {
            format!(
                "{src} failed to log in {} times{then}, {} of them in a row each within a second of the one before: a tool's pace; a person retyping a password takes seconds per try.",
                inc.failures, inc.longest_run
            )
        } else if inc.paced >= self.cfg.burst_failures {
            format!(
                "{src} failed to log in {} times{then}, {} of them in runs each begun within a second of the failure before, with pauses between: a tool's pace, held up now and then (a lost packet, a slow server); a person retyping a password takes seconds per try.",
                inc.failures, inc.paced
            )
        } else if inc.known_client {
            format!(
                "{src} logs in as this role routinely, yet failed {} times within {window}: a client with an old password, or someone at that address guessing.",
                inc.failures
            )
        } else {
            format!(
                "{src} failed to log in {} times{then}; someone mistyping a password fails a few times, not {} times within {window}.",
                inc.failures, self.cfg.failures
            )
        };
        let success = inc.success.as_ref();
        Finding {
            alert_type: AlertType::BruteForce,
            display_name: name,
            severity,
            techniques,
            entity: src.to_string(),
            start: inc.start,
            end: success.map_or(inc.last, |s| s.time.max(inc.last)),
            entities: Entities {
                source_ip: Some(src.to_string()),
                principal: Some(principal).filter(|p| !p.is_empty()),
                database: success
                    .and_then(|s| s.database.clone())
                    .or_else(|| inc.databases.top().map(str::to_string)),
                application: success.and_then(|s| s.application.clone()),
                location: None,
                cloud: None,
                fingerprint: model::alert::fingerprint_of(&inc.samples),
            },
            evidence: model::evidence!({
                "failedLogins": inc.failures,
                "distinctPrincipals": roles,
                "principals": inc.principals.json(),
                "existingPrincipals": inc.valid_principals,
                "nonExistentRoleFailures": inc.no_such_role,
                "databases": inc.databases.json(),
                "firstSuccessAfterFailures": success.map(|s| format_time(s.time)),
                "successfulPrincipal": success.map(|s| s.principal.clone()),
                "longestMachineRun": inc.longest_run,
                "machinePacedFailures": inc.paced,
                "knownClient": inc.known_client,
                "threshold": serde_json::json!({"failures": self.cfg.failures, "burstFailures": self.cfg.burst_failures, "window": window.to_string()}),
                "sampleEvents": model::alert::samples(&inc.samples),
            }),
            description,
            anomaly_context,
            remediation,
        }
    }

    fn report(&self, src: &CompactString, out: &mut Vec<Finding>) {
        if let Some(inc) = self.st.incidents.get(src) {
            out.push(self.finding(src, inc));
        }
    }

    fn on_failure(
        &mut self,
        ev: &Event,
        reason: LoginFailure,
        rate: FailureRate,
        out: &mut Vec<Finding>,
    ) {
        let src = ev.source_key();
        let principal = ev.principal.clone().unwrap_or_default();
        let window = self.cfg.window.ms();
        let n = if rate.known_client {
            self.cfg.failures.max(1) * self.cfg.known_client_factor.max(1)
        } else {
            self.cfg.failures.max(1)
        } as usize;
        let exists =
            reason == LoginFailure::BadPassword || self.st.known_roles.contains(&principal);
        let pair = self
            .st
            .pairs
            .entry((src.clone(), principal.clone()))
            .or_default();
        for _ in 0..rate.attempts {
            pair.fails.push(ev.time, n);
        }
        pair.raw.push(ev.time, MAX_RAW);
        // A run of three shows a tool (libpq's retry makes two), and its first two count too.
        let newly_paced = match rate.pair_run {
            0..=2 => 0,
            3 => 3,
            _ => 1,
        };
        for _ in 0..newly_paced {
            pair.paced.push(ev.time, MAX_RAW);
        }
        let paced = pair.paced.count_within(ev.time, window) as u32;
        // Evidence of the failures so far, before this one is added.
        let so_far = pair.raw.count_within(ev.time, window) as u64;
        let earlier = (so_far.saturating_sub(1)).min(63) as u32;
        let earlier_missing = (pair.missing & ((1u64 << earlier) - 1)).count_ones() as u64;
        let earlier_db = pair.db.clone().map(|d| (d, pair.db_run.min(earlier)));
        pair.missing = (pair.missing << 1) | u64::from(reason == LoginFailure::NoSuchRole);
        if pair.db == ev.database {
            pair.db_run = pair.db_run.saturating_add(1);
        } else {
            pair.db = ev.database.clone();
            pair.db_run = 1;
        }
        let counted = pair.fails.reached(n, window);
        let burst_at = self.cfg.burst_failures.max(2);
        let burst = !rate.known_client && (rate.pair_run >= burst_at || paced >= burst_at);
        let reached = counted || burst;
        let first = pair
            .raw
            .first_within(ev.time, window)
            .map_or(ev.time, |t| t.min(ev.time));
        // A login amid the failures that make the attack (parallel tools: the right password
        // can come back before the 10th wrong one). A later success during the attack
        // replaces it (see `on_success`): a user's own login just before an attack began
        // is not what the attack achieved.
        if pair
            .success
            .as_ref()
            .is_some_and(|s| ev.time >= s.time && ev.time - s.time <= 60_000)
        {
            pair.success_amid = true;
        }
        let early_success = pair
            .success
            .clone()
            .filter(|s| s.time >= first && pair.success_amid && !rate.known_client);

        let active = self
            .st
            .incidents
            .get(&src)
            .is_some_and(|i| ev.time - i.last <= window);
        if active {
            if let Some(inc) = self.st.incidents.get_mut(&src) {
                inc.failures += 1;
                inc.principals.add(&principal, 50);
            }
        } else {
            if !reached {
                return;
            }
            // An earlier incident from this source that went quiet: report its final state.
            if let Some(old) = self.st.incidents.remove(&src) {
                if old.failures != old.reported.count {
                    out.push(self.finding(&src, &old));
                }
            }
            let mut inc = Incident {
                start: first,
                start_reported_at: ev.time,
                failures: so_far,
                burst: burst && !counted,
                known_client: rate.known_client,
                ..Incident::default()
            };
            for _ in 0..so_far {
                inc.principals.add(&principal, 50);
            }
            inc.no_such_role = earlier_missing;
            if let Some((db, k)) = &earlier_db {
                for _ in 0..*k {
                    inc.databases.add(db, 10);
                }
            }
            inc.success = early_success;
            self.st.incidents.insert(src.clone(), inc);
        }
        let Some(inc) = self.st.incidents.get_mut(&src) else {
            return;
        };
        inc.last = inc.last.max(ev.time);
        inc.longest_run = inc.longest_run.max(rate.pair_run);
        inc.paced = inc.paced.max(paced);
        if let Some(db) = &ev.database {
            inc.databases.add(db, 10);
        }
        if reason == LoginFailure::NoSuchRole {
            inc.no_such_role += 1;
        }
        if exists
            && !principal.is_empty()
            && !inc.valid_principals.iter().any(|p| *p == principal)
            && inc.valid_principals.len() < 20
        {
            inc.valid_principals.push(principal.to_string());
        }
        keep_sample(&mut inc.samples, ev, 5);
        let variant = Self::variant(inc);
        let escalated = variant > inc.variant || inc.reported.count == 0;
        inc.variant = variant;
        if !self.batch && (escalated || inc.reported.due(inc.failures, ev.time)) {
            inc.reported.mark(inc.failures, ev.time);
            self.report(&src, out);
        }
    }

    fn on_success(&mut self, ev: &Event, out: &mut Vec<Finding>) {
        let Some(principal) = ev.principal.clone() else {
            return;
        };
        if self.st.known_roles.len() < MAX_KNOWN_ROLES && !self.st.known_roles.contains(&principal)
        {
            self.st.known_roles.insert(principal.clone());
        }
        let src = ev.source_key();
        let window = self.cfg.window.ms();
        let success = || Success {
            time: ev.time,
            principal: principal.to_string(),
            database: ev.database.as_ref().map(|d| d.to_string()),
            application: ev.application.as_ref().map(|d| d.to_string()),
            port: ev.client_port,
        };
        let Some(inc) = self.st.incidents.get_mut(&src) else {
            // Not (yet) an attack: remember the success in case the failures around it turn
            // out to be one.
            if let Some(pair) = self.st.pairs.get_mut(&(src, principal.clone())) {
                pair.success = Some(success());
                pair.success_amid = false;
            }
            return;
        };
        let attacked = inc
            .principals
            .items
            .iter()
            .any(|(p, _)| p.as_str() == principal);
        // A success found before the threshold was crossed gives way to one during the attack.
        let settled = inc
            .success
            .as_ref()
            .is_some_and(|s| s.time >= inc.start_reported_at);
        if settled || !attacked || inc.known_client || ev.time - inc.last > window {
            return;
        }
        inc.success = Some(success());
        if !inc.valid_principals.iter().any(|p| *p == principal) {
            inc.valid_principals.push(principal.to_string());
        }
        keep_sample(&mut inc.samples, ev, 6);
        inc.variant = Self::variant(inc);
        if !self.batch {
            inc.reported.mark(inc.failures, ev.time);
            self.report(&src, out);
        }
    }
}

impl Detector for BruteForce {
    fn id(&self) -> &'static str {
        "brute_force"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        match ev.kind {
            EventKind::LoginFailed { reason } => {
                self.on_failure(ev, reason, cx.failure.unwrap_or_default(), out)
            }
            EventKind::LoginSucceeded => self.on_success(ev, out),
            _ => {}
        }
    }

    detector_state!();

    fn advance(&mut self, now: EventTime, out: &mut Vec<Finding>) {
        let window = self.cfg.window.ms();
        if !self.st.last_sweep.due(now, self.cfg.window.ms()) {
            return;
        }
        self.st
            .pairs
            .retain(|_, p| p.fails.last().is_some_and(|l| now - l <= window));
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

    fn det() -> BruteForce {
        BruteForce::new(BruteForceConfig::default())
    }

    /// Failures at a person's pace: seconds apart.
    const HUMAN: i64 = 3_000;

    #[test]
    fn nine_failures_at_a_persons_pace_are_not_an_attack() {
        let mut d = det();
        let f = run(
            &mut d,
            (0..9).map(|i| failed(i * HUMAN, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        assert!(f.is_empty());
    }

    #[test]
    fn typos_retried_without_tls_count_once() {
        // Nine typos, each failing twice a few milliseconds apart (libpq's sslmode=prefer).
        let mut d = det();
        let f = run(
            &mut d,
            (0..9).flat_map(|i| {
                [
                    failed(i * HUMAN, "203.0.113.7", "alice", LoginFailure::BadPassword),
                    failed(
                        i * HUMAN + 6,
                        "203.0.113.7",
                        "alice",
                        LoginFailure::BadPassword,
                    ),
                ]
            }),
        );
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn four_failures_at_a_tools_pace_are_an_attack_three_are_not() {
        let mut d = det();
        let f = run(
            &mut d,
            (0..3).map(|i| failed(i * 5, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        assert!(f.is_empty());
        let mut d = det();
        let mut evs: Vec<Event> = (0..8)
            .map(|i| failed(i * 2, "203.0.113.7", "app", LoginFailure::BadPassword))
            .collect();
        evs.push(succeeded(17, "203.0.113.7", "app"));
        let f = run(&mut d, evs);
        assert_eq!(f[0].display_name, VALID_USER);
        let last = f.last().unwrap();
        assert_eq!(
            last.display_name, SUCCESS,
            "ncrack: 8 failures in 17 ms, then the password"
        );
        assert_eq!(last.severity, Severity::High);
        assert_eq!(last.evidence.value()["failedLogins"], 8);
        assert_eq!(last.evidence.value()["longestMachineRun"], 8);
    }

    #[test]
    fn a_tools_run_cut_by_pauses_is_still_a_tool_two_by_two_is_a_typist() {
        // ncrack's eight guesses, held up twice for over a second (a lost SYN is resent after
        // one; a stalled server): runs of 2, 3 and 3, then the password.
        let mut evs = Vec::new();
        for (k, start) in [(0..2, 0), (2..5, 1_500), (5..8, 3_000)] {
            for i in k {
                evs.push(failed(
                    start + i * 2,
                    "203.0.113.7",
                    "md5user",
                    LoginFailure::BadPassword,
                ));
            }
        }
        evs.push(succeeded(3_020, "203.0.113.7", "md5user"));
        let f = run(&mut det(), evs);
        let last = f.last().expect("an alert");
        assert_eq!(last.display_name, SUCCESS);
        assert_eq!(last.evidence.value()["machinePacedFailures"], 6);
        // A person with libpq's retry: each typo two failures at once, seconds apart.
        let typist = (0..4).flat_map(|k| {
            [0, 4].map(|d| {
                failed(
                    k * 3_000 + d,
                    "203.0.113.7",
                    "alice",
                    LoginFailure::BadPassword,
                )
            })
        });
        let mut evs: Vec<Event> = typist.collect();
        evs.push(succeeded(12_500, "203.0.113.7", "alice"));
        assert!(run(&mut det(), evs).is_empty());
    }

    #[test]
    fn failures_arriving_out_of_order_make_an_attack_that_starts_before_it_ends() {
        // Parallel sessions (and the proxy beside the log) hand failures over slightly out of
        // time order: the first one seen is not the earliest.
        let evs: Vec<Event> = [5, 0, 1, 2, 3]
            .into_iter()
            .map(|ms| failed(ms, "203.0.113.7", "app", LoginFailure::BadPassword))
            .collect();
        let f = run(&mut det(), evs);
        let a = f.last().expect("an alert");
        assert!(a.start <= a.end, "{} > {}", a.start, a.end);
        assert_eq!(a.start, 0);
    }

    #[test]
    fn behind_auth_delay_a_tool_is_judged_by_when_it_tries_again() {
        // `auth_delay.milliseconds = 2000` and one connection at a time: each failure comes
        // two seconds after its attempt began, and the next begins 3 ms later.
        let mut evs: Vec<Event> = (0..5)
            .map(|k| {
                let mut e = failed(
                    k * 2_003 + 2_000,
                    "203.0.113.7",
                    "app",
                    LoginFailure::BadPassword,
                );
                e.attempt_start = Some(k * 2_003);
                e
            })
            .collect();
        let mut ok = succeeded(5 * 2_003 + 30, "203.0.113.7", "app");
        ok.attempt_start = Some(5 * 2_003);
        evs.push(ok);
        let f = run(&mut det(), evs);
        assert_eq!(f.last().map(|a| a.display_name), Some(SUCCESS), "{f:#?}");
        // The same failures with no `connection received` to tell when each began.
        let evs = (0..5).map(|k| {
            failed(
                k * 2_003 + 2_000,
                "203.0.113.7",
                "app",
                LoginFailure::BadPassword,
            )
        });
        assert!(run(&mut det(), evs).is_empty());
    }

    #[test]
    fn a_known_clients_burst_is_an_old_password_not_a_guess() {
        // The application has logged in from its address for days; a deploy with the old
        // password fails four connections at once, three times, then the fix logs in.
        let day = 86_400_000;
        let mut evs: Vec<Event> = (0..5)
            .map(|d| succeeded(d * day, "10.0.0.5", "app"))
            .collect();
        let t = 5 * day;
        for (k, back) in [0, 1_000, 3_000].iter().enumerate() {
            for c in 0..4 {
                evs.push(failed(
                    t + k as i64 * 5_000 + back + c,
                    "10.0.0.5",
                    "app",
                    LoginFailure::BadPassword,
                ));
            }
        }
        evs.push(succeeded(t + 20_000, "10.0.0.5", "app"));
        let mut d = det();
        assert!(run(&mut d, evs).is_empty());
    }

    #[test]
    fn ten_failures_on_a_valid_user() {
        let mut d = det();
        let f = run(
            &mut d,
            (0..10).map(|i| failed(i * HUMAN, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].display_name, VALID_USER);
        assert_eq!(f[0].entities.source_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(f[0].evidence.value()["failedLogins"], 10);
    }

    #[test]
    fn evidence_counts_the_failures_before_the_threshold_too() {
        let mut d = det();
        let evs = (0..12).map(|i| {
            let mut e = failed(i * 100, "203.0.113.7", "root", LoginFailure::NoSuchRole);
            e.database = Some("postgres".into());
            e
        });
        let mut f = run(&mut d, evs);
        d.advance(10_000_000, &mut f);
        let ev = f.last().unwrap().evidence.value();
        assert_eq!(ev["failedLogins"], 12);
        assert_eq!(ev["nonExistentRoleFailures"], 12);
        assert_eq!(ev["databases"][0]["count"], 12);
    }

    #[test]
    fn unknown_role_is_the_plain_variant() {
        let mut d = det();
        let f = run(
            &mut d,
            (0..10).map(|i| failed(i * HUMAN, "203.0.113.7", "nosuch", LoginFailure::NoSuchRole)),
        );
        assert_eq!(f[0].display_name, PLAIN);
        assert_eq!(f[0].severity, Severity::Medium);
    }

    #[test]
    fn failures_spread_wider_than_the_window_are_not_an_attack() {
        let mut d = det();
        let f = run(
            &mut d,
            (0..30).map(|i| failed(i * 120_000, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        assert!(f.is_empty());
    }

    #[test]
    fn success_after_failures_is_high() {
        let mut d = det();
        let mut evs: Vec<Event> = (0..12)
            .map(|i| failed(i * 100, "203.0.113.7", "app", LoginFailure::BadPassword))
            .collect();
        evs.push(succeeded(1300, "203.0.113.7", "app"));
        let f = run(&mut d, evs);
        let last = f.last().unwrap();
        assert_eq!(last.display_name, SUCCESS);
        assert_eq!(last.severity, Severity::High);
        assert!(last.techniques.contains(&"T1078"));
        assert_eq!(
            last.evidence.value()["firstSuccessAfterFailures"],
            "1970-01-01T00:00:01.300Z"
        );
    }

    #[test]
    fn success_amid_parallel_failures_before_the_threshold_counts() {
        let mut d = det();
        let mut evs: Vec<Event> = (0..8)
            .map(|i| failed(i * 100, "203.0.113.7", "app", LoginFailure::BadPassword))
            .collect();
        evs.push(succeeded(850, "203.0.113.7", "app"));
        evs.extend(
            (9..12).map(|i| failed(i * 100, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        let f = run(&mut d, evs);
        assert_eq!(f.last().unwrap().display_name, SUCCESS);
    }

    #[test]
    fn a_user_who_mistyped_once_and_logged_in_is_not_the_attack_succeeding() {
        let mut d = det();
        let mut evs = vec![
            failed(0, "203.0.113.7", "app", LoginFailure::BadPassword),
            succeeded(1000, "203.0.113.7", "app"),
        ];
        // An attack from the same address (an office NAT) five minutes later.
        evs.extend((0..10).map(|i| {
            failed(
                300_000 + i * 100,
                "203.0.113.7",
                "app",
                LoginFailure::BadPassword,
            )
        }));
        let f = run(&mut d, evs);
        assert!(!f.is_empty());
        assert!(
            f.iter().all(|f| f.display_name != SUCCESS),
            "{:?}",
            f.last().unwrap().display_name
        );
    }

    #[test]
    fn a_login_before_the_failures_began_is_not_their_success() {
        let mut d = det();
        let mut evs = vec![succeeded(50, "203.0.113.7", "app")];
        evs.extend((0..10).map(|i| {
            failed(
                20_000 + i * 100,
                "203.0.113.7",
                "app",
                LoginFailure::BadPassword,
            )
        }));
        let f = run(&mut d, evs);
        assert!(f.iter().all(|f| f.display_name != SUCCESS));
    }

    #[test]
    fn a_success_during_the_attack_replaces_one_just_before_it() {
        let mut d = det();
        let mut legit = succeeded(0, "203.0.113.7", "app");
        legit.application = Some("billing-api".into());
        let mut evs = vec![
            failed(0, "203.0.113.7", "app", LoginFailure::BadPassword),
            legit,
        ];
        evs.extend((1..12).map(|i| {
            failed(
                100 + i * 100,
                "203.0.113.7",
                "app",
                LoginFailure::BadPassword,
            )
        }));
        evs.push(succeeded(1500, "203.0.113.7", "app"));
        let mut f = run(&mut d, evs);
        d.advance(10_000_000, &mut f);
        let ev = f.last().unwrap().evidence.value();
        assert_eq!(
            ev["firstSuccessAfterFailures"], "1970-01-01T00:00:01.500Z",
            "{ev:#}"
        );
        assert_eq!(f.last().unwrap().entities.application, None);
    }

    #[test]
    fn success_from_another_source_is_not_the_attack_succeeding() {
        let mut d = det();
        let mut evs: Vec<Event> = (0..12)
            .map(|i| failed(i * 100, "203.0.113.7", "app", LoginFailure::BadPassword))
            .collect();
        evs.push(succeeded(1300, "198.51.100.1", "app"));
        let f = run(&mut d, evs);
        assert!(f.iter().all(|f| f.display_name != SUCCESS));
    }

    #[test]
    fn a_long_attack_updates_logarithmically_and_reports_its_total_at_the_end() {
        let mut d = det();
        let mut f = run(
            &mut d,
            (0..1000).map(|i| failed(i * 100, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        assert!(f.len() < 10, "{} updates", f.len());
        d.advance(100_000 + 3_600_000, &mut f);
        assert_eq!(f.last().unwrap().evidence.value()["failedLogins"], 1000);
    }

    #[test]
    fn an_open_incident_survives_save_and_restore() {
        let mut d = det();
        run(
            &mut d,
            (0..12).map(|i| failed(i * 100, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        let mut e = det();
        e.restore(&d.save()).unwrap();
        let f = run(&mut e, [succeeded(2000, "203.0.113.7", "app")]);
        assert_eq!(f.last().unwrap().display_name, SUCCESS);
        assert_eq!(f.last().unwrap().evidence.value()["failedLogins"], 12);
        // The first five failures from the one that made it an attack (the fourth, at a
        // tool's pace), and the login.
        assert_eq!(
            f.last().unwrap().evidence.value()["sampleEvents"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
    }

    #[test]
    fn state_survives_save_and_restore() {
        let mut d = det();
        run(
            &mut d,
            (0..9).map(|i| failed(i * HUMAN, "203.0.113.7", "app", LoginFailure::BadPassword)),
        );
        let mut e = det();
        e.restore(&d.save()).unwrap();
        let f = run(
            &mut e,
            [failed(
                9 * HUMAN,
                "203.0.113.7",
                "app",
                LoginFailure::BadPassword,
            )],
        );
        assert_eq!(f.len(), 1);
    }
}
