//! Following standard input (`kubectl logs -f … | pgvigil run --stdin`): a log that arrives
//! as a stream, with no file to reopen, rotate or seek. A thread reads it (gzip'd or not) and
//! hands the bytes over; each poll parses what arrived. The format is decided from the first
//! lines, as for a file.

use crate::pipeline::Pipeline;
use sources::file::{self, Hints, LogFile};
use sources::{EntryCap, LogParser};
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError};

/// Bytes handed over at once, and hand-overs waiting: the reader waits beyond that (the
/// pipe fills, and the writer waits too) rather than holding the stream in memory.
const CHUNK: usize = 1 << 20;
const IN_FLIGHT: usize = 8;
/// The format is decided on this much of the stream, or on what came within
/// `DECIDE_WITHIN` of its first byte, or at its end.
const DECIDE_BYTES: usize = 64 * 1024;
const DECIDE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub struct StdinFeed {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    hints: Hints,
    /// The parser, once the format is known.
    parser: Option<Box<dyn LogParser>>,
    buf: Vec<u8>,
    first_byte_at: Option<std::time::Instant>,
    cap: EntryCap,
    ended: bool,
    /// How the stream ended, if by an error.
    pub error: Option<String>,
    /// Malformed lines met since the follower last took the count.
    pub malformed: u64,
}

impl StdinFeed {
    /// Starts reading standard input on a thread of its own.
    pub fn start(hints: Hints, max_entry: usize) -> StdinFeed {
        let (tx, rx) = std::sync::mpsc::sync_channel(IN_FLIGHT);
        let reader = std::thread::Builder::new()
            .name("pgvigil-stdin".into())
            .spawn(move || {
                let mut input = match file::stdin_reader() {
                    Ok(i) => i,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string())));
                        return;
                    }
                };
                loop {
                    let mut chunk = vec![0u8; CHUNK];
                    match input.read(&mut chunk) {
                        Ok(0) => return,
                        Ok(n) => {
                            chunk.truncate(n);
                            if tx.send(Ok(chunk)).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        let mut feed = StdinFeed {
            rx,
            hints,
            parser: None,
            buf: Vec::new(),
            first_byte_at: None,
            cap: EntryCap::new(max_entry),
            ended: false,
            error: None,
            malformed: 0,
        };
        if let Err(e) = reader {
            feed.ended = true;
            feed.error = Some(format!("no thread to read standard input: {e}"));
        }
        feed
    }

    /// The stream has ended and everything in it was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes received but not yet parsed.
    pub fn waiting(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Parses what arrived since the last poll; the bytes consumed.
    pub fn poll(&mut self, p: &mut Pipeline, read_per_poll: usize) -> u64 {
        let mut arrived = 0usize;
        while !self.ended && arrived < read_per_poll {
            match self.rx.try_recv() {
                Ok(Ok(chunk)) => {
                    arrived += chunk.len();
                    self.first_byte_at
                        .get_or_insert_with(std::time::Instant::now);
                    self.buf.extend_from_slice(&chunk);
                }
                Ok(Err(e)) => {
                    self.error = Some(e.to_string());
                    self.ended = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
        if self.parser.is_none() {
            let decide = self.ended
                || self.buf.len() >= DECIDE_BYTES
                || self
                    .first_byte_at
                    .is_some_and(|t| t.elapsed() >= DECIDE_WITHIN);
            if !decide || (self.buf.is_empty() && !self.ended) {
                return 0;
            }
            let lf: LogFile = file::decide(
                Path::new(file::STDIN),
                &self.buf,
                &self.hints,
                0,
                file::current_year(),
            );
            tracing::info!(format = %lf.format, log_line_prefix = lf.prefix.as_ref().map(|p| p.as_str()).unwrap_or(""), "reading standard input");
            self.parser = Some(file::make_parser(lf.format, lf.prefix.as_ref(), lf.year));
        }
        let Some(parser) = self.parser.as_mut() else {
            return 0;
        };
        p.begin_file(Path::new(file::STDIN));
        let mut used = p.feed(parser.as_mut(), &self.buf);
        self.buf.drain(..used);
        // An entry longer than max_entry_bytes: counted, and dropped up to its end.
        let before = self.buf.len();
        if self.cap.check(&mut self.buf, parser.as_mut(), p) {
            p.flush(parser.as_mut());
            let more = p.feed(parser.as_mut(), &self.buf);
            self.buf.drain(..more);
        }
        used += before - self.buf.len();
        if self.ended {
            let rest = std::mem::take(&mut self.buf);
            parser.finish(&rest, p);
            used += rest.len();
        } else if arrived == 0 {
            // Nothing more has come: an entry waiting for DETAIL lines is complete (a server
            // writes an entry's lines together).
            p.flush(parser.as_mut());
        }
        let stats = p.end_file(0, 0);
        self.malformed += stats.malformed;
        for m in stats.first_malformed {
            tracing::warn!(path = "<standard input>", line = m.line, "{}", m.reason);
        }
        p.tick();
        used as u64
    }
}
