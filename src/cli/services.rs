//! What `pgvigil run` and `pgvigil api` start beside their main work: the API, the
//! notification sender and the retention job.

use anyhow::{anyhow, Result};
use pgvigil::api::{ApiState, Counters};
use pgvigil::config::Config;
use pgvigil::notify::Notifier;
use pgvigil::store::Store;
use std::sync::Arc;

pub struct Services {
    pub counters: Arc<Counters>,
    /// Channels alerts are queued on.
    pub channels: Vec<String>,
    pub admins: Vec<String>,
    pub api: Option<std::net::SocketAddr>,
}

/// Starts the API (if enabled), and with `send` the notification sender and the retention
/// job.
pub fn start(cfg: &Config, store: Arc<Store>, send: bool) -> Result<Services> {
    let notifier = Arc::new(
        Notifier::new(&cfg.notify, cfg.api.public_url.clone()).map_err(|e| anyhow!("{e}"))?,
    );
    let counters = Arc::new(Counters::default());
    let channels = notifier.channels();
    let admins = notifier.admins();
    if send {
        if !channels.is_empty() {
            tracing::info!(channels = ?channels, "notifications on");
        }
        pgvigil::notify::spawn_sender(
            store.clone(),
            notifier,
            counters.clone(),
            std::time::Duration::from_millis(500),
        );
        let s = store.clone();
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
    let api = if cfg.api.enabled {
        let state = Arc::new(ApiState {
            store,
            counters: counters.clone(),
            channels: channels.clone(),
            admins: admins.clone(),
        });
        Some(pgvigil::api::spawn(&cfg.api, state)?)
    } else {
        None
    };
    Ok(Services {
        counters,
        channels,
        admins,
        api,
    })
}
