//! Detection quality, measured: `pgvigil simulate` writes weeks of realistic traffic with
//! labelled attacks of every type, `pgvigil eval` scores detection against the labels.

mod support;

use support::{pgvigil, simulate};

#[test]
fn every_injected_attack_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), 2, 3);
    let labels = std::fs::read_to_string(dir.path().join("labels.jsonl")).unwrap();
    assert_eq!(
        labels.lines().count(),
        32,
        "16 attack types on each of 2 servers"
    );

    let out = pgvigil()
        .args(["eval", "-v"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit 0: no attack missed\n{report}"
    );
    for ty in [
        "BruteForce",
        "PasswordSpray",
        "DistributedBruteForce",
        "HarmfulApplication",
        "Probe",
        "GeoAnomaly",
        "DataCenterAnomaly",
        "CloudProviderAnomaly",
        "PrincipalAnomaly",
        "DomainAnomaly",
        "SuspiciousIpAnomaly",
        "ImpossibleTravel",
        "SqlInjection",
        "UnsafeAction",
        "PrivilegeEscalation",
        "DataExfiltration",
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("PostgreSQL_{ty} ")))
            .unwrap_or_else(|| panic!("{ty} missing from the report\n{report}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (cols[1], cols[3]),
            ("2", "0"),
            "{ty}: 2 found, 0 missed\n{report}"
        );
    }
    assert!(report.contains("0 attacks missed"), "{report}");
}
