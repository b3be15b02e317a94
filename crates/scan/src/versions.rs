//! Major versions and the end of their community support (five years after release, as the
//! PostgreSQL versioning policy sets), and the latest minor release of each as of
//! [`MINORS_AS_OF`]: minor releases carry the security fixes, so a server behind its branch's
//! latest minor is missing some. The table is as new as this pgvigil; newer minors may exist.

use super::ScanFinding;
use model::alert::Severity;

/// (major, end of life as days since 1970-01-01, the date).
const EOL: &[(u32, i64, &str)] = &[
    (11, 19_670, "2023-11-09"),
    (12, 20_048, "2024-11-21"),
    (13, 20_405, "2025-11-13"),
    (14, 20_769, "2026-11-12"),
    (15, 21_133, "2027-11-11"),
    (16, 21_497, "2028-11-09"),
    (17, 21_861, "2029-11-08"),
    (18, 22_232, "2030-11-14"),
];

/// The date of the minor releases in [`LATEST_MINOR`].
pub const MINORS_AS_OF: &str = "2026-08-13";

/// (major, latest minor) as of [`MINORS_AS_OF`]; the final minor for branches past their end.
const LATEST_MINOR: &[(u32, u32)] = &[
    (11, 22),
    (12, 22),
    (13, 23),
    (14, 23),
    (15, 18),
    (16, 14),
    (17, 10),
    (18, 4),
];

pub fn minor_finding(version_num: u32) -> Option<ScanFinding> {
    let (major, minor) = (version_num / 10_000, version_num % 10_000);
    let (_, latest) = LATEST_MINOR.iter().find(|(m, _)| *m == major)?;
    (minor < *latest).then(|| ScanFinding {
        check: "version-minor",
        severity: Severity::Medium,
        title: format!(
            "PostgreSQL {major}.{minor} is behind its branch's latest minor release {major}.{latest} (as of {MINORS_AS_OF}): security fixes are missing"
        ),
        evidence: format!("server_version_num = {version_num}"),
        fix: format!(
            "Install the latest {major}.x packages (e.g. apt-get install --only-upgrade postgresql-{major}) and restart; minor updates need no dump or pg_upgrade."
        ),
        cis: super::cis_of("version-minor"),
    })
}

pub fn eol_finding(version_num: u32, today: i64) -> Option<ScanFinding> {
    let major = version_num / 10_000;
    let (sev, why) = match EOL.iter().find(|(m, _, _)| *m == major) {
        Some((_, day, date)) if today >= *day => (
            Severity::High,
            format!("PostgreSQL {major} reached its end of life on {date}: no more security fixes"),
        ),
        Some(_) => return None,
        None if major < EOL[0].0 => (
            Severity::High,
            format!("PostgreSQL {major} is long past its end of life: no more security fixes"),
        ),
        None => return None,
    };
    Some(ScanFinding {
        check: "version-eol",
        severity: sev,
        title: why,
        evidence: format!("server_version_num = {version_num}"),
        fix: "Upgrade to a supported major version (pg_upgrade).".into(),
        cis: super::cis_of("version-eol"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> i64 {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .unwrap()
            .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days()
    }

    #[test]
    fn the_table_dates_are_the_day_numbers() {
        for (_, d, s) in EOL {
            assert_eq!(*d, day(s), "{s}");
        }
        assert!(eol_finding(140_015, day("2026-11-28")).is_some());
        assert!(eol_finding(150_018, day("2026-11-28")).is_none());
        assert!(eol_finding(100_023, day("2026-11-28")).is_some());
    }

    #[test]
    fn a_server_behind_its_latest_minor_is_reported() {
        let f = minor_finding(150_017).unwrap();
        assert!(
            f.title.contains("15.17") && f.title.contains("15.18"),
            "{}",
            f.title
        );
        assert!(minor_finding(150_018).is_none());
        assert!(
            minor_finding(150_019).is_none(),
            "newer than the table: fine"
        );
        assert!(
            minor_finding(190_000).is_none(),
            "unknown branch: nothing claimed"
        );
        assert!(LATEST_MINOR
            .iter()
            .all(|(m, _)| EOL.iter().any(|(e, _, _)| e == m)));
    }
}
