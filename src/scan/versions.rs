//! Major versions and the end of their community support (five years after release, as the
//! PostgreSQL versioning policy sets). Minor updates are not tracked here: they change too
//! often for a table shipped with the binary.

use super::ScanFinding;
use crate::alert::Severity;

/// (major, end of life as days since 1970-01-01, the date).
const EOL: &[(u32, i64, &str)] = &[
    (11, 19_670, "2023-11-09"),
    (12, 20_048, "2024-11-21"),
    (13, 20_405, "2025-11-13"),
    (14, 20_769, "2026-11-12"),
    (15, 21_133, "2027-11-11"),
    (16, 21_497, "2028-11-09"),
    (17, 21_861, "2029-11-08"),
];

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
}
