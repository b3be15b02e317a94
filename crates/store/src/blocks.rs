//! The proxy's blocks in the store: what each proxy enforces is read back from here, so a
//! restart keeps a blocked source out, every proxy of a fleet refuses it, and an operator
//! can lift a block from any API instance. Alerts dismissed or resolved are remembered, so
//! that their later updates do not block again.

use super::audit::{self, Action};
use super::db::{vals, Db};
use super::{now_utc, Result, Store, StoreError};
use serde_json::Value;

/// A block as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub source_ip: String,
    pub since: String,
    /// RFC 3339, the store's spelling: text order is time order.
    pub until: String,
    pub alert_type: String,
    pub alert_id: String,
    /// Every alert that asked for the block.
    pub causes: Vec<String>,
}

/// Lifted alerts remembered (the newest).
const LIFTED_KEPT: usize = 10_000;

fn rows(c: &mut dyn Db, sql: &str, args: &[super::db::Val]) -> Result<Vec<StoredBlock>> {
    c.query(sql, args)?
        .iter()
        .map(|r| {
            let causes = r.text(5)?;
            Ok(StoredBlock {
                source_ip: r.text(0)?,
                since: r.text(1)?,
                until: r.text(2)?,
                alert_type: r.text(3)?,
                alert_id: r.text(4)?,
                causes: serde_json::from_str(&causes).map_err(|e| StoreError::Corrupt {
                    what: "block".into(),
                    reason: e.to_string(),
                })?,
            })
        })
        .collect()
}

const COLUMNS: &str = "source_ip, since, until, alert_type, alert_id, causes";

/// Stores a block as it is, in place of the address's block if it has one.
fn put(tx: &mut dyn Db, b: &StoredBlock) -> Result<()> {
    tx.exec(
        "INSERT INTO blocks (source_ip, since, until, alert_type, alert_id, causes)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (source_ip) DO UPDATE SET since = excluded.since,
           until = excluded.until, alert_type = excluded.alert_type,
           alert_id = excluded.alert_id, causes = excluded.causes",
        vals![
            b.source_ip.as_str(),
            b.since.as_str(),
            b.until.as_str(),
            b.alert_type.as_str(),
            b.alert_id.as_str(),
            Value::from(b.causes.clone()).to_string()
        ],
    )?;
    Ok(())
}

pub(super) fn remember_lifted(tx: &mut dyn Db, ids: &[String], at: &str) -> Result<()> {
    for id in ids {
        tx.exec(
            "INSERT INTO lifted_alerts (alert_id, at) VALUES ($1, $2) ON CONFLICT (alert_id) DO NOTHING",
            vals![id.as_str(), at],
        )?;
    }
    Ok(())
}

impl Store {
    /// Saves blocks started or extended: a block already stored keeps its start and the
    /// later end, and gathers the causes of both. A block whose causes were all lifted
    /// meanwhile (by another API instance) is not saved: a proxy that has not heard of the
    /// lift yet must not undo it.
    pub fn save_blocks(&self, blocks: &[StoredBlock]) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            // Ended blocks go when new ones come.
            tx.exec("DELETE FROM blocks WHERE until <= $1", vals![now_utc()])?;
            for b in blocks {
                let mut live = Vec::new();
                for c in &b.causes {
                    let lifted = tx
                        .query_opt(
                            "SELECT 1 FROM lifted_alerts WHERE alert_id = $1",
                            vals![c.as_str()],
                        )?
                        .is_some();
                    if !lifted {
                        live.push(c.clone());
                    }
                }
                if live.is_empty() {
                    continue;
                }
                let b = &StoredBlock {
                    causes: live,
                    ..b.clone()
                };
                let old = rows(
                    tx,
                    &format!("SELECT {COLUMNS} FROM blocks WHERE source_ip = $1"),
                    vals![b.source_ip.as_str()],
                )?
                .pop();
                let mut merged = b.clone();
                if let Some(o) = old {
                    merged.since = o.since.min(b.since.clone());
                    if o.until > b.until {
                        merged.until = o.until;
                    }
                    for c in o.causes {
                        if !merged.causes.contains(&c) {
                            merged.causes.push(c);
                        }
                    }
                }
                put(tx, &merged)?;
            }
            Ok(())
        })
    }

    /// Blocks in force at `now` (RFC 3339). A read: proxies ask every second.
    pub fn active_blocks(&self, now: &str) -> Result<Vec<StoredBlock>> {
        self.read(|c| {
            rows(
                c,
                &format!("SELECT {COLUMNS} FROM blocks WHERE until > $1 ORDER BY source_ip"),
                vals![now],
            )
        })
    }

    /// Alerts dismissed or resolved (or whose block was lifted): they block no more.
    pub fn lifted_alerts(&self) -> Result<Vec<String>> {
        self.read(|c| {
            c.query(
                &format!("SELECT alert_id FROM lifted_alerts ORDER BY at DESC LIMIT {LIFTED_KEPT}"),
                &[],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
        })
    }

    /// An operator lifts the block of `ip` (`also` names the causes a proxy of this process
    /// knew of): it and its causes block no more, and the trail says who. Whether a block
    /// was stored.
    pub fn lift_block(
        &self,
        ip: &str,
        also: &[String],
        actor: &str,
    ) -> Result<Option<StoredBlock>> {
        self.write(|tx| {
            let old = rows(
                tx,
                &format!("SELECT {COLUMNS} FROM blocks WHERE source_ip = $1"),
                vals![ip],
            )?
            .pop();
            tx.exec("DELETE FROM blocks WHERE source_ip = $1", vals![ip])?;
            let now = now_utc();
            let mut causes: Vec<String> = also.to_vec();
            if let Some(o) = &old {
                causes.extend(o.causes.iter().cloned());
            }
            remember_lifted(tx, &causes, &now)?;
            if old.is_some() || !also.is_empty() {
                audit::record(
                    tx,
                    actor,
                    Action::BlockLift,
                    ip,
                    &serde_json::json!({"blockedBy": old.as_ref().map(|o| o.alert_id.clone()).or_else(|| also.last().cloned()), "until": old.as_ref().map(|o| o.until.clone())}),
                    &now,
                )?;
            }
            Ok(old)
        })
    }

    /// An operator blocks the source of an alert by hand until `until`: every proxy of the
    /// fleet refuses it from its next exchange with the store. A block already in force
    /// keeps its start and the later end. The alert blocks again even if it was lifted
    /// before (the operator's newer word), and the block goes into the trail.
    pub fn block_by_hand(
        &self,
        ip: &str,
        alert: (&str, &str),
        until: &str,
        actor: &str,
    ) -> Result<StoredBlock> {
        let (alert_id, alert_type) = alert;
        self.write(|tx| {
            let now = now_utc();
            tx.exec(
                "DELETE FROM lifted_alerts WHERE alert_id = $1",
                vals![alert_id],
            )?;
            let old = rows(
                tx,
                &format!("SELECT {COLUMNS} FROM blocks WHERE source_ip = $1 AND until > $2"),
                vals![ip, now.as_str()],
            )?
            .pop();
            let mut b = StoredBlock {
                source_ip: ip.to_string(),
                since: now.clone(),
                until: until.to_string(),
                alert_type: alert_type.to_string(),
                alert_id: alert_id.to_string(),
                causes: vec![alert_id.to_string()],
            };
            if let Some(o) = old {
                b.since = o.since;
                b.until = b.until.max(o.until);
                b.causes
                    .extend(o.causes.into_iter().filter(|c| c != alert_id));
            }
            put(tx, &b)?;
            audit::record(
                tx,
                actor,
                Action::BlockPut,
                ip,
                &serde_json::json!({"alertId": alert_id, "until": b.until}),
                &now,
            )?;
            Ok(b)
        })
    }

    /// The alert was dismissed or resolved: it blocks no more, and the blocks it caused are
    /// lifted (their other causes with them). `local` are the addresses a proxy of this
    /// process lifted for it. Each lifted address goes into the trail.
    pub fn lift_blocks_of_alert(
        &self,
        alert_id: &str,
        local: &[(String, Vec<String>)],
        actor: &str,
    ) -> Result<Vec<String>> {
        self.write(|tx| {
            let now = now_utc();
            let pattern = format!("%{}%", Value::from(alert_id));
            let stored = rows(
                tx,
                &format!("SELECT {COLUMNS} FROM blocks WHERE causes LIKE $1"),
                vals![pattern.as_str()],
            )?;
            let mut lifted: Vec<(String, Vec<String>)> = local.to_vec();
            for b in stored
                .into_iter()
                .filter(|b| b.causes.iter().any(|c| c == alert_id))
            {
                tx.exec(
                    "DELETE FROM blocks WHERE source_ip = $1",
                    vals![b.source_ip.as_str()],
                )?;
                match lifted.iter_mut().find(|(ip, _)| *ip == b.source_ip) {
                    Some((_, c)) => c.extend(b.causes),
                    None => lifted.push((b.source_ip, b.causes)),
                }
            }
            remember_lifted(tx, &[alert_id.to_string()], &now)?;
            for (ip, causes) in &lifted {
                remember_lifted(tx, causes, &now)?;
                audit::record(
                    tx,
                    actor,
                    Action::BlockLift,
                    ip,
                    &serde_json::json!({"blockedBy": alert_id, "viaAlert": alert_id}),
                    &now,
                )?;
            }
            Ok(lifted.into_iter().map(|(ip, _)| ip).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::temp_store;

    fn block(ip: &str, until: &str, causes: &[&str]) -> StoredBlock {
        StoredBlock {
            source_ip: ip.into(),
            since: "2099-12-01T00:00:00.000Z".into(),
            until: until.into(),
            alert_type: "PostgreSQL_BruteForce".into(),
            alert_id: causes.last().unwrap().to_string(),
            causes: causes.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn blocks_survive_merge_end_and_lift_with_their_alerts() {
        let (dir, s) = temp_store();
        s.save_blocks(&[
            block("203.0.113.7", "2099-12-01T00:15:00.000Z", &["a1"]),
            block("203.0.113.8", "2099-12-01T00:05:00.000Z", &["b1"]),
        ])
        .unwrap();
        // A later alert extends the block and adds its cause.
        s.save_blocks(&[block("203.0.113.7", "2099-12-01T00:20:00.000Z", &["a2"])])
            .unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("pgvigil.db")).unwrap();
        let active = s.active_blocks("2099-12-01T00:10:00.000Z").unwrap();
        assert_eq!(active.len(), 1, "the ended block is gone: {active:?}");
        assert_eq!(active[0].until, "2099-12-01T00:20:00.000Z");
        assert_eq!(active[0].causes, ["a2", "a1"]);
        // Dismissing a1 lifts the block, and a2 with it.
        let lifted = s.lift_blocks_of_alert("a1", &[], "alice").unwrap();
        assert_eq!(lifted, ["203.0.113.7"]);
        assert!(s
            .active_blocks("2099-12-01T00:10:00.000Z")
            .unwrap()
            .is_empty());
        let mut l = s.lifted_alerts().unwrap();
        l.sort();
        assert_eq!(l, ["a1", "a2"]);
        let trail = s
            .audit_log(&crate::audit::AuditQuery {
                top: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (trail[0].action.as_str(), trail[0].target.as_str()),
            ("block.lift", "203.0.113.7")
        );
        // A proxy that has not heard of the lift yet cannot undo it.
        s.save_blocks(&[block(
            "203.0.113.7",
            "2099-12-01T00:30:00.000Z",
            &["a1", "a2"],
        )])
        .unwrap();
        assert!(s
            .active_blocks("2099-12-01T00:10:00.000Z")
            .unwrap()
            .is_empty());
        // A lift by address.
        s.save_blocks(&[block("198.51.100.1", "2099-12-01T00:20:00.000Z", &["c1"])])
            .unwrap();
        assert!(s.lift_block("198.51.100.1", &[], "bob").unwrap().is_some());
        assert!(s.lift_block("198.51.100.1", &[], "bob").unwrap().is_none());
        assert!(s.lifted_alerts().unwrap().contains(&"c1".to_string()));
    }
}
