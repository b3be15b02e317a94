//! The corpus of real traces (`tests/corpus/`, recorded by `bench/corpus/record.py`): real
//! attack tools at intensities around every threshold and real clients that look like
//! attacks, against a real PostgreSQL 15, in stderr, csvlog and jsonlog. `pgvigil eval` gives
//! each actor a real-world address, writes the two weeks of normal traffic before, and checks
//! every scenario through `analyze` and through `run`'s streaming path: every expected alert,
//! with the attacker's address as its source; nothing on a benign actor; the same alerts
//! from both paths.

mod support;

use support::pgvigil;

#[test]
fn every_recorded_scenario_gives_its_alerts_and_nothing_else() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let out = pgvigil().arg("eval").arg(&dir).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = report.lines().last().unwrap_or("");
    assert!(
        summary.contains("0 false positives") && summary.contains("0 where analyze and run differ"),
        "{report}"
    );
    // Every scenario ran in all three formats.
    let scenarios = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("labels.json").is_file())
        .count();
    assert!(scenarios >= 40, "{scenarios} scenarios");
    assert!(
        summary.starts_with(&format!("{n} of {n} ", n = scenarios * 3)),
        "{report}"
    );
}
