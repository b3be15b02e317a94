//! Profiles: what is normal for a server, learned from its successful logins — the roles,
//! countries (also per role), ASNs, cloud providers and regions, and applications seen, each
//! with first and last seen and a count. Anomaly detectors compare a login with the profile as
//! it was before that login; the engine updates it afterwards.
//!
//! An anomaly only counts after the learning period (event time since the first login seen)
//! and against the look-back: an entity not seen for that long is forgotten. Each kind of
//! entity is capped; over the cap the least recently seen go first.

use compact_str::CompactString;
use model::duration::Span;
use model::event::{Event, EventKind, EventTime};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::hash::Hash;

/// `[profile]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileConfig {
    /// Event time after a server's first login before anomalies are reported.
    pub learning_period: Span,
    /// What has not been seen for this long is forgotten (and is new again).
    pub look_back: Span,
    /// At most this many entities of each kind per server.
    pub max_entities: usize,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            learning_period: Span(7 * 86_400_000),
            look_back: Span(60 * 86_400_000),
            max_entities: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub first: EventTime,
    pub last: EventTime,
    pub count: u64,
}

/// Entities of one kind with when they were seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seens<K: Eq + Hash> {
    pub map: FxHashMap<K, Seen>,
    /// Entities dropped because the kind was at its cap.
    pub evicted: u64,
}

impl<K: Eq + Hash> Default for Seens<K> {
    fn default() -> Self {
        Seens {
            map: FxHashMap::default(),
            evicted: 0,
        }
    }
}

impl<K: Eq + Hash + Clone> Seens<K> {
    pub fn get(&self, k: &K) -> Option<&Seen> {
        self.map.get(k)
    }

    fn see(&mut self, k: &K, t: EventTime, cap: usize) {
        if let Some(s) = self.map.get_mut(k) {
            s.last = s.last.max(t);
            s.count += 1;
            return;
        }
        if self.map.len() >= cap.max(1) {
            // Drop the least recently seen tenth.
            let mut lasts: Vec<EventTime> = self.map.values().map(|s| s.last).collect();
            let cut = (lasts.len() / 10).max(1) - 1;
            lasts.select_nth_unstable(cut);
            let limit = lasts[cut];
            let before = self.map.len();
            self.map.retain(|_, s| s.last > limit);
            self.evicted += (before - self.map.len()) as u64;
        }
        self.map.insert(
            k.clone(),
            Seen {
                first: t,
                last: t,
                count: 1,
            },
        );
    }

    fn forget_before(&mut self, t: EventTime) {
        self.map.retain(|_, s| s.last >= t);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `[{"name", "firstSeen", "lastSeen", "count"}]`, most recently seen first, at most
    /// `max`: what an operator reads to see what "normal" is.
    pub fn summary(&self, name: impl Fn(&K) -> String, max: usize) -> serde_json::Value {
        serde_json::Value::Array(
            self.recent()
                .into_iter()
                .take(max)
                .map(|(k, s)| {
                    serde_json::json!({
                        "name": name(k),
                        "firstSeen": model::event::format_time(s.first),
                        "lastSeen": model::event::format_time(s.last),
                        "count": s.count,
                    })
                })
                .collect(),
        )
    }

    /// The keys, most recently seen first.
    pub fn recent(&self) -> Vec<(&K, &Seen)> {
        let mut v: Vec<_> = self.map.iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1.last));
        v
    }
}

/// Where a role last logged in from, for impossible travel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastPlace {
    pub time: EventTime,
    pub source: CompactString,
    pub country: Option<CompactString>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// From a cloud provider's address: a service's login, which does not travel.
    #[serde(default)]
    pub cloud: bool,
}

/// One server's normal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub first_login: Option<EventTime>,
    /// The first statement or in-session error: the statement detectors learn what is normal
    /// for a learning period from here (a server may log statements long after logins).
    #[serde(default)]
    pub first_statement: Option<EventTime>,
    pub principals: Seens<CompactString>,
    pub countries: Seens<CompactString>,
    pub principal_countries: Seens<(CompactString, CompactString)>,
    pub asns: Seens<u32>,
    pub cloud_providers: Seens<CompactString>,
    pub cloud_regions: Seens<(CompactString, CompactString)>,
    pub applications: Seens<CompactString>,
    pub last_place: FxHashMap<CompactString, LastPlace>,
    /// Roles a known principal created or enabled for login (`log_statement = 'ddl'`): a
    /// new role announced this way is a change, not an intrusion.
    #[serde(default)]
    pub announced: Seens<CompactString>,
    /// Client fingerprints the proxy recognised (`psql`, `pgjdbc`, …).
    #[serde(default)]
    pub fingerprints: Seens<CompactString>,
    /// Registrable domains of the clients (reverse DNS), and since when they are learned.
    #[serde(default)]
    pub domains: Seens<CompactString>,
    #[serde(default)]
    pub domains_since: Option<EventTime>,
    last_forget: EventTime,
}

/// Entities shown per kind in a profile summary.
const SUMMARY_MAX: usize = 200;

impl Profile {
    /// The learned normal as JSON, for the store and the API (`GET /servers/{server}/profile`).
    pub fn summary(&self, cfg: &ProfileConfig) -> serde_json::Value {
        let s = |c: &CompactString| c.to_string();
        let pair = |(a, b): &(CompactString, CompactString)| format!("{a}|{b}");
        serde_json::json!({
            "firstLogin": self.first_login.map(model::event::format_time),
            "learningUntil": self.first_login.map(|f| model::event::format_time(f + cfg.learning_period.ms())),
            "lookBackDays": crate::profile::days(cfg.look_back.ms()),
            "principals": self.principals.summary(s, SUMMARY_MAX),
            "countries": self.countries.summary(s, SUMMARY_MAX),
            "principalCountries": self.principal_countries.summary(pair, SUMMARY_MAX),
            "asns": self.asns.summary(|a| a.to_string(), SUMMARY_MAX),
            "cloudProviders": self.cloud_providers.summary(s, SUMMARY_MAX),
            "cloudRegions": self.cloud_regions.summary(pair, SUMMARY_MAX),
            "applications": self.applications.summary(s, SUMMARY_MAX),
            "domains": self.domains.summary(s, SUMMARY_MAX),
            "announcedRoles": self.announced.summary(s, SUMMARY_MAX),
            "fingerprints": self.fingerprints.summary(s, SUMMARY_MAX),
        })
    }

    /// Still learning at `now`: no anomaly is reported yet.
    pub fn learning(&self, now: EventTime, cfg: &ProfileConfig) -> bool {
        match self.first_login {
            None => true,
            Some(f) => now - f < cfg.learning_period.ms(),
        }
    }

    /// Still learning statements at `now` (see `first_statement`).
    pub fn learning_statements(&self, now: EventTime, cfg: &ProfileConfig) -> bool {
        self.first_statement
            .is_none_or(|f| now - f < cfg.learning_period.ms())
    }

    /// How long the profile has been learning, for explanations.
    pub fn age(&self, now: EventTime) -> i64 {
        self.first_login.map_or(0, |f| now - f)
    }

    /// Learns from a successful login (failures are not normal, whoever sent them), and
    /// from role changes made by principals it knows.
    pub fn learn(&mut self, ev: &Event, cfg: &ProfileConfig) {
        if matches!(ev.kind, EventKind::Statement | EventKind::Error) {
            self.first_statement.get_or_insert(ev.time);
        }
        if ev.kind == EventKind::Statement {
            let by_known = ev
                .principal
                .as_ref()
                .is_some_and(|p| self.principals.get(p).is_some());
            let role = ev
                .message
                .as_deref()
                .and_then(|m| m.split_once(" ROLE "))
                .map(|(_, r)| CompactString::new(r));
            if let (true, Some(r)) = (by_known, role) {
                self.announced.see(&r, ev.time, cfg.max_entities);
            }
            return;
        }
        if ev.kind != EventKind::LoginSucceeded {
            return;
        }
        let t = ev.time;
        let cap = cfg.max_entities;
        self.first_login.get_or_insert(t);
        if t - self.last_forget >= 3_600_000 {
            let before = t - cfg.look_back.ms();
            self.last_forget = t;
            self.principals.forget_before(before);
            self.countries.forget_before(before);
            self.principal_countries.forget_before(before);
            self.asns.forget_before(before);
            self.cloud_providers.forget_before(before);
            self.cloud_regions.forget_before(before);
            self.applications.forget_before(before);
            self.announced.forget_before(before);
            self.domains.forget_before(before);
            self.fingerprints.forget_before(before);
            self.last_place.retain(|_, p| p.time >= before);
        }
        let principal = ev.principal.clone().unwrap_or_default();
        self.principals.see(&principal, t, cap);
        if let Some(a) = &ev.application {
            self.applications.see(a, t, cap);
        }
        if let Some(f) = &ev.fingerprint {
            self.fingerprints.see(f, t, cap);
        }
        if let Some(d) = &ev.domain {
            self.domains_since.get_or_insert(t);
            self.domains.see(d, t, cap);
        }
        let Some(en) = &ev.enrichment else { return };
        if let Some(c) = &en.country {
            let c = CompactString::new(c);
            self.countries.see(&c, t, cap);
            self.principal_countries
                .see(&(principal.clone(), c), t, cap);
        }
        if let Some(a) = en.asn {
            self.asns.see(&a, t, cap);
        }
        if let Some(p) = &en.cloud_provider {
            let p = CompactString::new(p);
            self.cloud_providers.see(&p, t, cap);
            let r = CompactString::new(en.cloud_region.as_deref().unwrap_or(""));
            self.cloud_regions.see(&(p, r), t, cap);
        }
        if (en.latitude.is_some() || en.country.is_some())
            && (self.last_place.len() < cap || self.last_place.contains_key(&principal))
        {
            self.last_place.insert(
                principal,
                LastPlace {
                    time: t,
                    source: ev.source_key(),
                    country: en.country.as_deref().map(CompactString::new),
                    latitude: en.latitude,
                    longitude: en.longitude,
                    cloud: en.cloud_provider.is_some(),
                },
            );
        }
    }

    /// Entities held, and entities dropped at the caps (memory report).
    pub fn size(&self) -> (usize, u64) {
        let held = self.principals.len()
            + self.countries.len()
            + self.principal_countries.len()
            + self.asns.len()
            + self.cloud_providers.len()
            + self.cloud_regions.len()
            + self.applications.len()
            + self.domains.len()
            + self.announced.len()
            + self.fingerprints.len()
            + self.last_place.len();
        let evicted = self.principals.evicted
            + self.countries.evicted
            + self.principal_countries.evicted
            + self.asns.evicted
            + self.cloud_providers.evicted
            + self.cloud_regions.evicted
            + self.applications.evicted
            + self.domains.evicted
            + self.announced.evicted
            + self.fingerprints.evicted;
        (held, evicted)
    }
}

/// Days, for explanations ("in 41 days").
pub fn days(ms: i64) -> i64 {
    ms / 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_evict_the_least_recently_seen_and_look_back_forgets() {
        let mut s: Seens<u32> = Seens::default();
        for i in 0..100 {
            s.see(&i, i as i64, 50);
        }
        assert!(s.len() <= 50);
        assert!(s.get(&99).is_some() && s.get(&0).is_none());
        assert!(s.evicted > 0);
        s.forget_before(95);
        assert_eq!(s.len(), 5);
    }
}
