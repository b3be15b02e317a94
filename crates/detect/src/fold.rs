//! One login, one alert: when several access-anomaly detectors flag the same login (a new
//! laptop in a new country on a new provider…), their findings are folded into the one of
//! the highest priority, which lists the others in its evidence.

use model::alert::{AlertType, Finding};

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

/// At most `per_hour` access-anomaly alerts a server and hour of event time are raised for
/// login *attempts* (a failed login from a Tor exit is one): a burst from hundreds of
/// addresses must not bury the operator. Past that, nothing is dropped: further attempts are
/// rolled up into one alert of their type that counts them and lists their sources. An
/// anomaly on a successful login is never held back or rolled up: it is an alert of its own.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    /// Alerts raised for attempts this hour: when, and their type and entity.
    recent: std::collections::VecDeque<(model::event::EventTime, AlertType, String)>,
    /// Findings rolled up so far.
    #[serde(alias = "suppressed")]
    pub rolled_up: u64,
    #[serde(default)]
    rollups: Vec<Rollup>,
}

/// Attempts of one type rolled into one alert.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Rollup {
    alert_type: AlertType,
    start: model::event::EventTime,
    last: model::event::EventTime,
    attempts: u64,
    sources: super::window::NameCounts,
    principals: super::window::NameCounts,
    reported: super::window::Reported,
    /// The first finding rolled up: what the rolled-up alert says of each attempt.
    first_context: String,
}

/// The entity of a rolled-up alert (no source address is one: they are listed).
pub const ROLLED_UP: &str = "rolled-up";

impl RateLimit {
    /// Applies the limit to `findings[from..]`, all made by `ev`.
    pub fn apply(
        &mut self,
        findings: &mut Vec<Finding>,
        from: usize,
        per_hour: u32,
        ev: &model::event::Event,
    ) {
        if ev.kind == model::event::EventKind::LoginSucceeded {
            return;
        }
        let mut i = from;
        while i < findings.len() {
            if rank(findings[i].alert_type).is_none() {
                i += 1;
                continue;
            }
            let t = findings[i].end;
            while self
                .recent
                .front()
                .is_some_and(|(x, _, _)| t - *x >= 3_600_000)
            {
                self.recent.pop_front();
            }
            let (ty, entity) = (findings[i].alert_type, findings[i].entity.clone());
            let admitted = self.recent.iter().any(|(_, a, e)| *a == ty && *e == entity);
            if admitted {
                i += 1;
            } else if self.recent.len() < per_hour as usize {
                self.recent.push_back((t, ty, entity));
                i += 1;
            } else {
                let f = findings.remove(i);
                self.rolled_up += 1;
                if let Some(r) = self.roll_up(f, ev) {
                    findings.insert(i, r);
                    i += 1;
                }
            }
        }
    }

    /// Adds a finding to its type's rolled-up alert; that alert's finding when it is due.
    fn roll_up(&mut self, f: Finding, ev: &model::event::Event) -> Option<Finding> {
        let t = f.end;
        let open = self
            .rollups
            .iter()
            .position(|r| r.alert_type == f.alert_type && t - r.last < 3_600_000);
        let k = match open {
            Some(k) => k,
            None => {
                self.rollups.retain(|r| r.alert_type != f.alert_type);
                self.rollups.push(Rollup {
                    alert_type: f.alert_type,
                    start: f.start,
                    last: t,
                    attempts: 0,
                    sources: Default::default(),
                    principals: Default::default(),
                    reported: Default::default(),
                    first_context: f.anomaly_context.clone(),
                });
                self.rollups.len() - 1
            }
        };
        let r = &mut self.rollups[k];
        r.attempts += 1;
        r.last = r.last.max(t);
        r.sources
            .add(f.entities.source_ip.as_deref().unwrap_or("-"), 200);
        if let Some(p) = &ev.principal {
            r.principals.add(p, 50);
        }
        if !r.reported.due(r.attempts, t) {
            return None;
        }
        r.reported.mark(r.attempts, t);
        let sources = r.sources.distinct();
        Some(Finding {
            entity: ROLLED_UP.to_string(),
            start: r.start,
            end: r.last,
            entities: model::alert::Entities {
                principal: r.principals.top().map(str::to_string),
                ..Default::default()
            },
            evidence: model::evidence!({
                "rolledUp": true,
                "attempts": r.attempts,
                "distinctSources": sources,
                "sources": r.sources.json(),
                "principals": r.principals.json(),
                "login": model::alert::sample(ev),
            }),
            description: format!(
                "{} more login attempts from {sources} addresses between {} and {}, each of which would have been an alert of its own: rolled up into this one after the first alerts of the hour.",
                r.attempts,
                model::event::format_time(r.start),
                model::event::format_time(r.last),
            ),
            anomaly_context: format!(
                "A burst of attempts from many suspicious addresses; the first of them: {}",
                r.first_context
            ),
            ..f
        })
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
    let mut w = model::alert::EvidenceWriter::new();
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
    use crate::registry::DetectConfig;
    use crate::testing::succeeded;
    use crate::Engine;
    use enrich::Enrichment;
    use model::alert::AlertType;
    use model::duration::Span;
    use model::event::Event;
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
        assert_eq!(out[0].severity, model::alert::Severity::Low);
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;
    use crate::testing::{failed, succeeded};
    use model::event::LoginFailure;

    fn f(t: i64, src: &str) -> Finding {
        let mut f = crate::testing::finding(AlertType::SuspiciousIpAnomaly, src, t, t);
        f.entities.source_ip = Some(src.to_string());
        f
    }

    #[test]
    fn attempts_past_the_limit_are_rolled_up_not_dropped() {
        let mut r = RateLimit::default();
        let mut raised = Vec::new();
        for i in 0..30 {
            let src = format!("198.51.100.{i}");
            let mut v = vec![f(i * 1000, &src)];
            r.apply(
                &mut v,
                0,
                20,
                &failed(i * 1000, &src, "app", LoginFailure::BadPassword),
            );
            raised.extend(v);
        }
        let own = raised.iter().filter(|x| x.entity != ROLLED_UP).count();
        assert_eq!(own, 20);
        let last = raised.iter().rfind(|x| x.entity == ROLLED_UP).unwrap();
        let ev = last.evidence.value();
        assert!(ev["attempts"].as_u64().unwrap() >= 8, "{ev}");
        assert_eq!(r.rolled_up, 10);
        // A successful login is never held back, however many attempts came before.
        let mut v = vec![f(31_000, "203.0.113.9")];
        r.apply(&mut v, 0, 20, &succeeded(31_000, "203.0.113.9", "app"));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].entity, "203.0.113.9");
        // An admitted source's later attempts update its own alert.
        let mut v = vec![f(32_000, "198.51.100.3")];
        r.apply(
            &mut v,
            0,
            20,
            &failed(32_000, "198.51.100.3", "app", LoginFailure::BadPassword),
        );
        assert_eq!(v[0].entity, "198.51.100.3");
        // A new hour: alerts of their own again.
        let mut v = vec![f(3_700_000, "198.51.100.99")];
        r.apply(
            &mut v,
            0,
            20,
            &failed(3_700_000, "198.51.100.99", "app", LoginFailure::BadPassword),
        );
        assert_eq!(v[0].entity, "198.51.100.99");
    }
}
