//! `pgvigil run`: follow a server's logs as they are written, raise alerts live.
//!
//! Each poll: read what was appended → alerts to stdout and the alerts file (flushed and
//! synced) → checkpoint (file positions + pipeline state + alerts-file length, atomically).
//! On restart the alerts file is cut back to the checkpoint's length and reading resumes at
//! its positions, so the file holds each alert update exactly once even after `kill -9`.

use anyhow::{bail, Context, Result};
use pgvigil::alert::Alert;
use pgvigil::config::{default_log_locations, Config, StartAt};
use pgvigil::duration::Span;
use pgvigil::ingest::checkpoint::Checkpoint;
use pgvigil::ingest::tail::Follower;
use pgvigil::output;
use pgvigil::pipeline::Pipeline;
use pgvigil::sources::file::Hints;
use pgvigil::sources::pgconf::PgConf;
use pgvigil::sources::prefix::Prefix;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (see pgvigil.example.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log file or directory to follow (repeatable; replaces input.paths).
    #[arg(long, value_name = "PATH")]
    pub follow: Vec<PathBuf>,
    /// Server name in alerts (replaces `server`).
    #[arg(long)]
    pub server: Option<String>,
    /// Directory for checkpoints (replaces state.dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Append alerts as JSON lines to this file (replaces output.file).
    #[arg(long, value_name = "FILE")]
    pub alerts_file: Option<PathBuf>,
    /// Where to start in files that exist at the first start: beginning or end.
    #[arg(long, value_parser = ["beginning", "end"])]
    pub start_at: Option<String>,
    /// The server's log_line_prefix (replaces input.log_line_prefix).
    #[arg(long, value_name = "PREFIX")]
    pub log_line_prefix: Option<String>,
    /// How often to look for new lines, e.g. 200ms.
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<Span>,
}

pub fn run(args: Args) -> Result<u8> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if !args.follow.is_empty() {
        cfg.input.paths = args.follow.clone();
    }
    if let Some(s) = args.server {
        cfg.server = s;
    }
    if let Some(d) = args.state_dir {
        cfg.state.dir = d;
    }
    if let Some(f) = args.alerts_file {
        cfg.output.file = Some(f);
    }
    if let Some(s) = args.start_at.as_deref() {
        cfg.input.start_at = if s == "beginning" {
            StartAt::Beginning
        } else {
            StartAt::End
        };
    }
    if let Some(p) = args.log_line_prefix {
        cfg.input.log_line_prefix = Some(p);
    }
    if let Some(p) = args.poll_interval {
        cfg.input.poll_interval = p;
    }

    let mut prefix = cfg
        .input
        .log_line_prefix
        .as_deref()
        .map(Prefix::compile)
        .transpose()
        .context("input.log_line_prefix")?;
    // Directories holding postgresql.conf stand for their log directory.
    let mut roots = Vec::new();
    let paths = if cfg.input.paths.is_empty() {
        let found = default_log_locations();
        if found.is_empty() {
            bail!(
                "no PostgreSQL logs found in /var/log/postgresql or /var/lib/pgsql/*/data/log; \
                 set input.paths in the config file or pass --follow PATH"
            );
        }
        found
    } else {
        cfg.input.paths.clone()
    };
    for p in paths {
        match PgConf::read_dir(&p)? {
            Some(conf) => {
                if prefix.is_none() {
                    prefix = Some(conf.prefix()?);
                }
                let locs = conf.log_locations();
                if locs.is_empty() {
                    bail!(
                        "{}: logging_collector is off, so the logs are wherever the server's stderr goes; follow that file instead",
                        p.display()
                    );
                }
                roots.extend(locs);
            }
            None => {
                if !p.exists() {
                    bail!("{}: no such file or directory", p.display());
                }
                roots.push(p);
            }
        }
    }
    let hints = Hints {
        format: cfg.input.format,
        prefix,
    };

    let ckpt_path = Checkpoint::file_name(&cfg.state.dir, &cfg.server);
    let saved = Checkpoint::load(&ckpt_path)?;
    let mut pipeline = Pipeline::new(&cfg.server, &cfg.detect);
    pipeline.enricher = super::load_enricher(&cfg, true, false)?;
    let mut alerts_file = match &cfg.output.file {
        Some(f) => {
            if let Some(dir) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .with_context(|| f.display().to_string())?;
            Some((f.clone(), file))
        }
        None => None,
    };
    let mut positions = Vec::new();
    if let Some(c) = &saved {
        c.restore_into(&mut pipeline, &ckpt_path)?;
        positions = c.files.clone();
        if let (Some(len), Some((path, file))) = (c.alerts_file_len, &alerts_file) {
            // Alerts written after the checkpoint will be raised again from the re-read lines.
            file.set_len(len)
                .with_context(|| path.display().to_string())?;
        }
        tracing::info!(checkpoint = %ckpt_path.display(), files = positions.len(), "resuming");
    }
    let mut follower = Follower::new(roots.clone(), hints, cfg.input.start_at, positions);
    tracing::info!(server = %cfg.server, paths = ?roots, "pgvigil run started");

    let stdout = std::io::stdout();
    let interval = std::time::Duration::from_millis(cfg.input.poll_interval.ms().max(10) as u64);
    let mut first = true;
    loop {
        let consumed = follower.poll(&mut pipeline);
        let alerts = pipeline.take_alerts();
        emit(
            &alerts,
            cfg.output.json,
            &mut stdout.lock(),
            alerts_file.as_mut(),
        )?;
        if consumed > 0 || !alerts.is_empty() || first {
            let len = match &alerts_file {
                Some((_, f)) => Some(f.metadata()?.len()),
                None => None,
            };
            Checkpoint::capture(&cfg.server, follower.positions(), &pipeline, len)
                .save(&ckpt_path)?;
            first = false;
        }
        std::thread::sleep(interval);
    }
}

fn emit(
    alerts: &[Alert],
    json: bool,
    out: &mut dyn Write,
    file: Option<&mut (PathBuf, std::fs::File)>,
) -> Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    for a in alerts {
        if json {
            output::write_json_line(out, a)?;
        } else {
            writeln!(
                out,
                "{} {} {} source={} principal={} id={}",
                a.end_time_utc,
                a.severity,
                a.display_name,
                a.entities.source_ip.as_deref().unwrap_or("-"),
                a.entities.principal.as_deref().unwrap_or("-"),
                a.id
            )?;
        }
    }
    out.flush()?;
    if let Some((path, f)) = file {
        let mut buf = Vec::new();
        for a in alerts {
            output::write_json_line(&mut buf, a)?;
        }
        f.write_all(&buf)
            .with_context(|| path.display().to_string())?;
        f.sync_data().with_context(|| path.display().to_string())?;
    }
    Ok(())
}
