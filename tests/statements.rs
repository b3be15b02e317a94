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
    let installed = Command::new("sqlmap").arg("--version").output();
    assert!(
        installed.is_ok_and(|o| o.status.success()),
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
    let report = sqlmap(port, out_dir.path(), &["--flush-session"]);
    assert!(
        report.contains("is vulnerable"),
        "sqlmap found the injection: {report}"
    );
    // The application's role made superuser (a careless setup), and its owner reading a
    // server file with psql from the same host: then sqlmap runs a shell command through the
    // application. Each is told with the program that did it.
    cl.psql("ALTER ROLE app SUPERUSER");
    psql_as(
        &cl,
        ("app", APP_PASSWORD),
        "SELECT pg_read_file('PG_VERSION')",
    );
    let report = sqlmap(port, out_dir.path(), &["--os-cmd=id"]);
    assert!(
        report.contains("command standard output"),
        "sqlmap ran a command: {report}"
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
        let unsafe_: Vec<String> = alerts_of(&alerts, "PostgreSQL_UnsafeAction")
            .iter()
            .map(|a| {
                format!(
                    "{} {} {}",
                    a["entities"]["principal"].as_str().unwrap_or(""),
                    a["entities"]["application"].as_str().unwrap_or(""),
                    rules(a)
                )
            })
            .collect();
        assert_eq!(
            unsafe_,
            [
                "app psql [\"server file access by function\"]",
                "app shop-web [\"COPY … PROGRAM runs a shell command\"]"
            ],
            "{log}"
        );
        // sqlmap's own probes (which DBMS fork it reached) name it, through the application;
        // besides, only the role made superuser.
        assert!(
            alerts
                .iter()
                .all(|a| a["alertType"] == "PostgreSQL_SqlInjection"
                    || a["alertType"] == "PostgreSQL_UnsafeAction"
                    || (a["alertType"] == "PostgreSQL_HarmfulApplication"
                        && a["evidence"]["tools"] == serde_json::json!(["sqlmap"]))
                    || (a["alertType"] == "PostgreSQL_PrivilegeEscalation"
                        && a["entities"]["principal"] == "postgres"
                        && rules(a) == "[\"made superuser\"]")),
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

/// What the log says happened, and only that: a CREATEROLE role that tries to make a role
/// superuser and is refused (42501) made an attempt, not a superuser, and the one acting is
/// the role of the session; what it could do (grant itself `pg_execute_server_program`, as
/// CREATEROLE allows on PostgreSQL 15) it did. A `DO` block that builds `COPY … TO PROGRAM`
/// from pieces is seen with `log_statement` alone; so are a dump sent as one query and a whole
/// table copied out by a role that never copied data out. Evidence keeps the statement's case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_actors_dynamic_sql_and_copies_out_as_the_log_tells_them() {
    for log_statement in ["all", "none"] {
        let mut cl = pgaudit_cluster(log_statement);
        cl.psql(
            "CREATE ROLE manager LOGIN CREATEROLE PASSWORD 'Man4ger-pw'; \
             CREATE ROLE victim LOGIN PASSWORD 'Vict1m-pw'; \
             GRANT SELECT ON orders TO manager",
        );
        let manager = ("manager", "Man4ger-pw", "postgres", "psql");
        let su = ("postgres", SUPERUSER_PASSWORD, "postgres", "psql");
        run_sql("127.0.2.1", cl.port, APP, &["SELECT * FROM items LIMIT 10"]).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let r = run_sql(
            "127.0.2.7",
            cl.port,
            manager,
            &[
                "ALTER ROLE victim SUPERUSER",
                "GRANT pg_execute_server_program TO manager",
            ],
        )
        .await;
        assert!(
            r[0].as_deref().is_some_and(|e| e.starts_with("42501")),
            "{r:?}"
        );
        assert_eq!(r[1], None, "{log_statement}");
        psql_as(
            &cl,
            ("manager", "Man4ger-pw"),
            "BEGIN; LOCK TABLE public.orders IN ACCESS SHARE MODE; COPY public.orders (id, item) TO STDOUT; COMMIT",
        );
        // With log_statement, pgaudit turned off first: only the DO block itself is logged.
        // The program reads what it is given: one that exits at once (`true`) makes the
        // server's write fail now and then with a broken pipe.
        let do_block = "DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO PRO' || 'GRAM ' || chr(39) || 'cat > /dev/null' || chr(39); END$$";
        let statements: &[&str] = if log_statement == "all" {
            &["SET pgaudit.log = 'none'", do_block]
        } else {
            &[do_block]
        };
        let r = run_sql("127.0.2.9", cl.port, su, statements).await;
        assert!(r.iter().all(Option::is_none), "{r:?}");
        psql_as(&cl, ("app", APP_PASSWORD), "COPY Orders TO STDOUT");
        cl.stop();
        let config = config(&cl);
        let logs: &[&str] = if log_statement == "all" {
            &["postgresql.log", "postgresql.csv", "postgresql.json"]
        } else {
            &["postgresql.csv"]
        };
        for log in logs {
            let what = format!("log_statement={log_statement} {log}");
            let alerts = analyze_with(&config, &cl.log_dir.join(log));
            let text = std::fs::read_to_string(cl.log_dir.join(log)).unwrap();
            assert_eq!(
                text.contains("PROGRAM 'cat > /dev/null'"),
                log_statement == "none",
                "{what}: the dynamic statement is in the log only through pgaudit"
            );
            let esc = alerts_of(&alerts, "PostgreSQL_PrivilegeEscalation");
            let summary: Vec<String> = esc
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {} {}",
                        a["entities"]["principal"].as_str().unwrap_or(""),
                        a["evidence"]["grantedBy"].as_str().unwrap_or(""),
                        a["severity"].as_str().unwrap_or(""),
                        rules(a)
                    )
                })
                .collect();
            assert_eq!(esc.len(), 2, "{what}: {summary:#?}");
            let about = |role: &str| {
                esc.iter()
                    .find(|a| {
                        a["remediationSteps"]
                            .to_string()
                            .contains(&format!("Review what \\\"{role}\\\""))
                    })
                    .unwrap_or_else(|| panic!("{what}: nothing about {role}: {summary:#?}"))
            };
            let victim = about("victim");
            assert_eq!(victim["severity"], "Medium", "{what}: {summary:#?}");
            assert!(rules(victim).contains("refused"), "{what}: {summary:#?}");
            assert!(
                !victim["description"].as_str().unwrap().contains("gained"),
                "{what}: {}",
                victim["description"]
            );
            assert_eq!(victim["evidence"]["grantedBy"], "manager", "{what}");
            let gained = about("manager");
            assert_eq!(
                gained["severity"], "High",
                "{what}: {summary:#?} {gained:#}"
            );
            assert_eq!(gained["evidence"]["grantedBy"], "manager", "{what}");
            assert!(
                gained["evidence"]["sampleStatements"]
                    .to_string()
                    .contains("GRANT pg_execute_server_program TO manager"),
                "{what}: {}",
                gained["evidence"]["sampleStatements"]
            );

            let unsafe_ = alerts_of(&alerts, "PostgreSQL_UnsafeAction");
            assert!(
                unsafe_
                    .iter()
                    .any(|a| rules(a).contains("PROGRAM")
                        && a["entities"]["sourceIp"] == "127.0.2.9"),
                "{what}: {unsafe_:#?}"
            );

            let mut exfil: Vec<String> = alerts_of(&alerts, "PostgreSQL_DataExfiltration")
                .iter()
                .map(|a| {
                    format!(
                        "{}@{}: {}",
                        a["entities"]["principal"].as_str().unwrap_or(""),
                        a["entities"]["sourceIp"].as_str().unwrap_or(""),
                        a["evidence"]["rules"][0].as_str().unwrap_or("")
                    )
                })
                .collect();
            exfil.sort();
            assert_eq!(
                exfil,
                [
                    "app@127.0.0.1: whole table copied out from a new source",
                    "manager@127.0.0.1: dump from a new source"
                ],
                "{what}"
            );
        }
    }
}

/// psql over TCP from 127.0.0.1 as another role (COPY … TO STDOUT needs a client that takes
/// the copy).
fn psql_as(cl: &Cluster, (user, password): (&str, &str), sql: &str) {
    let out = Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(cl.port.to_string())
        .args(["-U", user, "-d", "postgres", "-o", "/dev/null", "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql as {user}: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// sqlmap against the vulnerable endpoint on `port` (its session kept in `out_dir`): what it
/// printed.
fn sqlmap(port: u16, out_dir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["300", "sqlmap", "--batch", "--dbms=PostgreSQL"])
        .args(extra)
        .args(["--time-sec=1", "--disable-coloring", "-u"])
        .arg(format!("http://127.0.0.1:{port}/item?id=1"))
        .arg("--output-dir")
        .arg(out_dir)
        .env("HOME", out_dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
