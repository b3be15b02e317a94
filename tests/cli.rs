//! The command line as a user meets it: the README's demo, exit codes, and bad input — each
//! problem named with its file and line, the rest still analysed, nothing panicking.

mod support;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use support::*;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn analyze(args: &[&str]) -> (i32, String, String) {
    analyze_text(args)
}

#[test]
fn readme_demo_prints_the_alerts_in_the_shipped_logs() {
    let (code, out, err) = analyze(&["examples/logs/"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("Suspected successful brute force attack"),
        "{out}"
    );
    assert!(out.contains("Password spray"), "{out}");
    assert!(out.contains("potentially harmful"), "{out}");
    assert!(err.contains("alert(s)"), "{err}");
}

#[test]
fn a_clean_log_exits_0() {
    let (code, out, err) = analyze(&[fixture("stderr/basic.log").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No alerts."));
}

#[test]
fn gzip_rotated_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("postgresql-15-main.log.2.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(fixture("stderr/hydra.log")).unwrap())
        .unwrap();
    enc.finish().unwrap();
    let (code, alerts, err) = analyze_json(&[gz.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(alerts
        .iter()
        .any(|a| a["displayName"] == "Suspected successful brute force attack"));
}

#[test]
fn garbage_is_reported_by_file_and_line_and_the_other_files_still_analysed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("csvlog/hydra.csv"), dir.path().join("good.csv")).unwrap();
    let bad = dir.path().join("garbage.log");
    let mut junk =
        b"2026-11-28 10:00:00.000 UTC [1] LOG:  connection received: host=127.0.0.1 port=1\n"
            .to_vec();
    junk.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    junk.extend_from_slice(b"\n\xff\xfe not utf8 \x00\x01\n");
    std::fs::write(&bad, &junk).unwrap();
    let (code, alerts, err) = analyze_json(&[dir.path().as_os_str()]);
    assert_eq!(
        code, 2,
        "a file that is mostly not a log is bad input: {err}"
    );
    assert!(err.contains("garbage.log"), "{err}");
    assert!(
        err.contains("garbage.log:2:"),
        "first bad line named: {err}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a["displayName"] == "Suspected successful brute force attack"),
        "the good file's alerts are still printed"
    );
}

#[test]
fn a_truncated_csv_record_is_counted_and_nothing_before_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("csvlog/hydra.csv")).unwrap();
    // Cut inside the last record's quoted message.
    let cut = text.rfind("\"disconnection").unwrap() + 5;
    let p = dir.path().join("cut.csv");
    std::fs::write(&p, &text[..cut]).unwrap();
    let (code, alerts, err) = analyze_json(&[p.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1 of"), "{err}");
    assert!(err.contains("truncated entry at end of input"), "{err}");
    assert!(alerts
        .iter()
        .any(|a| a["displayName"] == "Suspected successful brute force attack"));
}

#[test]
fn a_wrong_log_line_prefix_is_bad_input_with_a_hint() {
    let (code, _out, err) = analyze(&[
        "--log-line-prefix",
        "%t [%p]: [%l-1] ",
        fixture("stderr/hydra.log").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("hydra.log:1: does not match log_line_prefix"),
        "{err}"
    );
    assert!(err.contains("--log-line-prefix"), "{err}");
}

#[test]
fn an_invalid_prefix_is_a_usage_error() {
    let (code, _out, err) = analyze(&["--log-line-prefix", "%u%d ", "examples/logs"]);
    assert_eq!(code, 2);
    assert!(err.contains("%u is followed directly by %d"), "{err}");
}

#[test]
fn unreadable_missing_and_empty_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let corrupt = dir.path().join("old.log.1.gz");
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03];
    bytes.extend_from_slice(b"this is not deflate data at all");
    std::fs::write(&corrupt, bytes).unwrap();
    let missing = dir.path().join("nope.log");
    let (code, out, err) = analyze(&[
        empty.to_str().unwrap(),
        corrupt.to_str().unwrap(),
        missing.to_str().unwrap(),
        fixture("stderr/hydra.log").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("empty: no log files in this directory"),
        "{err}"
    );
    assert!(err.contains("old.log.1.gz"), "{err}");
    assert!(err.contains("nope.log"), "{err}");
    assert!(
        out.contains("Suspected successful brute force attack"),
        "the readable file is analysed: {out}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = pgvigil().arg("analyze").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = pgvigil()
        .args(["analyze", "--format", "xml", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_output_is_the_alert_record() {
    let (code, alerts, _) =
        analyze_json(&[fixture("jsonlog/spray_bruteforce_scan.json").as_os_str()]);
    assert_eq!(code, 1);
    for a in &alerts {
        for k in [
            "id",
            "alertType",
            "displayName",
            "severity",
            "status",
            "intent",
            "techniques",
            "server",
            "startTimeUtc",
            "endTimeUtc",
            "entities",
            "evidence",
            "description",
            "anomalyContext",
            "remediationSteps",
        ] {
            assert!(a.get(k).is_some(), "{k} missing in {a}");
        }
        for k in [
            "sourceIp",
            "principal",
            "database",
            "application",
            "location",
            "cloud",
        ] {
            assert!(
                a["entities"].get(k).is_some(),
                "entities.{k} must be present (null if unknown): {a}"
            );
        }
        assert!(a["startTimeUtc"].as_str().unwrap().ends_with('Z'));
        assert!(!a["remediationSteps"].as_array().unwrap().is_empty());
    }
}

#[test]
fn run_without_logs_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = pgvigil()
        .args(["run", "--follow"])
        .arg(dir.path().join("missing"))
        .args(["--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or directory"));
}

/// The streaming path (`run`) and the batch path (`analyze`) raise the same alerts, with the
/// same ids, from the same log.
#[test]
fn run_and_analyze_raise_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    std::fs::copy(
        fixture("stderr/spray_bruteforce_scan.log"),
        logs.join("postgresql.log"),
    )
    .unwrap();
    let (code, batch, err) = analyze_json(&[logs.as_os_str()]);
    assert_eq!(code, 1, "{err}");

    let state = dir.path().join("state");
    let run = Runner::start(&[
        OsStr::new("--start-at"),
        OsStr::new("beginning"),
        OsStr::new("--server"),
        OsStr::new("postgresql"),
        OsStr::new("--follow"),
        logs.as_os_str(),
        OsStr::new("--state-dir"),
        state.as_os_str(),
    ]);
    // Everything is printed within a few polls (under load, a few more); then nothing more
    // comes.
    let want: std::collections::BTreeSet<String> = batch
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let got = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let (mut seen, _) = run.until(std::time::Duration::from_secs(30), |v| {
        let mut g = got.lock().unwrap();
        g.insert(v["id"].as_str().unwrap_or_default().to_string());
        *g == want
    });
    let (more, _) = run.until(std::time::Duration::from_secs(2), |_| false);
    seen.extend(more);
    let mut last: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for v in seen {
        last.insert(v["id"].as_str().unwrap_or_default().to_string(), v);
    }
    let key = |a: &serde_json::Value| {
        format!(
            "{} {} {} {}",
            a["id"], a["alertType"], a["displayName"], a["severity"]
        )
    };
    let mut live: Vec<String> = last.values().map(key).collect();
    let mut batch: Vec<String> = batch.iter().map(key).collect();
    live.sort();
    batch.sort();
    assert_eq!(live, batch);
}

/// logrotate's two ways, done to a log `run` is following: rename and start a new file, and
/// copytruncate. Lines on both sides of each rotation count towards one attack.
#[test]
fn run_follows_rename_and_truncate_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("postgresql-15-main.log");
    std::fs::write(&log, "").unwrap();
    // Failures at a person's pace (3 s apart): only their number makes the attack.
    let failures = |from: usize, n: usize, ip: &str| -> String {
        (from..from + n)
            .map(|i| {
                let (m, s) = (i * 3 / 60, i * 3 % 60);
                format!(
                    "2026-11-28 10:{m:02}:{s:02}.000 UTC [{pid}] [unknown]@[unknown] LOG:  connection received: host={ip} port={port}\n\
                     2026-11-28 10:{m:02}:{s:02}.001 UTC [{pid}] app@appdb FATAL:  password authentication failed for user \"app\"\n\
                     2026-11-28 10:{m:02}:{s:02}.001 UTC [{pid}] app@appdb DETAIL:  Connection matched pg_hba.conf line 3: \"host all all 0.0.0.0/0 scram-sha-256\"\n",
                    pid = 1000 + i,
                    port = 40000 + i
                )
            })
            .collect()
    };
    let append = |p: &Path, s: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    };
    let state = dir.path().join("state");
    let run = Runner::start(&[
        OsStr::new("--start-at"),
        OsStr::new("beginning"),
        OsStr::new("--log-line-prefix"),
        OsStr::new("%m [%p] %q%u@%d "),
        OsStr::new("--follow"),
        logs.as_os_str(),
        OsStr::new("--state-dir"),
        state.as_os_str(),
    ]);
    let wait_for = |ip: &str| -> serde_json::Value {
        let (seen, ok) = run.until(std::time::Duration::from_secs(10), |v| {
            v["entities"]["sourceIp"] == ip
        });
        assert!(ok, "no alert for {ip}: {seen:#?}\n{}", run.log());
        seen.last().cloned().unwrap_or_default()
    };
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    wait_ready(&state);

    // Rename: 6 failures, the file moves to .1 and a new one starts, 4 more there.
    append(&log, &failures(0, 6, "192.0.2.1"));
    pause();
    std::fs::rename(&log, logs.join("postgresql-15-main.log.1")).unwrap();
    std::fs::write(&log, failures(6, 4, "192.0.2.1")).unwrap();
    let a = wait_for("192.0.2.1");
    assert_eq!(a["evidence"]["failedLogins"], 10, "{a:#}");

    // copytruncate: 6 failures, the file is emptied in place, 4 more.
    append(&log, &failures(20, 6, "192.0.2.2"));
    pause();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    pause();
    append(&log, &failures(26, 4, "192.0.2.2"));
    let b = wait_for("192.0.2.2");
    assert_eq!(b["evidence"]["failedLogins"], 10, "{b:#}");
}

/// Reading and detecting on two threads (the default on two cores) raises exactly what one
/// thread does, on weeks of simulated traffic: many hand-overs between the threads, attacks
/// of every kind.
#[test]
fn two_threads_raise_exactly_what_one_does() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 2, 3);
    let logs = dir.path().to_str().unwrap().to_string();
    let run = |threads: &str| {
        let (code, out, err) = analyze(&["--json", "--threads", threads, &logs]);
        assert_eq!(code, 1, "{err}");
        (out, err)
    };
    let (one, err) = run("1");
    let (two, _) = run("2");
    let events: u64 = err
        .split(" events,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(events > 10 * 4096, "several hand-overs: {err}");
    assert!(one.lines().count() > 20, "{one}");
    assert_eq!(one, two);
    let (code, _, err) = analyze(&["--threads", "3", &logs]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--threads"), "{err}");
}
