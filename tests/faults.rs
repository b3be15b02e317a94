//! `run` in production, fault by fault, against a real PostgreSQL 15: logrotate renaming the
//! log while the server still writes to it, copytruncate, a file emptied and written past
//! the old offset between two looks, a thousand old logs under a descriptor limit below
//! that, the alerts file rotated with SIGHUP, SIGTERM in the middle of an attack, repeated
//! `kill -9`, a runaway line. In each, the failed logins pgvigil counted (its store, after a
//! SIGTERM that checkpoints) equal those PostgreSQL wrote, no alert update is written twice,
//! and no NUL byte appears.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// A `pgvigil run` following `logs`, stopped with SIGTERM or killed at will.
struct Run {
    child: std::process::Child,
    state: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

impl Run {
    fn start(dir: &Path, logs: &Path, extra_toml: &str) -> Run {
        Self::start_with(dir, logs, "", extra_toml, None)
    }

    /// With more `[input]` settings, and with `nofile`, under that limit of open files
    /// (`ulimit -n`).
    fn start_with(
        dir: &Path,
        logs: &Path,
        input: &str,
        extra_toml: &str,
        nofile: Option<u32>,
    ) -> Run {
        let state = dir.join("state");
        let config = dir.join("pgvigil.toml");
        std::fs::write(
            &config,
            format!(
                "server = \"db1\"\n[input]\npaths = [\"{}\"]\n{}poll_interval = \"100ms\"\n{input}\
                 [state]\ndir = \"{}\"\n[api]\nlisten = \"127.0.0.1:0\"\n{extra_toml}",
                logs.display(),
                if input.contains("start_at") {
                    ""
                } else {
                    "start_at = \"beginning\"\n"
                },
                state.display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("pgvigil-{}.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let bin = env!("CARGO_BIN_EXE_pgvigil");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" run -c \"$1\""))
                    .arg(bin)
                    .arg(&config);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.args(["run", "-c"]).arg(&config);
                c
            }
        };
        let child = cmd
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        wait_ready(&state);
        // A restart finds the previous checkpoint at once: wait for this one's own start.
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("pgvigil run started")
            .count()
            == 0
        {
            assert!(std::time::Instant::now() < end, "pgvigil run did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Run {
            child,
            state,
            log,
            config,
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM: pgvigil checkpoints what it read and exits 0.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                assert!(st.success(), "exit {st:?} on SIGTERM:\n{log}");
                assert!(log.contains("stopped"), "{log}");
                return log;
            }
            assert!(
                std::time::Instant::now() < end,
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Failed logins pgvigil counted, from its store.
fn counted(state: &Path) -> i64 {
    let c = rusqlite::Connection::open(state.join("pgvigil.db")).unwrap();
    c.query_row(
        "SELECT coalesce(sum(failed), 0) FROM login_hours WHERE server = 'db1'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// `n` failed logins from `source` (no TLS: one failure each).
async fn fail(source: &str, port: u16, n: usize) {
    for i in 0..n {
        assert!(!login(source, port, "app", &format!("nope{i}"), "appdb", None).await);
    }
}

/// The server's logging collector writes after the client has its error: waits (up to 10 s)
/// until `path` holds `n` failed logins and has stopped growing.
async fn collector_wrote(path: &std::path::Path, n: usize) {
    let mut last = 0;
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let done = text.matches("password authentication failed").count() >= n;
        if done && text.len() == last {
            break;
        }
        last = text.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Failed logins for `seconds`, as fast as they come; how many.
async fn fail_for(source: &str, port: u16, seconds: f64) -> usize {
    let end = std::time::Instant::now() + Duration::from_secs_f64(seconds);
    let mut n = 0;
    while std::time::Instant::now() < end {
        assert!(!login(source, port, "app", "nope", "appdb", None).await);
        n += 1;
    }
    n
}

fn fixed_name_cluster() -> Cluster {
    // One file name, as with Debian's packages (logrotate rotates it).
    Cluster::start(ClusterOptions {
        log_destination: "stderr",
        log_filename: "postgresql.log",
        ..ClusterOptions::default()
    })
}

/// logrotate's default (`create`): the log is renamed, a new one created, the server keeps
/// writing to the renamed file until it reopens its log (`pg_rotate_logfile()`). The renamed
/// file was let go after one quiet poll: 200 of 800 failures lost.
#[tokio::test(flavor = "multi_thread")]
async fn rename_then_idle_loses_nothing() {
    let cl = fixed_name_cluster();
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start(dir.path(), &cl.log_dir, "");
    fail("127.0.0.5", cl.port, 100).await;
    let log = cl.log_dir.join("postgresql.log");
    std::fs::rename(&log, cl.log_dir.join("postgresql.log.1")).unwrap();
    give_to_postgres_file(&log);
    // The server still writes to the renamed file for a while, then is told to reopen.
    let mut written = 100 + fail_for("127.0.0.5", cl.port, 1.5).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    cl.psql("SELECT pg_rotate_logfile()");
    fail("127.0.0.6", cl.port, 60).await;
    written += 60;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = run.state.clone();
    run.stop();
    assert_eq!(counted(&state) as usize, written);
}

fn give_to_postgres_file(p: &Path) {
    std::fs::write(p, "").unwrap();
    give_to_postgres(p);
}

/// logrotate with `copytruncate`: the log is copied and emptied in place while the server
/// writes. The lines between the last read and the truncation were lost (9 and 12 of 1,500).
#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_loses_nothing() {
    let cl = fixed_name_cluster();
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start(dir.path(), &cl.log_dir, "");
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{}/postgresql.log {{\n  copytruncate\n  rotate 5\n  missingok\n  nocompress\n}}\n",
            cl.log_dir.display()
        ),
    )
    .unwrap();
    let logrotate = ["/usr/sbin/logrotate", "logrotate"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("logrotate is not installed: apt-get install -y logrotate");
    let port = cl.port;
    let traffic = tokio::spawn(async move { fail_for("127.0.0.5", port, 4.0).await });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        ran(
            Command::new(logrotate)
                .arg("-f")
                .arg("-s")
                .arg(dir.path().join("logrotate.state"))
                .arg(&conf),
            "apt-get install -y logrotate",
        );
    }
    let written = traffic.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = run.state.clone();
    let log = run.stop();
    // A line the server writes between logrotate's copy and its truncate is in no file at
    // all (logrotate's own caveat); every line that is in a file must be counted, once.
    let kept: usize = std::fs::read_dir(&cl.log_dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("postgresql.log")
        })
        .map(|e| {
            String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                .matches("password authentication failed")
                .count()
        })
        .sum();
    let n = counted(&state) as usize;
    assert!(
        kept <= n && n <= written,
        "counted {n}; {kept} in the files, {written} written\n{log}"
    );
    assert!(
        kept + 9 >= written,
        "{kept} in the files of {written} written"
    );
}

/// A log emptied and written past its old length between two looks (pgvigil stopped for a
/// moment): it was taken for the same file and read from the middle of a line.
#[tokio::test(flavor = "multi_thread")]
async fn truncated_and_regrown_is_read_from_its_start() {
    let cl = fixed_name_cluster();
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start(dir.path(), &cl.log_dir, "");
    fail("127.0.0.5", cl.port, 50).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    run.signal("STOP");
    // Emptied in place (the server appends, so its next line goes to the start), then more
    // than before.
    std::fs::OpenOptions::new()
        .write(true)
        .open(cl.log_dir.join("postgresql.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    fail("127.0.0.6", cl.port, 120).await;
    run.signal("CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = run.state.clone();
    let log = run.stop();
    assert_eq!(counted(&state), 170, "{log}");
    assert!(log.contains("truncated"), "{log}");
}

/// A directory of 1,100 old logs and a limit of 1,024 open files: every file was kept open
/// and polled, and the newest could not be opened ("Too many open files"). Finished files
/// are closed now, and the newest is always read.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_old_logs_under_a_descriptor_limit() {
    let cl = Cluster::start(ClusterOptions {
        log_destination: "stderr",
        log_filename: "postgresql-%Y-%m-%d_%H%M%S.log",
        ..ClusterOptions::default()
    });
    fail("127.0.0.5", cl.port, 5).await;
    // Old logs: copies of the current one (a few failures each), from last month.
    let current = std::fs::read_dir(&cl.log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    // Copied only once the collector has written all five (a copy taken earlier held fewer,
    // and the count below was off by what came after).
    collector_wrote(&current, 5).await;
    let text = std::fs::read(&current).unwrap();
    let per_file = String::from_utf8_lossy(&text)
        .matches("password authentication failed")
        .count();
    let old = std::time::SystemTime::now() - Duration::from_secs(30 * 86_400);
    for k in 0..1100 {
        let p = cl
            .log_dir
            .join(format!("postgresql-2026-10-{:02}_{:06}.log", 1 + k % 28, k));
        std::fs::write(&p, &text).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(old).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start_with(dir.path(), &cl.log_dir, "", "", Some(1024));
    // Reading the backlog, then the live log.
    let end = std::time::Instant::now() + Duration::from_secs(120);
    while counted(&run.state) < (1101 * per_file) as i64 && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    fail("127.0.0.6", cl.port, 40).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", run.pid()))
        .unwrap()
        .count();
    assert!(fds < 200, "{fds} descriptors open once the backlog is read");
    let state = run.state.clone();
    let log = run.stop();
    assert!(!log.contains("Too many open files"), "{log}");
    let n = counted(&state) as usize;
    assert_eq!(
        n,
        1101 * per_file + 40,
        "counted {n} of {}\n{log}",
        1101 * per_file + 40
    );
}

/// The alerts file rotated (`mv`, then SIGHUP as logrotate's postrotate does): alerts kept
/// going to the old file, and after a restart the new one was padded with NUL bytes.
#[tokio::test(flavor = "multi_thread")]
async fn the_alerts_file_rotates_with_sighup() {
    let cl = fixed_name_cluster();
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let run = Run::start(
        dir.path(),
        &cl.log_dir,
        &format!("[output]\nfile = \"{}\"\n", alerts.display()),
    );
    fail("127.0.0.5", cl.port, 12).await;
    wait_for(|| {
        std::fs::read_to_string(&alerts)
            .unwrap_or_default()
            .contains("127.0.0.5")
    });
    // The attack's updates written (those of a known alert go out every 2 s): the file
    // unchanged for 3 s.
    let mut last = (0, std::time::Instant::now());
    wait_for(|| {
        let len = std::fs::metadata(&alerts).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, std::time::Instant::now());
        }
        last.1.elapsed() >= Duration::from_secs(3)
    });
    std::fs::rename(&alerts, dir.path().join("alerts.jsonl.1")).unwrap();
    run.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    fail("127.0.0.6", cl.port, 12).await;
    wait_for(|| {
        std::fs::read_to_string(&alerts)
            .unwrap_or_default()
            .contains("127.0.0.6")
    });
    let config = run.config.clone();
    run.kill9();
    // Restarted: nothing padded, each update once.
    let again = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = Run {
        child: again,
        state: dir.path().join("state"),
        log: dir.path().join("again.log"),
        config,
    };
    // Alerts written after the last checkpoint are cut on restart and raised again from the
    // re-read lines: wait for them rather than for a fixed time (a loaded machine restarts
    // slower than 2 s).
    wait_for(|| {
        std::fs::read_to_string(&alerts)
            .unwrap_or_default()
            .contains("127.0.0.6")
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.kill9();
    for f in [alerts.clone(), dir.path().join("alerts.jsonl.1")] {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.contains(&0), "{}: NUL bytes", f.display());
        let text = String::from_utf8(bytes).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let n = lines.len();
        lines.sort();
        lines.dedup();
        assert_eq!(lines.len(), n, "{}: an update written twice", f.display());
    }
    let new = std::fs::read_to_string(&alerts).unwrap();
    assert!(
        new.contains("127.0.0.6") && !new.contains("127.0.0.5"),
        "{new}"
    );
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < end, "not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM in the middle of an attack, more failures while pgvigil is down, a restart; then
/// `kill -9` three times over during traffic: every failure counted once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_kill_9_during_an_attack_count_every_failure_once() {
    let cl = fixed_name_cluster();
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let extra = format!("[output]\nfile = \"{}\"\n", alerts.display());
    let run = Run::start(dir.path(), &cl.log_dir, &extra);
    fail("127.0.0.5", cl.port, 30).await;
    let log = run.stop();
    assert!(log.contains("stopped"), "{log}");
    fail("127.0.0.5", cl.port, 30).await;
    let mut written = 60;
    for round in 0..3 {
        let run = Run::start(dir.path(), &cl.log_dir, &extra);
        let port = cl.port;
        let traffic = tokio::spawn(async move { fail_for("127.0.0.7", port, 1.5).await });
        tokio::time::sleep(Duration::from_millis(700 + 200 * round)).await;
        run.kill9();
        written += traffic.await.unwrap();
    }
    let run = Run::start(dir.path(), &cl.log_dir, &extra);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = run.state.clone();
    let log = run.stop();
    assert_eq!(counted(&state) as usize, written, "{log}");
    let text = std::fs::read_to_string(&alerts).unwrap();
    assert!(!text.as_bytes().contains(&0));
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), n, "an update written twice:\n{text}");
}

/// A runaway line (here 40 MB with `max_entry_bytes` at 1 MiB) is skipped and counted with
/// its file and line; the lines after it are read, and memory stays small.
#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_line_is_skipped_and_what_follows_is_read() {
    let cl = fixed_name_cluster();
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start_with(
        dir.path(),
        &cl.log_dir,
        "max_entry_bytes = 1048576\n",
        "",
        None,
    );
    fail("127.0.0.5", cl.port, 10).await;
    // All ten written, or their lines land inside the test's runaway line.
    collector_wrote(&cl.log_dir.join("postgresql.log"), 10).await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(cl.log_dir.join("postgresql.log"))
            .unwrap();
        let chunk = vec![b'x'; 1 << 20];
        f.write_all(b"2026-11-30 10:00:00.000 UTC [1] LOG:  statement: SELECT '")
            .unwrap();
        for _ in 0..40 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"'\n").unwrap();
    }
    fail("127.0.0.6", cl.port, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.pid())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let state = run.state.clone();
    let logged = run.logged();
    let log = run.stop();
    assert_eq!(counted(&state), 20, "{log}");
    assert!(logged.contains("entry longer than"), "{logged}");
    assert!(
        hwm_kib < 200 * 1024,
        "peak memory {hwm_kib} KiB for a 40 MB line"
    );
}

/// A malformed line is reported with its number in the file: when reading starts at the
/// end of a file already long, and after a restart from the checkpoint.
#[test]
fn malformed_lines_are_numbered_as_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let csv = logs.join("postgresql.csv");
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/csvlog/basic.csv"),
    )
    .unwrap();
    let record = fixture.lines().next().unwrap().to_string();
    std::fs::write(&csv, &fixture).unwrap();
    let lines = fixture.lines().count();
    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    let wait_for = |run: &Run, needle: &str| {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while !run.logged().contains(needle) {
            assert!(
                std::time::Instant::now() < end,
                "no {needle:?} in\n{}",
                run.logged()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let run = Run::start_with(dir.path(), &logs, "start_at = \"end\"\n", "", None);
    append(&format!("{record}\nnot a csvlog record\n{record}\n"));
    wait_for(&run, &format!("line={}", lines + 2));
    let log = run.stop();
    assert!(!log.contains("line=2 "), "{log}");

    append(&format!("{record}\nnot a csvlog record either\n"));
    let run = Run::start_with(dir.path(), &logs, "start_at = \"end\"\n", "", None);
    wait_for(&run, &format!("line={}", lines + 5));
    run.stop();
}
