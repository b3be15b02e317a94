//! How a failed login stands among the others from its source: at a person's pace or a
//! tool's, a retry of one attempt or a new one, from a client that knows the password or not.
//!
//! Every brute-force family judges rate and timing, not counts alone, and they judge them the
//! same way, so it is worked out once per event, here, and handed to the detectors:
//! - a *run* is failures each of whose attempts began within [`MACHINE_GAP_MS`] of the
//!   failure before. A person at a terminal types a password in seconds, a tool tries in
//!   milliseconds (ncrack: 8 in 17 ms); nobody types two passwords in a second. The attempt's
//!   start (`connection received`) rather than its failure is what counts where the log has
//!   it: with `auth_delay` the server answers each wrong password seconds late, and a tool
//!   still comes back the moment it has the answer;
//! - libpq with `sslmode=prefer` (the default) retries a failed login without TLS at once, on
//!   a new connection, so one mistyped password is two failures a few milliseconds apart. A
//!   run of two from one role is one *attempt*; a third shows it was a tool, and every
//!   failure of the run then counts;
//! - a source that has been logging in as a role for a day or more (not right after a run of
//!   its own failures) is a *known client* of it: its failures are more likely a client with
//!   an old password (a deploy during a password rotation, a pool retrying) than a guess.

use compact_str::CompactString;
use model::event::{Event, EventKind, EventTime};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Failures closer than this to the one before are machine-made.
pub const MACHINE_GAP_MS: EventTime = 1_000;

/// What is known of one failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRate {
    /// Failures in a row from this source on this role, each within [`MACHINE_GAP_MS`] of
    /// the one before, this one included.
    pub pair_run: u32,
    /// The same across every role the source tried.
    pub source_run: u32,
    /// Attempts this failure adds: 1, or 0 for the immediate retry of a lone failure (the
    /// second of a run of two), or 2 for the third of a run (the second was an attempt too).
    pub attempts: u32,
    /// The source has logged in as this role within the look-back.
    pub known_client: bool,
}

/// A failure on its own: one attempt, at no particular pace.
impl Default for FailureRate {
    fn default() -> Self {
        FailureRate {
            pair_run: 1,
            source_run: 1,
            attempts: 1,
            known_client: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Run {
    len: u32,
    last: EventTime,
}

impl Run {
    /// A failure of an attempt that started at `start` and failed at `end`. The pace is the
    /// time from the failure before to this attempt's start: a tool tries again at once, or
    /// already had this attempt open beside the other; a person retypes for seconds. Measured
    /// to the failure instead, a server that delays its answer (`auth_delay`, a stall) would
    /// make a tool look like a person.
    fn fail(&mut self, start: EventTime, end: EventTime) -> u32 {
        let start = start.min(end);
        if self.len > 0 && end + MACHINE_GAP_MS >= self.last && start - self.last <= MACHINE_GAP_MS
        {
            self.len = self.len.saturating_add(1);
        } else {
            self.len = 1;
        }
        self.last = self.last.max(end);
        self.len
    }

    /// A tool was at work within the last minute.
    fn machine_recently(&self, t: EventTime) -> bool {
        self.len >= 3 && t - self.last <= 60_000
    }
}

/// The rates of every source; saved with the detectors' state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LoginRates {
    pairs: FxHashMap<(CompactString, CompactString), Run>,
    sources: FxHashMap<CompactString, Run>,
    /// (source, role) → (first, last) login.
    known: FxHashMap<(CompactString, CompactString), (EventTime, EventTime)>,
    last_sweep: EventTime,
}

/// A client is one that has been logging in as the role for at least this long: one login a
/// minute before does not make an address a client.
const CLIENT_SINCE_MS: EventTime = 86_400_000;

/// Known clients remembered at most (memory bound); the least recent go first.
const MAX_KNOWN: usize = 200_000;

impl LoginRates {
    /// Takes one event; for a failed login, what is known of it.
    pub fn observe(&mut self, ev: &Event, look_back: EventTime) -> Option<FailureRate> {
        match ev.kind {
            EventKind::LoginFailed { .. } => {
                let src = ev.source_key();
                let role = ev.principal.clone().unwrap_or_default();
                let key = (src.clone(), role);
                let start = ev.attempt_start.unwrap_or(ev.time);
                let pair_run = self
                    .pairs
                    .entry(key.clone())
                    .or_default()
                    .fail(start, ev.time);
                let source_run = self.sources.entry(src).or_default().fail(start, ev.time);
                let attempts = match pair_run {
                    2 => 0,
                    3 => 2,
                    _ => 1,
                };
                let known_client = self.known.get(&key).is_some_and(|(first, last)| {
                    ev.time - *last <= look_back && ev.time - *first >= CLIENT_SINCE_MS
                });
                Some(FailureRate {
                    pair_run,
                    source_run,
                    attempts,
                    known_client,
                })
            }
            EventKind::LoginSucceeded => {
                let src = ev.source_key();
                let role = ev.principal.clone().unwrap_or_default();
                // A login right after a tool's run of failures is what the tool found.
                let after_tool = self
                    .sources
                    .get(&src)
                    .is_some_and(|r| r.machine_recently(ev.time));
                if !after_tool {
                    if self.known.len() >= MAX_KNOWN {
                        self.forget_oldest();
                    }
                    let t = self.known.entry((src, role)).or_insert((ev.time, ev.time));
                    t.0 = t.0.min(ev.time);
                    t.1 = t.1.max(ev.time);
                }
                None
            }
            _ => None,
        }
    }

    /// Event time moved on: runs long over are forgotten, and clients not seen in the
    /// look-back.
    pub fn advance(&mut self, now: EventTime, look_back: EventTime) {
        if now - self.last_sweep < 60_000 {
            return;
        }
        self.last_sweep = now;
        self.pairs.retain(|_, r| now - r.last <= 120_000);
        self.sources.retain(|_, r| now - r.last <= 120_000);
        self.known.retain(|_, t| now - t.1 <= look_back);
    }

    fn forget_oldest(&mut self) {
        let mut ages: Vec<EventTime> = self.known.values().map(|t| t.1).collect();
        let cut = ages.len() / 10;
        ages.select_nth_unstable(cut);
        let limit = ages[cut];
        self.known.retain(|_, t| t.1 > limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{failed, succeeded};
    use model::event::LoginFailure::BadPassword;

    const LOOK_BACK: EventTime = 60 * 86_400_000;

    fn rates(evs: &[Event]) -> Vec<FailureRate> {
        let mut r = LoginRates::default();
        evs.iter().filter_map(|e| r.observe(e, LOOK_BACK)).collect()
    }

    #[test]
    fn a_typo_retried_without_tls_is_one_attempt() {
        // psql at a terminal: each typo is two failures 5 ms apart, seconds between typos.
        let evs: Vec<Event> = (0..4)
            .flat_map(|k| {
                [
                    failed(k * 4_000, "203.0.113.7", "alice", BadPassword),
                    failed(k * 4_000 + 5, "203.0.113.7", "alice", BadPassword),
                ]
            })
            .collect();
        let r = rates(&evs);
        assert_eq!(r.iter().map(|x| x.attempts).sum::<u32>(), 4);
        assert!(r.iter().all(|x| x.pair_run <= 2));
    }

    #[test]
    fn a_tool_counts_every_failure_and_runs() {
        let evs: Vec<Event> = (0..8)
            .map(|k| failed(k * 2, "203.0.113.7", "app", BadPassword))
            .collect();
        let r = rates(&evs);
        assert_eq!(r.iter().map(|x| x.attempts).sum::<u32>(), 8);
        assert_eq!(r.last().unwrap().pair_run, 8);
    }

    /// `auth_delay.milliseconds = 2000`: every wrong password is answered two seconds late.
    fn delayed(start: EventTime, source: &str, role: &str) -> Event {
        let mut e = failed(start + 2_000, source, role, BadPassword);
        e.attempt_start = Some(start);
        e
    }

    #[test]
    fn a_tool_behind_auth_delay_is_still_at_a_tools_pace_a_person_is_not() {
        // The tool connects again 3 ms after each answer; the person types for 3 s.
        let tool: Vec<Event> = (0..5)
            .map(|k| delayed(k * 2_003, "203.0.113.7", "app"))
            .collect();
        assert_eq!(rates(&tool).last().unwrap().pair_run, 5);
        let person: Vec<Event> = (0..5)
            .map(|k| delayed(k * 5_000, "203.0.113.7", "alice"))
            .collect();
        assert!(rates(&person).iter().all(|x| x.pair_run == 1));
        // Parallel attempts, all open before the first answer: one run.
        let parallel: Vec<Event> = (0..4)
            .map(|k| delayed(k * 10, "203.0.113.7", "app"))
            .collect();
        assert_eq!(rates(&parallel).last().unwrap().pair_run, 4);
    }

    #[test]
    fn a_client_that_logged_in_is_known_unless_a_tool_ran_just_before() {
        let mut r = LoginRates::default();
        r.observe(&succeeded(0, "10.0.0.5", "app"), LOOK_BACK);
        let f = r
            .observe(&failed(1_000, "10.0.0.5", "app", BadPassword), LOOK_BACK)
            .unwrap();
        assert!(!f.known_client, "one login a second ago makes no client");
        r.observe(&succeeded(2 * 86_400_000, "10.0.0.5", "app"), LOOK_BACK);
        let f = r
            .observe(
                &failed(2 * 86_400_000 + 5, "10.0.0.5", "app", BadPassword),
                LOOK_BACK,
            )
            .unwrap();
        assert!(f.known_client);
        // A tool's run, then its login: the login does not make it a client.
        let day = 86_400_000;
        for k in 0..5 {
            r.observe(&failed(k, "203.0.113.7", "app", BadPassword), LOOK_BACK);
        }
        r.observe(&succeeded(10, "203.0.113.7", "app"), LOOK_BACK);
        r.observe(&succeeded(2 * day, "203.0.113.7", "app"), LOOK_BACK);
        let f = r
            .observe(
                &failed(2 * day + 5, "203.0.113.7", "app", BadPassword),
                LOOK_BACK,
            )
            .unwrap();
        assert!(!f.known_client);
    }
}
