//! `pgvigil alerts …` and `pgvigil policy …`: the API from the shell. The address and token
//! come from `--url`/`--token` or `PGVIGIL_URL`/`PGVIGIL_TOKEN`.

use anyhow::{anyhow, bail, Context, Result};
use pgvigil::alert::Alert;
use serde_json::{json, Value};

#[derive(clap::Args, Clone)]
pub struct Conn {
    /// Base URL of the pgvigil API.
    #[arg(
        long,
        env = "PGVIGIL_URL",
        default_value = "http://127.0.0.1:8432",
        global = true
    )]
    pub url: String,
    /// API token (`pgvigil token add`).
    #[arg(long, env = "PGVIGIL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(clap::Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(clap::Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first.
    List {
        /// Only this server's alerts (its name, as in the alerts' `server` field).
        #[arg(long)]
        server: Option<String>,
        /// Only this alert type: `PostgreSQL_BruteForce` or, as the table prints it, `BruteForce`.
        #[arg(long = "type")]
        alert_type: Option<String>,
        /// Only this severity: High, Medium or Low.
        #[arg(long)]
        severity: Option<String>,
        /// Only this status: Active, InProgress, Dismissed or Resolved.
        #[arg(long)]
        status: Option<String>,
        /// Alerts active at or after this RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Alerts that started at or before this RFC 3339 time.
        #[arg(long)]
        to: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One alert, with its state history, as JSON.
    Show {
        /// The alert's id (the `id` field, or the last part of its `alertId`).
        id: String,
    },
    /// Mark an alert dismissed (a false positive or accepted).
    Dismiss {
        /// The alert's id (the `id` field, or the last part of its `alertId`).
        id: String,
    },
    /// Mark an alert active again.
    Activate {
        /// The alert's id (the `id` field, or the last part of its `alertId`).
        id: String,
    },
    /// Mark an alert as being worked on.
    InProgress {
        /// The alert's id (the `id` field, or the last part of its `alertId`).
        id: String,
    },
    /// Mark an alert resolved.
    Resolve {
        /// The alert's id (the `id` field, or the last part of its `alertId`).
        id: String,
    },
    /// Raise one sample alert of every type on a server, to test notifications.
    Simulate {
        /// The server's name.
        server: String,
    },
}

#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Print a server's security alert policy.
    Show {
        /// The server's name.
        server: String,
    },
    /// Change parts of a server's policy (the rest is kept).
    Set {
        /// The server's name.
        server: String,
        /// Enabled or Disabled.
        #[arg(long)]
        state: Option<String>,
        /// Recipients, `a@x;b@y` (replaces the list; "" empties it).
        #[arg(long)]
        email: Option<String>,
        /// Alert categories or alertType names to turn off, comma-separated ("" turns all on).
        #[arg(long)]
        disable: Option<String>,
        /// Also mail the configured administrators.
        #[arg(long)]
        email_admins: Option<bool>,
        /// Days to keep alerts; 0 keeps them forever.
        #[arg(long)]
        retention_days: Option<u32>,
    },
    /// Replace a server's policy with a JSON body from a file (`-` reads stdin).
    Put {
        /// The server's name.
        server: String,
        /// The policy as JSON (Azure's securityAlertPolicies body); `-` reads stdin.
        file: String,
    },
}

struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Client {
    fn new(c: &Conn) -> Result<Client> {
        let token = c.token.clone().ok_or_else(|| {
            anyhow!("no API token: pass --token or set PGVIGIL_TOKEN (make one with `pgvigil token add`)")
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Ok(Client {
            agent,
            base: c.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string().as_bytes()),
            (_, _) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut resp = resp.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = v["error"]["message"].as_str().unwrap_or("");
            let code = v["error"]["code"].as_str().unwrap_or("");
            bail!("{method} {url}: HTTP {status}: {code}: {msg}");
        }
        Ok(v)
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn alerts(args: AlertsArgs) -> Result<u8> {
    let c = Client::new(&args.conn)?;
    let action = |id: &str, a: &str| -> Result<u8> {
        let v = c.call("POST", &format!("/alerts/{}/{a}", enc(id)), None)?;
        println!(
            "{} {}",
            v["id"].as_str().unwrap_or(id),
            v["status"].as_str().unwrap_or("?")
        );
        Ok(0)
    };
    match args.command {
        AlertsCommand::List {
            server,
            alert_type,
            severity,
            status,
            from,
            to,
            limit,
            json,
        } => {
            let mut q = vec![format!("top={}", limit.clamp(1, 1000))];
            for (k, v) in [
                ("server", server),
                ("alertType", alert_type),
                ("severity", severity),
                ("status", status),
                ("from", from),
                ("to", to),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(&v)));
                }
            }
            let mut path = format!("/alerts?{}", q.join("&"));
            let mut shown = 0;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if !json {
                pgvigil::output::write_table_header(&mut out)?;
            }
            loop {
                let page = c.call("GET", &path, None)?;
                for a in page["value"].as_array().into_iter().flatten() {
                    if shown == limit {
                        return Ok(0);
                    }
                    if json {
                        use std::io::Write;
                        writeln!(out, "{a}")?;
                    } else {
                        let alert: Alert = serde_json::from_value(a.clone())
                            .context("the API answered an alert this pgvigil cannot read")?;
                        pgvigil::output::write_table_row(&mut out, &alert)?;
                    }
                    shown += 1;
                }
                match page["nextLink"].as_str() {
                    Some(n) if shown < limit => path = n.to_string(),
                    _ => return Ok(0),
                }
            }
        }
        AlertsCommand::Show { id } => {
            let v = c.call("GET", &format!("/alerts/{}", enc(&id)), None)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        AlertsCommand::Dismiss { id } => action(&id, "dismiss"),
        AlertsCommand::Activate { id } => action(&id, "activate"),
        AlertsCommand::InProgress { id } => action(&id, "inProgress"),
        AlertsCommand::Resolve { id } => action(&id, "resolve"),
        AlertsCommand::Simulate { server } => {
            let v = c.call(
                "POST",
                &format!("/servers/{}/alerts/simulate", enc(&server)),
                None,
            )?;
            let n = v["value"].as_array().map_or(0, |a| a.len());
            println!("{n} sample alerts raised on {server}");
            Ok(0)
        }
    }
}

pub fn policy(args: PolicyArgs) -> Result<u8> {
    let c = Client::new(&args.conn)?;
    let path = |server: &str| format!("/servers/{}/securityAlertPolicies/Default", enc(server));
    let v = match args.command {
        PolicyCommand::Show { server } => c.call("GET", &path(&server), None)?,
        PolicyCommand::Set {
            server,
            state,
            email,
            disable,
            email_admins,
            retention_days,
        } => {
            let cur = c.call("GET", &path(&server), None)?;
            let mut props = cur["properties"].clone();
            if let Some(s) = state {
                props["state"] = json!(s);
            }
            if let Some(e) = email {
                props["emailAddresses"] = json!(e);
            }
            if let Some(d) = disable {
                let list: Vec<&str> = d
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                props["disabledAlerts"] = json!(list);
            }
            if let Some(b) = email_admins {
                props["emailAccountAdmins"] = json!(b);
            }
            if let Some(r) = retention_days {
                props["retentionDays"] = json!(r);
            }
            c.call("PUT", &path(&server), Some(&json!({"properties": props})))?
        }
        PolicyCommand::Put { server, file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| file.clone())?
            };
            let body: Value =
                serde_json::from_str(&text).with_context(|| format!("{file}: not JSON"))?;
            c.call("PUT", &path(&server), Some(&body))?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}
