//! `PostgreSQL_CloudProviderAnomaly` (a cloud provider the server has not seen) and
//! `PostgreSQL_DataCenterAnomaly` (a known provider, but a region it has not seen): successful
//! logins after the learning period. One file: the provider decides which of the two it is.

use super::access::{judged, listing, Anomaly};
use super::Detector;
use compact_str::CompactString;
use model::alert::{AlertType, Finding, Severity};
use model::event::Event;
use serde::{Deserialize, Serialize};

/// `[detect.cloud_anomaly]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudAnomalyConfig {
    pub enabled: bool,
}

impl Default for CloudAnomalyConfig {
    fn default() -> Self {
        CloudAnomalyConfig { enabled: true }
    }
}

pub struct CloudAnomaly {
    cfg: CloudAnomalyConfig,
}

impl CloudAnomaly {
    pub fn new(cfg: CloudAnomalyConfig) -> Self {
        CloudAnomaly { cfg }
    }
}

impl Detector for CloudAnomaly {
    fn id(&self) -> &'static str {
        "cloud_anomaly"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled {
            return;
        }
        let Some(en) = judged(ev, cx) else { return };
        let Some(provider) = en.cloud_provider.as_deref() else {
            return;
        };
        let region = en.cloud_region.as_deref().unwrap_or("");
        let p = cx.profile;
        let age = crate::profile::days(p.age(ev.time));
        let key = CompactString::new(provider);
        let a = if p.cloud_providers.get(&key).is_none() {
            let seen = listing(
                p.cloud_providers
                    .recent()
                    .into_iter()
                    .map(|(c, _)| c.to_string()),
                5,
            );
            Anomaly {
                alert_type: AlertType::CloudProviderAnomaly,
                display_name: AlertType::CloudProviderAnomaly.title(),
                severity: Severity::Medium,
                techniques: AlertType::CloudProviderAnomaly.techniques(),
                entity: provider.to_string(),
                what: format!("the first login from {provider}"),
                why: format!("First login from {provider}; in {age} days this server has seen logins from {seen} cloud providers."),
                remediation: vec![format!(
                    "Check whether anything of yours runs in {provider}; attackers rent cloud machines by the hour."
                )],
            }
        } else if p
            .cloud_regions
            .get(&(key, CompactString::new(region)))
            .is_none()
        {
            let seen = listing(
                p.cloud_regions
                    .recent()
                    .into_iter()
                    .filter(|((pv, _), _)| pv == provider)
                    .map(|((_, r), _)| r.to_string()),
                5,
            );
            Anomaly {
                alert_type: AlertType::DataCenterAnomaly,
                display_name: AlertType::DataCenterAnomaly.title(),
                severity: Severity::Low,
                techniques: AlertType::DataCenterAnomaly.techniques(),
                entity: format!("{provider}/{region}"),
                what: format!("the first login from {provider} {region}"),
                why: format!("First login from {provider} region {region}; this server's clients in {provider} are in {seen}."),
                remediation: vec![format!(
                    "Check whether a deployment moved to {provider} {region}."
                )],
            }
        } else {
            return;
        };
        out.push(super::access::finding(ev, cx, a));
    }
}
