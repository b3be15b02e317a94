//! Alerts as text for people: the email body and subject, and the summary lines that chat
//! messages and syslog carry. Everything here is log-derived in part (role and application
//! names are chosen by whoever connects), so control characters are replaced and bidi
//! controls shown by their code, and each channel escapes its own markup on top.

use model::alert::Alert;
use std::fmt::Write;

/// Characters that reorder the text around them: a role name with U+202E shows the rest of
/// a line backwards, so that what a reader sees is not what is there.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` without control characters (newlines in a role name must not forge header or log
/// lines), bidi controls written as `<U+202E>`.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

fn or_dash(s: Option<&str>) -> String {
    s.map(clean)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// "Azure, westeurope" / "DE, Berlin, AS3320 Deutsche Telekom" / "-".
pub fn place(a: &Alert) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &a.entities.location {
        if let Some(c) = &l.country {
            parts.push(clean(c));
        }
        if let Some(c) = &l.city {
            parts.push(clean(c));
        }
        match (l.asn, &l.org) {
            (Some(n), Some(o)) => parts.push(format!("AS{n} {}", clean(o))),
            (Some(n), None) => parts.push(format!("AS{n}")),
            _ => {}
        }
        if parts.is_empty() {
            if let Some(k) = l.address_class {
                parts.push(format!("{k:?} address").to_lowercase());
            }
        }
    }
    if let Some(c) = &a.entities.cloud {
        if let Some(p) = &c.provider {
            let mut s = clean(p);
            if let Some(r) = &c.region {
                s.push(' ');
                s.push_str(&clean(r));
            }
            parts.push(s);
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// `simulated`: a sample from `POST …/alerts/simulate`, said in the subject.
pub fn subject(a: &Alert, simulated: bool) -> String {
    let simulated = if simulated { "[sample] " } else { "" };
    clean(&format!(
        "[pgvigil] {simulated}{}: {} on {} from {}",
        a.severity,
        a.display_name,
        a.server,
        a.entities.source_ip.as_deref().unwrap_or("unknown source")
    ))
}

/// Link to the alert's page in the console, when its address is configured (the API's
/// `/alerts/{id}` wants a token that a browser does not have).
pub fn link(a: &Alert, public_url: Option<&str>) -> Option<String> {
    let id: String =
        a.id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
    public_url.map(|u| format!("{}/console/alerts/{id}", u.trim_end_matches('/')))
}

/// The plain-text email body: what happened, where, who, when, why it is unusual, and what
/// to do.
pub fn body(a: &Alert, simulated: bool, public_url: Option<&str>) -> String {
    let mut s = String::new();
    if simulated {
        let _ = writeln!(
            s,
            "SAMPLE ALERT: sent to check notifications; nothing happened on the server.\n"
        );
    }
    let _ = writeln!(s, "{}", clean(&a.display_name));
    let _ = writeln!(
        s,
        "{}\n",
        "=".repeat(a.display_name.chars().count().min(78))
    );
    let _ = writeln!(s, "{}\n", clean(&a.description));
    let e = &a.entities;
    let rows = [
        ("Severity", a.severity.to_string()),
        ("Alert type", a.alert_type.as_str().to_string()),
        ("Server", clean(&a.server)),
        ("Source", or_dash(e.source_ip.as_deref())),
        ("Location", place(a)),
        ("Principal", or_dash(e.principal.as_deref())),
        ("Database", or_dash(e.database.as_deref())),
        ("Application", or_dash(e.application.as_deref())),
        ("Start (UTC)", a.start_time_utc.clone()),
        ("End (UTC)", a.end_time_utc.clone()),
        ("Status", a.status.clone()),
        ("MITRE ATT&CK", a.techniques.join(", ")),
        ("Alert id", a.id.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<14}{v}");
    }
    if !a.anomaly_context.is_empty() {
        let _ = writeln!(
            s,
            "\nWhy this is unusual\n-------------------\n{}",
            clean(&a.anomaly_context)
        );
    }
    if !a.remediation_steps.is_empty() {
        let _ = writeln!(s, "\nWhat to do\n----------");
        for (i, r) in a.remediation_steps.iter().enumerate() {
            let _ = writeln!(s, "{}. {}", i + 1, clean(r));
        }
    }
    if let Some(l) = link(a, public_url) {
        let _ = writeln!(s, "\nOpen the alert: {l}");
    }
    let _ = writeln!(
        s,
        "\n-- \npgvigil sends this because the server's security alert policy names you as a recipient."
    );
    s
}

/// One line: for chat titles and syslog messages.
pub fn one_line(a: &Alert) -> String {
    clean(&format!(
        "{} {} on {}: source {} ({}), principal {}",
        a.severity,
        a.display_name,
        a.server,
        a.entities.source_ip.as_deref().unwrap_or("-"),
        place(a),
        a.entities.principal.as_deref().unwrap_or("-"),
    ))
}
