//! The security alert policy of a server, in Azure's `securityAlertPolicies/Default` shape:
//! whether detection is on, which alerts are off, who gets email, how long alerts are kept.
//!
//! Bodies are validated field by field so that a mistake is reported with its JSON path
//! (`properties.emailAddresses[1]`) and nothing is stored.

use crate::alert::AlertType;
use serde::Serialize;
use serde_json::{Map, Value};

/// Policy categories of DESIGN.md's alert catalogue (`disabledAlerts` accepts these).
pub const CATEGORIES: [&str; 7] = [
    "Brute_Force",
    "Harmful_Application",
    "Access_Anomaly",
    "Sql_Injection",
    "Unsafe_Action",
    "Usage_Anomaly",
    "Data_Exfiltration",
];

/// Values Azure documents for `disabledAlerts` that have no alert of their own here: kept and
/// served back, so that an Azure body round-trips, and turning nothing off.
pub const AZURE_ONLY_CATEGORIES: [&str; 1] = ["Sql_Injection_Vulnerability"];

pub const RESOURCE_TYPE: &str = "Microsoft.DBforPostgreSQL/servers/securityAlertPolicies";

/// Entries of `disabledAlerts` and `emailAddresses` accepted, counted as sent.
const MAX_LIST: usize = 100;

/// Longest retention accepted, in days (100 years: "forever" is 0).
const MAX_RETENTION_DAYS: u64 = 36_500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PolicyState {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub state: PolicyState,
    /// Categories and alertType names, as given (normalised to the canonical spelling).
    pub disabled_alerts: Vec<String>,
    pub email_addresses: Vec<String>,
    /// Also mail the configured administrators (`notify.email.admins`).
    pub email_account_admins: bool,
    /// Days alerts are kept; 0 keeps them forever.
    pub retention_days: u32,
    pub storage_endpoint: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            state: PolicyState::Enabled,
            disabled_alerts: Vec::new(),
            email_addresses: Vec::new(),
            email_account_admins: true,
            retention_days: 0,
            storage_endpoint: String::new(),
        }
    }
}

/// A PUT body, validated: the policy and the write-only access key if one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyUpdate {
    pub policy: Policy,
    pub storage_account_access_key: Option<String>,
}

/// What is wrong with a policy body; `field` is a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.into(),
        message: message.into(),
    }
}

impl Policy {
    /// Whether alerts of this type are raised and sent for the server.
    pub fn allows(&self, t: AlertType) -> bool {
        self.state == PolicyState::Enabled
            && !self
                .disabled_alerts
                .iter()
                .any(|d| d == t.as_str() || d == t.category())
    }

    /// The `properties` object as served: the access key is never part of it.
    pub fn properties(&self) -> Value {
        serde_json::json!({
            "state": self.state,
            "disabledAlerts": self.disabled_alerts,
            "emailAddresses": self.email_addresses,
            "emailAccountAdmins": self.email_account_admins,
            "retentionDays": self.retention_days,
            "storageEndpoint": self.storage_endpoint,
        })
    }

    /// The resource as `GET …/securityAlertPolicies/Default` returns it.
    pub fn resource(&self, server: &str) -> Value {
        serde_json::json!({
            "id": format!("/servers/{server}/securityAlertPolicies/Default"),
            "name": "Default",
            "type": RESOURCE_TYPE,
            "properties": self.properties(),
        })
    }

    /// Reads back what [`Policy::properties`] wrote (the store's copy).
    pub fn from_properties(v: &Value) -> Result<Policy, PolicyError> {
        let obj = v
            .as_object()
            .ok_or_else(|| err("properties", "must be an object"))?;
        parse_properties(obj).map(|u| u.policy)
    }

    /// Validates a PUT body `{"properties": {…}}` (`id`, `name`, `type` may be present and
    /// must then match).
    pub fn from_put_body(body: &Value, server: &str) -> Result<PolicyUpdate, PolicyError> {
        let obj = body
            .as_object()
            .ok_or_else(|| err("$", "the body must be a JSON object"))?;
        for (k, v) in obj {
            match k.as_str() {
                "properties" => {}
                "name" => {
                    if !v.is_null()
                        && !v
                            .as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case("Default"))
                    {
                        return Err(err("name", "must be \"Default\""));
                    }
                }
                "type" => {
                    if !v.is_null()
                        && !v
                            .as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(RESOURCE_TYPE))
                    {
                        return Err(err("type", format!("must be \"{RESOURCE_TYPE}\"")));
                    }
                }
                "id" => {
                    if !v.is_null() && !v.as_str().is_some_and(|s| is_policy_id(s, server)) {
                        return Err(err(
                            "id",
                            format!("must be /servers/{server}/securityAlertPolicies/Default, or Azure's /subscriptions/…/resourceGroups/…/providers/Microsoft.DBforPostgreSQL/servers/{server}/securityAlertPolicies/Default"),
                        ));
                    }
                }
                other => return Err(err(other, "unknown field")),
            }
        }
        let props = obj
            .get("properties")
            .ok_or_else(|| err("properties", "required"))?
            .as_object()
            .ok_or_else(|| err("properties", "must be an object"))?;
        if !props.contains_key("state") {
            return Err(err("properties.state", "required (Enabled or Disabled)"));
        }
        parse_properties(props)
    }
}

/// Whether `id` names the policy of `server`: pgvigil's own form or Azure's full resource id,
/// compared without regard to case as Azure compares ids (its own bodies say `…/default`,
/// and its list bodies end at `securityAlertPolicies`).
fn is_policy_id(id: &str, server: &str) -> bool {
    let id = id.to_ascii_lowercase();
    let server = server.to_ascii_lowercase();
    let rest = match id.strip_prefix("/subscriptions/") {
        Some(arm) => {
            let parts: Vec<&str> = arm.splitn(6, '/').collect();
            match parts.as_slice() {
                [sub, "resourcegroups", rg, "providers", "microsoft.dbforpostgresql", rest]
                    if !sub.is_empty() && !rg.is_empty() =>
                {
                    format!("/{rest}")
                }
                _ => return false,
            }
        }
        None => id,
    };
    let base = format!("/servers/{server}/securityalertpolicies");
    rest == base || rest == format!("{base}/default")
}

fn parse_properties(props: &Map<String, Value>) -> Result<PolicyUpdate, PolicyError> {
    let mut p = Policy::default();
    let mut key = None;
    for (k, v) in props {
        let field = format!("properties.{k}");
        match k.as_str() {
            "state" => {
                p.state = match v.as_str() {
                    Some(s) if s.eq_ignore_ascii_case("enabled") => PolicyState::Enabled,
                    Some(s) if s.eq_ignore_ascii_case("disabled") => PolicyState::Disabled,
                    _ => return Err(err(field, "must be \"Enabled\" or \"Disabled\"")),
                }
            }
            "disabledAlerts" => {
                let items = string_list(v, &field, false)?;
                if items.len() > MAX_LIST {
                    return Err(err(field, format!("at most {MAX_LIST} entries")));
                }
                let mut out: Vec<String> = Vec::new();
                for (i, s) in items.into_iter().enumerate() {
                    let canon = canonical_alert_name(&s).ok_or_else(|| {
                        err(
                            format!("{field}[{i}]"),
                            format!(
                                "\"{}\" is neither an alert category ({}, {}) nor an alertType name",
                                crate::event::truncate(&s, 100),
                                CATEGORIES.join(", "),
                                AZURE_ONLY_CATEGORIES.join(", ")
                            ),
                        )
                    })?;
                    if !out.iter().any(|o| o == canon) {
                        out.push(canon.to_string());
                    }
                }
                p.disabled_alerts = out;
            }
            "emailAddresses" => {
                let items = string_list(v, &field, true)?;
                if items.len() > MAX_LIST {
                    return Err(err(field, format!("at most {MAX_LIST} addresses")));
                }
                let mut out: Vec<String> = Vec::new();
                for (i, s) in items.into_iter().enumerate() {
                    if s.parse::<lettre::Address>().is_err() || s.len() > 254 {
                        return Err(err(
                            format!("{field}[{i}]"),
                            format!(
                                "\"{}\" is not an email address",
                                crate::event::truncate(&s, 100)
                            ),
                        ));
                    }
                    if !out.iter().any(|o| o.eq_ignore_ascii_case(&s)) {
                        out.push(s);
                    }
                }
                p.email_addresses = out;
            }
            "emailAccountAdmins" => {
                p.email_account_admins = v
                    .as_bool()
                    .ok_or_else(|| err(field, "must be true or false"))?
            }
            "retentionDays" => {
                let n = v
                    .as_u64()
                    .filter(|n| *n <= MAX_RETENTION_DAYS)
                    .ok_or_else(|| {
                        err(
                            field,
                            format!("must be a whole number of days from 0 (forever) to {MAX_RETENTION_DAYS}"),
                        )
                    })?;
                p.retention_days = n as u32;
            }
            "storageEndpoint" => {
                let s = match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    _ => return Err(err(field, "must be a string")),
                };
                if !s.is_empty() && !is_endpoint(&s) {
                    return Err(err(
                        field,
                        "must be an https:// URL with a host name (https://account.blob.core.windows.net)",
                    ));
                }
                p.storage_endpoint = s;
            }
            "storageAccountAccessKey" => match v {
                Value::Null => {}
                Value::String(s) if s.chars().count() <= 1024 => key = Some(s.clone()),
                _ => return Err(err(field, "must be a string of at most 1024 characters")),
            },
            // Read-only in Azure's shape; accepted and ignored so a GET body can be PUT back.
            "creationTime" => {}
            _ => return Err(err(field, "unknown field")),
        }
    }
    Ok(PolicyUpdate {
        policy: p,
        storage_account_access_key: key,
    })
}

/// `https://host[:port][/path]`, the host a name (letters, digits, `.`, `-`), the path without
/// spaces or control characters: what the OpenAPI document's pattern says, exactly.
fn is_endpoint(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://") else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    s.len() <= 2048
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
        && path.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// A JSON array of strings (`null` for none, but not where `split`); for email addresses also
/// one `a@x;b@y` string (empty for none).
fn string_list(v: &Value, field: &str, split: bool) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::Null if !split => Ok(Vec::new()),
        Value::String(s) if split => {
            if s.trim().is_empty() {
                return Ok(Vec::new());
            }
            let parts: Vec<String> = s.split([';', ',']).map(|p| p.trim().to_string()).collect();
            if parts.iter().any(String::is_empty) {
                return Err(err(field, "an empty address between separators"));
            }
            Ok(parts)
        }
        Value::Array(items) => {
            if items.len() > 1000 {
                return Err(err(field, "too many entries"));
            }
            let mut out = Vec::new();
            for (i, x) in items.iter().enumerate() {
                let s = x
                    .as_str()
                    .ok_or_else(|| err(format!("{field}[{i}]"), "must be a string"))?;
                if split {
                    // Azure's own bodies hold "a@x;b@y" in one element.
                    out.extend(
                        s.split([';', ','])
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    );
                } else {
                    out.push(s.trim().to_string());
                }
            }
            Ok(out)
        }
        _ => Err(err(
            field,
            if split {
                "must be an array of strings or one ';'-separated string"
            } else {
                "must be an array of strings"
            },
        )),
    }
}

/// The canonical spelling of a category or alertType name, matched without regard to case;
/// an alertType also as Defender for Cloud names it (`SQL.PostgreSQL_BruteForce`).
fn canonical_alert_name(s: &str) -> Option<&'static str> {
    let s = AlertType::without_defender_prefix(s);
    CATEGORIES
        .iter()
        .chain(AZURE_ONLY_CATEGORIES.iter())
        .copied()
        .chain(AlertType::ALL.iter().map(|t| t.as_str()))
        .find(|c| c.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_body_round_trips_without_its_key() {
        let u = Policy::from_put_body(
            &json!({"properties": {
                "state": "Enabled",
                "disabledAlerts": ["access_anomaly", "PostgreSQL_Probe"],
                "emailAddresses": "sec@example.com; dba@example.com",
                "emailAccountAdmins": false,
                "retentionDays": 30,
                "storageEndpoint": "https://acct.blob.core.windows.net",
                "storageAccountAccessKey": "s3cret"
            }}),
            "db1",
        )
        .unwrap();
        assert_eq!(u.storage_account_access_key.as_deref(), Some("s3cret"));
        assert_eq!(
            u.policy.disabled_alerts,
            vec!["Access_Anomaly", "PostgreSQL_Probe"]
        );
        assert_eq!(
            u.policy.email_addresses,
            vec!["sec@example.com", "dba@example.com"]
        );
        let served = u.policy.resource("db1");
        assert!(!served.to_string().contains("s3cret"));
        assert_eq!(
            Policy::from_properties(&served["properties"]).unwrap(),
            u.policy
        );
        assert!(!u.policy.allows(AlertType::GeoAnomaly));
        assert!(!u.policy.allows(AlertType::Probe));
        assert!(u.policy.allows(AlertType::BruteForce));
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            (json!({"properties": {}}), "properties.state"),
            (json!({"properties": {"state": "On"}}), "properties.state"),
            (
                json!({"properties": {"state": "Enabled", "emailAddresses": ["a@b.example", "not an email"]}}),
                "properties.emailAddresses[1]",
            ),
            (
                json!({"properties": {"state": "Enabled", "disabledAlerts": ["Sql_Injection", "Nope"]}}),
                "properties.disabledAlerts[1]",
            ),
            (
                json!({"properties": {"state": "Enabled", "retentionDays": -1}}),
                "properties.retentionDays",
            ),
            (
                json!({"properties": {"state": "Enabled", "retentionDays": "30"}}),
                "properties.retentionDays",
            ),
            (
                json!({"properties": {"state": "Enabled", "colour": "red"}}),
                "properties.colour",
            ),
            (
                json!({"properties": {"state": "Enabled", "storageEndpoint": "http://x"}}),
                "properties.storageEndpoint",
            ),
            (
                json!({"properties": {"state": "Enabled"}, "extra": 1}),
                "extra",
            ),
            (json!([1, 2]), "$"),
        ];
        for (body, field) in cases {
            let e = Policy::from_put_body(&body, "db1").unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
        }
    }

    #[test]
    fn a_storage_endpoint_is_an_https_url_with_a_host() {
        for ok in [
            "https://mystorage.blob.core.windows.net",
            "https://acct.blob.core.windows.net:443/audit/",
        ] {
            assert!(is_endpoint(ok), "{ok}");
        }
        for bad in [
            "http://x",
            "https://",
            "https://[::1",
            "https://a b",
            "https://x:123456",
            " https://x",
        ] {
            assert!(!is_endpoint(bad), "{bad}");
        }
    }

    #[test]
    fn a_disabled_policy_allows_nothing() {
        let u =
            Policy::from_put_body(&json!({"properties": {"state": "disabled"}}), "db1").unwrap();
        assert!(AlertType::ALL.iter().all(|t| !u.policy.allows(*t)));
    }
}
