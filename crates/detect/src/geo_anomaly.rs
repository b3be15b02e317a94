//! `PostgreSQL_GeoAnomaly`: a successful login from a country the server has not seen in the
//! look-back period, after its learning period.

use super::access::{judged, listing, Anomaly};
use super::Detector;
use compact_str::CompactString;
use model::alert::{AlertType, Finding, Severity};
use model::event::Event;
use serde::{Deserialize, Serialize};

/// `[detect.geo_anomaly]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoAnomalyConfig {
    pub enabled: bool,
}

impl Default for GeoAnomalyConfig {
    fn default() -> Self {
        GeoAnomalyConfig { enabled: true }
    }
}

pub struct GeoAnomaly {
    cfg: GeoAnomalyConfig,
}

impl GeoAnomaly {
    pub fn new(cfg: GeoAnomalyConfig) -> Self {
        GeoAnomaly { cfg }
    }
}

impl Detector for GeoAnomaly {
    fn id(&self) -> &'static str {
        "geo_anomaly"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled {
            return;
        }
        let Some(en) = judged(ev, cx) else { return };
        let Some(country) = en.country.as_deref() else {
            return;
        };
        let p = cx.profile;
        if p.countries.get(&CompactString::new(country)).is_some() {
            return;
        }
        let seen = if p.countries.is_empty() {
            "no logins with a known location".to_string()
        } else {
            let list = listing(
                p.countries.recent().into_iter().map(|(c, _)| c.to_string()),
                5,
            );
            format!("only {list}")
        };
        let principal = ev.principal.as_deref().unwrap_or("");
        let a = Anomaly {
            alert_type: AlertType::GeoAnomaly,
            display_name: AlertType::GeoAnomaly.title(),
            severity: Severity::Medium,
            techniques: AlertType::GeoAnomaly.techniques(),
            entity: format!("{principal}|{country}"),
            what: format!("the first login from {country}"),
            why: format!(
                "First login from {country}; this server has seen {seen} in {} days.",
                crate::profile::days(p.age(ev.time))
            ),
            remediation: vec![format!(
                "Ask the owner of {principal:?} whether they are in {country}; restrict pg_hba.conf to the networks clients really use."
            )],
        };
        out.push(super::access::finding(ev, cx, a));
    }
}
