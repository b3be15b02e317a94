//! `pgvigil token add|list|revoke`: API tokens, straight in the store. A token is printed
//! once, when made; the store keeps only its hash.

use anyhow::{bail, Context, Result};
use pgvigil::config::Config;
use pgvigil::store::{Role, Store};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (its store.url, store.path or state.dir say where the store is).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The store file (replaces store.path).
    #[arg(long, value_name = "FILE", global = true)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (it cannot be shown again).
    Add {
        /// A name for the token: who or what uses it.
        name: String,
        /// reader (GET only) or admin (everything).
        #[arg(long, default_value = "reader", value_parser = ["reader", "admin"])]
        role: String,
    },
    /// List tokens (names, roles, last use; never the tokens).
    List,
    /// Revoke a token by name.
    Revoke {
        /// The token's name, as given to `token add`.
        name: String,
    },
}

pub fn open_store(config: &Option<PathBuf>, store: &Option<PathBuf>) -> Result<(Config, Store)> {
    let mut cfg = match config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(s) = store {
        cfg.store.path = Some(s.clone());
    }
    let s = Store::from_config(&cfg.store, &cfg.store_path())
        .context("the alert store (store.path / store.url)")?;
    Ok((cfg, s))
}

/// Who is at the command line, for the audit trail: `cli:<login name>`.
fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

pub fn run(args: Args) -> Result<u8> {
    let (_, store) = open_store(&args.config, &args.store)?;
    let actor = cli_actor();
    match args.command {
        TokenCommand::Add { name, role } => {
            let role = Role::parse(&role).unwrap_or(Role::Reader);
            let token = store.add_token(&name, role, &actor)?;
            eprintln!(
                "token {name:?} ({}) made; it is shown once, here:",
                role.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            println!("{:<24} {:<7} {:<25} LAST USED", "NAME", "ROLE", "CREATED");
            for t in store.list_tokens()? {
                println!(
                    "{:<24} {:<7} {:<25} {}",
                    t.name,
                    t.role.as_str(),
                    t.created_at,
                    t.last_used.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(&name, &actor)? {
                bail!("no token named {name:?}");
            }
            eprintln!("token {name:?} revoked");
        }
    }
    Ok(0)
}
