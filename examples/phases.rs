//! Times the first stages alone on a log file — parsing, then parsing and session joining —
//! to see where `analyze` spends its time:
//! `cargo run --release --example phases -- FILE stderr|csvlog|jsonlog`
//! (stderr files are read with the benchmark's prefix, `%m [%p] %q%u@%d %h `).
use pgvigil::sources::session::SessionJoiner;
use pgvigil::sources::{file, LogFormat, Malformed, Record, RecordSink};
struct Null(u64);
impl RecordSink for Null {
    fn record(&mut self, r: &Record) {
        self.0 += r.message.len() as u64;
    }
    fn malformed(&mut self, _: Malformed) {}
}
struct Join(SessionJoiner, Vec<pgvigil::event::Event>, u64);
impl RecordSink for Join {
    fn record(&mut self, r: &Record) {
        self.0.push(r, &mut self.1);
        self.2 += self.1.len() as u64;
        self.1.clear();
    }
    fn malformed(&mut self, _: Malformed) {}
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let fmt: LogFormat = a[2].parse().unwrap();
    let data = std::fs::read(&a[1]).unwrap();
    let pfx = pgvigil::sources::prefix::Prefix::compile("%m [%p] %q%u@%d %h ").unwrap();
    let t = std::time::Instant::now();
    let mut p = file::make_parser(fmt, Some(&pfx), 2026);
    let mut n = Null(0);
    p.feed(&data, &mut n);
    p.flush(&mut n);
    println!("parse only: {:.2}s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let mut p = file::make_parser(fmt, Some(&pfx), 2026);
    let mut j = Join(SessionJoiner::new(), Vec::new(), 0);
    p.feed(&data, &mut j);
    p.flush(&mut j);
    println!(
        "parse+join: {:.2}s ({} events)",
        t.elapsed().as_secs_f64(),
        j.2
    );
}
