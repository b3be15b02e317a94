//! What a new user meets in the first hour: the README's install line is what `./test`
//! installs, output that says what happened (nothing read is not "No alerts."), one JSON
//! vocabulary described by the schemas in `schema/`, completions and man pages.

mod support;

use std::path::{Path, PathBuf};
use support::*;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn analyze(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let mut all = vec![std::ffi::OsStr::new("--no-enrich")];
    all.extend_from_slice(args);
    analyze_text(&all)
}

/// The README's `apt-get install` line names exactly the packages `./test` installs.
#[test]
fn the_readme_install_line_is_what_the_test_script_installs() {
    let out = std::process::Command::new(repo("test"))
        .arg("--packages")
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut script: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    script.sort();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    // The install block's line, which starts a line of its own.
    let start = readme
        .find("\napt-get install -y ")
        .expect("an apt-get line in the README");
    let mut line = String::new();
    for l in readme[start + "\napt-get install -y ".len()..].lines() {
        line.push_str(l.trim_end_matches('\\'));
        line.push(' ');
        if !l.ends_with('\\') {
            break;
        }
    }
    let mut listed: Vec<String> = line.split_whitespace().map(String::from).collect();
    listed.sort();
    assert_eq!(listed, script, "README install line vs ./test --packages");
}

#[test]
fn nothing_read_is_not_no_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.log");
    let (code, out, err) = analyze(&[missing.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(!out.contains("No alerts."), "{out}");
    assert!(out.contains("Nothing could be analysed"), "{out}");

    // An empty file: a warning naming it, and no clean bill of health.
    let empty = dir.path().join("postgresql.log");
    std::fs::write(&empty, "").unwrap();
    let (code, out, err) = analyze(&[empty.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("postgresql.log: empty"),
        "a warning names the empty file: {err}"
    );
    assert!(out.contains("Nothing to analyse"), "{out}");
}

/// A .gz cut short (a copy interrupted, a disk full while compressing): what decompresses is
/// analysed, and the truncation is reported with the file and the line it stops at.
#[test]
fn a_truncated_gzip_gives_what_it_holds() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(repo("examples/logs/postgresql-15-main.log")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&text).unwrap();
    let gz = enc.finish().unwrap();
    let cut = dir.path().join("postgresql-15-main.log.2.gz");
    std::fs::write(&cut, &gz[..gz.len() * 2 / 3]).unwrap();
    let (code, out, err) = analyze(&[cut.as_os_str()]);
    assert_eq!(code, 2, "a truncated file is bad input: {err}");
    assert!(
        err.contains("postgresql-15-main.log.2.gz: the compressed data stops after line"),
        "{err}"
    );
    assert!(
        out.contains("BruteForce"),
        "the part before the cut is analysed: {out}"
    );
}

#[test]
fn an_unknown_prefix_escape_is_named() {
    let (code, _, err) = analyze(&[
        "--log-line-prefix".as_ref(),
        "%m [%p] %y ".as_ref(),
        repo("examples/logs").as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown escape %y"), "{err}");
    // %Q (the query id, PostgreSQL 14) is an escape, not a typo.
    let (code, _, err) = analyze(&[
        "--log-line-prefix".as_ref(),
        "%m [%p] %Q ".as_ref(),
        repo("examples/logs").as_os_str(),
    ]);
    assert!(!err.contains("unknown escape"), "{err}");
    assert_eq!(code, 2, "the lines do not match that prefix: {err}");
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("schema").join(name)).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check(v: &jsonschema::Validator, what: &str, value: &serde_json::Value) {
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{value}");
}

/// Alerts and events, as pgvigil prints them from real logs of every format, are what the
/// schemas say; the schema's alert types are the catalogue.
#[test]
fn alerts_and_events_follow_their_schemas() {
    let alerts_v = validator("alert.schema.json");
    let events_v = validator("event.schema.json");
    let mut types_seen = std::collections::BTreeSet::new();
    let inputs = [
        repo("examples/logs"),
        repo("tests/fixtures/csvlog"),
        repo("tests/fixtures/jsonlog"),
        repo("tests/fixtures/stderr/hydra.log"),
    ];
    for input in &inputs {
        let out = pgvigil()
            .args(["analyze", "--json", "--no-progress", "-q"])
            .arg(input)
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            types_seen.insert(a["alertType"].as_str().unwrap_or("").to_string());
            check(&alerts_v, &input.display().to_string(), &a);
        }
        let out = pgvigil()
            .args(["analyze", "--events", "--no-progress", "-q"])
            .arg(input)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().count() > 0, "{}: no events", input.display());
        for l in text.lines() {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            check(&events_v, &input.display().to_string(), &e);
            // One vocabulary: the event's time is the alert's kind of time.
            assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
        }
    }
    assert!(types_seen.len() >= 3, "{types_seen:?}");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("schema/alert.schema.json")).unwrap())
            .unwrap();
    let mut listed: Vec<&str> = schema["properties"]["alertType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut catalogue: Vec<&str> = pgvigil::alert::AlertType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    listed.sort();
    catalogue.sort();
    assert_eq!(
        listed, catalogue,
        "the schema's alertType enum is the catalogue"
    );
}

/// The bash completion completes subcommands and flags; the man pages cover every
/// subcommand with its flags.
#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let out = pgvigil().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pgvigil.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |words: &str, cword: usize| -> String {
        let out = ran(
            std::process::Command::new("bash").arg("-c").arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
                 COMP_POINT=${{#COMP_LINE}}; _pgvigil pgvigil; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            )),
            "bash",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let subs = complete("pgvigil an", 1);
    assert!(subs.split_whitespace().any(|w| w == "analyze"), "{subs}");
    let flags = complete("pgvigil analyze --log", 2);
    assert!(
        flags.split_whitespace().any(|w| w == "--log-line-prefix"),
        "{flags}"
    );

    let man = dir.path().join("man1");
    let out = pgvigil().arg("man").arg(&man).output().unwrap();
    assert!(out.status.success());
    let page = std::fs::read_to_string(man.join("pgvigil-analyze.1")).unwrap();
    assert!(page.contains(".TH pgvigil-analyze 1"), "{page}");
    assert!(page.contains("log\\-line\\-prefix"), "{page}");
    for sub in ["run", "proxy", "scan", "eval", "alerts-list", "policy-set"] {
        assert!(man.join(format!("pgvigil-{sub}.1")).is_file(), "{sub}");
    }
}

/// The README's first screen shows what the first command prints, row for row.
#[test]
fn the_readme_demo_table_is_what_analyze_prints() {
    let (_, stdout, _) = analyze_text(&["examples/logs/"]);
    let printed: Vec<String> = stdout.lines().map(|l| l.trim_end().to_string()).collect();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let start = readme
        .find("\nSEVERITY TYPE")
        .expect("the demo table in the README")
        + 1;
    let shown: Vec<String> = readme[start..]
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.trim_end().to_string())
        .collect();
    assert_eq!(shown, printed);
}
