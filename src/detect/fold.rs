//! One login, one alert: when several access-anomaly detectors flag the same login (a new
//! laptop in a new country on a new provider…), their findings are folded into the one of
//! the highest priority, which lists the others in its evidence.

use crate::alert::{AlertType, Finding};

/// Most telling first.
const PRIORITY: [AlertType; 7] = [
    AlertType::SuspiciousIpAnomaly,
    AlertType::ImpossibleTravel,
    AlertType::CloudProviderAnomaly,
    AlertType::GeoAnomaly,
    AlertType::DomainAnomaly,
    AlertType::DataCenterAnomaly,
    AlertType::PrincipalAnomaly,
];

fn rank(t: AlertType) -> Option<usize> {
    PRIORITY.iter().position(|p| *p == t)
}

/// At most `per_hour` access-anomaly findings per server per hour of event time: a burst of
/// legitimate change (a new office going live) must not bury the operator. What is held back
/// is counted.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    recent: std::collections::VecDeque<crate::event::EventTime>,
    pub suppressed: u64,
}

impl RateLimit {
    pub fn apply(&mut self, findings: &mut Vec<Finding>, from: usize, per_hour: u32) {
        let mut i = from;
        while i < findings.len() {
            if rank(findings[i].alert_type).is_none() {
                i += 1;
                continue;
            }
            let t = findings[i].end;
            while self.recent.front().is_some_and(|x| t - *x >= 3_600_000) {
                self.recent.pop_front();
            }
            if self.recent.len() >= per_hour as usize {
                findings.remove(i);
                self.suppressed += 1;
            } else {
                self.recent.push_back(t);
                i += 1;
            }
        }
    }
}

/// Folds the access-anomaly findings in `findings[from..]` (all from one event).
pub fn access_anomalies(findings: &mut Vec<Finding>, from: usize) {
    let idx: Vec<usize> = (from..findings.len())
        .filter(|i| rank(findings[*i].alert_type).is_some())
        .collect();
    if idx.len() < 2 {
        return;
    }
    let keep = *idx
        .iter()
        .min_by_key(|i| rank(findings[**i].alert_type))
        .unwrap_or(&idx[0]);
    let also: Vec<(String, String)> = idx
        .iter()
        .filter(|i| **i != keep)
        .map(|i| {
            (
                findings[*i].alert_type.as_str().to_string(),
                findings[*i].anomaly_context.clone(),
            )
        })
        .collect();
    let k = &mut findings[keep];
    let mut ev = k.evidence.value();
    if let Some(o) = ev.as_object_mut() {
        o.insert(
            "alsoUnusual".into(),
            serde_json::Value::Array(
                also.iter()
                    .map(|(t, why)| serde_json::json!({"alertType": t, "why": why}))
                    .collect(),
            ),
        );
    }
    let mut w = crate::alert::EvidenceWriter::new();
    if let Some(o) = ev.as_object() {
        for (key, v) in o {
            w.field(key, v);
        }
    }
    k.evidence = w.finish();
    for (_, why) in &also {
        k.anomaly_context.push(' ');
        k.anomaly_context.push_str(why);
    }
    let mut i = findings.len();
    while i > from {
        i -= 1;
        if i != keep && rank(findings[i].alert_type).is_some() {
            findings.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::alert::AlertType;
    use crate::detect::registry::DetectConfig;
    use crate::detect::testing::succeeded;
    use crate::detect::Engine;
    use crate::duration::Span;
    use crate::enrich::Enrichment;
    use crate::event::Event;
    use std::sync::Arc;

    fn at(mut e: Event, country: &str, lat: f64, lon: f64, cloud: Option<(&str, &str)>) -> Event {
        e.enrichment = Some(Arc::new(Enrichment {
            country: Some(country.into()),
            latitude: Some(lat),
            longitude: Some(lon),
            cloud_provider: cloud.map(|c| c.0.into()),
            cloud_region: cloud.map(|c| c.1.into()),
            ..Enrichment::default()
        }));
        e
    }

    fn engine(learning: Span) -> Engine {
        let mut c = DetectConfig::default();
        c.profile.learning_period = learning;
        Engine::new("db1", &c)
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn one_unusual_login_is_one_alert_listing_the_rest() {
        let mut e = engine(Span(DAY));
        let mut out = Vec::new();
        // Two weeks of alice from Berlin.
        for d in 0..14 {
            e.observe(
                &at(
                    succeeded(d * DAY, "198.51.100.10", "alice"),
                    "DE",
                    52.5,
                    13.4,
                    None,
                ),
                &mut out,
            );
        }
        assert!(out.is_empty(), "normal use: {out:#?}");
        // Ten minutes later, alice from an AWS machine in São Paulo.
        let t = 13 * DAY + 600_000;
        e.observe(
            &at(
                succeeded(t, "54.94.0.1", "alice"),
                "BR",
                -23.5,
                -46.6,
                Some(("AWS", "sa-east-1")),
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1, "{out:#?}");
        let a = &out[0];
        assert_eq!(a.alert_type, AlertType::ImpossibleTravel);
        let also: Vec<String> = a.evidence.value()["alsoUnusual"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["alertType"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            also,
            ["PostgreSQL_CloudProviderAnomaly", "PostgreSQL_GeoAnomaly"]
        );
        assert!(
            a.anomaly_context
                .contains("First login from BR; this server has seen only DE in 13 days"),
            "{}",
            a.anomaly_context
        );
    }

    #[test]
    fn nothing_is_unusual_while_learning() {
        let mut e = engine(Span(7 * DAY));
        let mut out = Vec::new();
        e.observe(
            &at(
                succeeded(0, "198.51.100.10", "alice"),
                "DE",
                52.5,
                13.4,
                None,
            ),
            &mut out,
        );
        e.observe(
            &at(
                succeeded(DAY, "54.94.0.1", "bob"),
                "BR",
                -23.5,
                -46.6,
                Some(("AWS", "sa-east-1")),
            ),
            &mut out,
        );
        assert!(out.is_empty(), "{out:#?}");
        // After learning, a new role from a known place is only a principal anomaly.
        e.observe(
            &at(
                succeeded(8 * DAY, "198.51.100.11", "carol"),
                "DE",
                52.5,
                13.4,
                None,
            ),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].alert_type, AlertType::PrincipalAnomaly);
        assert_eq!(out[0].severity, crate::alert::Severity::Low);
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    fn f(t: i64) -> Finding {
        crate::detect::testing::finding(AlertType::PrincipalAnomaly, &format!("r{t}"), t, t)
    }

    #[test]
    fn at_most_n_per_hour() {
        let mut r = RateLimit::default();
        let mut v: Vec<Finding> = (0..30).map(|i| f(i * 1000)).collect();
        r.apply(&mut v, 0, 20);
        assert_eq!((v.len(), r.suppressed), (20, 10));
        let mut later = vec![f(3_700_000)];
        r.apply(&mut later, 0, 20);
        assert_eq!(later.len(), 1, "a new hour");
    }
}
