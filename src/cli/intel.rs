//! `pgvigil intel update`: refresh the enrichment data from its publishers.

use anyhow::Result;
use pgvigil::config::Config;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Download fresh copies of the Tor exit list, country and ASN data and cloud ranges
    /// (sources in [intel] of the config), check them, and swap them in atomically; a failed
    /// download keeps the previous copy.
    Update {
        /// Configuration file (pgvigil.toml).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Directory for the downloaded data (replaces intel.dir).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<u8> {
    match args.command {
        Command::Update { config, dir } => {
            let cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            let dir = dir.unwrap_or_else(|| cfg.intel_dir());
            let outcomes = pgvigil::enrich::update::update(&cfg.intel, &dir);
            let mut failed = 0;
            for o in &outcomes {
                match &o.result {
                    Ok(msg) => println!("{}: updated ({msg})", dir.join(&o.file).display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("pgvigil: {}: {e}", dir.join(&o.file).display());
                    }
                }
            }
            Ok(if failed > 0 { 2 } else { 0 })
        }
    }
}
