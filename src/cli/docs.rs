//! `pgvigil completions SHELL` and `pgvigil man DIR`: generated from the command line's own
//! definition, so they cannot drift from it.

use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Directory to write pgvigil.1 and a page per subcommand (pgvigil-analyze.1, …) into;
    /// created if missing.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the completion script to stdout, e.g.
/// `pgvigil completions bash > /etc/bash_completion.d/pgvigil`.
pub fn completions(args: CompletionsArgs) -> Result<u8> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "pgvigil", &mut std::io::stdout());
    Ok(0)
}

pub fn man(args: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&args.dir).with_context(|| args.dir.display().to_string())?;
    let cmd = super::Cli::command();
    clap_mangen::generate_to(cmd, &args.dir).with_context(|| args.dir.display().to_string())?;
    let mut pages: Vec<_> = std::fs::read_dir(&args.dir)
        .with_context(|| args.dir.display().to_string())?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort_by_key(|e| e.file_name());
    eprintln!(
        "pgvigil: {} man pages in {} (read one with: man -l {})",
        pages.len(),
        args.dir.display(),
        args.dir.join("pgvigil-analyze.1").display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand says what it does: `--help` is where a
    /// user looks first.
    #[test]
    fn every_argument_has_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
                missing.push(format!("{path}: the command itself"));
            }
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for s in cmd.get_subcommands() {
                if s.get_name() != "help" {
                    walk(s, &path, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&super::super::Cli::command(), "", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without a description:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        super::super::Cli::command().debug_assert();
    }
}
