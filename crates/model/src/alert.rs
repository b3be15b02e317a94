//! The alert catalogue and the alert record (DESIGN.md: field names camelCase, times RFC 3339
//! UTC, unknown values `null`).

use crate::event::{format_time, EventTime};
pub use crate::place::{Cloud, Location};
use serde::{Deserialize, Serialize};

/// Alert families; the string form follows Azure's `alertType` so existing tooling maps 1:1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertType {
    #[serde(rename = "PostgreSQL_BruteForce")]
    BruteForce,
    #[serde(rename = "PostgreSQL_PasswordSpray")]
    PasswordSpray,
    #[serde(rename = "PostgreSQL_DistributedBruteForce")]
    DistributedBruteForce,
    #[serde(rename = "PostgreSQL_HarmfulApplication")]
    HarmfulApplication,
    #[serde(rename = "PostgreSQL_Probe")]
    Probe,
    #[serde(rename = "PostgreSQL_GeoAnomaly")]
    GeoAnomaly,
    #[serde(rename = "PostgreSQL_DataCenterAnomaly")]
    DataCenterAnomaly,
    #[serde(rename = "PostgreSQL_CloudProviderAnomaly")]
    CloudProviderAnomaly,
    #[serde(rename = "PostgreSQL_PrincipalAnomaly")]
    PrincipalAnomaly,
    #[serde(rename = "PostgreSQL_DomainAnomaly")]
    DomainAnomaly,
    #[serde(rename = "PostgreSQL_SuspiciousIpAnomaly")]
    SuspiciousIpAnomaly,
    #[serde(rename = "PostgreSQL_ImpossibleTravel")]
    ImpossibleTravel,
    #[serde(rename = "PostgreSQL_SqlInjection")]
    SqlInjection,
    #[serde(rename = "PostgreSQL_UnsafeAction")]
    UnsafeAction,
    #[serde(rename = "PostgreSQL_PrivilegeEscalation")]
    PrivilegeEscalation,
    #[serde(rename = "PostgreSQL_DataExfiltration")]
    DataExfiltration,
}

impl AlertType {
    /// An alertType name without Defender for Cloud's `SQL.` prefix
    /// (`SQL.PostgreSQL_BruteForce` is `PostgreSQL_BruteForce`).
    pub fn without_defender_prefix(name: &str) -> &str {
        match name.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("SQL.") => &name[4..],
            _ => name,
        }
    }

    pub const ALL: [AlertType; 16] = [
        AlertType::BruteForce,
        AlertType::PasswordSpray,
        AlertType::DistributedBruteForce,
        AlertType::HarmfulApplication,
        AlertType::Probe,
        AlertType::GeoAnomaly,
        AlertType::DataCenterAnomaly,
        AlertType::CloudProviderAnomaly,
        AlertType::PrincipalAnomaly,
        AlertType::DomainAnomaly,
        AlertType::SuspiciousIpAnomaly,
        AlertType::ImpossibleTravel,
        AlertType::SqlInjection,
        AlertType::UnsafeAction,
        AlertType::PrivilegeEscalation,
        AlertType::DataExfiltration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::BruteForce => "PostgreSQL_BruteForce",
            AlertType::PasswordSpray => "PostgreSQL_PasswordSpray",
            AlertType::DistributedBruteForce => "PostgreSQL_DistributedBruteForce",
            AlertType::HarmfulApplication => "PostgreSQL_HarmfulApplication",
            AlertType::Probe => "PostgreSQL_Probe",
            AlertType::GeoAnomaly => "PostgreSQL_GeoAnomaly",
            AlertType::DataCenterAnomaly => "PostgreSQL_DataCenterAnomaly",
            AlertType::CloudProviderAnomaly => "PostgreSQL_CloudProviderAnomaly",
            AlertType::PrincipalAnomaly => "PostgreSQL_PrincipalAnomaly",
            AlertType::DomainAnomaly => "PostgreSQL_DomainAnomaly",
            AlertType::SuspiciousIpAnomaly => "PostgreSQL_SuspiciousIpAnomaly",
            AlertType::ImpossibleTravel => "PostgreSQL_ImpossibleTravel",
            AlertType::SqlInjection => "PostgreSQL_SqlInjection",
            AlertType::UnsafeAction => "PostgreSQL_UnsafeAction",
            AlertType::PrivilegeEscalation => "PostgreSQL_PrivilegeEscalation",
            AlertType::DataExfiltration => "PostgreSQL_DataExfiltration",
        }
    }

    /// The security alert policy category (`disabledAlerts`).
    pub fn category(self) -> &'static str {
        match self {
            AlertType::BruteForce | AlertType::PasswordSpray | AlertType::DistributedBruteForce => {
                "Brute_Force"
            }
            AlertType::HarmfulApplication | AlertType::Probe => "Harmful_Application",
            AlertType::SqlInjection => "Sql_Injection",
            AlertType::UnsafeAction => "Unsafe_Action",
            AlertType::PrivilegeEscalation => "Usage_Anomaly",
            AlertType::DataExfiltration => "Data_Exfiltration",
            _ => "Access_Anomaly",
        }
    }

    /// The catalogue's display name (brute force has two more variants).
    pub const fn title(self) -> &'static str {
        match self {
            AlertType::BruteForce => "Suspected brute force attack",
            AlertType::PasswordSpray => "Password spray: one source, many roles",
            AlertType::DistributedBruteForce => "Many sources against one role",
            AlertType::HarmfulApplication => "Attempted logon by a potentially harmful application",
            AlertType::Probe => "Connections that never log in (port scan, version probe)",
            AlertType::GeoAnomaly => "Log on from an unusual location",
            AlertType::DataCenterAnomaly => "Log on from an unusual cloud data center",
            AlertType::CloudProviderAnomaly => "Logon from an unusual cloud provider",
            AlertType::PrincipalAnomaly => "Login from a principal not seen in 60 days",
            AlertType::DomainAnomaly => "Login from a domain not seen in 60 days",
            AlertType::SuspiciousIpAnomaly => "Login from a suspicious IP",
            AlertType::ImpossibleTravel => {
                "Same principal from places too far apart for the time between"
            }
            AlertType::SqlInjection => "Potential SQL injection",
            AlertType::UnsafeAction => "Potentially unsafe action",
            AlertType::PrivilegeEscalation => "Potential privilege escalation",
            AlertType::DataExfiltration => "Potential data exfiltration",
        }
    }

    /// The catalogue's default severity.
    pub fn severity(self) -> Severity {
        match self {
            AlertType::HarmfulApplication | AlertType::SqlInjection | AlertType::UnsafeAction => {
                Severity::High
            }
            AlertType::Probe | AlertType::DataCenterAnomaly | AlertType::PrincipalAnomaly => {
                Severity::Low
            }
            _ => Severity::Medium,
        }
    }

    /// MITRE ATT&CK techniques of the catalogue.
    pub fn techniques(self) -> &'static [&'static str] {
        match self {
            AlertType::BruteForce => &["T1110.001"],
            AlertType::PasswordSpray => &["T1110.003"],
            AlertType::DistributedBruteForce => &["T1110"],
            AlertType::HarmfulApplication => &["T1595", "T1110"],
            AlertType::Probe => &["T1046"],
            AlertType::DataCenterAnomaly | AlertType::CloudProviderAnomaly => &["T1078.004"],
            AlertType::SuspiciousIpAnomaly => &["T1090.003"],
            AlertType::GeoAnomaly
            | AlertType::PrincipalAnomaly
            | AlertType::DomainAnomaly
            | AlertType::ImpossibleTravel => &["T1078"],
            AlertType::SqlInjection => &["T1190"],
            AlertType::UnsafeAction => &["T1059"],
            AlertType::PrivilegeEscalation => &["T1098"],
            AlertType::DataExfiltration => &["T1048"],
        }
    }

    /// MITRE ATT&CK tactic, as Azure's `intent`.
    pub fn intent(self) -> &'static str {
        match self {
            AlertType::BruteForce | AlertType::PasswordSpray | AlertType::DistributedBruteForce => {
                "CredentialAccess"
            }
            AlertType::HarmfulApplication => "PreAttack",
            AlertType::Probe => "Probing",
            AlertType::UnsafeAction => "Execution",
            AlertType::PrivilegeEscalation => "PrivilegeEscalation",
            AlertType::DataExfiltration => "Exfiltration",
            _ => "InitialAccess",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entities {
    pub source_ip: Option<String>,
    pub principal: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub location: Option<Location>,
    pub cloud: Option<Cloud>,
    /// The client family the proxy recognised (`hydra`, `pgjdbc`, …); from logs alone, null.
    pub fingerprint: Option<String>,
}

/// The alert record, as printed by `--json` and served by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub id: String,
    pub alert_type: AlertType,
    pub display_name: String,
    pub severity: Severity,
    pub status: String,
    pub intent: String,
    pub techniques: Vec<String>,
    pub server: String,
    pub start_time_utc: String,
    pub end_time_utc: String,
    pub entities: Entities,
    pub evidence: Evidence,
    pub description: String,
    pub anomaly_context: String,
    pub remediation_steps: Vec<String>,
}

/// What a detector reports; the detectors' alert book (`detect::dedup::AlertBook`) folds findings
/// into alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub alert_type: AlertType,
    pub display_name: &'static str,
    pub severity: Severity,
    pub techniques: &'static [&'static str],
    /// What makes two findings the same alert, within a type and server (a source address,
    /// a role).
    pub entity: String,
    pub start: EventTime,
    pub end: EventTime,
    pub entities: Entities,
    pub evidence: Evidence,
    pub description: String,
    pub anomaly_context: String,
    pub remediation: Vec<String>,
}

/// An alert's evidence: a JSON object, kept serialised. Alerts are written far more often
/// than their evidence is read, and building it as a `serde_json::Value` tree was a large part
/// of the cost of an alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evidence(Box<serde_json::value::RawValue>);

impl PartialEq for Evidence {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Evidence {
    /// The evidence as a value, to read it.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The evidence with one more field (or that field replaced). Only for additions made
    /// after a detector wrote the evidence, which are rare: it re-serialises the whole.
    pub fn with(&self, key: &str, value: serde_json::Value) -> Evidence {
        let mut v = self.value();
        if let Some(o) = v.as_object_mut() {
            o.insert(key.to_string(), value);
        }
        serde_json::value::to_raw_value(&v)
            .map(Evidence)
            .unwrap_or_else(|_| self.clone())
    }
}

/// Writes an evidence object field by field, straight to JSON text.
pub struct EvidenceWriter(String);

impl Default for EvidenceWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl EvidenceWriter {
    pub fn new() -> Self {
        EvidenceWriter(String::from("{"))
    }

    pub fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        // Keys are literals of ours and values plain data: neither can fail to serialise.
        if let Ok(k) = serde_json::to_string(key) {
            self.0.push_str(&k);
        }
        self.0.push(':');
        match serde_json::to_string(value) {
            Ok(v) => self.0.push_str(&v),
            Err(_) => self.0.push_str("null"),
        }
    }

    pub fn finish(mut self) -> Evidence {
        self.0.push('}');
        let raw = serde_json::value::RawValue::from_string(self.0).unwrap_or_else(|_| {
            serde_json::value::RawValue::from_string("{}".into()).expect("valid JSON")
        });
        Evidence(raw)
    }
}

/// `evidence!({"key": value, …})`: an [`Evidence`] object, written directly as JSON.
#[macro_export]
macro_rules! evidence {
    ({ $($k:literal : $v:expr),* $(,)? }) => {{
        #[allow(unused_mut)]
        let mut w = $crate::alert::EvidenceWriter::new();
        $( w.field($k, &$v); )*
        w.finish()
    }};
}

/// A sample event for `evidence.sampleEvents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleEvent {
    pub time: String,
    pub kind: String,
    pub source_ip: Option<String>,
    pub source_port: Option<u16>,
    pub principal: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
    pub sqlstate: Option<String>,
    pub message: Option<String>,
    /// The client family and its authentication timing, when the proxy saw the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth_us: Option<u32>,
}

pub fn sample(ev: &crate::event::Event) -> SampleEvent {
    use crate::event::EventKind;
    let kind = match &ev.kind {
        EventKind::LoginFailed { reason } => format!("LoginFailed({reason:?})"),
        EventKind::ProtocolError { what } => format!("ProtocolError({what:?})"),
        k => format!("{k:?}"),
    };
    let s = |v: &Option<compact_str::CompactString>| v.as_ref().map(|x| x.to_string());
    SampleEvent {
        time: format_time(ev.time),
        kind,
        source_ip: Some(ev.source_key().to_string()),
        source_port: ev.client_port,
        principal: s(&ev.principal),
        database: s(&ev.database),
        application: s(&ev.application),
        sqlstate: s(&ev.sqlstate),
        message: ev.message.clone(),
        fingerprint: s(&ev.fingerprint),
        client_auth_us: ev.client_auth_us,
    }
}

/// Sample events as evidence.
pub fn samples(evs: &[crate::event::Event]) -> Vec<SampleEvent> {
    evs.iter().map(sample).collect()
}

/// The client fingerprint of an incident's sample events, the latest known.
pub fn fingerprint_of(evs: &[crate::event::Event]) -> Option<String> {
    evs.iter()
        .rev()
        .find_map(|e| e.fingerprint.as_ref().map(|f| f.to_string()))
}
