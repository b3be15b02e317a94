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

/// A hardened server: nothing to report, as a superuser; as a monitoring role (pg_monitor)
/// the scan still exits 0 and says which checks it could not run.
#[test]
fn a_hardened_server_has_no_finding() {
    let cl = Cluster::start(ClusterOptions {
        extra: "log_statement = 'ddl'\nshared_preload_libraries = 'pgaudit'\n",
        ..Default::default()
    });
    cl.psql("DROP ROLE md5user");
    cl.psql("CREATE ROLE monitor LOGIN PASSWORD 'Mon-1tor-Qv!r7#Lm' IN ROLE pg_monitor");
    // SCRAM everywhere; the superuser only from this machine (the scan connects as it).
    // Roles whose names hold "all" or a superuser's name are other roles.
    std::fs::write(
        cl.data.join("pg_hba.conf"),
        "local all all trust\nhost all postgres 127.0.0.1/32 scram-sha-256\nhost all app 127.0.0.0/8 scram-sha-256\n\
         host all monitor 127.0.0.1/32 scram-sha-256\n\
         host all callcenter 0.0.0.0/0 scram-sha-256\nhost all postgres_ro 0.0.0.0/0 scram-sha-256\n",
    )
    .unwrap();
    cl.psql("SELECT pg_reload_conf()");
    let (code, findings, stderr) = scan(&cl);
    assert_eq!(code, 0, "{findings:#?}\n{stderr}");
    assert!(findings.is_empty());
    assert!(stderr.contains("0 check(s) not run"), "{stderr}");

    let url = format!(
        "postgres://monitor:{}@127.0.0.1:{}/postgres",
        "Mon-1tor-Qv!r7%23Lm", cl.port
    );
    let out = pgvigil().args(["scan", "--json", &url]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for what in ["not checked: pg_hba.conf", "not checked: stored passwords"] {
        assert!(stderr.contains(what), "{what}: {stderr}");
    }
}

/// What an auditor checks beyond the basics, each on a real cluster: trust and ident over
/// TCP (loopback included), hostnossl; CREATEROLE, extra superusers, BYPASSRLS, REPLICATION,
/// a login role without a password, a password from leaked lists; in another database than
/// the one in the URL, a SECURITY DEFINER function without search_path, a file function and
/// a table open to PUBLIC; logging that drops what detection needs. Each finding names its CIS
/// recommendation where there is one, and fixes quote identifiers.
#[test]
fn an_auditors_checklist_on_a_careless_server() {
    let cl = Cluster::start(ClusterOptions {
        extra:
            "log_disconnections = off\nlog_min_messages = fatal\nlog_min_error_statement = panic\n\
                authentication_timeout = '5min'\nlo_compat_privileges = on\n",
        ..Default::default()
    });
    let strong = "x9-Qv!r7#LmT2pWz";
    cl.psql(&format!(
        "CREATE ROLE manager LOGIN CREATEROLE PASSWORD '{strong}-m'"
    ));
    cl.psql(&format!(
        "CREATE ROLE \"Admin\" LOGIN SUPERUSER PASSWORD '{strong}-a'"
    ));
    cl.psql(&format!(
        "CREATE ROLE reporting LOGIN BYPASSRLS PASSWORD '{strong}-r'"
    ));
    cl.psql(&format!(
        "CREATE ROLE standby LOGIN REPLICATION PASSWORD '{strong}-s'"
    ));
    cl.psql("CREATE ROLE nopw LOGIN");
    cl.psql("CREATE ROLE breached LOGIN PASSWORD 'starwars'");
    cl.psql_db(
        "appdb",
        "CREATE FUNCTION public.bump() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'; \
         CREATE TABLE public.ledger(x int); GRANT ALL ON public.ledger TO PUBLIC; \
         GRANT EXECUTE ON FUNCTION pg_read_file(text) TO PUBLIC",
    );
    let hba = cl.data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!(
            "host all all 127.0.0.2/32 trust\nhost all all 127.0.0.3/32 ident\n\
             hostnossl all app 127.0.0.4/32 scram-sha-256\n{text}"
        ),
    )
    .unwrap();
    cl.psql("SELECT pg_reload_conf()");

    let (code, findings, stderr) = scan(&cl);
    assert_eq!(code, 1, "{stderr}");
    let got = checks(&findings);
    for want in [
        "hba-trust",
        "hba-ident",
        "hba-nossl",
        "createrole",
        "superuser-extra",
        "bypassrls",
        "replication-role",
        "login-no-password",
        "password-weak",
        "security-definer",
        "public-file-functions",
        "public-write",
        "log-disconnections",
        "log-min-messages",
        "log-min-error-statement",
        "authentication-timeout",
        "lo-compat-privileges",
        "pgaudit-missing",
    ] {
        assert!(got.contains(&want.to_string()), "{want} missing: {got:?}");
    }
    let one = |check: &str| -> &Value {
        findings
            .iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("{check}"))
    };
    assert_eq!(one("hba-trust")["severity"], "High");
    assert!(one("hba-trust")["title"]
        .as_str()
        .unwrap()
        .contains("this machine"));
    assert_eq!(one("createrole")["severity"], "High", "PostgreSQL 15");
    assert!(one("superuser-extra")["fix"]
        .as_str()
        .unwrap()
        .contains("ALTER ROLE \"Admin\" NOSUPERUSER"));
    let weak = one("password-weak");
    assert!(weak["title"].as_str().unwrap().contains("\"breached\""));
    assert!(weak["title"]
        .as_str()
        .unwrap()
        .contains("leaked password lists"));
    let definer = one("security-definer");
    assert_eq!(
        definer["severity"], "High",
        "superuser-owned, callable by anyone"
    );
    assert!(definer["title"].as_str().unwrap().contains("bump()"));
    assert!(definer["title"].as_str().unwrap().contains("\"appdb\""));
    assert!(one("public-write")["title"]
        .as_str()
        .unwrap()
        .contains("ledger"));
    assert_eq!(one("log-min-messages")["severity"], "High");
    assert_eq!(one("log-disconnections")["cis"]["item"], "3.1.21");
    assert_eq!(one("hba-trust")["cis"]["item"], "5.2");
    assert_eq!(one("pgaudit-missing")["cis"]["item"], "3.2");
    assert!(one("lo-compat-privileges")["cis"].is_null());
    assert!(!serde_json::to_string(&findings)
        .unwrap()
        .contains("starwars"));
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

fn scan_url(url: &str) -> (i32, String, std::time::Duration) {
    let t = std::time::Instant::now();
    let out = pgvigil().args(["scan", "--json", url]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
        t.elapsed(),
    )
}

/// Connections behave as libpq's: connect_timeout bounds a server that accepts and says
/// nothing; something that is not PostgreSQL is called so; sslmode require encrypts without
/// checking the certificate, verify-ca checks the chain but not the name, verify-full both.
#[test]
fn the_scan_connects_as_libpq_would() {
    // Accepts, reads, never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    for mode in ["disable", "prefer"] {
        let (code, stderr, took) = scan_url(&format!(
            "postgres://x@127.0.0.1:{silent_port}/postgres?connect_timeout=2&sslmode={mode}"
        ));
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("no answer within 2 s"), "{mode}: {stderr}");
        assert!(took < std::time::Duration::from_secs(8), "{mode}: {took:?}");
    }
    // Answers like a web server.
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_port = web.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in web.incoming().flatten() {
            use std::io::{Read, Write};
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            // Read what the client still sends until it hangs up, as a server that has
            // answered does: closing with unread bytes resets the connection, and the reset
            // can overtake the answer (seen once: "connection reset by peer" instead).
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    for mode in ["disable", "prefer"] {
        let (code, stderr, _) = scan_url(&format!(
            "postgres://x@127.0.0.1:{web_port}/postgres?sslmode={mode}&connect_timeout=5"
        ));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("not as a PostgreSQL server"),
            "{mode}: {stderr}"
        );
    }

    let certs = tempfile::tempdir().unwrap();
    let (cl, ca, _, _) = tls_cluster(certs.path());
    let pw = SUPERUSER_PASSWORD;
    let port = cl.port;
    let ca = ca.display().to_string();
    let ok = |url: String| {
        let (code, stderr, _) = scan_url(&url);
        assert!(code == 0 || code == 1, "{url}: {stderr}");
    };
    let refused = |url: String| {
        let (code, stderr, _) = scan_url(&url);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains("certificate"), "{url}: {stderr}");
    };
    // A private CA the machine does not trust: require still connects (encrypted), as libpq.
    ok(format!(
        "postgres://postgres:{pw}@127.0.0.1:{port}/postgres?sslmode=require"
    ));
    refused(format!(
        "postgres://postgres:{pw}@127.0.0.1:{port}/postgres?sslmode=verify-full"
    ));
    ok(format!(
        "postgres://postgres:{pw}@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
    ));
    // The certificate is for 127.0.0.1, not "localhost": the chain is enough for verify-ca.
    ok(format!(
        "postgres://postgres:{pw}@localhost:{port}/postgres?sslmode=verify-ca&sslrootcert={ca}"
    ));
    refused(format!(
        "postgres://postgres:{pw}@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
    ));
}
