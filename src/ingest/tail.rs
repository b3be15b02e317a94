//! Following log files as PostgreSQL writes them.
//!
//! Files are identified by device and inode, not by name, so every kind of rotation works:
//! - `logging_collector` starting a new file (`postgresql-2026-11-28_103000.log`): a new name
//!   appears and is read from its start;
//! - logrotate renaming `postgresql-15-main.log` to `.log.1`: the open handle keeps the renamed
//!   file, which is read to its end before being let go;
//! - `copytruncate`, or `log_truncate_on_rotation`: the file shrinks and is read again from 0.
//!
//! Partial last lines wait for the rest.

use super::checkpoint::FilePos;
use crate::config::StartAt;
use crate::pipeline::Pipeline;
use crate::sources::file::{self, Hints};
use crate::sources::{LogFormat, LogParser, SourceError};
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

struct Tracked {
    pos: FilePos,
    file: File,
    format: LogFormat,
    prefix: Option<crate::sources::prefix::Prefix>,
    parser: Box<dyn LogParser>,
    /// Read but not yet consumed (a partial line or csv record).
    buf: Vec<u8>,
    /// Still reachable under a followed name.
    seen: bool,
}

/// Follows the logs under some paths.
pub struct Follower {
    roots: Vec<PathBuf>,
    hints: Hints,
    start_at: StartAt,
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
            tracked: Vec::new(),
            saved: saved.into_iter().map(|p| ((p.dev, p.ino), p)).collect(),
            first_scan: first_scan_without_state,
            ignored: Default::default(),
            reported: Default::default(),
            malformed: 0,
        }
    }

    /// Positions of all files, for a checkpoint.
    pub fn positions(&self) -> Vec<FilePos> {
        let mut v: Vec<FilePos> = self.tracked.iter().map(|t| t.pos.clone()).collect();
        v.extend(self.saved.values().cloned());
        v
    }

    pub fn followed(&self) -> Vec<PathBuf> {
        self.tracked.iter().map(|t| t.pos.path.clone()).collect()
    }

    fn warn_once(&mut self, msg: String) {
        if self.reported.insert(msg.clone()) {
            tracing::warn!("{msg}");
        }
    }

    fn candidates(&mut self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in self.roots.clone() {
            if root.is_dir() {
                match std::fs::read_dir(&root) {
                    Ok(rd) => {
                        for e in rd.flatten() {
                            let p = e.path();
                            let ok = p.is_file()
                                && p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(followable);
                            if ok {
                                out.push(p);
                            }
                        }
                    }
                    Err(e) => self.warn_once(format!("{}: {e}", root.display())),
                }
            } else if root.is_file() {
                out.push(root);
            }
        }
        out.sort();
        out
    }

    /// Finds new, renamed, vanished files.
    fn scan(&mut self) {
        for t in &mut self.tracked {
            t.seen = false;
        }
        let mut new_files: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
        for path in self.candidates() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if self.ignored.contains(&id) {
                continue;
            }
            if let Some(t) = self
                .tracked
                .iter_mut()
                .find(|t| (t.pos.dev, t.pos.ino) == id)
            {
                t.seen = true;
                t.pos.path = path;
                continue;
            }
            new_files.push((path, meta));
        }
        // The same log in several formats: follow only the richest one.
        let rank = |f: LogFormat| match f {
            LogFormat::Csvlog => 0,
            LogFormat::Jsonlog => 1,
            LogFormat::Stderr => 2,
        };
        let mut opened: Vec<Tracked> = Vec::new();
        for (path, meta) in new_files {
            match self.open(&path, &meta) {
                Ok(t) => opened.push(t),
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
                // Only lines written from now on; skip to the last line boundary.
                (meta.len(), 1)
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
        })
    }

    /// One round: look for files, read what was appended, feed the pipeline. Returns the
    /// number of bytes consumed.
    pub fn poll(&mut self, p: &mut Pipeline) -> u64 {
        self.scan();
        let mut total = 0u64;
        let mut chunk = vec![0u8; 1 << 20];
        let mut gone = Vec::new();
        for (i, t) in self.tracked.iter_mut().enumerate() {
            // Truncated in place: start again from the top.
            if let Ok(meta) = t.file.metadata() {
                let read_to = t.pos.offset + t.buf.len() as u64;
                if meta.len() < read_to {
                    tracing::warn!(path = %t.pos.path.display(), "file was truncated; reading it again from the start");
                    t.buf.clear();
                    t.pos.offset = 0;
                    t.pos.line = 1;
                    t.parser.set_line(1);
                    if t.file.seek(SeekFrom::Start(0)).is_err() {
                        continue;
                    }
                    if let Ok(h) = head_of(&mut t.file) {
                        t.pos.head = h;
                    }
                    let _ = t.file.seek(SeekFrom::Start(0));
                }
            }
            p.begin_file(&t.pos.path);
            let mut read = 0usize;
            loop {
                let n = match t.file.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!(path = %t.pos.path.display(), error = %e, "read failed");
                        break;
                    }
                };
                t.buf.extend_from_slice(&chunk[..n]);
                let used = p.feed(t.parser.as_mut(), &t.buf);
                t.buf.drain(..used);
                t.pos.offset += used as u64;
                total += used as u64;
                read += n;
                if read >= READ_PER_POLL {
                    break;
                }
            }
            // Nothing more for now: an entry waiting for DETAIL lines is complete (PostgreSQL
            // writes an entry with all its lines at once).
            p.flush(t.parser.as_mut());
            t.pos.line = t.parser.line();
            let stats = p.end_file(0, 0);
            self.malformed += stats.malformed;
            for m in stats.first_malformed {
                tracing::warn!(path = %t.pos.path.display(), line = m.line, "{}", m.reason);
            }
            if !t.seen && read == 0 {
                gone.push(i);
            }
        }
        // Files renamed away (logrotate) or deleted, and read to their end: let them go.
        for i in gone.into_iter().rev() {
            let t = self.tracked.remove(i);
            tracing::info!(path = %t.pos.path.display(), "file rotated away and read to its end");
        }
        p.tick();
        total
    }
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
}
