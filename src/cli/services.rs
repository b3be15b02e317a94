//! What `pgvigil run` and `pgvigil api` start beside their main work: the API, the
//! notification sender and the retention job.

use anyhow::{Context, Result};
use pgvigil::api::{ApiState, Counters};
use pgvigil::config::Config;
use pgvigil::notify::Notifier;
use pgvigil::store::Store;
use std::sync::Arc;

pub struct Services {
    pub counters: Arc<Counters>,
    /// Sends what a central store has queued (fleet alerts), once, from the caller's thread.
    pub fleet_sender: Arc<dyn Fn(&Store) + Send + Sync>,
    /// Channels alerts are queued on.
    pub channels: Vec<pgvigil::store::Channel>,
    pub admins: Vec<String>,
    pub api: Option<std::net::SocketAddr>,
}

/// The stores services use: `own` holds what this process notifies and keeps (an agent's
/// own store), `shared` what the API serves and fleets share. The same store outside a fleet.
pub struct Stores {
    pub own: Arc<Store>,
    pub shared: Arc<Store>,
    /// An agent's copy of the central settings, made again when its API writes them.
    pub settings_written: Option<pgvigil::api::SettingsHook>,
}

/// The process's one async runtime: the API and the proxy share its worker threads, one per
/// core. Dropped, it gives what runs on it (a request's store query) a moment to end.
pub struct Runtime {
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Runtime {
    pub fn new() -> Result<Runtime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name("pgvigil-async")
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Runtime {
            handle: rt.handle().clone(),
            rt: Some(rt),
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// Starts the API (if enabled) on `runtime`, and with `send` the notification sender and
/// the retention job.
pub fn start(
    cfg: &Config,
    stores: Stores,
    send: bool,
    proxy: Option<Arc<pgvigil::proxy::Proxy>>,
    runtime: &Runtime,
) -> Result<Services> {
    let notifier = Arc::new(Notifier::new(&cfg.notify, cfg.api.public_url.clone())?);
    let counters = Arc::new(Counters::default());
    let channels = notifier.channels();
    let admins = notifier.admins();
    if send {
        if !channels.is_empty() {
            tracing::info!(channels = ?channels, "notifications on");
        }
        pgvigil::notify::spawn_sender(
            stores.own.clone(),
            notifier.clone(),
            counters.clone(),
            std::time::Duration::from_millis(500),
        );
        let s = stores.own.clone();
        std::thread::Builder::new()
            .name("pgvigil-retention".into())
            .spawn(move || loop {
                match s.enforce_retention(pgvigil::store::now_ms()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "alerts past their retention deleted"),
                    Err(e) => tracing::error!(error = %e, "retention job"),
                }
                std::thread::sleep(std::time::Duration::from_secs(3600));
            })?;
    }
    if send {
        if let Some(url) = cfg.scan.url.clone() {
            spawn_scan(cfg, url, stores.shared.clone())?;
        }
    }
    let api = if cfg.api.enabled {
        let state = Arc::new(ApiState {
            store: stores.shared.clone(),
            counters: counters.clone(),
            channels: channels.clone(),
            admins: admins.clone(),
            proxy,
            settings_written: stores.settings_written.clone(),
        });
        Some(pgvigil::server::spawn(&cfg.api, state, runtime.handle())?)
    } else {
        None
    };
    let fleet_sender: Arc<dyn Fn(&Store) + Send + Sync> = {
        let (n, c) = (notifier.clone(), counters.clone());
        Arc::new(move |s: &Store| {
            if let Err(e) = n.drain(s, &c) {
                tracing::error!(error = %e, "notification outbox of the central store");
            }
        })
    };
    Ok(Services {
        counters,
        fleet_sender,
        channels,
        admins,
        api,
    })
}

/// The periodic posture scan: each result (or the error that stopped it) replaces the last in
/// the store; findings are logged as they appear.
fn spawn_scan(cfg: &Config, url: pgvigil::notify::Secret, store: Arc<Store>) -> Result<()> {
    let server = cfg.server.clone();
    let ca = cfg.scan.ca_file.clone();
    let every = std::time::Duration::from_millis(cfg.scan.interval.ms().max(1000) as u64);
    std::thread::Builder::new()
        .name("pgvigil-scan".into())
        .spawn(move || loop {
            let now = pgvigil::store::now_ms();
            let at = pgvigil::event::format_time(now);
            let posture = match pgvigil::scan::scan(url.expose(), ca.as_deref(), now.div_euclid(86_400_000)) {
                Ok(report) => {
                    for f in &report.findings {
                        tracing::warn!(check = f.check, severity = %f.severity, "posture: {}", f.title);
                    }
                    for n in &report.not_checked {
                        tracing::info!(reason = %n.reason, "posture: not checked: {}", n.what);
                    }
                    tracing::info!(findings = report.findings.len(), "posture scan done");
                    serde_json::json!({"scannedAt": at, "findings": report.findings, "notChecked": report.not_checked, "error": null})
                }
                Err(e) => {
                    tracing::error!(error = %e, "posture scan failed; next try in one interval");
                    serde_json::json!({"scannedAt": at, "findings": null, "error": e.to_string()})
                }
            };
            if let Err(e) = store.save_posture(&server, &posture) {
                tracing::error!(error = %e, "posture scan result not stored");
            }
            std::thread::sleep(every);
        })?;
    Ok(())
}
