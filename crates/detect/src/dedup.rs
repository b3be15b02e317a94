//! Findings → alerts. One open alert per type + server + entity: an ongoing attack updates its
//! alert (counts, end time, escalated severity) instead of raising a new one. An alert stays
//! open while findings for it keep coming within the quiet period; after that a new finding
//! starts a new alert.

use model::alert::{Alert, AlertType, Finding};
use model::duration::Span;
use model::event::{format_time, EventTime};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
struct Open {
    /// The alert as last emitted.
    alert: Alert,
    start: EventTime,
    end: EventTime,
}

/// Saved state of the book.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BookState {
    /// (key, alert as JSON, start, end): the alert's evidence is raw JSON, which only a JSON
    /// (de)serialiser can carry.
    open: Vec<((AlertType, String), String, EventTime, EventTime)>,
}

pub struct AlertBook {
    server: String,
    quiet: Span,
    open: FxHashMap<(AlertType, String), Open>,
    /// Alerts closed by a new alert of the same entity, not yet reported as closed.
    stale: Vec<Alert>,
    last_expire: EventTime,
}

/// Alert ids are derived from what the alert is about and when it started, so `analyze` and
/// `run` over the same log give the same ids.
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5c1e_6e2a_8f0b_4c4e_9d57_2f0a_77c1_9e01);

/// `new` with the `alsoUnusual` entries of `old` that it lacks.
fn keep_also_unusual(
    old: &model::alert::Evidence,
    new: model::alert::Evidence,
) -> model::alert::Evidence {
    if !old.as_str().contains("\"alsoUnusual\"") {
        return new;
    }
    let old_v = old.value();
    let Some(before) = old_v.get("alsoUnusual").and_then(|v| v.as_array()) else {
        return new;
    };
    let mut v = new.value();
    let Some(o) = v.as_object_mut() else {
        return new;
    };
    let list = o
        .entry("alsoUnusual")
        .or_insert_with(|| serde_json::Value::Array(vec![]));
    let Some(arr) = list.as_array_mut() else {
        return new;
    };
    for x in before {
        if !arr.iter().any(|y| y["alertType"] == x["alertType"]) {
            arr.push(x.clone());
        }
    }
    let mut w = model::alert::EvidenceWriter::new();
    for (k, val) in o.iter() {
        w.field(k, val);
    }
    w.finish()
}

impl AlertBook {
    pub fn new(server: &str, quiet: Span) -> Self {
        AlertBook {
            server: server.to_string(),
            quiet,
            open: FxHashMap::default(),
            stale: Vec::new(),
            last_expire: EventTime::MIN / 2,
        }
    }

    /// Folds a finding into its alert and returns the alert as it now stands.
    pub fn fold(&mut self, f: Finding) -> &Alert {
        let key = (f.alert_type, f.entity.clone());
        let quiet = self.quiet.ms();
        let prev = match self.open.remove(&key) {
            Some(o) if f.start <= o.end + quiet && f.end >= o.start - quiet => {
                Some((o.alert, o.start, o.end))
            }
            Some(stale) => {
                // Same entity, but long after: that alert is over.
                self.stale.push(stale.alert);
                None
            }
            None => None,
        };
        let (start, end) = match &prev {
            Some((_, s, e)) => ((*s).min(f.start), (*e).max(f.end)),
            None => (f.start, f.end),
        };
        let id = match &prev {
            Some((a, _, _)) => a.id.clone(),
            None => uuid::Uuid::new_v5(
                &NAMESPACE,
                format!(
                    "{}|{}|{}|{}",
                    self.server,
                    f.alert_type.as_str(),
                    f.entity,
                    f.start
                )
                .as_bytes(),
            )
            .to_string(),
        };
        // Severity and variant only ever escalate within one alert.
        let (display_name, severity) = match &prev {
            Some((a, _, _)) if a.severity > f.severity => (a.display_name.clone(), a.severity),
            _ => (f.display_name.to_string(), f.severity),
        };
        let mut techniques: Vec<String> = f.techniques.iter().map(|t| t.to_string()).collect();
        let mut evidence = f.evidence;
        // An update does not forget what the alert already said was unusual (a later login
        // of the same impossible-travel pair has no new country to mention).
        if let Some((a, _, _)) = &prev {
            evidence = keep_also_unusual(&a.evidence, evidence);
        }
        if let Some((a, _, _)) = prev {
            for t in a.techniques {
                if !techniques.contains(&t) {
                    techniques.push(t);
                }
            }
        }
        let alert = Alert {
            id,
            alert_type: f.alert_type,
            display_name,
            severity,
            status: "Active".into(),
            intent: f.alert_type.intent().into(),
            techniques,
            server: self.server.clone(),
            start_time_utc: format_time(start),
            end_time_utc: format_time(end),
            entities: f.entities,
            evidence,
            description: f.description,
            anomaly_context: f.anomaly_context,
            remediation_steps: f.remediation,
        };
        self.open.insert(key.clone(), Open { alert, start, end });
        &self.open[&key].alert
    }

    /// Closes alerts that have been quiet longer than the quiet period; their final state
    /// goes to `closed`, oldest first.
    pub fn expire(&mut self, now: EventTime, closed: &mut Vec<Alert>) {
        let quiet = self.quiet.ms();
        closed.append(&mut self.stale);
        // Walking every open alert is not for every second of event time.
        if now - self.last_expire < (quiet / 20).max(1000) {
            return;
        }
        self.last_expire = now;
        let mut done: Vec<Open> = self
            .open
            .extract_if(|_, o| now - o.end > quiet)
            .map(|(_, o)| o)
            .collect();
        done.sort_by(|a, b| a.start.cmp(&b.start).then(a.alert.id.cmp(&b.alert.id)));
        closed.extend(done.into_iter().map(|o| o.alert));
    }

    pub fn state(&self) -> BookState {
        let mut open: Vec<_> = self
            .open
            .iter()
            .filter_map(|(k, v)| {
                let json = serde_json::to_string(&v.alert).ok()?;
                Some((k.clone(), json, v.start, v.end))
            })
            .collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        BookState { open }
    }

    pub fn restore(&mut self, s: BookState) -> Result<(), serde_json::Error> {
        self.open.clear();
        for (k, json, start, end) in s.open {
            let alert: Alert = serde_json::from_str(&json)?;
            self.open.insert(k, Open { alert, start, end });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::alert::Severity;

    fn finding(start: EventTime, end: EventTime, sev: Severity, name: &'static str) -> Finding {
        Finding {
            display_name: name,
            severity: sev,
            techniques: &["T1110.001"],
            ..crate::testing::finding(AlertType::BruteForce, "203.0.113.7", start, end)
        }
    }

    #[test]
    fn updates_fold_into_one_alert_and_escalate() {
        let mut b = AlertBook::new("db1", Span::mins(60));
        let a = b
            .fold(finding(
                0,
                1000,
                Severity::Medium,
                "Suspected brute force attack",
            ))
            .clone();
        let c = b
            .fold(finding(
                0,
                5000,
                Severity::High,
                "Suspected successful brute force attack",
            ))
            .clone();
        assert_eq!(a.id, c.id);
        assert_eq!(c.severity, Severity::High);
        assert_eq!(c.end_time_utc, "1970-01-01T00:00:05.000Z");
        // A late, lower finding does not downgrade it.
        let d = b
            .fold(finding(
                0,
                6000,
                Severity::Medium,
                "Suspected brute force attack",
            ))
            .clone();
        assert_eq!((d.id, d.severity), (a.id.clone(), Severity::High));
    }

    #[test]
    fn after_the_quiet_period_a_new_alert_starts() {
        let mut b = AlertBook::new("db1", Span::mins(60));
        let a = b.fold(finding(0, 1000, Severity::Medium, "x")).clone();
        let later = 2 * 3_600_000;
        let mut closed = Vec::new();
        b.expire(later, &mut closed);
        assert_eq!(
            closed,
            vec![a.clone()],
            "the final state of the closed alert"
        );
        let c = b
            .fold(finding(later, later + 10, Severity::Medium, "x"))
            .clone();
        assert_ne!(a.id, c.id);
    }
}
