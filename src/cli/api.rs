//! `pgvigil api`: the API alone, over a store that agents write (no log reading, no
//! notifications: the agents send those).

use anyhow::{bail, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file ([api], [store]).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The store file (replaces store.path).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Address to listen on (replaces api.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

pub fn run(args: Args) -> Result<u8> {
    // SIGTERM ends the process with a log line and status 0; SIGHUP must not end it (the
    // default), and says what it cannot do.
    let super::Signals { term, hup } = super::signals()?;
    let (mut cfg, store) = super::token::open_store(&args.config, &args.store)?;
    if let Some(l) = args.listen {
        cfg.api.listen = l;
    }
    if !cfg.api.enabled {
        bail!("api.enabled is false in the configuration");
    }
    let store = Arc::new(store);
    let runtime = super::services::Runtime::new()?;
    let services = super::services::start(
        &cfg,
        super::services::Stores {
            own: store.clone(),
            shared: store,
            settings_written: None,
        },
        false,
        None,
        &runtime,
    )?;
    if let Some(addr) = services.api {
        let scheme = if cfg.api.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!("pgvigil API on {scheme}://{addr}");
    }
    // Every request is its own transaction in the store: nothing to save before leaving.
    while !term.load(Relaxed) {
        if hup.swap(false, Relaxed) {
            tracing::info!("SIGHUP: the API's settings change only with a restart");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tracing::info!("stopped");
    Ok(0)
}
