//! Active response: while a source is in an open brute-force, password-spray or attack-tool
//! alert, the proxy refuses its new connections (a FATAL 28000 with a neutral message) for
//! `block_for`. Addresses on the allowlist are never blocked. Every block and unblock is
//! logged, kept for the API, and optionally handed to a command (an nftables set, say).
//!
//! With a store (`pgvigil run`), blocks are saved there and the store's list is what the
//! proxy enforces ([`Blocklist::take_changed`], [`Blocklist::replace`]): a restart keeps a
//! blocked source out, the proxies of a fleet refuse it together, and a block lifted through
//! any API instance is lifted everywhere.

use model::alert::{Alert, AlertType};
use model::duration::Span;
use model::event::format_time;
use model::setting::SettingError;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use store::blocks::StoredBlock;

/// `[proxy.active_response]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActiveResponseConfig {
    pub enabled: bool,
    pub block_for: Span,
    /// Addresses or networks (`10.0.0.0/8`) never blocked.
    pub allowlist: Vec<String>,
    /// Run on every block and unblock: the program and its arguments; `{action}` becomes
    /// `block` or `unblock`, `{ip}` the address. E.g.
    /// `["nft", "{action}", "element", "inet", "filter", "pgvigil", "{ {ip} }"]` via a wrapper.
    pub hook: Vec<String>,
}

impl Default for ActiveResponseConfig {
    fn default() -> Self {
        ActiveResponseConfig {
            enabled: false,
            block_for: Span::mins(15),
            allowlist: Vec::new(),
            hook: Vec::new(),
        }
    }
}

impl ActiveResponseConfig {
    /// The allowlist parsed, or the entry that is not an address or network.
    pub fn networks(&self) -> Result<Vec<ipnet::IpNet>, SettingError> {
        parse_networks(&self.allowlist, "proxy.active_response.allowlist")
    }
}

/// Addresses and networks (`10.0.0.0/8`, `192.0.2.1`) of a setting, or the entry that is
/// neither, named with the setting.
pub fn parse_networks(list: &[String], setting: &str) -> Result<Vec<ipnet::IpNet>, SettingError> {
    list.iter()
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    SettingError::new(
                        setting,
                        format!("{setting}: {s:?} is not an address or network"),
                    )
                })
        })
        .collect()
}

/// A block, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    pub source_ip: String,
    pub since: String,
    pub until: String,
    pub alert_type: AlertType,
    pub alert_id: String,
    #[serde(skip)]
    until_ms: i64,
    /// Every alert that asked for this block (the last is `alert_id`): lifting the block
    /// lifts them all, so that a sibling alert's next update does not put it back.
    #[serde(skip)]
    causes: Vec<String>,
}

impl Block {
    /// Every alert that asked for this block.
    pub fn causes(&self) -> &[String] {
        &self.causes
    }
}

/// Alerts remembered per block, at most.
const CAUSES_MAX: usize = 16;

pub struct Blocklist {
    cfg: ActiveResponseConfig,
    /// Blocks started or extended since the store last took them.
    changed: std::sync::Mutex<rustc_hash::FxHashSet<IpAddr>>,
    /// When ended blocks were last swept out (ms).
    swept: std::sync::atomic::AtomicI64,
    allow: Vec<ipnet::IpNet>,
    blocks: std::sync::Mutex<rustc_hash::FxHashMap<IpAddr, Block>>,
    /// Alerts an operator dismissed, resolved or unblocked: as they go on counting, they
    /// block no more (a new alert of the source does).
    lifted: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Alerts remembered as lifted, at most (the oldest are forgotten past it).
const LIFTED_MAX: usize = 10_000;

/// The alerts whose source is blocked.
fn blocks_source(t: AlertType) -> bool {
    matches!(
        t,
        AlertType::BruteForce | AlertType::PasswordSpray | AlertType::HarmfulApplication
    )
}

impl Blocklist {
    pub fn new(cfg: ActiveResponseConfig) -> Blocklist {
        // Checked when the configuration is loaded.
        let allow = cfg.networks().unwrap_or_default();
        Blocklist {
            cfg,
            changed: Default::default(),
            swept: Default::default(),
            allow,
            blocks: Default::default(),
            lifted: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<IpAddr, Block>> {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address is on the allowlist: never blocked, and exempt from the per-source limits.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip` is refused now. Checked for every connection and login message: a
    /// lookup, with ended blocks swept out at most once a second rather than on each check.
    pub fn is_blocked(&self, ip: IpAddr, now: i64) -> bool {
        if !self.cfg.enabled {
            return false;
        }
        let swept = self.swept.load(std::sync::atomic::Ordering::Relaxed);
        if now - swept >= 1000
            && self
                .swept
                .compare_exchange(
                    swept,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            self.expire(now);
        }
        self.lock().get(&ip).is_some_and(|b| b.until_ms > now)
    }

    /// Blocks the source of an alert that calls for it (new or updated), and says so in the
    /// alert's evidence (`activeResponse`), as it does when the allowlist spares the source.
    /// Returns whether a new block started.
    pub fn consider(&self, a: &mut Alert, now: i64) -> bool {
        if !self.cfg.enabled || !blocks_source(a.alert_type) || a.status != "Active" {
            return false;
        }
        if self
            .lifted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&a.id)
        {
            return false;
        }
        let Some(ip) = a
            .entities
            .source_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            return false;
        };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            tracing::info!(source = %ip, alert = %a.id, "proxy: not blocking an allowlisted address");
            a.evidence = a.evidence.with(
                "activeResponse",
                serde_json::json!({"action": "notBlocked", "reason": "the source is on the proxy's allowlist"}),
            );
            return false;
        }
        let until = now + self.cfg.block_for.ms();
        let mut b = self.lock();
        let new = !b.contains_key(&ip);
        let since: String = b
            .get(&ip)
            .map(|x| x.since.clone())
            .unwrap_or_else(|| format_time(now));
        let mut causes = b.get(&ip).map(|x| x.causes.clone()).unwrap_or_default();
        if !causes.contains(&a.id) && causes.len() < CAUSES_MAX {
            causes.push(a.id.clone());
        }
        b.insert(
            ip,
            Block {
                source_ip: ip.to_string(),
                since: since.clone(),
                until: format_time(until),
                alert_type: a.alert_type,
                alert_id: a.id.clone(),
                until_ms: until,
                causes,
            },
        );
        drop(b);
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip);
        a.evidence = a.evidence.with(
            "activeResponse",
            serde_json::json!({"action": "blocked", "by": "proxy", "since": since, "until": format_time(until)}),
        );
        if new {
            tracing::warn!(source = %ip, alert = %a.id, alert_type = a.alert_type.as_str(), until = %format_time(until), "proxy: blocked");
            self.hook("block", ip);
        }
        new
    }

    /// An operator lifts the block of `ip`: the alert that caused it blocks no more.
    pub fn lift(&self, ip: IpAddr, who: &str) -> Option<Block> {
        let b = self.lock().remove(&ip)?;
        for id in &b.causes {
            self.forget_alert(id);
        }
        tracing::warn!(source = %ip, alert = %b.alert_id, by = %who, "proxy: block lifted");
        self.hook("unblock", ip);
        Some(b)
    }

    /// The alert was dismissed or resolved: the blocks it caused are lifted, and neither it
    /// nor the alerts that blocked the source with it cause one again.
    pub fn lift_alert(&self, alert_id: &str, who: &str) -> Vec<Block> {
        self.forget_alert(alert_id);
        let gone: Vec<Block> = {
            let mut b = self.lock();
            let ips: Vec<IpAddr> = b
                .iter()
                .filter(|(_, x)| x.causes.iter().any(|c| c == alert_id))
                .map(|(ip, _)| *ip)
                .collect();
            ips.iter().filter_map(|ip| b.remove(ip)).collect()
        };
        for b in &gone {
            for id in &b.causes {
                self.forget_alert(id);
            }
            tracing::warn!(source = %b.source_ip, alert = %alert_id, by = %who, "proxy: block lifted with its alert");
            if let Ok(ip) = b.source_ip.parse() {
                self.hook("unblock", ip);
            }
        }
        gone
    }

    fn forget_alert(&self, alert_id: &str) {
        let mut l = self.lifted.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() >= LIFTED_MAX {
            l.clear();
        }
        l.insert(alert_id.to_string());
    }

    /// Ends blocks whose time is up.
    pub fn expire(&self, now: i64) {
        let gone: Vec<IpAddr> = {
            let mut b = self.lock();
            let gone: Vec<IpAddr> = b
                .iter()
                .filter(|(_, x)| x.until_ms <= now)
                .map(|(ip, _)| *ip)
                .collect();
            for ip in &gone {
                b.remove(ip);
            }
            gone
        };
        for ip in gone {
            tracing::warn!(source = %ip, "proxy: unblocked");
            self.hook("unblock", ip);
        }
    }

    /// The blocks started or extended since the last call, for the store.
    pub fn take_changed(&self) -> Vec<StoredBlock> {
        let ips: Vec<IpAddr> = self
            .changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let b = self.lock();
        ips.iter()
            .filter_map(|ip| b.get(ip))
            .map(|x| StoredBlock {
                source_ip: x.source_ip.clone(),
                since: x.since.clone(),
                until: x.until.clone(),
                alert_type: x.alert_type.as_str().to_string(),
                alert_id: x.alert_id.clone(),
                causes: x.causes.clone(),
            })
            .collect()
    }

    /// Blocks taken with [`Blocklist::take_changed`] that the store could not take: offered
    /// again at the next exchange.
    pub fn requeue(&self, blocks: &[StoredBlock]) {
        let mut c = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        c.extend(
            blocks
                .iter()
                .filter_map(|b| b.source_ip.parse::<IpAddr>().ok()),
        );
    }

    /// Enforces the store's blocks from now on (and remembers its lifted alerts): sources
    /// blocked elsewhere or before a restart are refused, those lifted elsewhere let in. The
    /// hook hears of each change. Blocks taken with [`Blocklist::take_changed`] must have
    /// been saved first.
    pub fn replace(&self, stored: &[StoredBlock], lifted: Vec<String>) {
        if !self.cfg.enabled {
            return;
        }
        {
            let mut l = self.lifted.lock().unwrap_or_else(|p| p.into_inner());
            if l.len() + lifted.len() > LIFTED_MAX {
                l.clear();
            }
            l.extend(lifted);
        }
        let mut next: rustc_hash::FxHashMap<IpAddr, Block> = Default::default();
        for s in stored {
            let (Ok(ip), Ok(t), Ok(until)) = (
                s.source_ip.parse::<IpAddr>(),
                serde_json::from_value::<AlertType>(serde_json::Value::String(
                    s.alert_type.clone(),
                )),
                chrono::DateTime::parse_from_rfc3339(&s.until),
            ) else {
                tracing::warn!(source = %s.source_ip, "proxy: a stored block is not readable; ignored");
                continue;
            };
            if self.allows(ip) {
                continue;
            }
            next.insert(
                ip,
                Block {
                    source_ip: ip.to_string(),
                    since: s.since.clone(),
                    until: s.until.clone(),
                    alert_type: t,
                    alert_id: s.alert_id.clone(),
                    until_ms: until.timestamp_millis(),
                    causes: s.causes.clone(),
                },
            );
        }
        let (added, removed): (Vec<IpAddr>, Vec<IpAddr>) = {
            let mut b = self.lock();
            // A block started since the store was read stays until the next exchange.
            let pending = self.changed.lock().unwrap_or_else(|p| p.into_inner());
            for ip in pending.iter() {
                if let Some(x) = b.get(ip) {
                    next.entry(*ip).or_insert_with(|| x.clone());
                }
            }
            drop(pending);
            let added = next
                .keys()
                .filter(|ip| !b.contains_key(ip))
                .copied()
                .collect();
            let removed = b
                .keys()
                .filter(|ip| !next.contains_key(ip))
                .copied()
                .collect();
            *b = next;
            (added, removed)
        };
        for ip in added {
            tracing::warn!(source = %ip, "proxy: blocked (from the store)");
            self.hook("block", ip);
        }
        for ip in removed {
            tracing::warn!(source = %ip, "proxy: block lifted (in the store)");
            self.hook("unblock", ip);
        }
    }

    /// Sources blocked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn list(&self) -> Vec<Block> {
        let mut v: Vec<Block> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.source_ip.cmp(&b.source_ip));
        v
    }

    fn hook(&self, action: &str, ip: IpAddr) {
        let Some((prog, args)) = self.cfg.hook.split_first() else {
            return;
        };
        let fill = |s: &String| {
            s.replace("{action}", action)
                .replace("{ip}", &ip.to_string())
        };
        match std::process::Command::new(fill(prog))
            .args(args.iter().map(fill))
            .stdin(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => {
                tracing::error!(action, source = %ip, status = %s, "proxy: the active-response hook failed")
            }
            Err(e) => {
                tracing::error!(action, source = %ip, error = %e, "proxy: the active-response hook could not run")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(ty: AlertType, ip: &str) -> Alert {
        let mut a = model::sample::alerts("db1", 0).remove(0);
        a.alert_type = ty;
        a.entities.source_ip = Some(ip.into());
        a
    }

    #[test]
    fn blocks_start_end_and_spare_the_allowlist() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("hook.log");
        let cfg = ActiveResponseConfig {
            enabled: true,
            block_for: Span::secs(60),
            allowlist: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
            hook: vec![
                "sh".into(),
                "-c".into(),
                format!("echo {{action}} {{ip}} >> {}", log.display()),
            ],
        };
        assert!(cfg.networks().is_ok());
        let b = Blocklist::new(cfg);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let mut first = alert(AlertType::BruteForce, "203.0.113.9");
        assert!(b.consider(&mut first, 1000));
        let said = &first.evidence.value()["activeResponse"];
        assert_eq!(said["action"], "blocked");
        assert_eq!(said["until"], "1970-01-01T00:01:01.000Z");
        let mut update = alert(AlertType::BruteForce, "203.0.113.9");
        assert!(!b.consider(&mut update, 2000), "already blocked");
        let said = &update.evidence.value()["activeResponse"];
        assert_eq!(
            said["since"], "1970-01-01T00:00:01.000Z",
            "the block's start"
        );
        assert_eq!(said["until"], "1970-01-01T00:01:02.000Z", "extended");
        let mut geo = alert(AlertType::GeoAnomaly, "203.0.113.10");
        assert!(!b.consider(&mut geo, 1000));
        assert!(geo.evidence.value().get("activeResponse").is_none());
        let mut spared = alert(AlertType::BruteForce, "10.1.2.3");
        assert!(!b.consider(&mut spared, 1000));
        assert_eq!(
            spared.evidence.value()["activeResponse"]["action"],
            "notBlocked"
        );
        assert!(!b.consider(&mut alert(AlertType::BruteForce, "192.0.2.1"), 1000));
        assert!(b.is_blocked(ip, 30_000));
        assert_eq!(b.list().len(), 1);
        assert!(
            !b.is_blocked(ip, 62_001),
            "the update at 2 s extended it to 62 s"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "block 203.0.113.9\nunblock 203.0.113.9\n"
        );
        let bad = ActiveResponseConfig {
            allowlist: vec!["10.0.0.0/33".into()],
            ..Default::default()
        };
        assert_eq!(
            bad.networks().unwrap_err().setting,
            "proxy.active_response.allowlist"
        );
    }

    #[test]
    fn nothing_is_blocked_when_off() {
        let b = Blocklist::new(ActiveResponseConfig::default());
        assert!(!b.consider(&mut alert(AlertType::BruteForce, "203.0.113.9"), 0));
        assert!(!b.is_blocked("203.0.113.9".parse().unwrap(), 0));
    }
    /// Dismissing one of the alerts that blocked a source lets it in, and the source's other
    /// alerts, going on counting, do not block it again; a new alert does.
    #[test]
    fn a_lifted_block_stays_lifted_until_a_new_alert() {
        let b = Blocklist::new(ActiveResponseConfig {
            enabled: true,
            block_for: Span::secs(600),
            ..Default::default()
        });
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let mut bf = alert(AlertType::BruteForce, "203.0.113.9");
        bf.id = "bf".into();
        let mut ha = alert(AlertType::HarmfulApplication, "203.0.113.9");
        ha.id = "ha".into();
        assert!(b.consider(&mut bf, 1000));
        b.consider(&mut ha, 1100);
        assert_eq!(b.lift_alert("bf", "ops").len(), 1);
        assert!(!b.is_blocked(ip, 1200));
        assert!(!b.consider(&mut ha.clone(), 1300), "its sibling's update");
        assert!(!b.consider(&mut bf.clone(), 1300), "its own update");
        assert!(!b.is_blocked(ip, 1400));
        let mut new = alert(AlertType::PasswordSpray, "203.0.113.9");
        new.id = "spray".into();
        assert!(b.consider(&mut new, 1500), "a new attack blocks again");
        assert_eq!(b.lift(ip, "ops").map(|x| x.alert_id), Some("spray".into()));
        assert!(b.lift(ip, "ops").is_none());
    }
}
