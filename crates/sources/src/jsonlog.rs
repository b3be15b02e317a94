//! jsonlog (PostgreSQL 15+): one JSON object per line; keys with empty values are omitted.
//!
//! Also CloudNativePG's log (what `kubectl logs` shows of an instance pod): its instance
//! manager reads PostgreSQL's csvlog and writes each entry as `{"logger":"postgres",
//! "record":{…}}`, the csvlog columns under their csvlog names (`log_time`, `user_name`,
//! `connection_from`, …), pgaudit's entries as `{"logger":"pgaudit","record":{…,"audit":{…}}}`;
//! the manager's own lines (other loggers) are not PostgreSQL's and are passed over.

use super::{timestamp, LogParser, Malformed, Record, RecordSink, Severity};
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dbname: Option<Cow<'a, str>>,
    pid: Option<u32>,
    #[serde(borrow)]
    remote_host: Option<Cow<'a, str>>,
    remote_port: Option<u16>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    state_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    detail: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    statement: Option<Cow<'a, str>>,
    #[serde(borrow)]
    application_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    backend_type: Option<Cow<'a, str>>,
    /// CloudNativePG's envelope: which program the line is from, and PostgreSQL's entry.
    #[serde(borrow)]
    logger: Option<Cow<'a, str>>,
    #[serde(borrow)]
    record: Option<CnpgRecord<'a>>,
}

/// A csvlog entry as CloudNativePG writes it. Its values are strings (the csv columns as
/// they were), numbers in versions that read PostgreSQL's own JSON.
#[derive(Deserialize)]
struct CnpgRecord<'a> {
    #[serde(borrow)]
    log_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    database_name: Option<Cow<'a, str>>,
    process_id: Option<StrOrNum<'a>>,
    #[serde(borrow)]
    connection_from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sql_state_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    detail: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hint: Option<Cow<'a, str>>,
    #[serde(borrow)]
    query: Option<Cow<'a, str>>,
    #[serde(borrow)]
    application_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    backend_type: Option<Cow<'a, str>>,
    /// pgaudit's fields, taken out of the message.
    audit: Option<CnpgAudit>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrNum<'a> {
    Num(u64),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

impl StrOrNum<'_> {
    fn number(&self) -> Option<u32> {
        match self {
            StrOrNum::Num(n) => u32::try_from(*n).ok(),
            StrOrNum::Str(s) => s.parse().ok(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CnpgAudit {
    audit_type: String,
    statement_id: String,
    substatement_id: String,
    class: String,
    command: String,
    object_type: String,
    object_name: String,
    statement: String,
    parameter: String,
    rows: String,
}

impl CnpgAudit {
    /// The message pgaudit wrote (`AUDIT: SESSION,1,1,READ,…`), which CloudNativePG took apart.
    fn message(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let mut fields = vec![
            &self.audit_type,
            &self.statement_id,
            &self.substatement_id,
            &self.class,
            &self.command,
            &self.object_type,
            &self.object_name,
            &self.statement,
            &self.parameter,
        ];
        if !self.rows.is_empty() {
            fields.push(&self.rows);
        }
        let mut out = String::from("AUDIT: ");
        if w.write_record(fields).is_ok() {
            if let Ok(bytes) = w.into_inner() {
                out.push_str(String::from_utf8_lossy(&bytes).trim_end_matches('\n'));
            }
        }
        out
    }
}

impl<'a> CnpgRecord<'a> {
    /// The entry in jsonlog's terms.
    fn into_entry(self) -> Entry<'a> {
        let (host, port) = match self.connection_from {
            Some(Cow::Borrowed(from)) => match from.rsplit_once(':') {
                Some((h, p)) if !from.starts_with('[') => (Some(Cow::Borrowed(h)), p.parse().ok()),
                _ => (Some(Cow::Borrowed(from)), None),
            },
            Some(Cow::Owned(from)) => match from.rsplit_once(':') {
                Some((h, p)) if !from.starts_with('[') => {
                    (Some(Cow::Owned(h.to_string())), p.parse().ok())
                }
                _ => (Some(Cow::Owned(from)), None),
            },
            None => (None, None),
        };
        let message = match &self.audit {
            Some(a) if !a.audit_type.is_empty() => Some(Cow::Owned(a.message())),
            _ => self.message,
        };
        Entry {
            timestamp: self.log_time,
            user: self.user_name,
            dbname: self.database_name,
            pid: self.process_id.as_ref().and_then(StrOrNum::number),
            remote_host: host,
            remote_port: port,
            session_id: self.session_id,
            error_severity: self.error_severity,
            state_code: self.sql_state_code,
            message,
            detail: self.detail,
            hint: self.hint,
            statement: self.query,
            application_name: self.application_name,
            backend_type: self.backend_type,
            logger: None,
            record: None,
        }
    }
}

pub struct JsonlogParser {
    rec: Record,
    line: u64,
    unknown_zone_reported: bool,
}

impl Default for JsonlogParser {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonlogParser {
    pub fn new() -> Self {
        JsonlogParser {
            rec: Record::default(),
            line: 1,
            unknown_zone_reported: false,
        }
    }

    fn process(&mut self, raw: &[u8], sink: &mut dyn RecordSink) {
        let line = self.line;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|c| c.is_ascii_whitespace()) {
            return;
        }
        // PostgreSQL writes names as the client sent them: a role or database name that is
        // not UTF-8 is not JSON either. Read such a line with the bytes replaced.
        let lossy;
        let first = serde_json::from_slice::<Entry<'_>>(raw);
        let parsed = match first {
            Err(_) if std::str::from_utf8(raw).is_err() => {
                lossy = String::from_utf8_lossy(raw).into_owned();
                serde_json::from_str::<Entry<'_>>(&lossy)
            }
            other => other,
        };
        let e: Entry<'_> = match parsed {
            Ok(mut e) => match e.record.take() {
                Some(r) if matches!(e.logger.as_deref(), Some("postgres" | "pgaudit")) => {
                    r.into_entry()
                }
                // CloudNativePG's own lines: its instance manager, backups, WAL archiving.
                _ if e.logger.is_some() && e.timestamp.is_none() => return,
                _ => e,
            },
            Err(err) => {
                sink.malformed(Malformed {
                    line,
                    reason: format!("not a jsonlog entry: {err}"),
                });
                return;
            }
        };
        let (Some(ts), Some(msg)) = (e.timestamp.as_deref(), e.message.as_deref()) else {
            sink.malformed(Malformed {
                line,
                reason: "jsonlog entry without \"timestamp\" or \"message\"".into(),
            });
            return;
        };
        let Some(p) = timestamp::parse_zoned(ts) else {
            sink.malformed(Malformed {
                line,
                reason: format!("jsonlog timestamp {ts:?} is not a timestamp"),
            });
            return;
        };
        if !p.zone_known && !self.unknown_zone_reported {
            self.unknown_zone_reported = true;
            sink.malformed(Malformed {
                line,
                reason: "unknown time zone abbreviation; times in this file are taken as UTC"
                    .into(),
            });
        }
        let r = &mut self.rec;
        r.clear();
        r.line = line;
        r.time = Some(p.time);
        r.pid = e.pid;
        let put = |dst: &mut String, v: Option<Cow<'_, str>>| {
            if let Some(v) = v {
                dst.push_str(&v);
            }
        };
        put(&mut r.user, e.user);
        put(&mut r.database, e.dbname);
        put(&mut r.host, e.remote_host);
        r.port = e.remote_port;
        put(&mut r.session_id, e.session_id);
        let sev = e.error_severity.unwrap_or(Cow::Borrowed("LOG"));
        r.severity = Severity::parse(&sev);
        r.severity_word.push_str(&sev);
        if let Some(st) = e.state_code.as_deref().map(str::as_bytes) {
            if st.len() == 5 {
                r.sqlstate = Some([st[0], st[1], st[2], st[3], st[4]]);
            }
        }
        r.message.push_str(msg);
        put(&mut r.detail, e.detail);
        put(&mut r.hint, e.hint);
        put(&mut r.statement, e.statement);
        put(&mut r.application, e.application_name);
        put(&mut r.backend_type, e.backend_type);
        sink.record(&self.rec);
    }
}

impl LogParser for JsonlogParser {
    fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) -> usize {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            self.process(&data[start..nl], sink);
            self.line += 1;
            start = nl + 1;
        }
        start
    }

    fn flush(&mut self, _sink: &mut dyn RecordSink) {}

    fn line(&self) -> u64 {
        self.line
    }

    fn set_line(&mut self, line: u64) {
        self.line = line;
    }
}
