//! `PostgreSQL_SqlInjection`: statements carrying the payloads injection tools (sqlmap and its
//! kin) put into an application's queries — time delays (`PG_SLEEP`, heavy `GENERATE_SERIES`),
//! `CHR()` chains that smuggle strings past quote filters, `UNION SELECT NULL,…` column
//! probing, constant comparisons that turn a WHERE into a yes/no oracle, stacked statements
//! after a WHERE — and a burst of syntax errors from an application that normally has none.
//! Rules read the lexer's tokens, so `/**/` between keywords or a keyword in a string changes
//! nothing. One alert per principal, database and application: the application is what is
//! being exploited; its users are behind it.

use super::statement::{self as st, Explained, Incidents, StatementEvidence};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::duration::Span;
use model::event::{Event, EventKind, EventTime};
use model::sql::Token;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// `[detect.sql_injection]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlInjectionConfig {
    pub enabled: bool,
    /// Syntax-class errors (SQLSTATE 42601, 42703, 42P01, 42883, 42804, 42P10, 22P02) from
    /// one application within `error_window` that make a burst.
    pub error_burst: u32,
    pub error_window: Span,
    /// `GENERATE_SERIES` bounds from this size on, inside a WHERE, are taken for a delay.
    pub heavy_series: u64,
}

impl Default for SqlInjectionConfig {
    fn default() -> Self {
        SqlInjectionConfig {
            enabled: true,
            error_burst: 10,
            error_window: Span::mins(5),
            heavy_series: 1_000_000,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    incidents: Incidents,
    /// Recent syntax-class error times per entity.
    errors: FxHashMap<String, VecDeque<EventTime>>,
    /// Applications whose error bursts were seen while the server was being learned: for
    /// them a burst alone is normal.
    noisy: FxHashSet<String>,
}

pub struct SqlInjection {
    cfg: SqlInjectionConfig,
    shown: StatementEvidence,
    batch: bool,
    st: State,
}

impl SqlInjection {
    pub fn new(cfg: SqlInjectionConfig, shown: StatementEvidence) -> Self {
        SqlInjection {
            cfg,
            shown,
            batch: false,
            st: State::default(),
        }
    }
}

/// Errors that probing produces: syntax (42601), unknown column/table/function/operator
/// (42703, 42P01, 42883), type mismatch in a UNION (42804), ORDER BY column counting (42P10),
/// bad input for a type (22P02).
const SYNTAX_CLASS: [&str; 7] = [
    "42601", "42703", "42P01", "42883", "42804", "42P10", "22P02",
];

const SLEEP: [&str; 3] = ["PG_SLEEP", "PG_SLEEP_FOR", "PG_SLEEP_UNTIL"];

/// The payload rules a text matches.
pub fn payload_rules(toks: &[Token], heavy_series: u64) -> Vec<&'static str> {
    let mut rules = Vec::new();
    let stmts: Vec<&[Token]> = st::statements(toks).collect();
    for (k, s) in stmts.iter().enumerate() {
        let where_at = s.iter().position(|t| st::is_word(Some(t), "WHERE"));
        // A bare `SELECT pg_sleep(n)` is someone waiting on purpose; a sleep anywhere else
        // (in a condition, a subquery, after another statement) is a timing oracle.
        let bare_sleep = s.len() == 5 && st::starts_with(s, &["SELECT"]) && k == 0;
        for i in 0..s.len() {
            if st::is_call(s, i, &SLEEP) && !bare_sleep {
                push(&mut rules, "time delay (pg_sleep)");
            }
            if st::is_call(s, i, &["GENERATE_SERIES"])
                && where_at.is_some_and(|w| w < i)
                && st::call_args(s, i).iter().any(
                    |t| matches!(t, Token::Num(n) if n.parse::<u64>().is_ok_and(|v| v >= heavy_series)),
                )
            {
                push(&mut rules, "heavy query delay (generate_series)");
            }
            if chr_chain(&s[i..]) >= 3 {
                push(&mut rules, "CHR() chain");
            }
            if (st::is_word(s.get(i), "AND") || st::is_word(s.get(i), "OR"))
                && constant_comparison(
                    &s[i + 1..],
                    st::is_word(s.get(i), "OR") && !after_empty_list(s, i),
                )
            {
                push(&mut rules, "constant comparison (boolean oracle)");
            }
            if st::is_word(s.get(i), "UNION") && null_probe(&s[i + 1..]) {
                push(&mut rules, "UNION SELECT NULL column probe");
            }
            if st::is_word(s.get(i), "UNION") && reads_credentials(&s[i + 1..]) {
                push(
                    &mut rules,
                    "UNION SELECT of password hashes (pg_shadow, pg_authid)",
                );
            }
            if subquery_cast_to_number(s, i) {
                push(
                    &mut rules,
                    "error-based extraction (a subquery cast to a number)",
                );
            }
            if st::is_call(s, i, &["ASCII"])
                && st::call_args(s, i)
                    .first()
                    .is_some_and(|_| st::is_call(&s[i + 2..], 0, &["SUBSTRING", "SUBSTR"]))
            {
                push(
                    &mut rules,
                    "blind extraction, a character at a time (ASCII(SUBSTRING(…)))",
                );
            }
        }
        if k > 0
            && stmts[0].iter().any(|t| st::is_word(Some(t), "WHERE"))
            && ["DROP", "ALTER", "CREATE", "COPY", "GRANT", "TRUNCATE"]
                .iter()
                .any(|w| st::starts_with(s, &[w]))
        {
            push(&mut rules, "stacked statement after a WHERE");
        }
    }
    rules
}

/// `… SELECT …passwd… FROM [pg_catalog.]pg_shadow` (or pg_authid's `rolpassword`, or `*`):
/// the password hashes read into a UNION branch. Catalog tools UNION rows of pg_authid too
/// (check_postgres lists role names so), but never its password column.
fn reads_credentials(s: &[Token]) -> bool {
    let Some(from) = (0..s.len()).find(|&i| st::is_word(s.get(i), "FROM")) else {
        return false;
    };
    let hashes = s[..from].iter().any(|t| {
        st::is_op(Some(t), "*")
            || matches!(
                st::name_of(Some(t)).as_deref(),
                Some("passwd" | "rolpassword")
            )
    });
    let mut j = from + 1;
    if st::name_of(s.get(j)).as_deref() == Some("pg_catalog") && st::is_op(s.get(j + 1), ".") {
        j += 2;
    }
    hashes
        && matches!(
            st::name_of(s.get(j)).as_deref(),
            Some("pg_shadow" | "pg_authid" | "pg_user")
        )
}

/// `CAST((SELECT …) AS INT)` or `(SELECT …)::int` at `i`: the error message the failed cast
/// produces carries the subquery's answer (error-based extraction). Applications cast
/// columns, not subqueries of text, to numbers inside conditions.
fn subquery_cast_to_number(s: &[Token], i: usize) -> bool {
    const NUMBERS: [&str; 6] = ["INT", "INTEGER", "BIGINT", "SMALLINT", "NUMERIC", "INT4"];
    if st::is_call(s, i, &["CAST"]) {
        let args = st::call_args(s, i);
        let has_select = args.iter().any(|t| st::is_word(Some(t), "SELECT"));
        let to_number = args.len() >= 2
            && st::is_word(args.get(args.len() - 2), "AS")
            && args
                .last()
                .is_some_and(|t| NUMBERS.iter().any(|n| st::is_word(Some(t), n)));
        return has_select && to_number;
    }
    // ( SELECT … ) :: int
    if st::is_op(s.get(i), "(") && st::is_word(s.get(i + 1), "SELECT") {
        let mut depth = 0usize;
        for (j, t) in s.iter().enumerate().skip(i) {
            if st::is_op(Some(t), "(") {
                depth += 1;
            } else if st::is_op(Some(t), ")") {
                depth -= 1;
                if depth == 0 {
                    return st::is_op(s.get(j + 1), "::")
                        && NUMBERS.iter().any(|n| st::is_word(s.get(j + 2), n));
                }
            }
        }
    }
    false
}

fn push(rules: &mut Vec<&'static str>, r: &'static str) {
    if !rules.contains(&r) {
        rules.push(r);
    }
}

/// Length of a `CHR(n)||CHR(n)||…` chain starting here, counting the printable characters
/// it spells: sqlmap spells its markers (`CHR(113)||CHR(106)||CHR(98)…`, letters) this way to
/// avoid quotes; applications chain CHR() for the control characters they cannot type
/// (`replace(x, chr(13)||chr(10)||chr(9), ' ')`), and those do not count.
fn chr_chain(s: &[Token]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while st::is_word(s.get(i), "CHR")
        && st::is_op(s.get(i + 1), "(")
        && matches!(s.get(i + 2), Some(Token::Num(_)))
        && st::is_op(s.get(i + 3), ")")
    {
        let printable = matches!(s.get(i + 2), Some(Token::Num(c)) if c.parse::<u32>().is_ok_and(|c| (33..=126).contains(&c)));
        if printable {
            n += 1;
        }
        if !st::is_op(s.get(i + 4), "||") {
            break;
        }
        i += 5;
    }
    n
}

/// Whether `IN (NULL)` ends right before `i`: how SQLAlchemy writes an empty list, with the
/// constant that gives the list's answer after it (`IN (NULL) AND (1 != 1)`, and for NOT IN,
/// `NOT IN (NULL) OR (1 = 1)`): the OR there is the builder's, not an oracle.
fn after_empty_list(s: &[Token], i: usize) -> bool {
    i >= 4
        && st::is_word(s.get(i - 4), "IN")
        && st::is_op(s.get(i - 3), "(")
        && st::is_word(s.get(i - 2), "NULL")
        && st::is_op(s.get(i - 1), ")")
}

/// `[NOT] 4521=4521`, `'a'='a'`, `(5678=5678)`: a comparison of two constants right after
/// AND/OR. Query builders write `WHERE 1=1 AND …` and `… AND 1 = 1` (an empty condition
/// list): after AND, a one- or two-digit tautology is theirs; sqlmap's numbers are random
/// and longer. After OR, `1=1` matches every row: that is an injection's.
fn constant_comparison(s: &[Token], after_or: bool) -> bool {
    let mut i = 0;
    while st::is_word(s.get(i), "NOT") || st::is_op(s.get(i), "(") {
        i += 1;
    }
    let constant = |t: Option<&Token>| match t {
        Some(Token::Num(n)) => Some(n.to_string()),
        Some(Token::Str(x)) => Some(format!("'{x}")),
        _ => None,
    };
    let (Some(a), Some(b)) = (constant(s.get(i)), constant(s.get(i + 2))) else {
        return false;
    };
    let cmp = ["=", "<>", "!=", ">", "<"]
        .iter()
        .any(|o| st::is_op(s.get(i + 1), o));
    let builder = !after_or && a == b && !a.starts_with('\'') && a.len() <= 2;
    // Numbers: sqlmap's are random, several digits; equal or not, both are oracles.
    cmp && !builder && (a == b || (a.len() >= 3 && b.len() >= 3 && !a.starts_with('\'')))
}

/// `[ALL] SELECT NULL, NULL …`: a select list of at least two items, all NULL or constants,
/// at least one NULL, selected from nothing. sqlmap probes the column count so; a query that
/// pads one branch of a real UNION with NULLs selects them FROM a table.
fn null_probe(s: &[Token]) -> bool {
    let mut i = 0;
    if st::is_word(s.get(i), "ALL") || st::is_word(s.get(i), "DISTINCT") {
        i += 1;
    }
    if !st::is_word(s.get(i), "SELECT") {
        return false;
    }
    let (mut items, mut nulls, mut other) = (1, 0, false);
    for t in &s[i + 1..] {
        match t {
            // Padding a real branch of a UNION: selected from a table.
            Token::Word(w) if w == "FROM" => return false,
            Token::Word(w) if w == "WHERE" || w == "UNION" || w == "ORDER" || w == "LIMIT" => break,
            Token::Word(w) if w == "NULL" => nulls += 1,
            Token::Word(w)
                if w == "CHR" || w == "TEXT" || w == "VARCHAR" || w == "INT" || w == "INTEGER" => {}
            Token::Op(o) if o == "," => items += 1,
            Token::Op(o) if o == "||" || o == "::" || o == "(" || o == ")" => {}
            Token::Str(_) | Token::Num(_) => {}
            _ => other = true,
        }
    }
    items >= 2 && nulls >= 1 && !other
}

impl Detector for SqlInjection {
    fn id(&self) -> &'static str {
        "sql_injection"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled || !matches!(ev.kind, EventKind::Statement | EventKind::Error) {
            return;
        }
        let mut rules = ev
            .sql
            .as_ref()
            .map(|s| payload_rules(s.tokens(), self.cfg.heavy_series))
            .unwrap_or_default();
        let syntax = ev.kind == EventKind::Error
            && ev
                .sqlstate
                .as_deref()
                .is_some_and(|c| SYNTAX_CLASS.contains(&c));
        // Most statements match nothing: nothing more to do for them.
        if rules.is_empty() && !syntax {
            return;
        }
        let learning = cx.profile.learning_statements(ev.time, cx.profile_cfg);
        let app = ev.application.as_deref().unwrap_or("");
        let entity = format!(
            "{}|{}|{app}",
            ev.principal.as_deref().unwrap_or(""),
            ev.database.as_deref().unwrap_or("")
        );
        let mut burst = None;
        if syntax {
            let window = self.cfg.error_window.ms();
            let q = self.st.errors.entry(entity.clone()).or_default();
            q.push_back(ev.time);
            while q.front().is_some_and(|t| ev.time - t > window) {
                q.pop_front();
            }
            if q.len() >= self.cfg.error_burst as usize {
                if learning {
                    self.st.noisy.insert(app.to_string());
                } else if !self.st.noisy.contains(app) {
                    burst = Some(q.len());
                    rules.push("burst of syntax errors");
                }
            }
        }
        if rules.is_empty() {
            // Further errors of an application under attack belong to its incident.
            if !(syntax && self.st.incidents.is_open(&entity)) {
                return;
            }
        }
        let severity = if rules.iter().any(|r| *r != "burst of syntax errors") {
            Severity::High
        } else {
            Severity::Medium
        };
        let shown = self.shown.show(ev);
        let inc = self.st.incidents.hit(&entity, ev, &rules, severity, shown);
        let app_name = if app.is_empty() {
            "an application without a name"
        } else {
            app
        };
        let principal = ev.principal.as_deref().unwrap_or("");
        let x = Explained {
            alert_type: AlertType::SqlInjection,
            entity: entity.clone(),
            description: format!(
                "Statements run as {principal:?} by {app_name} from {} carry SQL injection payloads ({}): someone is injecting SQL through the application.",
                ev.source_key(),
                inc.rules.join(", ")
            ),
            why: match burst {
                Some(n) if inc.rules.len() == 1 => format!("{n} syntax errors within {} from {app_name}, which had no such bursts while the server was learned.", self.cfg.error_window),
                _ => "Applications build these shapes only when user input is pasted into SQL; injection tools send them to find out whether it is.".into(),
            },
            remediation: vec![
                format!("Find the code in {app_name} that builds these statements and pass user input as bind parameters, never into the SQL text."),
                "Look in the web server's access log for the requests at these times to find the attacking client, and block it.".into(),
                format!("Reduce what {principal:?} may do (no superuser, no access to tables the application does not need), so an injection reaches less."),
            ],
            extra: vec![],
        };
        out.push(st::finding(ev, inc, x));
    }

    fn advance(&mut self, now: EventTime, _out: &mut Vec<Finding>) {
        self.st.incidents.expire(now, st::QUIET_MS);
        let window = self.cfg.error_window.ms();
        self.st
            .errors
            .retain(|_, q| q.back().is_some_and(|t| now - t <= window));
    }

    detector_state!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::testing::stmt;
    use crate::testing::run;
    use model::sql::tokens;

    fn rules(sql: &str) -> Vec<&'static str> {
        payload_rules(&tokens(sql), 1_000_000)
    }

    #[test]
    fn sqlmap_payloads_match_their_rule() {
        assert_eq!(
            rules("SELECT * FROM users WHERE id=1 AND 4521=(SELECT 4521 FROM PG_SLEEP(5))"),
            ["time delay (pg_sleep)"]
        );
        assert_eq!(
            rules("SELECT * FROM users WHERE id=1;SELECT PG_SLEEP(5)--"),
            ["time delay (pg_sleep)"]
        );
        assert_eq!(
            rules("SELECT * FROM users WHERE id=1 AND 7391=(SELECT COUNT(*) FROM GENERATE_SERIES(1,5000000))"),
            ["heavy query delay (generate_series)"]
        );
        assert_eq!(
            rules("SELECT * FROM users WHERE id=1 AND 8412=8412"),
            ["constant comparison (boolean oracle)"]
        );
        assert_eq!(
            rules("SELECT * FROM users WHERE name='' OR 'a'='a'"),
            ["constant comparison (boolean oracle)"]
        );
        assert_eq!(
            rules("SELECT * FROM users WHERE id=1 OR 1=1"),
            ["constant comparison (boolean oracle)"]
        );
        assert_eq!(
            rules("SELECT id FROM users WHERE id=1 UNION ALL SELECT NULL,(CHR(113)||CHR(122)||CHR(106))::text,NULL-- x"),
            ["UNION SELECT NULL column probe", "CHR() chain"]
        );
        assert_eq!(
            rules("SELECT * FROM t WHERE id=1; DROP TABLE t"),
            ["stacked statement after a WHERE"]
        );
        // Hidden in comments, split by them, or only in strings: nothing.
        assert!(
            rules("SELECT * FROM t WHERE a = 'AND 1=1 PG_SLEEP(5)' -- UNION SELECT NULL,NULL")
                .is_empty()
        );
        assert_eq!(
            rules("SELECT * FROM t WHERE id=1 AND/**/4521=4521"),
            ["constant comparison (boolean oracle)"]
        );
    }

    #[test]
    fn extraction_payloads_match_their_rule() {
        assert_eq!(
            rules("SELECT name FROM items WHERE id=1 UNION SELECT usename||':'||passwd FROM pg_shadow--"),
            ["UNION SELECT of password hashes (pg_shadow, pg_authid)"]
        );
        assert_eq!(
            rules("SELECT name FROM items WHERE id=1 UNION ALL SELECT rolpassword FROM pg_catalog.pg_authid"),
            ["UNION SELECT of password hashes (pg_shadow, pg_authid)"]
        );
        assert_eq!(
            rules("SELECT * FROM items WHERE id=1 AND 1=CAST((SELECT version()) AS int)"),
            ["error-based extraction (a subquery cast to a number)"]
        );
        assert_eq!(
            rules("SELECT * FROM items WHERE id=1 AND 7=(SELECT current_user)::int"),
            ["error-based extraction (a subquery cast to a number)"]
        );
        assert_eq!(
            rules("SELECT * FROM items WHERE id=1 AND ascii(substring((SELECT passwd FROM pg_shadow LIMIT 1),1,1))>64"),
            ["blind extraction, a character at a time (ASCII(SUBSTRING(…)))"]
        );
    }

    #[test]
    fn ordinary_statements_match_nothing() {
        for s in [
            "SELECT usename FROM pg_shadow",
            "SELECT CAST(amount AS int) FROM orders",
            "SELECT CAST(x AS text) FROM (SELECT 1 AS x) s",
            "SELECT ascii(name) FROM items",
            "SELECT a FROM t UNION SELECT b FROM u",
            "SELECT pg_sleep(1)",
            "SELECT * FROM t WHERE 1=1 AND a = $1",
            "SELECT a, NULL FROM x UNION ALL SELECT b, c FROM y",
            "SELECT generate_series(1, 10000000)",
            "SELECT * FROM t WHERE a = 1 AND b = 2",
            "UPDATE t SET a = 1 WHERE id = 2; INSERT INTO log VALUES (1)",
            "SELECT chr(65)",
            "SELECT * FROM t WHERE id = 1 AND created > '2026-01-01'",
            // A catalog tool's UNION over pg_authid (check_postgres), names only.
            "SELECT d.name FROM x d LEFT JOIN (SELECT 'database' AS object, oid, datname AS name FROM pg_database UNION ALL SELECT 'role' AS object, oid, rolname AS name FROM pg_authid) so ON so.oid = d.objoid",
            // SQLAlchemy's empty IN, control characters by code, a padded UNION branch, a
            // query builder's trailing tautology.
            "SELECT t.id FROM t WHERE t.id IN (NULL) AND (1 != 1)",
            "SELECT t.id FROM t WHERE (t.id NOT IN (NULL) OR (1 = 1))",
            "SELECT replace(note, chr(13)||chr(10)||chr(9), ' ') FROM notes WHERE id = 7",
            "SELECT a, b FROM x WHERE a > 1 UNION ALL SELECT NULL, NULL FROM b",
            "SELECT * FROM orders WHERE status = 'open' AND 1 = 1",
            // An ORM's empty condition list (SQLAlchemy, query builders).
            "SELECT count(*) FROM (SELECT id FROM orders WHERE status = 'open' AND 1 = 1) AS anon_1",
        ] {
            assert!(rules(s).is_empty(), "{s}: {:?}", rules(s));
        }
    }

    fn syntax_error(t: EventTime, app: &str) -> Event {
        let mut e = stmt(t, "web", "SELECT * FROM t WHERE id = 1'");
        e.kind = EventKind::Error;
        e.application = Some(app.into());
        e.sqlstate = Some("42601".into());
        e
    }

    #[test]
    fn an_error_burst_is_flagged_unless_the_application_always_had_them() {
        const DAY: EventTime = 86_400_000;
        let mut evs = Vec::new();
        // Learned: the reporting tool has error bursts now and then.
        for i in 0..12 {
            evs.push(syntax_error(i * 1000, "reports"));
        }
        for i in 0..12 {
            evs.push(syntax_error(8 * DAY + i * 1000, "reports"));
            evs.push(syntax_error(8 * DAY + i * 1000, "web"));
        }
        let f = run(
            &mut SqlInjection::new(SqlInjectionConfig::default(), StatementEvidence::Redacted),
            evs,
        );
        let entities: FxHashSet<_> = f.iter().map(|f| f.entity.as_str()).collect();
        assert_eq!(entities.into_iter().collect::<Vec<_>>(), ["web|appdb|web"]);
        let last = f.last().unwrap();
        assert_eq!(last.severity, Severity::Medium);
        let ev = last.evidence.value();
        assert_eq!(ev["statements"], 3, "10th, 11th and 12th error");
        assert_eq!(ev["sampleStatements"][0], "SELECT * FROM t WHERE id = ??");
    }

    #[test]
    fn payloads_are_one_alert_with_redacted_evidence() {
        let f = run(
            &mut SqlInjection::new(SqlInjectionConfig::default(), StatementEvidence::Redacted),
            [
                stmt(1000, "web", "SELECT * FROM users WHERE name = 'bob' AND 4521=4521"),
                stmt(2000, "web", "SELECT * FROM users WHERE name = 'bob' AND 4521=(SELECT 4521 FROM PG_SLEEP(5))"),
                stmt(3000, "web", "SELECT * FROM users WHERE name = 'bob'"),
            ],
        );
        assert_eq!(f.len(), 2);
        assert!(f
            .iter()
            .all(|f| f.entity == "web|appdb|web" && f.severity == Severity::High));
        let ev = f[1].evidence.value();
        assert_eq!(ev["rules"].as_array().unwrap().len(), 2);
        assert!(!ev.to_string().contains("bob"), "literals redacted: {ev}");
        assert_eq!(f[1].start, 1000);
        assert_eq!(f[1].end, 2000);
    }
}
