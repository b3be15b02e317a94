//! Sources: turn PostgreSQL's log files into [`Record`]s (one log entry each, whatever the
//! format), then [`session::SessionJoiner`] turns records into [`model::event::Event`]s.
//!
//! One parser per log format: [`stderr`] (any `log_line_prefix`, also syslog-style lines),
//! [`csvlog`], [`jsonlog`], and PgBouncer's log ([`pgbouncer`]). [`sniff`] picks the format of a file from its first bytes.
//! Parsers are incremental: they take bytes as they come (a whole file in `analyze`, the newly
//! appended tail in `run`) and only ever emit complete entries.

pub mod csvlog;
pub mod file;
pub mod jsonlog;
pub mod pgaudit;
pub mod pgbouncer;
pub mod pgconf;
pub mod prefix;
pub mod prefix_infer;
pub mod session;
pub mod sniff;
pub mod stderr;
pub mod timestamp;

use model::event::EventTime;
use std::fmt;
use std::path::{Path, PathBuf};

/// The three formats PostgreSQL writes (`log_destination`), and PgBouncer's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Stderr,
    Csvlog,
    Jsonlog,
    /// PgBouncer's `logfile` or syslog lines: the logins it checks in front of PostgreSQL.
    Pgbouncer,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Stderr => "stderr",
            LogFormat::Csvlog => "csvlog",
            LogFormat::Jsonlog => "jsonlog",
            LogFormat::Pgbouncer => "pgbouncer",
        })
    }
}

/// A log format pgvigil does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?} (expected stderr, csvlog, jsonlog or pgbouncer)")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        match s {
            "stderr" | "syslog" | "text" => Ok(LogFormat::Stderr),
            "csvlog" | "csv" => Ok(LogFormat::Csvlog),
            "jsonlog" | "json" => Ok(LogFormat::Jsonlog),
            "pgbouncer" => Ok(LogFormat::Pgbouncer),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// Message severity. Localised names (`lc_messages`) are mapped where known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    #[default]
    Log,
    Fatal,
    Panic,
    /// A severity word this build does not know (an untranslated language).
    Unknown,
}

impl Severity {
    pub fn parse(s: &str) -> Severity {
        match s {
            "LOG" => Severity::Log,
            "FATAL" => Severity::Fatal,
            "ERROR" => Severity::Error,
            "WARNING" => Severity::Warning,
            "NOTICE" => Severity::Notice,
            "INFO" => Severity::Info,
            "PANIC" => Severity::Panic,
            s if s.starts_with("DEBUG") => Severity::Debug,
            // Translations (lc_messages) of de, fr, es and ru; other languages parse as
            // `Unknown` and are classified by SQLSTATE alone.
            "SCHWERWIEGEND" | "ВАЖНО" => Severity::Fatal,
            "FEHLER" | "ERREUR" | "ОШИБКА" => Severity::Error,
            "WARNUNG" | "ATTENTION" | "ПРЕДУПРЕЖДЕНИЕ" => Severity::Warning,
            "СООБЩЕНИЕ" => Severity::Log,
            _ => Severity::Unknown,
        }
    }
}

/// Which part of a multi-line stderr entry a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secondary {
    Detail,
    Hint,
    Context,
    Statement,
    Query,
    Location,
}

impl Secondary {
    pub(crate) fn parse(s: &str) -> Option<Secondary> {
        Some(match s {
            "DETAIL" | "DÉTAIL" | "DETALLE" | "ПОДРОБНОСТИ" => Secondary::Detail,
            "HINT" | "TIPP" | "ASTUCE" | "SUGERENCIA" | "ПОДСКАЗКА" => Secondary::Hint,
            "CONTEXT" | "KONTEXT" | "CONTEXTE" | "CONTEXTO" | "КОНТЕКСТ" => {
                Secondary::Context
            }
            "STATEMENT" | "ANWEISUNG" | "INSTRUCTION" | "SENTENCIA" | "ОПЕРАТОР" => {
                Secondary::Statement
            }
            "QUERY" | "ANFRAGE" | "REQUÊTE" | "CONSULTA" | "ЗАПРОС" => Secondary::Query,
            "LOCATION" | "ORT" | "EMPLACEMENT" | "UBICACIÓN" | "ПОЛОЖЕНИЕ" => {
                Secondary::Location
            }
            _ => return None,
        })
    }
}

/// One log entry, format-independent. Parsers fill one and reuse its buffers, so a record
/// lives only for the duration of a [`RecordSink::record`] call.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub time: Option<EventTime>,
    pub pid: Option<u32>,
    /// `%c` / csvlog `session_id`: `<start time hex>.<pid hex>`.
    pub session_id: String,
    /// Client host as logged (`%h`, `%r` before the parenthesis, csvlog `connection_from`).
    pub host: String,
    pub port: Option<u16>,
    pub user: String,
    pub database: String,
    pub application: String,
    pub backend_type: String,
    pub severity: Severity,
    pub severity_word: String,
    /// Five-character SQLSTATE when the format carries it.
    pub sqlstate: Option<[u8; 5]>,
    pub message: String,
    pub detail: String,
    pub hint: String,
    /// The statement an error belongs to (stderr `STATEMENT:`, csvlog `query`, jsonlog
    /// `statement`), as the client sent it.
    pub statement: String,
    /// Where the entry starts, for error messages and sample evidence.
    pub line: u64,
}

impl Record {
    pub fn clear(&mut self) {
        self.time = None;
        self.pid = None;
        self.session_id.clear();
        self.host.clear();
        self.port = None;
        self.user.clear();
        self.database.clear();
        self.application.clear();
        self.backend_type.clear();
        self.severity = Severity::Log;
        self.severity_word.clear();
        self.sqlstate = None;
        self.message.clear();
        self.detail.clear();
        self.hint.clear();
        self.statement.clear();
        self.line = 0;
    }

    pub fn sqlstate_str(&self) -> Option<&str> {
        self.sqlstate
            .as_ref()
            .and_then(|s| std::str::from_utf8(s).ok())
    }
}

/// A line (or csv record) that could not be parsed: counted and reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: u64,
    pub reason: String,
}

/// Where parsers deliver their output.
pub trait RecordSink {
    fn record(&mut self, rec: &Record);
    fn malformed(&mut self, m: Malformed);
}

/// An incremental parser of one log format.
pub trait LogParser: Send {
    /// Parses the complete entries in `data` and returns how many bytes it consumed; the rest
    /// (an unfinished last line or csv record) must be passed again, with more data after it.
    fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) -> usize;
    /// Emits an entry held back waiting for continuation lines (stderr DETAIL/HINT lines).
    fn flush(&mut self, sink: &mut dyn RecordSink);
    /// End of input: `rest` is whatever `feed` did not consume (a truncated last entry).
    fn finish(&mut self, rest: &[u8], sink: &mut dyn RecordSink) {
        if !rest.is_empty() {
            // A last line without its newline is still a line (a file cut at its end, or
            // one written by an editor): try it as a whole.
            let mut owned = rest.to_vec();
            owned.push(b'\n');
            let used = self.feed(&owned, sink);
            if used < owned.len() {
                sink.malformed(Malformed {
                    line: self.line(),
                    reason: format!("truncated entry at end of input ({} bytes)", rest.len()),
                });
            }
        }
        self.flush(sink);
    }
    /// The bytes and lines consumed since the entry held back for continuation lines began
    /// (none held: zero). A follower that stops reading between an entry and its continuation
    /// saves its position before them, so that a restart reads the entry whole.
    fn held(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Line number (1-based) of the next line to be read.
    fn line(&self) -> u64;
    /// Continue numbering lines from here (after a restart from a checkpoint).
    fn set_line(&mut self, line: u64);
}

/// The longest entry read by default (`input.max_entry_bytes`).
pub const DEFAULT_MAX_ENTRY: usize = 8 << 20;

/// Bounds the unfinished entry a reader holds: past `max` bytes without an end, the entry is
/// counted as malformed (with its line) and its bytes are dropped up to the next line break,
/// so one runaway line (a 300 MB statement, a file that is not a log) cannot take the memory.
#[derive(Debug, Clone)]
pub struct EntryCap {
    pub max: usize,
    skipping: bool,
    /// Line breaks dropped while skipping, to keep line numbers right.
    dropped_lines: u64,
}

impl EntryCap {
    pub fn new(max: usize) -> Self {
        EntryCap {
            max,
            skipping: false,
            dropped_lines: 0,
        }
    }

    /// After a feed: `buf` holds what the parser did not consume. Returns true when an
    /// oversize entry has just ended (the caller may then give the parser fresh buffers).
    pub fn check(
        &mut self,
        buf: &mut Vec<u8>,
        parser: &mut dyn LogParser,
        sink: &mut dyn RecordSink,
    ) -> bool {
        if !self.skipping {
            if buf.len() <= self.max {
                return false;
            }
            self.skipping = true;
            self.dropped_lines = 0;
            sink.malformed(Malformed {
                line: parser.line(),
                reason: format!(
                    "entry longer than {} bytes (input.max_entry_bytes): skipped",
                    self.max
                ),
            });
        }
        match memchr::memchr(b'\n', buf) {
            Some(i) => {
                self.dropped_lines += 1 + memchr::memchr_iter(b'\n', &buf[..i]).count() as u64;
                buf.drain(..=i);
                parser.set_line(parser.line() + self.dropped_lines);
                self.skipping = false;
                if buf.capacity() > 4 * self.max.min(8 << 20) {
                    buf.shrink_to(self.max.min(8 << 20));
                }
                true
            }
            None => {
                buf.clear();
                false
            }
        }
    }

    /// Inside an oversize entry: what comes is dropped until its end.
    pub fn skipping(&self) -> bool {
        self.skipping
    }
}

/// Errors that stop a whole source (a file), as opposed to [`Malformed`] lines.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid log_line_prefix {prefix:?}: {reason}")]
    BadPrefix { prefix: String, reason: String },
    /// A compressed file that ends early or is corrupt: what came before is read.
    #[error("{path}: the compressed data stops after line {lines} ({source}); the {lines} lines before it were read, the rest of the file is lost")]
    Truncated {
        path: PathBuf,
        lines: u64,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        SourceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
