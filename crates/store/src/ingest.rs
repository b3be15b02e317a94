//! Storing what the detectors report: a batch's alerts (each new one inserted, an update
//! folded into its alert, its notifications queued), the checkpoint and server report that
//! go with them, and on a central store the fleet alerts they make. One transaction a batch.

use super::db::{vals, Db};
use super::fleet::{correlate, lock_key, ORPHANED_MS};
use super::{now_utc, Result, Store, StoreError};
use model::alert::{Alert, Severity};
use model::policy::Policy;
use std::collections::HashMap;

/// One batch of detector output for the store.
#[derive(Default)]
pub struct Ingest<'a> {
    pub alerts: &'a [Alert],
    /// Sample alerts from `simulate`.
    pub simulated: bool,
    /// Notification channels to queue each new or escalated alert on (`email` is queued only
    /// when the policy names recipients).
    pub channels: &'a [super::Channel],
    /// Addresses mailed when a policy has `emailAccountAdmins`.
    pub admins: &'a [String],
    /// Checkpoint to save with the alerts, for this server.
    pub checkpoint: Option<(&'a str, &'a [u8])>,
    pub report: Option<&'a super::ServerReport>,
    /// Also queue the alerts and report for the central store (an agent's own store), in
    /// the same transaction as its checkpoint.
    pub ship: bool,
    /// The batch's own alerts were notified by their agent: queue notifications only for the
    /// fleet alerts they raise here.
    pub notified: bool,
}

#[derive(Debug, Default)]
pub struct Ingested {
    /// Alerts the servers' policies let through, with their stored status.
    pub accepted: Vec<Alert>,
    /// Alerts a policy turned off.
    pub suppressed: usize,
    /// Notifications queued.
    pub queued: usize,
    /// New alerts a suppression rule dismissed: (alert id, rule name).
    pub dismissed_by_rule: Vec<(String, String)>,
    /// Sources whose fleet alert is worked out once the batch has committed (a central
    /// store).
    pub(crate) fleet_sources: Vec<String>,
}

impl Ingested {
    /// Adds what a later step (a fleet alert worked out after the commit) stored.
    pub(crate) fn absorb(&mut self, more: Ingested) {
        self.accepted.extend(more.accepted);
        self.suppressed += more.suppressed;
        self.queued += more.queued;
        self.dismissed_by_rule.extend(more.dismissed_by_rule);
    }
}

/// Where the next page starts: after this alert, in the query's order.
impl Store {
    /// Stores a batch of alerts (new ones inserted, updates folded into their alert), queues
    /// notifications for new and escalated alerts, and saves the checkpoint and server report,
    /// all in one transaction.
    pub fn ingest(&self, batch: Ingest<'_>) -> Result<Ingested> {
        let mut out = self.write(|tx| ingest(tx, &batch))?;
        let fleet = self.settle(&out.fleet_sources, batch.channels, batch.admins);
        out.absorb(fleet);
        Ok(out)
    }
}

/// A server's policy, read once per batch.
pub(super) fn cached_policy<'p>(
    tx: &mut dyn Db,
    cache: &'p mut HashMap<String, Policy>,
    server: &str,
) -> Result<&'p Policy> {
    if !cache.contains_key(server) {
        let p = super::policies::load(tx, server)?;
        cache.insert(server.to_string(), p);
    }
    Ok(&cache[server])
}

/// `Store::ingest`'s work, in the caller's transaction.
pub(super) fn ingest(tx: &mut dyn Db, batch: &Ingest<'_>) -> Result<Ingested> {
    let mut out = Ingested::default();
    let mut policies: HashMap<String, Policy> = HashMap::new();
    let now = now_utc();
    let rules = if batch.alerts.is_empty() || batch.simulated {
        Vec::new()
    } else {
        super::suppression::all(tx)?
    };
    // On a central store, fleet alerts are worked out after this commit (`Store::settle`):
    // here a batch only notes its sources. A local store has one writer, and works them out
    // at once.
    let central = !tx.is_sqlite();
    // Several updates of one alert in a batch are one update: its last state.
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, a) in batch.alerts.iter().enumerate() {
        last.insert(a.id.as_str(), i);
    }
    for (i, a) in batch.alerts.iter().enumerate() {
        if last[a.id.as_str()] != i {
            continue;
        }
        let policy = cached_policy(tx, &mut policies, &a.server)?;
        let admitted = admit(
            tx,
            a,
            &rules,
            policy,
            batch,
            !batch.notified,
            &now,
            &mut out,
        )?;
        if batch.simulated || !admitted {
            continue;
        }
        if central {
            if let Some(ip) = super::fleet::note(tx, a, &now)? {
                out.fleet_sources.push(ip);
            }
        } else if let Some(fleet) = super::fleet::correlate(tx, a)? {
            raise_fleet_alert(tx, &fleet, &rules, &mut policies, batch, &now, &mut out)?;
        }
    }
    if let Some((server, data)) = batch.checkpoint {
        tx.exec(
            "INSERT INTO checkpoints (server, data, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (server) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            vals![server, data, now.as_str()],
        )?;
    }
    if let Some(r) = batch.report {
        super::servers::report(tx, r, &now)?;
    }
    if batch.ship {
        super::queue::enqueue(tx, batch.alerts, batch.report)?;
    }
    Ok(out)
}

/// Stores (and queues the notifications of) a fleet alert as its policy and the rules say.
pub(super) fn raise_fleet_alert(
    tx: &mut dyn Db,
    fleet: &Alert,
    rules: &[model::suppression::Rule],
    policies: &mut HashMap<String, Policy>,
    batch: &Ingest<'_>,
    now: &str,
    out: &mut Ingested,
) -> Result<()> {
    tx.exec(
        "INSERT INTO servers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        vals![super::fleet::FLEET],
    )?;
    let policy = cached_policy(tx, policies, super::fleet::FLEET)?;
    admit(tx, fleet, rules, policy, batch, true, now, out)?;
    Ok(())
}

/// Stores `a` if its policy allows it; with `queue`, its notifications too.
#[allow(clippy::too_many_arguments)]
pub(super) fn admit(
    tx: &mut dyn Db,
    a: &Alert,
    rules: &[model::suppression::Rule],
    policy: &Policy,
    batch: &Ingest<'_>,
    queue: bool,
    now: &str,
    out: &mut Ingested,
) -> Result<bool> {
    if !policy.allows(a.alert_type) {
        out.suppressed += 1;
        return Ok(false);
    }
    let simulated = batch.simulated;
    let rule = rules.iter().find(|r| r.suppresses(a, now));
    let (stored, notify, suppressed) = upsert(tx, a, simulated, rule, now)?;
    if let Some(r) = rule.filter(|_| suppressed) {
        // Dismissed as raised: like a person's dismissal, it blocks no source (for this
        // fleet's proxies, and for this one after a restart).
        super::blocks::remember_lifted(tx, std::slice::from_ref(&a.id), now)?;
        out.dismissed_by_rule.push((a.id.clone(), r.name.clone()));
    }
    if let Some(version) = notify.filter(|_| queue) {
        out.queued += super::outbox::enqueue(
            tx,
            &stored,
            simulated,
            version,
            batch.channels,
            policy,
            batch.admins,
            now,
        )?;
    }
    out.accepted.push(stored);
    Ok(true)
}

/// Inserts a new alert (dismissed at once if `rule` matches it) or folds an update into the
/// stored one. Returns the alert as stored, the version to notify when it is new or
/// escalated, and whether the rule dismissed it.
fn upsert(
    tx: &mut dyn Db,
    a: &Alert,
    simulated: bool,
    rule: Option<&model::suppression::Rule>,
    now: &str,
) -> Result<(Alert, Option<i64>, bool)> {
    let record = serde_json::to_string(a).map_err(|e| StoreError::Corrupt {
        what: format!("alert {}", a.id),
        reason: e.to_string(),
    })?;
    let mut stored = a.clone();
    let prev = match stored_state(tx, &a.id)? {
        Some(prev) => prev,
        None => {
            // New: stored in this month's partition for its whole life. Another writer may
            // store the same (fleet) alert at the same moment, so the insert decides, not
            // the look just taken.
            let part = &now[..7];
            let inserted = tx.exec(
                "INSERT INTO alerts (id, part, server, alert_type, severity, display_name, status,
                   start_time, end_time, source_ip, principal, is_simulated, version, record,
                   created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'Active', $7, $8, $9, $10, $11, 1, $12, $13, $13)
                 ON CONFLICT DO NOTHING",
                vals![
                    a.id.as_str(),
                    part,
                    a.server.as_str(),
                    a.alert_type.as_str(),
                    a.severity.to_string(),
                    a.display_name.as_str(),
                    a.start_time_utc.as_str(),
                    a.end_time_utc.as_str(),
                    &a.entities.source_ip,
                    &a.entities.principal,
                    simulated,
                    record.as_str(),
                    now
                ],
            )?;
            if inserted == 1 {
                history(tx, &a.id, part, now, "pgvigil", "raised", None, "Active")?;
                stored.status = "Active".into();
                if let Some(r) = rule {
                    // Known and judged benign ahead of time: stored for the record, told to
                    // no one.
                    tx.exec(
                        "UPDATE alerts SET status = 'Dismissed' WHERE id = $1 AND part = $2",
                        vals![a.id.as_str(), part],
                    )?;
                    history(
                        tx,
                        &a.id,
                        part,
                        now,
                        &format!("rule:{}", r.name),
                        "suppressed",
                        Some("Active"),
                        "Dismissed",
                    )?;
                    stored.status = "Dismissed".into();
                    return Ok((stored, None, true));
                }
                return Ok((stored, Some(1), false));
            }
            stored_state(tx, &a.id)?.ok_or_else(|| StoreError::Corrupt {
                what: format!("alert {}", a.id),
                reason: "vanished during its update".into(),
            })?
        }
    };
    let (status, severity, display_name, version) =
        (prev.text(0)?, prev.text(1)?, prev.text(2)?, prev.int(3)?);
    let prev_end = prev.text(4)?;
    let part = prev.text(6)?;
    // An update older than what is stored (the log read again after a crash, from the last
    // checkpoint) changes nothing and notifies no one: the stored alert is further along.
    if a.end_time_utc.as_str() < prev_end.as_str()
        || (a.end_time_utc == prev_end && a.severity < severity_of(&severity))
    {
        let mut was: Alert =
            serde_json::from_str(&prev.text(5)?).map_err(|e| StoreError::Corrupt {
                what: format!("alert {}", a.id),
                reason: e.to_string(),
            })?;
        was.status = status;
        return Ok((was, None, false));
    }
    let escalated = a.severity > severity_of(&severity)
        || (a.display_name != display_name && a.end_time_utc.as_str() > prev_end.as_str());
    let version = version + i64::from(escalated);
    // New evidence does not undo a person's decision, but an escalation (a brute force that
    // now succeeded) is news even on a dismissed alert.
    let status = if escalated && status != "Active" {
        history(
            tx,
            &a.id,
            &part,
            now,
            "pgvigil",
            "escalated",
            Some(&status),
            "Active",
        )?;
        "Active".to_string()
    } else {
        status
    };
    let severity_text = a.severity.to_string();
    // With the same severity and name there is no escalation, so status and version stand.
    if severity_text == severity
        && a.display_name == display_name
        && a.start_time_utc == prev.str(7)?
    {
        // Most updates only carry the incident on: the columns that did not change are not
        // set, so neither the indexes on them nor the counts' triggers are written.
        tx.exec(
            "UPDATE alerts SET end_time = $2, record = $3, updated_at = $4
             WHERE id = $1 AND part = $5",
            vals![
                a.id.as_str(),
                a.end_time_utc.as_str(),
                record.as_str(),
                now,
                part.as_str()
            ],
        )?;
    } else {
        tx.exec(
            "UPDATE alerts SET severity = $2, display_name = $3, status = $4,
               start_time = $5, end_time = $6, version = $7, record = $8, updated_at = $9
             WHERE id = $1 AND part = $10",
            vals![
                a.id.as_str(),
                severity_text,
                a.display_name.as_str(),
                status.as_str(),
                a.start_time_utc.as_str(),
                a.end_time_utc.as_str(),
                version,
                record.as_str(),
                now,
                part.as_str()
            ],
        )?;
    }
    stored.status = status;
    Ok((stored, escalated.then_some(version), false))
}

/// A stored alert's status, severity, display name, version, end, record, month and start.
fn stored_state(tx: &mut dyn Db, id: &str) -> Result<Option<super::db::Row>> {
    tx.query_opt(
        "SELECT status, severity, display_name, version, end_time, record, part, start_time
         FROM alerts WHERE id = $1",
        vals![id],
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn history(
    tx: &mut dyn Db,
    id: &str,
    part: &str,
    at: &str,
    actor: &str,
    action: &str,
    from: Option<&str>,
    to: &str,
) -> Result<()> {
    tx.exec(
        "INSERT INTO alert_history (alert_id, part, at, actor, action, from_status, to_status)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vals![id, part, at, actor, action, from, to],
    )?;
    Ok(())
}

impl super::Store {
    /// Works out the fleet alerts of `sources` (noted by batches that have committed), and
    /// of any source whose agent stopped before doing so. One source at a time, under its
    /// lock: the first agent there takes every batch noted so far, and those behind it find
    /// nothing left to do, so a campaign seen by a hundred agents costs one correlation per
    /// round, not a hundred in a queue. Failures are logged: the batches are stored, and
    /// their notes wait for the next agent.
    pub(crate) fn settle(
        &self,
        sources: &[String],
        channels: &[super::Channel],
        admins: &[String],
    ) -> Ingested {
        let mut out = Ingested::default();
        if !self.is_central() {
            return out;
        }
        let mut todo: Vec<String> = sources.to_vec();
        let stale = model::event::format_time(super::now_ms() - ORPHANED_MS);
        match self.read(|c| {
            c.query(
                "SELECT DISTINCT source FROM fleet_pending WHERE at < $1 LIMIT 20",
                vals![stale.as_str()],
            )
        }) {
            Ok(rows) => todo.extend(rows.iter().filter_map(|r| r.text(0).ok())),
            Err(e) => tracing::warn!(error = %e, "fleet alerts: cannot read the noted sources"),
        }
        todo.sort();
        todo.dedup();
        let batch = super::Ingest {
            channels,
            admins,
            ..Default::default()
        };
        for ip in todo {
            match super::db::retry_conflicts(|| self.write(|tx| settle(tx, &ip, &batch))) {
                Ok(more) => out.absorb(more),
                Err(e) => tracing::warn!(source = %ip, error = %e, "fleet alert not worked out"),
            }
        }
        out
    }
}

/// The fleet alert of `ip`, from every member alert stored so far, if a batch noted the
/// source since the last time.
fn settle(tx: &mut dyn Db, ip: &str, batch: &super::Ingest<'_>) -> Result<Ingested> {
    let mut out = Ingested::default();
    tx.lock(lock_key(ip))?;
    let noted = tx.query(
        "DELETE FROM fleet_pending WHERE source = $1 RETURNING alert_id, end_time",
        vals![ip],
    )?;
    // Around the member that ended last (the campaign as it now stands).
    let mut latest: Option<(String, String)> = None;
    for r in &noted {
        let (id, end) = (r.text(0)?, r.text(1)?);
        if latest.as_ref().is_none_or(|(_, e)| end > *e) {
            latest = Some((id, end));
        }
    }
    let Some((id, _)) = latest else {
        return Ok(out);
    };
    let Some(row) = tx.query_opt(
        "SELECT record FROM alerts WHERE id = $1",
        vals![id.as_str()],
    )?
    else {
        return Ok(out);
    };
    let Ok(a) = serde_json::from_str::<Alert>(&row.text(0)?) else {
        return Ok(out);
    };
    if let Some(fleet) = correlate(tx, &a)? {
        let now = super::now_utc();
        let rules = super::suppression::all(tx)?;
        let mut policies = std::collections::HashMap::new();
        raise_fleet_alert(tx, &fleet, &rules, &mut policies, batch, &now, &mut out)?;
    }
    Ok(out)
}

fn severity_of(s: &str) -> Severity {
    match s {
        "High" => Severity::High,
        "Medium" => Severity::Medium,
        _ => Severity::Low,
    }
}
