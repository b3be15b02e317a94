//! Changing a server's policy: the change goes into the audit trail, and one that turns
//! detection off raises an alert, sent to those the policy notified before.

use super::db::vals;
use super::policies::{fingerprint, load};
use super::{now_utc, Result, Store};
use model::alert::{Alert, AlertType, Entities, Severity};
use model::policy::{Policy, PolicyState, PolicyUpdate};

/// Who changes a policy, and the channels an alert about turning detection off goes to.
pub struct PolicyChange<'a> {
    pub actor: &'a str,
    pub channels: &'a [super::Channel],
    pub admins: &'a [String],
}

impl PolicyChange<'static> {
    /// A change by `actor` with no notification channel (tests, tools).
    pub fn by(actor: &'static str) -> PolicyChange<'static> {
        PolicyChange {
            actor,
            channels: &[],
            admins: &[],
        }
    }
}

/// What `after` turns off that `before` had on: the whole policy, or alert categories and
/// types.
fn turned_off(before: &Policy, after: &Policy) -> Vec<String> {
    if before.state == PolicyState::Disabled {
        return Vec::new();
    }
    if after.state == PolicyState::Disabled {
        return vec!["all detection (state Disabled)".into()];
    }
    after
        .disabled_alerts
        .iter()
        .filter(|d| !before.disabled_alerts.contains(d))
        .filter(|d| !model::policy::AZURE_ONLY_CATEGORIES.contains(&d.as_str()))
        .cloned()
        .collect()
}

/// The alert for a policy change that turns detection off: a step attackers take before
/// they act, and a change easy to forget to undo.
fn detection_off(
    server: &str,
    actor: &str,
    before: &Policy,
    after: &Policy,
    off: &[String],
    now: &str,
) -> Alert {
    let what = off.join(", ");
    Alert {
        id: uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("pgvigil detection off|{server}|{now}").as_bytes(),
        )
        .to_string(),
        alert_type: AlertType::UnsafeAction,
        display_name: "Threat detection turned off for a server".into(),
        severity: Severity::Medium,
        status: "Active".into(),
        intent: "DefenseEvasion".into(),
        techniques: vec!["T1562.001".into()],
        server: server.into(),
        start_time_utc: now.into(),
        end_time_utc: now.into(),
        entities: Entities {
            source_ip: None,
            principal: Some(actor.into()),
            database: None,
            application: None,
            location: None,
            cloud: None,
            fingerprint: None,
        },
        evidence: model::evidence!({
            "actor": actor,
            "turnedOff": off,
            "before": before.properties(),
            "after": after.properties(),
        }),
        description: format!(
            "The security alert policy of {server} was changed by {actor:?}: {what} no longer raised."
        ),
        anomaly_context: "Turning detection off is a step attackers take before they act, and a change that is easy to forget to undo.".into(),
        remediation_steps: vec![
            format!("Confirm with the owner of the token {actor:?} that the change was planned; if not, revoke the token (pgvigil token revoke) and restore the policy."),
            "Review the audit trail (GET /audit) for the other changes made by the same actor.".into(),
        ],
    }
}

impl Store {
    /// Replaces a server's policy. A body without `storageAccountAccessKey` (or with `null`)
    /// keeps the stored key: the key is write-only, so a client cannot send back what it never
    /// saw; `""` removes it.
    ///
    /// pgvigil exports nothing to a storage account, so it keeps only a fingerprint of the key
    /// (that one was set, and whether a later one is the same), never the key.
    ///
    /// The change goes into the audit trail with the policy before and after; one that turns
    /// detection off (the policy disabled, or alerts newly disabled) also raises an alert, sent
    /// to those the policy notified before the change.
    pub fn put_policy(
        &self,
        server: &str,
        u: &PolicyUpdate,
        change: &PolicyChange<'_>,
    ) -> Result<Policy> {
        let props = u.policy.properties().to_string();
        // No key in the body keeps the stored one; a key (or "" for none) replaces it.
        let sent = u.storage_account_access_key.as_deref();
        let key = sent.and_then(fingerprint);
        let stored_key = if sent.is_some() {
            "excluded.storage_key"
        } else {
            "policies.storage_key"
        };
        self.write(|tx| {
            let before = load(tx, server)?;
            let now = now_utc();
            tx.exec(
                &format!(
                    "INSERT INTO policies (server, properties, storage_key, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (server) DO UPDATE SET properties = excluded.properties,
                       storage_key = {stored_key}, updated_at = excluded.updated_at"
                ),
                vals![server, props.as_str(), &key, now.as_str()],
            )?;
            let key_change = match u.storage_account_access_key.as_deref() {
                None => "kept",
                Some("") => "removed",
                Some(_) => "set",
            };
            super::audit::record(
                tx,
                change.actor,
                super::audit::Action::PolicyUpdate,
                server,
                &serde_json::json!({
                    "before": before.properties(),
                    "after": u.policy.properties(),
                    "storageAccountAccessKey": key_change,
                }),
                &now,
            )?;
            let off = turned_off(&before, &u.policy);
            if !off.is_empty() {
                let alert = detection_off(server, change.actor, &before, &u.policy, &off, &now);
                let mut notify = before.clone();
                notify.state = PolicyState::Enabled;
                notify.disabled_alerts.clear();
                let batch = super::Ingest {
                    alerts: &[],
                    simulated: false,
                    channels: change.channels,
                    admins: change.admins,
                    ..Default::default()
                };
                let mut out = super::Ingested::default();
                super::ingest::admit(tx, &alert, &[], &notify, &batch, true, &now, &mut out)?;
            }
            Ok(())
        })?;
        Ok(u.policy.clone())
    }
}
