//! Role names are chosen by whoever connects. The simulator gives every role a name that
//! closes a string constant, ends an identifier, carries a Markdown link and HTML, and turns
//! the text after it backwards; every alert type it raises on that traffic must keep those
//! names as one quoted value in the SQL it recommends, and as text in every channel.

mod support;

use pgvigil::alert::{Alert, AlertType};
use std::collections::BTreeSet;
use support::{analyze_json, pgvigil, ran};

/// The text CommonMark shows for `md`, and whether it made a link, emphasis, a list or HTML.
fn commonmark(md: &str) -> (String, bool) {
    use pulldown_cmark::{Event, Parser, Tag};
    let mut text = String::new();
    let mut markup = false;
    for ev in Parser::new(md) {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Start(Tag::Paragraph) | Event::End(_) => {}
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            _ => markup = true,
        }
    }
    (text, markup)
}

#[test]
fn every_alert_type_quotes_hostile_names_in_its_advice_and_channels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    ran(
        pgvigil()
            .args([
                "simulate",
                "--servers",
                "1",
                "--format",
                "jsonlog",
                "--hostile-names",
            ])
            .arg("--out")
            .arg(&out),
        "the pgvigil binary",
    );
    // The roles as the server logged them.
    let log = std::fs::read_to_string(out.join("db1/postgresql.json")).unwrap();
    let mut names: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["user"].as_str().map(String::from))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        names.iter().all(|n| n.contains("' OR usename <> '")),
        "{names:?}"
    );
    assert!(names.len() >= 8, "{names:?}");
    // Longest first, so that no name is removed from inside a longer one.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));

    let cfg = dir.path().join("pgvigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[enrich.reverse_dns]\nenabled = true\ndns = false\nhosts_file = {:?}\n",
            out.join("ptr.txt")
        ),
    )
    .unwrap();
    let (code, records, err) =
        analyze_json(&["-c".as_ref(), cfg.as_os_str(), out.join("db1").as_os_str()]);
    assert_eq!(code, 1, "{err}");
    let alerts: Vec<Alert> = records
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let types: BTreeSet<AlertType> = alerts.iter().map(|a| a.alert_type).collect();
    assert_eq!(
        types.len(),
        AlertType::ALL.len(),
        "missing: {:?}",
        AlertType::ALL
            .iter()
            .filter(|t| !types.contains(t))
            .collect::<Vec<_>>()
    );

    let mut sql_steps = 0;
    for a in &alerts {
        for step in &a.remediation_steps {
            // What is left when every name is taken out in one of its quoted forms: an SQL
            // string constant, an SQL identifier, or a quoted name in the prose.
            let mut rest = step.clone();
            for n in &names {
                for quoted in [
                    pgvigil::sql::quote_literal(n),
                    pgvigil::sql::quote_ident(n),
                    format!("{n:?}"),
                ] {
                    if rest.contains(&quoted) {
                        if quoted.starts_with('\'') || !quoted.starts_with("\"") {
                            sql_steps += 1;
                        }
                        rest = rest.replace(&quoted, "NAME");
                    }
                }
            }
            assert!(
                !rest.contains("OR usename <>") && !rest.contains("evil.example"),
                "{} advises an unquoted name:\n{step}\n{rest}",
                a.alert_type.as_str()
            );
        }

        // Teams: every text block and fact renders as plain text.
        let card: serde_json::Value = serde_json::from_str(&pgvigil::notify::webhook::body(
            pgvigil::notify::webhook::WebhookFormat::Teams,
            a,
            false,
            "{}",
            Some("https://pgvigil.example.com"),
        ))
        .unwrap();
        let body = card["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap();
        let mut texts: Vec<&str> = body.iter().filter_map(|b| b["text"].as_str()).collect();
        for f in body.iter().filter_map(|b| b["facts"].as_array()).flatten() {
            texts.push(f["value"].as_str().unwrap());
        }
        for t in texts {
            let (shown, markup) = commonmark(t);
            assert!(!markup, "Teams renders markup from {:?}", t);
            assert!(!shown.contains('\u{202e}'), "{shown}");
        }

        // Slack: no link or mention markup.
        let slack = pgvigil::notify::webhook::body(
            pgvigil::notify::webhook::WebhookFormat::Slack,
            a,
            false,
            "{}",
            None,
        );
        let slack: serde_json::Value = serde_json::from_str(&slack).unwrap();
        let text = slack.to_string();
        assert!(!text.contains("<http") && !text.contains("<!"), "{text}");

        // CEF: the principal is one extension value, escaped as CEF wants.
        let cef = pgvigil::notify::syslog::cef(a, false);
        assert!(!cef.contains('\n') && !cef.contains('\u{202e}'), "{cef}");
        if let Some(p) = &a.entities.principal {
            let escaped = p.replace('\\', "\\\\").replace('=', "\\=");
            let escaped = pgvigil::notify::render::clean(&escaped);
            assert!(cef.contains(&format!("duser={escaped}")), "{cef}");
        }
        // Email: the subject is one line and shows no bidi control.
        let subject = pgvigil::notify::render::subject(a, false);
        assert!(
            !subject.contains('\n') && !subject.contains('\u{202e}'),
            "{subject}"
        );
    }
    assert!(sql_steps > 0, "no advice named a role in SQL");
}
