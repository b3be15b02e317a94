//! Monitored servers: registered by the agent that reads their logs, with what it last
//! reported (events, parse errors, how far behind the log it is, learning or active).

use super::db::{vals, Db};
use super::{Result, Store};
use serde::{Deserialize, Serialize};

/// What an agent reports about its server with each batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    pub server: String,
    /// Events since the previous report.
    pub events: u64,
    /// Malformed lines since the previous report.
    pub parse_errors: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    pub learning_until: Option<String>,
    /// Seconds between the newest event read and the wall clock.
    pub lag_seconds: Option<f64>,
    /// The learned profile (JSON), when the agent sends it.
    pub profile: Option<String>,
    /// Logins since the previous report, per hour of event time.
    pub logins: Vec<model::event::LoginHour>,
    /// What the agent follows (JSON: files open, closed, a stream), when it sends it.
    pub inputs: Option<String>,
}

impl ServerReport {
    /// Folds a later report of the same server into this one: counts add up, the rest is
    /// the later report's where it says anything. Stored, the two and the one are the same.
    pub fn merge(&mut self, later: ServerReport) {
        self.events += later.events;
        self.parse_errors += later.parse_errors;
        self.first_event = self.first_event.take().or(later.first_event);
        for l in later.logins {
            match self.logins.iter_mut().find(|x| x.hour == l.hour) {
                Some(x) => {
                    x.failed += l.failed;
                    x.succeeded += l.succeeded;
                }
                None => self.logins.push(l),
            }
        }
        let keep = |a: &mut Option<String>, b: Option<String>| {
            if b.is_some() {
                *a = b;
            }
        };
        keep(&mut self.last_event, later.last_event);
        keep(&mut self.learning_until, later.learning_until);
        keep(&mut self.profile, later.profile);
        keep(&mut self.inputs, later.inputs);
        self.lag_seconds = later.lag_seconds;
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    pub name: String,
    pub events: u64,
    pub parse_errors: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// `learning` until the learning period has passed in event time, then `active`;
    /// `waiting` before the first login.
    pub mode: &'static str,
    pub learning_until: Option<String>,
    pub reported_at: Option<String>,
    pub lag_seconds: Option<f64>,
    pub open_alerts: u64,
    /// What the agent follows, as it last said: `open` files (path, format, bytesBehind),
    /// `openTotal`, `closed` (followed again when they grow), `stream`.
    pub inputs: Option<serde_json::Value>,
}

pub(super) fn report(tx: &mut dyn Db, r: &ServerReport, now: &str) -> Result<()> {
    tx.exec(
        "INSERT INTO servers (name, events, parse_errors, first_event, last_event,
           learning_until, reported_at, lag_seconds, profile, inputs)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (name) DO UPDATE SET events = servers.events + excluded.events,
           parse_errors = servers.parse_errors + excluded.parse_errors,
           first_event = coalesce(servers.first_event, excluded.first_event),
           last_event = coalesce(excluded.last_event, servers.last_event),
           learning_until = coalesce(excluded.learning_until, servers.learning_until),
           reported_at = excluded.reported_at,
           lag_seconds = excluded.lag_seconds,
           profile = coalesce(excluded.profile, servers.profile),
           inputs = coalesce(excluded.inputs, servers.inputs)",
        vals![
            r.server.as_str(),
            r.events as i64,
            r.parse_errors as i64,
            &r.first_event,
            &r.last_event,
            &r.learning_until,
            now,
            r.lag_seconds,
            &r.profile,
            &r.inputs
        ],
    )?;
    for l in &r.logins {
        tx.exec(
            "INSERT INTO login_hours (server, hour, failed, succeeded) VALUES ($1, $2, $3, $4)
             ON CONFLICT (server, hour) DO UPDATE SET failed = login_hours.failed + excluded.failed,
               succeeded = login_hours.succeeded + excluded.succeeded",
            vals![
                r.server.as_str(),
                &model::event::format_time(l.hour)[..13],
                l.failed as i64,
                l.succeeded as i64
            ],
        )?;
    }
    Ok(())
}

impl Store {
    pub fn register_server(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO servers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                vals![name],
            )?;
            Ok(())
        })
    }

    pub fn server_exists(&self, name: &str) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.query_opt("SELECT 1 FROM servers WHERE name = $1", vals![name])?
                    .is_some(),
            )
        })
    }

    pub fn report(&self, r: &ServerReport) -> Result<()> {
        let now = super::now_utc();
        self.write(|tx| report(tx, r, &now))
    }

    /// Records a server's latest posture scan (JSON), creating the server if it is new.
    pub fn save_posture(&self, name: &str, posture: &serde_json::Value) -> Result<()> {
        let text = posture.to_string();
        self.write(|tx| {
            tx.exec(
                "INSERT INTO servers (name, posture) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET posture = excluded.posture",
                vals![name, &text],
            )?;
            Ok(())
        })
    }

    /// A server's latest posture scan: `Ok(None)` for an unknown server, `Some(None)` before
    /// the first scan.
    pub fn server_posture(&self, name: &str) -> Result<Option<Option<serde_json::Value>>> {
        self.json_column(name, "posture")
    }

    /// A server's profile as its agent last sent it: `Ok(None)` for an unknown server,
    /// `Some(None)` before the first summary.
    pub fn server_profile(&self, name: &str) -> Result<Option<Option<serde_json::Value>>> {
        self.json_column(name, "profile")
    }

    fn json_column(
        &self,
        name: &str,
        column: &'static str,
    ) -> Result<Option<Option<serde_json::Value>>> {
        self.read(|c| {
            let Some(r) = c.query_opt(
                &format!("SELECT {column} FROM servers WHERE name = $1"),
                vals![name],
            )?
            else {
                return Ok(None);
            };
            Ok(Some(match r.opt_text(0)? {
                Some(t) => {
                    Some(
                        serde_json::from_str(&t).map_err(|e| super::StoreError::Corrupt {
                            what: format!("{column} of {name}"),
                            reason: e.to_string(),
                        })?,
                    )
                }
                None => None,
            }))
        })
    }

    pub fn list_servers(&self) -> Result<Vec<ServerStatus>> {
        let open = self.open_alerts_by_server()?;
        self.read(|c| {
            c.query(
                "SELECT name, events, parse_errors, first_event, last_event, learning_until,
                   reported_at, lag_seconds, inputs FROM servers ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| {
                let name = r.text(0)?;
                let last = r.opt_text(4)?;
                let until = r.opt_text(5)?;
                let mode = match (&until, &last) {
                    (None, _) => "waiting",
                    (Some(u), Some(l)) if l >= u => "active",
                    _ => "learning",
                };
                Ok(ServerStatus {
                    open_alerts: open.get(&name).copied().unwrap_or(0),
                    name,
                    events: r.int(1)? as u64,
                    parse_errors: r.int(2)? as u64,
                    first_event: r.opt_text(3)?,
                    last_event: last,
                    mode,
                    learning_until: until,
                    reported_at: r.opt_text(6)?,
                    lag_seconds: r.opt_real(7)?,
                    // Written by agents; one that cannot be read is shown as not known.
                    inputs: r.opt_text(8)?.and_then(|t| serde_json::from_str(&t).ok()),
                })
            })
            .collect()
        })
    }
}
