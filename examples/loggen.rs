//! Writes a realistic PostgreSQL 15 log for benchmarks, in stderr, csvlog and jsonlog, of a
//! server exposed to the internet: application pools logging in and out (70% of the events),
//! people mistyping passwords (5%), and attacks from a new address each (25%): most try a few
//! passwords, one in twenty keeps going long enough to raise an alert. Over half the lines
//! are attack lines, from well over 100,000 distinct addresses, so detector state for idle
//! sources must expire.
//!
//! `cargo run --release --example loggen -- OUT_DIR LINES` writes OUT_DIR/bench.{log,csv,json}.

use pgvigil::sources::LogFormat;
use sim::{Entry, LogWriter};
use std::io::BufWriter;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so every run measures the same input.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The three logs, written from the same entries.
struct Writers {
    stderr: LogWriter<BufWriter<std::fs::File>>,
    csv: LogWriter<BufWriter<std::fs::File>>,
    json: LogWriter<BufWriter<std::fs::File>>,
    lines: u64,
}

impl Writers {
    fn write(&mut self, e: &Entry<'_>) -> std::io::Result<()> {
        self.stderr.write(e)?;
        self.csv.write(e)?;
        self.json.write(e)?;
        self.lines = self.stderr.lines;
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("bench-out"));
    let target: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    std::fs::create_dir_all(&out)?;
    let open =
        |n: &str| std::fs::File::create(out.join(n)).map(|f| BufWriter::with_capacity(1 << 20, f));
    // stderr with Debian's prefix plus the client address, so fail2ban can be given <HOST>.
    let mut w = Writers {
        stderr: LogWriter::new(open("bench.log")?, LogFormat::Stderr, true),
        csv: LogWriter::new(open("bench.csv")?, LogFormat::Csvlog, true),
        json: LogWriter::new(open("bench.json")?, LogFormat::Jsonlog, true),
        lines: 0,
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ms: i64 = 1_795_800_000_000;
    let mut pid: u32 = 1000;
    let app_hosts: Vec<String> = (0..200)
        .map(|i| format!("10.1.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let roles = ["app", "reporting", "etl", "postgres", "alice", "bob"];
    let hba = "Connection matched pg_hba.conf line 98: \"host all all 0.0.0.0/0 scram-sha-256\"";
    let mut attackers: u64 = 0;
    let mut attack_lines: u64 = 0;
    while w.lines < target {
        let pick = rng.below(100);
        ms += 1 + rng.below(20) as i64;
        if pick < 70 {
            // An application session.
            pid = pid.wrapping_add(1).max(1000);
            let host = &app_hosts[rng.below(app_hosts.len() as u64) as usize];
            let port = 30000 + rng.below(30000) as u16;
            let role = roles[rng.below(3) as usize];
            let base = Entry {
                ms,
                pid,
                host,
                port,
                user: "",
                db: "",
                app: "",
                severity: "LOG",
                sqlstate: "00000",
                message: format!("connection received: host={host} port={port}"),
                detail: None,
            };
            w.write(&base)?;
            w.write(&Entry { ms: ms + 2, user: role, db: "appdb", message: format!("connection authenticated: identity=\"{role}\" method=scram-sha-256 (/etc/postgresql/15/main/pg_hba.conf:98)"), ..base })?;
            w.write(&Entry { ms: ms + 2, pid, host, port, user: role, db: "appdb", app: "", severity: "LOG", sqlstate: "00000", message: format!("connection authorized: user={role} database=appdb application_name=billing-api"), detail: None })?;
            w.write(&Entry { ms: ms + 40, pid, host, port, user: role, db: "appdb", app: "billing-api", severity: "LOG", sqlstate: "00000", message: format!("disconnection: session time: 0:00:00.040 user={role} database=appdb host={host} port={port}"), detail: None })?;
        } else if pick < 75 {
            // Someone mistyping a password once.
            pid = pid.wrapping_add(1).max(1000);
            let host = &app_hosts[rng.below(app_hosts.len() as u64) as usize];
            let role = roles[3 + rng.below(3) as usize];
            w.write(&Entry {
                ms,
                pid,
                host,
                port: 40000,
                user: "",
                db: "",
                app: "",
                severity: "LOG",
                sqlstate: "00000",
                message: format!("connection received: host={host} port=40000"),
                detail: None,
            })?;
            w.write(&Entry {
                ms: ms + 3,
                pid,
                host,
                port: 40000,
                user: role,
                db: "postgres",
                app: "",
                severity: "FATAL",
                sqlstate: "28P01",
                message: format!("password authentication failed for user \"{role}\""),
                detail: Some(hba.to_string()),
            })?;
        } else {
            // An attack from a new address, sized like the internet's background noise: most
            // try 1-3 passwords, some 4-9, one in twenty keeps going (10-40). At 30 ms apart,
            // 4 or more are an alert. Some name roles that do not exist (DETAIL with a
            // continuation line).
            attackers += 1;
            let lines_before = w.lines;
            let host = format!(
                "{}.{}.{}.{}",
                1 + rng.below(223),
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            );
            let n = match rng.below(100) {
                0..=69 => 1 + rng.below(3),
                70..=94 => 4 + rng.below(6),
                _ => 10 + rng.below(31),
            };
            let role = ["postgres", "admin", "root", "app"][rng.below(4) as usize];
            for k in 0..n {
                pid = pid.wrapping_add(1).max(1000);
                let t = ms + k as i64 * 30;
                let port = 20000 + rng.below(40000) as u16;
                w.write(&Entry {
                    ms: t,
                    pid,
                    host: &host,
                    port,
                    user: "",
                    db: "",
                    app: "",
                    severity: "LOG",
                    sqlstate: "00000",
                    message: format!("connection received: host={host} port={port}"),
                    detail: None,
                })?;
                let detail = if role == "admin" || role == "root" {
                    format!("Role \"{role}\" does not exist.\n{hba}")
                } else {
                    hba.to_string()
                };
                w.write(&Entry {
                    ms: t + 5,
                    pid,
                    host: &host,
                    port,
                    user: role,
                    db: "postgres",
                    app: "",
                    severity: "FATAL",
                    sqlstate: "28P01",
                    message: format!("password authentication failed for user \"{role}\""),
                    detail: Some(detail),
                })?;
            }
            ms += n as i64 * 30;
            attack_lines += w.lines - lines_before;
        }
    }
    w.stderr.flush()?;
    w.csv.flush()?;
    w.json.flush()?;
    eprintln!(
        "{} stderr lines, {attack_lines} of them attack lines, from {attackers} addresses, in {}",
        w.lines,
        out.display()
    );
    Ok(())
}
