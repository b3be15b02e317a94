//! Shipping an agent's output to the central store, exactly once.
//!
//! In a fleet each agent commits to its own SQLite store: its checkpoint, its alerts (so that
//! it prints, files and notifies them while the central store is away) and a queue of what
//! the central store has to hear (`ship_queue`), all in one transaction. A shipper takes the
//! queue in order and hands a run of batches to the central store in one transaction that also
//! records the last batch number taken from this agent (`shipped`); a batch at or below that
//! number is not applied again. So a crash of either side, or a connection lost between the
//! central commit and the local deletion, neither loses a batch nor counts one twice: login
//! counts and event totals add up exactly.
//!
//! The central store gets alerts, their history, reports and hourly counts: what the API and
//! other agents read. An agent's checkpoint (positions and detector state, megabytes on a busy
//! server) stays in its own directory.

use super::db::{retry_conflicts, vals};
pub use super::queue::{Backlog, Batch, Queued};
use super::{now_ms, now_utc, Ingest, Ingested, Result, ServerReport, Store, StoreError};
use model::alert::Alert;

/// What the central store took in one shipment.
#[derive(Debug, Default)]
pub struct Shipment {
    /// The last batch number it now holds from this agent.
    pub upto: i64,
    /// Batches applied now (0 when all had been applied before: a repeat after a lost reply).
    pub applied: usize,
    pub ingested: Ingested,
}

/// What an agent copies from the central store to decide locally as the fleet would: its
/// server's policy (alerts turned off, who is mailed) and the suppression rules.
#[derive(Debug, Default, PartialEq)]
pub struct Settings {
    /// (properties, storage key fingerprint, updated at) of the server's policy, if one is set.
    policy: Option<(String, Option<String>, String)>,
    /// (name, properties, updated at) of each rule.
    rules: Vec<(String, String, String)>,
}

impl Store {
    /// The last batch this central store took from `agent`.
    #[cfg(test)]
    pub fn shipped_upto(&self, agent: &str) -> Result<Option<i64>> {
        self.read(|c| {
            c.query_opt("SELECT seq FROM shipped WHERE agent = $1", vals![agent])?
                .map(|r| r.int(0))
                .transpose()
        })
    }

    /// Takes an agent's batches, in order, in one transaction: those it took before are
    /// skipped, the rest stored as `ingest` stores a batch (policy, suppression rules, fleet
    /// correlation), and the last number recorded. Notifications are queued only for fleet
    /// alerts: the agent sent its own.
    pub fn take_shipment(
        &self,
        agent: &str,
        server: &str,
        batches: &[Queued],
        channels: &[super::Channel],
        admins: &[String],
    ) -> Result<Shipment> {
        // Agents' shipments meet on shared rows (a server's counts): PostgreSQL may end one
        // as a deadlock or a serialization failure, which a second try gets through.
        let mut shipment = retry_conflicts(|| {
            self.write(|tx| {
                // Locked: two processes started with one state directory must not both apply
                // a batch.
                let done = if tx.is_sqlite() {
                    tx.query_opt("SELECT seq FROM shipped WHERE agent = $1", vals![agent])?
                } else {
                    tx.query_opt(
                        "SELECT seq FROM shipped WHERE agent = $1 FOR UPDATE",
                        vals![agent],
                    )?
                }
                .map(|r| r.int(0))
                .transpose()?
                .unwrap_or(0);
                let fresh: Vec<&Queued> = batches.iter().filter(|b| b.seq > done).collect();
                let upto = batches.iter().map(|b| b.seq).max().unwrap_or(0).max(done);
                let mut out = Shipment {
                    upto,
                    applied: fresh.len(),
                    ..Default::default()
                };
                if fresh.is_empty() {
                    return Ok(out);
                }
                let alerts: Vec<Alert> = fresh
                    .iter()
                    .flat_map(|b| b.batch.alerts.iter().cloned())
                    .collect();
                // One report for the run: counts add up, and the server's row is written once.
                let mut report: Option<ServerReport> = None;
                for b in &fresh {
                    if let Some(r) = &b.batch.report {
                        match &mut report {
                            Some(acc) => acc.merge(r.clone()),
                            None => report = Some(r.clone()),
                        }
                    }
                }
                out.ingested = super::ingest::ingest(
                    tx,
                    &Ingest {
                        alerts: &alerts,
                        channels,
                        admins,
                        report: report.as_ref(),
                        notified: true,
                        ..Default::default()
                    },
                )?;
                tx.exec(
                    "INSERT INTO servers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    vals![server],
                )?;
                tx.exec(
                    "INSERT INTO shipped (agent, server, seq, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (agent) DO UPDATE SET seq = excluded.seq, server = excluded.server,
                   at = excluded.at",
                    vals![agent, server, upto, now_utc()],
                )?;
                Ok(out)
            })
        })?;
        let fleet = self.settle(&shipment.ingested.fleet_sources, channels, admins);
        shipment.ingested.absorb(fleet);
        Ok(shipment)
    }

    /// `server`'s policy and the suppression rules, as this (central) store has them.
    pub fn settings_for(&self, server: &str) -> Result<Settings> {
        self.read(|c| {
            let policy = c
                .query_opt(
                    "SELECT properties, storage_key, updated_at FROM policies WHERE server = $1",
                    vals![server],
                )?
                .map(|r| Ok::<_, StoreError>((r.text(0)?, r.opt_text(1)?, r.text(2)?)))
                .transpose()?;
            let rules = c
                .query(
                    "SELECT name, properties, updated_at FROM suppression_rules ORDER BY name",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.text(0)?, r.text(1)?, r.text(2)?)))
                .collect::<Result<_>>()?;
            Ok(Settings { policy, rules })
        })
    }

    /// Makes this (agent's) store's copy of `server`'s policy and of the rules what the
    /// `central` store has. Returns whether anything changed.
    pub fn copy_settings_from(&self, central: &Store, server: &str) -> Result<bool> {
        self.copy_settings(server, &central.settings_for(server)?)
    }

    /// Makes this (agent's) store's copy of `server`'s policy and of the rules what `s`
    /// says. Returns whether anything changed.
    pub fn copy_settings(&self, server: &str, s: &Settings) -> Result<bool> {
        if self.settings_for(server)? == *s {
            return Ok(false);
        }
        self.write(|tx| {
            tx.exec("DELETE FROM policies WHERE server = $1", vals![server])?;
            if let Some((props, key, at)) = &s.policy {
                tx.exec(
                    "INSERT INTO policies (server, properties, storage_key, updated_at)
                     VALUES ($1, $2, $3, $4)",
                    vals![server, props.as_str(), key, at.as_str()],
                )?;
            }
            tx.exec("DELETE FROM suppression_rules", &[])?;
            for (name, props, at) in &s.rules {
                tx.exec(
                    "INSERT INTO suppression_rules (name, properties, updated_at) VALUES ($1, $2, $3)",
                    vals![name.as_str(), props.as_str(), at.as_str()],
                )?;
            }
            Ok(true)
        })
    }
}

/// The shipper's figures, for `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct ShipHealth {
    /// This process ships to a central store.
    pub active: std::sync::atomic::AtomicBool,
    /// Batches waiting, and when the oldest was queued (ms since the epoch; 0: none).
    pub backlog: std::sync::atomic::AtomicU64,
    pub oldest_ms: std::sync::atomic::AtomicI64,
    /// Batches the central store took.
    pub shipped: std::sync::atomic::AtomicU64,
    /// The last try failed (the central store is away); the next is after a back-off.
    pub unreachable: std::sync::atomic::AtomicBool,
    /// Ship everything now, reports too (the agent is stopping).
    pub flush: std::sync::atomic::AtomicBool,
}

/// What the shipper calls with the central store and what a shipment stored there.
pub type AfterShipment = Box<dyn FnMut(&Store, &Ingested) + Send>;

/// Sends an agent's queue to the central store on a thread of its own; see the module's
/// comment. One connection, made when there is something to send and closed after
/// `IDLE_CLOSE` without use; after a failure the next try waits 1, 2, 4… up to 60 s.
pub struct Shipper {
    pub local: std::sync::Arc<Store>,
    pub central: std::sync::Arc<Store>,
    pub server: String,
    /// Channels and admins for fleet alerts raised by this agent's batches.
    pub channels: Vec<super::Channel>,
    pub admins: Vec<String>,
    pub health: std::sync::Arc<ShipHealth>,
    /// Called after each shipment that stored something (fleet alerts to print and send), and
    /// with nothing after each copy of the settings (notifications to retry).
    pub after: AfterShipment,
    /// A batch without alerts (a report) waits this long for others to go with it.
    pub report_every: std::time::Duration,
    /// A message after each local commit wakes the shipper; without one it looks once a
    /// second.
    pub wake: std::sync::mpsc::Receiver<()>,
}

/// Batches per central transaction when catching up.
const SHIPMENT: usize = 200;
const IDLE_CLOSE: std::time::Duration = std::time::Duration::from_secs(30);
/// The central policy and rules are copied this often while shipping, and this often when
/// there is nothing to ship.
const SETTINGS_BUSY: std::time::Duration = std::time::Duration::from_secs(60);
const SETTINGS_IDLE: std::time::Duration = std::time::Duration::from_secs(300);
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl Shipper {
    pub fn spawn(mut self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("pgvigil-ship".into())
            .spawn(move || self.run())
    }

    fn run(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        use std::time::{Duration, Instant};
        self.health.active.store(true, Relaxed);
        let agent = match self.local.agent_id() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "no agent id in the local store: nothing is shipped");
                return;
            }
        };
        // Agents started together (a fleet's rollout) copy the settings at spread moments.
        let spread = Duration::from_millis(
            u64::from_str_radix(agent.get(..8).unwrap_or("0"), 16).unwrap_or(0) % 30_000,
        );
        let mut failures = 0u32;
        let mut retry_at = Instant::now();
        let mut synced: Option<Instant> = None;
        // The central store's retention, hourly, from an hour after start: a thousand agents
        // starting together do not all run it at once.
        let mut retention = Instant::now();
        loop {
            let backlog = self.local.ship_backlog().unwrap_or_default();
            self.health.backlog.store(backlog.batches, Relaxed);
            self.health
                .oldest_ms
                .store(backlog.oldest_ms.unwrap_or(0), Relaxed);
            let due = backlog.with_alerts > 0
                || (backlog.batches > 0 && self.health.flush.load(Relaxed))
                || backlog
                    .oldest_ms
                    .is_some_and(|t| now_ms() - t >= self.report_every.as_millis() as i64);
            let settings_due = synced.is_none_or(|t| {
                t.elapsed() >= spread + if due { SETTINGS_BUSY } else { SETTINGS_IDLE }
            });
            if (due || settings_due) && Instant::now() >= retry_at {
                match self.ship(&agent, due, settings_due) {
                    Ok(()) => {
                        if failures > 0 {
                            tracing::info!(store = %self.central.location(), "central store reachable again; queue shipped");
                        }
                        failures = 0;
                        self.health.unreachable.store(false, Relaxed);
                        if settings_due {
                            synced = Some(Instant::now());
                        }
                        if retention.elapsed() >= Duration::from_secs(3600) {
                            retention = Instant::now();
                            if let Err(e) = self.central.enforce_retention(now_ms()) {
                                tracing::warn!(error = %e, "central retention");
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        // Agents that lost the store together do not come back together.
                        let wait = (1000u64 << failures.min(6)).min(60_000);
                        let jitter = (now_ms() as u64 % 1000) * wait / 4000;
                        retry_at = Instant::now() + Duration::from_millis(wait + jitter);
                        if failures == 1 {
                            tracing::error!(store = %self.central.location(), error = %e, backlog = backlog.batches, "central store unavailable; alerts kept in the local store and shipped when it returns");
                        }
                        self.health.unreachable.store(true, Relaxed);
                    }
                }
            }
            self.central.close_idle(IDLE_CLOSE);
            // A failed try waits its back-off whatever wakes it.
            let wait = retry_at
                .checked_duration_since(Instant::now())
                .unwrap_or_default()
                .max(Duration::from_millis(1));
            if wait > POLL {
                std::thread::sleep(POLL);
            } else if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) =
                self.wake.recv_timeout(POLL)
            {
                // The committer has gone (the agent is stopping): look once a second.
                std::thread::sleep(POLL);
            }
            while self.wake.try_recv().is_ok() {}
        }
    }

    /// Ships the whole queue (with `ship`) and copies the settings (with `settings`).
    fn ship(&mut self, agent: &str, ship: bool, settings: bool) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if settings {
            if self.local.copy_settings_from(&self.central, &self.server)? {
                tracing::info!(server = %self.server, "policy or suppression rules copied from the central store");
            }
            // Nothing stored, but a time to retry what the central outbox holds.
            (self.after)(&self.central, &Ingested::default());
        }
        if !ship {
            return Ok(());
        }
        loop {
            let q = self.local.queued(SHIPMENT)?;
            if q.is_empty() {
                break;
            }
            let s = self.central.take_shipment(
                agent,
                &self.server,
                &q,
                &self.channels,
                &self.admins,
            )?;
            self.local.unqueue(s.upto)?;
            self.health.shipped.fetch_add(q.len() as u64, Relaxed);
            if s.applied > 0 {
                (self.after)(&self.central, &s.ingested);
            }
            if q.len() < SHIPMENT {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{alert, temp_store};
    use crate::LoginHour;
    use model::alert::{AlertType, Severity};

    const HOUR: i64 = 1_793_577_600_000; // 2026-11-01T00:00:00Z

    fn report(events: u64, failed: u64) -> ServerReport {
        ServerReport {
            server: "db1".into(),
            events,
            last_event: Some(format!("2026-11-01T00:00:{events:02}.000Z")),
            logins: vec![LoginHour {
                hour: HOUR,
                failed,
                succeeded: 1,
            }],
            ..Default::default()
        }
    }

    fn commit(local: &Store, alerts: &[Alert], r: &ServerReport) {
        local
            .ingest(Ingest {
                alerts,
                channels: &[crate::Channel::Webhook("0".into())],
                report: Some(r),
                checkpoint: Some(("db1", b"state")),
                ship: true,
                ..Default::default()
            })
            .unwrap();
    }

    /// (events, failed logins, succeeded logins) of db1 in a store.
    fn totals(s: &Store) -> (i64, i64, i64) {
        s.read(|c| {
            let r = c
                .query_opt(
                    "SELECT s.events, CAST(coalesce(sum(l.failed), 0) AS BIGINT),
                       CAST(coalesce(sum(l.succeeded), 0) AS BIGINT)
                     FROM servers s LEFT JOIN login_hours l ON l.server = s.name
                     WHERE s.name = 'db1' GROUP BY s.events",
                    &[],
                )?
                .unwrap();
            Ok((r.int(0)?, r.int(1)?, r.int(2)?))
        })
        .unwrap()
    }

    fn brute(id: &str, end: &str) -> Alert {
        alert(id, "db1", AlertType::BruteForce, Severity::Medium, end)
    }

    /// Batches go in order, once: a shipment repeated after its reply was lost (the central
    /// store committed, the agent did not hear) applies nothing, and counts add up exactly;
    /// notifications of the agent's own alerts are queued locally, not centrally.
    #[test]
    fn a_shipment_repeated_after_a_lost_reply_counts_nothing_twice() {
        let (_l, local) = temp_store();
        let (_c, central) = temp_store();
        let agent = local.agent_id().unwrap();
        assert_eq!(agent.len(), 32, "{agent}");
        commit(
            &local,
            &[brute("a1", "2026-11-01T00:01:00.000Z")],
            &report(10, 5),
        );
        commit(&local, &[], &report(7, 2));
        commit(
            &local,
            &[brute("a1", "2026-11-01T00:02:00.000Z")],
            &report(3, 1),
        );
        let b = local.ship_backlog().unwrap();
        assert_eq!((b.batches, b.with_alerts), (3, 2));
        assert_eq!(local.outbox_backlog().unwrap().0, 1, "the new alert, once");

        let first = local.queued(2).unwrap();
        let hook = [crate::Channel::Webhook("0".into())];
        let s = central
            .take_shipment(&agent, "db1", &first, &hook, &[])
            .unwrap();
        assert_eq!((s.upto, s.applied), (2, 2));
        // The reply is lost: the same batches again, then all three.
        let again = central
            .take_shipment(&agent, "db1", &first, &hook, &[])
            .unwrap();
        assert_eq!((again.upto, again.applied), (2, 0));
        let all = local.queued(10).unwrap();
        assert_eq!(all.len(), 3);
        let s = central
            .take_shipment(&agent, "db1", &all, &hook, &[])
            .unwrap();
        assert_eq!((s.upto, s.applied), (3, 1));
        assert_eq!(local.unqueue(s.upto).unwrap(), 3);
        assert_eq!(local.ship_backlog().unwrap(), Backlog::default());

        assert_eq!(totals(&central), (20, 8, 3));
        assert_eq!(totals(&central), totals(&local));
        let stored = central.get_alert("a1").unwrap().unwrap();
        assert_eq!(stored["endTimeUtc"], "2026-11-01T00:02:00.000Z");
        assert_eq!(
            central.outbox_backlog().unwrap().0,
            0,
            "the agent notified its own alert"
        );
        assert_eq!(central.shipped_upto(&agent).unwrap(), Some(3));
        // Another state directory (a new agent id) starts its numbers again, and is heard.
        let (_l2, fresh) = temp_store();
        commit(&fresh, &[], &report(1, 0));
        let s = central
            .take_shipment(
                &fresh.agent_id().unwrap(),
                "db1",
                &fresh.queued(10).unwrap(),
                &[],
                &[],
            )
            .unwrap();
        assert_eq!((s.upto, s.applied), (1, 1));
        assert_eq!(totals(&central).0, 21);
    }

    /// The central policy reaches the agent's store, which then decides as the fleet would:
    /// an alert type turned off centrally is neither stored nor notified by the agent.
    #[test]
    fn the_central_policy_and_rules_are_copied_to_the_agent() {
        let (_l, local) = temp_store();
        let (_c, central) = temp_store();
        let body = serde_json::json!({"properties": {"state": "Enabled", "disabledAlerts": ["Brute_Force"], "emailAddresses": ["sec@example.org"]}});
        central
            .put_policy(
                "db1",
                &model::policy::Policy::from_put_body(&body, "db1").unwrap(),
                &crate::PolicyChange::by("test"),
            )
            .unwrap();
        let s = central.settings_for("db1").unwrap();
        assert!(local.copy_settings("db1", &s).unwrap());
        assert!(!local.copy_settings("db1", &s).unwrap(), "unchanged");
        let p = local.get_policy("db1").unwrap();
        assert_eq!(p.email_addresses, ["sec@example.org"]);
        assert!(!p.allows(AlertType::BruteForce));
        commit(
            &local,
            &[brute("a1", "2026-11-01T00:01:00.000Z")],
            &report(1, 1),
        );
        assert!(local.get_alert("a1").unwrap().is_none());
        assert_eq!(local.outbox_backlog().unwrap().0, 0);
        // Central policy removed: the default again.
        central
            .write(|tx| tx.exec("DELETE FROM policies", &[]))
            .unwrap();
        assert!(local.copy_settings_from(&central, "db1").unwrap());
        assert!(local
            .get_policy("db1")
            .unwrap()
            .allows(AlertType::BruteForce));
    }

    #[test]
    fn merged_reports_say_what_the_two_said() {
        let mut a = report(10, 5);
        a.first_event = Some("2026-11-01T00:00:00.000Z".into());
        a.profile = Some("{}".into());
        let mut b = report(7, 2);
        b.logins.push(LoginHour {
            hour: HOUR + 3_600_000,
            failed: 4,
            succeeded: 0,
        });
        b.lag_seconds = Some(1.5);
        a.merge(b);
        assert_eq!(a.events, 17);
        assert_eq!(a.first_event.as_deref(), Some("2026-11-01T00:00:00.000Z"));
        assert_eq!(a.last_event.as_deref(), Some("2026-11-01T00:00:07.000Z"));
        assert_eq!(a.profile.as_deref(), Some("{}"));
        assert_eq!(a.lag_seconds, Some(1.5));
        assert_eq!(
            a.logins,
            [
                LoginHour {
                    hour: HOUR,
                    failed: 7,
                    succeeded: 2
                },
                LoginHour {
                    hour: HOUR + 3_600_000,
                    failed: 4,
                    succeeded: 0
                }
            ]
        );
    }
}
