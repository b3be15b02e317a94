//! End to end against a real PostgreSQL: a cluster started by the test, logins from several
//! 127.x addresses with a real client (tokio-postgres), real attack tools, then `analyze`
//! over the logs it wrote and `run` following them live.

mod support;

use serde_json::Value;
use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;
use support::*;

/// A scenario with every brute-force family, each from its own address, plus normal use.
async fn attack_scenario(port: u16) {
    // Normal use: an application logging in, a human mistyping once.
    for _ in 0..3 {
        assert!(
            login(
                "127.0.0.2",
                port,
                "app",
                APP_PASSWORD,
                "appdb",
                Some("billing-api")
            )
            .await
        );
    }
    assert!(!login("127.0.0.3", port, "app", "apppas", "appdb", Some("psql")).await);
    assert!(
        login(
            "127.0.0.3",
            port,
            "app",
            APP_PASSWORD,
            "appdb",
            Some("psql")
        )
        .await
    );
    // Brute force on a valid user from 127.0.0.7, then the right password.
    for i in 0..12 {
        assert!(
            !login(
                "127.0.0.7",
                port,
                "app",
                &format!("guess{i}"),
                "appdb",
                None
            )
            .await
        );
    }
    assert!(login("127.0.0.7", port, "app", APP_PASSWORD, "appdb", None).await);
    // A spray from 127.0.0.8: six roles (five of them do not exist), two passwords each.
    for pw in ["Winter2026!", "password"] {
        for role in ["admin", "root", "test", "oracle", "report", "postgres"] {
            assert!(!login("127.0.0.8", port, role, pw, "postgres", None).await);
        }
    }
    // Distributed: six addresses, four tries each, against postgres.
    for k in 0..4 {
        for s in 1..=6 {
            let src = format!("127.0.1.{s}");
            assert!(
                !login(
                    &src,
                    port,
                    "postgres",
                    &format!("pw{k}{s}"),
                    "postgres",
                    None
                )
                .await
            );
        }
    }
}

fn types_by_source(alerts: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["alertType"].as_str().unwrap_or("").to_string(),
                a["displayName"].as_str().unwrap_or("").to_string(),
                a["entities"]["sourceIp"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_finds_every_brute_force_family_in_every_log_format() {
    let mut cl = Cluster::start(ClusterOptions::default());
    attack_scenario(cl.port).await;
    cl.stop();

    let csv = cl.log_dir.join("postgresql.csv");
    let (code, alerts, stderr) = analyze_json(&[csv.as_os_str()]);
    assert_eq!(code, 1, "alerts found → exit 1; stderr: {stderr}");

    let bf = find(&alerts, "PostgreSQL_BruteForce", "127.0.0.7");
    assert_eq!(bf.len(), 1, "{alerts:#?}");
    assert_eq!(
        bf[0]["displayName"],
        "Suspected successful brute force attack"
    );
    assert_eq!(bf[0]["severity"], "High");
    assert_eq!(bf[0]["entities"]["principal"], "app");
    assert_eq!(bf[0]["evidence"]["failedLogins"], 12);
    assert!(bf[0]["evidence"]["firstSuccessAfterFailures"].is_string());

    let spray = find(&alerts, "PostgreSQL_PasswordSpray", "127.0.0.8");
    assert_eq!(spray.len(), 1, "{alerts:#?}");
    assert_eq!(spray[0]["evidence"]["distinctPrincipals"], 6);
    assert_eq!(spray[0]["evidence"]["nonExistentRoleFailures"], 10);

    let dist: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["alertType"] == "PostgreSQL_DistributedBruteForce")
        .collect();
    assert_eq!(dist.len(), 1, "{alerts:#?}");
    assert_eq!(dist[0]["entities"]["principal"], "postgres");
    // The six distributed sources, and the spraying 127.0.0.8, which tried postgres too.
    assert_eq!(dist[0]["evidence"]["distinctSources"], 7);

    // Normal use raises nothing.
    for quiet in ["127.0.0.2", "127.0.0.3"] {
        assert!(
            alerts.iter().all(|a| a["entities"]["sourceIp"] != quiet),
            "{quiet}: {alerts:#?}"
        );
    }

    // The same from the stderr log (no %h in the prefix: addresses come from the joined
    // `connection received` lines) and from jsonlog.
    for f in ["postgresql.log", "postgresql.json"] {
        let p = cl.log_dir.join(f);
        let (code, other, stderr) = analyze_json(&[p.as_os_str()]);
        assert_eq!(code, 1, "{f}: {stderr}");
        assert_eq!(types_by_source(&other), types_by_source(&alerts), "{f}");
    }
    // The data directory: logs found and read through postgresql.conf; one format chosen.
    let (code, from_dir, stderr) = analyze_json(&[cl.data.as_os_str()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(types_by_source(&from_dir), types_by_source(&alerts));
    assert!(stderr.contains("skipped, the same log as"), "{stderr}");
}

fn wordlist(dir: &std::path::Path, right: &str) -> std::path::PathBuf {
    let p = dir.join("words.txt");
    let mut words: Vec<String> = (0..12).map(|i| format!("wrong{i}")).collect();
    words.push(right.to_string());
    std::fs::write(&p, words.join("\n") + "\n").unwrap();
    p
}

fn is_successful_bf(a: &Value) -> bool {
    a["alertType"] == "PostgreSQL_BruteForce"
        && a["displayName"] == "Suspected successful brute force attack"
}

#[test]
fn hydra_live_is_caught_by_run_and_by_analyze() {
    let mut cl = Cluster::start(ClusterOptions::default());
    let state = cl.dir.path().join("pgvigil-state");
    let run = Runner::start(&[
        OsStr::new("--follow"),
        cl.log_dir.as_os_str(),
        OsStr::new("--state-dir"),
        state.as_os_str(),
        OsStr::new("--server"),
        OsStr::new("db1"),
    ]);
    wait_ready(&state);
    hydra(cl.port, "app", &wordlist(cl.dir.path(), APP_PASSWORD), 4);
    let (seen, ok) = run.until(Duration::from_secs(20), is_successful_bf);
    assert!(ok, "no successful brute force alert from run: {seen:#?}");
    let (more, _) = run.until(Duration::from_secs(1), |_| false);
    run.kill();
    let all: Vec<Value> = seen.into_iter().chain(more).collect();
    assert!(all.iter().all(|a| a["server"] == "db1"));
    assert!(
        all.iter()
            .any(|a| a["alertType"] == "PostgreSQL_HarmfulApplication"
                && a["evidence"]["tools"][0] == "hydra/medusa"),
        "{all:#?}"
    );
    cl.stop();
    let (code, alerts, stderr) = analyze_json(&[cl.log_dir.as_os_str()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(find(&alerts, "PostgreSQL_BruteForce", "127.0.0.1").len(), 1);
    assert!(is_successful_bf(
        find(&alerts, "PostgreSQL_BruteForce", "127.0.0.1")[0]
    ));
}

#[test]
fn medusa_live_is_recognised() {
    let mut cl = Cluster::start(ClusterOptions {
        log_line_prefix: "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
        ..ClusterOptions::default()
    });
    let words = wordlist(cl.dir.path(), APP_PASSWORD);
    let out = Command::new("medusa")
        .env("PGPORT", cl.port.to_string())
        .args([
            "-h",
            "127.0.0.1",
            "-n",
            &cl.port.to_string(),
            "-u",
            "app",
            "-M",
            "postgres",
            "-t",
            "2",
            "-P",
        ])
        .arg(&words)
        .output()
        .expect("medusa is not installed: apt-get install -y medusa");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ACCOUNT FOUND"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    cl.stop();
    let log = cl.log_dir.join("postgresql.log");
    let (code, alerts, stderr) = analyze_json(&[log.as_os_str()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        is_successful_bf(find(&alerts, "PostgreSQL_BruteForce", "127.0.0.1")[0]),
        "{alerts:#?}"
    );
    assert_eq!(
        find(&alerts, "PostgreSQL_HarmfulApplication", "127.0.0.1").len(),
        1
    );
}

/// Kill -9 in the middle: nothing lost, nothing counted twice, the alerts file holds each
/// update once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_resumes_after_kill_9_without_loss_or_double_counting() {
    let cl = Cluster::start(ClusterOptions::default());
    let state = cl.dir.path().join("state");
    let alerts_file = state.join("alerts.jsonl");
    let config = counts_only(&cl);
    let args = [
        OsStr::new("-c"),
        config.as_os_str(),
        OsStr::new("--follow"),
        cl.log_dir.as_os_str(),
        OsStr::new("--state-dir"),
        state.as_os_str(),
        OsStr::new("--alerts-file"),
        alerts_file.as_os_str(),
    ];
    let run = Runner::start(&args);
    wait_ready(&state);
    // Six failures from 127.0.0.7: below the threshold, remembered in the checkpoint. (The
    // logins here follow each other at a tool's pace, which is an attack from the fourth; the
    // count across the restart is what this test is about, so that rule is off.)
    for i in 0..6 {
        assert!(!login("127.0.0.7", cl.port, "app", &format!("a{i}"), "appdb", None).await);
    }
    // …and a full attack from 127.0.0.8 that raises an alert before the kill.
    for i in 0..10 {
        assert!(!login("127.0.0.8", cl.port, "app", &format!("b{i}"), "appdb", None).await);
    }
    let (seen, ok) = run.until(Duration::from_secs(10), |a| {
        a["entities"]["sourceIp"] == "127.0.0.8"
    });
    assert!(ok, "{seen:#?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.kill(); // SIGKILL

    // While pgvigil is down: four more failures from .7 (10 in all) and the right password.
    for i in 6..10 {
        assert!(!login("127.0.0.7", cl.port, "app", &format!("a{i}"), "appdb", None).await);
    }
    assert!(login("127.0.0.7", cl.port, "app", APP_PASSWORD, "appdb", None).await);

    let run = Runner::start(&args);
    let (seen, ok) = run.until(Duration::from_secs(10), |a| {
        a["entities"]["sourceIp"] == "127.0.0.7" && is_successful_bf(a)
    });
    assert!(
        ok,
        "failures before and after the restart add up to an attack: {seen:#?}"
    );
    let bf7 = seen
        .iter()
        .rev()
        .find(|a| a["entities"]["sourceIp"] == "127.0.0.7")
        .unwrap();
    assert_eq!(
        bf7["evidence"]["failedLogins"], 10,
        "counted once each: {bf7:#}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.kill();

    let text = std::fs::read_to_string(&alerts_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut dedup = lines.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), lines.len(), "an update written twice:\n{text}");
    // .8's alert was not raised again after the restart.
    let for8: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| {
            a["entities"]["sourceIp"] == "127.0.0.8" && a["alertType"] == "PostgreSQL_BruteForce"
        })
        .collect();
    assert_eq!(for8.len(), 1, "{text}");
}

/// A configuration where brute force is judged by the number of failures alone: for tests
/// of counting across restarts and files, whose logins follow each other at a tool's pace.
fn counts_only(cl: &Cluster) -> std::path::PathBuf {
    let p = cl.dir.path().join("counts-only.toml");
    std::fs::write(&p, "[detect.brute_force]\nburst_failures = 1000\n").unwrap();
    p
}

/// `logging_collector` rotation to a new file, followed live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_the_log_across_rotation() {
    let cl = Cluster::start(ClusterOptions {
        log_destination: "stderr",
        log_filename: "postgresql-%Y-%m-%d_%H%M%S.log",
        ..ClusterOptions::default()
    });
    let state = cl.dir.path().join("state");
    // The count across the two files is what this test is about (see counts_only).
    let config = counts_only(&cl);
    let run = Runner::start(&[
        OsStr::new("-c"),
        config.as_os_str(),
        OsStr::new("--follow"),
        cl.log_dir.as_os_str(),
        OsStr::new("--state-dir"),
        state.as_os_str(),
    ]);
    wait_ready(&state);
    for i in 0..5 {
        assert!(!login("127.0.0.9", cl.port, "app", &format!("x{i}"), "appdb", None).await);
    }
    // A new file; wait for the clock to move on so its name differs.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cl.psql("SELECT pg_rotate_logfile()");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 5..10 {
        assert!(!login("127.0.0.9", cl.port, "app", &format!("x{i}"), "appdb", None).await);
    }
    let n_files = std::fs::read_dir(&cl.log_dir).unwrap().count();
    assert!(n_files >= 2, "the server rotated its log");
    let (seen, ok) = run.until(Duration::from_secs(20), |a| {
        a["entities"]["sourceIp"] == "127.0.0.9"
    });
    let log = run.log();
    run.kill();
    let files: Vec<_> = std::fs::read_dir(&cl.log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        ok,
        "failures split over two files make one attack: {seen:#?}\nfiles: {files:?}\npgvigil:\n{log}"
    );
    assert_eq!(seen.last().unwrap()["evidence"]["failedLogins"], 10);
}

/// Access anomalies end to end: a MaxMind DB built by the test maps 127.0.1.0/24 to Berlin and
/// 127.0.2.0/24 to São Paulo, real logins come from addresses in both, and the alert says
/// where and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_from_a_new_country_minutes_apart_are_one_impossible_travel_alert() {
    use std::collections::BTreeMap;
    let mut cl = Cluster::start(ClusterOptions::default());
    #[derive(serde::Serialize)]
    struct City {
        country: BTreeMap<&'static str, &'static str>,
        location: BTreeMap<&'static str, f64>,
    }
    let mut w = mmdb_writer::Writer::new("pgvigil-test-City");
    for (net, cc, lat, lon) in [
        ("127.0.1.0/24", "DE", 52.52, 13.40),
        ("127.0.2.0/24", "BR", -23.55, -46.63),
    ] {
        let rec = City {
            country: [("iso_code", cc)].into(),
            location: [("latitude", lat), ("longitude", lon)].into(),
        };
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
    }
    let mmdb = cl.dir.path().join("test-city.mmdb");
    std::fs::write(&mmdb, w.to_bytes().unwrap()).unwrap();
    let config = cl.dir.path().join("pgvigil.toml");
    std::fs::write(
        &config,
        format!(
            "[enrich]\nmmdb = [\"{}\"]\n[detect.profile]\nlearning_period = \"1s\"\n",
            mmdb.display()
        ),
    )
    .unwrap();

    // Within the one-second learning period (it starts with the first login, the test's
    // own set-up over the unix socket): the normal.
    for _ in 0..3 {
        assert!(
            login(
                "127.0.1.5",
                cl.port,
                "app",
                APP_PASSWORD,
                "appdb",
                Some("billing-api")
            )
            .await
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        login(
            "127.0.2.7",
            cl.port,
            "app",
            APP_PASSWORD,
            "appdb",
            Some("billing-api")
        )
        .await
    );
    cl.stop();

    let csv = cl.log_dir.join("postgresql.csv");
    let (code, alerts, stderr) =
        analyze_json(&[OsStr::new("-c"), config.as_os_str(), csv.as_os_str()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(alerts.len(), 1, "one login, one alert: {alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alertType"], "PostgreSQL_ImpossibleTravel");
    assert_eq!(a["entities"]["sourceIp"], "127.0.2.7");
    assert_eq!(a["entities"]["location"]["country"], "BR");
    assert_eq!(a["entities"]["location"]["addressClass"], "loopback");
    assert_eq!(
        a["evidence"]["alsoUnusual"][0]["alertType"],
        "PostgreSQL_GeoAnomaly"
    );
    let why = a["anomalyContext"].as_str().unwrap();
    assert!(why.contains("from DE to BR"), "{why}");
    assert!(
        why.contains("First login from BR; this server has seen only DE"),
        "{why}"
    );
}

#[test]
fn patator_live_is_caught() {
    let mut cl = Cluster::start(ClusterOptions::default());
    let words = wordlist(cl.dir.path(), APP_PASSWORD);
    let out = Command::new("patator")
        .args([
            "pgsql_login",
            "host=127.0.0.1",
            &format!("port={}", cl.port),
            "user=app",
            "password=FILE0",
        ])
        .arg(format!("0={}", words.display()))
        .output()
        .expect("patator is not installed: apt-get install -y patator");
    assert!(
        out.status.success(),
        "patator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cl.stop();
    let csv = cl.log_dir.join("postgresql.csv");
    let (code, alerts, stderr) = analyze_json(&[csv.as_os_str()]);
    assert_eq!(code, 1, "{stderr}");
    let bf = find(&alerts, "PostgreSQL_BruteForce", "127.0.0.1");
    assert_eq!(bf.len(), 1, "{alerts:#?}");
    assert!(is_successful_bf(bf[0]), "{:#}", bf[0]);
    assert_eq!(bf[0]["evidence"]["failedLogins"], 12);
}

/// With `log_statement = 'ddl'`, a role that a known admin creates logs in without a
/// PrincipalAnomaly (a change someone made); a role created while DDL logging was switched
/// off is a principal nobody announced, and raises one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_an_admin_created_is_a_change_a_silent_one_is_an_anomaly() {
    let mut cl = Cluster::start(ClusterOptions {
        extra: "log_statement = 'ddl'\n",
        ..Default::default()
    });
    let config = cl.dir.path().join("pgvigil.toml");
    std::fs::write(&config, "[detect.profile]\nlearning_period = \"1s\"\n").unwrap();
    assert!(login("127.0.1.5", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cl.psql("CREATE ROLE dave LOGIN PASSWORD 'dave-Pw-1'");
    cl.psql("SET log_statement = 'none'; CREATE ROLE eve LOGIN PASSWORD 'eve-Pw-1'");
    assert!(
        login(
            "127.0.1.6",
            cl.port,
            "dave",
            "dave-Pw-1",
            "postgres",
            Some("psql")
        )
        .await
    );
    assert!(
        login(
            "127.0.1.7",
            cl.port,
            "eve",
            "eve-Pw-1",
            "postgres",
            Some("psql")
        )
        .await
    );
    cl.stop();

    for log in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        let path = cl.log_dir.join(log);
        let (code, alerts, stderr) =
            analyze_json(&[OsStr::new("-c"), config.as_os_str(), path.as_os_str()]);
        assert_eq!(code, 1, "{log}: {stderr}");
        let principals: Vec<&str> = alerts
            .iter()
            .filter(|a| a["alertType"] == "PostgreSQL_PrincipalAnomaly")
            .map(|a| a["entities"]["principal"].as_str().unwrap())
            .collect();
        assert_eq!(principals, ["eve"], "{log}: {alerts:#?}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("dave-Pw-1"),
            "{log}: PostgreSQL logs the DDL as written"
        );
        assert!(
            !serde_json::to_string(&alerts).unwrap().contains("Pw-1"),
            "{log}: no password in alerts"
        );
    }
}

/// Reverse DNS from a real DNS server (dnsmasq): logins from hosts of the server's usual
/// domain are normal, the first from another domain is a DomainAnomaly naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_from_a_new_domain_is_a_domain_anomaly() {
    let dns = Dnsmasq::start(&[
        ("127.0.1.5", "app-1.eu.corp.example.co.uk"),
        ("127.0.1.6", "app-2.us.corp.example.co.uk"),
        ("127.0.2.7", "vps-9.evil-hosting.net"),
    ]);
    let mut cl = Cluster::start(ClusterOptions::default());
    let config = cl.dir.path().join("pgvigil.toml");
    std::fs::write(
        &config,
        format!(
            "[enrich.reverse_dns]\nenabled = true\nnameservers = [\"{}\"]\n\
             [detect.profile]\nlearning_period = \"1s\"\n",
            dns.addr
        ),
    )
    .unwrap();
    for _ in 0..2 {
        assert!(login("127.0.1.5", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(login("127.0.1.6", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    assert!(login("127.0.2.7", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    // No PTR record: no domain, nothing to judge.
    assert!(login("127.0.3.9", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    cl.stop();

    for log in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        let path = cl.log_dir.join(log);
        let (code, alerts, stderr) =
            analyze_json(&[OsStr::new("-c"), config.as_os_str(), path.as_os_str()]);
        assert_eq!(code, 1, "{log}: {stderr}");
        assert_eq!(alerts.len(), 1, "{log}: {alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a["alertType"], "PostgreSQL_DomainAnomaly");
        assert_eq!(a["entities"]["sourceIp"], "127.0.2.7");
        let why = a["anomalyContext"].as_str().unwrap();
        assert!(
            why.contains("evil-hosting.net") && why.contains("example.co.uk"),
            "{why}"
        );
    }
}
