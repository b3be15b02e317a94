//! Bodies of the fuzz targets (`fuzz/`, cargo-fuzz), shared with a smoke test that runs them
//! on stable Rust in CI. Each feeds arbitrary bytes through a parser and the whole pipeline,
//! whole and in two pieces, and checks that both ways read the same entries.

use crate::detect::registry::DetectConfig;
use crate::pipeline::Pipeline;
use crate::sources::prefix::Prefix;
use crate::sources::{file, LogFormat, Malformed, Record, RecordSink};

#[derive(Default)]
struct Count {
    records: Vec<(Option<u32>, String, String, String)>,
    malformed: usize,
}

impl RecordSink for Count {
    fn record(&mut self, r: &Record) {
        self.records.push((
            r.pid,
            r.message.clone(),
            r.detail.clone(),
            r.statement.clone(),
        ));
    }
    fn malformed(&mut self, _: Malformed) {
        self.malformed += 1;
    }
}

fn parse(format: LogFormat, prefix: &Prefix, chunks: &[&[u8]]) -> Count {
    let mut p = file::make_parser(format, Some(prefix), 2026);
    let mut sink = Count::default();
    let mut buf = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        let used = p.feed(&buf, &mut sink);
        buf.drain(..used);
    }
    p.finish(&buf, &mut sink);
    sink
}

/// Any bytes, any format: no panic; split or whole, the same entries; and the pipeline
/// (session joining, every detector, the alert book) takes them without panicking.
pub fn parse_any(format: LogFormat, data: &[u8]) {
    let prefix = Prefix::compile("%m [%p] %q%u@%d %h ").expect("valid prefix");
    let whole = parse(format, &prefix, &[data]);
    // Split at a line boundary so that both readings see the same lines.
    if let Some(cut) = memchr::memchr(b'\n', data).map(|i| i + 1) {
        let split = parse(format, &prefix, &[&data[..cut], &data[cut..]]);
        assert_eq!(whole.records, split.records, "split input read differently");
    }
    let mut p = Pipeline::new("fuzz", &DetectConfig::default());
    let mut parser = file::make_parser(format, Some(&prefix), 2026);
    let used = p.feed(parser.as_mut(), data);
    parser.finish(&data[used..], &mut p);
    p.finish();
}

/// An arbitrary `log_line_prefix` and an arbitrary line: compiling either fails cleanly or
/// the matcher copes with any line.
pub fn prefix_any(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (prefix, line) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(p) = Prefix::compile(prefix) {
        let mut r = Record::default();
        let _ = p.match_line(line, &mut r);
    }
}

/// Any bytes as the proxy's first packet and as server messages during authentication: no
/// panic; a packet that parses as a startup packet encodes back to the same bytes.
pub fn proxy_packet_any(data: &[u8]) {
    use crate::proxy::protocol::{first_packet_len, parse_first, parse_server, FirstPacket};
    if data.len() >= 4 {
        let _ = first_packet_len([data[0], data[1], data[2], data[3]], 10_000);
    }
    if let Ok(FirstPacket::Startup(s)) = parse_first(data) {
        let declared = data
            .get(..4)
            .map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize);
        if declared == Some(data.len()) && std::str::from_utf8(data).is_ok() {
            assert_eq!(s.encode(), data, "a startup packet re-encodes to itself");
        }
    }
    if let Some((kind, body)) = data.split_first() {
        let _ = parse_server(*kind, body);
        let _ = crate::proxy::protocol::query_text(*kind, body);
    }
}
