//! Reading log files: plain or gzip'd, one format each, in chunks through a [`LogParser`].

use super::prefix::Prefix;
use super::{sniff, LogFormat, LogParser, SourceError};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Bytes read at once.
pub const CHUNK: usize = 1 << 20;

/// The path that stands for standard input (`pgvigil analyze -`, `kubectl logs … | pgvigil`).
pub const STDIN: &str = "-";

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

/// Standard input, read once: its first bytes (decompressed, when gzip) are kept when the
/// format is told from them, and given back before the rest when it is read.
static STDIN_INPUT: std::sync::Mutex<Option<StdinInput>> = std::sync::Mutex::new(None);

struct StdinInput {
    head: Vec<u8>,
    rest: Option<Box<dyn Read + Send>>,
}

fn stdin_error(e: std::io::Error) -> SourceError {
    SourceError::io(Path::new("<standard input>"), e)
}

/// Standard input as a stream, gzip decompressed when it starts with gzip's magic bytes; a
/// read returns what has come, without waiting for more.
pub fn stdin_reader() -> Result<Box<dyn Read + Send>, SourceError> {
    use std::io::BufRead;
    let mut r = BufReader::with_capacity(CHUNK, std::io::stdin());
    let magic = r.fill_buf().map_err(stdin_error)?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

/// The first `HEAD_BYTES` of standard input (fewer if it ends before), read once and kept.
fn stdin_head() -> Result<Vec<u8>, SourceError> {
    let mut slot = STDIN_INPUT.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        let mut rest = stdin_reader()?;
        let mut head = vec![0u8; HEAD_BYTES];
        let n = model::gzfile::read_fully(&mut rest, &mut head).map_err(stdin_error)?;
        head.truncate(n);
        *slot = Some(StdinInput {
            head,
            rest: Some(rest),
        });
    }
    Ok(slot.as_ref().map(|s| s.head.clone()).unwrap_or_default())
}

/// Standard input from its first byte; it can be read once.
fn open_stdin() -> Result<Box<dyn Read + Send>, SourceError> {
    stdin_head()?;
    let mut slot = STDIN_INPUT.lock().unwrap_or_else(|e| e.into_inner());
    let input = slot.as_mut().and_then(|s| {
        let rest = s.rest.take()?;
        Some((std::mem::take(&mut s.head), rest))
    });
    match input {
        Some((head, rest)) => Ok(Box::new(std::io::Cursor::new(head).chain(rest))),
        None => Err(stdin_error(std::io::Error::other(
            "standard input can be read once only",
        ))),
    }
}

/// The UTC year of `t` (1970 for a time before it or out of range).
fn year_of(t: std::time::SystemTime) -> i32 {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| chrono::DateTime::from_timestamp(d.as_secs() as i64, 0))
        .map_or(1970, |d| chrono::Datelike::year(&d))
}

/// The year now (for the syslog lines of a stream, which carry none).
pub fn current_year() -> i32 {
    year_of(std::time::SystemTime::now())
}

/// Bytes looked at to decide a file's format and prefix.
const HEAD_BYTES: usize = 64 * 1024;

/// Opens a file for reading, transparently decompressing gzip ([`model::gzfile`]).
/// [`STDIN`] is standard input.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, SourceError> {
    if is_stdin(path) {
        return open_stdin();
    }
    model::gzfile::open(path).map_err(|e| SourceError::io(path, e))
}

/// A file about to be read, with its format (and prefix for stderr) decided.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub path: PathBuf,
    pub format: LogFormat,
    pub prefix: Option<Prefix>,
    /// Size on disk (compressed size for gzip), for progress.
    pub size: u64,
    /// Time of the first entry, for reading several files in time order.
    pub first_time: Option<i64>,
    pub year: i32,
}

/// What the caller fixed on the command line or in the config; the rest is sniffed.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    pub format: Option<LogFormat>,
    pub prefix: Option<Prefix>,
}

/// Looks at a file's first 64 KiB to decide its format and prefix.
pub fn inspect(path: &Path, hints: &Hints) -> Result<LogFile, SourceError> {
    if is_stdin(path) {
        let head = stdin_head()?;
        // Syslog lines carry no year: a stream's is this one.
        return Ok(decide(path, &head, hints, 0, current_year()));
    }
    let meta = std::fs::metadata(path).map_err(|e| SourceError::io(path, e))?;
    let mut head = vec![0u8; HEAD_BYTES];
    let n = model::gzfile::read_fully(&mut open(path)?, &mut head)
        .map_err(|e| SourceError::io(path, e))?;
    head.truncate(n);
    let year = meta.modified().map_or(1970, year_of);
    Ok(decide(path, &head, hints, meta.len(), year))
}

/// The format and prefix of a log that starts with `head`.
pub fn decide(path: &Path, head: &[u8], hints: &Hints, size: u64, year: i32) -> LogFile {
    let format = hints
        .format
        .unwrap_or_else(|| sniff::sniff_format(head, path));
    let prefix = match format {
        LogFormat::Stderr => Some(
            hints
                .prefix
                .clone()
                .or_else(|| sniff::guess_prefix(head))
                .unwrap_or_else(Prefix::postgres_default),
        ),
        _ => None,
    };
    let first_time = first_time(head, format, prefix.as_ref(), year);
    LogFile {
        path: path.to_path_buf(),
        format,
        prefix,
        size,
        first_time,
        year,
    }
}

fn first_time(head: &[u8], format: LogFormat, prefix: Option<&Prefix>, year: i32) -> Option<i64> {
    struct First(Option<i64>);
    impl super::RecordSink for First {
        fn record(&mut self, rec: &super::Record) {
            if self.0.is_none() {
                self.0 = rec.time;
            }
        }
        fn malformed(&mut self, _: super::Malformed) {}
    }
    let mut p = make_parser(format, prefix, year);
    let mut f = First(None);
    p.feed(head, &mut f);
    p.flush(&mut f);
    f.0
}

/// The parser for a file.
pub fn make_parser(format: LogFormat, prefix: Option<&Prefix>, year: i32) -> Box<dyn LogParser> {
    match format {
        LogFormat::Stderr => Box::new(
            super::stderr::StderrParser::new(
                prefix.cloned().unwrap_or_else(Prefix::postgres_default),
            )
            .with_year(year),
        ),
        LogFormat::Csvlog => Box::new(super::csvlog::CsvlogParser::new()),
        LogFormat::Jsonlog => Box::new(super::jsonlog::JsonlogParser::new()),
        LogFormat::Pgbouncer => Box::new(super::pgbouncer::PgbouncerParser::new(year)),
    }
}

/// Whether a file name looks like a PostgreSQL log (current, rotated or compressed).
pub fn looks_like_log(name: &str) -> bool {
    let n = name.strip_suffix(".gz").unwrap_or(name);
    let n = n.trim_end_matches(|c: char| c.is_ascii_digit());
    let n = n.strip_suffix('.').unwrap_or(n);
    n.ends_with(".log")
        || n.ends_with(".csv")
        || n.ends_with(".json")
        || n.starts_with("postgresql")
}

/// Strips the format extension, the rotation number and `.gz`: files with the same stem are
/// the same log written in several formats (`log_destination = 'stderr,csvlog'`).
pub fn stem(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut n = name.strip_suffix(".gz").unwrap_or(name).to_string();
    let mut suffix = String::new();
    if let Some((a, b)) = n.rsplit_once('.') {
        if !b.is_empty() && b.chars().all(|c| c.is_ascii_digit()) {
            suffix = format!(".{b}");
            n = a.to_string();
        }
    }
    for ext in [".log", ".csv", ".json"] {
        if let Some(a) = n.strip_suffix(ext) {
            n = a.to_string();
            break;
        }
    }
    path.with_file_name(format!("{n}{suffix}"))
}

/// The log files in a directory (recursively), sorted by name.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| SourceError::io(&d, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| SourceError::io(&d, e))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| SourceError::io(&p, e))?;
            if ft.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(looks_like_log)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_group_formats_and_keep_rotation() {
        assert_eq!(
            stem(Path::new("/l/postgresql.csv")),
            Path::new("/l/postgresql")
        );
        assert_eq!(
            stem(Path::new("/l/postgresql.log")),
            Path::new("/l/postgresql")
        );
        assert_eq!(
            stem(Path::new("/l/postgresql-15-main.log.2.gz")),
            Path::new("/l/postgresql-15-main.2")
        );
        assert_ne!(stem(Path::new("/l/a.log.1")), stem(Path::new("/l/a.log")));
    }

    #[test]
    fn log_names() {
        assert!(looks_like_log("postgresql-15-main.log.1"));
        assert!(looks_like_log("postgresql-2026-11-28_000000.csv"));
        assert!(looks_like_log("postgresql.json.3.gz"));
        assert!(!looks_like_log("postmaster.pid"));
    }
}
