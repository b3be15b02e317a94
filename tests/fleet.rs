//! Fleet mode: two agents, each reading its own server's logs, write to one central
//! PostgreSQL (a real cluster started by the test, over TLS with a private CA); a separate API
//! instance reads it. One address attacking both servers raises one fleet-wide brute-force
//! alert listing them.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

fn agent_config(
    dir: &Path,
    server: &str,
    fixture: &str,
    url: &str,
    ca: &Path,
) -> std::path::PathBuf {
    let logs = dir.join(format!("{server}-log"));
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/stderr")
            .join(fixture),
        logs.join("postgresql-15-main.log"),
    )
    .unwrap();
    let cfg = dir.join(format!("{server}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "server = \"{server}\"\n[input]\npaths = [\"{}\"]\nstart_at = \"beginning\"\n\
             [state]\ndir = \"{}\"\n[store]\nurl = \"{url}\"\nca_file = \"{}\"\n",
            logs.display(),
            dir.join(format!("{server}-state")).display(),
            ca.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn two_agents_one_central_store_one_fleet_alert() {
    let certs = tempfile::tempdir().unwrap();
    let (mut central, ca, _, _) = tls_cluster(certs.path());
    central.psql("CREATE ROLE pgvigil LOGIN PASSWORD 'fleet-pw'");
    central.psql("CREATE DATABASE pgvigil OWNER pgvigil");
    let url = format!(
        "postgres://pgvigil:fleet-pw@127.0.0.1:{}/pgvigil?sslmode=require",
        central.port
    );
    let dir = tempfile::tempdir().unwrap();
    let c1 = agent_config(dir.path(), "db1", "hydra.log", &url, &ca);
    let c2 = agent_config(dir.path(), "db2", "medusa.log", &url, &ca);

    // Both agents start at once: the schema is created once, under a lock.
    let a1 = Runner::start(&["-c".as_ref(), c1.as_os_str()]);
    let a2 = Runner::start(&["-c".as_ref(), c2.as_os_str()]);
    // The agent that stores its alert second raises the fleet alert.
    let end = std::time::Instant::now() + Duration::from_secs(60);
    let (mut seen1, mut seen2) = (Vec::new(), Vec::new());
    let mut found = false;
    while !found && std::time::Instant::now() < end {
        for (a, seen) in [(&a1, &mut seen1), (&a2, &mut seen2)] {
            let (s, ok) = a.until(Duration::from_millis(200), |x| x["server"] == "fleet");
            seen.extend(s);
            found |= ok;
        }
    }
    assert!(
        found,
        "no fleet alert\nagent 1: {seen1:?}\n{}\nagent 2: {seen2:?}\n{}",
        a1.log(),
        a2.log()
    );
    assert!(!a1.log().contains("fleet-pw") && !a2.log().contains("fleet-pw"));

    // A stateless API instance over the same database.
    let token = make_token(&["-c".as_ref(), c1.as_os_str()], "ops", "reader");
    let port = free_port();
    let mut api = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["api", "-c"])
        .arg(&c1)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Value {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match ureq::get(&format!("http://127.0.0.1:{port}{path}"))
                .header("Authorization", &format!("Bearer {token}"))
                .call()
            {
                Ok(mut r) => {
                    return serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
                }
                Err(e) if std::time::Instant::now() < end => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{path}: {e}"),
            }
        }
    };
    let servers: Vec<String> = get("/servers")["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(servers, ["db1", "db2", "fleet"]);
    for s in ["db1", "db2"] {
        let list = get(&format!(
            "/alerts?server={s}&alertType=PostgreSQL_BruteForce"
        ));
        assert_eq!(list["value"].as_array().unwrap().len(), 1, "{s}: {list}");
    }
    let fleet = get("/alerts?server=fleet");
    let fleet = fleet["value"].as_array().unwrap();
    assert_eq!(fleet.len(), 1, "{fleet:?}");
    let f = &fleet[0];
    assert_eq!(f["entities"]["sourceIp"], "127.0.0.1");
    assert_eq!(f["evidence"]["servers"], serde_json::json!(["db1", "db2"]));
    assert_eq!(f["severity"], "High", "both attacks succeeded: {f}");
    assert_eq!(
        f["displayName"],
        "Suspected successful brute force attack on several servers"
    );
    // The agents' sessions are encrypted.
    let ssl_sessions = central.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = 'pgvigil' AND ssl",
    );
    assert!(ssl_sessions.parse::<u32>().unwrap() >= 2, "{ssl_sessions}");
    let plain = central.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = 'pgvigil' AND NOT ssl",
    );
    assert_eq!(plain, "0");
    // The central server restarts: the API's connections are gone, and the very next
    // requests are answered, not failed with 500.
    central.restart();
    for path in ["/servers", "/alerts?server=fleet", "/healthz"] {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let r = agent
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{path} after the central server restarted");
    }

    // Without the CA, the central store's certificate is not trusted: a clear error.
    let no_ca = dir.path().join("no-ca.toml");
    std::fs::write(
        &no_ca,
        format!("server = \"db3\"\n[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    let out = pgvigil()
        .args(["token", "list", "-c"])
        .arg(&no_ca)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("certificate") && !err.contains("fleet-pw"),
        "{err}"
    );
    // With the central server down, /healthz says so.
    central.stop();
    let r = ureq::Agent::from(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
    .get(format!("http://127.0.0.1:{port}/healthz"))
    .call()
    .unwrap();
    assert_eq!(r.status(), 503);
    let _ = api.kill();
    let _ = api.wait();
}

/// (alerts as "id end severity", failed logins, succeeded logins, events) of `server` in an
/// agent's own store.
fn local_view(state: &Path, server: &str) -> (Vec<String>, i64, i64, i64, i64) {
    let c = rusqlite::Connection::open(state.join("pgvigil.db")).unwrap();
    let mut st = c
        .prepare("SELECT id || ' ' || end_time || ' ' || severity FROM alerts WHERE server = ?1 ORDER BY id")
        .unwrap();
    let alerts = st
        .query_map([server], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (f, s): (i64, i64) = c
        .query_row(
            "SELECT coalesce(sum(failed), 0), coalesce(sum(succeeded), 0) FROM login_hours WHERE server = ?1",
            [server],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let events: i64 = c
        .query_row(
            "SELECT events FROM servers WHERE name = ?1",
            [server],
            |r| r.get(0),
        )
        .unwrap();
    let queued: i64 = c
        .query_row("SELECT count(*) FROM ship_queue", [], |r| r.get(0))
        .unwrap();
    (alerts, f, s, events, queued)
}

/// The same figures in the central store.
fn central_view(central: &Cluster, server: &str) -> (Vec<String>, i64, i64, i64) {
    let alerts = central.psql_db(
        "pgvigil",
        &format!("SELECT id || ' ' || end_time || ' ' || severity FROM alerts WHERE server = '{server}' ORDER BY id"),
    );
    let totals = central.psql_db(
        "pgvigil",
        &format!(
            "SELECT coalesce(sum(failed), 0) || ' ' || coalesce(sum(succeeded), 0) || ' ' ||
               (SELECT coalesce(max(events), 0) FROM servers WHERE name = '{server}')
             FROM login_hours WHERE server = '{server}'"
        ),
    );
    let t: Vec<i64> = totals
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (
        alerts
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect(),
        t[0],
        t[1],
        t[2],
    )
}

/// The central store goes away for a while. The agents keep detecting and printing alerts
/// (the health check says what is wrong), one is killed with SIGKILL and started again
/// meanwhile; when the central store returns, it ends up with exactly what each agent has:
/// the same alerts at the same state, and every failed login counted once.
#[test]
fn a_central_outage_loses_nothing_and_counts_nothing_twice() {
    let mut central = Cluster::start(ClusterOptions::default());
    central.psql("CREATE ROLE pgvigil LOGIN PASSWORD 'fleet-pw'");
    central.psql("CREATE DATABASE pgvigil OWNER pgvigil");
    let url = format!(
        "postgres://pgvigil:fleet-pw@127.0.0.1:{}/pgvigil?sslmode=disable",
        central.port
    );
    let monitored = Cluster::start(ClusterOptions {
        log_destination: "stderr",
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = |server: &str| {
        let cfg = dir.path().join(format!("{server}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "server = \"{server}\"\n[input]\npaths = [\"{}\"]\nstart_at = \"beginning\"\n\
                 [state]\ndir = \"{}\"\ncheckpoint_interval = \"1s\"\n\
                 checkpoint_max_interval = \"2s\"\n[store]\nurl = \"{url}\"\n",
                monitored.log_dir.display(),
                dir.path().join(format!("{server}-state")).display(),
            ),
        )
        .unwrap();
        cfg
    };
    let (ca, cb) = (config("dba"), config("dbb"));
    let a = Runner::start(&["-c".as_ref(), ca.as_os_str()]);
    let mut b = Runner::start(&["-c".as_ref(), cb.as_os_str()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let attack = |source: &str, n: usize| {
        rt.block_on(async {
            for i in 0..n {
                assert!(
                    !login(
                        source,
                        monitored.port,
                        "app",
                        &format!("guess{i}"),
                        "appdb",
                        None
                    )
                    .await
                );
            }
            assert!(login(source, monitored.port, "app", APP_PASSWORD, "appdb", None).await);
        })
    };
    attack("127.0.0.5", 12);
    let wait_central = |server: &str| {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        // The first agent to ship makes the central schema: until then there is no table.
        let schema = || {
            central
                .psql_db("pgvigil", "SELECT to_regclass('public.alerts') IS NOT NULL")
                .trim()
                == "t"
        };
        while !schema() || central_view(&central, server).0.is_empty() {
            assert!(
                std::time::Instant::now() < end,
                "no alert of {server} in the central store"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_central("dba");
    wait_central("dbb");

    central.stop();
    attack("127.0.0.6", 15);
    // Detection and alerting go on without the central store.
    let (seen, ok) = a.until(Duration::from_secs(30), |x| {
        x["entities"]["sourceIp"] == "127.0.0.6"
    });
    assert!(
        ok,
        "agent a printed no alert during the outage: {seen:?}\n{}",
        a.log()
    );
    let health = raw_agent()
        .get(format!("http://{}/healthz", a.api_addr()))
        .call()
        .unwrap();
    assert_eq!(health.status(), 503);
    let body = health.into_body().read_to_string().unwrap();
    assert!(body.contains("central store cannot be reached"), "{body}");
    // Killed mid-outage and started again: it resumes from its own checkpoint.
    let (seen, ok) = b.until(Duration::from_secs(30), |x| {
        x["entities"]["sourceIp"] == "127.0.0.6"
    });
    assert!(
        ok,
        "agent b printed no alert during the outage: {seen:?}\n{}",
        b.log()
    );
    b.kill();
    attack("127.0.0.7", 9);
    b = Runner::start(&["-c".as_ref(), cb.as_os_str()]);
    std::thread::sleep(Duration::from_secs(3));
    central.start_again();

    for (server, state) in [("dba", "dba-state"), ("dbb", "dbb-state")] {
        let state = dir.path().join(state);
        let end = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            // Reports without alerts wait a few seconds for company: the queue is seldom
            // empty, what it holds is.
            let (la, lf, ls, le, _queued) = local_view(&state, server);
            let (c_alerts, cf, cs, ce) = central_view(&central, server);
            // 12 + 15 + 9 failed logins, each counted once, though agent b read some of
            // them twice (before its kill and after).
            if (&la, lf, ls, le) == (&c_alerts, cf, cs, ce) && lf == 36 {
                assert!(ls >= 3, "{server}: {ls} successful logins counted");
                assert!(la.len() >= 2, "{server}: {la:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "{server}: local (alerts, failed, succeeded, events, queued) {:?} != central {:?}\nagent a:\n{}\nagent b:\n{}",
                local_view(&state, server),
                central_view(&central, server),
                a.log(),
                b.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
