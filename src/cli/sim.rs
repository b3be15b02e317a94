//! `pgvigil simulate` and `pgvigil eval`: measure detection quality on realistic traffic with
//! labelled attacks.

use anyhow::{Context, Result};
use pgvigil::alert::Alert;
use pgvigil::config::Config;
use pgvigil::pipeline;
use pgvigil::sources::file::Hints;
use sim::{Label, SimConfig};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SimArgs {
    /// Directory to write the logs (one folder per server) and labels.jsonl into.
    #[arg(long)]
    pub out: PathBuf,
    /// How many servers to simulate, each with its own users, applications and attacks.
    #[arg(long, default_value_t = 5)]
    pub servers: usize,
    /// Weeks of traffic per server (the first two are the baseline the profile learns).
    #[arg(long, default_value_t = 4)]
    pub weeks: u32,
    /// Random seed: the same seed writes the same logs and labels.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Log format to write.
    #[arg(long, default_value = "stderr", value_parser = ["stderr", "csvlog", "jsonlog"])]
    pub format: String,
    /// Give every role a name that tries to break out of SQL quotes, Markdown and HTML and
    /// reverses the text after it: to check what alerts, notifications and a SIEM make of it.
    #[arg(long)]
    pub hostile_names: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A directory written by `pgvigil simulate`, or a corpus of recorded scenarios (folders
    /// with `labels.json`, as `bench/corpus/record.py` writes them; `tests/corpus/`).
    pub dir: PathBuf,
    /// Detector settings (pgvigil.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Also print the false positives.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

fn enricher(cfg: &Config) -> Result<std::sync::Arc<pgvigil::enrich::Enricher>> {
    super::load_enricher(cfg, true, false)?
        .context("enrichment is needed: enable [enrich] in the configuration")
}

pub fn simulate(a: SimArgs) -> Result<u8> {
    let cfg = Config::default();
    let e = enricher(&cfg)?;
    let tor: Vec<std::net::IpAddr> = tor_exits().into_iter().take(50).collect();
    let sc = SimConfig {
        format: a.format.parse().map_err(anyhow::Error::msg)?,
        servers: a.servers,
        weeks: a.weeks,
        seed: a.seed,
        hostile_names: a.hostile_names,
        ..SimConfig::default()
    };
    let labels =
        sim::simulate(&sc, &e, &tor, &a.out).with_context(|| a.out.display().to_string())?;
    println!(
        "{} servers, {} weeks, {} labelled attacks in {}",
        a.servers,
        a.weeks,
        labels.len(),
        a.out.display()
    );
    Ok(0)
}

pub fn eval(a: EvalArgs) -> Result<u8> {
    let mut cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if sim::corpus::is_corpus(&a.dir) {
        return eval_corpus(&a, &cfg);
    }
    // The simulation's reverse DNS, instead of asking real name servers about its addresses.
    let ptr = a.dir.join("ptr.txt");
    if ptr.is_file() {
        cfg.enrich.reverse_dns.enabled = true;
        cfg.enrich.reverse_dns.hosts_file = Some(ptr);
        cfg.enrich.reverse_dns.dns = false;
    }
    let e = enricher(&cfg)?;
    let labels: Vec<Label> = std::fs::read_to_string(a.dir.join("labels.jsonl"))
        .with_context(|| a.dir.join("labels.jsonl").display().to_string())?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("labels.jsonl")?;
    let mut alerts: Vec<Alert> = Vec::new();
    let mut detected: Vec<i64> = Vec::new();
    let mut span_ms = 0i64;
    let servers = sim::servers(&a.dir)?;
    for (server, dir) in &servers {
        let (files, errors, _) = pipeline::discover(std::slice::from_ref(dir), &Hints::default());
        anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
        // The streaming path, as `run` would see it: the first update of an alert is when it
        // was raised, the last its final state.
        let mut p = pipeline::Pipeline::new(server, &cfg.detect);
        p.enricher = Some(e.clone());
        for f in &files {
            p.read_file(f, &mut |_| {})?;
        }
        p.finish();
        let mut order: Vec<String> = Vec::new();
        let mut by_id: std::collections::HashMap<String, (i64, Alert)> = Default::default();
        for al in p.take_alerts() {
            let t = chrono::DateTime::parse_from_rfc3339(&al.end_time_utc)
                .map(|d| d.timestamp_millis())
                .unwrap_or(0);
            match by_id.get_mut(&al.id) {
                Some(entry) => entry.1 = al,
                None => {
                    order.push(al.id.clone());
                    by_id.insert(al.id.clone(), (t, al));
                }
            }
        }
        for id in order {
            if let Some((t, al)) = by_id.remove(&id) {
                detected.push(t);
                alerts.push(al);
            }
        }
        let first = files.iter().filter_map(|f| f.first_time).min().unwrap_or(0);
        span_ms = span_ms.max(labels.iter().map(|l| l.start).max().unwrap_or(first) - first);
    }
    let scores = sim::score(&alerts, &detected, &labels);
    println!(
        "{:<34} {:>4} {:>4} {:>4} {:>10} {:>8} {:>14}",
        "alert type", "TP", "FP", "FN", "precision", "recall", "median delay"
    );
    let (mut fps, mut fns) = (0, 0);
    for (t, s) in &scores {
        if s.tp + s.fp + s.fn_ == 0 {
            continue;
        }
        fps += s.fp;
        fns += s.fn_;
        let precision = if s.tp + s.fp > 0 {
            format!("{:.2}", s.tp as f64 / (s.tp + s.fp) as f64)
        } else {
            "-".into()
        };
        let recall = if s.tp + s.fn_ > 0 {
            format!("{:.2}", s.tp as f64 / (s.tp + s.fn_) as f64)
        } else {
            "-".into()
        };
        let mut d = s.delays_ms.clone();
        d.sort();
        let median = d
            .get(d.len() / 2)
            .map(|ms| format!("{:.1} s", *ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<34} {:>4} {:>4} {:>4} {:>10} {:>8} {:>14}",
            t.as_str(),
            s.tp,
            s.fp,
            s.fn_,
            precision,
            recall,
            median
        );
    }
    if a.verbose {
        for al in sim::unexplained(&alerts, &labels) {
            println!(
                "false positive: {} {} {} {}: {}",
                al.server,
                al.start_time_utc,
                al.alert_type.as_str(),
                al.entities.principal.as_deref().unwrap_or("-"),
                al.anomaly_context
            );
        }
    }
    let server_weeks = servers.len() as f64 * (span_ms as f64 / (7.0 * 86_400_000.0)).max(1.0);
    println!(
        "{} servers, {:.1} server-weeks: {fps} false positives ({:.1} per 10 server-weeks), {fns} attacks missed",
        servers.len(),
        server_weeks,
        fps as f64 * 10.0 / server_weeks
    );
    Ok(if fns > 0 { 1 } else { 0 })
}

/// Tor exits of the shipped list, for the simulation and the corpus's `tor:` places.
fn tor_exits() -> Vec<std::net::IpAddr> {
    pgvigil::enrich::default_data_dir()
        .map(|d| d.join("tor-exits-2026-10-05.txt"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().trim_end_matches("/32").parse().ok())
        .take(200)
        .collect()
}

/// `pgvigil eval CORPUS`: every recorded scenario in every format, through `analyze` and
/// through `run`'s streaming path, against its labels.
fn eval_corpus(a: &EvalArgs, cfg: &Config) -> Result<u8> {
    use pgvigil::sources::LogFormat;
    use sim::corpus;
    let e = enricher(cfg)?;
    let scenarios = corpus::scenarios(&a.dir)?;
    let mut places = corpus::Places::new(&e, tor_exits());
    let work = tempfile_dir()?;
    let formats = [LogFormat::Stderr, LogFormat::Csvlog, LogFormat::Jsonlog];
    println!(
        "{:<36} {:<8} {:<7} {:<24} {:<24} {:<24}",
        "scenario", "kind", "expects", "stderr", "csvlog", "jsonlog"
    );
    let (mut passed, mut total, mut fps, mut found, mut expected, mut disagree) =
        (0, 0, 0, 0, 0, 0);
    let mut notes: Vec<String> = Vec::new();
    for s in &scenarios {
        let mut cells = Vec::new();
        for f in formats {
            let dir = work.join(&s.labels.scenario);
            let Some(p) = corpus::prepare(s, f, &mut places, &dir)? else {
                cells.push("-".to_string());
                continue;
            };
            let files: Vec<pgvigil::sources::file::LogFile> = p
                .files
                .iter()
                .map(|path| {
                    pgvigil::sources::file::inspect(
                        path,
                        &Hints {
                            format: Some(f),
                            prefix: None,
                        },
                    )
                })
                .collect::<Result<_, _>>()?;
            // analyze
            let batch = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let b2 = batch.clone();
            pipeline::analyze(
                &files,
                "db1",
                &cfg.detect,
                Some(e.clone()),
                false,
                Box::new(move |al| {
                    if let Ok(mut v) = b2.lock() {
                        v.push(al);
                    }
                }),
                &mut |_, _| {},
                2,
            );
            let batch: Vec<Alert> = batch.lock().map(|v| v.clone()).unwrap_or_default();
            // run's streaming path
            let mut sp = pipeline::Pipeline::new("db1", &cfg.detect);
            sp.enricher = Some(e.clone());
            for lf in &files {
                sp.read_file(lf, &mut |_| {})?;
            }
            sp.finish();
            let live = corpus::final_states(sp.take_alerts());
            let ob = corpus::score(&s.labels, &p, &batch);
            let ol = corpus::score(&s.labels, &p, &live);
            let same = corpus::signature(&batch) == corpus::signature(&live);
            total += 1;
            expected += ob.expected;
            found += ob.found;
            fps += ob.false_positives.len();
            if !same {
                disagree += 1;
            }
            let ok = ob.ok() && ol.ok() && same;
            if ok {
                passed += 1;
            }
            let mut cell = if ok {
                "ok".to_string()
            } else {
                let mut bits = Vec::new();
                if !ob.missing.is_empty() {
                    bits.push(format!("{} missed", ob.missing.len()));
                }
                if !ob.false_positives.is_empty() {
                    bits.push(format!("{} FP", ob.false_positives.len()));
                }
                if !same {
                    bits.push("run≠analyze".into());
                }
                bits.join(", ")
            };
            cell.truncate(24);
            cells.push(cell);
            if a.verbose || !ok {
                let tag = format!("{} [{f}]", s.labels.scenario);
                for m in &ob.missing {
                    notes.push(format!("{tag}: missed {m}"));
                }
                for x in &ob.false_positives {
                    notes.push(format!("{tag}: false positive: {x}"));
                }
                if !same {
                    for (l, r) in [("analyze", &batch), ("run", &live)] {
                        for sig in corpus::signature(r) {
                            notes.push(format!("{tag}: {l}: {sig}"));
                        }
                    }
                }
                if a.verbose {
                    for al in &batch {
                        notes.push(format!(
                            "{tag}: alert: {} {} from {} as {}: {}",
                            al.severity,
                            al.display_name,
                            al.entities.source_ip.as_deref().unwrap_or("-"),
                            al.entities.principal.as_deref().unwrap_or("-"),
                            al.anomaly_context
                        ));
                    }
                }
            }
        }
        println!(
            "{:<36} {:<8} {:<7} {:<24} {:<24} {:<24}",
            s.labels.scenario,
            s.labels.kind,
            s.labels.expect.len(),
            cells.first().map(String::as_str).unwrap_or("-"),
            cells.get(1).map(String::as_str).unwrap_or("-"),
            cells.get(2).map(String::as_str).unwrap_or("-"),
        );
    }
    for n in &notes {
        println!("  {n}");
    }
    println!(
        "{passed} of {total} scenario runs right (every expected alert, from the attacker's address, nothing on a benign one, analyze = run); {found} of {expected} expected alerts found; {fps} false positives; {disagree} where analyze and run differ"
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(if passed == total { 0 } else { 1 })
}

fn tempfile_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("pgvigil-eval-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| base.display().to_string())?;
    Ok(base)
}
