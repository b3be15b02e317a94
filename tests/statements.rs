//! Statement-level detections against real clusters: pgaudit loaded (with and without
//! `log_statement`), an attacker with a superuser session, a dump taken by a role that never
//! took one, a session reading far more than its role ever did; and real sqlmap against a small
//! deliberately vulnerable web endpoint in front of the cluster.

mod support;

use serde_json::Value;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn pgaudit_cluster(log_statement: &str) -> Cluster {
    assert!(
        pg_pkglibdir().join("pgaudit.so").is_file(),
        "pgaudit is not installed: apt-get install -y postgresql-15-pgaudit"
    );
    let extra = format!(
        "shared_preload_libraries = 'pgaudit'\nlog_statement = '{log_statement}'\n\
         pgaudit.log = 'read,write,role,ddl,function,misc'\npgaudit.log_rows = on\n\
         pgaudit.log_relation = on\n"
    );
    let cl = Cluster::start(ClusterOptions {
        extra: &extra,
        ..Default::default()
    });
    cl.psql("CREATE EXTENSION pgaudit");
    cl.psql(
        "CREATE TABLE items(id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g; \
         CREATE TABLE orders AS SELECT g AS id, g % 20 AS item FROM generate_series(1, 50000) g; \
         CREATE TABLE customers AS SELECT g AS id, 'c' || g AS name FROM generate_series(1, 100) g; \
         GRANT SELECT ON items, orders TO app",
    );
    cl
}

fn pg_dump(cl: &Cluster, user: &str, password: &str) {
    let out = Command::new(pg_bin().join("pg_dump"))
        .args(["-h", "127.0.0.1", "-p", &cl.port.to_string(), "-U", user])
        .args(["-d", "postgres", "-f", "/dev/null", "--no-password"])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump as {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const APP: (&str, &str, &str, &str) = ("app", APP_PASSWORD, "postgres", "web");

async fn scenario(cl: &Cluster) {
    let su = ("postgres", SUPERUSER_PASSWORD, "postgres", "psql");
    // Learned: the application reads a few rows; the backup job dumps as postgres.
    let r = run_sql("127.0.2.1", cl.port, APP, &["SELECT * FROM items LIMIT 10"]).await;
    assert_eq!(r, [None]);
    pg_dump(cl, "postgres", SUPERUSER_PASSWORD);
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // The same again: normal.
    run_sql("127.0.2.1", cl.port, APP, &["SELECT * FROM items LIMIT 10"]).await;
    pg_dump(cl, "postgres", SUPERUSER_PASSWORD);
    // The application's role reads a whole table.
    run_sql("127.0.2.1", cl.port, APP, &["SELECT * FROM orders"]).await;
    // An attacker with the superuser's password, from another host.
    let errors = run_sql(
        "127.0.2.9",
        cl.port,
        su,
        &[
            "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'",
            "SELECT pg_read_file('PG_VERSION')",
            "ALTER SYSTEM SET archive_command = 'true'",
            "CREATE ROLE mallory LOGIN PASSWORD 'Mall0ry-pw'",
            "ALTER ROLE mallory SUPERUSER",
            "GRANT pg_execute_server_program TO mallory",
            "ALTER SYSTEM RESET archive_command",
        ],
    )
    .await;
    assert!(errors.iter().all(Option::is_none), "{errors:?}");
    pg_dump(cl, "mallory", "Mall0ry-pw");
}

fn alerts_of(alerts: &[Value], ty: &str) -> Vec<Value> {
    alerts
        .iter()
        .filter(|a| a["alertType"] == ty)
        .cloned()
        .collect()
}

fn rules(a: &Value) -> String {
    a["evidence"]["rules"].to_string()
}

fn check(alerts: &[Value], what: &str) {
    let unsafe_ = alerts_of(alerts, "PostgreSQL_UnsafeAction");
    assert_eq!(unsafe_.len(), 1, "{what}: {unsafe_:#?}");
    let u = &unsafe_[0];
    assert_eq!(u["entities"]["principal"], "postgres", "{what}");
    assert_eq!(u["entities"]["sourceIp"], "127.0.2.9", "{what}");
    assert_eq!(u["severity"], "High", "{what}");
    for r in ["PROGRAM", "server file access", "ALTER SYSTEM of a setting"] {
        assert!(rules(u).contains(r), "{what}: {r} in {}", rules(u));
    }

    let esc = alerts_of(alerts, "PostgreSQL_PrivilegeEscalation");
    assert_eq!(esc.len(), 1, "{what}: {esc:#?}");
    assert_eq!(esc[0]["severity"], "High");
    assert_eq!(esc[0]["evidence"]["grantedBy"], "postgres");
    assert!(esc[0]["description"]
        .as_str()
        .unwrap()
        .contains("\"mallory\""));
    assert!(rules(&esc[0]).contains("made superuser"), "{what}");
    assert!(rules(&esc[0]).contains("granted a role"), "{what}");

    let mut exfil: Vec<String> = alerts_of(alerts, "PostgreSQL_DataExfiltration")
        .iter()
        .map(|a| {
            format!(
                "{}@{}: {}",
                a["entities"]["principal"].as_str().unwrap(),
                a["entities"]["sourceIp"].as_str().unwrap(),
                a["evidence"]["rules"][0].as_str().unwrap()
            )
        })
        .collect();
    exfil.sort();
    assert_eq!(
        exfil,
        [
            "app@127.0.2.1: read far more rows than usual",
            "mallory@127.0.0.1: dump from a new source"
        ],
        "{what}"
    );
    assert!(
        alerts_of(alerts, "PostgreSQL_SqlInjection").is_empty(),
        "{what}"
    );
    let text = serde_json::to_string(alerts).unwrap();
    assert!(!text.contains("Mall0ry-pw"), "{what}: password in an alert");
    assert!(
        !text.contains("PG_VERSION"),
        "{what}: literals are redacted"
    );
}

fn analyze_with(config: &std::path::Path, log: &std::path::Path) -> Vec<Value> {
    let (code, alerts, stderr) =
        analyze_json(&[OsStr::new("-c"), config.as_os_str(), log.as_os_str()]);
    assert_eq!(code, 1, "{}: {stderr}", log.display());
    assert!(
        stderr.contains(" 0 malformed"),
        "{}: {stderr}",
        log.display()
    );
    alerts
}

fn config(cl: &Cluster) -> std::path::PathBuf {
    let config = cl.dir.path().join("pgvigil.toml");
    std::fs::write(
        &config,
        "[detect.profile]\nlearning_period = \"2s\"\n[detect.data_exfiltration]\nmin_rows = 1000\n",
    )
    .unwrap();
    config
}

/// pgaudit and `log_statement = 'all'` both on: every statement is logged twice and must
/// count once; the same alerts from every log format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgaudit_and_statement_logs_raise_each_statement_alert() {
    let mut cl = pgaudit_cluster("all");
    scenario(&cl).await;
    cl.stop();
    let config = config(&cl);
    for log in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        let alerts = analyze_with(&config, &cl.log_dir.join(log));
        check(&alerts, log);
        let u = &alerts_of(&alerts, "PostgreSQL_UnsafeAction")[0];
        // Four unsafe statements, each counted once although logged twice.
        assert_eq!(u["evidence"]["statements"], 4, "{log}: {u:#}");
    }
}

/// pgaudit alone (no `log_statement`): the same alerts from its entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgaudit_alone_is_enough() {
    let mut cl = pgaudit_cluster("none");
    scenario(&cl).await;
    cl.stop();
    let config = config(&cl);
    let text = std::fs::read_to_string(cl.log_dir.join("postgresql.log")).unwrap();
    assert!(!text.contains("statement: "), "no log_statement lines");
    let alerts = analyze_with(&config, &cl.log_dir.join("postgresql.csv"));
    check(&alerts, "pgaudit only");
}

struct App(std::process::Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, query: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /item?{query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// sqlmap against a web endpoint that pastes its parameter into SQL: the statements it makes
/// the application run are a SqlInjection alert on the application; the application's own
/// traffic before it raised nothing.
#[test]
fn sqlmap_through_a_vulnerable_application_is_sql_injection() {
    let sqlmap = Command::new("sqlmap").arg("--version").output();
    assert!(
        sqlmap.is_ok_and(|o| o.status.success()),
        "sqlmap is not installed: apt-get install -y sqlmap"
    );
    let mut cl = Cluster::start(ClusterOptions {
        extra: "log_statement = 'all'\n",
        ..Default::default()
    });
    cl.psql(
        "CREATE TABLE items(id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g; \
         GRANT SELECT ON items TO app",
    );
    let port = free_port();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/vulnerable_app.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(port.to_string())
        .arg(format!(
            "host=127.0.0.1 port={} user=app password={APP_PASSWORD} dbname=postgres",
            cl.port
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with psycopg2 (apt-get install -y python3-psycopg2)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let app = App(child);
    assert_eq!(line.trim(), "ready", "the vulnerable app did not start");
    for id in 1..=20 {
        assert!(get(port, &format!("id={id}")).contains(&format!("item {id}")));
    }
    let config = cl.dir.path().join("pgvigil.toml");
    std::fs::write(&config, "[detect.profile]\nlearning_period = \"0s\"\n").unwrap();
    let csv = cl.log_dir.join("postgresql.csv");
    std::thread::sleep(Duration::from_millis(300));
    let (code, alerts, stderr) =
        analyze_json(&[OsStr::new("-c"), config.as_os_str(), csv.as_os_str()]);
    assert_eq!(
        code, 0,
        "ordinary requests raise nothing: {alerts:#?} {stderr}"
    );

    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args([
            "300",
            "sqlmap",
            "--batch",
            "--flush-session",
            "--dbms=PostgreSQL",
        ])
        .args(["--time-sec=1", "--disable-coloring", "-u"])
        .arg(format!("http://127.0.0.1:{port}/item?id=1"))
        .arg("--output-dir")
        .arg(out_dir.path())
        .env("HOME", out_dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("is vulnerable"),
        "sqlmap found the injection: {report}"
    );
    drop(app);
    cl.stop();

    for log in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        let (code, alerts, stderr) = analyze_json(&[
            OsStr::new("-c"),
            config.as_os_str(),
            cl.log_dir.join(log).as_os_str(),
        ]);
        assert_eq!(code, 1, "{log}: {stderr}");
        let inj = alerts_of(&alerts, "PostgreSQL_SqlInjection");
        assert_eq!(
            inj.len(),
            1,
            "{log}: one alert for the application: {inj:#?}"
        );
        let a = &inj[0];
        assert_eq!(a["entities"]["application"], "shop-web");
        assert_eq!(a["entities"]["principal"], "app");
        assert_eq!(a["severity"], "High");
        assert_eq!(a["techniques"][0], "T1190");
        for r in [
            "pg_sleep",
            "UNION SELECT NULL",
            "CHR() chain",
            "constant comparison",
        ] {
            assert!(rules(a).contains(r), "{log}: {r} in {}", rules(a));
        }
        assert!(
            a["evidence"]["statements"].as_u64().unwrap() >= 10,
            "{log}: {a:#}"
        );
        // sqlmap's own probes (which DBMS fork it reached) name it, through the application.
        assert!(
            alerts
                .iter()
                .all(|a| a["alertType"] == "PostgreSQL_SqlInjection"
                    || (a["alertType"] == "PostgreSQL_HarmfulApplication"
                        && a["evidence"]["tools"] == serde_json::json!(["sqlmap"]))),
            "{log}: nothing else: {alerts:#?}"
        );
    }
}

/// What an attacker writes to slip past name matching and text rules, run for real as the
/// superuser and the application: quoted and schema-qualified function names, an untrusted
/// language, a library loaded from a path, file_fdw over a program, membership in a
/// superuser role, logging turned off for the session; credentials read with UNION,
/// error-based and blind extraction. Each is seen in every log format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evasions_and_extraction_are_seen_in_every_log_format() {
    let mut cl = pgaudit_cluster("all");
    let su = ("postgres", SUPERUSER_PASSWORD, "postgres", "psql");
    run_sql("127.0.2.1", cl.port, APP, &["SELECT * FROM items LIMIT 10"]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Some fail (no plperlu here, no such library, no access): each is logged all the same.
    run_sql(
        "127.0.2.9",
        cl.port,
        su,
        &[
            "SELECT \"pg_read_file\"('PG_VERSION')",
            "SELECT \"pg_catalog\".\"pg_read_file\"('PG_VERSION')",
            "CREATE LANGUAGE plperlu",
            "LOAD '/tmp/pgvigil-test-no-such.so'",
            "CREATE EXTENSION IF NOT EXISTS file_fdw",
            "CREATE SERVER files FOREIGN DATA WRAPPER file_fdw",
            "CREATE FOREIGN TABLE cmd (line text) SERVER files OPTIONS (program 'id')",
            "CREATE ROLE mallory LOGIN PASSWORD 'Mall0ry-pw'",
            "GRANT postgres TO mallory",
            "SET log_statement = 'none'",
            "SELECT 'this is not logged'",
        ],
    )
    .await;
    run_sql(
        "127.0.2.1",
        cl.port,
        APP,
        &[
            "SELECT name FROM items WHERE id=1 UNION SELECT passwd FROM pg_shadow",
            "SELECT name FROM items WHERE id=1 AND 1=CAST((SELECT version()) AS int)",
            "SELECT name FROM items WHERE id=1 AND ascii(substring((SELECT current_user),1,1))>64",
        ],
    )
    .await;
    cl.stop();
    let config = config(&cl);
    for log in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        let alerts = analyze_with(&config, &cl.log_dir.join(log));
        let unsafe_ = alerts_of(&alerts, "PostgreSQL_UnsafeAction");
        assert_eq!(unsafe_.len(), 1, "{log}: {unsafe_:#?}");
        let r = rules(&unsafe_[0]);
        for want in [
            "server file access by function",
            "untrusted language created",
            "LOAD of a shared library from a path",
            "foreign table over a program's output",
            "logging turned off for the session",
        ] {
            assert!(r.contains(want), "{log}: {want} in {r}");
        }
        let esc = alerts_of(&alerts, "PostgreSQL_PrivilegeEscalation");
        assert!(
            esc.iter().any(|a| {
                rules(a).contains("granted membership in a superuser role")
                    && a["description"]
                        .as_str()
                        .unwrap_or("")
                        .contains("\"mallory\"")
            }),
            "{log}: {esc:#?}"
        );
        let sqli = alerts_of(&alerts, "PostgreSQL_SqlInjection");
        let r: String = sqli.iter().map(rules).collect();
        for want in [
            "password hashes",
            "error-based extraction",
            "blind extraction",
        ] {
            assert!(r.contains(want), "{log}: {want} in {r}");
        }
        let text = serde_json::to_string(&alerts).unwrap();
        assert!(!text.contains("this is not logged"));
    }
}
