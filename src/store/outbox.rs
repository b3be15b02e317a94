//! The notification outbox: one row per (alert update, channel), written in the same
//! transaction as the alert. A sender takes due rows, delivers, and marks them delivered or
//! schedules a retry, so a notification survives a receiver that is down and a restart of
//! pgvigil, and the unique key means one alert update is never queued twice.

use super::{Result, Store, StoreError};
use crate::alert::Alert;
use crate::policy::Policy;
use rusqlite::params;

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub seq: i64,
    pub alert_id: String,
    pub version: i64,
    pub channel: String,
    /// The alert record as JSON.
    pub payload: String,
    pub recipients: Vec<String>,
    pub attempts: u32,
}

pub(super) fn enqueue(
    tx: &rusqlite::Connection,
    a: &Alert,
    version: i64,
    channels: &[String],
    policy: &Policy,
    admins: &[String],
    now: &str,
) -> Result<usize> {
    let payload = serde_json::to_string(a).map_err(|e| StoreError::Corrupt {
        what: format!("alert {}", a.id),
        reason: e.to_string(),
    })?;
    let mut n = 0;
    for ch in channels {
        let recipients = if ch == "email" {
            let mut r: Vec<String> = policy.email_addresses.clone();
            if policy.email_account_admins {
                for a in admins {
                    if !r.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                        r.push(a.clone());
                    }
                }
            }
            if r.is_empty() {
                continue;
            }
            Some(r.join(";"))
        } else {
            None
        };
        n += tx.execute(
            "INSERT INTO outbox (alert_id, version, channel, payload, recipients, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![a.id, version, ch, payload, recipients, now],
        )?;
    }
    Ok(n)
}

impl Store {
    /// Undelivered notifications whose next attempt is due, oldest first.
    pub fn outbox_due(&self, now: &str, limit: usize) -> Result<Vec<OutboxItem>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, alert_id, version, channel, payload, recipients, attempts FROM outbox
                 WHERE delivered_at IS NULL AND next_attempt <= ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64], |r| {
                Ok(OutboxItem {
                    seq: r.get(0)?,
                    alert_id: r.get(1)?,
                    version: r.get(2)?,
                    channel: r.get(3)?,
                    payload: r.get(4)?,
                    recipients: r
                        .get::<_, Option<String>>(5)?
                        .map(|s| s.split(';').map(String::from).collect())
                        .unwrap_or_default(),
                    attempts: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn outbox_delivered(&self, seq: i64, now: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE seq = ?1",
                params![seq, now],
            )?;
            Ok(())
        })
    }

    pub fn outbox_failed(&self, seq: i64, error: &str, next_attempt: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt = ?3
                 WHERE seq = ?1",
                params![seq, crate::event::truncate(error, 1000), next_attempt],
            )?;
            Ok(())
        })
    }

    /// (undelivered, of which failing) notifications.
    pub fn outbox_backlog(&self) -> Result<(u64, u64)> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*), count(last_error) FROM outbox WHERE delivered_at IS NULL",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )?)
        })
    }
}
