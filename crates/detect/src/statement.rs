//! What the statement-level detectors (SQL injection, unsafe actions, privilege escalation,
//! data exfiltration) share: patterns over the lexer's tokens, so rules match keywords and
//! never text hidden in comments or strings, and the incidents they grow into alerts, with the
//! statements as evidence (literals redacted unless configured otherwise).

use model::alert::{sample, AlertType, Finding, SampleEvent, Severity};
use model::event::{format_time, Event, EventTime};
use model::sql::Token;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub use model::sql::{is_op, is_word};

/// The statements of a text, split at `;` (the lexer has already put strings, comments and
/// dollar quotes aside, so every `;` token ends a statement).
pub fn statements(toks: &[Token]) -> impl Iterator<Item = &[Token]> {
    toks.split(|t| is_op(Some(t), ";"))
        .filter(|s| !s.is_empty())
}

/// Whether `toks[i]` calls one of `names` (`name (`, also schema-qualified). A quoted name
/// is the same function when it is written as PostgreSQL folds it: `"pg_read_file"(…)` and
/// `"pg_catalog"."pg_read_file"(…)` call `pg_read_file`; `"PG_READ_FILE"` names another.
#[inline]
pub fn is_call(toks: &[Token], i: usize, names: &[&str]) -> bool {
    // Most tokens are not followed by `(`: the cheap test first (rules ask this of every token).
    is_op(toks.get(i + 1), "(") && toks.get(i).is_some_and(|t| names_one_of(t, names))
}

#[inline(never)]
fn names_one_of(t: &Token, names: &[&str]) -> bool {
    match t {
        Token::Word(w) => names.contains(&w.as_str()),
        Token::Ident(q) => {
            !q.chars().any(char::is_uppercase) && names.contains(&q.to_uppercase().as_str())
        }
        _ => false,
    }
}

/// The tokens between the parentheses of the call at `i`.
#[inline]
pub fn call_args(toks: &[Token], i: usize) -> &[Token] {
    let start = i + 2;
    let mut depth = 1usize;
    for (j, t) in toks.iter().enumerate().skip(start) {
        if is_op(Some(t), "(") {
            depth += 1;
        } else if is_op(Some(t), ")") {
            depth -= 1;
            if depth == 0 {
                return &toks[start..j];
            }
        }
    }
    toks.get(start..).unwrap_or(&[])
}

/// Whether the statement begins with these words.
#[inline]
pub fn starts_with(stmt: &[Token], words: &[&str]) -> bool {
    words.len() <= stmt.len() && words.iter().zip(stmt).all(|(w, t)| is_word(Some(t), w))
}

/// Where the words occur one after the other.
pub fn find_words(stmt: &[Token], words: &[&str]) -> Option<usize> {
    (0..stmt.len()).find(|&i| starts_with(&stmt[i..], words))
}

/// A role or object name token, as the server would fold it.
pub fn name_of(t: Option<&Token>) -> Option<String> {
    match t? {
        Token::Word(w) => Some(w.to_lowercase().into()),
        Token::Ident(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The session an event belongs to, for state kept per session: its session id, else its
/// source and process. A hash, not a string: it is asked of every statement, and state keyed
/// by it needs no text.
pub fn session_key(ev: &Event) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<rustc_hash::FxHasher>::default();
    match (&ev.session_id, ev.pid) {
        (Some(s), _) => h.hash_one((0u8, s.as_str())),
        (None, Some(p)) => h.hash_one((1u8, ev.source_key().as_str(), p)),
        (None, None) => h.hash_one((2u8, ev.source_key().as_str())),
    }
}

/// How statements are shown in evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementEvidence {
    /// Literals replaced by `?`: the shape without the data or passwords in it.
    Redacted,
    /// As logged (cut to a few hundred characters).
    Full,
}

impl StatementEvidence {
    pub fn show(self, ev: &Event) -> Option<String> {
        let sql = ev.sql.as_ref()?;
        Some(match self {
            StatementEvidence::Redacted => sql.redacted(400),
            StatementEvidence::Full => model::event::truncate(&sql.text, 400).to_string(),
        })
    }
}

/// Samples kept per incident.
const SAMPLES: usize = 5;

/// An ongoing incident of one entity: what grows into one alert.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Incident {
    pub start: EventTime,
    pub end: EventTime,
    /// Statements (or errors) that matched.
    pub count: u64,
    /// The rules that matched, in the order first seen.
    pub rules: Vec<String>,
    /// Distinct statements, as shown in evidence.
    pub statements: Vec<String>,
    pub samples: Vec<SampleEvent>,
    pub severity: Option<Severity>,
}

/// Incidents by entity; one goes when it has been quiet for the quiet period.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Incidents {
    open: FxHashMap<String, Incident>,
}

impl Incidents {
    pub fn hit(
        &mut self,
        entity: &str,
        ev: &Event,
        rules: &[&str],
        severity: Severity,
        shown: Option<String>,
    ) -> &Incident {
        let inc = self
            .open
            .entry(entity.to_string())
            .or_insert_with(|| Incident {
                start: ev.time,
                ..Incident::default()
            });
        inc.end = ev.time.max(inc.end);
        inc.count += 1;
        for r in rules {
            if !inc.rules.iter().any(|x| x == r) {
                inc.rules.push(r.to_string());
            }
        }
        if let Some(s) = shown {
            if inc.statements.len() < SAMPLES && !inc.statements.contains(&s) {
                inc.statements.push(s);
            }
        }
        if inc.samples.len() < SAMPLES {
            inc.samples.push(sample(ev));
        }
        inc.severity = Some(inc.severity.map_or(severity, |s| s.max(severity)));
        inc
    }

    pub fn is_open(&self, entity: &str) -> bool {
        self.open.contains_key(entity)
    }

    /// Forgets incidents quiet since `now - quiet`.
    pub fn expire(&mut self, now: EventTime, quiet: EventTime) {
        self.open.retain(|_, i| now - i.end <= quiet);
    }
}

/// How long an incident stays open without new matches: the alert book's default quiet period.
pub const QUIET_MS: EventTime = 60 * 60_000;

/// A statement finding's text.
pub struct Explained {
    pub alert_type: AlertType,
    pub entity: String,
    pub description: String,
    pub why: String,
    pub remediation: Vec<String>,
    /// More evidence fields: `(key, value)`.
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

/// The finding for an incident as it now stands.
pub fn finding(ev: &Event, inc: &Incident, x: Explained) -> Finding {
    let mut w = model::alert::EvidenceWriter::new();
    w.field("rules", &inc.rules);
    w.field("statements", &inc.count);
    w.field("sampleStatements", &inc.statements);
    for (k, v) in &x.extra {
        w.field(k, v);
    }
    w.field("firstSeen", &format_time(inc.start));
    w.field("sampleEvents", &inc.samples);
    Finding {
        alert_type: x.alert_type,
        display_name: x.alert_type.title(),
        severity: inc.severity.unwrap_or(x.alert_type.severity()),
        techniques: x.alert_type.techniques(),
        entity: x.entity,
        start: inc.start,
        end: inc.end,
        // Statement events carry no enrichment: the source as logged.
        entities: super::access::entities(ev, None),
        evidence: w.finish(),
        description: x.description,
        anomaly_context: x.why,
        remediation: x.remediation,
    }
}

#[cfg(test)]
pub mod testing {
    use model::event::{Event, EventKind, EventTime, Sql};

    /// A statement event as the session joiner makes it.
    pub fn stmt(t: EventTime, role: &str, sql: &str) -> Event {
        let mut e = crate::testing::ev(t, EventKind::Statement, "10.0.0.9", Some(role));
        e.database = Some("appdb".into());
        e.application = Some("web".into());
        e.session_id = Some("1.a".into());
        e.sql = Some(Sql::new(sql));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::sql::tokens;

    #[test]
    fn calls_and_their_arguments() {
        let t = tokens("SELECT pg_catalog.pg_read_file('/etc/passwd', 0, (1+2))");
        let i = t
            .iter()
            .position(|x| is_word(Some(x), "PG_READ_FILE"))
            .unwrap();
        assert!(is_call(&t, i, &["PG_READ_FILE"]));
        assert_eq!(call_args(&t, i).len(), 9);
        assert_eq!(statements(&tokens("select 1; ; select 2;")).count(), 2);
        assert!(starts_with(
            &tokens("alter  system set x = 1"),
            &["ALTER", "SYSTEM"]
        ));
        assert_eq!(
            find_words(&tokens("COPY t TO PROGRAM 'x'"), &["TO", "PROGRAM"]),
            Some(2)
        );
    }
}
