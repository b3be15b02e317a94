//! An agent's queue of what the central store has to hear (`ship_queue`), written in the
//! transaction that stores the agent's own alerts and checkpoint, and read by its shipper.

use super::db::{vals, Db};
use super::{now_ms, Result, ServerReport, Store, StoreError};
use model::alert::Alert;
use serde::{Deserialize, Serialize};

/// What one local commit has for the central store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Batch {
    pub alerts: Vec<Alert>,
    pub report: Option<ServerReport>,
}

/// A batch waiting in an agent's queue.
#[derive(Debug)]
pub struct Queued {
    pub seq: i64,
    pub queued_at_ms: i64,
    pub batch: Batch,
}

/// What is waiting in an agent's queue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub batches: u64,
    /// Of those, holding alerts: they go at once.
    pub with_alerts: u64,
    /// When the oldest was queued (ms since the epoch).
    pub oldest_ms: Option<i64>,
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Queues an ingested batch for the central store, in the ingest's transaction.
pub(super) fn enqueue(
    tx: &mut dyn Db,
    alerts: &[Alert],
    report: Option<&ServerReport>,
) -> Result<()> {
    if alerts.is_empty() && report.is_none() {
        return Ok(());
    }
    let batch = Batch {
        alerts: alerts.to_vec(),
        report: report.cloned(),
    };
    let text = serde_json::to_string(&batch).map_err(|e| corrupt("a batch to ship", e))?;
    tx.exec(
        "INSERT INTO ship_queue (alerts, queued_at, batch) VALUES ($1, $2, $3)",
        vals![alerts.len() as i64, now_ms(), text.as_str()],
    )?;
    Ok(())
}

impl Store {
    /// This store's identity as an agent of a fleet (made when the file was).
    pub fn agent_id(&self) -> Result<String> {
        self.read(|c| {
            c.query_opt("SELECT id FROM agent", &[])?
                .map(|r| r.text(0))
                .transpose()?
                .ok_or_else(|| corrupt("agent id", "missing"))
        })
    }

    pub fn ship_backlog(&self) -> Result<Backlog> {
        self.read(|c| {
            let r = c.query_opt(
                "SELECT count(*), coalesce(sum(CASE WHEN alerts > 0 THEN 1 ELSE 0 END), 0),
                   min(queued_at) FROM ship_queue",
                &[],
            )?;
            Ok(match r {
                Some(r) => Backlog {
                    batches: r.int(0)? as u64,
                    with_alerts: r.int(1)? as u64,
                    oldest_ms: if r.int(0)? > 0 { Some(r.int(2)?) } else { None },
                },
                None => Backlog::default(),
            })
        })
    }

    /// Up to `limit` queued batches, oldest first.
    pub fn queued(&self, limit: usize) -> Result<Vec<Queued>> {
        self.read(|c| {
            c.query(
                &format!("SELECT seq, queued_at, batch FROM ship_queue ORDER BY seq LIMIT {limit}"),
                &[],
            )?
            .iter()
            .map(|r| {
                let seq = r.int(0)?;
                Ok(Queued {
                    seq,
                    queued_at_ms: r.int(1)?,
                    batch: serde_json::from_str(&r.text(2)?)
                        .map_err(|e| corrupt(&format!("queued batch {seq}"), e))?,
                })
            })
            .collect()
        })
    }

    /// Forgets the batches the central store holds (numbers up to `upto`).
    pub fn unqueue(&self, upto: i64) -> Result<usize> {
        self.write(|tx| tx.exec("DELETE FROM ship_queue WHERE seq <= $1", vals![upto]))
    }
}
