//! Golden files: real PostgreSQL 15 logs in `tests/fixtures/<format>/` and what they must
//! yield — the events (`<case>.events.jsonl`, one per format) and the alerts
//! (`tests/fixtures/alerts/<case>.alerts.jsonl`, the same for every format of a case).
//! `PGVIGIL_BLESS=1 cargo test --test golden` rewrites the expectations; review the diff.

use pgvigil::detect::registry::DetectConfig;
use pgvigil::event::EventKind;
use pgvigil::pipeline;
use pgvigil::sources::file::{inspect, Hints};
use pgvigil::sources::prefix::Prefix;
use pgvigil::sources::LogFormat;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn bless() -> bool {
    std::env::var_os("PGVIGIL_BLESS").is_some()
}

/// Compares `actual` with the file, or writes it when blessing; returns a readable diff.
fn check(expected_path: &Path, actual: &str) -> Result<(), String> {
    if bless() {
        std::fs::write(expected_path, actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path).map_err(|e| {
        format!(
            "{}: {e} (run with PGVIGIL_BLESS=1 to create it)",
            expected_path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let mut diff = format!("{} differs:\n", expected_path.display());
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (
            e.get(i).copied().unwrap_or("<none>"),
            a.get(i).copied().unwrap_or("<none>"),
        );
        if x != y {
            diff.push_str(&format!("  line {}:\n  - {x}\n  + {y}\n", i + 1));
        }
    }
    Err(diff)
}

fn cases(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {dir}");
    v
}

fn hints_for(path: &Path, format: LogFormat) -> Hints {
    let prefix_file = path.with_extension("prefix");
    Hints {
        format: Some(format),
        prefix: std::fs::read_to_string(&prefix_file)
            .ok()
            .map(|p| Prefix::compile(&p).unwrap()),
    }
}

fn all_cases() -> Vec<(PathBuf, LogFormat)> {
    let mut v = Vec::new();
    for (dir, ext, f) in [
        ("stderr", "log", LogFormat::Stderr),
        ("csvlog", "csv", LogFormat::Csvlog),
        ("jsonlog", "json", LogFormat::Jsonlog),
        ("pgbouncer", "log", LogFormat::Pgbouncer),
    ] {
        for p in cases(dir, ext) {
            v.push((p, f));
        }
    }
    v
}

#[test]
fn every_fixture_yields_its_golden_events() {
    let mut failures = Vec::new();
    for (path, format) in all_cases() {
        let lf = inspect(&path, &hints_for(&path, format)).unwrap();
        assert_eq!(lf.format, format, "{}: format detected", path.display());
        let (events, stats) = pipeline::events_of(&lf).unwrap();
        assert_eq!(
            stats.malformed,
            0,
            "{}: {:?}",
            path.display(),
            stats.first_malformed
        );
        let text: String = events
            .iter()
            .map(|e| {
                let mut line = serde_json::to_string(e).unwrap();
                // The statement is never serialised with the event (it may hold secrets);
                // its redacted form shows what the detectors were given.
                if let Some(sql) = &e.sql {
                    line.pop();
                    line.push_str(&format!(
                        ",\"sql\":{}}}",
                        serde_json::to_string(&sql.redacted(200)).unwrap()
                    ));
                }
                // How long a login's connection waited for its outcome (`connection received`
                // to the failure): the pace of a tool is measured from its attempts' starts.
                let login = matches!(
                    e.kind,
                    EventKind::LoginFailed { .. } | EventKind::LoginSucceeded
                );
                if let Some(waited) = e
                    .attempt_start
                    .map(|t| e.time - t)
                    .filter(|w| login && *w > 0)
                {
                    line.pop();
                    line.push_str(&format!(",\"attempt_ms\":{waited}}}"));
                }
                line + "\n"
            })
            .collect();
        if let Err(d) = check(&path.with_extension("events.jsonl"), &text) {
            failures.push(d);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Format auto-detection and prefix guessing find what the golden test is told.
#[test]
fn formats_and_prefixes_are_detected() {
    for (path, format) in all_cases() {
        let lf = inspect(&path, &Hints::default()).unwrap();
        assert_eq!(lf.format, format, "{}", path.display());
        if format == LogFormat::Stderr && !path.with_extension("prefix").exists() {
            let (_, stats) = pipeline::events_of(&lf).unwrap();
            assert_eq!(
                stats.malformed,
                0,
                "{} with guessed prefix {:?}",
                path.display(),
                lf.prefix
            );
        }
    }
}

/// What an alert is, without what differs between formats of the same log (ids depend on the
/// start time, which stderr logs with %t give only to the second).
fn alert_lines(path: &Path, format: LogFormat) -> String {
    let lf = inspect(path, &hints_for(path, format)).unwrap();
    let (alerts, _) = pipeline::analyze_collect(
        std::slice::from_ref(&lf),
        "db1",
        &DetectConfig::default(),
        1,
    );
    let (beside, _) = pipeline::analyze_collect(&[lf], "db1", &DetectConfig::default(), 2);
    assert_eq!(
        alerts,
        beside,
        "{}: reading and detecting on two threads changes nothing",
        path.display()
    );
    alerts
        .iter()
        .map(|a| {
            let mut v = serde_json::json!({
                "alertType": a.alert_type,
                "displayName": a.display_name,
                "severity": a.severity,
                "entities": a.entities,
                "techniques": a.techniques,
                "tools": a.evidence.value().get("tools"),
                "failedLogins": a.evidence.value().get("failedLogins"),
                "successfulPrincipal": a.evidence.value().get("successfulPrincipal"),
            });
            // Statement alerts: which rules matched, on how many statements.
            for k in ["rules", "statements"] {
                if let Some(x) = a.evidence.value().get(k) {
                    v[k] = x.clone();
                }
            }
            serde_json::to_string(&v).unwrap() + "\n"
        })
        .collect()
}

#[test]
fn every_format_of_a_log_raises_the_same_alerts() {
    let dir = fixtures().join("alerts");
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for csv in cases("csvlog", "csv") {
        let case = csv.file_stem().unwrap().to_str().unwrap().to_string();
        let expected = dir.join(format!("{case}.alerts.jsonl"));
        let from_csv = alert_lines(&csv, LogFormat::Csvlog);
        if let Err(d) = check(&expected, &from_csv) {
            failures.push(d);
        }
        for (sub, ext, f) in [
            ("stderr", "log", LogFormat::Stderr),
            ("jsonlog", "json", LogFormat::Jsonlog),
        ] {
            let other = fixtures().join(sub).join(format!("{case}.{ext}"));
            // A stderr prefix without %u and %d hides the role and database of failed logins,
            // which some detections need; such logs legitimately raise fewer alerts.
            let prefix =
                std::fs::read_to_string(other.with_extension("prefix")).unwrap_or_default();
            if f == LogFormat::Stderr
                && !prefix.is_empty()
                && !(prefix.contains("%u") && prefix.contains("%d"))
            {
                continue;
            }
            let got = alert_lines(&other, f);
            if got != from_csv {
                failures.push(format!(
                    "{} raises other alerts than {}:\n{got}\nvs\n{from_csv}",
                    other.display(),
                    csv.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Real installations' prefixes (`tests/fixtures/prefixes/`, recorded by
/// `bench/corpus/record.py --prefixes`), read without being told the prefix: the guess reads
/// every line, and yields exactly the events the server's own prefix gives.
#[test]
fn every_real_prefix_is_read_without_being_told() {
    let mut failures = Vec::new();
    for path in cases("prefixes", "log") {
        let truth = std::fs::read_to_string(path.with_extension("log-line-prefix")).unwrap();
        let told = inspect(
            &path,
            &Hints {
                format: Some(LogFormat::Stderr),
                prefix: Some(Prefix::compile(&truth).unwrap()),
            },
        )
        .unwrap();
        let guessed = inspect(&path, &Hints::default()).unwrap();
        assert_eq!(guessed.format, LogFormat::Stderr, "{}", path.display());
        let (want, _) = pipeline::events_of(&told).unwrap();
        let (got, stats) = pipeline::events_of(&guessed).unwrap();
        let guess = guessed.prefix.as_ref().map(|p| p.as_str().to_string());
        if stats.malformed > 0 {
            failures.push(format!(
                "{}: guessed {guess:?} for {truth:?}: {:?}",
                path.display(),
                stats.first_malformed
            ));
            continue;
        }
        if got != want {
            failures.push(format!(
                "{}: guessed {guess:?} for {truth:?}: other events:\n{got:#?}\nvs\n{want:#?}",
                path.display()
            ));
            continue;
        }
        let text: String = got
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        if let Err(d) = check(&path.with_extension("events.jsonl"), &text) {
            failures.push(d);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// PgBouncer in front of PostgreSQL (`tests/fixtures/pgbouncer/scram_wildcard.log`, and the
/// server's own log of the same minutes in `server/`): hydra's guesses are checked by
/// PgBouncer, and only its log has them, with the client's address. Read together, the server's
/// log adds no login of its own: its logins are PgBouncer's pooled connections.
#[test]
fn pgbouncer_and_its_server_are_read_together_without_counting_twice() {
    let dir = fixtures().join("pgbouncer");
    let bouncer = inspect(&dir.join("scram_wildcard.log"), &Hints::default()).unwrap();
    let server = inspect(&dir.join("server/scram_wildcard.log"), &Hints::default()).unwrap();
    assert_eq!(bouncer.format, LogFormat::Pgbouncer);
    assert_eq!(server.format, LogFormat::Stderr);
    let logins = |evs: &[pgvigil::event::Event]| {
        evs.iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::LoginSucceeded | EventKind::LoginFailed { .. }
                )
            })
            .count()
    };
    let (alone, _) = pipeline::events_of(&bouncer).unwrap();
    // The server's log is older than PgBouncer's first line, so it is read first.
    assert!(server.first_time < bouncer.first_time);
    let files = [server.clone(), bouncer.clone()];
    let both = pipeline::analyze(
        &files,
        "db1",
        &DetectConfig::default(),
        None,
        true,
        Box::new(|_| {}),
        &mut |_, _| {},
        1,
    );
    assert_eq!(
        logins(&both.events),
        logins(&alone),
        "the server's log added logins: {:#?}",
        both.events
            .iter()
            .filter(|e| !alone.contains(e) && e.kind != EventKind::Statement)
            .collect::<Vec<_>>()
    );
    let (alerts, _) = pipeline::analyze_collect(&files, "db1", &DetectConfig::default(), 2);
    let bf: Vec<_> = alerts
        .iter()
        .filter(|a| a.alert_type == pgvigil::alert::AlertType::BruteForce)
        .collect();
    assert_eq!(bf.len(), 1, "{alerts:#?}");
    assert_eq!(
        bf[0].display_name,
        "Suspected successful brute force attack"
    );
    assert_eq!(bf[0].evidence.value()["successfulPrincipal"], "alice");
    assert_eq!(bf[0].entities.source_ip.as_deref(), Some("127.0.0.1"));
}

/// CloudNativePG's log wraps each csvlog entry in its own JSON (`tests/fixtures/cnpg/`): it
/// yields exactly the events of the csvlog it wraps, and its manager's own lines are not
/// taken for PostgreSQL's or for malformed ones.
#[test]
fn cloudnativepg_lines_yield_the_events_of_the_csvlog_they_wrap() {
    for path in cases("cnpg", "json") {
        let lf = inspect(&path, &Hints::default()).unwrap();
        assert_eq!(lf.format, LogFormat::Jsonlog, "{}", path.display());
        let (got, stats) = pipeline::events_of(&lf).unwrap();
        assert_eq!(
            stats.malformed,
            0,
            "{}: {:?}",
            path.display(),
            stats.first_malformed
        );
        let csv = fixtures()
            .join("csvlog")
            .join(path.file_stem().unwrap())
            .with_extension("csv");
        let (want, _) =
            pipeline::events_of(&inspect(&csv, &hints_for(&csv, LogFormat::Csvlog)).unwrap())
                .unwrap();
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{}", path.display());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{}", path.display());
            assert_eq!(
                g.sql.as_ref().map(|s| s.text.clone()),
                w.sql.as_ref().map(|s| s.text.clone()),
                "{}",
                path.display()
            );
        }
    }
}

/// What the managed services' CLIs download, under the names they give (Amazon RDS/Aurora's
/// hourly `error/postgresql.log.2026-11-30-20`, here gzip'd; Azure Flexible Server's
/// `serverlogs/postgresql_2026_11_30_20_00_00.log`; a Cloud SQL log saved from Cloud Logging),
/// found in a directory and read with no flag: the prefix each service sets is recognised,
/// and every line gives what the service's own prefix gives.
#[test]
fn managed_services_downloads_are_read_by_their_names_without_flags() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let prefixes = fixtures().join("prefixes");
    let place = |name: &str, from: &str, gz: bool| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let text = std::fs::read(prefixes.join(from)).unwrap();
        if gz {
            let mut w = flate2::write::GzEncoder::new(
                std::fs::File::create(&to).unwrap(),
                flate2::Compression::default(),
            );
            w.write_all(&text).unwrap();
            w.finish().unwrap();
        } else {
            std::fs::write(&to, text).unwrap();
        }
        (to, prefixes.join(from).with_extension("log-line-prefix"))
    };
    let cases = [
        place("error/postgresql.log.2026-11-30-20", "amazon-rds.log", true),
        place(
            "serverlogs/postgresql_2026_11_30_20_00_00.log",
            "azure-flexible.log",
            false,
        ),
        place("cloudsql/postgres.log", "google-cloud-sql.log", false),
    ];
    let (files, errors, _) = pipeline::discover(&[dir.path().to_path_buf()], &Hints::default());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(files.len(), cases.len(), "{files:#?}");
    for (path, truth) in &cases {
        let lf = files
            .iter()
            .find(|f| &f.path == path)
            .unwrap_or_else(|| panic!("{} not found: {files:#?}", path.display()));
        assert_eq!(lf.format, LogFormat::Stderr);
        let truth = std::fs::read_to_string(truth).unwrap();
        let told = inspect(
            path,
            &Hints {
                format: Some(LogFormat::Stderr),
                prefix: Some(Prefix::compile(&truth).unwrap()),
            },
        )
        .unwrap();
        let (want, _) = pipeline::events_of(&told).unwrap();
        let (got, stats) = pipeline::events_of(lf).unwrap();
        assert_eq!(
            stats.malformed,
            0,
            "{}: {:?}",
            path.display(),
            stats.first_malformed
        );
        assert!(!want.is_empty());
        assert_eq!(got, want, "{}", path.display());
    }
}

/// The systemd journal as `journalctl -o json` gives it (`tests/fixtures/journal/`): a server's
/// stderr under a unit (`hydra.json`, with `hydra.log` its `journalctl -o cat`) and its syslog
/// destination (`syslog.json`: `[5-1]` numbered messages, a prefix without time or pid, which
/// the journal's own fields give). Each yields its golden events, read as `run --journal` reads
/// them, with the prefix told from the messages; the stderr one, the events of its plain text.
#[test]
fn journal_exports_yield_their_golden_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for path in cases("journal", "json") {
        let json = std::fs::read_to_string(&path).unwrap();
        let (text, decided) =
            pgvigil::ingest::journal::read_export(&json, &Hints::default()).unwrap();
        let lines = dir
            .path()
            .join(path.file_name().unwrap())
            .with_extension("log");
        std::fs::write(&lines, text).unwrap();
        let lf = inspect(
            &lines,
            &Hints {
                format: Some(LogFormat::Stderr),
                prefix: decided.prefix.clone(),
            },
        )
        .unwrap();
        let (events, stats) = pipeline::events_of(&lf).unwrap();
        assert_eq!(
            stats.malformed,
            0,
            "{}: {:?}",
            path.display(),
            stats.first_malformed
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::LoginFailed { .. })),
            "{}",
            path.display()
        );
        let text: String = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        if let Err(d) = check(&path.with_extension("events.jsonl"), &text) {
            failures.push(d);
        }
        let plain = path.with_extension("log");
        if plain.exists() {
            let (want, _) =
                pipeline::events_of(&inspect(&plain, &Hints::default()).unwrap()).unwrap();
            assert_eq!(events, want, "{} and {}", path.display(), plain.display());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
