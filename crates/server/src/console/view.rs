//! Small pieces every console page shows the same way: times as an age with the UTC time on
//! hover, entities as links to their pages (the pivots), MITRE techniques by name, the
//! "succeeded" badge, an alert's title and count.

use super::url_encode;
use maud::{html, Markup};
use model::alert::Alert;
use store::StatusChange;

/// "3 min ago" for an RFC 3339 time, from `now_ms`; the time itself when it does not parse.
pub fn ago(now_ms: i64, iso: &str) -> String {
    let Some(t) = chrono::DateTime::parse_from_rfc3339(iso)
        .ok()
        .map(|t| t.timestamp_millis())
    else {
        return iso.to_string();
    };
    let s = (now_ms - t) / 1000;
    match s {
        i64::MIN..=-60 => format!("in {} min", -s / 60),
        -59..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// A time as its age, the exact UTC time on hover and for machines.
pub fn when(now_ms: i64, iso: &str) -> Markup {
    html! { time datetime=(iso) title={(iso.replace('T', " ")) " UTC"} { (ago(now_ms, iso)) } }
}

/// An address as the link to its page: every alert and login of it across servers.
pub fn source(ip: &str) -> Markup {
    if ip.is_empty() {
        return html! {};
    }
    html! { a.source href={"/console/sources/" (url_encode(ip))} { (ip) } }
}

/// A role name as the link to its alerts (names are case sensitive and may be hostile: the
/// link is encoded, the text escaped).
pub fn principal(name: &str) -> Markup {
    if name.is_empty() {
        return html! {};
    }
    html! { a.principal href={"/console/alerts?principal=" (url_encode(name))} { (name) } }
}

pub fn server(name: &str) -> Markup {
    html! { a href={"/console/servers/" (url_encode(name))} { (name) } }
}

/// The country code of an alert's source, or "".
pub fn country(a: &Alert) -> &str {
    a.entities
        .location
        .as_ref()
        .and_then(|l| l.country.as_deref())
        .unwrap_or("")
}

/// The few evidence fields a list row shows, read from the record's text without building
/// the rest of it (a list reads them for every row).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RowEvidence {
    successful_principal: Option<serde::de::IgnoredAny>,
    failed_logins: Option<serde_json::Value>,
    failures: Option<serde_json::Value>,
    attempts: Option<serde_json::Value>,
}

fn row_evidence(a: &Alert) -> RowEvidence {
    serde_json::from_str(a.evidence.as_str()).unwrap_or_default()
}

/// Whether a login succeeded in the attack the alert describes.
pub fn succeeded(a: &Alert) -> bool {
    row_evidence(a).successful_principal.is_some() || a.display_name.contains("successful")
}

pub fn badge(a: &Alert) -> Markup {
    html! { @if succeeded(a) { " " span.badge.succeeded { "login succeeded" } } }
}

/// An alert as a row's first cell shows it: severity, title linked to its page, badge.
pub fn alert(a: &Alert) -> Markup {
    html! {
        (severity(a)) " "
        a href={"/console/alerts/" (a.id)} { (a.display_name) } (badge(a))
    }
}

/// An alert's severity, in its colour.
pub fn severity(a: &Alert) -> Markup {
    let s = a.severity.to_string();
    html! { span class={"sev " (s)} { (s) } }
}

/// An alert's source, linked, with its country.
pub fn source_of(a: &Alert) -> Markup {
    html! {
        (source(a.entities.source_ip.as_deref().unwrap_or("")))
        @if !country(a).is_empty() { " " span.country title="Country" { (country(a)) } }
    }
}

pub fn principal_of(a: &Alert) -> Markup {
    principal(a.entities.principal.as_deref().unwrap_or(""))
}

/// The number an alert counts: failed logins, attempts, statements, as its evidence has it.
pub fn count(a: &Alert) -> Option<u64> {
    let e = row_evidence(a);
    [e.failed_logins, e.failures, e.attempts]
        .iter()
        .find_map(|v| v.as_ref().and_then(|v| v.as_u64()))
}

/// MITRE ATT&CK techniques pgvigil's alerts name, with their names.
const TECHNIQUES: &[(&str, &str)] = &[
    ("T1046", "Network Service Discovery"),
    ("T1048", "Exfiltration Over Alternative Protocol"),
    ("T1059", "Command and Scripting Interpreter"),
    ("T1078", "Valid Accounts"),
    ("T1078.004", "Valid Accounts: Cloud Accounts"),
    ("T1090.003", "Proxy: Multi-hop Proxy"),
    ("T1098", "Account Manipulation"),
    ("T1110", "Brute Force"),
    ("T1110.001", "Brute Force: Password Guessing"),
    ("T1110.003", "Brute Force: Password Spraying"),
    ("T1190", "Exploit Public-Facing Application"),
    ("T1562.001", "Impair Defenses: Disable or Modify Tools"),
    ("T1595", "Active Scanning"),
];

/// A technique id as a link to MITRE's page, with its name.
pub fn technique(id: &str) -> Markup {
    let name = TECHNIQUES.iter().find(|(t, _)| *t == id).map(|(_, n)| *n);
    // T1110.001 is at /techniques/T1110/001/.
    let path = id.replace('.', "/");
    let well_formed =
        id.starts_with('T') && id[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
    html! {
        @if well_formed {
            a href={"https://attack.mitre.org/techniques/" (path) "/"} rel="noreferrer" { (id) }
        } @else { (id) }
        @if let Some(n) = name { " " (n) }
    }
}

/// One entry of an alert's history, in words.
pub fn history_entry(now_ms: i64, h: &StatusChange) -> Markup {
    let what = match (h.action.as_str(), h.to.as_str()) {
        ("raised", _) => "raised".to_string(),
        ("escalated", _) => "escalated and opened again".to_string(),
        ("suppressed", _) => "dismissed as raised".to_string(),
        (_, "Dismissed") => "dismissed".to_string(),
        (_, "Resolved") => "resolved".to_string(),
        (_, "InProgress") => "marked in progress".to_string(),
        (_, "Active") => "reactivated".to_string(),
        (a, t) => format!("{a} → {t}"),
    };
    html! {
        (what)
        @if let Some(rule) = h.actor.strip_prefix("rule:") {
            " by suppression rule " a href={"/console/suppression/" (url_encode(rule))} { (rule) }
        } @else if h.actor != "pgvigil" {
            " by " (h.actor)
        }
        " " (when(now_ms, &h.time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        let now = 1_800_000_000_000;
        let at = |ms: i64| model::event::format_time(now - ms);
        assert_eq!(ago(now, &at(5_000)), "just now");
        assert_eq!(ago(now, &at(180_000)), "3 min ago");
        assert_eq!(ago(now, &at(7_200_000)), "2 h ago");
        assert_eq!(ago(now, &at(3 * 86_400_000)), "3 d ago");
        assert_eq!(ago(now, "not a time"), "not a time");
    }

    #[test]
    fn hostile_names_are_encoded_in_links_and_escaped_in_text() {
        let m = principal("<script>x</script>&a=b").into_string();
        assert!(
            m.contains("principal=%3Cscript%3Ex%3C%2Fscript%3E%26a%3Db"),
            "{m}"
        );
        assert!(m.contains("&lt;script&gt;"), "{m}");
        let m = technique("T1110.001").into_string();
        assert!(
            m.contains("https://attack.mitre.org/techniques/T1110/001/"),
            "{m}"
        );
        assert!(m.contains("Password Guessing"), "{m}");
        let m = technique("<x>").into_string();
        assert!(!m.contains("href"), "{m}");
    }

    /// A row's badge and count, read from evidence of every shape detectors write.
    #[test]
    fn a_rows_badge_and_count_come_from_its_evidence() {
        let mut a = model::sample::alerts("db1", 1_800_000_000_000).remove(0);
        a.display_name = "Suspected brute force attack".into();
        let mut with = |e: model::alert::Evidence| {
            a.evidence = e;
            (succeeded(&a), count(&a))
        };
        assert_eq!(
            with(model::evidence!({"successfulPrincipal": "bob", "failedLogins": 12})),
            (true, Some(12))
        );
        assert_eq!(
            with(model::evidence!({
                "successfulPrincipal": serde_json::Value::Null,
                "sample": serde_json::json!([{"deep": {"attempts": 9}}]),
                "attempts": 3,
            })),
            (false, Some(3))
        );
        assert_eq!(
            with(model::evidence!({"failures": "many", "attempts": 4})),
            (false, Some(4))
        );
        assert_eq!(with(model::evidence!({"rows": 5})), (false, None));
    }
}
