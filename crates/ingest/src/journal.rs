//! Following the systemd journal (`run --journal UNIT`): PostgreSQL started by systemd
//! without a logging collector writes its log to stderr (or to syslog), and journald keeps it.
//!
//! The journal is read with `journalctl --follow --output=json`, one entry per line. Each entry
//! is one line of the server's log; it is given to the stderr parser behind a syslog header
//! made of the entry's own time, host, identifier and pid, so that a `log_line_prefix` without
//! `%m` or `%p` (the syslog destination's usual one) still has them. The checkpoint holds the
//! journal's cursor of the last entry whose effect is in the detector state: a restart asks
//! for the entries after it, so nothing is read twice or lost.

use super::StartAt;
use crate::pipeline::Pipeline;
use sources::file::{self, Hints};
use sources::LogParser;
use std::collections::VecDeque;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError};

/// Entries read per poll at most, so that a backlog does not starve the alert output.
const ENTRIES_PER_POLL: usize = 50_000;
/// The format is decided on this many entries, or on what came within `DECIDE_WITHIN`.
const DECIDE_ENTRIES: usize = 200;
const DECIDE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
/// How long to wait before starting `journalctl` again after it ended.
const RESTART_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// One journal entry, as `journalctl -o json` writes it.
#[derive(serde::Deserialize)]
struct JsonEntry {
    #[serde(rename = "MESSAGE")]
    message: Option<serde_json::Value>,
    #[serde(rename = "__CURSOR")]
    cursor: String,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime_us: Option<String>,
    #[serde(rename = "_PID")]
    pid: Option<String>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    ident: Option<String>,
    #[serde(rename = "_HOSTNAME")]
    host: Option<String>,
}

/// An entry made ready for the parser.
struct Line {
    /// The line the stderr parser reads: a syslog header, then the message.
    text: String,
    /// The message alone (the server's own line), for telling the prefix.
    message: String,
    cursor: String,
}

enum Msg {
    Lines(Vec<Line>),
    /// `journalctl` ended; why.
    Ended(String),
}

/// The message of an entry: text, or bytes when it was not UTF-8 (journald stores those as
/// an array of numbers).
fn message_of(v: Option<serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(a)) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => String::new(),
    }
}

fn to_lines(e: JsonEntry) -> Vec<Line> {
    let message = message_of(e.message);
    let time = e
        .realtime_us
        .and_then(|t| t.parse::<i64>().ok())
        .map(|us| model::event::format_time(us / 1000));
    let mut out = Vec::new();
    // A message of several lines (syslog) is several lines of the log.
    for m in message.split('\n') {
        let text = match &time {
            // Continuation lines of a statement start with a tab, as in a file.
            _ if m.starts_with('\t') => m.to_string(),
            Some(t) => format!(
                "{t} {} {}[{}]: {m}",
                e.host.as_deref().unwrap_or("localhost"),
                e.ident.as_deref().unwrap_or("postgres"),
                e.pid.as_deref().unwrap_or("0"),
            ),
            None => m.to_string(),
        };
        out.push(Line {
            text,
            message: m.to_string(),
            cursor: e.cursor.clone(),
        });
    }
    out
}

/// What to read: a unit (`postgresql@15-main`), or a journal match (`SYSLOG_IDENTIFIER=postgres`).
fn match_args(target: &str) -> Vec<String> {
    if target.contains('=') {
        vec![target.to_string()]
    } else {
        vec![format!("--unit={target}")]
    }
}

/// The parser's view of a journal: stderr lines with the `log_line_prefix` told (or given in
/// `hints`) from the server's own messages, where syslog's `[5-1] ` numbering is not part of
/// it.
fn decide(target: &str, messages: &[&str], hints: &Hints) -> file::LogFile {
    let mut head = Vec::new();
    for m in messages {
        let m = match m.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((seq, rest)) if seq.contains('-') => rest,
            _ => m,
        };
        head.extend_from_slice(m.as_bytes());
        head.push(b'\n');
    }
    file::decide(
        std::path::Path::new(target),
        &head,
        &Hints {
            format: Some(sources::LogFormat::Stderr),
            prefix: hints.prefix.clone(),
        },
        0,
        file::current_year(),
    )
}

/// A journal export (`journalctl -o json`, one entry per line) as the follower reads it: the
/// lines it gives the stderr parser, and the prefix it decides on. For golden tests and for
/// reading an export after the fact.
pub fn read_export(
    json: &str,
    hints: &Hints,
) -> Result<(String, file::LogFile), serde_json::Error> {
    let mut lines = Vec::new();
    for l in json.lines().filter(|l| !l.trim().is_empty()) {
        lines.extend(to_lines(serde_json::from_str(l)?));
    }
    let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    let lf = decide("journal", &messages, hints);
    let mut text = String::new();
    for l in &lines {
        text.push_str(&l.text);
        text.push('\n');
    }
    Ok((text, lf))
}

pub struct JournalFeed {
    target: String,
    hints: Hints,
    start_at: StartAt,
    rx: Option<Receiver<Msg>>,
    child: Option<Child>,
    restart_at: Option<std::time::Instant>,
    parser: Option<Box<dyn LogParser>>,
    /// Entries received before the format was decided.
    undecided: Vec<Line>,
    first_at: Option<std::time::Instant>,
    /// Lines given to the parser and not consumed yet.
    buf: Vec<u8>,
    /// The cursor of each line given to the parser whose effect may not be in the state yet
    /// (held by the parser for its DETAIL lines, or not consumed), oldest first.
    unconfirmed: VecDeque<String>,
    /// The cursor of the last entry whose effect is in the state.
    committed: Option<String>,
    /// The cursor of the last entry received.
    received: Option<String>,
    /// Malformed lines met since the follower last took the count.
    pub malformed: u64,
    /// Why `journalctl` last ended, for the health figures and the log.
    pub error: Option<String>,
}

impl JournalFeed {
    pub fn new(target: String, hints: Hints, start_at: StartAt, cursor: Option<String>) -> Self {
        JournalFeed {
            target,
            hints,
            start_at,
            rx: None,
            child: None,
            restart_at: None,
            parser: None,
            undecided: Vec::new(),
            first_at: None,
            buf: Vec::new(),
            unconfirmed: VecDeque::new(),
            committed: cursor.clone(),
            received: cursor,
            malformed: 0,
            error: None,
        }
    }

    /// The cursor to save with the state.
    pub fn cursor(&self) -> Option<String> {
        self.committed.clone()
    }

    /// Entries received and not yet read through.
    pub fn waiting(&self) -> u64 {
        (self.unconfirmed.len() + self.undecided.len()) as u64
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("journalctl");
        cmd.args([
            "--follow",
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
        ])
        .args(match_args(&self.target));
        match &self.received {
            // `--follow` alone shows only ten entries, even after a cursor.
            Some(c) => {
                cmd.arg(format!("--after-cursor={c}")).arg("--lines=all");
            }
            None => {
                cmd.arg(match self.start_at {
                    StartAt::Beginning => "--lines=all",
                    StartAt::End => "--lines=0",
                });
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.ended(format!(
                    "journalctl could not be started: {e} (it comes with systemd)"
                ));
                return;
            }
        };
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            self.ended("journalctl gave no output".into());
            return;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let started = std::thread::Builder::new()
            .name("pgvigil-journal".into())
            .spawn(move || {
                let mut r = std::io::BufReader::with_capacity(1 << 20, out);
                let mut line = String::new();
                let mut batch = Vec::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) => {
                            let mut why = String::new();
                            let _ = std::io::Read::read_to_string(
                                &mut std::io::BufReader::new(err),
                                &mut why,
                            );
                            let _ = tx.send(Msg::Lines(std::mem::take(&mut batch)));
                            let why = why.trim();
                            let _ = tx.send(Msg::Ended(if why.is_empty() {
                                "journalctl ended".into()
                            } else {
                                format!("journalctl ended: {why}")
                            }));
                            return;
                        }
                        Ok(_) => match serde_json::from_str::<JsonEntry>(line.trim_end()) {
                            Ok(e) => batch.extend(to_lines(e)),
                            Err(e) => {
                                let _ = tx.send(Msg::Ended(format!(
                                    "journalctl wrote something that is not a journal entry: {e}"
                                )));
                                return;
                            }
                        },
                        Err(e) => {
                            let _ = tx.send(Msg::Ended(format!("reading journalctl: {e}")));
                            return;
                        }
                    }
                    // Hand over what came together; a quiet journal hands over each entry.
                    if (batch.len() >= 1024 || r.buffer().is_empty())
                        && tx.send(Msg::Lines(std::mem::take(&mut batch))).is_err()
                    {
                        return;
                    }
                }
            });
        match started {
            Ok(_) => {
                tracing::info!(journal = %self.target, after = ?self.received, "following the journal");
                self.rx = Some(rx);
                self.child = Some(child);
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                self.ended(format!("no thread to read the journal: {e}"));
            }
        }
    }

    fn ended(&mut self, why: String) {
        if self.error.as_deref() != Some(why.as_str()) {
            tracing::error!(journal = %self.target, error = %why, "the journal could not be followed; trying again");
        }
        self.error = Some(why);
        self.rx = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.restart_at = Some(std::time::Instant::now() + RESTART_AFTER);
    }

    /// Reads what the journal brought since the last poll; the bytes consumed.
    pub fn poll(&mut self, p: &mut Pipeline) -> u64 {
        if self.rx.is_none()
            && self
                .restart_at
                .is_none_or(|t| std::time::Instant::now() >= t)
        {
            self.spawn();
        }
        let mut fresh: Vec<Line> = Vec::new();
        if let Some(rx) = &self.rx {
            let mut why = None;
            while fresh.len() < ENTRIES_PER_POLL {
                match rx.try_recv() {
                    Ok(Msg::Lines(l)) => fresh.extend(l),
                    Ok(Msg::Ended(w)) => {
                        why = Some(w);
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        why = Some("journalctl ended".into());
                        break;
                    }
                }
            }
            if let Some(w) = why {
                self.ended(w);
            }
        }
        if let Some(last) = fresh.last() {
            self.received = Some(last.cursor.clone());
            self.first_at.get_or_insert_with(std::time::Instant::now);
        }
        if self.parser.is_none() {
            self.undecided.append(&mut fresh);
            let ready = self.undecided.len() >= DECIDE_ENTRIES
                || self.first_at.is_some_and(|t| t.elapsed() >= DECIDE_WITHIN);
            if !ready || self.undecided.is_empty() {
                return 0;
            }
            let messages: Vec<&str> = self.undecided.iter().map(|l| l.message.as_str()).collect();
            let lf = decide(&self.target, &messages, &self.hints);
            tracing::info!(journal = %self.target, log_line_prefix = lf.prefix.as_ref().map(|p| p.as_str()).unwrap_or(""), "reading the journal");
            self.parser = Some(file::make_parser(lf.format, lf.prefix.as_ref(), lf.year));
            fresh = std::mem::take(&mut self.undecided);
        }
        let Some(parser) = self.parser.as_mut() else {
            return 0;
        };
        for l in &fresh {
            self.buf.extend_from_slice(l.text.as_bytes());
            self.buf.push(b'\n');
            self.unconfirmed.push_back(l.cursor.clone());
        }
        p.begin_file(std::path::Path::new(&self.target));
        let used = p.feed(parser.as_mut(), &self.buf);
        self.buf.drain(..used);
        if fresh.is_empty() && self.buf.is_empty() {
            // Nothing more came: an entry waiting for its DETAIL lines is complete.
            p.flush(parser.as_mut());
        }
        // Entries whose effect is in the state: all but those the parser holds or has not
        // consumed.
        let waiting = parser.held().1 as usize + memchr::memchr_iter(b'\n', &self.buf).count();
        while self.unconfirmed.len() > waiting {
            self.committed = self.unconfirmed.pop_front();
        }
        let stats = p.end_file(0, 0);
        self.malformed += stats.malformed;
        for m in stats.first_malformed {
            tracing::warn!(journal = %self.target, "{}", m.reason);
        }
        p.tick();
        used as u64
    }
}

impl Drop for JournalFeed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_log_lines_with_their_own_time_and_process() {
        let e: JsonEntry = serde_json::from_str(
            r#"{"MESSAGE":"[3-1] LOG:  connection received: host=10.0.0.7 port=5000","__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1796190136468900","_PID":"4242","SYSLOG_IDENTIFIER":"postgres","_HOSTNAME":"db1"}"#,
        )
        .unwrap();
        let l = to_lines(e);
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0].text,
            "2026-12-02T05:42:16.468Z db1 postgres[4242]: [3-1] LOG:  connection received: host=10.0.0.7 port=5000"
        );
        // Bytes that are not UTF-8 come as an array of numbers.
        let e: JsonEntry =
            serde_json::from_str(r#"{"MESSAGE":[97,255,98],"__CURSOR":"c","_PID":"1"}"#).unwrap();
        assert_eq!(to_lines(e)[0].text, "a\u{fffd}b");
    }

    #[test]
    fn a_unit_or_a_match() {
        assert_eq!(
            match_args("postgresql@15-main"),
            ["--unit=postgresql@15-main"]
        );
        assert_eq!(
            match_args("SYSLOG_IDENTIFIER=postgres"),
            ["SYSLOG_IDENTIFIER=postgres"]
        );
    }
}
