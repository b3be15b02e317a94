//! PostgreSQL started without a logging collector, its stderr in the systemd journal (as a
//! systemd unit has it): `pgvigil run --journal` follows it through `journalctl`, and resumes
//! after a restart from the journal's cursor, reading nothing twice.

mod support;

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn journald_present() -> bool {
    std::path::Path::new("/run/systemd/journal/stdout").exists()
        && Command::new("journalctl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn run_follows_the_journal_and_resumes_from_its_cursor() {
    if !journald_present() {
        eprintln!(
            "skipped: no systemd journal on this machine (/run/systemd/journal/socket and \
             journalctl); systemd-journald runs on every systemd host, and can be started alone \
             (/lib/systemd/systemd-journald) where systemd is not init"
        );
        return;
    }
    let mut cl = Cluster::start(ClusterOptions::default());
    // A name of its own in the journal, as a unit's would be.
    let ident = format!("pgvigil-test-{}", cl.port);
    // systemd-cat's own complaints (no journal to connect to) on the test's stderr; the
    // server's log goes to the journal.
    let pg = cl.foreground(&["systemd-cat", "-t", &ident], Stdio::inherit());
    let state = tempfile::tempdir().unwrap();
    let matcher = format!("SYSLOG_IDENTIFIER={ident}");
    let args = |start: &str| {
        vec![
            "--journal".to_string(),
            matcher.clone(),
            "--start-at".into(),
            start.into(),
            "--state-dir".into(),
            state.path().display().to_string(),
            "--server".into(),
            "db1".into(),
        ]
    };
    let start = |a: Vec<String>| {
        let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_ref()).collect();
        Runner::start(&a)
    };
    let store = state.path().join("pgvigil.db");
    let token = make_token(&[OsStr::new("--store"), store.as_os_str()], "ci", "reader");
    let wait_failed_read = |base: &str, want: usize, runner: &Runner| {
        // The logins this process read, from its figures.
        let failed_read = || {
            let (status, m) = api_text(base, "/metrics", &token);
            assert_eq!(status, 200, "{m}");
            m.lines()
                .find_map(|l| {
                    l.strip_prefix("pgvigil_logins_total{outcome=\"failed\"} ")?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0)
        };
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while failed_read() < want && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
        }
        // A moment more: lines read twice would show now.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(failed_read(), want, "failed logins read\n{}", runner.log());
    };
    let failures_in_journal = || {
        let journal = Command::new("journalctl")
            .args(["-o", "cat", &matcher])
            .output()
            .unwrap();
        String::from_utf8_lossy(&journal.stdout)
            .lines()
            .filter(|l| l.contains("FATAL:  password authentication failed"))
            .count()
    };
    let runner = start(args("beginning"));
    let base = format!("http://{}", runner.api_addr());
    let words = cl.dir.path().join("words");
    let mut w: Vec<String> = (0..8).map(|i| format!("nope{i}")).collect();
    w.push(APP_PASSWORD.into());
    std::fs::write(&words, w.join("\n") + "\n").unwrap();
    hydra(cl.port, "app", &words, 4);
    let (seen, caught) = runner.until(Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["evidence"]["successfulPrincipal"] == "app"
    });
    assert!(caught, "{seen:#?}\n{}", runner.log());
    let first = seen.last().unwrap().clone();
    assert_eq!(first["entities"]["sourceIp"], "127.0.0.1");
    let first_count = first["evidence"]["failedLogins"].as_u64().unwrap_or(0);
    // Everything written so far read before the stop, so that the restart has exactly the
    // rest to read.
    let before = failures_in_journal();
    wait_failed_read(&base, before, &runner);
    runner.signal("TERM");
    let mut runner = runner;
    assert!(
        runner
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        runner.log()
    );

    // Written while pgvigil is down, then read after its restart: the journal after the
    // cursor, nothing before it again. The same attacker, so the same incident counts on.
    cl.psql("CREATE ROLE alice LOGIN PASSWORD 'Wonder-land-42'");
    let mut w: Vec<String> = (0..8).map(|i| format!("nope{i}")).collect();
    w.push("Wonder-land-42".into());
    std::fs::write(&words, w.join("\n") + "\n").unwrap();
    hydra(cl.port, "alice", &words, 4);
    let failures = failures_in_journal();
    assert!(failures >= before + 8, "{before} then {failures}");
    let runner = start(args("beginning"));
    let base = format!("http://{}", runner.api_addr());
    wait_failed_read(&base, failures - before, &runner);
    // The same attacker, so the same incident counts on (updated as its count doubles).
    let (seen, counted) = runner.until(Duration::from_secs(30), |a| {
        a["id"] == first["id"] && a["evidence"]["failedLogins"].as_u64().unwrap_or(0) > first_count
    });
    assert!(
        counted,
        "the incident did not count on past {first_count}: {:#?}\n{}",
        seen.iter()
            .map(|a| (&a["alertType"], &a["evidence"]["failedLogins"]))
            .collect::<Vec<_>>(),
        runner.log()
    );
    let (more, _) = runner.until(Duration::from_secs(4), |_| false);
    for a in seen.iter().chain(&more) {
        assert!(
            a["evidence"]["failedLogins"].as_u64().unwrap_or(0) <= failures as u64,
            "lines read twice: {a:#}"
        );
    }
    assert!(
        runner.log().contains("following the journal"),
        "{}",
        runner.log()
    );
    cl.stop_foreground(pg);
}
