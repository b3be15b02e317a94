//! Detection on real traffic near the thresholds, each case against a real PostgreSQL 15:
//! fast short brute force (ncrack stopping at the password, role by role with a few passwords
//! each), anomalies after a burst never dropped, the unusual login blamed rather than the
//! application's next one, services that do not travel, sqlmap seen with statement logging
//! off, attacker-chosen names that parse in every format, common prefixes read without being
//! told, and `run` closing incidents on the wall clock with `analyze`'s counts.
//!
//! Where a case needs real-world places (a Tor exit, a cloud region, a country), the
//! recording goes through `pgvigil eval` as a scenario of its own: each 127.x client gets a
//! real address of the kind its label says, after a two-week baseline.

mod support;

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;
use support::*;

/// The cluster's logs as a corpus scenario with these labels; `pgvigil eval`'s report, and
/// whether every expectation held in every format.
fn evaluate(cl: &mut Cluster, name: &str, labels: Value) -> (bool, String) {
    cl.stop();
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join(name);
    std::fs::create_dir_all(&sc).unwrap();
    for ext in ["log", "csv", "json"] {
        std::fs::copy(
            cl.log_dir.join(format!("postgresql.{ext}")),
            sc.join(format!("postgresql.{ext}")),
        )
        .unwrap();
    }
    let mut l = labels;
    l["scenario"] = json!(name);
    l["log_line_prefix"] = json!("%m [%p] %q%u@%d ");
    l["recorded"] = json!("2026-11-30T00:00:00Z");
    // The administrator's sessions over the unix socket (the test's own set-up) are normal.
    l["baseline"]
        .as_array_mut()
        .unwrap()
        .push(json!({"actor": "[local]", "role": "postgres", "database": "postgres", "application": "psql", "every": "daily"}));
    std::fs::write(sc.join("labels.json"), l.to_string()).unwrap();
    let out = pgvigil()
        .args(["eval", "-v"])
        .arg(dir.path())
        .output()
        .unwrap();
    let mut report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // The logins as the server logged them: a miss near a threshold is read off this.
        let log = std::fs::read_to_string(sc.join("postgresql.log")).unwrap_or_default();
        report.push_str("\nthe recorded logins:\n");
        for line in log.lines().filter(|l| {
            l.contains("FATAL:")
                || l.contains("connection authorized")
                || l.contains("connection received")
        }) {
            report.push_str(line);
            report.push('\n');
        }
    }
    (out.status.success(), report)
}

fn app_routine(actor: &str) -> Value {
    json!({"actor": actor, "role": "app", "database": "appdb", "application": "orders-api", "every": "1h"})
}

fn actor(place: &str, benign: bool) -> Value {
    json!({"place": place, "benign": benign})
}

/// Logins as fast as a client makes them: a tool's pace.
async fn fail_fast(source: &str, port: u16, user: &str, n: usize) {
    for i in 0..n {
        assert!(!login(source, port, user, &format!("guess-{i}"), "appdb", None).await);
    }
}

/// ncrack stops at the password: eight failures in milliseconds, then the login. And a tool
/// going role by role with four passwords each, below the count of ten and above a spray's
/// three. Neither was an alert; the first is a successful brute force (High).
#[tokio::test(flavor = "multi_thread")]
async fn a_fast_short_brute_force_is_caught_and_its_success_is_high() {
    let mut cl = Cluster::start(ClusterOptions::default());
    let words = cl.dir.path().join("words");
    let mut w: Vec<String> = (0..8).map(|i| format!("nope{i}")).collect();
    w.push("md5pass".into());
    std::fs::write(&words, w.join("\n") + "\n").unwrap();
    // ncrack gives up on a slow target without a word: under the load of the parallel tests
    // it sometimes does, and is run again (each run adds its failures, as a retrying attacker).
    let mut found = String::new();
    for _ in 0..3 {
        let out = Command::new("ncrack")
            .args(["--user", "md5user", "-P"])
            .arg(&words)
            .args(["-p", &format!("psql:{}", cl.port), "-f", "127.0.0.1"])
            .output()
            .expect("ncrack is not installed: apt-get install -y ncrack");
        found = String::from_utf8_lossy(&out.stdout).into_owned();
        if found.contains("md5user") {
            break;
        }
    }
    assert!(
        found.contains("md5user"),
        "ncrack found the password: {found}"
    );
    for role in ["app", "admin", "backup"] {
        fail_fast("127.0.0.68", cl.port, role, 4).await;
    }
    let (ok, report) = evaluate(
        &mut cl,
        "fast-short",
        json!({
            "kind": "attack", "description": "ncrack stops at the password; four passwords per role",
            "actors": {"127.0.0.1": actor("isp:BR", false), "127.0.0.68": actor("isp:JP", false)},
            "baseline": [], "expect": [
                {"alertType": "PostgreSQL_BruteForce", "source": "127.0.0.1", "severity": "High", "principal": "md5user"},
                {"alertType": "PostgreSQL_BruteForce", "source": "127.0.0.68"}
            ]
        }),
    );
    assert!(ok, "{report}");
}

/// `auth_delay` answers every wrong password late, which is what hardened servers do against
/// guessing. hydra with one connection then fails once every 1.5 s, slower than any tool's
/// pace measured between failures, and found the password after five guesses with no alert.
/// Measured from each failure to the next connection, hydra is back within milliseconds and
/// a person still takes seconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_tool_behind_auth_delay_is_caught_and_a_typist_is_not() {
    let mut cl = Cluster::start(ClusterOptions {
        extra: "shared_preload_libraries = 'auth_delay'\nauth_delay.milliseconds = 1500\n",
        ..ClusterOptions::default()
    });
    cl.psql("CREATE ROLE alice LOGIN PASSWORD 'alicepass'");
    let words = cl.dir.path().join("words");
    let mut w: Vec<String> = (0..5).map(|i| format!("nope{i}")).collect();
    w.push(APP_PASSWORD.into());
    std::fs::write(&words, w.join("\n") + "\n").unwrap();
    let mut found = String::new();
    // hydra gives up on a target whose first connection fails (see live_pg.rs).
    for _ in 0..3 {
        let out = Command::new("hydra")
            .env("PGPORT", cl.port.to_string())
            .args(["-I", "-f", "-l", "app", "-P"])
            .arg(&words)
            .args([
                "-s",
                &cl.port.to_string(),
                "-t",
                "1",
                "127.0.0.1",
                "postgres",
            ])
            .output()
            .expect("hydra is not installed: apt-get install -y hydra");
        found = String::from_utf8_lossy(&out.stdout).into_owned();
        if found.contains("password: apppass") {
            break;
        }
    }
    assert!(found.contains("password: apppass"), "hydra: {found}");
    // alice mistypes three times, each retyped after a few seconds, then gets it right.
    for i in 0..3 {
        assert!(
            !login(
                "127.0.0.20",
                cl.port,
                "alice",
                &format!("typo{i}"),
                "appdb",
                None
            )
            .await
        );
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    }
    assert!(login("127.0.0.20", cl.port, "alice", "alicepass", "appdb", None).await);
    let (ok, report) = evaluate(
        &mut cl,
        "auth-delay",
        json!({
            "kind": "attack", "description": "hydra -t 1 behind auth_delay 1.5 s; alice's typos",
            "actors": {"127.0.0.1": actor("isp:BR", false), "127.0.0.20": actor("isp:DE", true)},
            "baseline": [{"actor": "127.0.0.20", "role": "alice", "database": "appdb", "application": "psql", "every": "workday"}],
            "expect": [
                {"alertType": "PostgreSQL_BruteForce", "source": "127.0.0.1", "severity": "High", "principal": "app"}
            ]
        }),
    );
    assert!(ok, "{report}");
}

/// 25 failed logins from 25 Tor exits use up the hour's budget of anomaly alerts; the
/// attacker's login from a new cloud provider and a never-seen role's first login were then
/// dropped. Now the burst is rolled up, and logins are never held back.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_tor_failures_does_not_hide_the_logins_after_it() {
    let mut cl = Cluster::start(ClusterOptions::default());
    cl.psql("CREATE ROLE newsvc LOGIN PASSWORD 'newsvc-pw'");
    let mut actors = json!({
        "127.0.0.10": actor("cloud:AWS:eu-west-1", true),
        "127.0.0.90": actor("cloud:Oracle Cloud", false),
        "127.0.0.91": actor("isp:DE", false),
    });
    for k in 1..=25 {
        let src = format!("127.0.1.{k}");
        assert!(!login(&src, cl.port, "app", "tor-guess", "appdb", None).await);
        actors[&src] = actor(&format!("tor:{k}"), false);
    }
    assert!(login("127.0.0.90", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    assert!(
        login(
            "127.0.0.91",
            cl.port,
            "newsvc",
            "newsvc-pw",
            "postgres",
            None
        )
        .await
    );
    let (ok, report) = evaluate(
        &mut cl,
        "tor-burst",
        json!({
            "kind": "attack", "description": "a Tor burst, then logins",
            "actors": actors, "baseline": [app_routine("127.0.0.10")], "expect": [
                {"alertType": "PostgreSQL_SuspiciousIpAnomaly", "source": "127.0.1.1"},
                {"alertType": "PostgreSQL_CloudProviderAnomaly", "source": "127.0.0.90"},
                {"alertType": "PostgreSQL_PrincipalAnomaly", "source": "127.0.0.91"}
            ]
        }),
    );
    assert!(ok, "{report}");
    assert!(
        report.contains("A burst of attempts from many suspicious addresses"),
        "the rest of the burst is in one alert: {report}"
    );
}

/// A successful brute force from a new country, then the application's own login from its
/// usual cloud address 2 s later: the alerts name the attacker's address, never the
/// application's (it was an ImpossibleTravel alert on the application's address, with the
/// attacker's new country folded into it).
#[tokio::test(flavor = "multi_thread")]
async fn the_unusual_login_is_blamed_not_the_applications_next_one() {
    let mut cl = Cluster::start(ClusterOptions::default());
    assert!(
        login(
            "127.0.0.10",
            cl.port,
            "app",
            APP_PASSWORD,
            "appdb",
            Some("orders-api")
        )
        .await
    );
    fail_fast("127.0.0.66", cl.port, "app", 6).await;
    assert!(login("127.0.0.66", cl.port, "app", APP_PASSWORD, "appdb", None).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        login(
            "127.0.0.10",
            cl.port,
            "app",
            APP_PASSWORD,
            "appdb",
            Some("orders-api")
        )
        .await
    );
    let (ok, report) = evaluate(
        &mut cl,
        "blame",
        json!({
            "kind": "attack", "description": "brute force from Brazil, then the application",
            "actors": {"127.0.0.10": actor("cloud:AWS:eu-west-1", true), "127.0.0.66": actor("isp:BR", false)},
            "baseline": [app_routine("127.0.0.10")], "expect": [
                {"alertType": "PostgreSQL_BruteForce", "source": "127.0.0.66", "severity": "High"},
                {"alertType": "PostgreSQL_GeoAnomaly", "source": "127.0.0.66"}
            ]
        }),
    );
    assert!(ok, "{report}");
}

/// The application logs in from two cloud regions, and alice from the office and over the
/// company's VPN in another country, every few seconds, as every day: neither is travelling
/// (alice between office and VPN was an ImpossibleTravel alert). Alice from a third country
/// two seconds later is.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_in_two_regions_does_not_travel_a_person_does() {
    let mut cl = Cluster::start(ClusterOptions::default());
    cl.psql("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
    for _ in 0..3 {
        for src in ["127.0.0.10", "127.0.0.11"] {
            assert!(
                login(
                    src,
                    cl.port,
                    "app",
                    APP_PASSWORD,
                    "appdb",
                    Some("orders-api")
                )
                .await
            );
        }
        for src in ["127.0.0.20", "127.0.0.22"] {
            assert!(login(src, cl.port, "alice", "alice-pw", "appdb", Some("psql")).await);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        login(
            "127.0.0.21",
            cl.port,
            "alice",
            "alice-pw",
            "appdb",
            Some("psql")
        )
        .await
    );
    let alice = |actor: &str| json!({"actor": actor, "role": "alice", "database": "appdb", "application": "psql", "every": "workday"});
    let (ok, report) = evaluate(
        &mut cl,
        "travel",
        json!({
            "kind": "attack", "description": "a service in two regions; a person at the office, on the VPN, abroad",
            "actors": {
                "127.0.0.10": actor("cloud:AWS:eu-west-1", true),
                "127.0.0.11": actor("cloud:AWS:us-east-1", true),
                "127.0.0.20": actor("isp:DE", true),
                "127.0.0.22": actor("isp:NL", true),
                "127.0.0.21": actor("isp:JP", false)
            },
            "baseline": [app_routine("127.0.0.10"), app_routine("127.0.0.11"), alice("127.0.0.20"), alice("127.0.0.22")],
            "expect": [{"alertType": "PostgreSQL_ImpossibleTravel", "source": "127.0.0.21", "principal": "alice"}]
        }),
    );
    assert!(ok, "{report}");
}

/// sqlmap with a stolen password, statement logging off: its fingerprinting query that
/// fails (`AURORA_VERSION()`) is logged with the error, and names it.
#[test]
fn sqlmap_with_valid_credentials_is_named_with_statement_logging_off() {
    let mut cl = Cluster::start(ClusterOptions::default());
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("sqlmap")
        .args(["--batch", "--disable-coloring", "--flush-session", "-d"])
        .arg(format!(
            "postgresql://app:{APP_PASSWORD}@127.0.0.1:{}/appdb",
            cl.port
        ))
        .args(["--banner", "--current-user", "--output-dir"])
        .arg(home.path())
        .env("HOME", home.path())
        .output()
        .expect("sqlmap is not installed: apt-get install -y sqlmap python3-psycopg2");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("current user"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (ok, report) = evaluate(
        &mut cl,
        "sqlmap-direct",
        json!({
            "kind": "attack", "description": "sqlmap -d",
            "actors": {"127.0.0.1": actor("isp:US", false)}, "baseline": [],
            "expect": [{"alertType": "PostgreSQL_HarmfulApplication", "source": "127.0.0.1", "tool": "sqlmap"}]
        }),
    );
    assert!(ok, "{report}");
}

/// Role and database names are whatever a client sends: spaces, `@`, quotes, brackets,
/// commas, a line break, 63 bytes, a severity word, bytes that are not UTF-8. With
/// `%m [%p] %q%u@%d %h ` 13 such failed logins gave "26 of 39 lines could not be read".
#[tokio::test(flavor = "multi_thread")]
async fn hostile_role_and_database_names_parse_in_every_format() {
    let mut cl = Cluster::start(ClusterOptions {
        log_line_prefix: "%m [%p] %q%u@%d %h ",
        ..ClusterOptions::default()
    });
    let long = "r".repeat(63);
    let names = [
        "x y",
        "a@b",
        "o'brien",
        "say \"hi\"",
        "[adm]",
        "c,d",
        "new\nline",
        long.as_str(),
        "FATAL:  fake",
    ];
    for n in names {
        for db in ["x y", "appdb"] {
            assert!(!login("127.0.0.66", cl.port, n, "pw", db, None).await);
        }
    }
    // A startup packet whose role and database are not UTF-8, from an address pg_hba.conf
    // rejects before any password exchange.
    let hba = cl.data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all all 127.0.0.67/32 reject\n{rules}")).unwrap();
    cl.psql("SELECT pg_reload_conf()");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = connect_from("127.0.0.67", ([127, 0, 0, 1], cl.port).into()).await;
        let body = b"\x00\x03\x00\x00user\x00\xff\xfe r\xf6le\x00database\x00d\xe9b\x00\x00";
        let mut pkt = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        pkt.extend_from_slice(body);
        s.write_all(&pkt).await.unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).await;
    }
    cl.stop();
    for log in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        let (code, alerts, stderr) = analyze_json(&[cl.log_dir.join(log).as_os_str()]);
        assert_eq!(code, 1, "{log}: {stderr}");
        assert!(stderr.contains(" 0 malformed"), "{log}: {stderr}");
        let spray = find(&alerts, "PostgreSQL_PasswordSpray", "127.0.0.66");
        assert_eq!(spray.len(), 1, "{log}: {alerts:#?}");
        let roles: Vec<&str> = spray[0]["evidence"]["principals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for n in names {
            assert!(roles.contains(&n), "{log}: {n:?} not in {roles:?}");
        }
        // The rejected non-UTF-8 attempts are read too, with their address.
        let (_, events, _) = {
            let out = pgvigil()
                .args(["analyze", "--events", "--no-progress"])
                .arg(cl.log_dir.join(log))
                .output()
                .unwrap();
            let evs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            (0, evs, ())
        };
        let rejected = events
            .iter()
            .filter(|e| {
                e["sourceIp"] == "127.0.0.67"
                    && e["kind"]
                        .as_str()
                        .is_some_and(|k| k.starts_with("LoginFailed"))
            })
            .count();
        assert_eq!(rejected, 2, "{log}");
    }
}

/// The prefixes real installations use are read without `--log-line-prefix`: the issue's
/// `%m [%p] %q%u@%d %h ` gave no alert at all and "No alerts." on stdout.
#[tokio::test(flavor = "multi_thread")]
async fn a_common_prefix_is_read_without_being_told() {
    for prefix in ["%m [%p] %q%u@%d %h ", "%t:%r:%u@%d:[%p]:"] {
        let mut cl = Cluster::start(ClusterOptions {
            log_line_prefix: prefix,
            ..ClusterOptions::default()
        });
        fail_fast("127.0.0.66", cl.port, "app", 12).await;
        cl.stop();
        let (code, alerts, stderr) = analyze_json(&[cl.log_dir.join("postgresql.log").as_os_str()]);
        assert_eq!(code, 1, "{prefix}: {stderr}");
        assert!(stderr.contains(" 0 malformed"), "{prefix}: {stderr}");
        let bf = find(&alerts, "PostgreSQL_BruteForce", "127.0.0.66");
        assert_eq!(bf.len(), 1, "{prefix}: {alerts:#?}");
        assert_eq!(bf[0]["evidence"]["failedLogins"], 12, "{prefix}");
    }
}

/// `run` and `analyze` over the same log give the same alerts with the same final counts,
/// and `run` closes an incident when its window has passed on the wall clock while the log
/// is quiet (it waited for 10 minutes of log time and another line).
#[test]
fn run_closes_incidents_on_the_wall_clock_with_analyzes_counts() {
    let cl = Cluster::start(ClusterOptions::default());
    let detect =
        "[detect.brute_force]\nwindow = \"3s\"\n[detect.harmful_application]\nwindow = \"3s\"\n";
    let setup = RunSetup::new(&cl.log_dir, detect);
    let runner = setup.start();
    wait_ready(&setup.state);
    let words = cl.dir.path().join("words");
    let w: Vec<String> = (0..12).map(|i| format!("nope{i}")).collect();
    std::fs::write(&words, w.join("\n") + "\n").unwrap();
    hydra(cl.port, "app", &words, 4);
    // Nothing more is written; the final update must come from the wall clock alone.
    let config = setup.dir.path().join("detect.toml");
    std::fs::write(&config, detect).unwrap();
    let (_, batch, stderr) = analyze_json(&[
        OsStr::new("-c"),
        config.as_os_str(),
        OsStr::new("--server"),
        OsStr::new("db1"),
        cl.log_dir.join("postgresql.csv").as_os_str(),
    ]);
    let bf = find(&batch, "PostgreSQL_BruteForce", "127.0.0.1");
    assert_eq!(bf.len(), 1, "{stderr}: {batch:#?}");
    let want = bf[0]["evidence"]["failedLogins"].clone();
    let (mut seen, closed) = runner.until(Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["evidence"]["failedLogins"] == want
    });
    assert!(
        closed,
        "run gave the final count {want} within 30 s of quiet: {seen:#?}\n{}",
        runner.log()
    );
    // The other incidents close the same way.
    let (more, _) = runner.until(Duration::from_secs(8), |_| false);
    seen.extend(more);
    for a in &batch {
        let r = seen
            .iter()
            .rfind(|r| r["id"] == a["id"])
            .unwrap_or_else(|| panic!("run never raised {a:#}: {seen:#?}"));
        for k in ["failedLogins", "events"] {
            assert_eq!(
                r["evidence"][k], a["evidence"][k],
                "{k} of {}",
                a["alertType"]
            );
        }
        assert_eq!(r["severity"], a["severity"]);
        assert_eq!(r["endTimeUtc"], a["endTimeUtc"]);
    }
}
