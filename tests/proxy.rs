//! The proxy in front of a real cluster: real clients work through it and are told apart,
//! logins are seen with the client's real address (PostgreSQL sees the proxy's), cancel
//! requests reach the right query, attack tools are recognised (ncrack's spoofed
//! application_name too), hydra is stopped by active response while others keep working, and
//! garbage, silence and floods are refused without disturbing anyone.

mod support;

use serde_json::{json, Value};
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

fn proxy(cl: &Cluster, extra: &[&str]) -> Runner {
    let upstream = format!("127.0.0.1:{}", cl.port);
    let mut args: Vec<&OsStr> = vec![
        "proxy".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--upstream".as_ref(),
        upstream.as_ref(),
        "--server".as_ref(),
        "db1".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    Runner::spawn(&args)
}

/// `pgvigil proxy` with a configuration file of `toml`, kept in `dir`.
fn proxy_configured(cl: &Cluster, dir: &std::path::Path, toml: &str, extra: &[&str]) -> Runner {
    let config = dir.join("pgvigil.toml");
    std::fs::write(&config, toml).unwrap();
    let mut args = extra.to_vec();
    args.extend(["-c", config.to_str().unwrap()]);
    proxy(cl, &args)
}

/// psql in a terminal (under a pty, so it sends the terminal's client_encoding), as a
/// person types it: `SELECT 42` with `password`, over `conninfo`.
fn psql_in_a_terminal(conninfo: &str, password: &str) -> std::process::Output {
    std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} -X -A -t -P pager=off -c 'SELECT 42' '{conninfo}'",
            pg_bin().join("psql").display()
        ))
        .arg("/dev/null")
        .env("PGPASSWORD", password)
        .output()
        .expect("script (util-linux) and psql")
}

/// The failed logins among what `proxy --events` printed.
fn failed_logins(seen: &[Value]) -> Vec<&Value> {
    seen.iter()
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("LoginFailed"))
        })
        .collect()
}

/// hydra against the proxy as role `app`, with `wrong` wrong passwords and then the right
/// one; hydra's report.
fn hydra_through(addr: SocketAddr, wrong: usize) -> String {
    hydra_tasks(addr, wrong, 1)
}

/// hydra with `tasks` parallel tasks.
fn hydra_tasks(addr: SocketAddr, wrong: usize, tasks: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let words = words(dir.path(), wrong);
    let port = addr.port().to_string();
    let tasks = tasks.to_string();
    let out = std::process::Command::new("hydra")
        .args(["-l", "app", "-P"])
        .arg(&words)
        .args(["-t", &tasks, "-s", &port, "127.0.0.1", "postgres"])
        .env("PGPORT", &port)
        .output()
        .expect("hydra (apt-get install -y hydra)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The proxy's last `PostgreSQL_HarmfulApplication` alert, waited for.
fn harmful_alert(p: &Runner) -> Value {
    let (alerts, found) = p.until(Duration::from_secs(20), |a| {
        a["alertType"] == "PostgreSQL_HarmfulApplication"
    });
    assert!(found, "{alerts:#?}\n{}", p.log());
    alerts.last().unwrap().clone()
}

/// A word list of `wrong` wrong passwords and then the right one.
fn words(dir: &std::path::Path, wrong: usize) -> std::path::PathBuf {
    let p = dir.join("words.txt");
    let mut list: Vec<String> = (0..wrong).map(|i| format!("guess{i}")).collect();
    list.push(APP_PASSWORD.into());
    std::fs::write(&p, list.join("\n") + "\n").unwrap();
    p
}

/// A tokio-postgres client connected through the proxy from `source`.
async fn connect(
    source: &str,
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    login_over(connect_from(source, addr).await, user, password).await
}

/// A tokio-postgres login over a connection already open.
async fn login_over(
    stream: tokio::net::TcpStream,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(user)
        .password(password)
        .dbname("postgres")
        .application_name("proxy-test");
    let (client, conn) = cfg.connect_raw(stream, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

fn server_log(cl: &Cluster) -> String {
    std::fs::read_to_string(cl.log_dir.join("postgresql.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_work_through_the_proxy_and_failures_carry_the_real_address() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &[]);
    let addr = p.proxy_addr();

    // psql (libpq), through the proxy.
    let out = std::process::Command::new(pg_bin().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
        ])
        .args([
            "-U",
            "app",
            "-d",
            "appdb",
            "-c",
            "SELECT 'psql ok', current_user",
        ])
        .env("PGPASSWORD", APP_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "psql ok|app",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A Rust client from another address, with a real query.
    let c = connect("127.0.3.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM generate_series(1, 1000)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);

    // Cancel: the request goes through the proxy to the backend running the query.
    let token = c.cancel_token();
    let started = std::time::Instant::now();
    let sleeper = tokio::spawn(async move { c.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    token
        .cancel_query_raw(sock, tokio_postgres::NoTls)
        .await
        .unwrap();
    let err = sleeper.await.unwrap().unwrap_err();
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("57014"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Twelve wrong passwords from 127.0.3.2: PostgreSQL sees the proxy's address, the alert
    // names the client's.
    for _ in 0..12 {
        assert!(connect("127.0.3.2", addr, "app", "wrong").await.is_err());
    }
    let (alerts, found) = p.until(Duration::from_secs(20), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["entities"]["sourceIp"] == "127.0.3.2"
    });
    assert!(found, "{alerts:#?}\n{}", p.log());
    let bf = alerts.last().unwrap();
    // Failures in a row at a client's pace: an attack from the fourth.
    assert!(bf["evidence"]["failedLogins"].as_u64().unwrap() >= 4);
    assert_eq!(bf["entities"]["principal"], "app");
    assert_eq!(
        bf["displayName"],
        "Suspected brute force attack using a valid user"
    );
    let log = server_log(&cl);
    assert!(log.contains("password authentication failed for user \"app\""));
    assert!(
        !log.contains("127.0.3.2"),
        "the server never sees the client's address"
    );
    assert!(
        alerts
            .iter()
            .all(|a| a["alertType"] != "PostgreSQL_HarmfulApplication"),
        "ordinary clients are not tools: {alerts:#?}"
    );
}

#[test]
fn hydra_is_blocked_by_active_response_and_others_keep_working() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &["--block", "--allow", "127.0.3.9/32"]);
    let addr = p.proxy_addr();
    // The right password comes last: hydra must be stopped before it gets there.
    let report = hydra_through(addr, 40);
    assert!(
        !report.contains(APP_PASSWORD),
        "hydra found the password through the proxy: {report}\n{}\n{}",
        p.log(),
        server_log(&cl)
            .lines()
            .filter(|l| l.contains("authorized") || l.contains("FATAL"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ha = harmful_alert(&p);
    assert_eq!(ha["evidence"]["tools"][0], "hydra/medusa");
    // Its packet is any libpq program's on template1: its pace and its database named it.
    assert_eq!(ha["entities"]["fingerprint"], "libpq or hydra/medusa");
    let said = &ha["evidence"]["activeResponse"];
    assert_eq!(said["action"], "blocked", "{ha:#}");
    assert!(said["until"].as_str().unwrap() > said["since"].as_str().unwrap());
    let log = p.log();
    assert!(log.contains("proxy: blocked"), "{log}");
    // PostgreSQL saw only the attempts before the block, not the word list.
    let failures = server_log(&cl)
        .matches("password authentication failed")
        .count();
    assert!(
        (1..=10).contains(&failures),
        "{failures} failed logins reached PostgreSQL"
    );
    // A blocked address gets a proper refusal; another address logs in.
    let refused = std::process::Command::new(pg_bin().join("psql"))
        .args(["-X", "-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-U", "app", "-d", "appdb", "-c", "SELECT 1"])
        .env("PGPASSWORD", APP_PASSWORD)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("connection refused"), "{msg}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = connect("127.0.3.1", addr, "app", APP_PASSWORD)
            .await
            .unwrap();
        c.simple_query("SELECT 1").await.unwrap();
    });
}

/// hydra with 64 parallel tasks, the password 50th: most of its attempts are in flight
/// when the block comes. Each is refused before its password is tried or its success told.
#[test]
fn a_parallel_attack_in_flight_is_stopped_by_the_block() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &["--block"]);
    let report = hydra_tasks(p.proxy_addr(), 49, 64);
    assert!(
        !report.contains(APP_PASSWORD),
        "hydra -t 64 found the password at position 50: {report}\n{}",
        p.log()
    );
    let tried = server_log(&cl)
        .matches("password authentication failed")
        .count();
    assert!(
        tried < 49,
        "{tried} of hydra's 49 wrong passwords reached PostgreSQL"
    );
}

/// Slow clients (slow-loris) from a few addresses hold at most `per_source_in_auth` slots
/// each: ordinary logins from elsewhere still get in. The allowlist is exempt from the
/// per-source limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_from_a_few_addresses_do_not_starve_the_others() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(
        &cl,
        dir.path(),
        "[proxy]\nmax_clients = 200\nper_source_per_minute = 60\nauth_timeout = \"20s\"\n\
         [proxy.active_response]\nallowlist = [\"127.0.5.9\"]\n",
        &[],
    );
    let addr = p.proxy_addr();
    // 4 addresses, 50 silent connections each: 200, the proxy's whole capacity.
    let mut held = Vec::new();
    for a in 1..=4 {
        for _ in 0..50 {
            held.push(connect_from(&format!("127.0.5.{a}"), addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..5 {
        let c = connect(&format!("127.0.6.{}", i + 1), addr, "app", APP_PASSWORD).await;
        assert!(c.is_ok(), "login {i} during the slow-loris: {:?}", c.err());
    }
    drop(held);
    // The allowlisted address: past the per-minute rate, still let in.
    for i in 0..70 {
        let c = connect("127.0.5.9", addr, "app", APP_PASSWORD).await;
        assert!(c.is_ok(), "allowlisted login {i}: {:?}", c.err());
    }
}

/// psql (a terminal, sslmode=prefer) against a proxy that accepts TLS: each typo fails over
/// TLS and libpq retries at once without TLS. The retry is the same psql, not a second
/// client with ncrack's packet.
#[test]
fn libpqs_retry_without_tls_is_the_same_client() {
    let certs = tempfile::tempdir().unwrap();
    let (cl, _ca, cert, key) = tls_cluster(certs.path());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_with_tls(&cl, dir.path(), &cert, &key, &["--block", "--events"]);
    let port = p.proxy_addr().port();
    for typo in ["apppas", "appass"] {
        let out = psql_in_a_terminal(
            &format!("host=127.0.0.1 port={port} user=app dbname=appdb"),
            typo,
        );
        assert!(!out.status.success());
        std::thread::sleep(Duration::from_millis(1200));
    }
    let (seen, _) = p.until(Duration::from_secs(3), |_| false);
    let failed = failed_logins(&seen);
    assert_eq!(
        failed.len(),
        4,
        "two typos, each retried without TLS: {seen:#?}"
    );
    for e in &failed {
        assert_eq!(e["fingerprint"], "psql", "{e:#}");
    }
    assert!(
        !seen.iter().any(|a| a["alertType"].is_string()),
        "{seen:#?}"
    );
}

/// A client's connection to the proxy keeps TCP keepalive on: one that vanishes without a
/// word does not hold its backend for ever. Read from the kernel's own table: an established
/// socket on the proxy's port whose timer is the keepalive timer (2 in /proc/net/tcp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connections_keep_tcp_keepalive() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &[]);
    let addr = p.proxy_addr();
    let c = connect("127.0.7.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let port = format!(":{:04X}", addr.port());
    // Idle sockets only: one with data in flight shows its retransmission timer (01).
    let timer = |l: &str| l.split_whitespace().nth(5).unwrap_or("").to_string();
    let mut ours: Vec<String> = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        ours = table
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // local address on the proxy's port, state 01: established
                f.len() > 5 && f[1].ends_with(&port) && f[3] == "01"
            })
            .map(String::from)
            .collect();
        if !ours.is_empty() && !ours.iter().any(|l| timer(l).starts_with("01:")) {
            break;
        }
    }
    assert!(!ours.is_empty(), "no connection on the proxy's port");
    assert!(
        ours.iter().all(|l| timer(l).starts_with("02:")),
        "keepalive timer on every client connection: {ours:#?}"
    );
    drop(c);
}

/// The self-signed certificate PostgreSQL's documentation shows how to make is its own CA,
/// which certificate verification refuses as a server's. With `upstream_tls` the proxy's log
/// says so and what to do, instead of a bare error code.
#[test]
fn a_self_signed_ca_as_the_servers_certificate_is_explained() {
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = (
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
    );
    ran(
        std::process::Command::new("openssl")
            .args([
                "req", "-new", "-x509", "-days", "365", "-nodes", "-text", "-out",
            ])
            .arg(&crt)
            .arg("-keyout")
            .arg(&key)
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ]),
        "openssl",
    );
    let cl = cluster_serving_tls(certs.path(), &crt, &key);
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(
        &cl,
        dir.path(),
        &format!(
            "[proxy]\nupstream_tls = true\nupstream_ca_file = \"{}\"\nspare_connections = 0\n",
            crt.display()
        ),
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ok = rt.block_on(connect("127.0.7.2", p.proxy_addr(), "app", APP_PASSWORD));
    assert!(ok.is_err());
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !p.log().contains("a CA certificate used as its own") {
        assert!(std::time::Instant::now() < end, "{}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A startup packet reaches the server as the client wrote it: a role name in LATIN1
/// (`r\xf6le`, not UTF-8) is the name the server looks up, not one with U+FFFD in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_bytes_reach_the_server_unchanged() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &[]);
    let mut s = connect_from("127.0.7.3", p.proxy_addr()).await;
    let body = b"\x00\x03\x00\x00user\x00r\xf6le\x00database\x00postgres\x00\x00";
    let mut pkt = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    pkt.extend_from_slice(body);
    s.write_all(&pkt).await.unwrap();
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf).await;
    // A wrong answer to the SCRAM request: the server's FATAL line names the role.
    s.write_all(b"p\x00\x00\x00\x08abc\x00").await.unwrap();
    let _ = s.read(&mut buf).await;
    drop(s);
    drop(p);
    cl.stop();
    let log = std::fs::read(cl.log_dir.join("postgresql.log")).unwrap();
    let has = |needle: &[u8]| log.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"r\xf6le") && !has("r\u{fffd}le".as_bytes()),
        "{}",
        String::from_utf8_lossy(&log)
    );
}

#[test]
fn ncrack_claiming_to_be_psql_is_recognised() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &[]);
    let addr = p.proxy_addr();
    ran(
        std::process::Command::new("timeout")
            .args(["60", "ncrack"])
            .arg(format!("psql://127.0.0.1:{}", addr.port()))
            .args(["--user", "md5user", "--pass", "a,b,c,d,e"]),
        "ncrack (apt-get install -y ncrack)",
    );
    let a = harmful_alert(&p);
    assert_eq!(a["evidence"]["tools"][0], "ncrack");
    assert_eq!(a["entities"]["application"], "psql", "what it claimed");
    assert_eq!(
        a["entities"]["fingerprint"], "psql or ncrack",
        "its packet is psql's at a terminal: the pace named it"
    );
}

/// psql at a terminal (under a pty, so it sends the terminal's client_encoding) without TLS
/// sends ncrack's packet byte for byte. Three typos at a person's pace and then the right
/// password, through a blocking proxy: never called a tool, never blocked.
#[test]
fn psql_at_a_terminal_with_typos_is_not_ncrack() {
    let cl = Cluster::start(ClusterOptions::default());
    // psql's default database is the role's: pgsql-brute's trace too.
    cl.psql("CREATE DATABASE app OWNER app");
    let p = proxy(&cl, &["--block", "--events"]);
    let conninfo = format!(
        "host=127.0.0.1 port={} user=app sslmode=disable",
        p.proxy_addr().port()
    );
    let psql = |password: &str| psql_in_a_terminal(&conninfo, password);
    for typo in ["apppas", "appass", "Apppass"] {
        let out = psql(typo);
        assert!(!out.status.success());
        std::thread::sleep(Duration::from_millis(1500));
    }
    let out = psql(APP_PASSWORD);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("42"),
        "the right password after three typos logs in: {}{}",
        String::from_utf8_lossy(&out.stdout),
        p.log()
    );
    let (seen, _) = p.until(Duration::from_secs(3), |_| false);
    let failed = failed_logins(&seen);
    assert_eq!(failed.len(), 3, "{seen:#?}");
    for e in &failed {
        assert_eq!(e["fingerprint"], "psql or ncrack", "ncrack's packet: {e:#}");
    }
    assert!(
        !seen.iter().any(|a| a["alertType"].is_string()),
        "no alert for a person's typos: {seen:#?}"
    );
}

/// medusa and patator through the proxy: each found the password, and each is named by its
/// fingerprint in the harmful-application alert and among the brute-force alert's entities.
#[test]
fn medusa_and_patator_through_the_proxy_are_recognised() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let words = words(dir.path(), 12);

    let p = proxy(&cl, &[]);
    let port = p.proxy_addr().port().to_string();
    let out = std::process::Command::new("medusa")
        .env("PGPORT", &port)
        .args([
            "-h",
            "127.0.0.1",
            "-n",
            &port,
            "-u",
            "app",
            "-M",
            "postgres",
        ])
        .args(["-t", "2", "-P"])
        .arg(&words)
        .output()
        .expect("medusa (apt-get install -y medusa)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("ACCOUNT FOUND"), "{report}");
    let seen = std::sync::Mutex::new(Vec::<Value>::new());
    let (_, found) = p.until(Duration::from_secs(20), |a| {
        let mut v = seen.lock().unwrap();
        v.push(a.clone());
        v.iter()
            .any(|a| a["alertType"] == "PostgreSQL_HarmfulApplication")
            && v.iter()
                .any(|a| a["displayName"] == "Suspected successful brute force attack")
    });
    let alerts = seen.into_inner().unwrap();
    assert!(found, "{alerts:#?}\n{}", p.log());
    let last = |t: &str| {
        alerts
            .iter()
            .rev()
            .find(|a| a["alertType"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(
        last("PostgreSQL_HarmfulApplication")["evidence"]["tools"][0],
        "hydra/medusa"
    );
    assert_eq!(
        last("PostgreSQL_BruteForce")["entities"]["fingerprint"],
        "libpq or hydra/medusa"
    );
    drop(p);

    let p = proxy(&cl, &[]);
    let port = p.proxy_addr().port().to_string();
    ran(
        std::process::Command::new("patator")
            .args([
                "pgsql_login",
                "host=127.0.0.1",
                &format!("port={port}"),
                "user=app",
                "password=FILE0",
            ])
            .arg(format!("0={}", words.display())),
        "patator (apt-get install -y patator)",
    );
    let ha = harmful_alert(&p);
    assert_eq!(ha["evidence"]["tools"][0], "patator", "{ha:#}");
    // psycopg2's packet: named by its pace.
    assert_eq!(ha["entities"]["fingerprint"], "libpq or patator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_silence_and_floods_are_refused_without_harm() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(
        &cl,
        dir.path(),
        "[proxy]\nauth_timeout = \"1s\"\nper_source_per_minute = 20\n",
        &[],
    );
    let addr = p.proxy_addr();
    // An HTTP request, a huge length, a truncated packet: each a protocol error, answered.
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0][..],
        &[0, 0, 0, 40, 0, 3, 0, 0, b'u'][..],
    ] {
        let mut s = connect_from("127.0.3.7", addr).await;
        s.write_all(junk).await.unwrap();
        let _ = s.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        assert!(
            answer.is_empty() || answer[0] == b'E',
            "a protocol error or nothing, never a hang: {answer:?}"
        );
    }
    // A protocol version PostgreSQL does not speak: the server's own answer is relayed, as a
    // scanner comparing it with PostgreSQL's expects.
    let mut s = connect_from("127.0.3.7", addr).await;
    s.write_all(&[0, 0, 0, 8, 0, 9, 0, 9]).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(answer.first(), Some(&b'E'), "{text}");
    assert!(
        text.contains("unsupported frontend protocol 9.9: server supports"),
        "the server's words: {text}"
    );
    // Silence: the proxy gives up after auth_timeout with a FATAL.
    let mut s = connect_from("127.0.3.8", addr).await;
    let mut answer = Vec::new();
    let t = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after the auth timeout"
    );
    assert_eq!(answer.first(), Some(&b'E'));
    assert!(String::from_utf8_lossy(&answer).contains("timed out"));
    // A flood from one address is cut at 20 a minute; others are not affected.
    let mut refused = 0;
    for _ in 0..25 {
        let mut s = connect_from("127.0.3.6", addr).await;
        let _ = s.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        if String::from_utf8_lossy(&answer).contains("too many connection attempts") {
            refused += 1;
        }
    }
    assert_eq!(refused, 5);
    let c = connect("127.0.3.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    // The junk is a probe.
    let (alerts, found) = p.until(Duration::from_secs(10), |a: &Value| {
        a["alertType"] == "PostgreSQL_Probe" && a["entities"]["sourceIp"] == "127.0.3.7"
    });
    assert!(found, "{alerts:#?}\n{}", p.log());
}

/// `run` with a `[proxy]` section: the proxy's logins join the log's in one pipeline (the
/// log's copies of proxied logins, which carry the proxy's address, are left out), alerts
/// are stored and served, blocks are listed by the API, and the profile learns fingerprints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_the_proxy_stores_alerts_blocks_and_fingerprints() {
    let cl = Cluster::start(ClusterOptions::default());
    let setup = run_with_blocking_proxy(&cl);
    let token = setup.token("ops", "reader");
    let admin = setup.token("boss", "admin");
    let mut run = setup.start();
    let addr = run.proxy_addr();
    let api = run.api_addr();

    // An ordinary client first: its fingerprint is learned.
    let c = connect("127.0.3.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    drop(c);

    assert!(
        !hydra_through(addr, 30).contains(APP_PASSWORD),
        "{}",
        run.log()
    );

    let base = format!("http://{api}");
    let get = |path: &str| -> Value {
        let (status, v) = api_get(&base, path, &token);
        assert_eq!(status, 200, "{path}");
        v
    };
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let v = get("/alerts?server=db1");
        let all = v["value"].as_array().cloned().unwrap_or_default();
        if all
            .iter()
            .any(|a| a["alertType"] == "PostgreSQL_HarmfulApplication")
        {
            break all;
        }
        assert!(std::time::Instant::now() < end, "{v:#}\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ha: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["alertType"] == "PostgreSQL_HarmfulApplication")
        .collect();
    assert_eq!(
        ha.len(),
        1,
        "one alert, not one from the log and one from the proxy"
    );
    assert_eq!(ha[0]["evidence"]["tools"][0], "hydra/medusa");
    assert_eq!(
        ha[0]["evidence"]["activeResponse"]["action"], "blocked",
        "the stored alert says the proxy blocked its source: {:#}",
        ha[0]
    );
    let blocks = get("/proxy/blocks");
    assert_eq!(blocks["value"][0]["sourceIp"], "127.0.0.1", "{blocks:#}");
    // The proxy's figures in /metrics.
    let (status, metrics) = api_text(&base, "/metrics", &token);
    assert_eq!(status, 200);
    let figure = |line: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
    };
    assert!(figure("pgvigil_proxy_logins_total ") >= 1.0, "{metrics}");
    assert!(
        figure("pgvigil_logins_total{outcome=\"failed\"} ") >= 1.0,
        "{metrics}"
    );
    // Every metric the shipped Grafana dashboard queries is served.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/pgvigil.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for name in metrics_of(expr) {
                assert!(
                    metrics.contains(&format!("# TYPE {name} ")),
                    "the dashboard's panel {} queries {name}, which /metrics does not serve:\n{metrics}",
                    p["title"]
                );
            }
        }
    }
    assert!(
        figure("pgvigil_proxy_connections_total ") >= 5.0,
        "{metrics}"
    );
    assert!(
        figure("pgvigil_proxy_refused_total{reason=\"blocked\"} ") >= 1.0,
        "hydra's attempts after the block: {metrics}"
    );
    assert_eq!(figure("pgvigil_proxy_blocked_sources "), 1.0, "{metrics}");
    assert_eq!(
        blocks["value"][0]["alertType"],
        "PostgreSQL_HarmfulApplication"
    );
    // A reader cannot lift a block.
    let (status, _) = api_send(&base, "DELETE", "/proxy/blocks/127.0.0.1", &token);
    assert_eq!(status, 403);
    // Dismissing the alert (an authorised test, say) lets the source in within 2 s, and
    // the source's other alerts, still counting, do not shut it out again.
    let cause = blocks["value"][0]["alertId"].as_str().unwrap().to_string();
    let (status, _) = api_send(&base, "POST", &format!("/alerts/{cause}/dismiss"), &admin);
    assert_eq!(status, 200);
    let dismissed = std::time::Instant::now();
    let back = connect("127.0.0.1", addr, "app", APP_PASSWORD).await;
    assert!(
        back.is_ok() && dismissed.elapsed() < Duration::from_secs(2),
        "let in after the dismissal: {:?}\n{}",
        back.err(),
        run.log()
    );
    drop(back);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get("/proxy/blocks")["value"], serde_json::json!([]));
    let (status, _) = api_send(&base, "DELETE", "/proxy/blocks/127.0.0.1", &admin);
    assert_eq!(status, 404, "nothing left to lift");
    assert!(
        run.log().contains("block lifted with its alert") && run.log().contains("boss"),
        "who lifted it is logged: {}",
        run.log()
    );
    let end = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let p = get("/servers/db1/profile");
        let fps = p["profile"]["fingerprints"].to_string();
        if fps.contains("tokio-postgres") {
            break;
        }
        assert!(std::time::Instant::now() < end, "{p:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // SIGTERM drains the proxy before run checkpoints and exits.
    let open = connect("127.0.3.2", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    run.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    open.simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("the open session broke while draining: {e}\n{}", run.log()));
    drop(open);
    let st = run.wait_exit(Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "exit {st:?}:\n{}",
        run.log()
    );
    assert!(run.log().contains("checkpointed"), "{}", run.log());
}

/// psql through the proxy with `sslmode=verify-full`, against the proxy's certificate.
fn psql_tls(addr: SocketAddr, ca: &std::path::Path, extra: &str) -> std::process::Output {
    std::process::Command::new(pg_bin().join("psql"))
        .args(["-X", "-A", "-t", "-c"])
        .arg("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .arg(format!(
            "host=127.0.0.1 port={} user=app dbname=appdb sslmode=verify-full sslrootcert={} {extra}",
            addr.port(),
            ca.display()
        ))
        .env("PGPASSWORD", APP_PASSWORD)
        .output()
        .unwrap()
}

/// TLS: the proxy terminates the client's TLS (sslmode=verify-full against its certificate)
/// and, when asked, speaks TLS to the server (verified with the private CA). SCRAM works
/// through it without channel binding, which a terminating proxy cannot carry: it strips
/// SCRAM-SHA-256-PLUS from the server's offer, and a client that insists on binding while the
/// server side is TLS too is refused by PostgreSQL, as documented.
#[test]
fn tls_on_both_sides() {
    let certs = tempfile::tempdir().unwrap();
    let (cl, ca, cert, key) = tls_cluster(certs.path());
    let config = |upstream_tls: bool| {
        let path = certs.path().join(format!("proxy-{upstream_tls}.toml"));
        std::fs::write(
            &path,
            format!(
                "[proxy]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nupstream_tls = {upstream_tls}\nupstream_ca_file = \"{}\"\n",
                cert.display(),
                key.display(),
                ca.display()
            ),
        )
        .unwrap();
        path
    };

    // Client TLS at the proxy, plain on the machine's loopback to the server.
    let c1 = config(false);
    let p = proxy(&cl, &["-c", c1.to_str().unwrap()]);
    let out = psql_tls(p.proxy_addr(), &ca, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "f",
        "TLS to the proxy, plain behind it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(p);

    // TLS on both legs.
    let c2 = config(true);
    let p = proxy(&cl, &["-c", c2.to_str().unwrap()]);
    let out = psql_tls(p.proxy_addr(), &ca, "channel_binding=disable");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t",
        "the server's side is TLS: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    // libpq's default (prefer) over TLS tells the server it could bind; a TLS server then
    // refuses the downgrade. Behind a TLS upstream, TLS clients need channel_binding=disable.
    let out = psql_tls(p.proxy_addr(), &ca, "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("channel binding"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = psql_tls(p.proxy_addr(), &ca, "channel_binding=require");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("channel binding"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A certificate the client does not trust: verify-full refuses the proxy.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = private_ca(other.path());
    let out = psql_tls(p.proxy_addr(), &other_ca, "");
    assert!(!out.status.success());
}

/// With TLS on both sides, libpq's defaults (sslmode=prefer, channel_binding=prefer) over
/// TLS are refused by the server once (the binding cannot cross the proxy) and get in at
/// once without TLS. 25 default psycopg2 connects through a blocking proxy: all in, no alert.
#[test]
fn default_psycopg2_behind_tls_on_both_sides_is_never_blocked() {
    let certs = tempfile::tempdir().unwrap();
    let (cl, ca, cert, key) = tls_cluster(certs.path());
    let config = certs.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\ntls_cert = \"{}\"\ntls_key = \"{}\"\nupstream_tls = true\nupstream_ca_file = \"{}\"\n",
            cert.display(),
            key.display(),
            ca.display()
        ),
    )
    .unwrap();
    let p = proxy(
        &cl,
        &["-c", config.to_str().unwrap(), "--block", "--events"],
    );
    let addr = p.proxy_addr();
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!(
            "import psycopg2\n\
             for i in range(25):\n    \
                 c = psycopg2.connect(host='127.0.0.1', port={}, user='app', password='{APP_PASSWORD}', dbname='appdb')\n    \
                 c.cursor().execute('SELECT 1')\n    \
                 c.close()\n\
             print('ok')",
            addr.port()
        ))
        .output()
        .expect("python3 with psycopg2");
    let (seen, _) = p.until(Duration::from_secs(3), |_| false);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}\n{seen:#?}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    let logins = seen
        .iter()
        .filter(|e| e["kind"] == "LoginSucceeded")
        .count();
    assert_eq!(logins, 25, "{seen:#?}");
    assert!(
        !seen.iter().any(|e| e["alertType"].is_string()
            || e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("LoginFailed"))),
        "no failed login, no alert: {seen:#?}"
    );
    assert!(
        p.log().contains("channel_binding=disable"),
        "the refusal is explained: {}",
        p.log()
    );
}

/// Behind a load balancer: connections from a trusted balancer start with a PROXY protocol
/// header (v1 or v2) naming the real client, and the alerts name that client; an untrusted
/// peer cannot claim another address that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_names_the_real_client_from_trusted_balancers_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(
        &cl,
        dir.path(),
        "[proxy]\nproxy_protocol_from = [\"127.0.0.1/32\"]\n",
        &[],
    );
    let addr = p.proxy_addr();
    let v2 = |src: [u8; 4], port: u16| {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&[127, 0, 0, 1]);
        h.extend_from_slice(&port.to_be_bytes());
        h.extend_from_slice(&6432u16.to_be_bytes());
        h
    };
    let attempt = |header: Vec<u8>, source: &'static str| async move {
        let mut stream = connect_from(source, addr).await;
        stream.write_all(&header).await.unwrap();
        let mut cfg = tokio_postgres::Config::new();
        cfg.user("app").password("wrong").dbname("appdb");
        cfg.connect_raw(stream, tokio_postgres::NoTls).await.err()
    };
    for i in 0..10 {
        let e = attempt(v2([203, 0, 113, 50], 40_000 + i), "127.0.0.1").await;
        assert!(e.is_some_and(|e| e.as_db_error().is_some_and(|d| d.code().code() == "28P01")));
        let line = format!("PROXY TCP4 198.51.100.7 127.0.0.1 {} 6432\r\n", 41_000 + i);
        let e = attempt(line.into_bytes(), "127.0.0.1").await;
        assert!(e.is_some_and(|e| e.as_db_error().is_some_and(|d| d.code().code() == "28P01")));
    }
    for src in ["203.0.113.50", "198.51.100.7"] {
        let (alerts, found) = p.until(Duration::from_secs(20), |a| {
            a["alertType"] == "PostgreSQL_BruteForce" && a["entities"]["sourceIp"] == src
        });
        assert!(found, "{src}: {alerts:#?}\n{}", p.log());
    }
    // An untrusted peer's PROXY line is not a header but a startup packet of invalid length.
    let mut stream = connect_from("127.0.3.5", addr).await;
    stream
        .write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1 6432\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty(),
        "closed without a word, as PostgreSQL does with a bad length: {answer:?}"
    );
}

/// Each real client is told apart by its startup packet: psql, psycopg2 and psycopg 3 (libpq),
/// tokio-postgres, pgJDBC, pgx and asyncpg, each logging in through the proxy; and the applications that name themselves
/// on top of those drivers (pgAdmin on psycopg). pgx is known by its way of falling back from
/// TLS, and psycopg2 logging in right after it from the same address stays libpq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_are_identified() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &["--events"]);
    let addr = p.proxy_addr();
    let port = addr.port().to_string();
    let out = std::process::Command::new(pg_bin().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "app",
            "-d",
            "appdb",
        ])
        .args(["-c", "SELECT 1"])
        .env("PGPASSWORD", APP_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // psycopg2 (libpq), as is and as pgAdmin 4 uses it (naming the connection).
    let psycopg2 = |extra: &str| {
        ran(
            std::process::Command::new("/usr/bin/python3").arg("-c").arg(format!(
                "import psycopg2; psycopg2.connect(host='127.0.0.1', port={port}, user='app', password='{APP_PASSWORD}', dbname='appdb'{extra}).close()"
            )),
            "python3 with psycopg2 (apt-get install -y python3-psycopg2)",
        );
    };
    let go = tempfile::tempdir().unwrap();
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pgx_client.go");
    let pgx = go.path().join("pgx_client");
    let install = "go and pgx v4 (apt-get install -y golang-go golang-github-jackc-pgx-v4-dev)";
    ran(
        std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&pgx)
            .arg(&source)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", go.path().join("cache")),
        install,
    );
    let url = format!("postgres://app:{APP_PASSWORD}@127.0.0.1:{port}/appdb");
    ran(std::process::Command::new(&pgx).arg(&url), install);
    psycopg2("");
    // Asking for TLS and leaving when declined, with no retry: a bare connect after all.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = connect_from("127.0.3.9", addr).await;
        s.write_all(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])
            .await
            .unwrap();
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
    }
    connect("127.0.3.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap()
        .simple_query("SELECT 1")
        .await
        .unwrap();
    let probe =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/JdbcProbe.java");
    let out = std::process::Command::new("java")
        .args(["-cp", "/usr/share/java/postgresql.jar"])
        .arg(&probe)
        .args([port.as_str(), APP_PASSWORD])
        .output()
        .expect(
            "java and pgJDBC (apt-get install -y default-jdk-headless libpostgresql-jdbc-java)",
        );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "jdbc ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    psycopg2(", application_name='pgAdmin 4 - DB:appdb'");

    // asyncpg, and psycopg 3 (libpq again).
    ran(
        std::process::Command::new("/usr/bin/python3").arg("-c").arg(format!(
            "import asyncio, asyncpg, psycopg\n\
             async def main():\n\
             \x20   c = await asyncpg.connect(host='127.0.0.1', port={port}, user='app', password='{APP_PASSWORD}', database='appdb')\n\
             \x20   await c.fetchval('SELECT 1')\n\
             \x20   await c.close()\n\
             asyncio.run(main())\n\
             psycopg.connect(host='127.0.0.1', port={port}, user='app', password='{APP_PASSWORD}', dbname='appdb').close()\n"
        )),
        "asyncpg and psycopg 3 (apt-get install -y python3-asyncpg python3-psycopg)",
    );

    // In the order the clients logged in, one after the other.
    let libpq = "libpq (psycopg2, psycopg 3, libpq-based drivers)";
    let want = [
        "psql",
        "pgx",
        libpq,
        "tokio-postgres",
        "pgjdbc",
        "pgAdmin",
        "asyncpg",
        libpq,
    ];
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let (events, found) = p.until(Duration::from_secs(20), |e| {
        if e["kind"] == "LoginSucceeded" {
            let mut s = seen.lock().unwrap();
            s.push(e["fingerprint"].as_str().unwrap_or("none").to_string());
            return s.len() == want.len();
        }
        false
    });
    assert!(found, "{:?}\n{events:#?}", seen.lock().unwrap());
    assert_eq!(*seen.lock().unwrap(), want);
    // The bare connect is told about 2 s after it closed (a driver might have retried
    // without TLS): before the last login when that one is slow to start (Java), else after.
    let bare_at = |e: &Value| {
        e["kind"]
            .as_str()
            .is_some_and(|k| k.starts_with("ProtocolError"))
            && e["sourceIp"] == "127.0.3.9"
    };
    let more = if events.iter().any(bare_at) {
        Vec::new()
    } else {
        let (more, found) = p.until(Duration::from_secs(10), bare_at);
        assert!(found, "{more:#?}");
        more
    };
    let events: Vec<Value> = events.into_iter().chain(more).collect();
    let bare: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("ProtocolError"))
        })
        .collect();
    assert_eq!(
        bare.len(),
        1,
        "pgx falling back from TLS is no bare connect: {bare:#?}"
    );
    assert!(
        events.iter().all(|e| e.get("alertType").is_none()),
        "ordinary clients raise nothing: {events:#?}"
    );
}

/// An MD5 login that takes `delay` to answer the password request, spoken by hand; whether
/// the server let it in.
fn slow_md5_login(addr: SocketAddr, delay: Duration) -> bool {
    use md5::Digest;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", "md5user"), ("database", "postgres")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    s.write_all(&packet).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut read_msg = || -> (u8, Vec<u8>) {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut b = vec![0u8; len - 4];
        s.read_exact(&mut b).unwrap();
        (head[0], b)
    };
    let (kind, b) = read_msg();
    assert_eq!(
        (kind, &b[..4]),
        (b'R', &5u32.to_be_bytes()[..]),
        "MD5 asked"
    );
    let salt = &b[4..8];
    std::thread::sleep(delay);
    let inner = hex::encode(md5::Md5::digest(b"md5passmd5user"));
    let mut outer = md5::Md5::new();
    outer.update(inner.as_bytes());
    outer.update(salt);
    let answer = format!("md5{}", hex::encode(outer.finalize()));
    let mut msg = vec![b'p'];
    msg.extend_from_slice(&((answer.len() + 5) as u32).to_be_bytes());
    msg.extend_from_slice(answer.as_bytes());
    msg.push(0);
    w.write_all(&msg).unwrap();
    loop {
        match read_msg() {
            (b'Z', _) => return true,
            (b'E', _) => return false,
            _ => {}
        }
    }
}

/// The time a client takes to answer the server's authentication requests is measured, shown
/// in the events, and usable in signatures: a login answered after 1.5 s is someone typing,
/// however its packet looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authentication_timing_is_part_of_the_fingerprint() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let sigs = dir.path().join("fingerprints.toml");
    std::fs::write(
        &sigs,
        "[[client]]\nname = \"answered by hand\"\nmin_auth_ms = 1500\n",
    )
    .unwrap();
    let p = proxy_configured(
        &cl,
        dir.path(),
        &format!("[proxy]\nfingerprints = \"{}\"\n", sigs.display()),
        &["--events"],
    );
    let addr = p.proxy_addr();
    let slow =
        tokio::task::spawn_blocking(move || slow_md5_login(addr, Duration::from_millis(1800)));
    assert!(slow.await.unwrap(), "the slow login succeeds");
    connect("127.0.3.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap()
        .simple_query("SELECT 1")
        .await
        .unwrap();
    let (events, found) = p.until(Duration::from_secs(20), |e| {
        e["kind"] == "LoginSucceeded" && e["principal"] == "app"
    });
    assert!(found, "{events:#?}");
    let logins: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "LoginSucceeded")
        .collect();
    assert_eq!(logins.len(), 2, "{logins:#?}");
    let (by_hand, driver) = (logins[0], logins[1]);
    assert_eq!(by_hand["fingerprint"], "answered by hand", "{by_hand:#}");
    let us = by_hand["clientAuthUs"].as_u64().unwrap();
    assert!((1_800_000..10_000_000).contains(&us), "{us} µs");
    assert_eq!(driver["fingerprint"], "tokio-postgres", "{driver:#}");
    let us = driver["clientAuthUs"].as_u64().unwrap();
    assert!(us < 1_500_000, "SCRAM answered by a driver in {us} µs");
}

/// With statement inspection on, the SQL of simple and prepared queries goes to the
/// statement detectors, with the client's real address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspected_statements_reach_the_statement_detectors() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(&cl, dir.path(), "[proxy]\ninspect_statements = true\n", &[]);
    let addr = p.proxy_addr();
    let c = connect("127.0.3.4", addr, "postgres", SUPERUSER_PASSWORD)
        .await
        .unwrap();
    c.simple_query("COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'")
        .await
        .unwrap();
    // Extended protocol: Parse carries the text.
    let rows = c
        .query("SELECT 1 AS x WHERE 1 = $1 AND 4521=4521", &[&1i32])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    // A large bulk load streams through uninspected and intact.
    c.simple_query("CREATE TABLE bulk(v text)").await.unwrap();
    let big = "x".repeat(3 << 20);
    c.execute("INSERT INTO bulk VALUES ($1)", &[&big])
        .await
        .unwrap();
    let n: i32 = c
        .query_one("SELECT length(v) FROM bulk", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, big.len());
    for ty in ["PostgreSQL_UnsafeAction", "PostgreSQL_SqlInjection"] {
        let (alerts, found) = p.until(Duration::from_secs(20), |a| {
            a["alertType"] == ty && a["entities"]["sourceIp"] == "127.0.3.4"
        });
        assert!(found, "{ty}: {alerts:#?}\n{}", p.log());
    }
}

/// nmap sees PostgreSQL through the proxy (its version detection matches what the server
/// itself answers), and its pgsql-brute script is recognised as an attack tool.
#[test]
fn nmap_sees_postgresql_and_is_recognised() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &[]);
    let addr = p.proxy_addr();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    let passwords = dir.path().join("passwords.txt");
    std::fs::write(&users, "md5user\n").unwrap();
    std::fs::write(&passwords, "a\nb\nc\nd\ne\nf\nmd5pass\n").unwrap();
    let out = std::process::Command::new("nmap")
        .args([
            "-sV",
            "-p",
            &addr.port().to_string(),
            "--script",
            "pgsql-brute",
        ])
        .arg("--script-args")
        .arg(format!(
            "userdb={},passdb={}",
            users.display(),
            passwords.display()
        ))
        .arg("127.0.0.1")
        .output()
        .expect("nmap (apt-get install -y nmap)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("postgresql"), "{report}");
    let (alerts, found) = p.until(Duration::from_secs(20), |a| {
        a["alertType"] == "PostgreSQL_HarmfulApplication"
    });
    assert!(found, "{report}\n{alerts:#?}\n{}", p.log());
    assert!(
        alerts.last().unwrap()["evidence"]["tools"]
            .to_string()
            .contains("nmap"),
        "{alerts:#?}"
    );
}

/// When the server's log says the backend of `pid` was started (its `connection
/// received`), in ms since the epoch.
fn backend_started_ms(cl: &Cluster, pid: i32) -> i64 {
    let log = server_log(cl);
    let tag = format!("[{pid}] ");
    let line = log
        .lines()
        .find(|l| l.contains(&tag) && l.contains("connection received"))
        .unwrap_or_else(|| panic!("no connection received for {pid}:\n{log}"));
    let stamp = line.get(..23).unwrap();
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.3f")
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    d.as_millis() as i64
}

/// A login through `addr` and the pid of its backend, with when it began (ms since epoch).
async fn login_pid(source: &str, addr: SocketAddr) -> (i64, i32) {
    let began = now_ms();
    let client = connect(source, addr, "app", APP_PASSWORD)
        .await
        .expect("login through the proxy");
    (began, backend_pid(&client).await)
}

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Spare connections: after a first login, a login gets a backend the server started before
/// the client came, and with `spare_connections = 0` one started for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_take_a_backend_started_ahead_of_them() {
    let cl = Cluster::start(ClusterOptions::default());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ahead = proxy_configured(&cl, d1.path(), "[proxy]\nspare_connections = 2\n", &[]);
    let on_demand = proxy_configured(&cl, d2.path(), "[proxy]\nspare_connections = 0\n", &[]);
    // An idle proxy keeps no spares: the first login's backend is started for it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (began, pid) = login_pid("127.0.4.1", ahead.proxy_addr()).await;
    assert!(
        backend_started_ms(&cl, pid) >= began - 1,
        "no spare before a first login"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let (began, pid) = login_pid("127.0.4.1", ahead.proxy_addr()).await;
        let started = backend_started_ms(&cl, pid);
        assert!(
            started < began,
            "spare backend started {} ms after the client came",
            started - began
        );
        // The next spare is opened when a login ends, not while it runs.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (began, pid) = login_pid("127.0.4.2", on_demand.proxy_addr()).await;
    let started = backend_started_ms(&cl, pid);
    // The log's clock has milliseconds: started may print 1 ms before began.
    assert!(
        started >= began - 1,
        "without spares the backend started {} ms before the client came",
        began - started
    );
}

/// Spares the server closed (its authentication_timeout is shorter than spare_max_age) are
/// never handed to a client, and spares are replaced once spare_max_age old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spares_the_server_gave_up_on_are_not_used() {
    let cl = Cluster::start(ClusterOptions {
        extra: "authentication_timeout = '3s'\n",
        ..ClusterOptions::default()
    });
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stale = proxy_configured(
        &cl,
        d1.path(),
        "[proxy]\nspare_connections = 3\nspare_max_age = \"30s\"\n",
        &["--events"],
    );
    let young = proxy_configured(
        &cl,
        d2.path(),
        "[proxy]\nspare_connections = 1\nspare_max_age = \"2s\"\n",
        &[],
    );
    // Spares are kept from a first login on.
    login_pid("127.0.4.9", stale.proxy_addr()).await;
    login_pid("127.0.4.19", young.proxy_addr()).await;
    // Past the server's 3 s: the stale proxy's spares are closed; the young one's first
    // spare is past its 2 s.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    for i in 0..5 {
        login_pid(&format!("127.0.4.{}", 10 + i), stale.proxy_addr()).await;
    }
    let (events, _) = stale.until(Duration::from_secs(10), |e| {
        e["kind"] == "LoginSucceeded" && e["sourceIp"] == "127.0.4.14"
    });
    let ok = events
        .iter()
        .filter(|e| e["kind"] == "LoginSucceeded")
        .count();
    assert_eq!(ok, 6, "{events:#?}");
    let (began, pid) = login_pid("127.0.4.20", young.proxy_addr()).await;
    let started = backend_started_ms(&cl, pid);
    assert!(
        started < began && began - started < 2000,
        "the spare's backend started {} ms before the login; it should be younger than 2 s",
        began - started
    );
}

/// Without a spare, the server connection is opened as the client arrives, not once its
/// startup packet is in: the backend starts while the client is still saying what it wants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_connection_opens_as_the_client_arrives() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(&cl, dir.path(), "[proxy]\nspare_connections = 0\n", &[]);
    let addr = p.proxy_addr();
    let arrived = now_ms();
    let stream = connect_from("127.0.4.30", addr).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let spoke = now_ms();
    let client = login_over(stream, "app", APP_PASSWORD).await.unwrap();
    let started = backend_started_ms(&cl, backend_pid(&client).await);
    assert!(
        started >= arrived - 1 && started < spoke - 200,
        "backend started {} ms after the client arrived, {} ms before it spoke",
        started - arrived,
        spoke - started
    );
}

/// Clients that connect and say nothing do not each hold a backend on the server: beyond a
/// few logins under way, the server connection waits for the startup packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_do_not_reach_the_server() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_configured(&cl, dir.path(), "[proxy]\nspare_connections = 0\n", &[]);
    let addr = p.proxy_addr();
    let received = || server_log(&cl).matches("connection received").count();
    let before = received();
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(connect_from("127.0.4.40", addr).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reached = received() - before;
    assert!(
        (1..=8).contains(&reached),
        "{reached} of 30 silent clients reached the server"
    );
    // A real client still gets in meanwhile.
    login_pid("127.0.4.41", addr).await;
    drop(silent);
}

/// SIGTERM drains the proxy: the port closes at once (a pool or balancer goes elsewhere), a
/// session open through it keeps working until its client ends it, then the proxy exits 0.
/// A session that outlasts `drain_timeout` is closed and the proxy still exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_open_sessions_and_refuses_new_ones() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let mut p = proxy_configured(&cl, dir.path(), "[proxy]\ndrain_timeout = \"30s\"\n", &[]);
    let addr = p.proxy_addr();
    let session = connect("127.0.5.1", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    session.simple_query("SELECT 1").await.unwrap();

    p.signal("TERM");
    let refused = async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(refused.await, "the port still accepts after SIGTERM");
    // The open session is served to its end.
    for i in 0..5 {
        let rows = session
            .simple_query(&format!("SELECT {i} + 1, pg_sleep(0.1)"))
            .await
            .unwrap_or_else(|e| panic!("the open session broke while draining: {e}\n{}", p.log()));
        assert!(!rows.is_empty());
    }
    assert!(
        p.wait_exit(Duration::from_millis(300)).is_none(),
        "the proxy left before its open session ended:\n{}",
        p.log()
    );
    drop(session);
    let st = p.wait_exit(Duration::from_secs(10));
    assert!(
        st.is_some_and(|s| s.success()),
        "exit {st:?} after the last session ended:\n{}",
        p.log()
    );
    assert!(p.log().contains("proxy drained"), "{}", p.log());

    // A session that stays past drain_timeout does not keep the proxy alive.
    let dir = tempfile::tempdir().unwrap();
    let mut p = proxy_configured(&cl, dir.path(), "[proxy]\ndrain_timeout = \"1s\"\n", &[]);
    let stay = connect("127.0.5.2", p.proxy_addr(), "app", APP_PASSWORD)
        .await
        .unwrap();
    p.signal("TERM");
    let st = p.wait_exit(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "exit {st:?}:\n{}", p.log());
    assert!(
        p.log().contains("still open after drain_timeout"),
        "{}",
        p.log()
    );
    assert!(
        stay.simple_query("SELECT 1").await.is_err(),
        "the session outlived the proxy"
    );
}

/// Blocks live in the store: after a restart the blocked source is still refused, and a
/// block lifted in the console of another API instance (`pgvigil api`, no proxy of its own,
/// as in a fleet) lets the source in at the proxy within about a second; the alerts that
/// caused it do not block it again, even after another restart.
#[tokio::test(flavor = "multi_thread")]
async fn blocks_survive_a_restart_and_a_lift_anywhere_reaches_the_proxy() {
    let cl = Cluster::start(ClusterOptions::default());
    let setup = run_with_blocking_proxy(&cl);
    let admin = setup.token("boss", "admin");
    let mut run = setup.start();
    let addr = run.proxy_addr();
    assert!(
        !hydra_through(addr, 30).contains(APP_PASSWORD),
        "{}",
        run.log()
    );
    let base = format!("http://{}", run.api_addr());
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let cause = loop {
        let (_, b) = api_get(&base, "/proxy/blocks", &admin);
        if let Some(id) = b["value"][0]["alertId"].as_str() {
            break id.to_string();
        }
        assert!(std::time::Instant::now() < end, "{b:#}\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    run.signal("TERM");
    assert!(run
        .wait_exit(Duration::from_secs(15))
        .is_some_and(|s| s.success()));

    // Restarted: the source is refused from the first connection.
    let run = setup.start();
    let addr = run.proxy_addr();
    let refused = connect("127.0.0.1", addr, "app", APP_PASSWORD).await;
    assert!(
        refused.is_err(),
        "a restart let the blocked source in\n{}",
        run.log()
    );
    assert!(
        connect("127.0.3.9", addr, "app", APP_PASSWORD)
            .await
            .is_ok(),
        "another source is let in"
    );

    // Another API instance over the same store (no proxy of its own, as in a fleet): its
    // console shows the source blocked now, and an admin lifts the block there.
    let other = Runner::spawn(&[
        "api".as_ref(),
        "-c".as_ref(),
        setup.config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    let other_base = format!("http://{}", other.api_addr());
    let agent = raw_agent();
    let cookie = form_sign_in(&agent, &other_base, &admin).unwrap();
    let alert_page = || {
        agent
            .get(format!("{other_base}/console/alerts/{cause}"))
            .header("Cookie", &cookie)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let html = alert_page();
    assert!(html.contains("It is blocked now"), "{html}");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let r = post_form(
        &agent,
        &format!("{other_base}/console/blocks/127.0.0.1/lift"),
        &cookie,
        &format!("csrf={csrf}&alert={cause}"),
    );
    assert_eq!(r.status().as_u16(), 303);
    let lifted = std::time::Instant::now();
    let let_in = loop {
        if connect("127.0.0.1", addr, "app", APP_PASSWORD)
            .await
            .is_ok()
        {
            break lifted.elapsed();
        }
        assert!(
            lifted.elapsed() < Duration::from_secs(10),
            "the lift never reached the proxy\n{}\nlifted for {cause}; trail {:#}\nblocks now {:#}\nalerts {:#}",
            run.log(),
            api_get(&other_base, "/audit", &admin).1,
            api_get(&format!("http://{}", run.api_addr()), "/proxy/blocks", &admin).1,
            api_get(&format!("http://{}", run.api_addr()), "/alerts", &admin).1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(let_in < Duration::from_secs(3), "let in after {let_in:?}");
    let (_, trail) = api_get(&other_base, "/audit?action=block.lift", &admin);
    assert_eq!(trail["value"][0]["target"], "127.0.0.1", "{trail:#}");
    assert_eq!(trail["value"][0]["actor"], "boss", "{trail:#}");

    // The admin thinks better of it and blocks the source by hand, from the same page of
    // that other instance: the proxy refuses it again within about a second.
    let html = alert_page();
    assert!(
        html.contains("action=\"/console/blocks/127.0.0.1/block\""),
        "{html}"
    );
    let r = post_form(
        &agent,
        &format!("{other_base}/console/blocks/127.0.0.1/block"),
        &cookie,
        &format!("csrf={csrf}&alert={cause}&minutes=60&back=alert"),
    );
    assert_eq!(r.status().as_u16(), 303);
    let blocked = std::time::Instant::now();
    while connect("127.0.0.1", addr, "app", APP_PASSWORD)
        .await
        .is_ok()
    {
        assert!(
            blocked.elapsed() < Duration::from_secs(10),
            "the block never reached the proxy\n{}",
            run.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        blocked.elapsed() < Duration::from_secs(3),
        "refused after {:?}",
        blocked.elapsed()
    );
    let (_, trail) = api_get(&other_base, "/audit?action=block.put", &admin);
    assert_eq!(
        (
            &trail["value"][0]["target"],
            &trail["value"][0]["actor"],
            &trail["value"][0]["detail"]["alertId"]
        ),
        (&json!("127.0.0.1"), &json!("boss"), &json!(cause)),
        "{trail:#}"
    );
    // Over the API: a reader may not; an alert of another source, or a duration past 30
    // days, is refused with the field named.
    let reader = setup.token("eve", "reader");
    let body = |id: &str, minutes: u64| json!({"alertId": id, "durationMinutes": minutes});
    assert_eq!(
        api_put(
            &other_base,
            "/proxy/blocks/127.0.0.1",
            &reader,
            &body(&cause, 60)
        )
        .0,
        403
    );
    let (st, e) = api_put(
        &other_base,
        "/proxy/blocks/127.0.0.2",
        &admin,
        &body(&cause, 60),
    );
    assert_eq!(st, 409, "{e:#}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("alertId"),
        "{e:#}"
    );
    let (st, e) = api_put(
        &other_base,
        "/proxy/blocks/127.0.0.1",
        &admin,
        &body(&cause, 50_000),
    );
    assert_eq!(st, 400, "{e:#}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("durationMinutes"),
        "{e:#}"
    );
    // Lifted over the API this time, for what follows.
    assert_eq!(
        api_send(&other_base, "DELETE", "/proxy/blocks/127.0.0.1", &admin).0,
        200
    );
    drop(other);
    drop(run);

    // Restarted again, the log read from the start: the dismissed alert's updates do not
    // block the source again.
    let run = setup.start();
    let addr = run.proxy_addr();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        connect("127.0.0.1", addr, "app", APP_PASSWORD)
            .await
            .is_ok(),
        "{}",
        run.log()
    );
}

/// The server logs every login relayed by the proxy as coming from the proxy's own address.
/// A `run` started over a log that already holds them (a restart, a checkpoint lost) must
/// not take them for the proxy's address guessing passwords: it knows that address before
/// it relays anything. The direct failures in the same log are still an attack.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_does_not_blame_the_proxy_for_the_logins_it_relayed() {
    let cl = Cluster::start(ClusterOptions::default());
    // Each run with its own state: the second reads the log from its start.
    let with_proxy = || {
        RunSetup::new(
            &cl.log_dir,
            &format!(
                "[proxy]\nenabled = true\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:{}\"\n",
                cl.port
            ),
        )
    };
    let proxied = with_proxy();
    let run = proxied.start();
    for i in 0..6 {
        assert!(
            connect("127.0.6.6", run.proxy_addr(), "app", &format!("guess-{i}"))
                .await
                .is_err()
        );
    }
    // Beside the proxy, straight to the server.
    for i in 0..6 {
        assert!(
            !login(
                "127.0.6.9",
                cl.port,
                "app",
                &format!("guess-{i}"),
                "appdb",
                None
            )
            .await
        );
    }
    drop(run);

    // A new run with the proxy over the same log, read from its start.
    let again = with_proxy();
    let token = again.token("ops", "reader");
    let run = again.start();
    let base = format!("http://{}", run.api_addr());
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let (_, b) = api_get(&base, "/alerts", &token);
        let found = b["value"].as_array().cloned().unwrap_or_default();
        if found
            .iter()
            .any(|a| a["entities"]["sourceIp"] == "127.0.6.9")
        {
            break found;
        }
        assert!(std::time::Instant::now() < end, "{b:#}\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Everything read up to the direct failures: the proxied ones came before them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, b) = api_get(&base, "/alerts", &token);
    let blamed: Vec<_> = b["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["entities"]["sourceIp"] == "127.0.0.1")
        .collect();
    assert!(blamed.is_empty(), "{blamed:#?}\n{alerts:#?}\n{}", run.log());
}

/// `pgvigil run` over the cluster's logs with the proxy in front of it, blocking.
fn run_with_blocking_proxy(cl: &Cluster) -> RunSetup {
    RunSetup::new(
        &cl.log_dir,
        &format!(
            "[proxy]\nenabled = true\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:{}\"\n[proxy.active_response]\nenabled = true\n",
            cl.port
        ),
    )
}

/// A client's cancel request (psql's Ctrl-C) reaches its own session through the proxy; one
/// whose key matches no session (a guess at another's) is not passed on. Both are events.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_requests_reach_their_session_and_guesses_do_not() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &["--events"]);
    let addr = p.proxy_addr();
    let c = connect("127.0.4.7", addr, "app", APP_PASSWORD)
        .await
        .unwrap();
    let token = c.cancel_token();
    let sleeper =
        tokio::spawn(async move { c.simple_query("SELECT pg_sleep(30)").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = std::time::Instant::now();
    token
        .cancel_query_raw(connect_from("127.0.4.7", addr).await, tokio_postgres::NoTls)
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the query was not cancelled")
        .unwrap();
    let e = r.expect_err("pg_sleep(30) finished");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{e}"
    );
    assert!(asked.elapsed() < Duration::from_secs(5));

    // A guess: a backend pid with a made-up key.
    let pid: u32 = cl.psql("SELECT pg_backend_pid()").trim().parse().unwrap();
    let mut raw = connect_from("127.0.4.8", addr).await;
    let mut packet = Vec::new();
    packet.extend_from_slice(&16u32.to_be_bytes());
    packet.extend_from_slice(&80_877_102u32.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    tokio::io::AsyncWriteExt::write_all(&mut raw, &packet)
        .await
        .unwrap();
    drop(raw);
    let (seen, _) = p.until(Duration::from_secs(3), |_| false);
    let cancels: Vec<&Value> = seen
        .iter()
        .filter(|e| e["kind"] == "CancelRequest")
        .collect();
    assert_eq!(cancels.len(), 2, "{seen:#?}");
    let from = |ip: &str| {
        cancels.iter().find(|e| e["sourceIp"] == ip).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        from("127.0.4.7").contains("passed on") && !from("127.0.4.7").contains("not passed on")
    );
    assert!(
        from("127.0.4.8").contains("matches no session"),
        "{cancels:#?}"
    );
}

/// A slow-loris of 1,000 silent connections from 250 addresses (four each: no per-source
/// limit is reached) takes every client slot of a default proxy; ordinary logins from other
/// addresses still get in, each cutting the oldest connection that never logged in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_client_slow_loris_does_not_lock_out_real_logins() {
    let cl = Cluster::start(ClusterOptions::default());
    let p = proxy(&cl, &[]);
    let addr = p.proxy_addr();
    let mut held = Vec::new();
    for a in 0..250u32 {
        for _ in 0..4 {
            held.push(
                connect_from(&format!("127.0.{}.{}", 100 + a / 200, 1 + a % 200), addr).await,
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    for i in 0..5 {
        let c = connect(&format!("127.0.6.{}", i + 1), addr, "app", APP_PASSWORD).await;
        assert!(
            c.is_ok(),
            "login {i} during the slow-loris: {:?}\n{}",
            c.err(),
            p.log()
        );
        drop(c);
    }
    // The silent ones that were cut were told so, and the rest still hold their slots.
    let mut cut = 0;
    for s in &mut held {
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(
            Duration::from_millis(5),
            tokio::io::AsyncReadExt::read(s, &mut buf),
        )
        .await
        {
            if n > 0 && String::from_utf8_lossy(&buf[..n]).contains("connection cut") {
                cut += 1;
            }
        }
    }
    assert!((1..=5).contains(&cut), "{cut} silent connections cut");
}

/// The Python of the virtual environment `./test` makes, whose psycopg bundles libpq 18.
fn libpq18_python() -> String {
    let py = std::env::var("PGVIGIL_LIBPQ18_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/pgvigil-test/libpq18/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = std::process::Command::new(&py)
        .args([
            "-c",
            "import psycopg; assert psycopg.pq.version() >= 180000",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{py}: no psycopg with libpq 18; `./test --deps` makes it (python3 -m venv, pip install 'psycopg[binary]>=3.3')"
    );
    py
}

/// libpq 18 through the proxy: `sslnegotiation=direct` (TLS from the first byte, ALPN
/// "postgresql", no SSLRequest) is accepted, and a client asking for protocol 3.2 logs in
/// (the server, PostgreSQL 15, settles on 3.0) and can still cancel its query.
#[test]
fn libpq_18_direct_tls_and_protocol_3_2_work_through_the_proxy() {
    let py = libpq18_python();
    let certs = tempfile::tempdir().unwrap();
    let (cl, ca, cert, key) = tls_cluster(certs.path());
    let dir = tempfile::tempdir().unwrap();
    let p = proxy_with_tls(&cl, dir.path(), &cert, &key, &["--events"]);
    let port = p.proxy_addr().port();
    let script = format!(
        r#"
import psycopg, threading, time
base = "host=127.0.0.1 port={port} user=app password={APP_PASSWORD} dbname=appdb"
with psycopg.connect(base + " sslmode=verify-full sslrootcert={ca} sslnegotiation=direct") as c:
    print("direct", c.pgconn.ssl_in_use, c.execute("SELECT 42").fetchone()[0])
# Autocommit: nothing follows the cancelled statement on this connection. The postmaster
# signals a cancelled backend twice (the process, then its group), and on a loaded machine
# the second signal once cancelled the COMMIT that closing the connection sent.
with psycopg.connect(base + " sslmode=disable max_protocol_version=3.2", autocommit=True) as c:
    print("protocol", c.pgconn.protocol_version, c.execute("SELECT 43").fetchone()[0])
    threading.Timer(0.5, c.cancel_safe).start()
    t = time.time()
    try:
        c.execute("SELECT pg_sleep(20)")
        print("cancel", "not cancelled")
    except psycopg.errors.QueryCanceled:
        print("cancel", "cancelled in", round(time.time() - t))
# Insisting on 3.2: the server's NegotiateProtocolVersion reaches the client, which says why.
try:
    psycopg.connect(base + " sslmode=disable min_protocol_version=3.2")
    print("min32", "connected")
except psycopg.OperationalError as e:
    print("min32", " ".join(str(e).split()))
"#,
        ca = ca.display()
    );
    let out = std::process::Command::new(&py)
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    assert!(text.contains("direct True 42"), "{text}");
    // PostgreSQL 15 speaks 3.0; the client asked for 3.2 and went on with what the server offered.
    assert!(text.contains("protocol 3 43"), "{text}");
    assert!(
        text.contains("cancel cancelled in 0") || text.contains("cancel cancelled in 1"),
        "{text}"
    );
}

/// `pgvigil proxy` that accepts TLS from clients with `cert` and `key`.
fn proxy_with_tls(
    cl: &Cluster,
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    extra: &[&str],
) -> Runner {
    proxy_configured(
        cl,
        dir,
        &format!(
            "[proxy]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        extra,
    )
}
