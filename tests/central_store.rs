//! The central PostgreSQL store on a real cluster: alerts and their history kept by month,
//! a month whose alerts have all expired dropped whole by retention with the kept counts
//! mended, and a store made by the previous version migrated with its alerts and history.

mod support;

use pgvigil::alert::{Alert, AlertType, Entities, Severity};
use pgvigil::policy::Policy;
use pgvigil::store::{AlertQuery, Ingest, PolicyChange, Status, Store};
use support::*;

fn url(cl: &Cluster) -> String {
    format!(
        "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
        cl.port
    )
}

fn alert(id: &str, server: &str, end: &str) -> Alert {
    Alert {
        id: id.into(),
        alert_type: AlertType::BruteForce,
        display_name: "Suspected brute force attack".into(),
        severity: Severity::Medium,
        status: "Active".into(),
        intent: AlertType::BruteForce.intent().into(),
        techniques: vec!["T1110.001".into()],
        server: server.into(),
        start_time_utc: end.into(),
        end_time_utc: end.into(),
        entities: Entities {
            source_ip: Some("127.0.0.9".into()),
            ..Default::default()
        },
        evidence: pgvigil::evidence!({"failedLogins": 12}),
        description: "d".into(),
        anomaly_context: "c".into(),
        remediation_steps: vec!["r".into()],
    }
}

/// An alert (with the history line of its raising) as an agent stored it in `month`.
fn stored_in(cl: &Cluster, month: &str, id: &str, server: &str, end: &str) {
    let record = serde_json::to_string(&alert(id, server, end)).unwrap();
    cl.psql(&format!(
        "SELECT pgvigil_partition('{month}');
         INSERT INTO alerts (id, part, server, alert_type, severity, display_name, status,
             start_time, end_time, source_ip, is_simulated, version, record, created_at, updated_at)
         VALUES ('{id}', '{month}', '{server}', 'BruteForce', 'Medium', 'd', 'Active',
             '{end}', '{end}', '127.0.0.9', 0, 1, $r${record}$r$, '{month}-28T00:00:00.000Z',
             '{month}-28T00:00:00.000Z');
         INSERT INTO alert_history (alert_id, part, at, actor, action, to_status)
         VALUES ('{id}', '{month}', '{month}-28T00:00:00.000Z', 'pgvigil', 'raised', 'Active');"
    ));
}

fn keep_days(s: &Store, server: &str, days: u32) {
    let body = serde_json::json!({"properties": {"state": "Enabled", "retentionDays": days}});
    s.put_policy(
        server,
        &Policy::from_put_body(&body, server).unwrap(),
        &PolicyChange::by("test"),
    )
    .unwrap();
}

/// What the kept counts say against what counting the alerts gives.
fn counts_agree(cl: &Cluster) {
    let kept = cl.psql(
        "SELECT server, alert_type, severity, status, n FROM alert_counts WHERE n <> 0 ORDER BY 1, 2, 3, 4",
    );
    let counted = cl.psql(
        "SELECT server, alert_type, severity, status, count(*) FROM alerts GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    );
    assert_eq!(kept, counted, "alert_counts");
    let kept = cl.psql("SELECT hour, server, n FROM alert_hours WHERE n <> 0 ORDER BY 1, 2");
    let counted = cl.psql(
        "SELECT substr(start_time, 1, 13), server, count(*) FROM alerts GROUP BY 1, 2 ORDER BY 1, 2",
    );
    assert_eq!(kept, counted, "alert_hours");
}

fn tables(cl: &Cluster, like: &str) -> String {
    cl.psql(&format!(
        "SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class
         WHERE relkind IN ('r', 'p') AND relname LIKE '{like}'"
    ))
}

#[test]
fn retention_drops_a_month_whose_alerts_have_all_expired() {
    let cl = Cluster::start(ClusterOptions::default());
    let s = Store::connect(&url(&cl), None).unwrap();
    for server in ["db1", "db2", "db3"] {
        s.register_server(server).unwrap();
    }
    keep_days(&s, "db1", 10);
    keep_days(&s, "db2", 30);
    // db3 has no retention: its alerts stay, and so does any month that holds one.

    // Stored now: in this month's partition, with its history.
    let now = pgvigil::store::now_utc();
    s.ingest(Ingest {
        alerts: &[alert("fresh", "db1", &now)],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        cl.psql("SELECT part FROM alerts WHERE id = 'fresh'"),
        now[..7]
    );
    s.set_status("fresh", Status::InProgress, "alice").unwrap();
    assert_eq!(
        cl.psql(&format!(
            "SELECT count(*) FROM \"alert_history_p{}\" WHERE alert_id = 'fresh'",
            now[..7].replace('-', "_")
        )),
        "2"
    );

    // Two months a year ago: the first holds only expired alerts; the second also one of db3.
    stored_in(&cl, "2025-01", "jan1", "db1", "2025-01-20T00:00:00.000Z");
    stored_in(&cl, "2025-01", "jan2", "db2", "2025-01-25T00:00:00.000Z");
    stored_in(&cl, "2025-02", "feb1", "db1", "2025-02-20T00:00:00.000Z");
    stored_in(&cl, "2025-02", "feb3", "db3", "2025-02-21T00:00:00.000Z");
    counts_agree(&cl);

    let deleted = s.enforce_retention(pgvigil::store::now_ms()).unwrap();
    assert_eq!(deleted, 3, "jan1 and jan2 with their month, feb1 alone");
    assert_eq!(
        tables(&cl, "%alert%p2025%"),
        "alert_history_p2025_02 alerts_p2025_02",
        "January went whole, February stays for db3's alert"
    );
    let ids = cl.psql("SELECT string_agg(id, ' ' ORDER BY id) FROM alerts");
    assert_eq!(ids, "feb3 fresh");
    assert_eq!(
        cl.psql("SELECT string_agg(DISTINCT alert_id, ' ' ORDER BY alert_id) FROM alert_history"),
        "feb3 fresh"
    );
    counts_agree(&cl);
    let q = AlertQuery::default();
    assert_eq!(s.count_alerts(&q, 1000).unwrap(), 2);
    // The store goes on: an update of a kept alert, a new one, and a second round that has
    // nothing left to drop.
    s.ingest(Ingest {
        alerts: &[
            alert("fresh", "db1", &pgvigil::store::now_utc()),
            alert("new", "db1", &now),
        ],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.enforce_retention(pgvigil::store::now_ms()).unwrap(), 0);
    assert_eq!(s.count_alerts(&q, 1000).unwrap(), 3);
    counts_agree(&cl);

    // Stopped between taking a month out of `alerts` and dropping it: the next round
    // finishes, counts included.
    stored_in(&cl, "2025-03", "mar1", "db1", "2025-03-20T00:00:00.000Z");
    cl.psql(
        "DROP TABLE alert_history_p2025_03; ALTER TABLE alerts DETACH PARTITION alerts_p2025_03;",
    );
    assert_eq!(s.enforce_retention(pgvigil::store::now_ms()).unwrap(), 1);
    assert_eq!(tables(&cl, "%alerts_p2025_03%"), "");
    counts_agree(&cl);
}

/// A store the previous version made and filled: migrated in place, nothing lost, and the
/// history still tied to its alerts.
#[test]
fn a_version_11_central_store_is_partitioned_with_its_alerts_and_history() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/store/src/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap() < "0012")
        .collect();
    files.sort();
    assert_eq!(files.len(), 11);
    for f in &files {
        cl.psql(&std::fs::read_to_string(f).unwrap());
    }
    cl.psql(
        "CREATE TABLE pgvigil_schema (version BIGINT NOT NULL);
         INSERT INTO pgvigil_schema VALUES (11);
         INSERT INTO alerts (id, server, alert_type, severity, display_name, status, start_time,
             end_time, record, created_at, updated_at)
         VALUES ('a1', 'db1', 'BruteForce', 'High', 'd', 'Dismissed', '2026-10-03T00:00:00.000Z',
                 '2026-10-03T01:00:00.000Z', '{}', '2026-10-03T01:00:00.000Z', '2026-10-04T00:00:00.000Z'),
                ('a2', 'db2', 'Probe', 'Low', 'd', 'Active', '2026-11-03T00:00:00.000Z',
                 '2026-11-03T01:00:00.000Z', '{}', '2026-11-03T01:00:00.000Z', '2026-11-03T01:00:00.000Z');
         INSERT INTO alert_history (alert_id, at, actor, action, from_status, to_status)
         VALUES ('a1', '2026-10-03T01:00:00.000Z', 'pgvigil', 'raised', NULL, 'Active'),
                ('a1', '2026-10-04T00:00:00.000Z', 'bob', 'status', 'Active', 'Dismissed'),
                ('a2', '2026-11-03T01:00:00.000Z', 'pgvigil', 'raised', NULL, 'Active');",
    );
    let s = Store::connect(&url(&cl), None).unwrap();
    // Migrated past version 12, the one that partitions.
    let version: u32 = cl
        .psql("SELECT version FROM pgvigil_schema")
        .trim()
        .parse()
        .unwrap();
    assert!(version >= 12, "schema version {version}");
    assert_eq!(
        cl.psql("SELECT string_agg(id || ':' || part, ' ' ORDER BY id) FROM alerts"),
        "a1:2026-10 a2:2026-11"
    );
    assert_eq!(
        cl.psql("SELECT string_agg(alert_id || ':' || part || ':' || action, ' ' ORDER BY seq) FROM alert_history"),
        "a1:2026-10:raised a1:2026-10:status a2:2026-11:raised"
    );
    assert!(tables(&cl, "alerts_p2026_10").contains("alerts_p2026_10"));
    counts_agree(&cl);
    // History goes on from where it was, and goes with its alert.
    s.set_status("a2", Status::Resolved, "alice").unwrap();
    assert_eq!(
        cl.psql("SELECT max(seq) FROM alert_history WHERE alert_id = 'a2'"),
        "4"
    );
    cl.psql("DELETE FROM alerts WHERE id = 'a1'");
    assert_eq!(
        cl.psql("SELECT count(*) FROM alert_history WHERE alert_id = 'a1'"),
        "0"
    );
    counts_agree(&cl);
}

/// Agents under one campaign store their alerts at the same moments, each over its own
/// connection: their batches do not wait for each other, and the fleet alert, worked out
/// after them, ends up with every server and the last count of each.
#[test]
fn one_campaign_stored_by_many_agents_at_once_is_one_fleet_alert_with_all_of_them() {
    let cl = Cluster::start(ClusterOptions::default());
    let url = url(&cl);
    drop(Store::connect(&url, None).unwrap());
    const AGENTS: usize = 8;
    const UPDATES: u64 = 15;
    let t0 = pgvigil::store::now_ms() - 600_000;
    std::thread::scope(|scope| {
        for i in 0..AGENTS {
            let url = url.clone();
            scope.spawn(move || {
                let s = Store::connect_lazily(&url, None).unwrap();
                for k in 1..=UPDATES {
                    let end = pgvigil::event::format_time(t0 + k as i64 * 1000);
                    let mut a = alert(&format!("m{i}"), &format!("s{i}"), &end);
                    a.start_time_utc = pgvigil::event::format_time(t0);
                    a.entities.source_ip = Some("127.0.0.77".into());
                    a.evidence = pgvigil::evidence!({"failedLogins": 10 * k});
                    s.ingest(Ingest {
                        alerts: &[a],
                        ..Default::default()
                    })
                    .unwrap();
                }
            });
        }
    });
    let fleet = cl.psql("SELECT record FROM alerts WHERE server = 'fleet'");
    assert!(!fleet.contains('\n'), "one fleet alert: {fleet}");
    let v: serde_json::Value = serde_json::from_str(&fleet).unwrap();
    let ev = &v["evidence"];
    assert_eq!(ev["servers"].as_array().unwrap().len(), AGENTS, "{ev}");
    assert_eq!(ev["failedLogins"], (AGENTS as u64) * 10 * UPDATES, "{ev}");
    assert_eq!(cl.psql("SELECT count(*) FROM fleet_pending"), "0");
    counts_agree(&cl);
}
