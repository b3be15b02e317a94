//! csvlog (`log_destination = csvlog`): one CSV record per entry, quoted fields may span lines.
//!
//! Column sets: PostgreSQL 12 and older have 23 columns, 13 adds `backend_type` (24), 14–17 add
//! `leader_pid` and `query_id` (26). The columns pgvigil reads are at the same positions in all.

use super::{timestamp, LogParser, Malformed, Record, RecordSink, Severity};
use csv_core::{ReadRecordResult, Reader};

const LOG_TIME: usize = 0;
const USER: usize = 1;
const DATABASE: usize = 2;
const PID: usize = 3;
const CONNECTION_FROM: usize = 4;
const SESSION_ID: usize = 5;
const SEVERITY: usize = 11;
const SQLSTATE: usize = 12;
const MESSAGE: usize = 13;
const DETAIL: usize = 14;
const HINT: usize = 15;
const QUERY: usize = 19;
const APPLICATION: usize = 22;
const BACKEND_TYPE: usize = 23;

pub struct CsvlogParser {
    rdr: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    rec: Record,
    line: u64,
    unknown_zone_reported: bool,
}

impl Default for CsvlogParser {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvlogParser {
    pub fn new() -> Self {
        CsvlogParser {
            rdr: Reader::new(),
            out: vec![0; 4096],
            ends: vec![0; 32],
            rec: Record::default(),
            line: 1,
            unknown_zone_reported: false,
        }
    }

    fn handle(&mut self, nfields: usize, line: u64, sink: &mut dyn RecordSink) {
        let out = &self.out;
        let ends = &self.ends[..nfields];
        let field = |i: usize| -> &[u8] {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &out[start..ends[i]]
        };
        if nfields == 1 && field(0).is_empty() {
            return;
        }
        if !matches!(nfields, 23 | 24 | 26) {
            sink.malformed(Malformed {
                line,
                reason: format!(
                    "csvlog record has {nfields} columns; PostgreSQL 12–17 write 23, 24 or 26"
                ),
            });
            return;
        }
        let text = |i: usize| -> std::borrow::Cow<'_, str> {
            match std::str::from_utf8(field(i)) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(field(i)),
            }
        };
        let rec = &mut self.rec;
        rec.clear();
        rec.line = line;
        let time = text(LOG_TIME);
        match timestamp::parse_zoned(&time) {
            Some(p) => {
                rec.time = Some(p.time);
                if !p.zone_known && !self.unknown_zone_reported {
                    self.unknown_zone_reported = true;
                    sink.malformed(Malformed {
                        line,
                        reason:
                            "unknown time zone abbreviation; times in this file are taken as UTC"
                                .into(),
                    });
                }
            }
            None => {
                sink.malformed(Malformed {
                    line,
                    reason: format!("csvlog log_time {time:?} is not a timestamp"),
                });
                return;
            }
        }
        rec.user.push_str(&text(USER));
        rec.database.push_str(&text(DATABASE));
        rec.pid = std::str::from_utf8(field(PID))
            .ok()
            .and_then(|s| s.parse().ok());
        let from = text(CONNECTION_FROM);
        match from.rsplit_once(':') {
            Some((h, p)) if !from.starts_with('[') => {
                rec.host.push_str(h);
                rec.port = p.parse().ok();
            }
            _ => rec.host.push_str(&from),
        }
        rec.session_id.push_str(&text(SESSION_ID));
        let sev = text(SEVERITY);
        rec.severity = Severity::parse(&sev);
        rec.severity_word.push_str(&sev);
        let st = field(SQLSTATE);
        if st.len() == 5 {
            rec.sqlstate = Some([st[0], st[1], st[2], st[3], st[4]]);
        }
        rec.message.push_str(&text(MESSAGE));
        rec.detail.push_str(&text(DETAIL));
        rec.hint.push_str(&text(HINT));
        rec.statement.push_str(&text(QUERY));
        rec.application.push_str(&text(APPLICATION));
        if nfields > BACKEND_TYPE {
            rec.backend_type.push_str(&text(BACKEND_TYPE));
        }
        sink.record(&self.rec);
    }
}

impl LogParser for CsvlogParser {
    fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) -> usize {
        let mut pos = 0;
        let mut done = 0;
        let mut nout = 0;
        let mut nend = 0;
        loop {
            let (res, i, o, e) =
                self.rdr
                    .read_record(&data[pos..], &mut self.out[nout..], &mut self.ends[nend..]);
            pos += i;
            nout += o;
            nend += e;
            match res {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    let line = self.line;
                    self.line += memchr::memchr_iter(b'\n', &data[done..pos]).count() as u64;
                    self.handle(nend, line, sink);
                    done = pos;
                    nout = 0;
                    nend = 0;
                }
            }
        }
        // An unfinished record is parsed again from its start when more data comes.
        self.rdr.reset();
        done
    }

    fn flush(&mut self, _sink: &mut dyn RecordSink) {}

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
    struct Collect(Vec<Record>, Vec<Malformed>);
    impl RecordSink for Collect {
        fn record(&mut self, r: &Record) {
            self.0.push(r.clone());
        }
        fn malformed(&mut self, m: Malformed) {
            self.1.push(m);
        }
    }

    const PG15: &str = "2026-11-28 10:23:41.084 UTC,\"nosuch\",\"appdb\",4884,\"127.0.0.5:58246\",6b0aabad.1314,2,\"authentication\",2026-11-28 10:23:41 UTC,3/3,0,FATAL,28P01,\"password authentication failed for user \"\"nosuch\"\"\",\"Role \"\"nosuch\"\" does not exist.\nConnection matched pg_hba.conf line 3: \"\"host all all 127.0.0.0/8 scram-sha-256\"\"\",,,,,,,,\"\",\"client backend\",,0\n";

    #[test]
    fn quoted_fields_span_lines_and_every_column_set_is_read() {
        // PostgreSQL 14–17 (26 columns), 13 (24: no leader_pid, query_id), 12 (23: no
        // backend_type either).
        let pg13 = PG15.replace(",\"client backend\",,0\n", ",\"client backend\"\n");
        let pg12 = PG15.replace(",\"client backend\",,0\n", "\n");
        for (v, text) in [("15", PG15.to_string()), ("13", pg13), ("12", pg12)] {
            let mut p = CsvlogParser::new();
            let mut c = Collect::default();
            assert_eq!(p.feed(text.as_bytes(), &mut c), text.len(), "PG {v}");
            assert!(c.1.is_empty(), "PG {v}: {:?}", c.1);
            let r = &c.0[0];
            assert_eq!(r.sqlstate_str(), Some("28P01"));
            assert_eq!((r.host.as_str(), r.port), ("127.0.0.5", Some(58246)));
            assert!(r
                .detail
                .starts_with("Role \"nosuch\" does not exist.\nConnection"));
            assert_eq!(p.line(), 3, "the record spans two lines");
        }
    }

    #[test]
    fn a_record_cut_in_a_quoted_field_waits_for_the_rest() {
        let mut p = CsvlogParser::new();
        let mut c = Collect::default();
        let cut = PG15.find("Connection matched").unwrap();
        assert_eq!(p.feed(&PG15.as_bytes()[..cut], &mut c), 0);
        assert_eq!(p.feed(PG15.as_bytes(), &mut c), PG15.len());
        assert_eq!(c.0.len(), 1);
    }

    #[test]
    fn wrong_column_counts_are_reported() {
        let mut p = CsvlogParser::new();
        let mut c = Collect::default();
        p.feed(b"a,b,c\n", &mut c);
        assert!(c.1[0].reason.contains("3 columns"), "{:?}", c.1);
    }
}
