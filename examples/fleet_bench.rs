//! Fleet load on one central PostgreSQL: N agents, each with its own store (SQLite, in
//! `--dir`) and the shipper `pgvigil run` uses, commit what a busy server's agent commits
//! (a report every 10 s with its login counts, a new alert a minute, and on one agent in ten
//! an attack: an alert updated every second and a new source every 2 s), while `--api` is
//! read by two clients. Driven by `bench/fleet`, which starts the central server and the API.
//!
//! Prints one line of figures per run; with `--outage SECONDS` the central server is stopped
//! (`--stop`, `--start`: shell commands) for that long a third of the way in, and at the end
//! each agent's totals are compared with the central store's: lost and doubled batches.

use anyhow::{bail, Context, Result};
use clap::Parser;
use pgvigil::alert::{Alert, AlertType, Entities, Severity};
use pgvigil::store::ship::{ShipHealth, Shipper};
use pgvigil::store::{Ingest, LoginHour, ServerReport, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The central store, as agents reach it.
    #[arg(long)]
    url: String,
    /// The same server as its superuser (for pg_stat_wal and pg_stat_activity).
    #[arg(long)]
    admin_url: String,
    /// A `pgvigil api` over the central store, and a reader token for it.
    #[arg(long)]
    api: String,
    #[arg(long)]
    token: String,
    #[arg(long)]
    agents: usize,
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Latencies are counted after this many seconds: the agents' first connections (and
    /// schema checks) come all at once at the start.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Where the agents' own stores go.
    #[arg(long)]
    dir: std::path::PathBuf,
    #[arg(long)]
    outage: Option<u64>,
    #[arg(long, default_value = "")]
    stop: String,
    #[arg(long, default_value = "")]
    start: String,
}

/// What one agent made, to compare with what the central store holds.
#[derive(Default)]
struct Made {
    alerts: u64,
    failed: u64,
    succeeded: u64,
    events: u64,
}

struct Agent {
    server: String,
    local: Arc<Store>,
    health: Arc<ShipHealth>,
    wake: std::sync::mpsc::Sender<()>,
    made: Made,
    attack: Option<Alert>,
}

fn alert(server: &str, n: u64, source: &str, now: i64) -> Alert {
    let t = pgvigil::event::format_time(now);
    Alert {
        id: uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{server}/{n}").as_bytes(),
        )
        .to_string(),
        alert_type: AlertType::BruteForce,
        display_name: "Suspected brute force attack".into(),
        severity: Severity::Medium,
        status: "Active".into(),
        intent: AlertType::BruteForce.intent().into(),
        techniques: vec!["T1110.001".into()],
        server: server.into(),
        start_time_utc: t.clone(),
        end_time_utc: t,
        entities: Entities {
            source_ip: Some(source.into()),
            principal: Some("app".into()),
            ..Default::default()
        },
        evidence: pgvigil::evidence!({"failedLogins": 25, "window": "PT1M"}),
        description: "25 failed logins from one source in a minute.".into(),
        anomaly_context: "Above the server's usual failures.".into(),
        remediation_steps: vec!["Block the source.".into()],
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn sh(cmd: &str) -> Result<()> {
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()?;
    if !st.success() {
        bail!("{cmd}: {st}");
    }
    Ok(())
}

/// (WAL bytes, data pages written) of the central server so far.
fn written(admin: &mut postgres::Client) -> Result<(i64, i64)> {
    let r = admin.query_one(
        "SELECT (SELECT wal_bytes::bigint FROM pg_stat_wal),
                (SELECT buffers_checkpoint + buffers_clean + buffers_backend FROM pg_stat_bgwriter)",
        &[],
    )?;
    Ok((r.get(0), r.get(1)))
}

/// CPU seconds the central server has used so far: the postmaster, its children now, and
/// those that have ended (through `admin`'s own backend, a child of the postmaster).
fn central_cpu(admin: &mut postgres::Client) -> Result<f64> {
    let backend: i32 = admin.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let stat = |pid: &str| -> Option<Vec<i64>> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which may hold spaces: state is field 3.
        let rest = &s[s.rfind(')')? + 2..];
        Some(
            rest.split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect(),
        )
    };
    let ppid = |f: &[i64]| f[1];
    let post = stat(&backend.to_string())
        .map(|f| ppid(&f))
        .context("the central server's processes (is it on this machine?)")?;
    // utime, stime, cutime, cstime are fields 14-17 (11-14 after the name).
    let mut ticks = stat(&post.to_string()).map_or(0, |f| f[11] + f[12] + f[13] + f[14]);
    for e in std::fs::read_dir("/proc")?.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some(f) = stat(pid).filter(|f| ppid(f) == post) {
            ticks += f[11] + f[12];
        }
    }
    Ok(ticks as f64 / 100.0)
}

fn main() -> Result<()> {
    let a = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .init();
    let mut admin = postgres::Client::connect(&a.admin_url, postgres::NoTls)
        .context("the central server (--admin-url)")?;
    std::fs::create_dir_all(&a.dir)?;
    let mut agents = Vec::new();
    for i in 0..a.agents {
        let server = format!("agent-{i:04}");
        let local = Arc::new(Store::open_with(&a.dir.join(format!("{server}.db")), 1)?);
        let central = Arc::new(Store::connect_lazily(&a.url, None)?);
        let health = Arc::new(ShipHealth::default());
        let (wake, rx) = std::sync::mpsc::channel();
        Shipper {
            local: local.clone(),
            central,
            server: server.clone(),
            channels: Vec::new(),
            admins: Vec::new(),
            health: health.clone(),
            after: Box::new(|_, _| {}),
            report_every: Duration::from_secs(10),
            wake: rx,
        }
        .spawn()?;
        agents.push(Agent {
            server,
            local,
            health,
            wake,
            made: Made::default(),
            attack: None,
        });
    }
    // New alerts' ids and when their agent committed them (ms since the epoch): the central
    // store's created_at of each, on the same clock, is when GET /alerts could first show it.
    let created: Mutex<HashMap<String, i64>> = Default::default();
    let api_times: Arc<Mutex<Vec<f64>>> = Default::default();
    let done = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let get = {
        let (http, api, token) = (http.clone(), a.api.clone(), a.token.clone());
        move |path: &str| -> Option<serde_json::Value> {
            let mut r = http
                .get(format!("{api}{path}"))
                .header("Authorization", &format!("Bearer {token}"))
                .call()
                .ok()?;
            if r.status() != 200 {
                return None;
            }
            serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
        }
    };
    let mut readers = Vec::new();
    for k in 0..2 {
        let (api_times, done, get, counting) = (
            api_times.clone(),
            done.clone(),
            get.clone(),
            counting.clone(),
        );
        let n = a.agents;
        readers.push(std::thread::spawn(move || {
            let queries = [
                "/alerts?$top=50".to_string(),
                "/alerts?$top=50&orderBy=severity".to_string(),
                "/alerts?$top=50&status=Active".to_string(),
                format!("/alerts?$top=50&server=agent-{:04}", (k * 7) % n.max(1)),
                "/alerts?$top=50&alertType=PostgreSQL_BruteForce".to_string(),
                "/servers".to_string(),
            ];
            let mut i = k;
            while !done.load(Relaxed) {
                let t = Instant::now();
                let ok = get(&queries[i % queries.len()]).is_some();
                if ok && counting.load(Relaxed) {
                    api_times
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    let connections: Arc<Mutex<Vec<i64>>> = Default::default();

    let (w0, p0) = written(&mut admin)?;
    let t0 = Instant::now();
    let t0_ms = pgvigil::store::now_ms();
    let checkpoint = vec![7u8; 64 << 10];
    let mut outage_done = a.outage.is_none();
    let mut tick = 0u64;
    let mut cpu0: Option<(f64, Instant)> = None;
    let mut shipped_alerts = 0u64;
    while t0.elapsed() < Duration::from_secs(a.seconds) {
        let tick_start = Instant::now();
        if !outage_done && t0.elapsed() >= Duration::from_secs(a.seconds / 3) {
            outage_done = true;
            let secs = a.outage.unwrap_or(0);
            eprintln!("central server stopped for {secs} s");
            sh(&a.stop)?;
            let back = Instant::now() + Duration::from_secs(secs);
            let (agents_ref, created_ref) = (&mut agents, &created);
            // Agents go on committing meanwhile.
            while Instant::now() < back {
                let s = Instant::now();
                tick += 1;
                shipped_alerts += step(agents_ref, tick, &checkpoint, created_ref, a.seconds)?;
                std::thread::sleep(Duration::from_secs(1).saturating_sub(s.elapsed()));
            }
            sh(&a.start)?;
            admin = postgres::Client::connect(&a.admin_url, postgres::NoTls)?;
            eprintln!("central server started again");
        }
        tick += 1;
        let warm = t0.elapsed().as_secs() >= a.warmup;
        if warm && !counting.load(Relaxed) {
            cpu0 = Some((central_cpu(&mut admin)?, Instant::now()));
        }
        counting.store(warm, Relaxed);
        shipped_alerts += step(&mut agents, tick, &checkpoint, &created, a.seconds)?;
        if let (true, Ok(r)) = (
            counting.load(Relaxed),
            admin.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvigil-agent'",
                &[],
            ),
        ) {
            connections.lock().unwrap().push(r.get(0));
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick_start.elapsed()));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // Not across an outage: the server's processes are not the same ones.
    let cores = match cpu0.filter(|_| a.outage.is_none()) {
        Some((c, at)) => (central_cpu(&mut admin)? - c) / at.elapsed().as_secs_f64(),
        None => f64::NAN,
    };
    // Everything queued goes, reports too.
    for ag in &agents {
        ag.health.flush.store(true, Relaxed);
        let _ = ag.wake.send(());
    }
    let drain = Instant::now();
    loop {
        let left: u64 = agents
            .iter()
            .map(|x| x.local.ship_backlog().map(|b| b.batches).unwrap_or(0))
            .sum();
        if left == 0 {
            break;
        }
        if drain.elapsed().as_secs().is_multiple_of(10) && drain.elapsed().subsec_millis() < 200 {
            eprintln!("draining: {left} batches queued");
        }
        if drain.elapsed() > Duration::from_secs(600) {
            bail!("{left} batches still queued after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let drained = drain.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Relaxed);
    for r in readers {
        let _ = r.join();
    }
    let (w1, p1) = written(&mut admin)?;
    let wal = (w1 - w0) as f64;
    let pages = ((p1 - p0) * 8192) as f64;

    // Each agent's totals against the central store's.
    let mut mismatched = Vec::new();
    for ag in &agents {
        let r = admin.query_one(
            "SELECT (SELECT count(*) FROM alerts WHERE server = $1),
                    (SELECT coalesce(sum(failed), 0)::bigint FROM login_hours WHERE server = $1),
                    (SELECT coalesce(sum(succeeded), 0)::bigint FROM login_hours WHERE server = $1),
                    (SELECT coalesce(max(events), 0) FROM servers WHERE name = $1)",
            &[&ag.server],
        )?;
        let got: (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let want = (
            ag.made.alerts as i64,
            ag.made.failed as i64,
            ag.made.succeeded as i64,
            ag.made.events as i64,
        );
        if got != want {
            mismatched.push(format!(
                "{}: central (alerts, failed, succeeded, events) {got:?}, agent {want:?}",
                ag.server
            ));
        }
    }
    let created = created.into_inner().unwrap();
    let mut lat = Vec::new();
    let mut unseen = 0;
    let since = t0_ms + a.warmup as i64 * 1000;
    let rows = admin.query(
        "SELECT id, created_at FROM alerts WHERE server <> 'fleet'",
        &[],
    )?;
    let stored: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (id, at) in &created {
        match stored.get(id) {
            Some(c) if *at >= since => {
                let c = chrono::DateTime::parse_from_rfc3339(c)?.timestamp_millis();
                lat.push((c - at) as f64 / 1000.0);
            }
            Some(_) => {}
            None => unseen += 1,
        }
    }
    let mut api = api_times.lock().unwrap().clone();
    let conns = connections.lock().unwrap().clone();
    let conn_mean = conns.iter().sum::<i64>() as f64 / conns.len().max(1) as f64;
    let conn_max = conns.iter().copied().max().unwrap_or(0);
    println!(
        "agents {:>5}  {:>6.0} s  alert states {:>6} ({unseen} new alerts missing)  \
         central writes {:>7.1} kB/s (WAL {:.1}, data pages {:.1}), {:>6.0} bytes per alert state  \
         after {}s of warm-up: ingest (agent commit -> central commit) p50 {:.2} s p99 {:.2} s  API p50 {:.1} ms p99 {:.1} ms ({} requests)  \
         agent connections mean {:.1} max {}  central CPU {:.2} cores  drained in {:.1} s  {}",
        a.agents,
        elapsed,
        shipped_alerts,
        (wal + pages) / elapsed / 1e3,
        wal / elapsed / 1e3,
        pages / elapsed / 1e3,
        (wal + pages) / (shipped_alerts.max(1)) as f64,
        a.warmup,
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut api, 0.5),
        percentile(&mut api, 0.99),
        api.len(),
        conn_mean,
        conn_max,
        cores,
        drained,
        if mismatched.is_empty() {
            "every agent's totals match: nothing lost, nothing doubled".to_string()
        } else {
            format!("{} agents DIFFER", mismatched.len())
        }
    );
    for m in mismatched.iter().take(10) {
        println!("  {m}");
    }
    if !mismatched.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// One second of every agent's work: returns the alert states committed (new and updated).
fn step(
    agents: &mut [Agent],
    tick: u64,
    checkpoint: &[u8],
    created: &Mutex<HashMap<String, i64>>,
    seconds: u64,
) -> Result<u64> {
    let now = pgvigil::store::now_ms();
    let hour = now - now.rem_euclid(3_600_000);
    let mut states = 0;
    for (i, ag) in agents.iter_mut().enumerate() {
        let mut alerts = Vec::new();
        // A new alert a minute, agents spread over the minute, each from sources of its
        // own (the internet's background of password guessing).
        if (tick + i as u64).is_multiple_of(60) {
            ag.made.alerts += 1;
            let source = format!("127.1.{}.{}", i / 250, i % 250);
            let a = alert(&ag.server, ag.made.alerts, &source, now);
            created
                .lock()
                .unwrap()
                .insert(a.id.clone(), pgvigil::store::now_ms());
            alerts.push(a);
        }
        // One agent in ten is attacked in the middle third of the run, all from the same
        // sources at the same moments: one campaign, correlated into fleet alerts.
        let attacked = i % 10 == 3 && tick > seconds / 3 && tick < 2 * seconds / 3;
        if attacked {
            if tick.is_multiple_of(2) || ag.attack.is_none() {
                ag.made.alerts += 1;
                let a = alert(
                    &ag.server,
                    ag.made.alerts,
                    &format!("127.0.{}.{}", (tick / 250) % 250, tick % 250),
                    now,
                );
                ag.attack = Some(a.clone());
                alerts.push(a);
            } else if let Some(a) = &mut ag.attack {
                a.end_time_utc = pgvigil::event::format_time(now);
                alerts.push(a.clone());
            }
        }
        // A report every 10 s, with the logins counted since the last; the whole
        // checkpoint every minute.
        let report_due = (tick + i as u64).is_multiple_of(10);
        if alerts.is_empty() && !report_due {
            continue;
        }
        let report = report_due.then(|| {
            let failed = if attacked { 300 } else { (i % 3) as u64 };
            let succeeded = 20 + (i % 7) as u64;
            ag.made.failed += failed;
            ag.made.succeeded += succeeded;
            ag.made.events += 500;
            ServerReport {
                server: ag.server.clone(),
                events: 500,
                last_event: Some(pgvigil::event::format_time(now)),
                lag_seconds: Some(0.2),
                logins: vec![LoginHour {
                    hour,
                    failed,
                    succeeded,
                }],
                ..Default::default()
            }
        });
        states += alerts.len() as u64;
        ag.local.ingest(Ingest {
            alerts: &alerts,
            report: report.as_ref(),
            checkpoint: (tick + i as u64)
                .is_multiple_of(60)
                .then_some((ag.server.as_str(), checkpoint)),
            ship: true,
            ..Default::default()
        })?;
        let _ = ag.wake.send(());
    }
    Ok(states)
}
