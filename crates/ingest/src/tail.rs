//! Following log files as PostgreSQL writes them.
//!
//! Files are identified by device and inode, not by name, so every kind of rotation works:
//! - `logging_collector` starting a new file (`postgresql-2026-11-28_103000.log`): a new name
//!   appears and is read from its start;
//! - logrotate renaming `postgresql-15-main.log` to `.log.1`: the open handle keeps the renamed
//!   file, which the server may write to until it is told to reopen its log, so it is read
//!   until it has been quiet for `rotated_grace` (and to its end);
//! - `copytruncate`, or `log_truncate_on_rotation`: the file is emptied in place. The lines
//!   written between the last read and the truncation are read from the rotated copy when one
//!   has the same first bytes, then the file is read again from 0. A file is known to be
//!   another one by its first bytes, not its size: emptied and grown past the old offset
//!   between two polls is still a new file.
//!
//! Files of the followed names quiet for `rotated_grace` are closed, and opened again at their
//! position when they grow, so a directory of a thousand old logs costs no descriptors. Partial
//! last lines wait for the rest; an entry longer than `max_entry_bytes` is skipped and counted.

use super::checkpoint::FilePos;
use super::StartAt;
use crate::pipeline::Pipeline;
use sources::file::{self, Hints};
use sources::{LogFormat, LogParser, SourceError};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes of a file's start kept to recognise it.
const HEAD: usize = 64;
/// At most this much is read from one file per poll, so that one huge backlog does not
/// starve the others (or the alert output) for long.
const READ_PER_POLL: usize = 8 << 20;
/// How long an entry is held back at the end of a file whose last line is unfinished.
const HELD_WHILE_WRITING: std::time::Duration = std::time::Duration::from_secs(1);

struct Tracked {
    pos: FilePos,
    file: File,
    format: LogFormat,
    prefix: Option<sources::prefix::Prefix>,
    parser: Box<dyn LogParser>,
    /// Read but not yet consumed (a partial line or csv record).
    buf: Vec<u8>,
    /// Still reachable under a followed name.
    seen: bool,
    /// When it was last seen to grow, if it has grown since it was opened: a backlog read
    /// now from a file untouched for a month is quiet by its mtime alone.
    grew_at: Option<std::time::Instant>,
    /// Its size at the last look.
    last_len: u64,
    /// Bounds the unfinished entry.
    cap: sources::EntryCap,
    year: i32,
}

/// Follows the logs under some paths.
pub struct Follower {
    roots: Vec<PathBuf>,
    hints: Hints,
    start_at: StartAt,
    /// How long a file may be quiet before it is let go (rotated away) or closed (parked).
    grace: std::time::Duration,
    /// The longest entry read; longer ones are skipped.
    max_entry: usize,
    tracked: Vec<Tracked>,
    /// Positions from the checkpoint for files not open yet, by (dev, ino).
    saved: HashMap<(u64, u64), FilePos>,
    first_scan: bool,
    /// Files not followed because the same log is followed in a richer format.
    ignored: std::collections::HashSet<(u64, u64)>,
    /// Problems worth telling once per path (unreadable file, …).
    reported: std::collections::HashSet<String>,
    /// Malformed lines met since this follower started.
    pub malformed: u64,
    /// Entries skipped for their length since this follower started.
    pub oversize: u64,
    /// Bytes read from rotated copies after a copytruncate.
    pub recovered_bytes: u64,
    /// Reads of followed files that failed: in all, and in the last poll.
    pub read_errors: u64,
    pub read_errors_last_poll: u64,
    /// When the directories were last listed: open files are read every poll, the listing
    /// (new files, parked files that grew) is done at most every `SCAN_EVERY`.
    scanned_at: Option<std::time::Instant>,
    /// Standard input instead of files (`run --stdin`).
    stdin: Option<super::stdin::StdinFeed>,
    /// The systemd journal instead of files (`run --journal`).
    journal: Option<super::journal::JournalFeed>,
}

/// How often the followed directories are listed again.
const SCAN_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);
/// Files open at once at most (the newest log is opened whatever the count).
const MAX_OPEN: usize = 256;
/// `EMFILE`: too many open files.
const EMFILE: i32 = 24;

/// A position at the end of `path` (its last byte), as if it had been read.
fn position_at_end(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<FilePos> {
    let mut f = File::open(path)?;
    Ok(FilePos {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        offset: meta.len(),
        line: 1,
        head: head_of(&mut f)?,
    })
}

fn head_of(f: &mut File) -> std::io::Result<Vec<u8>> {
    let mut h = vec![0u8; HEAD];
    f.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < HEAD {
        match f.read(&mut h[n..])? {
            0 => break,
            k => n += k,
        }
    }
    h.truncate(n);
    Ok(h)
}

/// Names worth starting to follow: current logs, not rotated copies (`.1`, `.gz`), which
/// were read under their old name already.
fn followable(name: &str) -> bool {
    if name.ends_with(".gz") || name.ends_with(".tmp") {
        return false;
    }
    let rotated = name
        .rsplit_once('.')
        .is_some_and(|(_, b)| !b.is_empty() && b.chars().all(|c| c.is_ascii_digit()));
    !rotated && file::looks_like_log(name)
}

impl Follower {
    pub fn new(roots: Vec<PathBuf>, hints: Hints, start_at: StartAt, saved: Vec<FilePos>) -> Self {
        let first_scan_without_state = saved.is_empty();
        Follower {
            roots,
            hints,
            start_at,
            grace: std::time::Duration::from_secs(30),
            max_entry: 8 << 20,
            tracked: Vec::new(),
            saved: saved.into_iter().map(|p| ((p.dev, p.ino), p)).collect(),
            first_scan: first_scan_without_state,
            ignored: Default::default(),
            reported: Default::default(),
            malformed: 0,
            oversize: 0,
            recovered_bytes: 0,
            read_errors: 0,
            read_errors_last_poll: 0,
            scanned_at: None,
            stdin: None,
            journal: None,
        }
    }

    /// Follows the systemd journal rather than files (`run --journal`), from after `cursor`
    /// (a checkpoint's), else from `start_at`.
    pub fn journal(target: &str, hints: Hints, start_at: StartAt, cursor: Option<String>) -> Self {
        let mut f = Follower::new(Vec::new(), hints.clone(), start_at, Vec::new());
        f.journal = Some(super::journal::JournalFeed::new(
            target.to_string(),
            hints,
            start_at,
            cursor,
        ));
        f
    }

    /// The journal's cursor to save with the state, when the journal is followed.
    pub fn journal_cursor(&self) -> Option<String> {
        self.journal.as_ref().and_then(|j| j.cursor())
    }

    /// Follows standard input rather than files (`run --stdin`).
    pub fn stdin(hints: Hints, max_entry: u64) -> Self {
        let mut f = Follower::new(Vec::new(), hints.clone(), StartAt::Beginning, Vec::new());
        f.max_entry = usize::try_from(max_entry).unwrap_or(usize::MAX).max(1024);
        f.stdin = Some(super::stdin::StdinFeed::start(hints, f.max_entry));
        f
    }

    /// Standard input was followed and has ended (read to its last byte); why, if by an
    /// error.
    pub fn input_ended(&self) -> Option<Option<String>> {
        self.stdin
            .as_ref()
            .filter(|s| s.ended())
            .map(|s| s.error.clone())
    }

    /// How long a quiet file is kept (`input.rotated_grace`) and the longest entry read
    /// (`input.max_entry_bytes`).
    pub fn with_limits(mut self, grace: std::time::Duration, max_entry: u64) -> Self {
        self.grace = grace;
        self.max_entry = usize::try_from(max_entry).unwrap_or(usize::MAX).max(1024);
        self
    }

    /// New limits (`SIGHUP`).
    pub fn set_limits(&mut self, grace: std::time::Duration, max_entry: u64) {
        self.grace = grace;
        self.max_entry = usize::try_from(max_entry).unwrap_or(usize::MAX).max(1024);
    }

    /// Files open now (for the health figures).
    pub fn open_files(&self) -> usize {
        self.tracked.len() + usize::from(self.stdin.is_some() || self.journal.is_some())
    }

    /// Files followed: open, and closed until they grow.
    pub fn files(&self) -> usize {
        self.tracked.len()
            + self.saved.len()
            + usize::from(self.stdin.is_some() || self.journal.is_some())
    }

    /// Bytes written to the open files and not read yet (as of the last poll).
    pub fn bytes_behind(&self) -> u64 {
        if let Some(s) = &self.stdin {
            return s.waiting();
        }
        if let Some(j) = &self.journal {
            return j.waiting();
        }
        self.tracked
            .iter()
            .map(|t| t.last_len.saturating_sub(t.pos.offset + t.buf.len() as u64))
            .sum()
    }

    /// Positions of all files, for a checkpoint.
    pub fn positions(&self) -> Vec<FilePos> {
        // An entry held back for its continuation lines has not reached the pipeline: the
        // position saved is before it, so that a restart reads it whole.
        let mut v: Vec<FilePos> = self
            .tracked
            .iter()
            .map(|t| {
                let mut pos = t.pos.clone();
                let (bytes, lines) = t.parser.held();
                pos.offset = pos.offset.saturating_sub(bytes);
                pos.line = pos.line.saturating_sub(lines).max(1);
                pos
            })
            .collect();
        v.extend(self.saved.values().cloned());
        v
    }

    /// What is followed, for the agent's report (the console's server health): the files
    /// open with their format and bytes not read yet (the first `LISTED`), how many are
    /// closed until they grow, and standard input or the journal instead of files.
    pub fn inputs(&self) -> serde_json::Value {
        const LISTED: usize = 50;
        let open: Vec<serde_json::Value> = self
            .tracked
            .iter()
            .take(LISTED)
            .map(|t| {
                serde_json::json!({
                    "path": t.pos.path.to_string_lossy(),
                    "format": t.format.to_string(),
                    "bytesBehind": t.last_len.saturating_sub(t.pos.offset + t.buf.len() as u64),
                })
            })
            .collect();
        let stream = if self.stdin.is_some() {
            Some("standard input")
        } else if self.journal.is_some() {
            Some("the systemd journal")
        } else {
            None
        };
        serde_json::json!({
            "open": open,
            "openTotal": self.tracked.len(),
            "closed": self.saved.len(),
            "stream": stream,
        })
    }

    pub fn followed(&self) -> Vec<PathBuf> {
        self.tracked.iter().map(|t| t.pos.path.clone()).collect()
    }

    fn warn_once(&mut self, msg: String) {
        if self.reported.insert(msg.clone()) {
            tracing::warn!("{msg}");
        }
    }

    /// The files under the roots worth a look: followable names, and the rotated copies of
    /// logs (`.1`, `-20261130`) for the files read before that were renamed since (whatever
    /// renamed them: their inode says it is them), with the rotated flag.
    fn candidates(&mut self) -> Vec<(PathBuf, bool)> {
        let mut out = Vec::new();
        for root in self.roots.clone() {
            if root.is_dir() {
                match std::fs::read_dir(&root) {
                    Ok(rd) => {
                        for e in rd.flatten() {
                            let p = e.path();
                            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                                continue;
                            };
                            if !p.is_file() {
                                continue;
                            }
                            if followable(name) {
                                out.push((p, false));
                            } else if !name.ends_with(".gz") && file::looks_like_log(name) {
                                out.push((p, true));
                            }
                        }
                    }
                    Err(e) => self.warn_once(format!("{}: {e}", root.display())),
                }
            } else {
                // One log named (Debian's /var/log/postgresql/postgresql-15-main.log): it,
                // and its rotated copies beside it (`.1`, `-20261130`) to read to their end.
                if root.is_file() {
                    out.push((root.clone(), false));
                }
                let (Some(dir), Some(stem)) =
                    (root.parent(), root.file_name().and_then(|n| n.to_str()))
                else {
                    continue;
                };
                if let Ok(rd) = std::fs::read_dir(dir) {
                    for e in rd.flatten() {
                        let p = e.path();
                        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                            continue;
                        };
                        if name.len() > stem.len()
                            && name.starts_with(stem)
                            && !name.ends_with(".gz")
                            && p.is_file()
                        {
                            out.push((p, true));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Finds new, renamed, vanished files, and parked files that grew.
    fn scan(&mut self) {
        for t in &mut self.tracked {
            t.seen = false;
        }
        let mut new_files: Vec<(PathBuf, std::fs::Metadata, bool)> = Vec::new();
        let mut present: std::collections::HashSet<(u64, u64)> = Default::default();
        // Followed files left closed because nothing new was written, by log: the same log
        // in a poorer format is not opened beside them. After a restart the poorer format,
        // never in the checkpoint, would otherwise be read from its start while the richer
        // one stays parked: every line of the log again.
        let mut parked: HashMap<PathBuf, LogFormat> = HashMap::new();
        for (path, rotated) in self.candidates() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            present.insert(id);
            if self.ignored.contains(&id) {
                continue;
            }
            if let Some(t) = self
                .tracked
                .iter_mut()
                .find(|t| (t.pos.dev, t.pos.ino) == id)
            {
                // Under a followed name it may grow for ever; under a rotated one, only until
                // the server reopens its log.
                t.seen |= !rotated;
                if !rotated {
                    t.pos.path = path;
                }
                continue;
            }
            match self.saved.get(&id) {
                // Parked, and nothing new: leave it closed.
                Some(p) if p.offset == meta.len() => {
                    if !rotated {
                        let format = self
                            .hints
                            .format
                            .unwrap_or_else(|| sources::sniff::sniff_format(&p.head, &path));
                        parked.insert(file::stem(&path), format);
                    }
                    continue;
                }
                // A rotated copy is opened only to finish a file read before.
                None if rotated => continue,
                _ => {}
            }
            new_files.push((path, meta, rotated));
        }
        // Positions of files gone from the directories are let go (not on the first look: a
        // checkpoint's files may not all be there yet).
        if !self.first_scan {
            self.saved.retain(|id, _| present.contains(id));
        }
        // The same log in several formats: follow only the richest one.
        let rank = |f: LogFormat| match f {
            LogFormat::Csvlog => 0,
            LogFormat::Jsonlog => 1,
            LogFormat::Stderr => 2,
            LogFormat::Pgbouncer => 3,
        };
        // Oldest first (lines in time order), a log's formats together; the newest log is
        // always opened, the others as descriptors allow.
        let mtime = |m: &std::fs::Metadata| m.modified().ok();
        new_files.sort_by(|a, b| {
            mtime(&a.1)
                .cmp(&mtime(&b.1))
                .then(file::stem(&a.0).cmp(&file::stem(&b.0)))
        });
        let newest = new_files.last().map(|(p, _, _)| file::stem(p));
        let mut opened: Vec<Tracked> = Vec::new();
        let mut deferred: std::collections::HashSet<PathBuf> = Default::default();
        let mut started: std::collections::HashSet<PathBuf> = Default::default();
        for (path, meta, rotated) in new_files {
            let stem = file::stem(&path);
            let room = self.tracked.len() + opened.len() < MAX_OPEN;
            // A log's formats go together, so that only the richest is followed.
            let later = deferred.contains(&stem)
                || (!room && Some(&stem) != newest.as_ref() && !started.contains(&stem));
            if later {
                // Later. Files there at the very first look with start_at = "end" are taken
                // as read to their end, as if opened now.
                deferred.insert(stem);
                if self.first_scan && self.start_at == StartAt::End {
                    if let Ok(pos) = position_at_end(&path, &meta) {
                        self.saved.insert((meta.dev(), meta.ino()), pos);
                    }
                }
                continue;
            }
            started.insert(stem.clone());
            match self.open_or_make_room(&path, &meta) {
                Ok(t)
                    if !rotated && parked.get(&stem).is_some_and(|f| rank(*f) < rank(t.format)) =>
                {
                    tracing::info!(path = %path.display(), "not followed: the same log is followed in {} format", parked[&stem]);
                    self.ignored.insert((meta.dev(), meta.ino()));
                }
                Ok(mut t) => {
                    t.seen = !rotated;
                    opened.push(t);
                }
                Err(e) => self.warn_once(e.to_string()),
            }
        }
        let mut all: Vec<Tracked> = std::mem::take(&mut self.tracked);
        all.extend(opened);
        all.sort_by(|a, b| {
            file::stem(&a.pos.path)
                .cmp(&file::stem(&b.pos.path))
                .then(rank(a.format).cmp(&rank(b.format)))
        });
        let mut kept: Vec<Tracked> = Vec::new();
        for t in all {
            let dup = kept.last().is_some_and(|k| {
                k.seen
                    && t.seen
                    && file::stem(&k.pos.path) == file::stem(&t.pos.path)
                    && k.format != t.format
            });
            if dup {
                tracing::info!(path = %t.pos.path.display(), "not followed: the same log is followed in {} format", kept.last().map(|k| k.format.to_string()).unwrap_or_default());
                self.ignored.insert((t.pos.dev, t.pos.ino));
            } else {
                kept.push(t);
            }
        }
        self.tracked = kept;
        self.first_scan = false;
    }

    /// `open`, and when the process is out of descriptors, closes the quiet files first and
    /// tries again: the newest log must never be the one left unread.
    fn open_or_make_room(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
    ) -> Result<Tracked, SourceError> {
        match self.open(path, meta) {
            Err(SourceError::Io { source, .. }) if source.raw_os_error() == Some(EMFILE) => {
                let before = self.tracked.len();
                self.park_quiet(std::time::Duration::ZERO);
                tracing::warn!(path = %path.display(), closed = before - self.tracked.len(), "out of file descriptors: closed the files read to their end");
                self.open(path, meta)
            }
            other => other,
        }
    }

    /// Closes the followed files read to their end and unchanged for `quiet`, keeping their
    /// positions: they are opened again when they grow. Rotated-away files read to their end
    /// and quiet that long are let go.
    fn park_quiet(&mut self, quiet: std::time::Duration) {
        let now = std::time::SystemTime::now();
        let mut kept = Vec::new();
        for t in std::mem::take(&mut self.tracked) {
            let len = t.file.metadata().map(|m| m.len()).unwrap_or(0);
            let at_end = t.pos.offset + t.buf.len() as u64 >= len && t.buf.is_empty();
            let modified = t.file.metadata().and_then(|m| m.modified()).ok();
            let quiet_enough = modified
                .is_some_and(|m| now.duration_since(m).unwrap_or_default() >= quiet)
                && t.grew_at.is_none_or(|g| g.elapsed() >= quiet);
            if !(at_end && quiet_enough) {
                kept.push(t);
                continue;
            }
            if t.seen {
                tracing::debug!(path = %t.pos.path.display(), "closed until it grows");
                self.saved.insert((t.pos.dev, t.pos.ino), t.pos);
            } else {
                tracing::info!(path = %t.pos.path.display(), "file rotated away, read to its end and quiet: let go");
            }
        }
        self.tracked = kept;
    }

    fn open(&mut self, path: &Path, meta: &std::fs::Metadata) -> Result<Tracked, SourceError> {
        let mut f = File::open(path).map_err(|e| SourceError::io(path, e))?;
        let head = head_of(&mut f).map_err(|e| SourceError::io(path, e))?;
        // The prefix of a new stderr file with only a few lines yet: the one already read
        // from its siblings is better evidence than a guess from those lines.
        let mut hints = self.hints.clone();
        if hints.prefix.is_none() {
            hints.prefix = self.tracked.iter().find_map(|t| t.prefix.clone());
        }
        let lf = file::inspect(path, &hints)?;
        let id = (meta.dev(), meta.ino());
        let (offset, line) = match self.saved.remove(&id) {
            // Same inode and the same first bytes: the file we were reading.
            Some(p)
                if head.starts_with(&p.head[..p.head.len().min(head.len())])
                    && p.offset <= meta.len() =>
            {
                (p.offset, p.line)
            }
            _ if self.first_scan && self.start_at == StartAt::End => {
                // Only lines written from now on; the lines skipped are counted so that a
                // malformed line is reported with its number in the file.
                let skipped = count_lines(&f, meta.len()).map_err(|e| SourceError::io(path, e))?;
                (meta.len(), skipped + 1)
            }
            _ => (0, 1),
        };
        tracing::info!(path = %path.display(), format = %lf.format, offset, "following");
        let mut parser = file::make_parser(lf.format, lf.prefix.as_ref(), lf.year);
        parser.set_line(line);
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| SourceError::io(path, e))?;
        Ok(Tracked {
            pos: FilePos {
                path: path.to_path_buf(),
                dev: id.0,
                ino: id.1,
                offset,
                line,
                head,
            },
            file: f,
            format: lf.format,
            prefix: lf.prefix.clone(),
            parser,
            buf: Vec::new(),
            seen: true,
            grew_at: None,
            last_len: meta.len(),
            cap: sources::EntryCap::new(self.max_entry),
            year: lf.year,
        })
    }

    /// One round: look for files, read what was appended, feed the pipeline. Returns the
    /// number of bytes consumed.
    pub fn poll(&mut self, p: &mut Pipeline) -> u64 {
        // A stream instead of files: its malformed lines count as the files' would.
        let stream = match (&mut self.stdin, &mut self.journal) {
            (Some(s), _) => Some((s.poll(p, READ_PER_POLL), &mut s.malformed)),
            (None, Some(j)) => Some((j.poll(p), &mut j.malformed)),
            (None, None) => None,
        };
        if let Some((used, malformed)) = stream {
            self.malformed += std::mem::take(malformed);
            return used;
        }
        if self.scanned_at.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
            self.scan();
            self.scanned_at = Some(std::time::Instant::now());
        }
        let mut total = 0u64;
        let mut chunk = vec![0u8; 1 << 20];
        let mut errors = 0u64;
        // PgBouncer's log first: the connections it opens to the server are then known when
        // the server's log shows them logging in (they are not clients' logins).
        self.tracked
            .sort_by_key(|t| t.format != LogFormat::Pgbouncer);
        for t in self.tracked.iter_mut() {
            p.begin_file(&t.pos.path);
            let meta = t.file.metadata();
            if let Err(e) = &meta {
                errors += 1;
                tracing::warn!(path = %t.pos.path.display(), error = %e, "cannot look at the file");
            }
            if let Ok(meta) = meta {
                let read_to = t.pos.offset + t.buf.len() as u64;
                // Another file now: shorter than what was read, or other first bytes
                // (emptied and written past the old offset between two looks).
                let replaced = meta.len() < read_to
                    || (meta.len() != t.last_len && !same_head(&t.file, &t.pos.head));
                if replaced {
                    self.recovered_bytes += recover_from_copy(t, p);
                    tracing::warn!(path = %t.pos.path.display(), "file was truncated; reading it again from the start");
                    p.flush(t.parser.as_mut());
                    t.buf.clear();
                    t.pos.offset = 0;
                    t.pos.line = 1;
                    t.parser = fresh_parser(t, 1);
                    if let Ok(h) = head_of(&mut t.file) {
                        t.pos.head = h;
                    }
                    let _ = t.file.seek(SeekFrom::Start(0));
                } else if t.pos.head.len() < HEAD && meta.len() > t.pos.head.len() as u64 {
                    // Written to since it was opened short: its first bytes, in full.
                    if let Ok(h) = head_at(&t.file) {
                        t.pos.head = h;
                    }
                }
                if meta.len() != t.last_len {
                    t.grew_at = Some(std::time::Instant::now());
                }
                t.last_len = meta.len();
            }
            let mut read = 0usize;
            let mut at_end = false;
            loop {
                let n = match t.file.read(&mut chunk) {
                    Ok(0) => {
                        at_end = true;
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        errors += 1;
                        tracing::warn!(path = %t.pos.path.display(), error = %e, "read failed");
                        break;
                    }
                };
                read += n;
                t.buf.extend_from_slice(&chunk[..n]);
                // Inside a runaway entry: dropped up to its end (and counted as consumed).
                if t.cap.skipping() {
                    let before = t.buf.len();
                    let ended = t.cap.check(&mut t.buf, t.parser.as_mut(), p);
                    t.pos.offset += (before - t.buf.len()) as u64;
                    if !ended {
                        continue;
                    }
                    p.flush(t.parser.as_mut());
                    t.parser = fresh_parser(t, t.parser.line());
                }
                let used = p.feed(t.parser.as_mut(), &t.buf);
                t.buf.drain(..used);
                t.pos.offset += used as u64;
                total += used as u64;
                let before = t.buf.len();
                if t.cap.check(&mut t.buf, t.parser.as_mut(), p) {
                    p.flush(t.parser.as_mut());
                    t.parser = fresh_parser(t, t.parser.line());
                    let used = p.feed(t.parser.as_mut(), &t.buf);
                    t.buf.drain(..used);
                    total += used as u64;
                }
                t.pos.offset += (before - t.buf.len()) as u64;
                if read >= READ_PER_POLL {
                    break;
                }
            }
            // Nothing more for now: an entry waiting for DETAIL lines is complete (PostgreSQL
            // writes an entry with all its lines at once). Not so when the read stopped at
            // READ_PER_POLL in a backlog, or inside a line still being written: its next
            // lines may be the entry's own.
            let writing =
                !t.buf.is_empty() && t.grew_at.is_some_and(|g| g.elapsed() < HELD_WHILE_WRITING);
            if at_end && !writing {
                p.flush(t.parser.as_mut());
            }
            t.pos.line = t.parser.line();
            let stats = p.end_file(0, 0);
            self.malformed += stats.malformed;
            for m in stats.first_malformed {
                if m.reason.starts_with("entry longer than") {
                    self.oversize += 1;
                }
                tracing::warn!(path = %t.pos.path.display(), line = m.line, "{}", m.reason);
            }
        }
        self.read_errors += errors;
        self.read_errors_last_poll = errors;
        // Files read to their end and quiet for the grace period: closed (followed names) or
        // let go (rotated away).
        self.park_quiet(self.grace);
        p.tick();
        total
    }
}

/// The parser for `t` again, from line `line`: after a truncation, or a runaway entry whose
/// buffers go with the old one. The old one's waiting entry must have been flushed.
fn fresh_parser(t: &Tracked, line: u64) -> Box<dyn LogParser> {
    let mut parser = file::make_parser(t.format, t.prefix.as_ref(), t.year);
    parser.set_line(line);
    parser
}

/// Line breaks in the first `upto` bytes of `f`, without moving its position.
fn count_lines(f: &File, upto: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let (mut at, mut lines) = (0u64, 0u64);
    while at < upto {
        let want = buf.len().min((upto - at) as usize);
        match f.read_at(&mut buf[..want], at)? {
            0 => break,
            n => {
                lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                at += n as u64;
            }
        }
    }
    Ok(lines)
}

/// The first bytes of `f`, without moving its position.
fn head_at(f: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut h = vec![0u8; HEAD];
    let mut n = 0;
    while n < HEAD {
        match f.read_at(&mut h[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    h.truncate(n);
    Ok(h)
}

/// Whether `f` still starts with `head`.
fn same_head(f: &File, head: &[u8]) -> bool {
    head_at(f).is_ok_and(|now| now.starts_with(head) || head.starts_with(&now))
}

/// After `copytruncate`: the lines written between the last read and the truncation are in
/// the rotated copy (`name.1`, `name-20261130`), the one that starts with the same bytes.
/// Reads them from there; the bytes read.
fn recover_from_copy(t: &mut Tracked, p: &mut Pipeline) -> u64 {
    let (Some(dir), Some(name)) = (
        t.pos.path.parent(),
        t.pos.path.file_name().and_then(|n| n.to_str()),
    ) else {
        return 0;
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let copy = rd.flatten().map(|e| e.path()).find(|c| {
        let Some(n) = c.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let rotated = n
            .strip_prefix(name)
            .is_some_and(|r| (r.starts_with('.') || r.starts_with('-')) && !r.ends_with(".gz"));
        rotated
            && std::fs::metadata(c).is_ok_and(|m| m.len() > t.pos.offset)
            && File::open(c).is_ok_and(|f| same_head(&f, &t.pos.head))
    });
    let Some(copy) = copy else {
        return 0;
    };
    let Ok(mut f) = File::open(&copy) else {
        return 0;
    };
    if f.seek(SeekFrom::Start(t.pos.offset)).is_err() {
        return 0;
    }
    let mut rest = Vec::new();
    if f.read_to_end(&mut rest).is_err() {
        return 0;
    }
    // What was read but not consumed (a partial line) is in the copy too, whole.
    t.buf.clear();
    let used = p.feed(t.parser.as_mut(), &rest);
    p.flush(t.parser.as_mut());
    tracing::warn!(path = %t.pos.path.display(), copy = %copy.display(), bytes = rest.len(), "file was truncated in place (copytruncate): the lines after the last read were read from its rotated copy");
    used as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_current_not_rotated_names() {
        assert!(followable("postgresql-15-main.log"));
        assert!(followable("postgresql-2026-11-28_103000.csv"));
        assert!(!followable("postgresql-15-main.log.1"));
        assert!(!followable("postgresql-15-main.log.2.gz"));
    }

    /// A backlog is read in slices of READ_PER_POLL; an entry whose continuation line lies
    /// across a slice's end is read whole, and the position a checkpoint saves meanwhile is
    /// before the entry.
    #[test]
    fn an_entry_across_a_slice_of_backlog_is_read_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("postgresql.log");
        let (fatal, detail, tab) = (
            "2026-11-30 10:00:00.000 UTC [4242] admin@postgres 10.0.0.9 FATAL:  password authentication failed for user \"admin\"\n",
            "2026-11-30 10:00:00.000 UTC [4242] admin@postgres 10.0.0.9 DETAIL:  Role \"admin\" does not exist.\n",
            "\tConnection matched pg_hba.conf line 98: \"host all all 0.0.0.0/0 scram-sha-256\"\n",
        );
        let entry = format!("{fatal}{detail}{tab}");
        let mut text = String::new();
        let mut entries = 0;
        while text.len() + 4096 < READ_PER_POLL {
            text.push_str(&entry);
            entries += 1;
        }
        // A filler line puts the next entry's continuation line across the slice's end.
        let fill = READ_PER_POLL - text.len() - fatal.len() - detail.len() - tab.len() / 2;
        let head =
            "2026-11-30 10:00:00.000 UTC [4243] app@appdb 10.0.0.8 LOG:  statement: SELECT '";
        text.push_str(head);
        text.push_str(&"x".repeat(fill - head.len() - 2));
        text.push_str("'\n");
        let straddling = text.len() as u64;
        for _ in 0..100 {
            text.push_str(&entry);
            entries += 1;
        }
        std::fs::File::create(&log)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();

        let hints = Hints {
            format: Some(sources::LogFormat::Stderr),
            prefix: Some(sources::prefix::Prefix::compile("%m [%p] %q%u@%d %h ").unwrap()),
        };
        let mut f = Follower::new(
            vec![dir.path().to_path_buf()],
            hints,
            StartAt::Beginning,
            Vec::new(),
        );
        let mut p = Pipeline::new("t", &detect::registry::DetectConfig::default());
        f.poll(&mut p);
        let pos = f.positions();
        assert_eq!(
            pos[0].offset, straddling,
            "the checkpoint position is the held entry's start"
        );
        for _ in 0..3 {
            f.poll(&mut p);
        }
        assert_eq!(f.malformed, 0, "no continuation line was orphaned");
        assert_eq!(f.positions()[0].offset, text.len() as u64);
        assert_eq!(p.events_total, entries as u64 + 1);
    }

    /// `log_destination = 'csvlog,jsonlog'`: only the csv file is followed. After a restart
    /// with the csv file read to its end (parked), the json file, never in the checkpoint,
    /// is not read from its start: the log's lines are not seen twice, and what the server
    /// writes next is read from the csv file.
    #[test]
    fn a_restart_does_not_read_the_same_log_again_in_a_poorer_format() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
        let csv = dir.path().join("postgresql.csv");
        let json = dir.path().join("postgresql.json");
        std::fs::copy(fixtures.join("csvlog/basic.csv"), &csv).unwrap();
        std::fs::copy(fixtures.join("jsonlog/basic.json"), &json).unwrap();
        let cfg = detect::registry::DetectConfig::default();
        let follow = |saved| {
            Follower::new(
                vec![dir.path().to_path_buf()],
                Hints::default(),
                StartAt::Beginning,
                saved,
            )
        };
        let mut first = follow(Vec::new());
        let mut p = Pipeline::new("t", &cfg);
        first.poll(&mut p);
        first.poll(&mut p);
        let whole = p.events_total;
        assert!(whole > 0);
        assert_eq!(first.followed(), vec![csv.clone()]);
        let saved = first.positions();
        drop(first);

        let mut again = follow(saved);
        let mut p = Pipeline::new("t", &cfg);
        again.poll(&mut p);
        again.poll(&mut p);
        assert_eq!(
            p.events_total, 0,
            "the log was read again from the json file"
        );
        let line = std::fs::read_to_string(fixtures.join("csvlog/basic.csv"))
            .unwrap()
            .lines()
            .find(|l| l.contains("connection authorized"))
            .unwrap()
            .to_string();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&csv)
            .unwrap()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        std::thread::sleep(SCAN_EVERY);
        again.poll(&mut p);
        again.poll(&mut p);
        assert_eq!(again.followed(), vec![csv]);
        assert_eq!(p.events_total, 1, "the new line, from the csv file");
    }
}
