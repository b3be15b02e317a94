//! Alert suppression rules, in the shape of Defender for Cloud's `alertsSuppressionRules`: an
//! operator who has judged a kind of alert benign ahead of time (a vulnerability scanner's
//! range, a monitoring role that logs in with a stale password every minute) has its future
//! alerts stored dismissed and notified to no one, until the rule expires.
//!
//! A rule never hides an escalation: an alert it dismissed that later escalates (a brute force
//! that then succeeds) is opened again and notified, as for an alert a person dismissed.

use crate::alert::{Alert, AlertType};
use ipnet::IpNet;
use serde_json::{json, Value};

/// Rules kept, values in one condition, and the length of a name, reason or comment:
/// bounds on what an API caller can make every ingest read.
pub const MAX_RULES: usize = 500;
const MAX_VALUES: usize = 100;
const MAX_CONDITIONS: usize = 10;
const MAX_TEXT: usize = 1000;

/// The resource type in bodies.
pub const RESOURCE_TYPE: &str = "Microsoft.Security/alertsSuppressionRules";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {why}")]
pub struct RuleError {
    /// Where in the body, as a JSON path (`properties.suppressionAlertsScope.allOf[1].in[0]`).
    pub field: String,
    pub why: String,
}

fn bad(field: impl Into<String>, why: impl Into<String>) -> RuleError {
    RuleError {
        field: field.into(),
        why: why.into(),
    }
}

/// What a condition looks at in an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Server,
    SourceIp,
    Principal,
    Database,
    Application,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Server,
        Field::SourceIp,
        Field::Principal,
        Field::Database,
        Field::Application,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Server => "server",
            Field::SourceIp => "entities.sourceIp",
            Field::Principal => "entities.principal",
            Field::Database => "entities.database",
            Field::Application => "entities.application",
        }
    }

    /// Words for the console.
    pub fn label(self) -> &'static str {
        match self {
            Field::Server => "server",
            Field::SourceIp => "source address",
            Field::Principal => "principal",
            Field::Database => "database",
            Field::Application => "application",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        // Defender's own name for an address entity is accepted too.
        if s == "entities.ip.address" {
            return Some(Field::SourceIp);
        }
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One condition: the alert's field is one of the values (for addresses, inside one of the
/// networks).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Text(Field, Vec<String>),
    Networks(Vec<IpNet>),
}

impl Condition {
    pub fn field(&self) -> Field {
        match self {
            Condition::Text(f, _) => *f,
            Condition::Networks(_) => Field::SourceIp,
        }
    }

    /// The values as written in the body.
    pub fn values(&self) -> Vec<String> {
        match self {
            Condition::Text(_, v) => v.clone(),
            Condition::Networks(n) => n.iter().map(show_net).collect(),
        }
    }

    fn holds(&self, a: &Alert) -> bool {
        let e = &a.entities;
        let text = |f: Field| -> Option<&str> {
            match f {
                Field::Server => Some(a.server.as_str()),
                Field::Principal => e.principal.as_deref(),
                Field::Database => e.database.as_deref(),
                Field::Application => e.application.as_deref(),
                Field::SourceIp => e.source_ip.as_deref(),
            }
        };
        match self {
            // Names are compared exactly: PostgreSQL's role and database names are case
            // sensitive, and a near miss must not dismiss someone else's alert.
            Condition::Text(f, values) => text(*f).is_some_and(|v| values.iter().any(|x| x == v)),
            Condition::Networks(nets) => e
                .source_ip
                .as_deref()
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        }
    }
}

/// A single address is shown as written, not as `/32`.
fn show_net(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// `None` for every type (`*`).
    pub alert_type: Option<AlertType>,
    pub enabled: bool,
    pub reason: String,
    pub comment: String,
    /// RFC 3339 UTC; `None` never expires.
    pub expires: Option<String>,
    /// Every condition must hold.
    pub scope: Vec<Condition>,
    pub last_modified: String,
}

/// A rule's name is a path segment of the API and a word in the console.
pub fn check_name(name: &str) -> Result<(), RuleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "name",
            "1 to 64 letters, digits, '-', '_' or '.', not starting with '.'",
        ))
    }
}

/// The keys of `v` (an object) outside `known` are refused: a misspelt condition must not
/// make a wider rule.
fn only_keys(v: &Value, at: &str, known: &[&str]) -> Result<(), RuleError> {
    let Some(o) = v.as_object() else {
        return Err(bad(at, "must be an object"));
    };
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(
            format!("{at}.{k}"),
            format!("unknown (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn text_of(v: &Value, field: &str, required: bool) -> Result<String, RuleError> {
    match v {
        Value::Null if !required => Ok(String::new()),
        Value::Null => Err(bad(field, "is required")),
        Value::String(s) if s.chars().count() > MAX_TEXT => {
            Err(bad(field, format!("at most {MAX_TEXT} characters")))
        }
        Value::String(s) if required && s.is_empty() => Err(bad(field, "must not be empty")),
        Value::String(s) => Ok(s.clone()),
        _ => Err(bad(field, "must be a string")),
    }
}

fn alert_type_of(s: &str) -> Option<AlertType> {
    let name = s.strip_prefix("SQL.").unwrap_or(s);
    AlertType::ALL.into_iter().find(|t| t.as_str() == name)
}

impl Rule {
    /// A rule from a `PUT` body (`{"properties": {…}}`), named by the path.
    pub fn from_body(name: &str, body: &Value, now: &str) -> Result<Rule, RuleError> {
        check_name(name)?;
        only_keys(body, "body", &["id", "name", "type", "properties"])?;
        for k in ["id", "name"] {
            if !matches!(
                body.get(k),
                None | Some(Value::String(_)) | Some(Value::Null)
            ) {
                return Err(bad(k, "must be a string"));
            }
        }
        if !matches!(body.get("type"), None | Some(Value::Null))
            && body.get("type").and_then(Value::as_str) != Some(RESOURCE_TYPE)
        {
            return Err(bad("type", format!("must be {RESOURCE_TYPE}")));
        }
        let p = body
            .get("properties")
            .ok_or_else(|| bad("properties", "is required"))?;
        only_keys(
            p,
            "properties",
            &[
                "alertType",
                "state",
                "reason",
                "comment",
                "expirationDateUtc",
                "lastModifiedUtc",
                "suppressionAlertsScope",
            ],
        )?;
        let at = |k: &str| p.get(k).unwrap_or(&Value::Null);
        let alert_type = match at("alertType") {
            Value::String(s) if s == "*" => None,
            Value::String(s) => Some(alert_type_of(s).ok_or_else(|| {
                bad(
                    "properties.alertType",
                    format!(
                        "{:?} is not an alert type pgvigil raises (or '*' for all)",
                        crate::event::truncate(s, 100)
                    ),
                )
            })?),
            _ => {
                return Err(bad(
                    "properties.alertType",
                    "an alert type, or '*' for all, is required",
                ))
            }
        };
        let enabled = match p.get("state") {
            None => true,
            Some(Value::String(s)) if s == "Enabled" => true,
            Some(Value::String(s)) if s == "Disabled" => false,
            // What GET says of a rule past its date: PUT back as it came, it stays on.
            Some(Value::String(s)) if s == "Expired" => true,
            _ => {
                return Err(bad(
                    "properties.state",
                    "must be Enabled, Disabled or Expired",
                ))
            }
        };
        let reason = text_of(at("reason"), "properties.reason", true)?;
        let comment = text_of(at("comment"), "properties.comment", false)?;
        if !matches!(p.get("lastModifiedUtc"), None | Some(Value::String(_))) {
            return Err(bad("properties.lastModifiedUtc", "must be a string"));
        }
        let expires = match at("expirationDateUtc") {
            Value::Null => None,
            Value::String(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|t| crate::event::format_time(t.timestamp_millis()))
                    .ok_or_else(|| {
                        bad(
                            "properties.expirationDateUtc",
                            format!(
                                "{:?} is not an RFC 3339 time",
                                crate::event::truncate(s, 100)
                            ),
                        )
                    })?,
            ),
            _ => {
                return Err(bad(
                    "properties.expirationDateUtc",
                    "must be an RFC 3339 time or null",
                ))
            }
        };
        // A rule must say what it is about: every alert of a type everywhere is what the
        // security alert policy turns off, with its own alert and audit entry.
        let scope_at = "properties.suppressionAlertsScope";
        let need = || {
            bad(
                scope_at,
                "at least one condition is required (to stop an alert type altogether, use the security alert policy's disabledAlerts)",
            )
        };
        let s = p.get("suppressionAlertsScope").ok_or_else(need)?;
        only_keys(s, scope_at, &["allOf"])?;
        let all = match s.get("allOf") {
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_CONDITIONS => a,
            Some(Value::Array(a)) if a.is_empty() => return Err(need()),
            _ => {
                return Err(bad(
                    format!("{scope_at}.allOf"),
                    format!("an array of 1 to {MAX_CONDITIONS} conditions is required"),
                ))
            }
        };
        let scope = all
            .iter()
            .enumerate()
            .map(|(i, c)| condition(c, &format!("{scope_at}.allOf[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rule {
            name: name.to_string(),
            alert_type,
            enabled,
            reason,
            comment,
            expires,
            scope,
            last_modified: now.to_string(),
        })
    }

    /// Whether the rule is on at `now` (RFC 3339 UTC, as the store writes times).
    pub fn active(&self, now: &str) -> bool {
        self.enabled && self.expires.as_deref().is_none_or(|e| e > now)
    }

    /// Whether a new alert raised at `now` falls under the rule: the rule is on, and the
    /// alert has its type and meets every condition.
    pub fn suppresses(&self, a: &Alert, now: &str) -> bool {
        self.active(now)
            && self.alert_type.is_none_or(|t| t == a.alert_type)
            && self.scope.iter().all(|c| c.holds(a))
    }

    pub fn state(&self, now: &str) -> &'static str {
        if !self.enabled {
            "Disabled"
        } else if self.active(now) {
            "Enabled"
        } else {
            "Expired"
        }
    }

    /// The stored form: the body's properties, as a `PUT` would send them.
    pub fn properties(&self) -> Value {
        json!({
            "alertType": self.alert_type.map_or("*", |t| t.as_str()),
            "state": if self.enabled { "Enabled" } else { "Disabled" },
            "reason": self.reason,
            "comment": self.comment,
            "expirationDateUtc": self.expires,
            "lastModifiedUtc": self.last_modified,
            "suppressionAlertsScope": {
                "allOf": self.scope.iter().map(|c| json!({
                    "field": c.field().as_str(),
                    "in": c.values(),
                })).collect::<Vec<_>>(),
            },
        })
    }

    /// The API resource, with the state as of `now`.
    pub fn resource(&self, now: &str) -> Value {
        let mut p = self.properties();
        p["state"] = json!(self.state(now));
        json!({
            "id": format!("/alertsSuppressionRules/{}", self.name),
            "name": self.name,
            "type": RESOURCE_TYPE,
            "properties": p,
        })
    }
}

fn condition(c: &Value, at: &str) -> Result<Condition, RuleError> {
    only_keys(c, at, &["field", "in"])?;
    let field = c
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.field"), "is required"))?;
    let f = Field::parse(field).ok_or_else(|| {
        bad(
            format!("{at}.field"),
            format!(
                "{field:?} is not one of {}",
                Field::ALL.map(|f| f.as_str()).join(", ")
            ),
        )
    })?;
    let values = match c.get("in") {
        Some(Value::Array(v)) if !v.is_empty() && v.len() <= MAX_VALUES => v,
        _ => {
            return Err(bad(
                format!("{at}.in"),
                format!("an array of 1 to {MAX_VALUES} values is required"),
            ))
        }
    };
    let mut texts = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let s = match v {
            Value::String(s) if !s.is_empty() && s.chars().count() <= 256 => s.clone(),
            _ => {
                return Err(bad(
                    format!("{at}.in[{i}]"),
                    "must be a string of 1 to 256 characters",
                ))
            }
        };
        texts.push(s);
    }
    if f != Field::SourceIp {
        return Ok(Condition::Text(f, texts));
    }
    let nets = texts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                // An address with a zone or an IPv4 tail is not written in rules.
                .ok()
                .filter(|_| {
                    let zone = s.contains('%');
                    let v4_tail = s.contains(':') && s.contains('.');
                    !zone && !v4_tail
                })
                .map(|n| n.trunc())
                .ok_or(())
                .map_err(|_| {
                    bad(
                        format!("{at}.in[{i}]"),
                        format!("{s:?} is not an IP address or network (10.1.2.3, 10.0.0.0/8)"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Condition::Networks(nets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(ty: AlertType, server: &str, ip: &str, principal: &str) -> Alert {
        Alert {
            id: "a1".into(),
            alert_type: ty,
            display_name: ty.title().into(),
            severity: ty.severity(),
            status: "Active".into(),
            intent: ty.intent().into(),
            techniques: Vec::new(),
            server: server.into(),
            start_time_utc: "2026-11-01T00:00:00.000Z".into(),
            end_time_utc: "2026-11-01T00:00:00.000Z".into(),
            entities: crate::alert::Entities {
                source_ip: Some(ip.into()),
                principal: Some(principal.into()),
                ..Default::default()
            },
            evidence: crate::evidence!({}),
            description: String::new(),
            anomaly_context: String::new(),
            remediation_steps: Vec::new(),
        }
    }

    /// A time before any expiry in these tests.
    const NOW: &str = "2026-01-01T00:00:00.000Z";

    fn rule(props: Value) -> Result<Rule, RuleError> {
        Rule::from_body(
            "scanner",
            &json!({ "properties": props }),
            "2026-01-01T00:00:00.000Z",
        )
    }

    #[test]
    fn a_rule_matches_its_type_and_every_condition() {
        let r = rule(json!({
            "alertType": "PostgreSQL_BruteForce",
            "reason": "the weekly vulnerability scan",
            "suppressionAlertsScope": {"allOf": [
                {"field": "server", "in": ["db1"]},
                {"field": "entities.sourceIp", "in": ["10.8.0.0/16", "192.0.2.7"]},
            ]},
        }))
        .unwrap();
        assert!(r.suppresses(&alert(AlertType::BruteForce, "db1", "10.8.3.4", "app"), NOW));
        assert!(r.suppresses(
            &alert(AlertType::BruteForce, "db1", "192.0.2.7", "app"),
            NOW
        ));
        assert!(!r.suppresses(&alert(AlertType::BruteForce, "db1", "10.9.3.4", "app"), NOW));
        assert!(!r.suppresses(&alert(AlertType::BruteForce, "db2", "10.8.3.4", "app"), NOW));
        assert!(!r.suppresses(
            &alert(AlertType::PasswordSpray, "db1", "10.8.3.4", "app"),
            NOW
        ));
        // As written, a single address without /32.
        assert_eq!(
            r.properties()["suppressionAlertsScope"]["allOf"][1]["in"],
            json!(["10.8.0.0/16", "192.0.2.7"])
        );
    }

    #[test]
    fn names_are_compared_exactly() {
        let r = rule(json!({
            "alertType": "*",
            "reason": "monitoring",
            "suppressionAlertsScope": {"allOf": [{"field": "entities.principal", "in": ["nagios"]}]},
        }))
        .unwrap();
        assert!(r.suppresses(
            &alert(AlertType::GeoAnomaly, "db1", "10.0.0.1", "nagios"),
            NOW
        ));
        assert!(!r.suppresses(
            &alert(AlertType::GeoAnomaly, "db1", "10.0.0.1", "Nagios"),
            NOW
        ));
        assert!(!r.suppresses(
            &alert(AlertType::GeoAnomaly, "db1", "10.0.0.1", "nagios2"),
            NOW
        ));
    }

    #[test]
    fn expiry_and_state() {
        let mut r = rule(json!({
            "alertType": "PostgreSQL_Probe",
            "reason": "pentest",
            "expirationDateUtc": "2026-03-01T12:00:00+01:00",
            "suppressionAlertsScope": {"allOf": [{"field": "server", "in": ["db1"]}]},
        }))
        .unwrap();
        assert_eq!(r.expires.as_deref(), Some("2026-03-01T11:00:00.000Z"));
        assert_eq!(r.state("2026-02-01T00:00:00.000Z"), "Enabled");
        assert_eq!(r.state("2026-03-01T11:00:00.000Z"), "Expired");
        assert!(!r.active("2026-04-01T00:00:00.000Z"));
        r.enabled = false;
        assert_eq!(r.state("2026-02-01T00:00:00.000Z"), "Disabled");
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases = [
            (json!({"reason": "x"}), "properties.alertType"),
            (
                json!({"alertType": "PostgreSQL_Nope", "reason": "x"}),
                "properties.alertType",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe"}),
                "properties.reason",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x"}),
                "properties.suppressionAlertsScope",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x",
                       "suppressionAlertsScope": {"allOf": []}}),
                "properties.suppressionAlertsScope",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x", "suppresionAlertsScope": {}}),
                "properties.suppresionAlertsScope",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x",
                       "suppressionAlertsScope": {"allOf": [{"field": "server", "in": ["a"], "not": true}]}}),
                "properties.suppressionAlertsScope.allOf[0].not",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x", "state": "On",
                       "suppressionAlertsScope": {"allOf": [{"field": "server", "in": ["a"]}]}}),
                "properties.state",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x", "expirationDateUtc": "soon",
                       "suppressionAlertsScope": {"allOf": [{"field": "server", "in": ["a"]}]}}),
                "properties.expirationDateUtc",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x",
                       "suppressionAlertsScope": {"allOf": [{"field": "entities.sourceIp", "in": ["10.0.0.0/33"]}]}}),
                "properties.suppressionAlertsScope.allOf[0].in[0]",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x",
                       "suppressionAlertsScope": {"allOf": [{"field": "entities.host", "in": ["a"]}]}}),
                "properties.suppressionAlertsScope.allOf[0].field",
            ),
            (
                json!({"alertType": "PostgreSQL_Probe", "reason": "x",
                       "suppressionAlertsScope": {"allOf": [{"field": "server", "in": []}]}}),
                "properties.suppressionAlertsScope.allOf[0].in",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(rule(body.clone()).unwrap_err().field, field, "{body}");
        }
        assert_eq!(
            Rule::from_body("a/b", &json!({}), "").unwrap_err().field,
            "name"
        );
    }

    #[test]
    fn a_body_read_back_is_the_rule() {
        let r = rule(json!({
            "alertType": "SQL.PostgreSQL_BruteForce",
            "reason": "scanner",
            "comment": "ticket 42",
            "state": "Disabled",
            "suppressionAlertsScope": {"allOf": [{"field": "entities.ip.address", "in": ["2001:db8::/32"]}]},
        }))
        .unwrap();
        let back = Rule::from_body(
            "scanner",
            &r.resource("2026-01-01T00:00:00.000Z"),
            "2026-01-01T00:00:00.000Z",
        )
        .unwrap();
        assert_eq!(back, r);
    }
}
