//! The pipeline of one server: records → [`SessionJoiner`] → events → [`Engine`] → alerts.
//! `analyze` pushes whole files through it; `run` pushes what the tailer reads.

use detect::registry::DetectConfig;
use detect::Engine;
use model::alert::Alert;
use model::event::{Event, EventTime};
use sources::file::{self, LogFile, CHUNK};
use sources::session::SessionJoiner;
use sources::{LogParser, Malformed, Record, RecordSink, SourceError};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Malformed lines reported by location, per file, before only counting.
const MALFORMED_SHOWN: usize = 5;

/// Per-file reading statistics.
#[derive(Debug, Clone, Default)]
pub struct FileStats {
    pub path: PathBuf,
    pub lines: u64,
    pub bytes: u64,
    pub records: u64,
    pub malformed: u64,
    pub first_malformed: Vec<Malformed>,
}

pub struct Pipeline {
    pub joiner: SessionJoiner,
    pub engine: Engine,
    events: Vec<Event>,
    /// Alerts created or updated since the caller last took them.
    pub alerts: Vec<Alert>,
    /// Keep every event (golden tests, `--events`).
    pub keep_events: bool,
    pub kept: Vec<Event>,
    pub events_total: u64,
    /// Logins per hour not yet reported to the store (`run` takes them with each commit).
    pub logins: Vec<model::event::LoginHour>,
    /// Logins seen since the pipeline started: succeeded, failed (`/metrics`).
    pub logins_seen: [u64; 2],
    current: FileStats,
    /// Where final alert states go as alerts close (`analyze` streams them); without it they
    /// collect in `engine.closed`.
    pub on_final: Option<Box<dyn FnMut(Alert) + Send>>,
    /// Fills the location and cloud of each alert's source address.
    pub enricher: Option<std::sync::Arc<enrich::Enricher>>,
    /// Updates in `alerts` before this index are enriched already.
    enriched: usize,
    enrich_cache: rustc_hash::FxHashMap<std::net::IpAddr, std::sync::Arc<enrich::Enrichment>>,
    /// Log events from these client addresses are left out: they are the proxy's own
    /// connections, whose logins the proxy reports with the real client address.
    pub skip_log_sources: Vec<std::net::IpAddr>,
    /// The log's newest time when it last changed, and the wall clock then (heartbeat).
    heartbeat_from: Option<(EventTime, EventTime)>,
}

/// Addresses whose enrichment is remembered (then the cache starts over).
const ENRICH_CACHE: usize = 100_000;

impl Pipeline {
    pub fn new(server: &str, detect: &DetectConfig) -> Self {
        Pipeline {
            joiner: SessionJoiner::new(),
            engine: Engine::new(server, detect),
            events: Vec::new(),
            alerts: Vec::new(),
            keep_events: false,
            kept: Vec::new(),
            events_total: 0,
            logins: Vec::new(),
            logins_seen: [0; 2],
            current: FileStats::default(),
            on_final: None,
            enricher: None,
            enriched: 0,
            enrich_cache: Default::default(),
            skip_log_sources: Vec::new(),
            heartbeat_from: None,
        }
    }

    /// What is known about an address, looked up once (events and alerts share the cache).
    fn lookup(&mut self, ip: std::net::IpAddr) -> Option<std::sync::Arc<enrich::Enrichment>> {
        let e = self.enricher.as_ref()?;
        if let Some(hit) = self.enrich_cache.get(&ip) {
            return Some(hit.clone());
        }
        if self.enrich_cache.len() >= ENRICH_CACHE {
            self.enrich_cache.clear();
        }
        let r = std::sync::Arc::new(e.lookup(ip));
        self.enrich_cache.insert(ip, r.clone());
        Some(r)
    }

    /// Fills the location and cloud of an alert's source, unless a detector did.
    fn enrich(&mut self, a: &mut Alert) {
        if a.entities.location.is_some() {
            return;
        }
        let Some(ip) = a.entities.source_ip.as_deref().and_then(|s| s.parse().ok()) else {
            return;
        };
        if let Some(r) = self.lookup(ip) {
            a.entities.location = Some(r.location());
            a.entities.cloud = r.cloud();
        }
    }

    fn pass_closed(&mut self) {
        if self.on_final.is_none() && self.engine.updates {
            // `run`: every update went out as it happened, the final one included.
            self.engine.closed.clear();
        }
        let from = self.enriched.min(self.alerts.len());
        let mut fresh = self.alerts.split_off(from);
        for a in &mut fresh {
            self.enrich(a);
        }
        self.alerts.append(&mut fresh);
        self.enriched = self.alerts.len();
        if self.on_final.is_some() {
            let mut closed = std::mem::take(&mut self.engine.closed);
            for a in &mut closed {
                self.enrich(a);
            }
            if let Some(f) = &mut self.on_final {
                closed.into_iter().for_each(f);
            }
        }
    }

    /// What is known about a login's source.
    fn enrich_event(&mut self, ev: &mut Event) {
        let Some(ip) = ev.client_ip else { return };
        if matches!(
            ev.kind,
            model::event::EventKind::LoginSucceeded | model::event::EventKind::LoginFailed { .. }
        ) {
            ev.enrichment = self.lookup(ip);
        }
        if ev.kind == model::event::EventKind::LoginSucceeded {
            if let Some(r) = self.enricher.as_ref().and_then(|e| e.rdns.as_ref()) {
                ev.domain = r.domain(ip).map(Into::into);
            }
        }
    }

    fn dispatch(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        for ev in events.iter_mut() {
            self.enrich_event(ev);
        }
        for ev in events.drain(..) {
            self.count_login(&ev);
            self.engine.observe(&ev, &mut self.alerts);
            if self.keep_events {
                self.kept.push(ev);
            }
            self.events_total += 1;
        }
        self.events = events;
        self.pass_closed();
    }

    /// Adds a login to its hour. Logs arrive in time order, so the hour is nearly always the
    /// last one; a few hours at most go unreported between two commits.
    fn count_login(&mut self, ev: &Event) {
        use model::event::EventKind;
        let failed = match ev.kind {
            EventKind::LoginFailed { .. } => true,
            EventKind::LoginSucceeded => false,
            _ => return,
        };
        let hour = ev.time - ev.time.rem_euclid(3_600_000);
        let at = match self.logins.iter().rposition(|l| l.hour == hour) {
            Some(i) => i,
            None => {
                self.logins.push(model::event::LoginHour {
                    hour,
                    ..Default::default()
                });
                self.logins.len() - 1
            }
        };
        self.logins_seen[usize::from(failed)] += 1;
        let l = &mut self.logins[at];
        if failed {
            l.failed += 1;
        } else {
            l.succeeded += 1;
        }
    }

    /// Events from a source that makes them itself (the proxy).
    pub fn observe(&mut self, ev: Event) {
        self.events.push(ev);
        self.dispatch();
    }

    /// Starts counting for another file.
    pub fn begin_file(&mut self, path: &Path) {
        self.current = FileStats {
            path: path.to_path_buf(),
            ..FileStats::default()
        };
    }

    pub fn end_file(&mut self, lines: u64, bytes: u64) -> FileStats {
        let mut s = std::mem::take(&mut self.current);
        s.lines = lines;
        s.bytes = bytes;
        s
    }

    /// The newest log time read, if any line was.
    pub fn joiner_now(&self) -> Option<EventTime> {
        let t = self.joiner.now();
        (t > 0).then_some(t)
    }

    /// Event time moved on without new lines (`run`, idle): let windows expire.
    pub fn tick(&mut self) {
        let now = self.joiner.now();
        self.advance_to(now);
    }

    fn advance_to(&mut self, now: EventTime) {
        self.joiner.reap(now, &mut self.events);
        self.dispatch();
        self.engine.advance(now, &mut self.alerts);
        self.pass_closed();
    }

    /// `run`, between polls: while the log is quiet, event time follows the wall clock
    /// (`wall_ms`) from where the log left it, so that open incidents close with their final
    /// counts when their windows pass, as `analyze` closes them at the end of its input. As
    /// soon as lines come again, their own times rule.
    pub fn heartbeat(&mut self, wall_ms: EventTime) {
        let log_now = self.joiner.now();
        match self.heartbeat_from {
            Some((log, wall)) if log == log_now => {
                let now = log_now.saturating_add((wall_ms - wall).max(0));
                if now > log_now {
                    self.advance_to(now);
                }
            }
            _ => self.heartbeat_from = Some((log_now, wall_ms)),
        }
    }

    /// End of all input: decide pending connections, close every incident.
    pub fn finish(&mut self) {
        self.joiner.finish(&mut self.events);
        let last = self.joiner.now();
        self.finish_at(last);
    }

    /// End of all input once the sessions are decided (here, or on the reading thread of
    /// `analyze`); `last` is the newest event time read.
    fn finish_at(&mut self, last: EventTime) {
        self.dispatch();
        self.engine.finish(last, &mut self.alerts);
        self.pass_closed();
    }

    /// Reads one whole file (plain or gzip) through its parser. `progress` is told the bytes
    /// read from disk as they go.
    pub fn read_file(
        &mut self,
        lf: &LogFile,
        progress: &mut dyn FnMut(u64),
    ) -> Result<FileStats, SourceError> {
        match read_counted(lf, self, |p| &mut p.current, progress) {
            (_, Some(e)) => Err(e),
            (s, None) => Ok(s),
        }
    }

    /// Feeds bytes from a live source; returns bytes consumed (complete entries).
    pub fn feed(&mut self, parser: &mut dyn LogParser, data: &[u8]) -> usize {
        parser.feed(data, self)
    }

    pub fn flush(&mut self, parser: &mut dyn LogParser) {
        parser.flush(self);
    }

    pub fn take_alerts(&mut self) -> Vec<Alert> {
        self.pass_closed();
        self.enriched = 0;
        std::mem::take(&mut self.alerts)
    }
}

impl RecordSink for Pipeline {
    fn record(&mut self, rec: &Record) {
        self.current.records += 1;
        self.joiner.push(rec, &mut self.events);
        if !self.skip_log_sources.is_empty() {
            let skip = &self.skip_log_sources;
            self.events
                .retain(|e| e.client_ip.is_none_or(|ip| !skip.contains(&ip)));
        }
        if !self.events.is_empty() {
            self.dispatch();
        }
    }

    fn malformed(&mut self, m: Malformed) {
        note_malformed(&mut self.current, m);
    }
}

/// Reads one whole file into `sink`, counting into the statistics `stats` finds in it: the
/// file's statistics (of what was read), and the error that stopped it early.
fn read_counted<S: RecordSink>(
    lf: &LogFile,
    sink: &mut S,
    stats: fn(&mut S) -> &mut FileStats,
    progress: &mut dyn FnMut(u64),
) -> (FileStats, Option<SourceError>) {
    *stats(sink) = FileStats {
        path: lf.path.clone(),
        ..FileStats::default()
    };
    let (lines, bytes, err) = read_log(lf, sink, progress);
    let mut s = std::mem::take(stats(sink));
    s.lines = lines;
    s.bytes = bytes;
    (s, err)
}

/// Reads each file with `read`, telling `progress`, into `out`'s files and errors.
fn read_files(
    files: &[LogFile],
    progress: &mut dyn FnMut(&Path, u64),
    out: &mut Analysis,
    mut read: impl FnMut(&LogFile, &mut dyn FnMut(u64)) -> (FileStats, Option<SourceError>),
) {
    for f in files {
        progress(&f.path, 0);
        let mut tick = |n: u64| progress(&f.path, n);
        let (stats, err) = read(f, &mut tick);
        // A file cut short still counts what was read of it.
        if err.is_none() || stats.lines > 0 {
            out.files.push((f.clone(), stats));
        }
        out.errors.extend(err);
    }
}

/// Reads one whole file (plain or gzip) into `sink`: the lines and bytes read, and the error
/// that stopped it early (what came before it is read).
fn read_log(
    lf: &LogFile,
    sink: &mut dyn RecordSink,
    progress: &mut dyn FnMut(u64),
) -> (u64, u64, Option<SourceError>) {
    let mut parser = file::make_parser(lf.format, lf.prefix.as_ref(), lf.year);
    let mut input = match file::open(&lf.path) {
        Ok(i) => i,
        Err(e) => return (0, 0, Some(e)),
    };
    // Read straight into the parse buffer; only an unfinished last line is moved back.
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut total = 0u64;
    let mut cap = sources::EntryCap::new(sources::DEFAULT_MAX_ENTRY);
    loop {
        let filled = buf.len();
        buf.resize(filled + CHUNK, 0);
        let n = match input.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                buf.truncate(filled);
                continue;
            }
            Err(e) => {
                // Report what was read before the error (a truncated .gz) and the error.
                buf.truncate(filled);
                parser.finish(&buf, sink);
                let lines = parser.line().saturating_sub(1);
                let err = if total > 0 {
                    SourceError::Truncated {
                        path: lf.path.clone(),
                        lines,
                        source: e,
                    }
                } else {
                    SourceError::io(&lf.path, e)
                };
                return (lines, total, Some(err));
            }
        };
        buf.truncate(filled + n);
        if n == 0 {
            break;
        }
        total += n as u64;
        progress(n as u64);
        if cap.skipping() {
            if !cap.check(&mut buf, parser.as_mut(), sink) {
                continue;
            }
            parser.flush(sink);
            parser = fresh_parser(lf, parser.line());
        }
        let used = parser.feed(&buf, sink);
        buf.drain(..used);
        if cap.check(&mut buf, parser.as_mut(), sink) {
            parser.flush(sink);
            parser = fresh_parser(lf, parser.line());
            let used = parser.feed(&buf, sink);
            buf.drain(..used);
        }
    }
    parser.finish(&buf, sink);
    (parser.line().saturating_sub(1), total, None)
}

/// A new parser for `lf` from line `line` on: after a runaway entry, its buffers go with the
/// old one.
fn fresh_parser(lf: &LogFile, line: u64) -> Box<dyn LogParser> {
    let mut p = file::make_parser(lf.format, lf.prefix.as_ref(), lf.year);
    p.set_line(line);
    p
}

/// Every event a file yields (golden tests, and `analyze --events`).
pub fn events_of(lf: &LogFile) -> Result<(Vec<Event>, FileStats), SourceError> {
    let mut p = Pipeline::new("test", &DetectConfig::default());
    p.keep_events = true;
    let stats = p.read_file(lf, &mut |_| {})?;
    p.joiner.finish(&mut p.events);
    p.dispatch();
    Ok((p.kept, stats))
}

/// The files behind the paths given on the command line: files as they are, directories
/// searched for logs, data directories through their `postgresql.conf`. When one log was
/// written in several formats (same stem), only the richest is kept: csvlog, then jsonlog,
/// then stderr. Returns the files in time order and the paths that yielded nothing.
pub fn discover(
    paths: &[PathBuf],
    hints: &file::Hints,
) -> (Vec<LogFile>, Vec<String>, Vec<(PathBuf, PathBuf)>) {
    let mut errors = Vec::new();
    let mut candidates: Vec<(PathBuf, file::Hints)> = Vec::new();
    for p in paths {
        if p.is_dir() {
            match sources::pgconf::PgConf::read_dir(p) {
                Ok(Some(conf)) => {
                    let mut h = hints.clone();
                    if h.prefix.is_none() {
                        match conf.prefix() {
                            Ok(pr) => h.prefix = Some(pr),
                            Err(e) => {
                                errors.push(format!("{}: {e}", p.join("postgresql.conf").display()))
                            }
                        }
                    }
                    let locs = conf.log_locations();
                    if locs.is_empty() {
                        errors.push(format!(
                            "{}: logging_collector is off, so the logs are wherever the server's stderr goes; point pgvigil at that file",
                            p.display()
                        ));
                    }
                    for loc in locs {
                        collect(&loc, &h, &mut candidates, &mut errors);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        collect(p, hints, &mut candidates, &mut errors);
    }
    let mut files = Vec::new();
    for (path, h) in candidates {
        match file::inspect(&path, &h) {
            Ok(lf) => files.push(lf),
            Err(e) => errors.push(e.to_string()),
        }
    }
    // Same log in several formats: keep one.
    let rank = |f: &LogFile| match f.format {
        sources::LogFormat::Csvlog => 0,
        sources::LogFormat::Jsonlog => 1,
        sources::LogFormat::Stderr => 2,
        sources::LogFormat::Pgbouncer => 3,
    };
    let mut skipped = Vec::new();
    files.sort_by(|a, b| {
        file::stem(&a.path)
            .cmp(&file::stem(&b.path))
            .then(rank(a).cmp(&rank(b)))
    });
    let mut kept: Vec<LogFile> = Vec::new();
    for f in files {
        match kept.last() {
            Some(k) if file::stem(&k.path) == file::stem(&f.path) && k.format != f.format => {
                skipped.push((f.path.clone(), k.path.clone()));
            }
            _ => kept.push(f),
        }
    }
    kept.sort_by(|a, b| a.first_time.cmp(&b.first_time).then(a.path.cmp(&b.path)));
    (kept, errors, skipped)
}

fn collect(
    p: &Path,
    h: &file::Hints,
    out: &mut Vec<(PathBuf, file::Hints)>,
    errors: &mut Vec<String>,
) {
    if p.is_dir() {
        match file::list_dir(p) {
            Ok(list) if list.is_empty() => {
                errors.push(format!("{}: no log files in this directory", p.display()))
            }
            Ok(list) => out.extend(list.into_iter().map(|f| (f, h.clone()))),
            Err(e) => errors.push(e.to_string()),
        }
    } else if file::is_stdin(p) {
        out.push((p.to_path_buf(), h.clone()));
    } else {
        // Plain files and also a Debian log path given without rotation suffix.
        match std::fs::metadata(p) {
            Ok(_) => out.push((p.to_path_buf(), h.clone())),
            Err(e) => errors.push(format!("{}: {e}", p.display())),
        }
    }
}

/// What a batch run over files produced.
pub struct Analysis {
    /// Files read, with their statistics.
    pub files: Vec<(LogFile, FileStats)>,
    /// Files that could not be read to the end.
    pub errors: Vec<SourceError>,
    /// Every event, when asked for.
    pub events: Vec<Event>,
    pub events_total: u64,
    pub alerts_total: u64,
    /// Profile entities held at the end, and dropped at the caps.
    pub profile_size: (usize, u64),
    /// Access-anomaly findings held back by the rate limit.
    pub anomalies_suppressed: u64,
}

/// Reads the files in order through one pipeline (`analyze`). Each alert goes to `on_alert`
/// once, in its final state, as soon as it is closed (quiet for the quiet period, or at the
/// end of the input): memory stays bounded however long the logs. `progress` is told which
/// file and how many bytes were read. With `threads` ≥ 2, reading (parsing, joining sessions)
/// and detection (enrichment, detectors, profile) run on two threads, the events passing
/// between them in order: the same alerts, sooner.
#[allow(clippy::too_many_arguments)]
pub fn analyze(
    files: &[LogFile],
    server: &str,
    detect: &DetectConfig,
    enricher: Option<std::sync::Arc<enrich::Enricher>>,
    keep_events: bool,
    on_alert: Box<dyn FnMut(Alert) + Send>,
    progress: &mut dyn FnMut(&Path, u64),
    threads: usize,
) -> Analysis {
    let mut p = Pipeline::new(server, detect);
    p.enricher = enricher;
    p.keep_events = keep_events;
    p.engine.set_batch();
    // Files are read one after the other: PgBouncer's own connections to the server are
    // learnt from its logs first, so that a server log read before them does not count them
    // as logins. A file that cannot be read is reported when its turn comes.
    for f in files
        .iter()
        .filter(|f| f.format == sources::LogFormat::Pgbouncer && !file::is_stdin(&f.path))
    {
        let _ = sources::pgbouncer::scan_own(&f.path, &mut p.joiner.pooler);
    }
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c2 = count.clone();
    let mut on_alert = on_alert;
    p.on_final = Some(Box::new(move |a| {
        c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        on_alert(a)
    }));
    let mut out = Analysis {
        files: Vec::new(),
        errors: Vec::new(),
        events: Vec::new(),
        events_total: 0,
        alerts_total: 0,
        profile_size: (0, 0),
        anomalies_suppressed: 0,
    };
    if threads < 2 || !read_beside(&mut p, files, progress, &mut out) {
        read_files(files, progress, &mut out, |f, tick| {
            read_counted(f, &mut p, |p| &mut p.current, tick)
        });
        p.finish();
    }
    out.events = std::mem::take(&mut p.kept);
    out.events_total = p.events_total;
    out.alerts_total = count.load(std::sync::atomic::Ordering::Relaxed);
    out.profile_size = p.engine.profile.size();
    out.anomalies_suppressed = p.engine.rate.rolled_up;
    out
}

/// Events per hand-over between the reading and the detecting thread, and hand-overs in
/// flight: enough to keep both busy, little enough to keep memory flat.
const BATCH: usize = 4096;
const BATCHES_IN_FLIGHT: usize = 16;

enum Handover {
    Events(Vec<Event>),
    /// End of input, with the newest event time read.
    End(EventTime),
}

/// The reading half of a two-thread `analyze`: parses, joins sessions, hands events over.
struct Front {
    joiner: SessionJoiner,
    batch: Vec<Event>,
    tx: std::sync::mpsc::SyncSender<Handover>,
    current: FileStats,
}

impl Front {
    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        // A send fails only when the detecting thread is gone, which `read_beside` reports.
        let _ = self.tx.send(Handover::Events(b));
    }
}

impl RecordSink for Front {
    fn record(&mut self, rec: &Record) {
        self.current.records += 1;
        self.joiner.push(rec, &mut self.batch);
        if self.batch.len() >= BATCH {
            self.hand_over();
        }
    }

    fn malformed(&mut self, m: Malformed) {
        note_malformed(&mut self.current, m);
    }
}

fn note_malformed(stats: &mut FileStats, m: Malformed) {
    stats.malformed += 1;
    if stats.first_malformed.len() < MALFORMED_SHOWN {
        stats.first_malformed.push(m);
    }
}

/// Runs `p` on a thread of its own, fed by this one reading `files`, to the end of the
/// input. False, with nothing read, when no thread could be started.
fn read_beside(
    p: &mut Pipeline,
    files: &[LogFile],
    progress: &mut dyn FnMut(&Path, u64),
    out: &mut Analysis,
) -> bool {
    let mut joiner = SessionJoiner::new();
    joiner.pooler = p.joiner.pooler.clone();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Handover>(BATCHES_IN_FLIGHT);
        let detector = std::thread::Builder::new()
            .name("pgvigil-detect".into())
            .spawn_scoped(scope, move || {
                for h in rx {
                    match h {
                        Handover::Events(mut evs) => {
                            p.events.append(&mut evs);
                            p.dispatch();
                        }
                        Handover::End(last) => p.finish_at(last),
                    }
                }
            });
        let Ok(detector) = detector else {
            return false;
        };
        let mut front = Front {
            joiner,
            batch: Vec::with_capacity(BATCH),
            tx,
            current: FileStats::default(),
        };
        read_files(files, progress, out, |f, tick| {
            read_counted(f, &mut front, |fr| &mut fr.current, tick)
        });
        front.joiner.finish(&mut front.batch);
        front.hand_over();
        let _ = front.tx.send(Handover::End(front.joiner.now()));
        drop(front);
        if let Err(panic) = detector.join() {
            // A detector's panic is a bug: let it surface as one.
            std::panic::resume_unwind(panic);
        }
        true
    })
}

/// [`analyze`], collecting the alerts (for tests and small inputs).
pub fn analyze_collect(
    files: &[LogFile],
    server: &str,
    detect: &DetectConfig,
    threads: usize,
) -> (Vec<Alert>, Analysis) {
    let alerts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let a2 = alerts.clone();
    let analysis = analyze(
        files,
        server,
        detect,
        None,
        false,
        Box::new(move |a| {
            if let Ok(mut v) = a2.lock() {
                v.push(a);
            }
        }),
        &mut |_, _| {},
        threads,
    );
    let mut v = alerts
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    crate::output::sort_alerts(&mut v);
    (v, analysis)
}
