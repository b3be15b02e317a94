//! Cross-server correlation, done where every agent's alerts meet: one source address
//! attacking logins on several servers raises one fleet-wide brute-force alert that lists
//! them. The alert belongs to the pseudo-server `fleet`, whose policy is managed like any
//! server's.

use super::db::{vals, Db};
use super::Result;
use model::alert::{Alert, AlertType, Entities, Severity};
use serde_json::Value;

/// Server name of fleet-wide alerts.
pub const FLEET: &str = "fleet";

/// How far apart the per-server alerts may be and still be one campaign.
const WINDOW_MS: i64 = 3_600_000;

const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x7d2b_40f1_9c3a_4e58_8b16_5f0e_2a9c_c4d3);

/// The advisory lock of a source address: the same number in every agent.
pub(super) fn lock_key(ip: &str) -> i64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("pgvigil-fleet|{ip}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    i64::from_le_bytes(b)
}

fn ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0)
}

fn correlated(t: AlertType) -> bool {
    matches!(t, AlertType::BruteForce | AlertType::PasswordSpray)
}

/// How long a noted source may wait for its agent to settle it before any agent does: the
/// agent stopped between its batch's commit and the fleet alert's.
pub(super) const ORPHANED_MS: i64 = 10_000;

/// Notes, in `a`'s batch, that the fleet alert of `a`'s source is to be worked out once the
/// batch has committed. Returns the source.
pub(super) fn note(tx: &mut dyn Db, a: &Alert, now: &str) -> Result<Option<String>> {
    if a.server == FLEET || !correlated(a.alert_type) {
        return Ok(None);
    }
    let Some(ip) = a.entities.source_ip.as_deref() else {
        return Ok(None);
    };
    tx.exec(
        "INSERT INTO fleet_pending (source, xid, alert_id, end_time, at)
         VALUES ($1, txid_current(), $2, $3, $4) ON CONFLICT DO NOTHING",
        vals![ip, a.id.as_str(), a.end_time_utc.as_str(), now],
    )?;
    Ok(Some(ip.to_string()))
}

/// The fleet alert `a` (a per-server brute-force alert just stored) contributes to, as it
/// now stands, or `None` while only one server sees its source.
pub(super) fn correlate(tx: &mut dyn Db, a: &Alert) -> Result<Option<Alert>> {
    if a.server == FLEET || !correlated(a.alert_type) {
        return Ok(None);
    }
    let Some(ip) = a.entities.source_ip.as_deref() else {
        return Ok(None);
    };
    // The campaign around this alert, an hour either side (re-reading old alerts, whose later
    // ones are stored too, must not gather weeks of them).
    let since = model::event::format_time(ms(&a.start_time_utc) - WINDOW_MS);
    let until = model::event::format_time(ms(&a.end_time_utc) + WINDOW_MS);
    let rows = tx.query(
        "SELECT server, id, record FROM alerts WHERE coalesce(source_ip, '') = $1 AND server <> $2
         AND alert_type IN ('PostgreSQL_BruteForce', 'PostgreSQL_PasswordSpray')
         AND is_simulated = 0 AND end_time >= $3 AND start_time <= $4 ORDER BY start_time, id",
        vals![ip, FLEET, since.as_str(), until.as_str()],
    )?;
    let mut members: Vec<Alert> = Vec::new();
    for r in rows {
        if let Ok(m) = serde_json::from_str::<Alert>(&r.text(2)?) {
            members.push(m);
        }
    }
    let mut servers: Vec<String> = members.iter().map(|m| m.server.clone()).collect();
    servers.sort();
    servers.dedup();
    if servers.len() < 2 {
        return Ok(None);
    }
    // An open fleet alert for this source keeps its id; otherwise a new one is named after
    // where the campaign started.
    let start = members
        .iter()
        .map(|m| m.start_time_utc.as_str())
        .min()
        .unwrap_or(&a.start_time_utc)
        .to_string();
    let end = members
        .iter()
        .map(|m| m.end_time_utc.as_str())
        .max()
        .unwrap_or(&a.end_time_utc)
        .to_string();
    let existing = tx.query_opt(
        "SELECT id, start_time FROM alerts WHERE server = $1 AND coalesce(source_ip, '') = $2 AND end_time >= $3
         ORDER BY end_time DESC LIMIT 1",
        vals![FLEET, ip, since.as_str()],
    )?;
    let (id, start) = match existing {
        Some(r) => {
            let s = r.text(1)?;
            (r.text(0)?, if s < start { s } else { start })
        }
        None => (
            uuid::Uuid::new_v5(&NAMESPACE, format!("{ip}|{start}").as_bytes()).to_string(),
            start,
        ),
    };
    let severity = members
        .iter()
        .map(|m| m.severity)
        .max()
        .unwrap_or(Severity::Medium);
    let succeeded: Vec<&str> = members
        .iter()
        .filter(|m| m.severity == Severity::High)
        .map(|m| m.server.as_str())
        .collect();
    let failed: u64 = members
        .iter()
        .filter_map(|m| {
            m.evidence
                .value()
                .get("failedLogins")
                .and_then(Value::as_u64)
        })
        .sum();
    let mut techniques: Vec<String> = vec!["T1110".into()];
    for m in &members {
        for t in &m.techniques {
            if !techniques.contains(t) {
                techniques.push(t.clone());
            }
        }
    }
    let located = members.iter().find(|m| m.entities.location.is_some());
    let display_name = if succeeded.is_empty() {
        "Suspected brute force attack on several servers"
    } else {
        "Suspected successful brute force attack on several servers"
    };
    let list = servers.join(", ");
    let mut remediation = vec![
        format!("Block {ip} at the network edge in front of every database server, not only one."),
        format!("On each of {list}, look for successful logins from {ip} and for roles whose passwords may be known."),
    ];
    if !succeeded.is_empty() {
        remediation.insert(
            0,
            format!(
                "Logins from {ip} succeeded on {}: change the passwords of the roles it used there now, and review their sessions.",
                succeeded.join(", ")
            ),
        );
    }
    Ok(Some(Alert {
        id,
        alert_type: AlertType::BruteForce,
        display_name: display_name.into(),
        severity,
        status: "Active".into(),
        intent: AlertType::BruteForce.intent().into(),
        techniques,
        server: FLEET.into(),
        start_time_utc: start,
        end_time_utc: end,
        entities: Entities {
            source_ip: Some(ip.to_string()),
            principal: None,
            database: None,
            application: None,
            location: located.and_then(|m| m.entities.location.clone()),
            cloud: located.and_then(|m| m.entities.cloud.clone()),
            fingerprint: members.iter().find_map(|m| m.entities.fingerprint.clone()),
        },
        evidence: model::evidence!({
            "servers": servers,
            "alerts": members.iter().map(|m| serde_json::json!({"server": m.server, "id": m.id, "displayName": m.display_name})).collect::<Vec<_>>(),
            "failedLogins": failed,
            "successOn": succeeded,
        }),
        description: format!(
            "{ip} attacked logins on {} servers ({list}): one campaign against the fleet, not a mistyped password here and there.",
            servers.len()
        ),
        anomaly_context: format!(
            "The same source failed logins on {} monitored servers within an hour.",
            servers.len()
        ),
        remediation_steps: remediation,
    }))
}
