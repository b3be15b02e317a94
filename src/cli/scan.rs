//! `pgvigil scan postgres://…`: the server's posture — logging pgvigil needs, pg_hba rules,
//! password storage and weak passwords (offline), privileges, end of life.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Connection URL, e.g. postgres://monitor@db1/postgres?sslmode=verify-full (libpq's
    /// sslmode, sslrootcert and connect_timeout; a superuser also checks pg_hba.conf and
    /// stored passwords). Every database that accepts connections is checked.
    pub url: String,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also trust this CA (PEM) for the server's certificate.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<u8> {
    let today = pgvigil::store::now_ms().div_euclid(86_400_000);
    let report = pgvigil::scan::scan(&a.url, a.ca_file.as_deref(), today)?;
    let findings = &report.findings;
    if a.json {
        for f in findings {
            println!("{}", serde_json::to_string(f)?);
        }
    } else if findings.is_empty() {
        println!("no findings");
    } else {
        for f in findings {
            println!("{:<7} {:<22} {}", f.severity.to_string(), f.check, f.title);
            println!("        evidence: {}", f.evidence);
            println!("        fix:      {}", f.fix);
            if let Some(c) = &f.cis {
                println!("        CIS:      {} {}", c.item, c.title);
            }
        }
    }
    // What could not be checked is no finding (a clean server scanned without superuser
    // rights exits 0), but it is said.
    for n in &report.not_checked {
        eprintln!("pgvigil: not checked: {}: {}", n.what, n.reason);
    }
    eprintln!(
        "pgvigil: {} finding(s), {} check(s) not run",
        findings.len(),
        report.not_checked.len()
    );
    Ok(u8::from(!findings.is_empty()))
}
