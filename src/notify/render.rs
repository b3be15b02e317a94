//! Alerts as text for people: the email body and subject, and the summary lines that chat
//! messages and syslog carry. Everything here is log-derived in part (role and application
//! names are chosen by whoever connects), so control characters are replaced.

use crate::alert::Alert;
use std::fmt::Write;

/// `s` without control characters (newlines in a role name must not forge header or log lines).
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
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

pub fn subject(a: &Alert) -> String {
    let simulated = if a.description.starts_with("Sample alert") {
        "[sample] "
    } else {
        ""
    };
    clean(&format!(
        "[pgvigil] {simulated}{}: {} on {} from {}",
        a.severity,
        a.display_name,
        a.server,
        a.entities.source_ip.as_deref().unwrap_or("unknown source")
    ))
}

/// Link to the alert in the console, when its address is configured.
pub fn link(a: &Alert, public_url: Option<&str>) -> Option<String> {
    public_url.map(|u| format!("{}/alerts/{}", u.trim_end_matches('/'), a.id))
}

/// The plain-text email body: what happened, where, who, when, why it is unusual, and what
/// to do.
pub fn body(a: &Alert, public_url: Option<&str>) -> String {
    let mut s = String::new();
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
