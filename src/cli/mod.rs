//! The command line: one file per subcommand.

pub mod analyze;
pub mod api;
pub mod client;
pub mod docs;
pub mod intel;
pub mod proxy;
pub mod run;
pub mod scan;
pub mod services;
pub mod sim;
pub mod token;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pgvigil",
    version,
    about = "Threat detection for PostgreSQL: reads the server's logs and raises explained alerts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Analyse existing log files or directories and print the alerts found.
    Analyze(analyze::Args),
    /// Follow a server's logs as they are written and raise alerts live.
    Run(run::Args),
    /// Threat intelligence and location data.
    Intel(intel::Args),
    /// Write realistic logs of several servers with labelled attacks, to measure detection.
    Simulate(sim::SimArgs),
    /// Run detection over `simulate` output or a corpus of recorded scenarios and score it
    /// against the labels.
    ///
    /// Exit status: 0 when every labelled attack was found (a corpus: every scenario right in
    /// every format, through analyze and run alike); 1 when one was missed or wrong; 2 when
    /// the input cannot be read.
    Eval(sim::EvalArgs),
    /// Serve the API alone over a store that agents write.
    Api(api::Args),
    /// The inline guard: a PostgreSQL proxy that watches every login and can refuse attackers.
    Proxy(proxy::Args),
    /// Check a live server's posture: logging, pg_hba, passwords, privileges, end of life.
    Scan(scan::Args),
    /// Make, list and revoke API tokens.
    Token(token::Args),
    /// List alerts and change their status, through the API.
    Alerts(client::AlertsArgs),
    /// Show and change servers' security alert policies, through the API.
    Policy(client::PolicyArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Write the man pages, one per subcommand, into a directory.
    Man(docs::ManArgs),
}

/// Loads the enrichment data; a configured file that cannot be read is an error, shipped data
/// that is missing a warning.
pub fn load_enricher(
    config: &pgvigil::config::Config,
    enabled: bool,
    quiet: bool,
) -> anyhow::Result<Option<std::sync::Arc<pgvigil::enrich::Enricher>>> {
    let mut cfg = config.enrich.clone();
    if !cfg.enabled || !enabled {
        return Ok(None);
    }
    if cfg.intel_dir.is_none() {
        cfg.intel_dir = Some(config.intel_dir());
    }
    let e = pgvigil::enrich::Enricher::load(&cfg)?;
    if !e.missing.is_empty() && !quiet {
        eprintln!(
            "pgvigil: warning: enrichment data not found ({}); set enrich.data_dir — those lookups are off",
            e.missing.join(", ")
        );
    }
    Ok(Some(std::sync::Arc::new(e)))
}

/// The flags SIGTERM (or SIGINT) and SIGHUP raise. Registered before anything else in a
/// long-running command: a signal while starting is then handled, not fatal.
pub(crate) struct Signals {
    pub term: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) fn signals() -> anyhow::Result<Signals> {
    use anyhow::Context;
    let s = Signals {
        term: Default::default(),
        hup: Default::default(),
    };
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, s.term.clone()).context("SIGTERM handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, s.hup.clone())
        .context("SIGHUP handler")?;
    Ok(s)
}
