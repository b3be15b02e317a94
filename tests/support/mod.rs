//! Test support: a real PostgreSQL cluster in a temporary directory (`testkit`), clients that
//! connect from chosen 127.x addresses, and the pgvigil binary.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use testkit::*;

/// A TCP connection to `to` from a socket bound to `source` (any 127.x address), so the
/// other side sees that address.
pub async fn connect_from(source: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let src: IpAddr = source.parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src, 0)).unwrap();
    sock.connect(to).await.unwrap()
}

/// Logs in with tokio-postgres over a socket bound to `source` (any 127.x address), so the
/// server logs that address. Returns whether the login succeeded.
pub async fn login(
    source: &str,
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    app: Option<&str>,
) -> bool {
    let stream = connect_from(source, SocketAddr::from(([127, 0, 0, 1], port))).await;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(user).password(password).dbname(db);
    if let Some(a) = app {
        cfg.application_name(a);
    }
    match cfg.connect_raw(stream, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            let h = tokio::spawn(conn);
            let ok = client.simple_query("SELECT 1").await.is_ok();
            drop(client);
            let _ = h.await;
            ok
        }
        Err(_) => false,
    }
}

pub fn pgvigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pgvigil"))
}

/// Runs `cmd` to a successful end (`install` says how to get it when it is missing); its
/// output.
pub fn ran(cmd: &mut Command, install: &str) -> std::process::Output {
    let out = cmd.output().expect(install);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `pgvigil simulate` of `servers` servers over `weeks` weeks into `dir`.
pub fn simulate(dir: &Path, servers: u32, weeks: u32) {
    ran(
        pgvigil()
            .args(["simulate", "--servers", &servers.to_string()])
            .args(["--weeks", &weeks.to_string(), "--out"])
            .arg(dir),
        "the pgvigil binary",
    );
}

/// Runs `pgvigil analyze` (no progress bar) from the repository's directory: the exit code,
/// stdout and stderr.
pub fn analyze_text<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = pgvigil()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["analyze", "--no-progress"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `pgvigil analyze --json` and returns (exit code, alerts, stderr).
pub fn analyze_json(args: &[&std::ffi::OsStr]) -> (i32, Vec<serde_json::Value>, String) {
    let out = pgvigil()
        .args(["analyze", "--json", "--no-progress"])
        .args(args)
        .output()
        .unwrap();
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        alerts,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The alerts of a type from a source.
pub fn find<'a>(
    alerts: &'a [serde_json::Value],
    ty: &str,
    source: &str,
) -> Vec<&'a serde_json::Value> {
    alerts
        .iter()
        .filter(|a| a["alertType"] == ty && a["entities"]["sourceIp"] == source)
        .collect()
}

/// Waits until `pgvigil run` has taken its first look at the logs (its first checkpoint is
/// stored then), so that lines written afterwards are seen as new.
pub fn wait_ready(state_dir: &Path) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let db = state_dir.join("pgvigil.db");
    while std::time::Instant::now() < end {
        let ready = db.exists()
            && rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM checkpoints", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .is_ok_and(|n| n > 0);
        if ready {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "pgvigil run did not start within 30 s ({})",
        state_dir.display()
    );
}

/// `pgvigil run` as a child; its stdout lines arrive on a channel.
pub struct Runner {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// pgvigil's own log, shown when a test fails.
    log: tempfile::NamedTempFile,
}

impl Runner {
    pub fn start(args: &[&std::ffi::OsStr]) -> Runner {
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            "--poll-interval".as_ref(),
            "100ms".as_ref(),
            // Tests run side by side: each API on a port of its own.
            "--api-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ];
        all.extend_from_slice(args);
        Runner::spawn(&all)
    }

    /// Any pgvigil command whose stdout is alerts as JSON lines.
    pub fn spawn(args: &[&std::ffi::OsStr]) -> Runner {
        Runner::spawn_env(args, &[])
    }

    /// As `spawn`, with these environment variables set.
    pub fn spawn_env(args: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)]) -> Runner {
        Runner::spawn_io(args, env, std::process::Stdio::inherit())
    }

    /// As `spawn_env`, reading `stdin`.
    pub fn spawn_io(
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
        stdin: std::process::Stdio,
    ) -> Runner {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = pgvigil()
            .args(args)
            .envs(env.iter().copied())
            .stdin(stdin)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Runner {
            child,
            lines: rx,
            log,
        }
    }

    /// What pgvigil logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Alerts printed until `pred` holds for one of them, or the timeout.
    pub fn until(
        &self,
        timeout: std::time::Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> (Vec<serde_json::Value>, bool) {
        let end = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                    let hit = pred(&v);
                    seen.push(v);
                    if hit {
                        return (seen, true);
                    }
                }
                Err(_) => break,
            }
        }
        (seen, false)
    }

    pub fn kill(self) {
        drop(self);
    }

    /// Sends `sig` (`TERM`, `HUP`…) as `kill` would.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig}");
    }

    /// The exit status, if the process ends within `timeout`.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

/// A failing assertion must not leave `pgvigil run` behind.
impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Runner {
    /// The address `pgvigil run` serves its API on (from its log).
    pub fn api_addr(&self) -> SocketAddr {
        self.listening("API listening")
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.listening("proxy listening")
    }

    /// The `listen=` address of the log line holding `marker`.
    fn listening(&self, marker: &str) -> SocketAddr {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < end {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| l.contains(marker)) {
                if let Some(a) = l.split("listen=").nth(1) {
                    return a.split_whitespace().next().unwrap().parse().unwrap();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no {marker:?} in pgvigil's log:\n{}", self.log());
    }
}

/// One HTTP request as a receiver saw it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTP listener on 127.0.0.1 that answers every request `200 OK` and hands it to the
/// test: the receiving end of webhooks.
pub struct HttpSink {
    pub addr: SocketAddr,
    pub requests: std::sync::mpsc::Receiver<HttpRequest>,
}

impl HttpSink {
    pub fn start(port: u16) -> HttpSink {
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    use std::io::{BufRead, Read, Write};
                    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                    let _ = tx.send(HttpRequest {
                        method,
                        path,
                        headers,
                        body,
                    });
                });
            }
        });
        HttpSink { addr, requests: rx }
    }

    /// Requests received until `n` have come or `timeout` passed.
    pub fn collect(&self, n: usize, timeout: std::time::Duration) -> Vec<HttpRequest> {
        let end = std::time::Instant::now() + timeout;
        let mut v = Vec::new();
        while v.len() < n {
            let Some(left) = end.checked_duration_since(std::time::Instant::now()) else {
                break;
            };
            match self.requests.recv_timeout(left) {
                Ok(r) => v.push(r),
                Err(_) => break,
            }
        }
        v
    }
}

/// A real SMTP server (Python's aiosmtpd, Debian `python3-aiosmtpd`) delivering into a
/// Maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_with(&[])
    }

    /// With `--tlscert`/`--tlskey`, aiosmtpd offers STARTTLS and refuses mail without it.
    pub fn start_tls(cert: &Path, key: &Path) -> SmtpServer {
        Self::start_with(&[
            "--tlscert".as_ref(),
            cert.as_os_str(),
            "--tlskey".as_ref(),
            key.as_os_str(),
        ])
    }

    fn start_with(extra: &[&std::ffi::OsStr]) -> SmtpServer {
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import aiosmtpd"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or_else(|| panic!("aiosmtpd not found: `apt-get install -y python3-aiosmtpd`"));
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < end, "aiosmtpd did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        SmtpServer {
            port,
            maildir,
            child,
            _dir: dir,
        }
    }

    /// Messages delivered so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in rd.flatten() {
                    v.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        v
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private CA and a server certificate it signed for 127.0.0.1, made with openssl:
/// (CA certificate, server certificate, server key), all PEM.
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pgvigil test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    (p("ca.pem"), p("server.pem"), p("server-key.pem"))
}

/// Makes files readable by the test clusters' server: as root, the clusters run as `postgres`.
pub fn give_to_postgres(path: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// A real DNS server (dnsmasq, Debian `dnsmasq`) on 127.0.0.1 answering reverse lookups for
/// the given (address, name) pairs, and nothing else.
pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    pub fn start(names: &[(&str, &str)]) -> Dnsmasq {
        let bin = ["/usr/sbin/dnsmasq", "dnsmasq"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .unwrap_or_else(|| panic!("dnsmasq not found: `apt-get install -y dnsmasq`"));
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        let text: String = names.iter().map(|(ip, n)| format!("{ip} {n}\n")).collect();
        std::fs::write(&hosts, text).unwrap();
        // UDP and TCP on the same free port.
        let port = loop {
            let p = free_port();
            if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
                break p;
            }
        };
        let child = Command::new(bin)
            .args([
                "--conf-file=/dev/null",
                "--keep-in-foreground",
                "--bind-interfaces",
            ])
            .args([
                "--listen-address=127.0.0.1",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < end, "dnsmasq did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Dnsmasq {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pgvigil token add NAME --role ROLE` with `store_args` (`--store FILE` or `-c CONFIG`):
/// the token it prints once.
pub fn make_token(store_args: &[&std::ffi::OsStr], name: &str, role: &str) -> String {
    let out = pgvigil()
        .args(["token", "add", name, "--role", role])
        .args(store_args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs statements in one session opened from `source` (any 127.x address), as `user` with
/// application name `app`; returns each statement's error, if any.
pub async fn run_sql(
    source: &str,
    port: u16,
    (user, password, db, app): (&str, &str, &str, &str),
    statements: &[&str],
) -> Vec<Option<String>> {
    let stream = connect_from(source, SocketAddr::from(([127, 0, 0, 1], port))).await;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(user)
        .password(password)
        .dbname(db)
        .application_name(app);
    let (client, conn) = cfg
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("login as {user}: {e}"));
    let h = tokio::spawn(conn);
    let mut out = Vec::new();
    for s in statements {
        out.push(
            client
                .simple_query(s)
                .await
                .err()
                .map(|e| match e.as_db_error() {
                    Some(db) => format!("{}: {}", db.code().code(), db.message()),
                    None => e.to_string(),
                }),
        );
    }
    drop(client);
    let _ = h.await;
    out
}

/// The directory of PostgreSQL's extension libraries (`pgaudit.so` lives there).
pub fn pg_pkglibdir() -> PathBuf {
    pg_bin().parent().unwrap().join("lib")
}

/// `GET base+path` with a bearer token: the status and the JSON body (`Null` if not JSON).
pub fn api_get(base: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    let (status, body) = api_text(base, path, token);
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `GET path` with a bearer token: the status and the body as text.
pub fn api_text(base: &str, path: &str, token: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(format!("{base}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// `METHOD path` with a bearer token and no body: the status and the JSON body.
pub fn api_send(base: &str, method: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}{path}");
    let auth = format!("Bearer {token}");
    let mut r = match method {
        "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
        "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
        other => panic!("api_send: {other}"),
    }
    .unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `PUT path` with a bearer token and a JSON body: the status and the JSON body.
pub fn api_put(
    base: &str,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .put(&format!("{base}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A `pgvigil run` set-up for server `db1`: following `logs` from their beginning, a state
/// directory, and more TOML sections in `extra`.
pub struct RunSetup {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl RunSetup {
    pub fn new(logs: &Path, extra: &str) -> RunSetup {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = dir.path().join("pgvigil.toml");
        std::fs::write(
            &config,
            format!(
                "server = \"db1\"\n[input]\npaths = [\"{}\"]\nstart_at = \"beginning\"\n[state]\ndir = \"{}\"\n{extra}",
                logs.display(),
                state.display()
            ),
        )
        .unwrap();
        RunSetup { dir, state, config }
    }

    /// An API token in the set-up's store.
    pub fn token(&self, name: &str, role: &str) -> String {
        let db = self.state.join("pgvigil.db");
        make_token(&["--store".as_ref(), db.as_os_str()], name, role)
    }

    pub fn start(&self) -> Runner {
        Runner::start(&["-c".as_ref(), self.config.as_os_str()])
    }
}

/// A cluster serving TLS with a certificate of a private CA made in `certs`: the cluster,
/// and the CA, certificate and key files.
pub fn tls_cluster(certs: &Path) -> (Cluster, PathBuf, PathBuf, PathBuf) {
    let (ca, cert, key) = private_ca(certs);
    let cl = cluster_serving_tls(certs, &cert, &key);
    (cl, ca, cert, key)
}

/// A cluster serving TLS with `cert` and `key`, both in `certs`.
pub fn cluster_serving_tls(certs: &Path, cert: &Path, key: &Path) -> Cluster {
    std::fs::set_permissions(key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    give_to_postgres(certs);
    let ssl = format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
        cert.display(),
        key.display()
    );
    Cluster::start(ClusterOptions {
        extra: &ssl,
        ..Default::default()
    })
}

/// An HTTP client that returns every status as it is and follows no redirect.
pub fn raw_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// The `name=value` of cookie `name` among a response's Set-Cookie headers.
pub fn set_cookie(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")))
        .map(String::from)
}

/// Signs in as the sign-in page does (its form token in a cookie and a hidden field); the
/// session cookie, or the status of the refusal.
pub fn form_sign_in(agent: &ureq::Agent, base: &str, token: &str) -> Result<String, u16> {
    let mut page = agent.get(format!("{base}/console/signin")).call().unwrap();
    let form_cookie = set_cookie(&page, "pgvigil_signin").expect("the form's cookie");
    let html = page.body_mut().read_to_string().unwrap();
    let value = form_cookie.split_once('=').unwrap().1;
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{value}\"")),
        "{html}"
    );
    let r = agent
        .post(format!("{base}/console/signin"))
        .header("Cookie", &form_cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("csrf={value}&token={token}"))
        .unwrap();
    match set_cookie(&r, "pgvigil_session") {
        Some(c) if r.status().as_u16() == 303 => Ok(c),
        _ => Err(r.status().as_u16()),
    }
}

/// Posts a form with `cookie`.
pub fn post_form(
    agent: &ureq::Agent,
    url: &str,
    cookie: &str,
    body: &str,
) -> ureq::http::Response<ureq::Body> {
    agent
        .post(url)
        .header("Cookie", cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .unwrap()
}

/// hydra's postgres module against 127.0.0.1:`port` as `user`, with the passwords of
/// `wordlist` over `tasks` connections; its report (stdout). hydra gives up on a target whose
/// first connection fails, which under the load of the parallel tests happens now and then, so
/// a failed connectivity check is tried again.
#[allow(dead_code)]
pub fn hydra(port: u16, user: &str, wordlist: &Path, tasks: u32) -> String {
    for attempt in 1..=3 {
        let out = Command::new("hydra")
            .env("PGPORT", port.to_string())
            .args(["-I", "-l", user, "-P"])
            .arg(wordlist)
            .args(["-s", &port.to_string(), "-t", &tasks.to_string()])
            .args(["127.0.0.1", "postgres"])
            .output()
            .expect("hydra is not installed: apt-get install -y hydra");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() && !err.contains("could not be connected") {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            attempt < 3 && err.contains("could not be connected"),
            "hydra: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    unreachable!("the third attempt returns or fails")
}

/// The metric names (`pgvigil_…`) a PromQL expression reads.
#[allow(dead_code)]
pub fn metrics_of(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("pgvigil_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}
