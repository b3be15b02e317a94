//! Sample alerts of every type, flagged `isSimulated`: what `POST
//! /servers/{server}/alerts/simulate` stores and notifies, and what tests of the outputs send.
//! Sample sources are documentation addresses (RFC 5737), which never belong to anyone.

use crate::alert::{Alert, AlertType, Cloud, Entities, Location};
use serde_json::Value;

/// Sample alerts of every type for `server`, at wall-clock time `now_ms`.
pub fn alerts(server: &str, now_ms: i64) -> Vec<Alert> {
    let mut nonce = [0u8; 16];
    // Without randomness, the time alone keeps ids apart.
    let _ = getrandom::fill(&mut nonce);
    let time = crate::event::format_time(now_ms);
    let start = crate::event::format_time(now_ms - 5 * 60_000);
    AlertType::ALL
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let ip = format!("203.0.113.{}", 10 + i);
            let (evidence, context) = match t.category() {
                "Brute_Force" => (
                    crate::evidence!({"failedLogins": 120, "distinctPrincipals": 1, "sampleEvents": Vec::<Value>::new()}),
                    "120 failed logins in 5 minutes from one address that has never logged in to this server.",
                ),
                "Harmful_Application" => (
                    crate::evidence!({"events": 40, "tool": "hydra", "sampleEvents": Vec::<Value>::new()}),
                    "The client behaves like an attack tool: database template1, no application name, a bare connection per task.",
                ),
                "Sql_Injection" => (
                    crate::evidence!({"rules": ["time delay (pg_sleep)"], "statements": 12, "sampleStatements": ["SELECT id FROM items WHERE id = ? AND ?=(SELECT ? FROM pg_sleep(?))"], "sampleEvents": Vec::<Value>::new()}),
                    "Applications build these shapes only when user input is pasted into SQL; injection tools send them to find out whether it is.",
                ),
                "Unsafe_Action" => (
                    crate::evidence!({"rules": ["COPY … PROGRAM runs a shell command"], "statements": 1, "sampleStatements": ["COPY (SELECT ?) TO PROGRAM ?"], "sampleEvents": Vec::<Value>::new()}),
                    "These statements run commands on the database server: a step of an attack that has a privileged session.",
                ),
                "Usage_Anomaly" => (
                    crate::evidence!({"rules": ["made superuser"], "statements": 1, "sampleStatements": ["ALTER ROLE app SUPERUSER"], "grantedBy": "postgres", "sampleEvents": Vec::<Value>::new()}),
                    "An ordinary role was given superuser: a lasting way back in for whoever controls it.",
                ),
                "Data_Exfiltration" => (
                    crate::evidence!({"rules": ["read far more rows than usual"], "statements": 3, "rows": 2_500_000, "learnedMaxRows": 20_000, "sampleStatements": ["SELECT * FROM customers"], "sampleEvents": Vec::<Value>::new()}),
                    "The session read 2,500,000 rows; the most this role read in a session while the server was learned is 20,000.",
                ),
                _ => (
                    crate::evidence!({"events": 1, "sampleEvents": Vec::<Value>::new()}),
                    "First login from this place for this server in 60 days.",
                ),
            };
            Alert {
                id: uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    format!("{server}|{}|{time}|{}", t.as_str(), hex::encode(nonce)).as_bytes(),
                )
                .to_string(),
                alert_type: t,
                display_name: t.title().to_string(),
                severity: t.severity(),
                status: "Active".into(),
                intent: t.intent().into(),
                techniques: t.techniques().iter().map(|s| s.to_string()).collect(),
                server: server.to_string(),
                start_time_utc: start.clone(),
                end_time_utc: time.clone(),
                entities: Entities {
                    source_ip: Some(ip),
                    principal: Some("app".into()),
                    database: Some("appdb".into()),
                    application: None,
                    location: Some(Location {
                        country: Some("NL".into()),
                        city: None,
                        asn: Some(64_500),
                        org: Some("Example Hosting".into()),
                        address_class: Some(crate::place::AddressClass::Public),
                    }),
                    cloud: Some(Cloud {
                        provider: matches!(t, AlertType::CloudProviderAnomaly | AlertType::DataCenterAnomaly)
                            .then(|| "AWS".to_string()),
                        region: matches!(t, AlertType::DataCenterAnomaly).then(|| "eu-west-1".to_string()),
                    }),
                    fingerprint: (t == AlertType::HarmfulApplication).then(|| "hydra".into()),
                },
                evidence,
                description: format!(
                    "Sample alert, generated on request to test notifications: {}. No action is needed.",
                    t.title()
                ),
                anomaly_context: context.to_string(),
                remediation_steps: vec![
                    "This is a sample: check that it reached every recipient and system it should.".into(),
                ],
            }
        })
        .collect()
}
