//! The stderr log format: `log_line_prefix` + `SEVERITY:  message`, with DETAIL/HINT/CONTEXT/
//! STATEMENT lines after their entry and tab-indented continuation lines. Lines that went
//! through syslog (`log_destination = syslog`, then rsyslog/journald to a file) are read too:
//! the syslog header gives the pid and `[N-M]` joins the parts of a long entry.

use super::prefix::{severity_len, Prefix};
use super::{timestamp, LogParser, Malformed, Record, RecordSink, Secondary, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Message,
    Detail,
    Hint,
    Statement,
    Other,
}

pub struct StderrParser {
    prefix: Prefix,
    pending: Record,
    has_pending: bool,
    /// Entries started so far: tells `account` whether a line began a new entry.
    started: u64,
    /// Bytes and lines consumed since the held entry began (see `LogParser::held`).
    held_bytes: u64,
    held_lines: u64,
    field: Field,
    scratch: Record,
    line: u64,
    /// Year for BSD syslog timestamps, which have none.
    year: i32,
    unknown_zone_reported: bool,
    /// No more input will come: a line is judged without waiting for the one after it.
    at_end: bool,
}

/// Lines after an entry's first one that a line break in a name can add to it (a role and a
/// database name, each of at most 63 bytes, can hold several).
const MAX_JOINED_LINES: usize = 6;
const MAX_JOINED_BYTES: usize = 8 * 1024;

impl StderrParser {
    pub fn new(prefix: Prefix) -> Self {
        StderrParser {
            prefix,
            pending: Record::default(),
            has_pending: false,
            started: 0,
            held_bytes: 0,
            held_lines: 0,
            field: Field::Message,
            scratch: Record::default(),
            line: 1,
            year: 1970,
            unknown_zone_reported: false,
            at_end: false,
        }
    }

    /// The year to assume for syslog lines (`Nov 28 10:20:52` carries none).
    pub fn with_year(mut self, year: i32) -> Self {
        self.year = year;
        self
    }

    fn append(&mut self, text: &str) {
        let target = match self.field {
            Field::Message => &mut self.pending.message,
            Field::Detail => &mut self.pending.detail,
            Field::Hint => &mut self.pending.hint,
            Field::Statement => &mut self.pending.statement,
            Field::Other => return,
        };
        target.push('\n');
        target.push_str(text);
    }

    fn emit(&mut self, sink: &mut dyn RecordSink) {
        if self.has_pending {
            sink.record(&self.pending);
            self.has_pending = false;
        }
    }

    fn line_str<'a>(raw: &'a [u8], buf: &'a mut String) -> &'a str {
        match std::str::from_utf8(raw) {
            Ok(s) => s,
            Err(_) => {
                *buf = String::from_utf8_lossy(raw).into_owned();
                buf.as_str()
            }
        }
    }

    /// Reports a line no entry could be read from.
    fn malformed_line(&mut self, raw: &[u8], sink: &mut dyn RecordSink) {
        let line_no = self.line;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // PostgreSQL never writes NUL: name binary data as such.
        let reason = if raw.contains(&0) {
            "binary data (NUL byte) in a text log line".to_string()
        } else if raw.first() == Some(&b'\t') {
            "continuation line with no log entry before it".to_string()
        } else {
            let mut lossy = String::new();
            let s = Self::line_str(raw, &mut lossy);
            format!(
                "does not match log_line_prefix '{}': {}",
                self.prefix.as_str(),
                excerpt(s)
            )
        };
        sink.malformed(Malformed {
            line: line_no,
            reason,
        });
    }

    /// Whether `raw` is an entry's first line on its own (no side effects).
    fn starts_entry(&self, raw: &[u8]) -> bool {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut lossy = String::new();
        let mut s = Self::line_str(raw, &mut lossy);
        if let Some(h) = syslog_header(s, self.year) {
            if h.part > 1 {
                return true;
            }
            s = h.rest;
        }
        let mut rec = Record::default();
        self.prefix.match_line(s, &mut rec).is_some()
    }

    /// Takes one line (or, for an entry whose role or database name holds a line break,
    /// several joined by `\n`). False, with nothing done, when it is no entry's line.
    fn process(&mut self, raw: &[u8], sink: &mut dyn RecordSink) -> bool {
        let line_no = self.line;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            return true;
        }
        if raw[0] == b'\t' && raw.contains(&0) {
            return false;
        }
        let mut lossy = String::new();
        let mut s = Self::line_str(raw, &mut lossy);
        if let Some(cont) = s.strip_prefix('\t') {
            if !self.has_pending {
                return false;
            }
            self.append(cont);
            return true;
        }

        let mut syslog_pid = None;
        let mut syslog_time = None;
        if let Some(h) = syslog_header(s, self.year) {
            if h.part > 1 {
                // The rest of an entry syslog split in parts.
                let body = h.rest.replace("#011", "\t");
                let body = body.strip_prefix('\t').unwrap_or(&body).to_string();
                if self.has_pending {
                    self.append(&body);
                }
                return true;
            }
            syslog_pid = Some(h.pid);
            syslog_time = h.time;
            s = h.rest;
        }

        self.scratch.clear();
        self.scratch.line = line_no;
        let Some(pm) = self.prefix.match_line(s, &mut self.scratch) else {
            return false;
        };
        if pm.unknown_zone && !self.unknown_zone_reported {
            self.unknown_zone_reported = true;
            sink.malformed(Malformed {
                line: line_no,
                reason: "unknown time zone abbreviation; times in this file are taken as UTC"
                    .into(),
            });
        }
        if self.scratch.pid.is_none() {
            self.scratch.pid = syslog_pid;
        }
        if self.scratch.time.is_none() {
            self.scratch.time = syslog_time;
        }
        let rest = &s[pm.rest..];
        let Some(sl) = severity_len(rest) else {
            return true;
        };
        let word = &rest[..sl - 3];
        let msg = &rest[sl..];

        // The common primary words first: most lines are LOG or FATAL.
        let secondary = match word {
            "LOG" | "FATAL" | "ERROR" => None,
            w => Secondary::parse(w),
        };
        if let Some(kind) = secondary {
            let same_backend = self.scratch.pid.is_none() || self.scratch.pid == self.pending.pid;
            if self.has_pending && same_backend {
                self.field = match kind {
                    Secondary::Detail => Field::Detail,
                    Secondary::Hint => Field::Hint,
                    Secondary::Statement => Field::Statement,
                    _ => Field::Other,
                };
                let target = match self.field {
                    Field::Detail => &mut self.pending.detail,
                    Field::Hint => &mut self.pending.hint,
                    Field::Statement => &mut self.pending.statement,
                    _ => return true,
                };
                if !target.is_empty() {
                    target.push('\n');
                }
                target.push_str(msg);
            }
            // A DETAIL without its entry (the file starts in the middle of one): nothing
            // to attach it to, and nothing lost that the entry itself would have said.
            return true;
        }

        self.emit(sink);
        std::mem::swap(&mut self.pending, &mut self.scratch);
        self.pending.severity = Severity::parse(word);
        self.pending.severity_word.push_str(word);
        self.pending.message.push_str(msg);
        self.has_pending = true;
        self.started += 1;
        self.field = Field::Message;
        true
    }

    /// Keeps count of what was consumed since the held entry began.
    fn account(&mut self, started_before: u64, bytes: usize, lines: u64) {
        if self.started != started_before {
            (self.held_bytes, self.held_lines) = (bytes as u64, lines);
        } else if self.has_pending {
            self.held_bytes += bytes as u64;
            self.held_lines += lines;
        } else {
            (self.held_bytes, self.held_lines) = (0, 0);
        }
    }
}

pub(crate) fn excerpt(s: &str) -> String {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut e: String = s[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < s.len() {
        e.push('…');
    }
    format!("{e:?}")
}

pub(crate) struct SyslogHeader<'a> {
    /// The program's name in the tag (`postgres`, `pgbouncer`).
    pub prog: &'a str,
    pub pid: u32,
    pub part: u32,
    pub time: Option<i64>,
    pub rest: &'a str,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Nov 28 10:20:52 host postgres[123]: [5-1] …` or
/// `2026-11-28T10:20:52.123+00:00 host postgres[123]: [5-1] …`.
pub(crate) fn syslog_header(s: &str, year: i32) -> Option<SyslogHeader<'_>> {
    let b = s.as_bytes();
    let (time, after) = if b.len() > 16 && MONTHS.contains(&s.get(..3)?) && b[3] == b' ' {
        let mon = MONTHS.iter().position(|m| *m == &s[..3])? as u32 + 1;
        let day: u32 = s.get(4..6)?.trim().parse().ok()?;
        let t = format!("{year:04}-{mon:02}-{day:02} {}", s.get(7..15)?);
        (timestamp::parse_naive(t.as_bytes()), 15)
    } else if b.len() > 20 && b.get(10) == Some(&b'T') {
        let end = s.find(' ')?;
        let ts = &s[..end];
        let n = timestamp::datetime_len(ts.as_bytes())?;
        let local = timestamp::parse_naive(ts.as_bytes())?;
        let off = match &ts[n..] {
            "" | "Z" => 0,
            z => timestamp::zone_offset(z)?,
        };
        (Some(local - off * 1000), end)
    } else {
        return None;
    };
    let rest = s.get(after..)?.strip_prefix(' ')?;
    let (_host, rest) = rest.split_once(' ')?;
    let (tag, rest) = rest.split_once("]: ")?;
    let (prog, pid) = tag.rsplit_once('[')?;
    let pid: u32 = pid.parse().ok()?;
    let (part, rest) = match rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((seq, r)) => {
            let part = seq
                .split_once('-')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(1);
            (part, r)
        }
        None => (1, rest),
    };
    Some(SyslogHeader {
        prog,
        pid,
        part,
        time,
        rest,
    })
}

impl LogParser for StderrParser {
    fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) -> usize {
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &data[start..]) {
            let end = start + nl;
            let started = self.started;
            if self.process(&data[start..end], sink) {
                self.line += 1;
                self.account(started, end + 1 - start, 1);
                start = end + 1;
                continue;
            }
            let raw = &data[start..end];
            if raw.first() == Some(&b'\t') || raw.contains(&0) {
                self.malformed_line(raw, sink);
                self.line += 1;
                self.account(started, end + 1 - start, 1);
                start = end + 1;
                continue;
            }
            // Not an entry's line. PostgreSQL writes role and database names into the prefix
            // as they are, so a name with a line break splits its entry's first line: try it
            // joined with the lines after it that are no entry's lines either.
            let mut joined = None;
            let mut to = end;
            for extra in 1..=MAX_JOINED_LINES {
                let next_start = to + 1;
                let Some(nl2) = memchr::memchr(b'\n', &data[next_start..]) else {
                    if !self.at_end {
                        // The next line is not here yet: decide when it is.
                        return start;
                    }
                    break;
                };
                let next = &data[next_start..next_start + nl2];
                if next.first() == Some(&b'\t') || self.starts_entry(next) {
                    break;
                }
                to = next_start + nl2;
                if to - start > MAX_JOINED_BYTES {
                    break;
                }
                if self.process(&data[start..to], sink) {
                    joined = Some(extra as u64);
                    break;
                }
            }
            match joined {
                Some(extra) => {
                    self.line += 1 + extra;
                    self.account(started, to + 1 - start, 1 + extra);
                    start = to + 1;
                }
                None => {
                    self.malformed_line(&data[start..end], sink);
                    self.line += 1;
                    self.account(started, end + 1 - start, 1);
                    start = end + 1;
                }
            }
        }
        start
    }

    fn finish(&mut self, rest: &[u8], sink: &mut dyn RecordSink) {
        self.at_end = true;
        if !rest.is_empty() {
            // A last line without its newline is still a line.
            let mut owned = rest.to_vec();
            owned.push(b'\n');
            self.feed(&owned, sink);
        }
        self.flush(sink);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        recs: Vec<Record>,
        bad: Vec<Malformed>,
    }
    impl RecordSink for Collect {
        fn record(&mut self, rec: &Record) {
            self.recs.push(rec.clone());
        }
        fn malformed(&mut self, m: Malformed) {
            self.bad.push(m);
        }
    }

    #[test]
    fn detail_and_tab_continuation_join_their_entry() {
        let log = "2026-11-28 10:23:41.084 UTC [4884] nosuch@appdb FATAL:  password authentication failed for user \"nosuch\"\n\
2026-11-28 10:23:41.084 UTC [4884] nosuch@appdb DETAIL:  Role \"nosuch\" does not exist.\n\
\tConnection matched pg_hba.conf line 3: \"host all all 127.0.0.0/8 scram-sha-256\"\n\
2026-11-28 10:23:41.134 UTC [4887] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=58262\n";
        let mut p = StderrParser::new(Prefix::compile("%m [%p] %q%u@%d ").unwrap());
        let mut c = Collect::default();
        let used = p.feed(log.as_bytes(), &mut c);
        assert_eq!(used, log.len());
        p.flush(&mut c);
        assert_eq!(c.recs.len(), 2, "{:?}", c.recs);
        assert!(c.recs[0]
            .detail
            .starts_with("Role \"nosuch\" does not exist.\nConnection matched"));
        assert_eq!(c.recs[0].severity, Severity::Fatal);
        assert_eq!(c.recs[1].line, 4);
        assert!(c.bad.is_empty());
    }

    #[test]
    fn garbage_is_counted_and_the_rest_still_parsed() {
        let log = b"\x00\x01\xffgarbage\nnot a log line\n2026-11-28 10:23:41.134 UTC [4887] LOG:  connection received: host=127.0.0.1 port=1\n";
        let mut p = StderrParser::new(Prefix::postgres_default());
        let mut c = Collect::default();
        p.feed(log, &mut c);
        p.flush(&mut c);
        assert_eq!(c.recs.len(), 1);
        assert_eq!(c.bad.iter().map(|m| m.line).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn partial_last_line_waits_for_more() {
        let mut p = StderrParser::new(Prefix::postgres_default());
        let mut c = Collect::default();
        let a = b"2026-11-28 10:23:41.134 UTC [1] LOG:  connection rec";
        assert_eq!(p.feed(a, &mut c), 0);
        let mut whole = a.to_vec();
        whole.extend_from_slice(b"eived: host=127.0.0.1 port=1\n");
        assert_eq!(p.feed(&whole, &mut c), whole.len());
        p.flush(&mut c);
        assert_eq!(
            c.recs[0].message,
            "connection received: host=127.0.0.1 port=1"
        );
    }

    #[test]
    fn a_role_name_with_a_line_break_is_joined_even_across_reads() {
        // PostgreSQL writes the name into the prefix as it is; the message's copy is indented.
        let log = "2026-11-30 19:38:11.966 UTC [23908] [unknown]@[unknown] 127.0.0.66 LOG:  connection received: host=127.0.0.66 port=52765\n\
2026-11-30 19:38:11.976 UTC [23908] new\n\
line@appdb 127.0.0.66 FATAL:  password authentication failed for user \"new\n\
\tline\"\n\
2026-11-30 19:38:11.976 UTC [23908] new\n\
line@appdb 127.0.0.66 DETAIL:  Role \"new\n\
\tline\" does not exist.\n";
        let prefix = Prefix::compile("%m [%p] %q%u@%d %h ").unwrap();
        // Cut right after the name's first half: the parser must wait for the rest.
        let cut = log.find("new\n").unwrap() + 4;
        let mut p = StderrParser::new(prefix);
        let mut c = Collect::default();
        let used = p.feed(&log.as_bytes()[..cut], &mut c);
        let mut rest = log.as_bytes()[used..].to_vec();
        let used2 = p.feed(&rest, &mut c);
        rest.drain(..used2);
        p.finish(&rest, &mut c);
        assert!(c.bad.is_empty(), "{:?}", c.bad);
        assert_eq!(c.recs.len(), 2, "{:?}", c.recs);
        let fatal = &c.recs[1];
        assert_eq!(
            (fatal.user.as_str(), fatal.database.as_str()),
            ("new\nline", "appdb")
        );
        assert_eq!(
            fatal.message,
            "password authentication failed for user \"new\nline\""
        );
        assert!(fatal
            .detail
            .starts_with("Role \"new\nline\" does not exist."));
    }

    #[test]
    fn syslog_lines() {
        let log = "Nov 28 10:23:41 db1 postgres[4884]: [7-1] 2026-11-28 10:23:41.084 UTC [4884] FATAL:  password authentication failed for user \"nosuch\"\n\
Nov 28 10:23:41 db1 postgres[4884]: [8-1] 2026-11-28 10:23:41.084 UTC [4884] DETAIL:  Role \"nosuch\" does not exist.\n\
Nov 28 10:23:41 db1 postgres[4884]: [8-2] #011Connection matched pg_hba.conf line 3\n";
        let mut p = StderrParser::new(Prefix::postgres_default()).with_year(2026);
        let mut c = Collect::default();
        p.feed(log.as_bytes(), &mut c);
        p.flush(&mut c);
        assert_eq!(c.recs.len(), 1, "{:?}", c.bad);
        assert_eq!(c.recs[0].pid, Some(4884));
        assert!(c.recs[0]
            .detail
            .ends_with("\nConnection matched pg_hba.conf line 3"));
    }

    #[test]
    fn syslog_without_own_prefix_takes_time_and_pid_from_header() {
        let log = "Nov 28 10:23:41 db1 postgres[4884]: [7-1] FATAL:  password authentication failed for user \"x\"\n";
        let mut p = StderrParser::new(Prefix::compile("").unwrap()).with_year(2026);
        let mut c = Collect::default();
        p.feed(log.as_bytes(), &mut c);
        p.flush(&mut c);
        assert_eq!(c.recs[0].pid, Some(4884));
        assert_eq!(
            model::event::format_time(c.recs[0].time.unwrap()),
            "2026-11-28T10:23:41.000Z"
        );
    }
}
