//! `PostgreSQL_ImpossibleTravel`: the same role logs in from two places too far apart for the
//! time between the logins (faster than an airliner), after the learning period.
//!
//! People travel; services do not. A role whose last login came from a cloud provider's
//! address is a service's, and a login elsewhere is a location or provider anomaly, not a
//! journey. And a role used from two places every day (an office and a VPN, an application in
//! two regions) is not travelling between them: only a login from a country the role has not
//! used in the look-back is the unusual one, and the alert names that login, never the other.

use super::access::{judged, Anomaly};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{format_time, Event};
use serde::{Deserialize, Serialize};

/// `[detect.impossible_travel]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImpossibleTravelConfig {
    pub enabled: bool,
    /// Faster than this between two logins is impossible.
    pub max_speed_kmh: f64,
    /// Closer than this is never reported (geolocation is approximate).
    pub min_distance_km: f64,
    /// Without coordinates (a country-only database), two different countries within this
    /// time count as impossible.
    pub country_change_within: model::duration::Span,
}

impl Default for ImpossibleTravelConfig {
    fn default() -> Self {
        ImpossibleTravelConfig {
            enabled: true,
            max_speed_kmh: 1000.0,
            min_distance_km: 500.0,
            country_change_within: model::duration::Span::mins(60),
        }
    }
}

pub struct ImpossibleTravel {
    cfg: ImpossibleTravelConfig,
}

impl ImpossibleTravel {
    pub fn new(cfg: ImpossibleTravelConfig) -> Self {
        ImpossibleTravel { cfg }
    }
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().atan2((1.0 - a).sqrt())
}

impl Detector for ImpossibleTravel {
    fn id(&self) -> &'static str {
        "impossible_travel"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if !self.cfg.enabled {
            return;
        }
        let Some(en) = judged(ev, cx) else { return };
        let Some(principal) = &ev.principal else {
            return;
        };
        let Some(prev) = cx.profile.last_place.get(principal) else {
            return;
        };
        if prev.cloud {
            return;
        }
        let role_knows = |c: &str| {
            cx.profile
                .principal_countries
                .get(&(principal.clone(), compact_str::CompactString::new(c)))
                .is_some()
        };
        if en.country.as_deref().is_none_or(role_knows) {
            return;
        }
        let from = prev.country.as_deref().unwrap_or("?");
        let to = en.country.as_deref().unwrap_or("?");
        let hours = ((ev.time - prev.time) as f64 / 3_600_000.0).max(1.0 / 3600.0);
        let why = match (prev.latitude, prev.longitude, en.latitude, en.longitude) {
            (Some(la1), Some(lo1), Some(la2), Some(lo2)) => {
                let km = distance_km(la1, lo1, la2, lo2);
                let speed = km / hours;
                if km < self.cfg.min_distance_km || speed <= self.cfg.max_speed_kmh {
                    return;
                }
                format!(
                    "{principal:?} would have travelled {km:.0} km from {from} to {to} in {hours:.1} h ({speed:.0} km/h); one of the two logins is someone else."
                )
            }
            _ => {
                // Country-level data only: a change of country faster than anyone travels.
                let (Some(a), Some(b)) = (&prev.country, &en.country) else {
                    return;
                };
                if a.as_str() == b.as_str()
                    || ev.time - prev.time > self.cfg.country_change_within.ms()
                {
                    return;
                }
                format!(
                    "{principal:?} logged in from {from} and then from {to} {:.0} minutes later; nobody travels that fast, so one of the two logins is someone else.",
                    hours * 60.0
                )
            }
        };
        let a = Anomaly {
            alert_type: AlertType::ImpossibleTravel,
            display_name: AlertType::ImpossibleTravel.title(),
            severity: Severity::Medium,
            techniques: AlertType::ImpossibleTravel.techniques(),
            // The unusual login's: a later login of the role from its usual place is not it.
            entity: format!("{principal}|{}", ev.source_key()),
            what: format!(
                "{principal:?} had logged in from {} ({from}) at {}",
                prev.source,
                format_time(prev.time)
            ),
            why,
            remediation: vec![format!(
                "Ask the owner of {principal:?} which login was theirs; credentials shared between people or leaked look like this."
            )],
        };
        out.push(super::access::finding(ev, cx, a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        // Berlin – São Paulo ≈ 10,000 km
        let d = distance_km(52.52, 13.40, -23.55, -46.63);
        assert!((10_100.0..10_400.0).contains(&d), "{d}");
        assert!(distance_km(1.0, 1.0, 1.0, 1.0) < 1e-9);
    }
}
