//! The corpus of real traces: logs that a real PostgreSQL 15 wrote while real tools attacked it
//! and real clients used it (`bench/corpus/record.py` records them, byte for byte, in stderr,
//! csvlog and jsonlog), each scenario with its labels: who the actors were, what alerts a user
//! expects, what must stay quiet.
//!
//! Recorded on one machine, every client came from a 127.x address. To judge them as a real
//! server would be judged, [`prepare`] gives each actor a real-world address of the kind its
//! label names (an AWS eu-west-1 address, a German ISP, a Tor exit) and writes the 14 days of
//! normal traffic those actors had before (the baseline), so that the profile knows the
//! application's regions and the office. Then the scenario runs through `analyze` and through
//! the streaming path of `run`, and [`score`] compares the alerts with the labels.

use enrich::{AddressClass, Enricher};
use model::alert::{Alert, AlertType, Severity};
use model::event::EventTime;
use serde::{Deserialize, Serialize};
use sources::LogFormat;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// `labels.json` of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub scenario: String,
    /// `attack` or `benign`: in a benign scenario every alert is a false positive.
    pub kind: String,
    #[serde(default)]
    pub tool: Option<String>,
    pub description: String,
    /// Each client address of the recording.
    pub actors: BTreeMap<String, Actor>,
    /// What those actors did every day in the two weeks before.
    #[serde(default)]
    pub baseline: Vec<Routine>,
    /// The alerts a user expects.
    pub expect: Vec<Expect>,
    pub log_line_prefix: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    pub recorded: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// `cloud:<provider>[:<region>]`, `isp:<country>`, `tor:<n>` or `private`.
    pub place: String,
    /// An alert on a benign actor's address blames the wrong login.
    pub benign: bool,
    #[serde(default)]
    pub what: String,
}

/// An actor's daily routine before the recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routine {
    pub actor: String,
    pub role: String,
    pub database: String,
    #[serde(default)]
    pub application: String,
    /// `10m`, `1m`, `daily` or `workday`.
    pub every: String,
    /// Each session comes with a connection that never logs in (a health check's ping).
    #[serde(default)]
    pub bare_connects: bool,
}

/// An alert a user expects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    pub alert_type: AlertType,
    /// The actor the alert must name as its source.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// The tool it must name (HarmfulApplication).
    #[serde(default)]
    pub tool: Option<String>,
    /// `database`: only where failed logins carry their database (not a stderr prefix
    /// without `%d`).
    #[serde(default)]
    pub needs: Option<String>,
}

/// One scenario of the corpus.
pub struct Scenario {
    pub dir: PathBuf,
    pub labels: Labels,
}

/// The scenarios under `dir` (every folder with a `labels.json`), by name.
pub fn scenarios(dir: &Path) -> anyhow::Result<Vec<Scenario>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let labels = e.path().join("labels.json");
        if !labels.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&labels)?;
        let l: Labels = serde_json::from_str(&text)
            .map_err(|err| anyhow::anyhow!("{}: {err}", labels.display()))?;
        v.push(Scenario {
            dir: e.path(),
            labels: l,
        });
    }
    v.sort_by(|a, b| a.labels.scenario.cmp(&b.labels.scenario));
    Ok(v)
}

/// Whether `dir` holds a corpus (rather than a simulation).
pub fn is_corpus(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|rd| rd.flatten().any(|e| e.path().join("labels.json").is_file()))
}

/// Real-world addresses for the places labels name, found in the enrichment data itself so
/// that each really is where its label says.
pub struct Places<'a> {
    e: &'a Enricher,
    tor: Vec<IpAddr>,
    pools: BTreeMap<String, Vec<IpAddr>>,
    given: BTreeMap<(String, u64), IpAddr>,
}

/// Addresses looked for per place.
const POOL: usize = 40;

impl<'a> Places<'a> {
    pub fn new(e: &'a Enricher, tor: Vec<IpAddr>) -> Self {
        Places {
            e,
            tor,
            pools: BTreeMap::new(),
            given: BTreeMap::new(),
        }
    }

    fn pool(&mut self, place: &str) -> anyhow::Result<&Vec<IpAddr>> {
        if !self.pools.contains_key(place) {
            let v = self.find(place)?;
            if v.is_empty() {
                anyhow::bail!(
                    "no address of {place:?} in the enrichment data (is the shipped data there?)"
                );
            }
            self.pools.insert(place.to_string(), v);
        }
        Ok(&self.pools[place])
    }

    fn find(&self, place: &str) -> anyhow::Result<Vec<IpAddr>> {
        let mut rng = model::rng::Rng(0x5851_f42d_4c95_7f2d);
        let mut parts = place.split(':');
        let kind = parts.next().unwrap_or("");
        let mut v = Vec::new();
        match kind {
            "cloud" => {
                let provider = parts.next().unwrap_or("");
                let region = parts.next();
                let ranges: Vec<(u32, u8)> = self
                    .e
                    .cloud_ranges()
                    .map(|c| {
                        c.iter_v4()
                            .filter(|(_, len, r)| {
                                *len >= 16
                                    && r.provider.as_ref() == provider
                                    && region.is_none_or(|g| r.region.as_deref() == Some(g))
                            })
                            .map(|(n, l, _)| (n, l))
                            .collect()
                    })
                    .unwrap_or_default();
                for _ in 0..20_000 {
                    if ranges.is_empty() || v.len() >= POOL {
                        break;
                    }
                    let (net, len) = *rng.pick(&ranges);
                    let host = 1 + rng.below((1u64 << (32 - len)).saturating_sub(2).max(1)) as u32;
                    let ip = IpAddr::V4(Ipv4Addr::from(net + host));
                    let en = self.e.lookup(ip);
                    if en.cloud_provider.as_deref() == Some(provider)
                        && region.is_none_or(|g| en.cloud_region.as_deref() == Some(g))
                        && !v.contains(&ip)
                    {
                        v.push(ip);
                    }
                }
            }
            "isp" => {
                let country = parts.next().unwrap_or("");
                for _ in 0..5_000_000 {
                    if v.len() >= POOL {
                        break;
                    }
                    let ip = IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32));
                    let en = self.e.lookup(ip);
                    if en.class == Some(AddressClass::Public)
                        && en.cloud_provider.is_none()
                        && !en.tor_exit
                        && en.country.as_deref() == Some(country)
                    {
                        v.push(ip);
                    }
                }
            }
            "tor" => v = self.tor.clone(),
            "private" => {
                v = (1..=POOL as u8)
                    .map(|k| IpAddr::V4(Ipv4Addr::new(10, 20, 0, k)))
                    .collect()
            }
            _ => anyhow::bail!("unknown place {place:?} (cloud:…, isp:…, tor:…, private)"),
        }
        Ok(v)
    }

    /// The address of actor `seed` at `place`: the same for the same actor, another for
    /// another one. `tor:N` is the Nth exit of the list.
    pub fn address(&mut self, place: &str, seed: u64) -> anyhow::Result<IpAddr> {
        let key = (place.to_string(), seed);
        if let Some(ip) = self.given.get(&key) {
            return Ok(*ip);
        }
        let (pool_key, start) = match place.strip_prefix("tor:") {
            Some(n) => ("tor".to_string(), n.parse::<usize>().unwrap_or(0)),
            None => (place.to_string(), (seed % POOL as u64) as usize),
        };
        let pool = self.pool(&pool_key)?.clone();
        let taken: Vec<IpAddr> = self.given.values().copied().collect();
        let ip = (0..pool.len())
            .map(|k| pool[(start + k) % pool.len()])
            .find(|ip| !taken.contains(ip))
            .ok_or_else(|| anyhow::anyhow!("more actors at {place:?} than addresses found"))?;
        self.given.insert(key, ip);
        Ok(ip)
    }
}

/// Replaces each actor's 127.x address by its real-world one, wherever it stands (a
/// `connection received` line, `%h`, `%r`, csvlog's `connection_from`, jsonlog's
/// `remote_host`), whole addresses only.
pub fn rewrite(data: &[u8], map: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    let mut i = 0;
    let digitish = |c: u8| c.is_ascii_digit() || c == b'.';
    while i < data.len() {
        if data[i..].starts_with(b"127.") && (i == 0 || !digitish(data[i - 1])) {
            let n = data[i..].iter().take_while(|c| digitish(**c)).count();
            let mut ip = &data[i..i + n];
            // A sentence ending after the address: the dot is not part of it.
            if ip.ends_with(b".") {
                ip = &ip[..ip.len() - 1];
            }
            if let Some((_, to)) = map.iter().find(|(from, _)| from.as_bytes() == ip) {
                out.extend_from_slice(to.as_bytes());
                i += ip.len();
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

fn every_ms(every: &str) -> anyhow::Result<Option<EventTime>> {
    Ok(match every {
        "daily" | "workday" => None,
        other => Some(
            other
                .parse::<model::duration::Span>()
                .map_err(|e| anyhow::anyhow!("baseline every = {other:?}: {e}"))?
                .ms(),
        ),
    })
}

/// A session over the unix socket (`[local]`), as an administrator's or a cron job's.
fn local_session<W: Write>(
    log: &mut crate::Log<W>,
    t: EventTime,
    r: &Routine,
) -> std::io::Result<()> {
    log.pid += 1;
    let (role, db, app) = (r.role.as_str(), r.database.as_str(), r.application.as_str());
    let lines: [(EventTime, &str, &str, String); 3] = [
        (t, "", "", "connection received: host=[local]".to_string()),
        (
            t,
            role,
            db,
            format!("connection authorized: user={role} database={db} application_name={app}"),
        ),
        (
            t + 20,
            role,
            db,
            format!(
                "disconnection: session time: 0:00:00.020 user={role} database={db} host=[local]"
            ),
        ),
    ];
    for (ms, user, db, message) in lines {
        log.w.write(&crate::Entry {
            ms,
            pid: log.pid,
            host: "[local]",
            port: 0,
            user,
            db,
            app: if user.is_empty() { "" } else { app },
            severity: "LOG",
            sqlstate: "00000",
            message,
            detail: None,
        })?;
    }
    Ok(())
}

/// Writes the baseline: `days` of each routine, ending an hour before `until`.
fn write_baseline(
    out: &Path,
    format: LogFormat,
    routines: &[(Routine, Option<IpAddr>)],
    until: EventTime,
    days: i64,
) -> anyhow::Result<()> {
    let day = 86_400_000;
    let end = until - 3_600_000;
    let start = end - days * day;
    let mut acts: Vec<(EventTime, usize)> = Vec::new();
    for (k, (r, _)) in routines.iter().enumerate() {
        match every_ms(&r.every)? {
            Some(step) => {
                let mut t = start + (k as i64 * 37_000) % step.max(1);
                while t < end {
                    acts.push((t, k));
                    t += step.max(60_000);
                }
            }
            None => {
                for d in 0..days {
                    let at = start + d * day;
                    // Weekends: the offices are closed, nightly jobs run.
                    if r.every == "workday" && (d % 7 == 5 || d % 7 == 6) {
                        continue;
                    }
                    for h in if r.every == "workday" {
                        vec![9, 13, 16]
                    } else {
                        vec![2]
                    } {
                        acts.push((at + h * 3_600_000 + k as i64 * 61_000, k));
                    }
                }
            }
        }
    }
    acts.sort();
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut log = crate::Log {
        w: crate::LogWriter::new(file, format, false),
        pid: 100_000,
    };
    for (t, k) in acts {
        let (r, ip) = &routines[k];
        match ip {
            Some(ip) => {
                log.session(t, *ip, &r.role, &r.database, &r.application)?;
                if r.bare_connects {
                    log.received(t + 30_000, *ip)?;
                }
            }
            None => local_session(&mut log, t, r)?,
        }
    }
    log.w.flush()?;
    Ok(())
}

/// One scenario in one format, ready to run: the baseline and the rewritten recording, and
/// each actor's address.
pub struct Prepared {
    pub files: Vec<PathBuf>,
    pub addresses: BTreeMap<String, IpAddr>,
    pub format: LogFormat,
    /// Failed logins carry their database (not a stderr prefix without `%d`).
    pub failures_have_database: bool,
}

/// Writes `work/<format>/{baseline,recording}.<ext>` for scenario `s` in `format`; `None`
/// when the scenario was not recorded in it.
pub fn prepare(
    s: &Scenario,
    format: LogFormat,
    places: &mut Places<'_>,
    work: &Path,
) -> anyhow::Result<Option<Prepared>> {
    let ext = match format {
        LogFormat::Stderr => "log",
        LogFormat::Csvlog => "csv",
        LogFormat::Jsonlog => "json",
        // Scenarios are recorded from PostgreSQL's own logs.
        LogFormat::Pgbouncer => return Ok(None),
    };
    let src = s.dir.join(format!("postgresql.{ext}"));
    if !src.is_file() {
        return Ok(None);
    }
    // The same actor gets the same address in every format.
    let mut addresses = BTreeMap::new();
    for (addr, a) in &s.labels.actors {
        // Each actor's own address, whatever scenario it appears in.
        let seed = addr.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        addresses.insert(addr.clone(), places.address(&a.place, seed)?);
    }
    let map: Vec<(String, String)> = addresses
        .iter()
        .map(|(a, ip)| (a.clone(), ip.to_string()))
        .collect();
    let dir = work.join(format.to_string());
    std::fs::create_dir_all(&dir)?;
    let recording = dir.join(format!("recording.{ext}"));
    let raw = std::fs::read(&src).map_err(|e| anyhow::anyhow!("{}: {e}", src.display()))?;
    std::fs::write(&recording, rewrite(&raw, &map))?;
    let hints = sources::file::Hints {
        format: Some(format),
        prefix: None,
    };
    let lf = sources::file::inspect(&recording, &hints)?;
    let until = lf
        .first_time
        .ok_or_else(|| anyhow::anyhow!("{}: no timestamp", src.display()))?;
    let routines: Vec<(Routine, Option<IpAddr>)> = s
        .labels
        .baseline
        .iter()
        .map(|r| {
            if r.actor == "[local]" {
                return Ok((r.clone(), None));
            }
            let ip = addresses.get(&r.actor).copied().ok_or_else(|| {
                anyhow::anyhow!("baseline actor {} is not among the actors", r.actor)
            })?;
            Ok((r.clone(), Some(ip)))
        })
        .collect::<anyhow::Result<_>>()?;
    let baseline = dir.join(format!("baseline.{ext}"));
    write_baseline(&baseline, format, &routines, until, 14)?;
    let failures_have_database = match format {
        LogFormat::Stderr => lf
            .prefix
            .as_ref()
            .is_some_and(|p| p.as_str().contains("%d")),
        _ => true,
    };
    Ok(Some(Prepared {
        files: vec![baseline, recording],
        addresses,
        format,
        failures_have_database,
    }))
}

/// How one path (analyze, or run's streaming path) did on one scenario in one format.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Expectations met / that apply.
    pub found: usize,
    pub expected: usize,
    pub missing: Vec<String>,
    /// Alerts that blame a benign actor, or any alert of a benign scenario.
    pub false_positives: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.false_positives.is_empty()
    }
}

fn describe(a: &Alert) -> String {
    format!(
        "{} {} ({}) from {} as {}",
        a.severity,
        a.alert_type.as_str().trim_start_matches("PostgreSQL_"),
        a.display_name,
        a.entities.source_ip.as_deref().unwrap_or("-"),
        a.entities.principal.as_deref().unwrap_or("-"),
    )
}

fn names_tool(a: &Alert, tool: &str) -> bool {
    a.evidence.value()["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(tool)))
}

/// Scores the final alerts of one path against the labels.
pub fn score(labels: &Labels, p: &Prepared, alerts: &[Alert]) -> Outcome {
    let mut o = Outcome::default();
    let addr = |actor: &str| p.addresses.get(actor).map(|ip| ip.to_string());
    for e in &labels.expect {
        if e.needs.as_deref() == Some("database") && !p.failures_have_database {
            continue;
        }
        o.expected += 1;
        let want_src = e.source.as_deref().and_then(addr);
        // One login, one alert: an anomaly folded into another of the same login counts.
        let of_type = |a: &Alert| {
            a.alert_type == e.alert_type
                || a.evidence.value()["alsoUnusual"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x["alertType"] == e.alert_type.as_str()))
        };
        let hit = alerts.iter().any(|a| {
            of_type(a)
                && want_src
                    .as_deref()
                    .is_none_or(|s| a.entities.source_ip.as_deref() == Some(s))
                && e.principal
                    .as_deref()
                    .is_none_or(|r| a.entities.principal.as_deref() == Some(r))
                && e.severity.is_none_or(|s| a.severity == s)
                && e.tool.as_deref().is_none_or(|t| names_tool(a, t))
        });
        if hit {
            o.found += 1;
        } else {
            o.missing.push(format!(
                "{}{}{}{}",
                e.alert_type.as_str().trim_start_matches("PostgreSQL_"),
                e.severity.map(|s| format!(" {s}")).unwrap_or_default(),
                e.source
                    .as_deref()
                    .map(|s| format!(" from {s}"))
                    .unwrap_or_default(),
                e.tool
                    .as_deref()
                    .map(|t| format!(" naming {t}"))
                    .unwrap_or_default(),
            ));
        }
    }
    let benign: Vec<String> = labels
        .actors
        .iter()
        .filter(|(_, a)| a.benign)
        .filter_map(|(k, _)| addr(k))
        .collect();
    for a in alerts {
        let blames_benign = a
            .entities
            .source_ip
            .as_deref()
            .is_some_and(|s| benign.iter().any(|b| b == s));
        if labels.kind == "benign" || blames_benign {
            o.false_positives.push(describe(a));
        }
    }
    o
}

/// The final state of each alert of the streaming path (`run`): its last update.
pub fn final_states(updates: Vec<Alert>) -> Vec<Alert> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: std::collections::HashMap<String, Alert> = Default::default();
    for a in updates {
        if !by_id.contains_key(&a.id) {
            order.push(a.id.clone());
        }
        by_id.insert(a.id.clone(), a);
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

/// What makes two paths' alerts the same: type, id, severity, variant and counts.
pub fn signature(alerts: &[Alert]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .map(|a| {
            let ev = a.evidence.value();
            format!(
                "{} {} {} {} {} {} {}",
                a.id,
                a.alert_type.as_str(),
                a.severity,
                a.display_name,
                a.entities.source_ip.as_deref().unwrap_or("-"),
                ev.get("failedLogins")
                    .or(ev.get("events"))
                    .unwrap_or(&serde_json::Value::Null),
                a.end_time_utc,
            )
        })
        .collect();
    v.sort();
    v
}

/// Writes the scenario's recording rewritten to real-world addresses without a baseline
/// (for a look at what the corpus holds).
pub fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_whole_addresses_only() {
        let map = vec![
            ("127.0.0.6".to_string(), "198.51.100.6".to_string()),
            ("127.0.0.66".to_string(), "203.0.113.66".to_string()),
        ];
        let log =
            b"host=127.0.0.66 port=1\n127.0.0.6(5432) 127.0.0.61 \"127.0.0.66:7\" 127.0.0.6.\n";
        assert_eq!(
            String::from_utf8(rewrite(log, &map)).unwrap(),
            "host=203.0.113.66 port=1\n198.51.100.6(5432) 127.0.0.61 \"203.0.113.66:7\" 198.51.100.6.\n"
        );
    }
}
