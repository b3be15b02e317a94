//! `pgvigil proxy`: the inline guard alone. Logins through it go to the detectors as they
//! happen; alerts are printed as JSON lines; with `--block` (or `[proxy.active_response]`)
//! sources of brute force and attack tools are refused while their alert is open.

use anyhow::{Context, Result};
use pgvigil::config::Config;
use pgvigil::pipeline::Pipeline;
use pgvigil::proxy::Proxy;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (its [proxy] and [detect] sections).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where clients connect (default 127.0.0.1:6432).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The PostgreSQL server, host:port (default 127.0.0.1:5432).
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// Name of the server in alerts.
    #[arg(long)]
    pub server: Option<String>,
    /// Active response: refuse new connections from sources in an open brute-force,
    /// password-spray or attack-tool alert.
    #[arg(long)]
    pub block: bool,
    /// Never block this address or network (repeatable).
    #[arg(long = "allow", value_name = "NET")]
    pub allow: Vec<String>,
    /// Also print every event (connection, login, failure, fingerprint) as a JSON line, in
    /// the form `analyze --events` prints (schema/event.schema.json).
    #[arg(long)]
    pub events: bool,
}

pub fn run(args: Args) -> Result<u8> {
    // Signals first: a SIGTERM while starting still drains, not kills.
    let super::Signals { term, hup } = super::signals()?;
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        cfg.proxy.listen = l;
    }
    if let Some(u) = args.upstream {
        cfg.proxy.upstream = u;
    }
    if let Some(s) = args.server {
        cfg.server = s;
    }
    if args.block {
        cfg.proxy.active_response.enabled = true;
    }
    cfg.proxy.active_response.allowlist.extend(args.allow);

    // Detection is ready before the first client: an attack must not outrun it.
    let mut pipeline = Pipeline::new(&cfg.server, &cfg.detect);
    pipeline.enricher = super::load_enricher(&cfg, true, false)?;
    let runtime = super::services::Runtime::new()?;
    let rt = runtime.handle();
    let (proxy, mut rx) = Proxy::new(cfg.proxy.clone())?;
    let proxy = Arc::new(proxy);
    proxy
        .open(rt)
        .with_context(|| format!("proxy.listen {}", cfg.proxy.listen))?;

    // Events received: detection has acted on each once its alerts are considered for blocks.
    let received = std::cell::Cell::new(0u64);
    let observe = |pipeline: &mut Pipeline, ev| -> Result<()> {
        received.set(received.get() + 1);
        let stdout = std::io::stdout();
        if args.events {
            let mut out = stdout.lock();
            serde_json::to_writer(&mut out, &pgvigil::output::event_record(&ev))?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        pipeline.observe(ev);
        let mut alerts = pipeline.take_alerts();
        for a in &mut alerts {
            proxy.blocks.consider(a, pgvigil::store::now_ms());
        }
        // Logins the proxy holds amid failures may go on (or are refused) at once; the
        // alerts are printed after.
        proxy.acted_through(received.get());
        if alerts.is_empty() {
            return Ok(());
        }
        let mut out = stdout.lock();
        for a in &alerts {
            pgvigil::output::write_json_line(&mut out, a)?;
        }
        out.flush()?;
        Ok(())
    };
    let mut draining = None;
    loop {
        if term.load(Relaxed) && draining.is_none() {
            // Open sessions keep their detection while they drain.
            let p = proxy.clone();
            draining = Some(rt.spawn(async move { p.drain().await }));
        }
        if let Some(d) = draining.as_mut().filter(|d| d.is_finished()) {
            let cut = rt.block_on(d).unwrap_or(0);
            for ev in rx.try_iter() {
                observe(&mut pipeline, ev)?;
            }
            tracing::info!(sessions_closed = cut, "stopped");
            return Ok(0);
        }
        if hup.swap(false, Relaxed) {
            tracing::info!("SIGHUP: the proxy's settings change only with a restart");
        }
        match rx.recv_timeout(rt, std::time::Duration::from_millis(100)) {
            Ok(ev) => observe(&mut pipeline, ev)?,
            Err(pgvigil::proxy::RecvError::Timeout) => {}
            Err(pgvigil::proxy::RecvError::Closed) => return Ok(0),
        }
    }
}
