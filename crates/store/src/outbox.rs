//! The notification outbox: one row per (alert update, channel), written in the same
//! transaction as the alert. A sender takes due rows, delivers, and marks them delivered or
//! schedules a retry, so a notification survives a receiver that is down and a restart of
//! pgvigil, and the unique key means one alert update is never queued twice.

use super::db::{vals, Db, Val};
use super::{Result, Store, StoreError};
use model::alert::Alert;
use model::policy::Policy;

/// Where a notification goes: the e-mail channel, or a webhook or syslog receiver by the
/// name the configuration gives it. Stored in the outbox as `email`, `webhook:NAME` or
/// `syslog:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Webhook(String),
    Syslog(String),
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Email => f.write_str("email"),
            Channel::Webhook(name) => write!(f, "webhook:{name}"),
            Channel::Syslog(name) => write!(f, "syslog:{name}"),
        }
    }
}

/// An outbox row's channel that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}")]
pub struct UnknownChannel(pub String);

impl std::str::FromStr for Channel {
    type Err = UnknownChannel;
    fn from_str(s: &str) -> std::result::Result<Channel, UnknownChannel> {
        if s == "email" {
            return Ok(Channel::Email);
        }
        match s.split_once(':') {
            Some(("webhook", name)) => Ok(Channel::Webhook(name.to_string())),
            Some(("syslog", name)) => Ok(Channel::Syslog(name.to_string())),
            _ => Err(UnknownChannel(s.to_string())),
        }
    }
}

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

/// Queues alert `a` on `channels`. The payload is the record as the API serves it, with
/// `isSimulated`, so that a receiver can tell a sample from an attack.
#[allow(clippy::too_many_arguments)]
pub(super) fn enqueue(
    tx: &mut dyn Db,
    a: &Alert,
    simulated: bool,
    version: i64,
    channels: &[Channel],
    policy: &Policy,
    admins: &[String],
    now: &str,
) -> Result<usize> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        what: format!("alert {}", a.id),
        reason: e.to_string(),
    };
    let mut record = serde_json::to_value(a).map_err(corrupt)?;
    if let Some(o) = record.as_object_mut() {
        o.insert("isSimulated".into(), serde_json::Value::Bool(simulated));
    }
    let payload = serde_json::to_string(&record).map_err(corrupt)?;
    let mut n = 0;
    for ch in channels {
        let recipients = if *ch == Channel::Email {
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
        n += tx.exec(
            "INSERT INTO outbox (alert_id, version, channel, payload, recipients, next_attempt)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            vals![
                a.id.as_str(),
                version,
                ch.to_string(),
                payload.as_str(),
                recipients,
                now
            ],
        )?;
    }
    Ok(n)
}

impl Store {
    /// Takes up to `limit` due notifications on `channels` for delivery: each is leased
    /// until `lease_until`, so that other agents sharing a central store leave it alone; a
    /// sender that dies mid-delivery loses its lease and the item is tried again.
    pub fn outbox_claim(
        &self,
        channels: &[Channel],
        now: &str,
        lease_until: &str,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..channels.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT seq, alert_id, version, channel, payload, recipients, attempts, next_attempt
             FROM outbox WHERE delivered_at IS NULL AND next_attempt <= $1
             AND channel IN ({}) ORDER BY seq LIMIT {}",
            marks.join(", "),
            limit.max(1)
        );
        let mut args = vec![Val::from(now)];
        args.extend(channels.iter().map(|c| Val::from(c.to_string())));
        let due = self.read(|c| c.query(&sql, &args))?;
        let mut out = Vec::new();
        for r in due {
            let seq = r.int(0)?;
            let was = r.text(7)?;
            let claimed = self.write(|tx| {
                tx.exec(
                    "UPDATE outbox SET next_attempt = $3 WHERE seq = $1 AND next_attempt = $2
                     AND delivered_at IS NULL",
                    vals![seq, was.as_str(), lease_until],
                )
            })?;
            if claimed == 1 {
                out.push(OutboxItem {
                    seq,
                    alert_id: r.text(1)?,
                    version: r.int(2)?,
                    channel: r.text(3)?,
                    payload: r.text(4)?,
                    recipients: r
                        .opt_text(5)?
                        .map(|s| s.split(';').map(String::from).collect())
                        .unwrap_or_default(),
                    attempts: r.int(6)? as u32,
                });
            }
        }
        Ok(out)
    }

    pub fn outbox_delivered(&self, seq: i64, now: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL
                 WHERE seq = $1",
                vals![seq, now],
            )?;
            Ok(())
        })
    }

    pub fn outbox_failed(&self, seq: i64, error: &str, next_attempt: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt = $3
                 WHERE seq = $1",
                vals![seq, model::event::truncate(error, 1000), next_attempt],
            )?;
            Ok(())
        })
    }

    /// (undelivered, of which failing) notifications.
    pub fn outbox_backlog(&self) -> Result<(u64, u64)> {
        self.read(|c| {
            let r = c
                .query_opt(
                    "SELECT count(*), count(last_error) FROM outbox WHERE delivered_at IS NULL",
                    &[],
                )?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "outbox".into(),
                    reason: "no count".into(),
                })?;
            Ok((r.int(0)? as u64, r.int(1)? as u64))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Channel;

    /// A channel reads back from the outbox as the one queued, whatever its name holds; a
    /// row this version does not know is said to be so (and refused, not retried).
    #[test]
    fn channels_read_back_as_queued() {
        for c in [
            Channel::Email,
            Channel::Webhook("soc".into()),
            Channel::Webhook("a:b".into()),
            Channel::Syslog("".into()),
        ] {
            assert_eq!(c.to_string().parse::<Channel>(), Ok(c.clone()), "{c}");
        }
        assert_eq!(Channel::Webhook("soc".into()).to_string(), "webhook:soc");
        let e = "pager:ops".parse::<Channel>().unwrap_err();
        assert_eq!(e.to_string(), "unknown channel \"pager:ops\"");
    }
}
