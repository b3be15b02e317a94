//! Store and API speed: ingests 100,000 alerts into a fresh SQLite store (alerts/s), then
//! times filtered `GET /alerts` pages over HTTP (p50, p95). Run by `bench/run`, or:
//! `cargo run --release --example store_bench`.

use pgvigil::alert::{Alert, AlertType, Entities, Severity};
use pgvigil::api::{ApiConfig, ApiState, Counters};
use pgvigil::store::{Ingest, Role, Status, Store};
use std::sync::Arc;
use std::time::Instant;

const N: usize = 100_000;

fn alert(i: usize) -> Alert {
    let t = AlertType::ALL[i % AlertType::ALL.len()];
    let sev = [Severity::Low, Severity::Medium, Severity::High][i % 3];
    let ms = 1_790_000_000_000i64 + i as i64 * 30_000;
    Alert {
        id: format!("{i:08x}-bench"),
        alert_type: t,
        display_name: t.title().into(),
        severity: sev,
        status: "Active".into(),
        intent: t.intent().into(),
        techniques: t.techniques().iter().map(|s| s.to_string()).collect(),
        server: format!("db{}", i % 20),
        start_time_utc: pgvigil::event::format_time(ms - 60_000),
        end_time_utc: pgvigil::event::format_time(ms),
        entities: Entities {
            source_ip: Some(format!("198.51.100.{}", i % 250)),
            principal: Some(format!("role{}", i % 50)),
            database: Some("app".into()),
            ..Default::default()
        },
        evidence: pgvigil::evidence!({"failedLogins": i % 500, "distinctPrincipals": 1}),
        description:
            "A benchmark alert with a description of ordinary length, as detectors write them."
                .into(),
        anomaly_context: "First login from this place for this server in 60 days.".into(),
        remediation_steps: vec!["Check the source.".into(), "Rotate the password.".into()],
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(&dir.path().join("pgvigil.db"))?);
    let alerts: Vec<Alert> = (0..N).map(alert).collect();
    let channels = vec![pgvigil::store::Channel::Webhook("soc".into())];
    let batch = 1000;
    let t = Instant::now();
    for chunk in alerts.chunks(batch) {
        store.ingest(Ingest {
            alerts: chunk,
            simulated: false,
            channels: &channels,
            admins: &[],
            checkpoint: Some(("db0", &[0u8; 4096])),
            report: None,
            ..Default::default()
        })?;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "ingest: {N} new alerts in batches of {batch} (each queues a webhook notification; a 4 KiB checkpoint per batch): {s:.2} s, {:.0} alerts/s",
        N as f64 / s
    );
    // Updates of open alerts, in run's small batches: the common case of a live attack.
    let t = Instant::now();
    let mut updated = 0;
    for chunk in alerts[..20_000].chunks(10) {
        let mut c = chunk.to_vec();
        for a in &mut c {
            a.evidence = pgvigil::evidence!({"failedLogins": 999});
        }
        store.ingest(Ingest {
            alerts: &c,
            simulated: false,
            channels: &channels,
            admins: &[],
            checkpoint: Some(("db0", &[0u8; 4096])),
            report: None,
            ..Default::default()
        })?;
        updated += c.len();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "ingest: {updated} updates in batches of 10: {s:.2} s, {:.0} alerts/s",
        updated as f64 / s
    );
    for i in (0..N).step_by(10) {
        store.set_status(&alerts[i].id, Status::Dismissed, "bench")?;
    }

    let token = store.add_token("bench", Role::Reader, "bench")?;
    let state = Arc::new(ApiState {
        store: store.clone(),
        counters: Arc::new(Counters::default()),
        channels: vec![],
        admins: vec![],
        proxy: None,
        settings_written: None,
    });
    let cfg = ApiConfig {
        listen: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let addr = pgvigil::server::spawn(&cfg, state, runtime.handle())?;
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let queries = [
        "/alerts?top=100",
        "/alerts?server=db7&severity=High&top=100",
        "/alerts?alertType=PostgreSQL_BruteForce&status=Active&top=100",
        "/alerts?sourceIp=198.51.100.42&top=100",
        "/alerts?from=2026-10-01T00:00:00Z&to=2026-10-03T00:00:00Z&status=Dismissed&top=100",
    ];
    println!("API over {N} stored alerts, 200 requests each:");
    for q in queries {
        let url = format!("http://{addr}{q}");
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let mut r = agent
                .get(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .call()?;
            let body = r.body_mut().read_to_string()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            n = body.matches("\"alertType\"").count();
        }
        println!(
            "  GET {q:<86} {n:>3} alerts/page  p50 {:.2} ms  p95 {:.2} ms",
            pct(&mut times, 0.5),
            pct(&mut times, 0.95)
        );
    }
    Ok(())
}
