//! `pgvigil scan` against real clusters: one deliberately misconfigured (each weakness a
//! finding), one hardened (no finding).

mod support;

use serde_json::Value;
use support::*;

fn scan(cl: &Cluster) -> (i32, Vec<Value>, String) {
    let url = format!(
        "postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/postgres",
        cl.port
    );
    let out = pgvigil().args(["scan", "--json", &url]).output().unwrap();
    let findings = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        findings,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn checks(findings: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn a_misconfigured_server_shows_each_weakness() {
    let cl = Cluster::start(ClusterOptions {
        extra: "log_connections = off\npassword_encryption = md5\n",
        ..Default::default()
    });
    // The test cluster already has an md5 pg_hba line and a role with an MD5 password.
    cl.psql("CREATE ROLE weak LOGIN PASSWORD 'weak'");
    cl.psql("SET password_encryption = 'scram-sha-256'; CREATE ROLE svc LOGIN PASSWORD 'changeme'");
    cl.psql("SET password_encryption = 'scram-sha-256'; CREATE ROLE strong LOGIN PASSWORD 'x9-Qv!r7#LmT2pWz'");
    cl.psql("GRANT CREATE ON SCHEMA public TO PUBLIC");
    cl.psql("GRANT pg_execute_server_program TO app");
    cl.psql("CREATE EXTENSION dblink");
    let hba = cl.data.join("pg_hba.conf");
    let mut text = std::fs::read_to_string(&hba).unwrap();
    text.push_str("host all all 0.0.0.0/0 trust\nhost all all 10.0.0.0/8 password\n");
    std::fs::write(&hba, text).unwrap();
    cl.psql("SELECT pg_reload_conf()");

    let (code, findings, stderr) = scan(&cl);
    assert_eq!(code, 1, "{stderr}");
    let got = checks(&findings);
    for want in [
        "log-connections",
        "log-statement",
        "password-encryption",
        "hba-md5",
        "hba-trust",
        "hba-password",
        "hba-open",
        "hba-superuser-remote",
        "password-md5",
        "password-weak",
        "public-create",
        "server-program",
        "risky-extension",
    ] {
        assert!(
            got.contains(&want.to_string()),
            "{want} missing: {findings:#?}"
        );
    }
    let weak: Vec<&str> = findings
        .iter()
        .filter(|f| f["check"] == "password-weak")
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(weak.len(), 2, "{weak:?}");
    assert!(weak
        .iter()
        .any(|t| t.contains("\"weak\"") && t.contains("its own name")));
    assert!(weak
        .iter()
        .any(|t| t.contains("\"svc\"") && t.contains("common password")));
    assert!(
        !stderr.contains("changeme")
            && !serde_json::to_string(&findings)
                .unwrap()
                .contains("changeme")
    );
    let program = findings
        .iter()
        .find(|f| f["check"] == "server-program")
        .unwrap();
    assert!(program["title"].as_str().unwrap().contains("\"app\""));
    assert_eq!(program["severity"], "High");
}

#[test]
fn a_hardened_server_has_no_finding() {
    let cl = Cluster::start(ClusterOptions {
        extra: "log_statement = 'ddl'\n",
        ..Default::default()
    });
    cl.psql("DROP ROLE md5user");
    // SCRAM everywhere; the superuser only from this machine (the scan connects as it).
    // Roles whose names hold "all" or a superuser's name are other roles.
    std::fs::write(
        cl.data.join("pg_hba.conf"),
        "local all all trust\nhost all postgres 127.0.0.1/32 scram-sha-256\nhost all app 127.0.0.0/8 scram-sha-256\n\
         host all callcenter 0.0.0.0/0 scram-sha-256\nhost all postgres_ro 0.0.0.0/0 scram-sha-256\n",
    )
    .unwrap();
    cl.psql("SELECT pg_reload_conf()");
    let (code, findings, stderr) = scan(&cl);
    assert_eq!(code, 0, "{findings:#?}\n{stderr}");
    assert!(findings.is_empty());
}

/// `run` with a `[scan]` section scans the server it watches and serves the findings at
/// `GET /servers/{server}/posture`; the monitoring password appears in neither the answer
/// nor the log.
#[test]
fn run_scans_periodically_and_serves_the_posture() {
    let cl = Cluster::start(ClusterOptions {
        extra: "log_connections = off\n",
        ..Default::default()
    });
    let setup = RunSetup::new(
        &cl.log_dir,
        &format!(
            "[scan]\nurl = \"postgres://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{}/postgres\"\ninterval = \"1s\"\n",
            cl.port
        ),
    );
    let token = setup.token("ops", "reader");
    let run = setup.start();
    let base = format!("http://{}", run.api_addr());
    let get = || api_get(&base, "/servers/db1/posture", &token);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let posture = loop {
        let (status, v) = get();
        assert_eq!(status, 200, "{v}");
        if v["findings"].is_array() {
            break v;
        }
        assert!(
            std::time::Instant::now() < end,
            "no scan result: {v}\n{}",
            run.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        checks(posture["findings"].as_array().unwrap()).contains(&"log-connections".to_string()),
        "{posture:#}"
    );
    assert!(posture["scannedAt"].as_str().unwrap().ends_with('Z'));
    // The next scan sees the fix.
    cl.psql("ALTER SYSTEM SET log_connections = on");
    cl.psql("SELECT pg_reload_conf()");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, v) = get();
        if !checks(v["findings"].as_array().unwrap()).contains(&"log-connections".to_string()) {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the fix was not seen: {v:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!run.log().contains(SUPERUSER_PASSWORD), "{}", run.log());
    assert!(run.log().contains("posture: "), "findings are logged");
    let (status, _) = api_get(&base, "/servers/nosuch/posture", &token);
    assert_eq!(status, 404);
}
