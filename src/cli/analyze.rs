//! `pgvigil analyze FILE|DIR…`: batch detection over existing logs.
//! Exit codes: 0 no alerts, 1 alerts found, 2 bad input or usage (takes precedence).

use anyhow::{Context, Result};
use pgvigil::alert::Severity;
use pgvigil::config::Config;
use pgvigil::output;
use pgvigil::pipeline::{self, FileStats};
use pgvigil::sources::file::Hints;
use pgvigil::sources::prefix::Prefix;
use pgvigil::sources::LogFormat;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Log files (plain or .gz), directories of logs, or a data directory (its postgresql.conf
    /// tells where the logs are and their log_line_prefix).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print alerts as JSON lines (the alert record) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server's log_line_prefix, for stderr logs (default: from postgresql.conf, else guessed).
    #[arg(long, value_name = "PREFIX")]
    pub log_line_prefix: Option<String>,
    /// Force the log format instead of detecting it per file.
    #[arg(long, value_parser = ["stderr", "csvlog", "jsonlog", "pgbouncer"])]
    pub format: Option<String>,
    /// Server name to put in alerts.
    #[arg(long, default_value = "postgresql")]
    pub server: String,
    /// Detector thresholds and settings from a pgvigil.toml (its [detect] section).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the normalised events (JSON lines) instead of alerts.
    #[arg(long)]
    pub events: bool,
    /// Do not look up where source addresses are (country, ASN, cloud provider).
    #[arg(long)]
    pub no_enrich: bool,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Only alerts on stdout; no summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// 1: read and detect on one thread; 2 (the default where there are two cores or more):
    /// reading and parsing on one, detection on another. The alerts are the same.
    #[arg(long, value_name = "N", default_value_t = default_threads(),
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: u8,
}

fn default_threads() -> u8 {
    match std::thread::available_parallelism() {
        Ok(n) if n.get() >= 2 => 2,
        _ => 1,
    }
}

/// Inputs bigger than this get a progress bar on a terminal.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// Over half of a file's lines unreadable: the file is not what we think (a wrong prefix,
/// not a PostgreSQL log), and that is bad input, not noise.
fn mostly_malformed(s: &FileStats) -> bool {
    s.lines > 0 && s.malformed * 2 > s.lines
}

pub fn run(args: Args) -> Result<u8> {
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let detect = config.detect.clone();
    let enricher = super::load_enricher(&config, !args.no_enrich, args.quiet)?;
    let hints = Hints {
        format: args
            .format
            .as_deref()
            .map(|f| f.parse::<LogFormat>())
            .transpose()?,
        prefix: args
            .log_line_prefix
            .as_deref()
            .map(Prefix::compile_given)
            .transpose()
            .context("--log-line-prefix")?,
    };
    let (files, errors, skipped) = pipeline::discover(&args.paths, &hints);
    let mut bad_input = !errors.is_empty();
    for e in &errors {
        eprintln!("pgvigil: {e}");
    }
    if !args.quiet {
        for (f, instead) in &skipped {
            eprintln!(
                "pgvigil: {}: skipped, the same log as {} in another format",
                f.display(),
                instead.display()
            );
        }
    }

    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = if !args.no_progress
        && !args.quiet
        && std::io::stderr().is_terminal()
        && total >= PROGRESS_MIN_BYTES
    {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };

    let started = Instant::now();
    let mut progress = |path: &std::path::Path, n: u64| {
        if let Some(b) = &bar {
            if n == 0 {
                b.set_message(path.display().to_string());
            }
            b.inc(n);
        }
    };
    // Alerts are printed as they close, so memory stays bounded whatever the input size.
    let severities = Arc::new(Mutex::new([0u64; 3]));
    let sev2 = severities.clone();
    let (json, events) = (args.json, args.events);
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut header = false;
    let on_alert = Box::new(move |a: pgvigil::alert::Alert| {
        if let Ok(mut s) = sev2.lock() {
            s[a.severity as usize] += 1;
        }
        let r = if events {
            Ok(())
        } else if json {
            output::write_json_line(&mut out, &a)
        } else {
            let h = if header {
                Ok(())
            } else {
                output::write_table_header(&mut out)
            };
            header = true;
            h.and_then(|_| output::write_table_row(&mut out, &a))
        };
        match r.and_then(|_| out.flush()) {
            // The reader went away (`| head`): nothing more to say, and alerts were found.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(1),
            Err(e) => eprintln!("pgvigil: writing alerts: {e}"),
            Ok(()) => {}
        }
    });
    let result = pipeline::analyze(
        &files,
        &args.server,
        &detect,
        enricher,
        args.events,
        on_alert,
        &mut progress,
        usize::from(args.threads),
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed();
    for e in &result.errors {
        bad_input = true;
        eprintln!("pgvigil: {e}");
    }
    let stats: Vec<(&pgvigil::sources::file::LogFile, &FileStats)> =
        result.files.iter().map(|(f, s)| (f, s)).collect();

    for (f, s) in &stats {
        if s.bytes == 0 && !args.quiet {
            eprintln!(
                "pgvigil: warning: {}: empty, nothing in it to analyse",
                f.path.display()
            );
        }
        if s.malformed == 0 {
            continue;
        }
        if mostly_malformed(s) {
            bad_input = true;
        }
        let mut msg = format!(
            "pgvigil: {}: {} of {} lines could not be read",
            f.path.display(),
            s.malformed,
            s.lines
        );
        if let (Some(p), true) = (&f.prefix, mostly_malformed(s)) {
            msg.push_str(&format!(
                " (read as {} with log_line_prefix '{}'; pass the server's prefix with --log-line-prefix)",
                f.format,
                p.as_str()
            ));
        }
        eprintln!("{msg}");
        for m in &s.first_malformed {
            eprintln!("  {}:{}: {}", f.path.display(), m.line, m.reason);
        }
    }
    if files.is_empty() && errors.is_empty() {
        eprintln!("pgvigil: no log files found");
        bad_input = true;
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.events {
        for e in &result.events {
            serde_json::to_writer(&mut out, &output::event_record(e))?;
            out.write_all(b"\n")?;
        }
    } else if !args.json && result.alerts_total == 0 {
        // "No alerts." only when there was something to look at: an unreadable input is not
        // a clean bill of health.
        let read: u64 = stats.iter().map(|(_, s)| s.records).sum();
        if read == 0 && bad_input {
            writeln!(out, "Nothing could be analysed (see the errors above).")?;
        } else if read == 0 {
            writeln!(out, "Nothing to analyse: no log entries in the input.")?;
        } else if bad_input {
            writeln!(
                out,
                "No alerts in what could be read (see the errors above)."
            )?;
        } else {
            writeln!(out, "No alerts.")?;
        }
    }
    out.flush()?;

    if !args.quiet {
        let lines: u64 = stats.iter().map(|(_, s)| s.lines).sum();
        let bytes: u64 = stats.iter().map(|(_, s)| s.bytes).sum();
        let records: u64 = stats.iter().map(|(_, s)| s.records).sum();
        let malformed: u64 = stats.iter().map(|(_, s)| s.malformed).sum();
        let secs = elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "pgvigil: {} file(s), {lines} lines ({:.1} MiB), {records} log entries, {} events, {malformed} malformed, in {:.2}s ({:.0} lines/s)",
            stats.len(),
            bytes as f64 / (1 << 20) as f64,
            result.events_total,
            elapsed.as_secs_f64(),
            lines as f64 / secs
        );
        let (held, evicted) = result.profile_size;
        eprintln!(
            "pgvigil: profile: {held} entities learned{}{}",
            if evicted > 0 {
                format!(", {evicted} dropped at the caps")
            } else {
                String::new()
            },
            if result.anomalies_suppressed > 0 {
                format!(
                    "; {} anomaly findings on login attempts rolled up into one alert a type and hour",
                    result.anomalies_suppressed
                )
            } else {
                String::new()
            }
        );
        let s = severities.lock().map(|s| *s).unwrap_or_default();
        eprintln!(
            "pgvigil: {} alert(s): {} High, {} Medium, {} Low",
            result.alerts_total,
            s[Severity::High as usize],
            s[Severity::Medium as usize],
            s[Severity::Low as usize]
        );
    }
    Ok(if bad_input {
        2
    } else if result.alerts_total == 0 {
        0
    } else {
        1
    })
}
