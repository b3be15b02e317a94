//! `PostgreSQL_DataExfiltration`: a session reads far more rows than its principal ever did
//! while the server was learned (row counts from pgaudit with `pgaudit.log_rows = on`), or a
//! dump is taken from where dumps are not taken — a `pg_dump`-like session (its application
//! name, `LOCK TABLE … IN ACCESS SHARE MODE` before `COPY … TO STDOUT`, or several tables
//! copied out) from a principal and source that never dumped before.

use super::statement::{self as st, Explained, Incidents, StatementEvidence};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{Event, EventKind, EventTime};
use model::sql::Token;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// `[detect.data_exfiltration]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataExfiltrationConfig {
    pub enabled: bool,
    /// A session reading fewer rows than this is never flagged for its volume.
    pub min_rows: u64,
    /// Above it, flagged when it reads this many times the principal's largest learned session.
    pub factor: u64,
    /// Distinct tables copied out (`COPY … TO STDOUT`) that make a session dump-like.
    pub dump_tables: usize,
    /// Sources (addresses as logged) from which dumps are expected, besides those learned.
    pub dump_sources: Vec<String>,
}

impl Default for DataExfiltrationConfig {
    fn default() -> Self {
        DataExfiltrationConfig {
            enabled: true,
            min_rows: 100_000,
            factor: 10,
            dump_tables: 3,
            dump_sources: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
// A checkpoint from before a field existed still loads.
#[serde(default)]
struct Session {
    last: EventTime,
    rows: u64,
    /// Rows at the last report, so a growing read is reported as it doubles.
    reported_rows: u64,
    /// The last statement seen reads (pgaudit repeats it without text to give its rows).
    reading: bool,
    copied: Vec<String>,
    /// A whole table (or an unfiltered query) was copied out.
    whole_copy: bool,
    locked: bool,
    dump_reported: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
// A checkpoint from before a field existed still loads.
#[serde(default)]
struct State {
    incidents: Incidents,
    /// By session key ([`st::session_key`]); named apart from the string-keyed map of older
    /// checkpoints, which is left behind (sessions are short-lived).
    open_sessions: FxHashMap<u64, Session>,
    /// Largest session read per principal while the server was learned.
    baseline: FxHashMap<String, u64>,
    /// `principal|source` that took dumps or copied whole tables out while the server was
    /// learned.
    dump_sources: FxHashSet<String>,
}

pub struct DataExfiltration {
    cfg: DataExfiltrationConfig,
    shown: StatementEvidence,
    batch: bool,
    st: State,
}

impl DataExfiltration {
    pub fn new(cfg: DataExfiltrationConfig, shown: StatementEvidence) -> Self {
        DataExfiltration {
            cfg,
            shown,
            batch: false,
            st: State::default(),
        }
    }
}

/// More evidence fields of a finding.
type Extra = Vec<(&'static str, serde_json::Value)>;

/// Sessions idle this long are forgotten.
const SESSION_IDLE_MS: EventTime = 6 * 3_600_000;
const MAX_TABLES: usize = 64;

/// Whether a statement of the text reads (a query sent as one text may hold several).
fn reads(toks: &[Token]) -> bool {
    st::statements(toks).any(|s| {
        st::starts_with(s, &["SELECT"])
            || st::starts_with(s, &["WITH"])
            || st::starts_with(s, &["FETCH"])
            || st::starts_with(s, &["TABLE"])
            || (st::starts_with(s, &["COPY"]) && st::find_words(s, &["TO"]).is_some())
    })
}

/// What a text copies out (`COPY … TO STDOUT` or to a file): the table, or `(query)`, and
/// whether the whole of it goes (a table, or a query with no `WHERE`, `LIMIT` or `FETCH`).
fn copied_out(toks: &[Token]) -> Vec<(String, bool)> {
    st::statements(toks)
        .filter_map(|s| {
            if !st::starts_with(s, &["COPY"]) {
                return None;
            }
            let to = st::find_words(s, &["TO"])?;
            // `TO PROGRAM` runs a command: the unsafe-action detector's.
            if st::is_word(s.get(to + 1), "PROGRAM") {
                return None;
            }
            if st::is_op(s.get(1), "(") {
                let q = st::call_args(s, 0);
                let selective = ["WHERE", "LIMIT", "FETCH", "OFFSET"]
                    .iter()
                    .any(|w| q.iter().any(|t| st::is_word(Some(t), w)));
                return Some(("(query)".into(), !selective));
            }
            let first = st::name_of(s.get(1))?;
            Some(if st::is_op(s.get(2), ".") {
                (
                    format!("{first}.{}", st::name_of(s.get(3)).unwrap_or_default()),
                    true,
                )
            } else {
                (first, true)
            })
        })
        .collect()
}

fn locks_for_dump(toks: &[Token]) -> bool {
    st::statements(toks).any(|s| {
        st::starts_with(s, &["LOCK"])
            && st::find_words(s, &["IN", "ACCESS", "SHARE", "MODE"]).is_some()
    })
}

impl Detector for DataExfiltration {
    fn id(&self) -> &'static str {
        "data_exfiltration"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled || ev.kind != EventKind::Statement {
            return;
        }
        let learning = cx.profile.learning_statements(ev.time, cx.profile_cfg);
        let principal = ev.principal.as_deref().unwrap_or("");
        let source = ev.source_key();
        let s = self
            .st
            .open_sessions
            .entry(st::session_key(ev))
            .or_default();
        s.last = ev.time;
        if let Some(sql) = &ev.sql {
            let toks = sql.executed_tokens();
            s.reading = reads(toks);
            for (t, whole) in copied_out(toks) {
                s.whole_copy |= whole;
                if s.copied.len() < MAX_TABLES && !s.copied.contains(&t) {
                    s.copied.push(t);
                }
            }
            s.locked |= locks_for_dump(toks);
        }
        if s.reading {
            s.rows = s.rows.saturating_add(ev.rows.unwrap_or(0));
        }

        // Volume.
        let learned = self.st.baseline.get(principal).copied().unwrap_or(0);
        let limit = self
            .cfg
            .min_rows
            .max(learned.saturating_mul(self.cfg.factor));
        let mut found: Vec<(&'static str, String, Extra)> = Vec::new();
        // Only what was read while the server was learned is normal: a read that grows
        // slowly past the limit must not teach its own size.
        if learning {
            if s.rows > learned {
                self.st.baseline.insert(principal.to_string(), s.rows);
            }
        } else if s.rows > limit && s.rows >= s.reported_rows.saturating_mul(2).max(1) {
            s.reported_rows = s.rows;
            found.push((
                "read far more rows than usual",
                format!(
                    "The session has read {} rows; the most {principal:?} read in a session while the server was learned is {learned}.",
                    s.rows
                ),
                vec![
                    ("rows", serde_json::json!(s.rows)),
                    ("learnedMaxRows", serde_json::json!(learned)),
                ],
            ));
        }

        // Dumps.
        let app = ev.application.as_deref().unwrap_or("");
        let dump_like = app.starts_with("pg_dump")
            || s.copied.len() >= self.cfg.dump_tables
            || (s.locked && !s.copied.is_empty());
        // Without row counts (`log_statement` alone) a whole table copied out is all the log
        // says of its size; with them, a small copy is no export. pgaudit counts 0 rows for a
        // `COPY table TO` whatever it copied (it counts what the executor returns, and a table
        // copy does not go through it): 0 is no count.
        let bulk_copy = s.whole_copy && ev.rows.is_none_or(|r| r == 0 || r >= self.cfg.min_rows);
        if (dump_like || bulk_copy) && !s.dump_reported {
            let who = format!("{principal}|{source}");
            let expected = self.cfg.dump_sources.iter().any(|d| d == source.as_str());
            if learning {
                self.st.dump_sources.insert(who.clone());
            } else if !expected && !self.st.dump_sources.contains(&who) {
                s.dump_reported = true;
                let before = if self.st.dump_sources.is_empty() {
                    "No dump or whole-table copy of this server was taken while it was learned"
                        .to_string()
                } else {
                    format!(
                        "Dumps and whole-table copies of this server were taken by {} while it was learned",
                        super::access::listing(self.st.dump_sources.iter().cloned(), 5)
                    )
                };
                found.push((
                    if dump_like {
                        "dump from a new source"
                    } else {
                        "whole table copied out from a new source"
                    },
                    format!("{before}; never by {principal:?} from {source}."),
                    vec![("tablesCopied", serde_json::json!(s.copied))],
                ));
            }
        }

        if found.is_empty() {
            return;
        }
        let who = format!("{principal}|{source}");
        for (rule, why, extra) in found {
            let shown = self.shown.show(ev);
            let inc = self
                .st
                .incidents
                .hit(&who, ev, &[rule], Severity::Medium, shown);
            let x = Explained {
                alert_type: AlertType::DataExfiltration,
                entity: who.clone(),
                description: format!(
                    "{principal:?} from {source} is taking data out of the server: {}.",
                    inc.rules.join(", ")
                ),
                why,
                remediation: vec![
                    format!("Confirm with the owner of {principal:?} that the export from {source} is expected; if not, end its sessions ({}) and change the role's password.", super::advice::terminate_role(principal)),
                    "Find out what was read (the statements in evidence, pgaudit) and whether it holds personal or secret data that must be reported.".into(),
                    "Limit what the role can read (GRANT only the tables it needs, row-level security) and which hosts may connect as it (pg_hba.conf).".into(),
                ],
                extra,
            };
            out.push(st::finding(ev, inc, x));
        }
    }

    fn advance(&mut self, now: EventTime, _out: &mut Vec<Finding>) {
        self.st.incidents.expire(now, st::QUIET_MS);
        self.st
            .open_sessions
            .retain(|_, s| now - s.last <= SESSION_IDLE_MS);
    }

    detector_state!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::testing::stmt;
    use crate::testing::run;

    const DAY: EventTime = 86_400_000;

    fn select(t: EventTime, role: &str, session: &str, rows: u64) -> Event {
        let mut e = stmt(t, role, "SELECT * FROM customers WHERE region = 'eu'");
        e.session_id = Some(session.into());
        e.rows = Some(rows);
        e
    }

    #[test]
    fn a_session_reading_far_more_than_learned_is_flagged_once_per_doubling() {
        let mut evs = vec![
            select(0, "app", "s1", 5_000),
            select(DAY, "app", "s2", 20_000),
        ];
        // After learning: a normal session, then one that reads 25, 50 and 110 times more.
        evs.push(select(8 * DAY, "app", "s3", 19_000));
        for (i, rows) in [100_000u64, 400_000, 500_000, 1_700_000]
            .into_iter()
            .enumerate()
        {
            evs.push(select(8 * DAY + 1000 + i as i64, "app", "s4", rows));
        }
        let f = run(
            &mut DataExfiltration::new(
                DataExfiltrationConfig::default(),
                StatementEvidence::Redacted,
            ),
            evs,
        );
        let rows: Vec<u64> = f
            .iter()
            .map(|f| f.evidence.value()["rows"].as_u64().unwrap())
            .collect();
        assert_eq!(rows, [500_000, 1_000_000, 2_700_000]);
        assert_eq!(f[0].evidence.value()["learnedMaxRows"], 20_000);
        assert_eq!(f[0].entity, "app|10.0.0.9");
    }

    fn dump(t: EventTime, role: &str, ip: &str, session: &str) -> Vec<Event> {
        [
            "LOCK TABLE public.a IN ACCESS SHARE MODE",
            "COPY public.a (id, name) TO stdout;",
        ]
        .iter()
        .enumerate()
        .map(|(i, sql)| {
            let mut e = stmt(t + i as i64, role, sql);
            e.client_ip = ip.parse().ok();
            e.source = e.compute_source_key();
            e.session_id = Some(session.into());
            e.application = Some("backup".into());
            e
        })
        .collect()
    }

    #[test]
    fn a_dump_from_a_new_source_is_flagged_the_usual_backup_host_is_not() {
        let mut evs = dump(0, "backup", "10.0.0.5", "d1");
        evs.extend(dump(8 * DAY, "backup", "10.0.0.5", "d2"));
        evs.extend(dump(8 * DAY + 10, "app", "203.0.113.7", "d3"));
        // A filtered copy is a report, not an export.
        let mut copies = stmt(
            9 * DAY,
            "app",
            "COPY (SELECT * FROM a WHERE id = 1) TO STDOUT",
        );
        copies.session_id = Some("d4".into());
        evs.push(copies);
        let f = run(
            &mut DataExfiltration::new(
                DataExfiltrationConfig::default(),
                StatementEvidence::Redacted,
            ),
            evs,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].entity, "app|203.0.113.7");
        assert_eq!(f[0].evidence.value()["tablesCopied"][0], "public.a");
    }

    fn copy(t: EventTime, role: &str, session: &str, sql: &str) -> Event {
        let mut e = stmt(t, role, sql);
        e.session_id = Some(session.into());
        e
    }

    #[test]
    fn a_dump_sent_as_one_text_and_a_whole_table_copied_out_are_flagged() {
        let evs =
            vec![
            copy(0, "backup", "b1", "COPY public.a TO STDOUT"),
            copy(8 * DAY, "backup", "b2", "COPY public.a TO STDOUT"),
            // Everything a dump does, in one query.
            copy(
                8 * DAY + 1,
                "app",
                "s1",
                "BEGIN; LOCK TABLE public.a IN ACCESS SHARE MODE; COPY public.a TO STDOUT; COMMIT",
            ),
            copy(8 * DAY + 2, "report", "s2", "COPY (SELECT id FROM a LIMIT 10) TO STDOUT"),
            copy(8 * DAY + 3, "analyst", "s3", "copy \"Customers\" to stdout with csv"),
            // Small, as counted by pgaudit: no export.
            {
                let mut e = copy(8 * DAY + 4, "etl", "s4", "COPY a TO STDOUT");
                e.rows = Some(20);
                e
            },
        ];
        let f = run(
            &mut DataExfiltration::new(
                DataExfiltrationConfig::default(),
                StatementEvidence::Redacted,
            ),
            evs,
        );
        let got: Vec<(String, String)> = f
            .iter()
            .map(|f| (f.entity.clone(), f.evidence.value()["rules"][0].to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("app|10.0.0.9".into(), "\"dump from a new source\"".into()),
                (
                    "analyst|10.0.0.9".into(),
                    "\"whole table copied out from a new source\"".into()
                ),
            ]
        );
        assert_eq!(f[1].evidence.value()["tablesCopied"][0], "Customers");
    }
}
