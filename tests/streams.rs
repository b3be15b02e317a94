//! Logs that arrive as a stream rather than files: a server in a container writes its log to
//! stderr, `kubectl logs -f` passes it on, CloudNativePG wraps it in JSON. `pgvigil run
//! --stdin` and `pgvigil analyze -` read them.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// A server without the logging collector writes its log to stderr, as in a container:
/// piped into `run --stdin` as `kubectl logs -f` would, hydra is caught as it runs, and when
/// the server stops the stream ends and `run` stores what it read and exits 0.
#[test]
fn a_servers_stderr_piped_into_run_is_followed_to_its_end() {
    let mut cl = Cluster::start(ClusterOptions::default());
    let mut pg = cl.foreground(&[], Stdio::piped());
    let stream = pg.stderr.take().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut runner = Runner::spawn_io(
        &[
            "run".as_ref(),
            "--stdin".as_ref(),
            "--state-dir".as_ref(),
            state.path().as_os_str(),
            "--api-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--server".as_ref(),
            "db1".as_ref(),
            "--poll-interval".as_ref(),
            "100ms".as_ref(),
        ],
        &[],
        Stdio::from(stream),
    );
    let words = cl.dir.path().join("words");
    let mut w: Vec<String> = (0..8).map(|i| format!("nope{i}")).collect();
    w.push(APP_PASSWORD.into());
    std::fs::write(&words, w.join("\n") + "\n").unwrap();
    let found = hydra(cl.port, "app", &words, 4);
    assert!(found.contains(APP_PASSWORD), "hydra: {found}");
    let (seen, caught) = runner.until(Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["evidence"]["successfulPrincipal"] == "app"
    });
    assert!(caught, "{seen:#?}\n{}", runner.log());

    // The server stops: the stream ends, and so does run.
    cl.stop_foreground(pg);
    let status = runner.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "run did not end with its input: {status:?}\n{}",
        runner.log()
    );
    assert!(
        runner.log().contains("standard input ended"),
        "{}",
        runner.log()
    );
}

/// `analyze -` reads standard input, gzip'd or not, in any format: CloudNativePG's JSON (what
/// `kubectl logs` shows of an instance) gives the alerts of the csvlog it wraps.
#[test]
fn analyze_reads_standard_input() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let from_file = |p: &std::path::Path| {
        let (_, alerts, err) = analyze_json(&[p.as_os_str()]);
        assert!(!alerts.is_empty(), "{err}");
        alerts
            .iter()
            .map(|a| (a["alertType"].clone(), a["entities"]["sourceIp"].clone()))
            .collect::<Vec<_>>()
    };
    let piped = |bytes: Vec<u8>| {
        let mut child = pgvigil()
            .args(["analyze", "--json", "--no-enrich", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&bytes).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|a| (a["alertType"].clone(), a["entities"]["sourceIp"].clone()))
            .collect::<Vec<_>>()
    };
    let csv = fixtures.join("csvlog/hydra.csv");
    let cnpg = std::fs::read(fixtures.join("cnpg/hydra.json")).unwrap();
    assert_eq!(piped(cnpg), from_file(&csv));
    let log = fixtures.join("stderr/hydra.log");
    let gz = Command::new("gzip")
        .arg("-c")
        .arg(&log)
        .output()
        .expect("gzip");
    assert_eq!(piped(gz.stdout), from_file(&log));
}
