//! The command line: one file per subcommand.

pub mod analyze;
pub mod run;

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
}
