//! Retention on the central store: a month of N alerts (with their history) goes, once
//! dropped whole (every alert in it expired) and once deleted row by row (one alert of a
//! server that keeps its alerts holds the month). Both through `Store::enforce_retention`;
//! prints the time and the WAL each took. Driven by `bench/retention`.

use anyhow::{Context, Result};
use clap::Parser;
use pgvigil::policy::Policy;
use pgvigil::store::{PolicyChange, Store};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The central store.
    #[arg(long)]
    url: String,
    /// Alerts in each month.
    #[arg(long, default_value_t = 100_000)]
    alerts: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let store = Store::connect(&args.url, None).context("the central store")?;
    let mut admin =
        postgres::Client::connect(&args.url, postgres::NoTls).context("the central server")?;
    let body = serde_json::json!({"properties": {"state": "Enabled", "retentionDays": 30}});
    store.put_policy(
        "db1",
        &Policy::from_put_body(&body, "db1").context("policy")?,
        &PolicyChange::by("bench"),
    )?;
    for (month, keeper) in [("2025-01", false), ("2025-02", true)] {
        fill(&mut admin, month, args.alerts, keeper)?;
        admin.batch_execute("CHECKPOINT")?;
        let wal0: i64 = admin
            .query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[])?
            .get(0);
        let t = Instant::now();
        let gone = store.enforce_retention(pgvigil::store::now_ms())?;
        let secs = t.elapsed().as_secs_f64();
        let wal1: i64 = admin
            .query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[])?
            .get(0);
        println!(
            "{:<22} {gone:>8} alerts in {secs:>6.2} s, WAL {:>9.1} MB ({:.0} bytes per alert)",
            if keeper {
                "deleted row by row:"
            } else {
                "month dropped whole:"
            },
            (wal1 - wal0) as f64 / 1e6,
            (wal1 - wal0) as f64 / gone.max(1) as f64
        );
    }
    Ok(())
}

/// `n` expired alerts of db1 (each with two history lines) stored in `month`, and with
/// `keeper` one alert of db9, whose server keeps its alerts.
fn fill(c: &mut postgres::Client, month: &str, n: u64, keeper: bool) -> Result<()> {
    let record =
        serde_json::json!({"evidence": {"failedLogins": 25}, "description": "x".repeat(600)})
            .to_string();
    c.execute("SELECT pgvigil_partition($1)", &[&month])?;
    let n = n as i64;
    c.execute(
        "INSERT INTO alerts (id, part, server, alert_type, severity, display_name, status,
             start_time, end_time, source_ip, is_simulated, version, record, created_at, updated_at)
         SELECT $1 || '-' || i, $1, 'db1', 'PostgreSQL_BruteForce', 'Medium',
                'Suspected brute force attack', 'Active', $1 || '-10T00:00:00.000Z',
                $1 || '-10T00:00:00.000Z', '10.0.' || (i % 250) || '.' || (i % 199), 0, 1, $2,
                $1 || '-10T00:00:00.000Z', $1 || '-10T00:00:00.000Z'
         FROM generate_series(1, $3::bigint) i",
        &[&month, &record, &n],
    )?;
    c.execute(
        "INSERT INTO alert_history (alert_id, part, at, actor, action, from_status, to_status)
         SELECT id, part, created_at, 'pgvigil', a, NULL, 'Active'
         FROM alerts, (VALUES ('raised'), ('escalated')) v(a) WHERE part = $1",
        &[&month],
    )?;
    if keeper {
        c.execute(
            "INSERT INTO alerts (id, part, server, alert_type, severity, display_name, status,
                 start_time, end_time, is_simulated, version, record, created_at, updated_at)
             VALUES ($1 || '-keep', $1, 'db9', 'PostgreSQL_BruteForce', 'Medium', 'd', 'Active',
                 $1 || '-10T00:00:00.000Z', $1 || '-10T00:00:00.000Z', 0, 1, '{}',
                 $1 || '-10T00:00:00.000Z', $1 || '-10T00:00:00.000Z')",
            &[&month],
        )?;
    }
    c.batch_execute("VACUUM ANALYZE alerts, alert_history")?;
    Ok(())
}
