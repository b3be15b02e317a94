//! Joins the lines of one backend into events.
//!
//! PostgreSQL logs a login as several entries from the same backend: `connection received`
//! (client host and port), then `connection authorized` or a FATAL with its DETAIL, then
//! `disconnection`. Keyed by session id (csvlog, jsonlog, `%c`) or pid, the joiner remembers the
//! client address from the first entry, so every event carries it even when `log_line_prefix`
//! has no `%h`. Failures are classified by SQLSTATE and DETAIL where the log has them, and by
//! the English message text otherwise.

use super::pgaudit::AuditEntry;
use super::{Record, Severity};
use compact_str::CompactString;
use model::event::{text_hash, Event, EventKind, EventTime, LoginFailure, ProtocolErrorKind};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// How long a connection may stay between `connection received` and an outcome before it is
/// taken for one that never sent a startup packet: PostgreSQL's `authentication_timeout` (60 s
/// by default) plus a margin.
pub const STARTUP_TIMEOUT_MS: EventTime = 65_000;

/// A backend's state between its entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Session {
    started: EventTime,
    last_seen: EventTime,
    ip: Option<IpAddr>,
    host: Option<CompactString>,
    port: Option<u16>,
    user: Option<CompactString>,
    database: Option<CompactString>,
    application: Option<CompactString>,
    auth_method: Option<CompactString>,
    pid: Option<u32>,
    session_id: Option<CompactString>,
    /// Authentication succeeded (`connection authorized`).
    authorized: bool,
    /// Anything after `connection received`: the connection did speak.
    spoke: bool,
    /// Hash of the last statement text seen: with `log_statement` and pgaudit both on (or an
    /// error's STATEMENT after its `statement:` line) one statement is logged twice, and
    /// detectors must see it once.
    #[serde(default)]
    last_sql: u64,
    /// pgaudit (statement id, substatement id) last seen: `log_relation` repeats an entry per
    /// table.
    #[serde(default)]
    last_audit: (u64, u64),
}

/// Counters the summary reports.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct JoinStats {
    pub records: u64,
    pub events: u64,
    /// Sessions dropped because too many were open at once (memory bound).
    pub evicted: u64,
}

/// Turns records into events. Its state is saved in checkpoints.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionJoiner {
    sessions: FxHashMap<u64, Session>,
    last_time: EventTime,
    last_reap: EventTime,
    pub stats: JoinStats,
    #[serde(skip)]
    statements: model::event::SqlCache,
    /// PgBouncer's clients, and its own connections to the server.
    #[serde(default)]
    pub pooler: super::pgbouncer::PoolerJoin,
}

/// Upper bound of sessions kept at once; beyond it the least recently seen are dropped.
const MAX_SESSIONS: usize = 200_000;

fn key_of(rec: &Record) -> Option<u64> {
    if !rec.session_id.is_empty() {
        if let Some((start, pid)) = rec.session_id.split_once('.') {
            if let (Ok(s), Ok(p)) = (u64::from_str_radix(start, 16), u64::from_str_radix(pid, 16)) {
                return Some((s << 32) | (p & 0xffff_ffff));
            }
        }
    }
    rec.pid.map(|p| p as u64)
}

fn opt(s: &str) -> Option<CompactString> {
    if s.is_empty() || s == "[unknown]" {
        None
    } else {
        Some(CompactString::new(s))
    }
}

/// Position of `needle` in `hay`. Messages are short: scanning for the first byte with memchr
/// beats building a substring searcher on every call.
fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let first = *n.first()?;
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, &h[from..]) {
        let p = from + i;
        if h[p..].starts_with(n) {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// The value after `key=` up to the first of `ends` (or the end of `s`).
fn kv<'a>(s: &'a str, key: &str, ends: &[&str]) -> Option<&'a str> {
    let start = find(s, key)? + key.len();
    let rest = &s[start..];
    let end = ends
        .iter()
        .filter_map(|e| find(rest, e))
        .min()
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The quoted value after `word "` in a message such as `… for user "app"`.
fn quoted<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let start = find(s, word)? + word.len();
    let rest = &s[start..];
    let end = rest.find('"')?;
    Some(&rest[..end])
}

/// Classifies a FATAL before authorisation. `None`: not a login failure (server starting up,
/// too many clients, …).
pub fn classify_failure(
    sqlstate: Option<&str>,
    message: &str,
    detail: &str,
) -> Option<LoginFailure> {
    let role_missing_detail = detail.starts_with("Role \"") && detail.contains("\" does not exist");
    match sqlstate {
        Some("28P01") => Some(if role_missing_detail {
            LoginFailure::NoSuchRole
        } else {
            LoginFailure::BadPassword
        }),
        Some("28000") => Some(if message.starts_with("no pg_hba.conf entry") {
            LoginFailure::NoHbaEntry
        } else if message.starts_with("pg_hba.conf rejects") {
            LoginFailure::HbaReject
        } else if message.starts_with("role \"") && message.ends_with("does not exist") {
            LoginFailure::NoSuchRole
        } else if message.contains("authentication failed for user") {
            LoginFailure::BadPassword
        } else {
            LoginFailure::Other
        }),
        Some(s) if s.starts_with("28") => Some(LoginFailure::Other),
        Some(_) => None,
        None => {
            // No SQLSTATE in this log (a stderr prefix without %e): English text only.
            if message.starts_with("password authentication failed for user") {
                Some(if role_missing_detail {
                    LoginFailure::NoSuchRole
                } else {
                    LoginFailure::BadPassword
                })
            } else if message.starts_with("no pg_hba.conf entry") {
                Some(LoginFailure::NoHbaEntry)
            } else if message.starts_with("pg_hba.conf rejects") {
                Some(LoginFailure::HbaReject)
            } else if message.starts_with("role \"") && message.ends_with("does not exist") {
                Some(LoginFailure::NoSuchRole)
            } else if message.contains("authentication failed for user") {
                Some(LoginFailure::BadPassword)
            } else if message.starts_with("the database system is")
                || message.starts_with("sorry, too many clients")
                || message.starts_with("remaining connection slots")
                || message.starts_with("terminating connection")
                || message.starts_with("canceling authentication due to timeout")
                || message.starts_with("unsupported frontend protocol")
                || message.starts_with("database \"")
                || message.starts_with("too many connections")
            {
                None
            } else {
                Some(LoginFailure::Other)
            }
        }
    }
}

/// Connections that failed before authentication began, by SQLSTATE or text.
fn is_protocol_error(sqlstate: Option<&str>, message: &str) -> bool {
    matches!(sqlstate, Some("08P01") | Some("0A000")) && !message.starts_with("could not receive")
        || message.starts_with("invalid length of startup packet")
        || message.starts_with("incomplete startup packet")
        || message.starts_with("unsupported frontend protocol")
        || message.starts_with("received unencrypted data after SSL request")
        || message.starts_with("could not accept SSL connection")
        || message.starts_with("invalid startup packet layout")
}

impl SessionJoiner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest event time seen.
    pub fn now(&self) -> EventTime {
        self.last_time
    }

    fn event(time: EventTime, kind: EventKind, s: &Session) -> Event {
        let mut e = Event::new(time, kind);
        e.client_ip = s.ip;
        e.client_host = s.host.clone();
        e.client_port = s.port;
        e.principal = s.user.clone();
        e.database = s.database.clone();
        e.application = s.application.clone();
        e.auth_method = s.auth_method.clone();
        e.pid = s.pid;
        e.session_id = s.session_id.clone();
        // A session known only from this entry started, as far as the log tells, now.
        e.attempt_start = Some(s.started);
        e.source = e.compute_source_key();
        e
    }

    fn fill_from_record(s: &mut Session, rec: &Record) {
        if s.ip.is_none() && s.host.is_none() && !rec.host.is_empty() {
            match rec.host.parse::<IpAddr>() {
                Ok(ip) => s.ip = Some(ip),
                Err(_) => s.host = Some(CompactString::new(&rec.host)),
            }
        }
        if s.port.is_none() {
            s.port = rec.port;
        }
        // Most entries repeat what the session knows: compare before building strings.
        let set = |dst: &mut Option<CompactString>, v: &str| {
            if dst.as_deref() != Some(v) {
                if let Some(v) = opt(v) {
                    *dst = Some(v);
                }
            }
        };
        // A logged-in session's role and database are what `connection authorized` said;
        // a prefix can split an odd name (`a@b`) otherwise. Its application can change.
        if !s.authorized {
            set(&mut s.user, &rec.user);
            set(&mut s.database, &rec.database);
        }
        set(&mut s.application, &rec.application);
        if s.pid.is_none() {
            s.pid = rec.pid;
        }
        if s.session_id.is_none() {
            s.session_id = opt(&rec.session_id);
        }
    }

    /// Takes one record; events it completes go to `out`.
    pub fn push(&mut self, rec: &Record, out: &mut Vec<Event>) {
        self.stats.records += 1;
        let before = out.len();
        let time = match rec.time {
            Some(t) => {
                if t > self.last_time {
                    self.last_time = t;
                }
                t
            }
            None => self.last_time,
        };
        if rec.backend_type == super::pgbouncer::BACKEND_TYPE {
            self.pooler.handle(rec, time, out);
        } else {
            self.handle(rec, time, out);
            if self.pooler.active() && out.len() > before {
                // PgBouncer's pooled connections logging in: its own log has the client's.
                let mut mine = out.split_off(before);
                mine.retain(|e| !self.pooler.is_own(e));
                out.append(&mut mine);
            }
        }
        if time - self.last_reap >= 10_000 {
            self.reap(time, out);
        }
        self.stats.events += (out.len() - before) as u64;
    }

    fn handle(&mut self, rec: &Record, time: EventTime, out: &mut Vec<Event>) {
        let msg = rec.message.as_str();
        // Most entries are statements, checkpoints and the like: nothing here for them unless
        // they end a backend or belong to a connection's life.
        let relevant = matches!(
            msg.as_bytes().first(),
            Some(b'c' | b'd' | b'r' | b'i' | b'u')
        ) || matches!(msg.as_bytes().first(), Some(b's' | b'e' | b'A'))
            || matches!(
                rec.severity,
                Severity::Fatal | Severity::Panic | Severity::Unknown | Severity::Error
            )
            || rec.sqlstate.is_some_and(|s| s[0] == b'0' && s[1] == b'8');
        if !relevant {
            return;
        }
        let key = key_of(rec);
        let sqlstate = rec.sqlstate_str();

        if let Some(rest) = msg.strip_prefix("connection received: ") {
            let mut s = Session {
                started: time,
                last_seen: time,
                ..Session::default()
            };
            let host = kv(rest, "host=", &[" "]).unwrap_or("");
            if host == "[local]" {
                s.host = Some(CompactString::const_new("[local]"));
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                s.ip = Some(ip);
            } else if !host.is_empty() {
                s.host = Some(CompactString::new(host));
            }
            s.port = kv(rest, "port=", &[" "]).and_then(|p| p.parse().ok());
            s.pid = rec.pid;
            s.session_id = opt(&rec.session_id);
            out.push(Self::event(time, EventKind::ConnectionReceived, &s));
            if let Some(k) = key {
                if let Some(old) = self.sessions.insert(k, s) {
                    // The pid was reused: the old connection ended without a word.
                    if !old.spoke {
                        out.push(Self::event(
                            old.last_seen,
                            EventKind::ProtocolError {
                                what: ProtocolErrorKind::NoStartup,
                            },
                            &old,
                        ));
                    }
                }
                if self.sessions.len() > MAX_SESSIONS {
                    self.evict_oldest();
                }
            }
            return;
        }

        // Every other entry: find (or start) its session and learn what the entry tells.
        let mut tmp = Session {
            started: time,
            ..Session::default()
        };
        let s: &mut Session = match key.and_then(|k| self.sessions.get_mut(&k)) {
            Some(s) => s,
            None => &mut tmp,
        };
        s.last_seen = time;
        Self::fill_from_record(s, rec);

        if let Some(stmt) = statement_text(msg) {
            s.last_sql = text_hash(stmt);
            let mut e = Self::event(time, EventKind::Statement, s);
            e.message = role_change(stmt);
            e.sql = Some(self.statements.get(stmt, s.last_sql));
            out.push(e);
            return;
        }
        if let Some(entry) = msg.strip_prefix("AUDIT: ") {
            let Some(a) = AuditEntry::parse(entry) else {
                return;
            };
            if (a.statement_id, a.substatement_id) == s.last_audit {
                return;
            }
            s.last_audit = (a.statement_id, a.substatement_id);
            let mut e = Self::event(time, EventKind::Statement, s);
            e.rows = a.rows;
            let h = a.statement.as_deref().map(text_hash);
            if let (Some(text), Some(h)) = (a.statement.as_deref(), h) {
                if h != s.last_sql {
                    s.last_sql = h;
                    e.message = role_change(text);
                    e.sql = Some(self.statements.get(text, h));
                }
            }
            if e.sql.is_some() || e.rows.is_some() {
                out.push(e);
            }
            return;
        }

        if let Some(rest) = msg.strip_prefix("connection authenticated: ") {
            s.spoke = true;
            if let Some(m) = kv(rest, "method=", &[" "]) {
                s.auth_method = Some(CompactString::new(m));
            }
            return;
        }
        let authorized = msg
            .strip_prefix("connection authorized: ")
            .or_else(|| msg.strip_prefix("replication connection authorized: "));
        if let Some(rest) = authorized {
            s.spoke = true;
            s.authorized = true;
            if let Some(u) = kv(
                rest,
                "user=",
                &[" database=", " application_name=", " SSL ", " GSS "],
            ) {
                s.user = opt(u);
            }
            if let Some(d) = kv(
                rest,
                " database=",
                &[" application_name=", " SSL ", " GSS "],
            ) {
                s.database = opt(d);
            }
            if let Some(a) = kv(rest, " application_name=", &[" SSL enabled (", " GSS ("]) {
                s.application = opt(a);
            }
            let ssl = rest.contains(" SSL enabled (");
            let mut e = Self::event(time, EventKind::LoginSucceeded, s);
            e.ssl = Some(ssl);
            out.push(e);
            return;
        }
        if let Some(rest) = msg.strip_prefix("disconnection: ") {
            if s.ip.is_none() && s.host.is_none() {
                if let Some(h) = kv(rest, " host=", &[" "]) {
                    match h.parse::<IpAddr>() {
                        Ok(ip) => s.ip = Some(ip),
                        Err(_) => s.host = Some(CompactString::new(h)),
                    }
                }
            }
            out.push(Self::event(time, EventKind::Disconnected, s));
            if let Some(k) = key {
                self.sessions.remove(&k);
            }
            return;
        }
        if is_protocol_error(sqlstate, msg) {
            s.spoke = true;
            let mut e = Self::event(
                time,
                EventKind::ProtocolError {
                    what: ProtocolErrorKind::InvalidStartup,
                },
                s,
            );
            e.sqlstate = sqlstate.map(CompactString::new);
            e.message = Some(model::event::truncate(msg, 200).to_string());
            out.push(e);
            if let Some(k) = key {
                self.sessions.remove(&k);
            }
            return;
        }
        let fatal = rec.severity == Severity::Fatal
            || rec.severity == Severity::Panic
            || (rec.severity == Severity::Unknown && sqlstate.is_some_and(|c| c.starts_with("28")));
        if !fatal {
            if rec.severity == Severity::Error {
                // An error inside a session: the statement-level detectors count syntax
                // errors (SQL injection probing leaves a trail of them).
                let mut e = Self::event(time, EventKind::Error, s);
                e.sqlstate = sqlstate
                    .or_else(|| error_class(msg))
                    .map(CompactString::new);
                e.message = Some(model::event::truncate(msg, 200).to_string());
                if !rec.statement.is_empty() {
                    let h = text_hash(&rec.statement);
                    if h != s.last_sql {
                        s.last_sql = h;
                        e.sql = Some(self.statements.get(&rec.statement, h));
                    }
                }
                out.push(e);
            }
            return;
        }
        s.spoke = true;
        let was_authorized = s.authorized;
        let kind = if was_authorized {
            EventKind::Error
        } else {
            match classify_failure(sqlstate, msg, &rec.detail) {
                Some(reason) => EventKind::LoginFailed { reason },
                None => EventKind::Error,
            }
        };
        if matches!(kind, EventKind::LoginFailed { .. }) {
            if s.user.is_none() {
                s.user = quoted(msg, "user \"")
                    .or_else(|| quoted(msg, "role \""))
                    .and_then(opt);
            }
            if s.database.is_none() {
                s.database = quoted(msg, "database \"").and_then(opt);
            }
            if s.ip.is_none() && s.host.is_none() {
                if let Some(h) = quoted(msg, "host \"") {
                    if let Ok(ip) = h.parse::<IpAddr>() {
                        s.ip = Some(ip);
                    }
                }
            }
        }
        let mut e = Self::event(time, kind, s);
        e.sqlstate = sqlstate.map(CompactString::new);
        e.message = Some(model::event::truncate(msg, 200).to_string());
        out.push(e);
        // A FATAL ends the backend.
        if let Some(k) = key {
            self.sessions.remove(&k);
        }
    }

    fn evict_oldest(&mut self) {
        let mut ages: Vec<EventTime> = self.sessions.values().map(|s| s.last_seen).collect();
        let cut = ages.len() / 10;
        ages.select_nth_unstable(cut);
        let limit = ages[cut];
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.last_seen > limit);
        self.stats.evicted += (before - self.sessions.len()) as u64;
    }

    /// Connections that never said anything past `connection received` are bare TCP connects.
    pub fn reap(&mut self, now: EventTime, out: &mut Vec<Event>) {
        self.last_reap = now;
        self.pooler.reap(now);
        let mut dead = Vec::new();
        self.sessions.retain(|_, s| {
            if !s.spoke && now - s.started > STARTUP_TIMEOUT_MS {
                dead.push(s.clone());
                false
            } else {
                true
            }
        });
        dead.sort_by_key(|s| s.started);
        for s in dead {
            out.push(Self::event(
                s.started,
                EventKind::ProtocolError {
                    what: ProtocolErrorKind::NoStartup,
                },
                &s,
            ));
        }
    }

    /// End of input (`analyze`): every connection still waiting for its startup packet is
    /// decided now, as if the timeout had passed.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let now = self.last_time + STARTUP_TIMEOUT_MS + 1;
        self.reap(now, out);
    }
}

/// The statement of a `log_statement` entry (`statement: …`, `execute <name>: …`) or of a
/// `log_min_duration_statement` entry (`duration: 1.2 ms  statement: …`).
fn statement_text(msg: &str) -> Option<&str> {
    let msg = match msg.strip_prefix("duration: ") {
        Some(rest) => rest.split_once(" ms  ")?.1,
        None => msg,
    };
    if let Some(s) = msg.strip_prefix("statement: ") {
        return Some(s);
    }
    let rest = msg.strip_prefix("execute ")?;
    // `execute <unnamed>: …`, `execute S_1: …`, `execute fetch from …`: the name has no blank.
    let (name, sql) = rest.split_once(": ")?;
    (!name.contains(' ')).then_some(sql)
}

/// The SQLSTATE of an error whose log line has none (no `%e` in the prefix), for the errors
/// the statement detectors count; English message text only.
fn error_class(msg: &str) -> Option<&'static str> {
    // `… at character 134`: where in the statement, not part of the message.
    let msg = match msg.rfind(" at character ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg.starts_with("ORDER BY position ") {
        Some("42P10")
    } else if msg.starts_with("UNION types ") || msg.starts_with("argument of ") {
        Some("42804")
    } else if msg.starts_with("operator does not exist") {
        Some("42883")
    } else if msg.starts_with("syntax error at") || msg.starts_with("unterminated quoted") {
        Some("42601")
    } else if msg.starts_with("invalid input syntax") {
        Some("22P02")
    } else if msg.starts_with("column ") && msg.ends_with(" does not exist") {
        Some("42703")
    } else if msg.starts_with("relation ") && msg.ends_with(" does not exist") {
        Some("42P01")
    } else if msg.starts_with("function ") && msg.ends_with(" does not exist") {
        Some("42883")
    } else if msg.starts_with("permission denied") || msg.starts_with("must be superuser") {
        Some("42501")
    } else {
        None
    }
}

/// `CREATE ROLE|USER name …`, or `ALTER ROLE|USER name …` that enables logins (LOGIN,
/// PASSWORD), as "CREATE ROLE name" / "ALTER ROLE name"; nothing else of the statement is
/// kept, as it may hold a password.
pub fn role_change(stmt: &str) -> Option<String> {
    let mut words = stmt
        .trim_start()
        .splitn(4, |c: char| c.is_ascii_whitespace());
    let verb = words.next()?;
    let verb = if verb.eq_ignore_ascii_case("create") {
        "CREATE"
    } else if verb.eq_ignore_ascii_case("alter") {
        "ALTER"
    } else {
        return None;
    };
    let what = words.next()?;
    if !(what.eq_ignore_ascii_case("role") || what.eq_ignore_ascii_case("user")) {
        return None;
    }
    let name_and_rest = stmt.trim_start()[verb.len()..].trim_start()[what.len()..].trim_start();
    let (name, rest) = if let Some(q) = name_and_rest.strip_prefix('"') {
        // A quoted name: "" inside stands for one quote.
        let mut name = String::new();
        let mut chars = q.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|(_, c)| *c) == Some('"') {
                    name.push('"');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        (name, &q[end?..])
    } else {
        let end = name_and_rest
            .find(|c: char| c.is_ascii_whitespace() || c == ';')
            .unwrap_or(name_and_rest.len());
        (name_and_rest[..end].to_lowercase(), &name_and_rest[end..])
    };
    if name.is_empty() || name.len() > 63 {
        return None;
    }
    if verb == "ALTER" {
        let upper = rest.to_ascii_uppercase();
        let enables = upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "LOGIN" || w == "PASSWORD");
        if !enables || upper.contains("NOLOGIN") && !upper.contains("PASSWORD") {
            return None;
        }
    }
    Some(format!("{verb} ROLE {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_changes_keep_verb_and_name_only() {
        let r = role_change;
        assert_eq!(
            r("CREATE ROLE dave LOGIN PASSWORD 'secret'").as_deref(),
            Some("CREATE ROLE dave")
        );
        assert_eq!(
            r("create user Reports;").as_deref(),
            Some("CREATE ROLE reports")
        );
        assert_eq!(
            r("CREATE ROLE \"Odd \"\"Name\"\"\" WITH LOGIN").as_deref(),
            Some("CREATE ROLE Odd \"Name\"")
        );
        assert_eq!(
            r("ALTER ROLE old_backup WITH LOGIN").as_deref(),
            Some("ALTER ROLE old_backup")
        );
        assert_eq!(
            r("alter user app password 'x'").as_deref(),
            Some("ALTER ROLE app")
        );
        assert_eq!(r("ALTER ROLE app NOLOGIN"), None);
        assert_eq!(r("ALTER ROLE app SET search_path = x"), None);
        assert_eq!(r("CREATE TABLE role (x int)"), None);
        assert_eq!(r("SELECT 1"), None);
        assert_eq!(r("CREATE ROLE \"unterminated"), None);
    }

    #[test]
    fn classification_by_sqlstate_and_detail() {
        use LoginFailure::*;
        let c = classify_failure;
        assert_eq!(
            c(Some("28P01"), "x", "Connection matched pg_hba.conf line 3"),
            Some(BadPassword)
        );
        assert_eq!(
            c(
                Some("28P01"),
                "x",
                "Role \"nosuch\" does not exist.\nConnection matched"
            ),
            Some(NoSuchRole)
        );
        // German lc_messages: the text is not English, the SQLSTATE still tells.
        assert_eq!(
            c(
                Some("28P01"),
                "Passwort-Authentifizierung für Benutzer »app« fehlgeschlagen",
                ""
            ),
            Some(BadPassword)
        );
        assert_eq!(
            c(
                Some("28000"),
                "no pg_hba.conf entry for host \"1.2.3.4\"",
                ""
            ),
            Some(NoHbaEntry)
        );
        assert_eq!(
            c(Some("28000"), "pg_hba.conf rejects connection for host", ""),
            Some(HbaReject)
        );
        assert_eq!(
            c(Some("28000"), "role \"x\" does not exist", ""),
            Some(NoSuchRole)
        );
        assert_eq!(
            c(Some("57P03"), "the database system is starting up", ""),
            None
        );
        assert_eq!(
            c(None, "password authentication failed for user \"a\"", ""),
            Some(BadPassword)
        );
        assert_eq!(c(None, "the database system is starting up", ""), None);
    }
}
