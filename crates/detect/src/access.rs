//! What the access-anomaly detectors share: which logins they judge, and how an anomaly
//! finding is put together.

use super::Context;
use crate::profile::days;
use enrich::Enrichment;
use model::alert::{AlertType, Entities, Finding, Severity};
use model::event::{format_time, Event, EventKind};

/// A successful login past the server's learning period, with what is known of its source:
/// the logins the anomaly detectors judge.
pub fn judged<'a>(ev: &'a Event, cx: &Context<'_>) -> Option<&'a Enrichment> {
    if ev.kind != EventKind::LoginSucceeded || cx.profile.learning(ev.time, cx.profile_cfg) {
        return None;
    }
    ev.enrichment.as_deref()
}

/// "DE, NL" — the most recent few of a profile's entities, for explanations.
pub fn listing<I: IntoIterator<Item = String>>(items: I, max: usize) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        return "none".into();
    }
    let mut s = v.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > max {
        s.push_str(&format!(" and {} more", v.len() - max));
    }
    s
}

pub fn entities(ev: &Event, en: Option<&Enrichment>) -> Entities {
    Entities {
        source_ip: Some(ev.source_key().to_string()),
        principal: ev.principal.as_ref().map(|p| p.to_string()),
        database: ev.database.as_ref().map(|p| p.to_string()),
        application: ev.application.as_ref().map(|p| p.to_string()),
        location: en.map(Enrichment::location),
        cloud: en.and_then(Enrichment::cloud),
        fingerprint: ev.fingerprint.as_ref().map(|f| f.to_string()),
    }
}

pub struct Anomaly {
    pub alert_type: AlertType,
    pub display_name: &'static str,
    pub severity: Severity,
    pub techniques: &'static [&'static str],
    pub entity: String,
    pub what: String,
    pub why: String,
    pub remediation: Vec<String>,
}

/// The finding for an anomalous login.
pub fn finding(ev: &Event, cx: &Context<'_>, a: Anomaly) -> Finding {
    let en = ev.enrichment.as_deref();
    let principal = ev.principal.as_deref().unwrap_or("");
    let mut remediation = a.remediation;
    remediation.push(format!(
        "If the login was not expected, change the password of {principal:?}, end its sessions ({}), and review what it did.",
        super::advice::terminate_role(principal)
    ));
    remediation.push("If the change is legitimate (a new office, region or application), no action is needed: the profile learns it.".into());
    Finding {
        alert_type: a.alert_type,
        display_name: a.display_name,
        severity: a.severity,
        techniques: a.techniques,
        entity: a.entity,
        start: ev.time,
        end: ev.time,
        entities: entities(ev, en),
        evidence: model::evidence!({
            "login": model::alert::sample(ev),
            "country": en.and_then(|e| e.country.clone()),
            "asn": en.and_then(|e| e.asn),
            "org": en.and_then(|e| e.org.clone()),
            "cloudProvider": en.and_then(|e| e.cloud_provider.clone()),
            "cloudRegion": en.and_then(|e| e.cloud_region.clone()),
            "profileDays": days(cx.profile.age(ev.time)),
        }),
        description: format!(
            "{} logged in as {principal:?} from {} at {}: {}.",
            ev.source_key(),
            en.and_then(|e| e.country.clone())
                .unwrap_or_else(|| "an unknown country".into()),
            format_time(ev.time),
            a.what
        ),
        anomaly_context: a.why,
        remediation,
    }
}
