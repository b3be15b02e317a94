//! The systemd units in `deploy/systemd/`: they verify, their sandbox is tight, and the three
//! commands really work inside it. Without a running systemd, the sandbox is checked from
//! the outside: `run`, `api` and `proxy` are traced (strace) through a real workload against
//! a real cluster, and every system call, socket family, memory mapping and file written
//! must be one the unit's settings allow.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const UNITS: [(&str, &str); 3] = [
    ("pgvigil.service", "run"),
    ("pgvigil-api.service", "api"),
    ("pgvigil-proxy.service", "proxy"),
];

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/systemd")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("deploy/systemd/{name}: {e}"))
}

/// Every value of `key` in the unit, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

fn analyze() -> Command {
    Command::new("systemd-analyze")
}

fn analyze_out(args: &[&std::ffi::OsStr]) -> std::process::Output {
    analyze()
        .args(args)
        .output()
        .expect("systemd-analyze (apt-get install -y systemd)")
}

/// The unit with its ExecStart pointing at the binary under test (verify checks it exists).
fn installed_copy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        text.replace("/usr/bin/pgvigil", env!("CARGO_BIN_EXE_pgvigil")),
    )
    .unwrap();
    p
}

/// `systemd-analyze verify`'s complaints about `unit` (empty when it is clean).
fn complaints(unit: &Path) -> String {
    let out = analyze_out(&["verify".as_ref(), "--man=no".as_ref(), unit.as_os_str()]);
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("\n(exit {:?})", out.status));
    }
    s
}

#[test]
fn the_units_verify_and_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    for (name, command) in UNITS {
        let text = unit_text(name);
        let unit = installed_copy(dir.path(), name, &text);
        let c = complaints(&unit);
        assert!(c.trim().is_empty(), "{name}: {c}");

        // The checker notices a misspelt setting: a hardening line that does nothing.
        let typo = installed_copy(
            dir.path(),
            "typo.service",
            &text.replace("ProtectSystem=", "ProtectSytem="),
        );
        assert!(complaints(&typo).contains("ProtectSytem"), "{name}");

        let out = analyze_out(&[
            "security".as_ref(),
            "--offline=true".as_ref(),
            unit.as_os_str(),
        ]);
        let report = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = report
            .lines()
            .find_map(|l| {
                l.split("Overall exposure level for ")
                    .nth(1)?
                    .split(": ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name}: no exposure level in\n{report}"));
        assert!(exposure <= 2.0, "{name}: exposure {exposure}\n{report}");

        let one = |key: &str| values(&text, key).pop().unwrap_or_default();
        assert_eq!(one("User"), "pgvigil", "{name}: its own user");
        assert_eq!(one("ProtectSystem"), "strict", "{name}");
        assert_eq!(one("StateDirectory"), "pgvigil", "{name}");
        assert_eq!(one("NoNewPrivileges"), "yes", "{name}");
        // Above the follower's 256 open logs plus two descriptors per proxied session.
        let nofile: u64 = one("LimitNOFILE").parse().unwrap();
        assert!(nofile >= 4096, "{name}: LimitNOFILE {nofile}");
        let exec = one("ExecStart");
        assert!(
            exec.starts_with(&format!("/usr/bin/pgvigil {command} ")),
            "{name}: {exec}"
        );
        // SIGTERM must have time to checkpoint, and the proxy to drain (30 s by default).
        let stop: u64 = one("TimeoutStopSec").parse().unwrap();
        if command != "api" {
            assert!(stop > 30, "{name}: TimeoutStopSec {stop}");
        }
    }
    let sysusers = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/pgvigil.sysusers"),
    )
    .unwrap();
    assert!(
        sysusers.lines().any(|l| l.starts_with("u pgvigil ")),
        "{sysusers}"
    );
}

/// What a unit's sandbox lets through.
struct Sandbox {
    syscalls: HashSet<String>,
    families: Vec<String>,
    /// ProcSubset=pid: /proc shows the process's own directories only.
    proc_pid_only: bool,
}

impl Sandbox {
    /// From the unit's SystemCallFilter= and RestrictAddressFamilies= lines, with systemd's
    /// own definition of each group.
    fn of(unit: &str) -> Sandbox {
        let listing = String::from_utf8(analyze_out(&["syscall-filter".as_ref()]).stdout).unwrap();
        let mut groups: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut current = None;
        for l in listing.lines() {
            if let Some(g) = l.strip_prefix('@') {
                current = Some(format!("@{}", g.trim()));
                continue;
            }
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if let Some(g) = &current {
                groups.entry(g.clone()).or_default().push(t.to_string());
            }
        }
        fn expand(
            name: &str,
            groups: &std::collections::HashMap<String, Vec<String>>,
            out: &mut HashSet<String>,
        ) {
            match groups.get(name) {
                Some(members) => {
                    for m in members {
                        expand(m, groups, out);
                    }
                }
                None => {
                    out.insert(name.to_string());
                }
            }
        }
        // Always permitted, whatever the filter.
        let mut allowed = HashSet::new();
        expand("@default", &groups, &mut allowed);
        let mut denied = HashSet::new();
        for v in values(unit, "SystemCallFilter") {
            let (deny, list) = match v.strip_prefix('~') {
                Some(l) => (true, l),
                None => (false, v.as_str()),
            };
            for name in list.split_whitespace() {
                let mut set = HashSet::new();
                expand(name, &groups, &mut set);
                if deny {
                    denied.extend(set);
                } else {
                    allowed.extend(set);
                }
            }
        }
        Sandbox {
            proc_pid_only: values(unit, "ProcSubset")
                .last()
                .is_some_and(|v| v == "pid"),
            syscalls: allowed.difference(&denied).cloned().collect(),
            families: values(unit, "RestrictAddressFamilies")
                .iter()
                .flat_map(|v| v.split_whitespace().map(str::to_string))
                .collect(),
        }
    }

    /// What in an strace of the command the unit would refuse: system calls outside the
    /// filter, socket families not allowed, writable and executable memory
    /// (MemoryDenyWriteExecute), files written outside `writable` (ProtectSystem=strict),
    /// /proc beyond the process's own (ProcSubset=pid), home directories (ProtectHome).
    fn refusals(&self, trace: &str, writable: &[&Path]) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for line in trace.lines() {
            let call = line
                .split_once(' ')
                .map(|(_, rest)| rest.trim_start())
                .unwrap_or(line);
            let call = call.strip_prefix("<... ").unwrap_or(call);
            let name: String = call
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || call.starts_with("---") || call.starts_with("+++") {
                continue;
            }
            if !self.syscalls.contains(&name) && seen.insert(name.clone()) {
                out.push(format!("system call {name}: {line}"));
            }
            if name == "socket" && !call.starts_with("<... ") && !line.contains("resumed>") {
                let family = call.split(['(', ',']).nth(1).unwrap_or("").trim();
                if !self.families.iter().any(|f| f == family) {
                    out.push(format!("socket family {family}: {line}"));
                }
            }
            if (name == "mmap" || name == "mprotect")
                && call.contains("PROT_WRITE")
                && call.contains("PROT_EXEC")
            {
                out.push(format!("writable executable memory: {line}"));
            }
            let path = call.split('"').nth(1).unwrap_or("");
            if !path.starts_with('/') {
                continue;
            }
            if path.starts_with("/home") || path.starts_with("/root") {
                out.push(format!("home directory: {line}"));
            }
            if let Some(p) = path.strip_prefix("/proc/").filter(|_| self.proc_pid_only) {
                let first = p.split('/').next().unwrap_or("");
                if !(first == "self"
                    || first == "thread-self"
                    || first.chars().all(|c| c.is_ascii_digit()))
                {
                    out.push(format!("/proc beyond the process: {line}"));
                }
            }
            let writes = match name.as_str() {
                "open" | "openat" | "openat2" | "creat" => {
                    call.contains("O_WRONLY") || call.contains("O_RDWR") || call.contains("O_CREAT")
                }
                "mkdir" | "mkdirat" | "rename" | "renameat" | "renameat2" | "unlink"
                | "unlinkat" | "rmdir" | "truncate" | "linkat" | "symlinkat" => true,
                _ => false,
            };
            // A failed attempt (say, a directory that already exists) changes nothing.
            let failed = line.contains(" = -1 ");
            if writes
                && !failed
                && path != "/dev/null"
                && !writable.iter().any(|w| Path::new(path).starts_with(w))
            {
                out.push(format!("written outside the writable directories: {line}"));
            }
        }
        out
    }
}

/// A pgvigil command under strace, its trace and its log in `dir`.
struct Traced {
    child: std::process::Child,
    trace: PathBuf,
    log: PathBuf,
}

impl Traced {
    fn start(dir: &Path, label: &str, args: &[&std::ffi::OsStr], env: &[(&str, &Path)]) -> Traced {
        let trace = dir.join(format!("{label}.strace"));
        let log = dir.join(format!("{label}.log"));
        // Installed, as a unit runs it: the build's directory may not be readable by the
        // unit's user (a checkout in root's 0700 home).
        let bin = dir.join("pgvigil");
        if !bin.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_pgvigil"), &bin).unwrap();
            std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        // Not as root, as under the unit's User=: the test clusters' user stands in.
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
                "strace",
            ]);
            c
        } else {
            Command::new("strace")
        };
        cmd.args(["-f", "-qq", "-s", "256", "-o"])
            .arg(&trace)
            .arg(&bin)
            .args(args)
            // What a unit's environment would be: cargo's library path is not.
            .env_remove("LD_LIBRARY_PATH")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("strace (apt-get install -y strace)");
        Traced { child, trace, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `listen=` address of the log line holding `marker`.
    fn listening(&self, marker: &str) -> SocketAddr {
        let end = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < end {
            let log = self.log();
            if let Some(a) = log
                .lines()
                .find(|l| l.contains(marker))
                .and_then(|l| l.split("listen=").nth(1))
            {
                return a.split_whitespace().next().unwrap().parse().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {marker:?} in\n{}", self.log());
    }

    fn signal(&self, sig: &str) {
        // strace passes signals on to the traced process; its pid is strace's child.
        let pid = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            self.child.id(),
            self.child.id()
        ))
        .unwrap_or_default();
        let pid = pid
            .split_whitespace()
            .next()
            .expect("pgvigil under strace")
            .to_string();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(&pid)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM; the exit status must be 0. Returns the trace.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let end = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "exit {st:?}:\n{}", self.log());
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "still running:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&self.trace).unwrap()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(base: SocketAddr, path: &str, token: &str) -> u16 {
    api_get(&format!("http://{base}"), path, token).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_api_and_proxy_work_inside_their_sandbox() {
    let cl = Cluster::start(ClusterOptions::default());
    let dir = tempfile::tempdir().unwrap();
    // As systemd makes them: StateDirectory= and LogsDirectory=.
    let state = dir.path().join("state");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    // The shipped data where an install puts it (/usr/share/pgvigil in the units' steps): a
    // checkout's data/ may be in a home directory the unit cannot see.
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), share.join(e.file_name())).unwrap();
    }
    let config = dir.path().join("pgvigil.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"db1\"\n[input]\npaths = [\"{}\"]\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\n\
             [output]\nfile = \"{}\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [proxy]\nenabled = true\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:{}\"\n\
             [enrich]\ndata_dir = \"{}\"\n",
            cl.log_dir.display(),
            logs.join("alerts.jsonl").display(),
            cl.port,
            share.display()
        ),
    )
    .unwrap();
    let store = state.join("pgvigil.db");
    let env = [
        ("STATE_DIRECTORY", state.as_path()),
        ("LOGS_DIRECTORY", logs.as_path()),
    ];
    let writable = [state.as_path(), logs.as_path()];
    let traces = tempfile::tempdir().unwrap();
    give_to_postgres(dir.path());
    give_to_postgres(traces.path());

    // run: logs, proxy, API, alerts file, SIGHUP, SIGTERM.
    let run = Traced::start(
        traces.path(),
        "run",
        &["run".as_ref(), "-c".as_ref(), config.as_os_str()],
        &env,
    );
    let api = run.listening("API listening");
    let proxy = run.listening("proxy listening");
    for i in 0..12 {
        assert!(
            !login(
                "127.0.6.1",
                cl.port,
                "app",
                &format!("nope{i}"),
                "appdb",
                None
            )
            .await
        );
    }
    let through = connect_from("127.0.6.2", proxy).await;
    let mut pc = tokio_postgres::Config::new();
    pc.user("app").password(APP_PASSWORD).dbname("appdb");
    let (client, conn) = pc
        .connect_raw(through, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();
    drop(client);
    let token = make_token(&["--store".as_ref(), store.as_os_str()], "ops", "reader");
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = api_get(&format!("http://{api}"), "/alerts?server=db1", &token);
        assert_eq!(status, 200);
        if v["value"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < end, "no alert:\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(api, "/healthz", &token), 200);
    run.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let trace = run.stop();
    assert!(store.is_file(), "the store is in $STATE_DIRECTORY");
    assert!(
        std::fs::read_to_string(logs.join("alerts.jsonl"))
            .unwrap()
            .contains("PostgreSQL_"),
        "alerts file"
    );
    let refused = Sandbox::of(&unit_text("pgvigil.service")).refusals(&trace, &writable);
    assert!(
        refused.is_empty(),
        "pgvigil.service would refuse:\n{}",
        refused.join("\n")
    );

    // api: requests, SIGHUP (it stays), SIGTERM.
    let api_config = dir.path().join("api.toml");
    std::fs::write(
        &api_config,
        "server = \"db1\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let a = Traced::start(
        traces.path(),
        "api",
        &["api".as_ref(), "-c".as_ref(), api_config.as_os_str()],
        &env,
    );
    let addr = a.listening("API listening");
    assert_eq!(get(addr, "/alerts?server=db1", &token), 200);
    a.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(addr, "/healthz", &token), 200, "SIGHUP ended the API");
    let trace = a.stop();
    let refused = Sandbox::of(&unit_text("pgvigil-api.service")).refusals(&trace, &writable);
    assert!(
        refused.is_empty(),
        "pgvigil-api.service would refuse:\n{}",
        refused.join("\n")
    );

    // proxy: a failed and a good login through it, SIGTERM.
    let p = Traced::start(
        traces.path(),
        "proxy",
        &["proxy".as_ref(), "-c".as_ref(), config.as_os_str()],
        &env,
    );
    let paddr = p.listening("proxy listening");
    let bad = connect_from("127.0.6.3", paddr).await;
    let mut bc = tokio_postgres::Config::new();
    bc.user("app").password("wrong").dbname("appdb");
    assert!(bc.connect_raw(bad, tokio_postgres::NoTls).await.is_err());
    let good = connect_from("127.0.6.3", paddr).await;
    let (client, conn) = pc.connect_raw(good, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();
    drop(client);
    let trace = p.stop();
    let refused = Sandbox::of(&unit_text("pgvigil-proxy.service")).refusals(&trace, &writable);
    assert!(
        refused.is_empty(),
        "pgvigil-proxy.service would refuse:\n{}",
        refused.join("\n")
    );
}
