//! PgBouncer's log: its own `logfile`
//! (`2026-12-02 05:15:23.254 UTC [29196] ERROR C-0x5627fe4196b0: shop/alice@203.0.113.7:54490 password authentication failed`)
//! or its syslog lines (`Dec  2 05:16:58 db1 pgbouncer[29506]: C-0x…: shop/alice@…`).
//!
//! With PgBouncer in front, PostgreSQL checks no client's password: PgBouncer does (`auth_file`
//! or `auth_query`), and PostgreSQL's log sees only PgBouncer's own pooled connections, from
//! PgBouncer's address. A client's real address and its failed logins are in this log alone.
//!
//! Two things make it unlike PostgreSQL's log:
//! - PgBouncer writes no line when a login succeeds, and none when a client gives up during
//!   authentication (psql does, every time, before it prompts for a password). A client that
//!   got past authentication is known by how it ends (`closing because: client close
//!   request`), so a success is reported when its connection closes.
//! - The `db/user@address:port` before each message holds the names the client sent, as they
//!   are: a name may hold `@203.0.113.9:5 password authentication failed` or a line break.
//!   The address is taken only where the line's own structure confirms it (see
//!   [`PgbouncerParser::locate`]), never from the first `@` that looks like one.

use super::stderr::{excerpt, syslog_header};
use super::timestamp::{self, TimeCache};
use super::{LogParser, Malformed, Record, RecordSink, Severity};
use compact_str::CompactString;
use model::event::{Event, EventKind, EventTime, LoginFailure};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `backend_type` of the records this parser makes: the joiner hands them to [`PoolerJoin`].
pub const BACKEND_TYPE: &str = "pgbouncer";

/// Clients whose address the parser remembers (the lines of one connection come close
/// together; a pointer PgBouncer reuses replaces its entry).
const MAX_ANCHORS: usize = 50_000;

/// What the header of a line gave: its time, the process, the level word and the message.
struct Header<'a> {
    time: Option<EventTime>,
    pid: Option<u32>,
    severity: Severity,
    body: &'a str,
}

/// `2026-12-02 05:15:23.254 UTC [29196] LOG body` (PgBouncer ≥ 1.9; older versions write the
/// pid without brackets).
fn file_header<'a>(s: &'a str, times: &TimeCache) -> Option<Header<'a>> {
    let n = timestamp::datetime_len(s.as_bytes())?;
    let mut rest = s.get(n..)?.strip_prefix(' ')?;
    // The zone, unless the next word is already the pid.
    let mut ts_end = n;
    if !rest.starts_with('[') && !rest.starts_with(|c: char| c.is_ascii_digit()) {
        let (zone, r) = rest.split_once(' ')?;
        ts_end = n + 1 + zone.len();
        rest = r;
    }
    let (pid, r) = rest.split_once(' ')?;
    let pid = pid
        .strip_prefix('[')
        .and_then(|p| p.strip_suffix(']'))
        .unwrap_or(pid);
    let pid: u32 = pid.parse().ok()?;
    let (level, body) = r.split_once(' ')?;
    let severity = match level {
        "LOG" => Severity::Log,
        "ERROR" => Severity::Error,
        "WARNING" => Severity::Warning,
        "FATAL" => Severity::Fatal,
        "NOISE" | "DEBUG" => Severity::Debug,
        _ => return None,
    };
    Some(Header {
        time: times.parse(&s[..ts_end]).map(|p| p.time),
        pid: Some(pid),
        severity,
        body,
    })
}

/// Whether a line is PgBouncer's, in either form (format detection).
pub fn is_pgbouncer_line(line: &[u8]) -> bool {
    let s = String::from_utf8_lossy(line);
    if file_header(&s, &TimeCache::default()).is_some() {
        return true;
    }
    syslog_header(&s, 1970).is_some_and(|h| h.prog.ends_with("pgbouncer"))
}

/// A client's (or server connection's) address as PgBouncer prints it: `203.0.113.7:5432`,
/// `[2001:db8::7]:5432`, `unix(1234):6432` (a unix-socket client, `None`).
fn address(s: &str) -> Option<(Option<IpAddr>, u16)> {
    if let Some(r) = s.strip_prefix("unix") {
        let (_, port) = r.rsplit_once(':')?;
        return Some((None, port.parse().ok()?));
    }
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((Some(host.parse().ok()?), port.parse().ok()?))
}

/// One possible end of the `db/user` part: the `@` at `at`, the address after it, and the
/// message after the address.
#[derive(Clone, Copy)]
struct Split<'a> {
    names: &'a str,
    addr_text: &'a str,
    ip: Option<IpAddr>,
    port: u16,
    msg: &'a str,
}

fn splits(rest: &str) -> impl Iterator<Item = Split<'_>> {
    memchr::memchr_iter(b'@', rest.as_bytes()).filter_map(move |at| {
        let after = &rest[at + 1..];
        let sp = after.find(' ')?;
        let addr_text = &after[..sp];
        let (ip, port) = address(addr_text)?;
        Some(Split {
            names: &rest[..at],
            addr_text,
            ip,
            port,
            msg: &after[sp + 1..],
        })
    })
}

/// The (database, user) a `db=D user=U` pair names, where `names` (the `db/user` before the
/// address) agrees with it: PgBouncer prints the same two names in both places, or
/// `(nodb)`/`(nouser)` before it knows them. Tried at every ` user=`, since names may hold
/// one.
fn agreeing<'a>(names: &str, pair: &'a str) -> Option<(&'a str, &'a str)> {
    let mut from = 0;
    while let Some(i) = pair[from..].find(" user=") {
        let k = from + i;
        let (d, u) = (&pair[..k], &pair[k + 6..]);
        let ok = |db: &str, user: &str| {
            names.len() == db.len() + 1 + user.len()
                && names.starts_with(db)
                && names.ends_with(user)
                && names.as_bytes()[db.len()] == b'/'
        };
        if ok(d, u) || ok("(nodb)", u) || ok(d, "(nouser)") {
            return Some((d, u));
        }
        from = k + 1;
    }
    None
}

/// The names a line confirms by its own structure, if it is one of the lines that open a
/// client's story: `login attempt: db=D user=U tls=T`, `login failed: db=D user=U`,
/// `no such user: U` and `registered new auto-database: db=D` (both before PgBouncer knows
/// any name, so after `(nodb)/(nouser)`).
fn confirmed<'a>(sp: &Split<'a>) -> Option<(Option<&'a str>, Option<&'a str>)> {
    for verb in ["login attempt: db=", "login failed: db="] {
        if let Some(pair) = sp.msg.strip_prefix(verb) {
            // ` tls=no`, ` tls=TLSv1.3/…`: one word PgBouncer writes (absent before 1.12).
            let pair = match pair.rsplit_once(" tls=") {
                Some((p, tls)) if !tls.contains(' ') => p,
                _ => pair,
            };
            let (d, u) = agreeing(sp.names, pair)?;
            return Some((Some(d), Some(u)));
        }
    }
    if sp.names == "(nodb)/(nouser)" {
        if let Some(u) = sp.msg.strip_prefix("no such user: ") {
            return Some((None, Some(u)));
        }
        if let Some(d) = sp.msg.strip_prefix("registered new auto-database: db=") {
            return Some((Some(d), None));
        }
    }
    None
}

/// What the parser remembers of a client between its lines: the address its opening line
/// confirmed, and the names.
#[derive(Debug, Clone, Default)]
struct Anchor {
    addr: String,
    database: String,
    user: String,
}

/// Parses PgBouncer's log into [`Record`]s: `session_id` is PgBouncer's `C-0x…` (client) or
/// `S-0x…` (server connection), `host`/`port` the client's address (for a server connection,
/// the local address it was opened from), `message` what follows the address.
pub struct PgbouncerParser {
    line: u64,
    year: i32,
    times: TimeCache,
    /// The entry held back for its continuation lines (a name with a line break, which
    /// PgBouncer continues on a tab-indented line, as PostgreSQL does).
    pending: String,
    pending_line: u64,
    has_pending: bool,
    held_bytes: u64,
    held_lines: u64,
    rec: Record,
    anchors: FxHashMap<String, Anchor>,
}

impl PgbouncerParser {
    pub fn new(year: i32) -> Self {
        PgbouncerParser {
            line: 1,
            year,
            times: TimeCache::default(),
            pending: String::new(),
            pending_line: 0,
            has_pending: false,
            held_bytes: 0,
            held_lines: 0,
            rec: Record::default(),
            anchors: FxHashMap::default(),
        }
    }

    fn header<'a>(&self, s: &'a str) -> Option<Header<'a>> {
        if let Some(h) = file_header(s, &self.times) {
            return Some(h);
        }
        let h = syslog_header(s, self.year)?;
        // Syslog carries the level in its priority, which a file does not keep.
        let severity = if h.rest.ends_with(" password authentication failed") {
            Severity::Error
        } else {
            Severity::Log
        };
        Some(Header {
            time: h.time,
            pid: Some(h.pid),
            severity,
            body: h.rest,
        })
    }

    /// The address of a client line. A client's opening line confirms its address by its
    /// structure ([`confirmed`]); its later lines are matched to that address. A line of a
    /// client whose opening line was not read takes the first split whose message is one of
    /// PgBouncer's own that carries no name (`password authentication failed`, `closing
    /// because: … (age=…)`, `pooler error: …`).
    fn locate<'a>(&mut self, ptr: &str, rest: &'a str) -> Option<(Split<'a>, Anchor)> {
        for sp in splits(rest) {
            if let Some((d, u)) = confirmed(&sp) {
                let a = self.anchors.entry(ptr.to_string()).or_default();
                if a.addr != sp.addr_text {
                    *a = Anchor {
                        addr: sp.addr_text.to_string(),
                        ..Anchor::default()
                    };
                }
                if let Some(d) = d {
                    a.database = d.to_string();
                }
                if let Some(u) = u {
                    a.user = u.to_string();
                }
                let a = a.clone();
                if self.anchors.len() > MAX_ANCHORS {
                    self.anchors.clear();
                }
                return Some((sp, a));
            }
        }
        if let Some(a) = self.anchors.get(ptr) {
            if let Some(sp) = splits(rest).find(|sp| sp.addr_text == a.addr) {
                return Some((sp, a.clone()));
            }
        }
        let sp = splits(rest).find(|sp| {
            sp.msg == "password authentication failed"
                || (sp.msg.starts_with("closing because: ") && sp.msg.ends_with("s)"))
                || sp.msg.starts_with("pooler error: ")
        })?;
        Some((sp, Anchor::default()))
    }

    /// Turns one whole entry into a record. False when it is not a PgBouncer line.
    fn parse(&mut self, s: &str, line: u64, sink: &mut dyn RecordSink) -> bool {
        let Some(h) = self.header(s) else {
            return false;
        };
        let mut rec = std::mem::take(&mut self.rec);
        rec.clear();
        rec.line = line;
        rec.time = h.time;
        rec.pid = h.pid;
        rec.severity = h.severity;
        rec.backend_type.push_str(BACKEND_TYPE);
        let body = h.body;
        let client = body
            .split_once(": ")
            .filter(|(p, _)| (p.starts_with("C-") || p.starts_with("S-")) && !p.contains(' '));
        match client {
            Some((ptr, rest)) if ptr.starts_with("S-") => {
                rec.session_id.push_str(ptr);
                // `S-0x…: db/user@server:port new connection to server (from 10.0.0.5:40472)`:
                // the address at the end is the one PostgreSQL sees.
                match rest.rsplit_once(" (from ") {
                    Some((head, from)) if from.ends_with(')') => {
                        if let Some((ip, port)) = address(&from[..from.len() - 1]) {
                            match ip {
                                Some(ip) => rec.host.push_str(&ip.to_string()),
                                None => rec.host.push_str("[local]"),
                            }
                            rec.port = Some(port);
                        }
                        // The pool's role, for a unix-socket server connection.
                        if let Some(sp) = splits(head).last() {
                            if let Some((_, user)) = sp.names.split_once('/') {
                                rec.user.push_str(user);
                            }
                            rec.message.push_str(sp.msg);
                        }
                    }
                    _ => rec.message.push_str(rest),
                }
            }
            Some((ptr, rest)) => {
                rec.session_id.push_str(ptr);
                match self.locate(ptr, rest) {
                    Some((sp, a)) => {
                        match sp.ip {
                            Some(ip) => rec.host.push_str(&ip.to_string()),
                            None => rec.host.push_str("[local]"),
                        }
                        rec.port = Some(sp.port);
                        rec.user.push_str(&a.user);
                        rec.database.push_str(&a.database);
                        rec.message.push_str(sp.msg);
                    }
                    None => rec.message.push_str(rest),
                }
            }
            None => rec.message.push_str(body),
        }
        sink.record(&rec);
        self.rec = rec;
        true
    }

    fn emit(&mut self, sink: &mut dyn RecordSink) {
        if !self.has_pending {
            return;
        }
        self.has_pending = false;
        let text = std::mem::take(&mut self.pending);
        if !self.parse(&text, self.pending_line, sink) {
            sink.malformed(Malformed {
                line: self.pending_line,
                reason: format!("not a PgBouncer log line: {}", excerpt(&text)),
            });
        }
        self.pending = text;
        self.pending.clear();
    }
}

impl LogParser for PgbouncerParser {
    fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) -> usize {
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &data[start..]) {
            let end = start + nl;
            let raw = &data[start..end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let text = String::from_utf8_lossy(raw);
            let consumed = (end + 1 - start) as u64;
            if let Some(cont) = text.strip_prefix('\t').filter(|_| self.has_pending) {
                self.pending.push('\n');
                self.pending.push_str(cont);
                self.held_bytes += consumed;
                self.held_lines += 1;
            } else if text.is_empty() {
                if !self.has_pending {
                    (self.held_bytes, self.held_lines) = (0, 0);
                } else {
                    self.held_bytes += consumed;
                    self.held_lines += 1;
                }
            } else {
                self.emit(sink);
                self.pending.push_str(&text);
                self.pending_line = self.line;
                self.has_pending = true;
                (self.held_bytes, self.held_lines) = (consumed, 1);
            }
            self.line += 1;
            start = end + 1;
        }
        start
    }

    fn flush(&mut self, sink: &mut dyn RecordSink) {
        self.emit(sink);
        (self.held_bytes, self.held_lines) = (0, 0);
    }

    fn held(&self) -> (u64, u64) {
        (self.held_bytes, self.held_lines)
    }

    fn line(&self) -> u64 {
        self.line
    }

    fn set_line(&mut self, line: u64) {
        self.line = line;
    }
}

/// A client between its lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Client {
    started: EventTime,
    ip: Option<IpAddr>,
    port: Option<u16>,
    user: Option<CompactString>,
    database: Option<CompactString>,
    ssl: Option<bool>,
    /// `no such user: …` came first: the failure that follows is for a role PgBouncer does not
    /// know.
    no_such_user: bool,
    /// The login's outcome was reported.
    decided: bool,
}

/// The addresses PgBouncer opens its server connections from are learnt from its log, and
/// this many kept.
const MAX_OWN: usize = 64;
/// Clients followed at once; a client that gave up during authentication leaves no line, so
/// entries also expire ([`PoolerJoin::reap`]).
const MAX_CLIENTS: usize = 100_000;
const CLIENT_TTL_MS: EventTime = 24 * 3_600_000;

/// Turns PgBouncer's records into login events, and knows PgBouncer's own connections to
/// PostgreSQL so that the server's log does not count them as logins a second time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolerJoin {
    clients: FxHashMap<CompactString, Client>,
    /// Addresses PgBouncer connects to PostgreSQL from (`new connection to server (from …)`).
    own: Vec<IpAddr>,
    /// Roles PgBouncer logs in as over a unix socket (PostgreSQL logs those as `[local]`).
    own_local_roles: Vec<CompactString>,
}

fn opt(s: &str) -> Option<CompactString> {
    (!s.is_empty()).then(|| CompactString::new(s))
}

/// A closing reason that only a client past authentication can have.
fn logged_in_reason(r: &str) -> bool {
    [
        "client close request",
        "client unexpected eof",
        "client_idle_timeout",
        "idle transaction timeout",
        "idle_transaction_timeout",
        "query_timeout",
        "query_wait_timeout",
        "transaction_timeout",
        "client disconnect while server was not ready",
        "client disconnect before everything was sent to the server",
        "server conn crashed?",
        "database configuration changed",
        "database removed",
    ]
    .iter()
    .any(|p| r.starts_with(p))
}

/// PgBouncer checked the password, then the server refused what the client asked for
/// (`database "x" does not exist`): the password was right, as PostgreSQL's own `connection
/// authorized` before such a FATAL says.
fn refused_after_login(r: &str) -> bool {
    r.starts_with("database \"") && r.contains("\" does not exist")
}

/// The failed authentication a closing reason or an error names. Only the start of the text
/// is read: what follows may be a name the client chose.
fn failure_of(r: &str) -> Option<LoginFailure> {
    const BAD_CREDENTIAL: [&str; 6] = [
        "password authentication failed",
        "SASL authentication failed",
        "auth failed",
        "PAM authentication failed",
        "cert authentication failed",
        "peer authentication failed",
    ];
    if BAD_CREDENTIAL.iter().any(|p| r.starts_with(p)) {
        Some(LoginFailure::BadPassword)
    } else if r.starts_with("no such user") {
        Some(LoginFailure::NoSuchRole)
    } else if r.starts_with("pg_hba.conf rejects") {
        Some(LoginFailure::HbaReject)
    } else if r.starts_with("no pg_hba.conf entry") {
        Some(LoginFailure::NoHbaEntry)
    } else {
        None
    }
}

impl PoolerJoin {
    /// Whether PgBouncer's own connections are known (the server's log is then filtered).
    pub fn active(&self) -> bool {
        !self.own.is_empty() || !self.own_local_roles.is_empty()
    }

    /// Learns an address PgBouncer connects to PostgreSQL from.
    pub fn learn(&mut self, ip: Option<IpAddr>, role: &str) {
        match ip {
            Some(ip) => {
                if !self.own.contains(&ip) && self.own.len() < MAX_OWN {
                    self.own.push(ip);
                }
            }
            None => {
                if !role.is_empty()
                    && !self.own_local_roles.iter().any(|r| r == role)
                    && self.own_local_roles.len() < MAX_OWN
                {
                    self.own_local_roles.push(CompactString::new(role));
                }
            }
        }
    }

    /// An event of the server's own log that is PgBouncer's pooled connection logging in: it
    /// is not a client's login (that one is in PgBouncer's log, with the client's address).
    pub fn is_own(&self, e: &Event) -> bool {
        let login = matches!(
            e.kind,
            EventKind::ConnectionReceived
                | EventKind::LoginSucceeded
                | EventKind::LoginFailed { .. }
                | EventKind::Disconnected
        );
        if !login {
            return false;
        }
        match e.client_ip {
            Some(ip) => self.own.contains(&ip),
            None => {
                e.client_host.as_deref() == Some("[local]")
                    && e.principal
                        .as_deref()
                        .is_some_and(|p| self.own_local_roles.iter().any(|r| r == p))
            }
        }
    }

    fn event(time: EventTime, kind: EventKind, c: &Client, rec: &Record) -> Event {
        let mut e = Event::new(time, kind);
        e.client_ip = c.ip;
        if c.ip.is_none() {
            e.client_host = Some(CompactString::const_new("[local]"));
        }
        e.client_port = c.port;
        e.principal = c.user.clone();
        e.database = c.database.clone();
        e.ssl = c.ssl;
        e.session_id = opt(&rec.session_id);
        e.attempt_start = Some(c.started);
        e.source = e.compute_source_key();
        e
    }

    /// Takes one PgBouncer record; the events it completes go to `out`.
    pub fn handle(&mut self, rec: &Record, time: EventTime, out: &mut Vec<Event>) {
        let msg = rec.message.as_str();
        if rec.session_id.starts_with("S-") {
            if msg.starts_with("new connection to server") && rec.port.is_some() {
                self.learn(rec.host.parse().ok(), &rec.user);
            }
            return;
        }
        if !rec.session_id.starts_with("C-") || rec.port.is_none() {
            return;
        }
        let ip: Option<IpAddr> = rec.host.parse().ok();
        // PgBouncer reuses a client's pointer for the next client: with the address, a key.
        let key = {
            let mut k = CompactString::new(&rec.session_id);
            k.push('@');
            k.push_str(&rec.host);
            k.push(':');
            k.push_str(&rec.port.unwrap_or(0).to_string());
            k
        };
        let fresh = |started| Client {
            started,
            ip,
            port: rec.port,
            user: opt(&rec.user),
            database: opt(&rec.database),
            ..Client::default()
        };
        if let Some(tail) = msg.strip_prefix("login attempt: ") {
            let mut c = self.clients.remove(&key).unwrap_or_else(|| fresh(time));
            c.started = time;
            c.user = opt(&rec.user).or(c.user);
            c.database = opt(&rec.database).or(c.database);
            c.ssl = tail.rsplit_once(" tls=").map(|(_, t)| t != "no");
            out.push(Self::event(time, EventKind::ConnectionReceived, &c, rec));
            self.insert(key, c);
            return;
        }
        if msg.starts_with("no such user: ") {
            let mut c = self.clients.remove(&key).unwrap_or_else(|| fresh(time));
            c.no_such_user = true;
            c.user = opt(&rec.user).or(c.user);
            self.insert(key, c);
            return;
        }
        let closing = msg.strip_prefix("closing because: ");
        // The error line (`password authentication failed`) or, when PgBouncer wrote none
        // (an unknown role under `auth_type = md5`), the closing reason.
        let failure = failure_of(closing.unwrap_or(msg));
        let mut c = match self.clients.remove(&key) {
            Some(c) => c,
            None => {
                // A client whose opening line was not read: it started `age` seconds ago.
                let age = closing
                    .and_then(|r| r.rsplit_once("(age="))
                    .and_then(|(_, a)| a.strip_suffix("s)"))
                    .and_then(|a| a.parse::<i64>().ok())
                    .unwrap_or(0);
                fresh(time - age * 1000)
            }
        };
        if let Some(reason) = failure.filter(|_| !c.decided) {
            c.decided = true;
            let reason = if c.no_such_user {
                LoginFailure::NoSuchRole
            } else {
                reason
            };
            let mut e = Self::event(time, EventKind::LoginFailed { reason }, &c, rec);
            e.message = Some(model::event::truncate(closing.unwrap_or(msg), 200).to_string());
            out.push(e);
        } else if msg.starts_with("login failed: ") && !c.decided {
            // The password was right (PgBouncer checks it first) but no pool serves the
            // database: PostgreSQL's `connection authorized` then `database … does not exist`.
            c.decided = true;
            out.push(Self::event(time, EventKind::LoginSucceeded, &c, rec));
        }
        match closing {
            Some(reason) => {
                if !c.decided && (logged_in_reason(reason) || refused_after_login(reason)) {
                    out.push(Self::event(time, EventKind::LoginSucceeded, &c, rec));
                }
                out.push(Self::event(time, EventKind::Disconnected, &c, rec));
            }
            None => self.insert(key, c),
        }
    }

    fn insert(&mut self, key: CompactString, c: Client) {
        self.clients.insert(key, c);
        if self.clients.len() > MAX_CLIENTS {
            let mut ages: Vec<EventTime> = self.clients.values().map(|c| c.started).collect();
            let cut = ages.len() / 10;
            ages.select_nth_unstable(cut);
            let limit = ages[cut];
            self.clients.retain(|_, c| c.started > limit);
        }
    }

    /// Forgets clients that left no line for a day: they gave up during authentication.
    pub fn reap(&mut self, now: EventTime) {
        self.clients.retain(|_, c| now - c.started < CLIENT_TTL_MS);
    }
}

/// The addresses PgBouncer connects to PostgreSQL from, read ahead from its log files, so
/// that the server's log (which may be read first) does not count its pooled connections as
/// logins.
pub fn scan_own(path: &std::path::Path, into: &mut PoolerJoin) -> Result<(), super::SourceError> {
    use std::io::BufRead;
    let input = model::gzfile::open(path).map_err(|e| super::SourceError::io(path, e))?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, input);
    let mut line = Vec::new();
    let finder = memchr::memmem::Finder::new(b"new connection to server (from ");
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(super::SourceError::io(path, e)),
        }
        if finder.find(&line).is_none() {
            continue;
        }
        struct Learn<'a>(&'a mut PoolerJoin);
        impl RecordSink for Learn<'_> {
            fn record(&mut self, rec: &Record) {
                self.0.handle(rec, rec.time.unwrap_or(0), &mut Vec::new());
            }
            fn malformed(&mut self, _: Malformed) {}
        }
        let mut p = PgbouncerParser::new(1970);
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        p.feed(&line, &mut Learn(into));
        p.flush(&mut Learn(into));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Sink(Vec<Record>, Vec<Malformed>);
    impl RecordSink for Sink {
        fn record(&mut self, rec: &Record) {
            self.0.push(rec.clone());
        }
        fn malformed(&mut self, m: Malformed) {
            self.1.push(m);
        }
    }

    fn parse(text: &str) -> Sink {
        let mut p = PgbouncerParser::new(2026);
        let mut s = Sink::default();
        let used = p.feed(text.as_bytes(), &mut s);
        p.finish(&text.as_bytes()[used..], &mut s);
        s
    }

    #[test]
    fn a_name_holding_an_address_does_not_move_the_client() {
        // Recorded from PgBouncer 1.18 with these names sent in a startup packet.
        let s = parse(concat!(
            "2026-12-02 05:18:28.428 UTC [29196] LOG C-0x5627fe419910: (nodb)/(nouser)@127.0.0.1:53212 no such user: bob smith@1.2.3.4:5 login\n",
            "2026-12-02 05:18:28.428 UTC [29196] LOG C-0x5627fe419910: (nodb)/bob smith@1.2.3.4:5 login@127.0.0.1:53212 login attempt: db=a/b c user=bob smith@1.2.3.4:5 login tls=no\n",
            "2026-12-02 05:18:28.440 UTC [29196] ERROR C-0x5627fe419910: (nodb)/bob smith@1.2.3.4:5 login@127.0.0.1:53212 password authentication failed\n",
        ));
        assert!(s.1.is_empty(), "{:?}", s.1);
        assert_eq!(s.0.len(), 3);
        for r in &s.0 {
            assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", Some(53212)));
            assert_eq!(r.user, "bob smith@1.2.3.4:5 login");
        }
        assert_eq!(s.0[1].database, "a/b c");
        assert_eq!(s.0[2].message, "password authentication failed");
    }

    #[test]
    fn a_line_break_in_a_name_forges_no_line() {
        let s = parse(concat!(
            "2026-12-02 05:18:28.227 UTC [29196] LOG C-0x5627fe419910: (nodb)/(nouser)@127.0.0.1:53196 no such user: x\n",
            "\t2026-12-02 05:15:23.254 UTC [29196] ERROR C-0x1: shop/admin@10.9.9.9:5 password authentication failed\n",
            "2026-12-02 05:18:28.227 UTC [29196] LOG C-0x5627fe419910: (nodb)/x\n",
            "\t2026-12-02 05:15:23.254 UTC [29196] ERROR C-0x1: shop/admin@10.9.9.9:5 password authentication failed@127.0.0.1:53196 login attempt: db=shop user=x\n",
            "\t2026-12-02 05:15:23.254 UTC [29196] ERROR C-0x1: shop/admin@10.9.9.9:5 password authentication failed tls=no\n",
        ));
        assert!(s.1.is_empty(), "{:?}", s.1);
        assert_eq!(s.0.len(), 2);
        for r in &s.0 {
            assert_eq!(r.host, "127.0.0.1");
            assert_eq!(r.session_id, "C-0x5627fe419910");
        }
        assert!(s.0[1]
            .message
            .starts_with("login attempt: db=shop user=x\n"));
    }

    #[test]
    fn syslog_lines_and_server_connections() {
        let s = parse(concat!(
            "Dec  2 05:16:58 db1 pgbouncer[29506]: C-0x559610dd44e0: shop/alice@127.0.0.1:41768 password authentication failed\n",
            "Dec  2 05:16:58 db1 pgbouncer[29506]: S-0x559610ddbbc0: shop/alice@127.0.0.1:54330 new connection to server (from 127.0.0.1:55452)\n",
            "this is not pgbouncer\n",
        ));
        assert_eq!(s.0.len(), 2);
        assert_eq!(s.0[0].severity, Severity::Error);
        assert_eq!(s.0[0].pid, Some(29506));
        assert_eq!(s.0[1].session_id, "S-0x559610ddbbc0");
        assert_eq!(
            (s.0[1].host.as_str(), s.0[1].port),
            ("127.0.0.1", Some(55452))
        );
        assert_eq!(s.0[1].user, "alice");
        assert_eq!(s.1.len(), 1);
        assert_eq!(s.1[0].line, 3);
    }

    #[test]
    fn pooled_logins_of_the_server_log_are_recognised() {
        let mut j = PoolerJoin::default();
        let mut e = Event::new(0, EventKind::LoginSucceeded);
        e.client_ip = Some("10.0.0.5".parse().unwrap());
        assert!(!j.is_own(&e));
        j.learn(Some("10.0.0.5".parse().unwrap()), "app");
        assert!(j.is_own(&e));
        // A statement on a pooled connection is still the application's statement.
        e.kind = EventKind::Statement;
        assert!(!j.is_own(&e));
        let mut local = Event::new(0, EventKind::LoginSucceeded);
        local.client_host = Some("[local]".into());
        local.principal = Some("app".into());
        assert!(!j.is_own(&local));
        j.learn(None, "app");
        assert!(j.is_own(&local));
        local.principal = Some("postgres".into());
        assert!(
            !j.is_own(&local),
            "a superuser on the socket is not the pool"
        );
    }
}
