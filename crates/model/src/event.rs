//! The normalised event: what every source (log parser, later the proxy) turns its input into.
//!
//! Events carry their own time ([`EventTime`]); nothing downstream reads the wall clock, so
//! `analyze` over old logs raises the same alerts as `run` did live.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Milliseconds since the Unix epoch, UTC, as written by the server in its log.
pub type EventTime = i64;

/// Formats an event time as RFC 3339 UTC with milliseconds.
pub fn format_time(t: EventTime) -> String {
    // By hand: alerts carry several times each and chrono's formatter is slow.
    let ms = t.rem_euclid(1000);
    let secs = t.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Logins in one hour (event time) of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginHour {
    /// The hour's start, in milliseconds since the epoch.
    pub hour: EventTime,
    pub failed: u64,
    pub succeeded: u64,
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_statement_seen_lately_is_shared_with_its_tokens_and_never_confused() {
        use super::{text_hash, SqlCache};
        let mut c = SqlCache::default();
        let mut get = |t: &str| c.get(t, text_hash(t));
        let a = get("SELECT * FROM t WHERE id = $1");
        assert_eq!(a.tokens().len(), 8);
        let again = get("  SELECT * FROM t WHERE id = $1\n");
        assert!(std::sync::Arc::ptr_eq(&a, &again), "lexed again");
        // Many more statements than slots: each one is its own text, whatever slot it takes.
        for k in 0..(3 * SqlCache::SLOTS) {
            let text = format!("SELECT {k}");
            assert_eq!(&*get(&text).text, text);
        }
        let long = format!("SELECT '{}'", "x".repeat(SqlCache::MAX_TEXT));
        assert_eq!(&*get(&long).text, long);
        assert!(!std::sync::Arc::ptr_eq(&get(&long), &get(&long)), "kept");
    }
    #[test]
    fn source_keys() {
        use super::*;
        let mut e = Event::new(0, EventKind::ConnectionReceived);
        for ip in [
            "10.0.0.1",
            "203.0.113.255",
            "0.0.0.0",
            "192.168.100.7",
            "::1",
            "2001:db8::7",
        ] {
            e.client_ip = Some(ip.parse().unwrap());
            assert_eq!(e.compute_source_key(), ip);
        }
        e.client_ip = None;
        assert_eq!(e.compute_source_key(), "[local]");
    }

    #[test]
    fn format_time_matches_chrono() {
        for t in [
            0i64,
            1_795_861_421_475,
            951_782_400_000,
            4_102_444_799_999,
            1_709_164_800_123,
        ] {
            let c = chrono::DateTime::from_timestamp_millis(t)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(super::format_time(t), c);
        }
    }
}

/// Why a login failed. Classified from SQLSTATE and DETAIL where the log has them, so that a
/// server with non-English `lc_messages` is still understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoginFailure {
    /// The role exists (or might) and the credential was wrong (28P01).
    BadPassword,
    /// The role does not exist: DETAIL `Role "x" does not exist.` or FATAL `role "x" does not exist`.
    NoSuchRole,
    /// `no pg_hba.conf entry for host …` (28000).
    NoHbaEntry,
    /// `pg_hba.conf rejects connection …` (28000).
    HbaReject,
    /// Any other failure before the session was authorised.
    Other,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    ConnectionReceived,
    LoginSucceeded,
    LoginFailed {
        reason: LoginFailure,
    },
    Disconnected,
    /// The connection never reached authentication: garbage or no startup packet.
    ProtocolError {
        what: ProtocolErrorKind,
    },
    /// A FATAL or ERROR inside an authorised session.
    Error,
    /// A statement of interest, from `log_statement`: for now the role changes
    /// (`CREATE ROLE x`, `ALTER ROLE x … LOGIN/PASSWORD`), reduced to verb and role in
    /// `message` (the text may hold a password).
    Statement,
    /// A cancel request at the proxy (`pid` the backend it names); `message` says whether its
    /// key was a session's (passed on) or matched none (a guess: not passed on).
    CancelRequest,
}

/// The ways a connection can fail before authentication starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProtocolErrorKind {
    /// `invalid length of startup packet`, `incomplete startup packet`, `unsupported frontend
    /// protocol`, SSL handshake failures: something that is not a PostgreSQL client spoke.
    InvalidStartup,
    /// `connection received` and then nothing: a bare TCP connect (port scan, health check,
    /// or an attack tool's connectivity check).
    NoStartup,
}

/// One normalised event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: EventTime,
    pub kind: EventKind,
    /// Client address as the server logged it; `None` for unix-socket connections.
    pub client_ip: Option<IpAddr>,
    /// The client's host name when `log_hostname` is on, or `[local]` for a unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_host: Option<CompactString>,
    pub client_port: Option<u16>,
    pub principal: Option<CompactString>,
    pub database: Option<CompactString>,
    pub application: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<CompactString>,
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<CompactString>,
    /// The server's message, for failures and errors (kept short; evidence, not payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// [`Event::source_key`], computed once by the source (every detector asks for it).
    #[serde(skip)]
    pub source: CompactString,
    /// What is known about the client address (logins only; set by the pipeline).
    #[serde(skip)]
    pub enrichment: Option<std::sync::Arc<crate::place::Enrichment>>,
    /// Registrable domain of the client's reverse DNS (successful logins, when
    /// `[enrich.reverse_dns]` is on; set by the pipeline).
    #[serde(skip)]
    pub domain: Option<CompactString>,
    /// The statement's text (statement logs, pgaudit, an error's STATEMENT). Never
    /// serialised: it may hold data and passwords; evidence shows it redacted.
    #[serde(skip)]
    pub sql: Option<std::sync::Arc<Sql>>,
    /// The client family the proxy recognised from its startup packet (`psql`, `ncrack`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<CompactString>,
    /// Rows the statement read or wrote (pgaudit with `pgaudit.log_rows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// How long the client took, in all, to answer the server's authentication requests, in
    /// microseconds (the proxy's measure; part of the fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth_us: Option<u32>,
    /// When the client's connection for a login arrived (`connection received`, or the
    /// proxy's accept), if known: how soon a client tried again after a failure is measured
    /// to the start of its next attempt, not to the server's answer, which `auth_delay` or a
    /// slow server pushes back.
    #[serde(skip)]
    pub attempt_start: Option<EventTime>,
}

/// Statements longer than this are cut for inspection: the rules look at a statement's shape,
/// and a client must not make pgvigil hold megabytes per event.
pub const MAX_SQL_BYTES: usize = 256 * 1024;

/// A statement's text, lexed once on first use (several detectors read its tokens).
#[derive(Debug)]
pub struct Sql {
    pub text: Box<str>,
    tokens: std::sync::OnceLock<Vec<crate::sql::Token>>,
    /// `None` when the text runs nothing more than its own tokens (no `DO` block).
    executed: std::sync::OnceLock<Option<Vec<crate::sql::Token>>>,
}

impl Sql {
    pub fn new(text: &str) -> std::sync::Arc<Sql> {
        std::sync::Arc::new(Sql {
            text: truncate(text.trim(), MAX_SQL_BYTES).into(),
            tokens: std::sync::OnceLock::new(),
            executed: std::sync::OnceLock::new(),
        })
    }

    pub fn tokens(&self) -> &[crate::sql::Token] {
        self.tokens.get_or_init(|| crate::sql::tokens(&self.text))
    }

    /// The tokens with those of `DO` blocks and the statements they build
    /// ([`crate::sql::dynamic_tokens`]), for the rules about what was run.
    pub fn executed_tokens(&self) -> &[crate::sql::Token] {
        self.executed
            .get_or_init(|| {
                let extra = crate::sql::dynamic_tokens(self.tokens());
                (!extra.is_empty()).then(|| [self.tokens(), &extra].concat())
            })
            .as_deref()
            .unwrap_or_else(|| self.tokens())
    }

    /// The statement with literals replaced by `?`, cut to `max` bytes, for evidence.
    pub fn redacted(&self, max: usize) -> String {
        let r = crate::sql::redacted(&self.text);
        if r.len() > max {
            format!("{}…", truncate(&r, max))
        } else {
            r
        }
    }
}

/// A statement's hash, spaces around it aside: the joiner's test for a statement logged twice,
/// and the statement cache's slot.
pub fn text_hash(s: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(s.trim())
}

/// Statements seen lately, by text: an application runs the same few statements over and
/// over (prepared statements are logged with `$1`, pgaudit logs their text alone), and each
/// is lexed once rather than on every run. Direct-mapped and bounded: a slot holds the last
/// statement whose text hashed to it, and only short statements are kept.
#[derive(Debug)]
pub struct SqlCache {
    slots: Vec<Option<std::sync::Arc<Sql>>>,
}

impl Default for SqlCache {
    fn default() -> Self {
        SqlCache {
            slots: vec![None; SqlCache::SLOTS],
        }
    }
}

impl SqlCache {
    const SLOTS: usize = 1024;
    /// Longer statements are not kept. A token takes about 48 bytes for 4 of text, so the
    /// cache holds at most SLOTS × 13 KiB (13 MiB), and a few hundred KiB for an
    /// application's usual statements.
    const MAX_TEXT: usize = 1024;

    /// The statement of `text`, shared with its earlier runs (and their tokens) when seen
    /// lately. `hash` is [`text_hash`] of `text`, which the caller has already worked out.
    pub fn get(&mut self, text: &str, hash: u64) -> std::sync::Arc<Sql> {
        let t = text.trim();
        if t.len() > Self::MAX_TEXT {
            return Sql::new(t);
        }
        let h = hash;
        let slot = &mut self.slots[(h as usize) % Self::SLOTS];
        match slot {
            Some(s) if &*s.text == t => s.clone(),
            _ => {
                let s = Sql::new(t);
                *slot = Some(s.clone());
                s
            }
        }
    }
}

impl PartialEq for Sql {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Event {
    pub fn new(time: EventTime, kind: EventKind) -> Self {
        Event {
            time,
            kind,
            client_ip: None,
            client_host: None,
            client_port: None,
            principal: None,
            database: None,
            application: None,
            auth_method: None,
            ssl: None,
            session_id: None,
            pid: None,
            sqlstate: None,
            message: None,
            source: CompactString::default(),
            enrichment: None,
            domain: None,
            sql: None,
            fingerprint: None,
            rows: None,
            client_auth_us: None,
            attempt_start: None,
        }
    }

    /// The key detectors group a source by: the IP address, else the host name, else `local`.
    pub fn source_key(&self) -> CompactString {
        if !self.source.is_empty() {
            return self.source.clone();
        }
        self.compute_source_key()
    }

    pub fn compute_source_key(&self) -> CompactString {
        match self.client_ip {
            Some(IpAddr::V4(v4)) => {
                // Formatted by hand: this runs for every event, and fmt is slow at it.
                let mut b = [0u8; 15];
                let mut n = 0;
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        b[n] = b'.';
                        n += 1;
                    }
                    if o >= 100 {
                        b[n] = b'0' + o / 100;
                        n += 1;
                    }
                    if o >= 10 {
                        b[n] = b'0' + o / 10 % 10;
                        n += 1;
                    }
                    b[n] = b'0' + o % 10;
                    n += 1;
                }
                return CompactString::from_utf8(&b[..n]).unwrap_or_default();
            }
            Some(ip) => return compact_str::format_compact!("{ip}"),
            None => {}
        }
        match &self.client_host {
            Some(h) => h.clone(),
            None => CompactString::const_new("[local]"),
        }
    }
}
