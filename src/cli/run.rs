//! `pgvigil run`: follow a server's logs as they are written, raise alerts live.
//!
//! Each poll: read what was appended → alerts to the alerts file (flushed and synced) → one
//! store transaction with the alerts, their queued notifications, the server's report and the
//! checkpoint (file positions + pipeline state + alerts-file length) → stdout. On restart the
//! alerts file is cut back to the checkpoint's length and reading resumes at its positions,
//! so the store, the outbox and the file hold each alert update exactly once, even after
//! `kill -9`. The API and the notification sender run beside it on threads of their own.

use anyhow::{bail, Context, Result};
use pgvigil::alert::{Alert, Severity};
use pgvigil::config::{Config, StartAt};
use pgvigil::duration::Span;
use pgvigil::event::format_time;
use pgvigil::ingest::checkpoint::Checkpoint;
use pgvigil::ingest::pace::{process_writes, WritePace};
use pgvigil::ingest::tail::Follower;
use pgvigil::output;
use pgvigil::pipeline::Pipeline;
use pgvigil::sources::file::Hints;
use pgvigil::sources::pgconf::PgConf;
use pgvigil::sources::prefix::Prefix;
use pgvigil::store::{now_ms, Ingest, ServerReport, Store};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (see pgvigil.example.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log file or directory to follow (repeatable; replaces input.paths).
    #[arg(long, value_name = "PATH")]
    pub follow: Vec<PathBuf>,
    /// Read the log from standard input instead of files (`kubectl logs -f POD | pgvigil run
    /// --stdin`); stops, with a checkpoint, when the input ends.
    #[arg(long, conflicts_with = "follow")]
    pub stdin: bool,
    /// Follow the systemd journal of this unit (`postgresql@15-main`) or journal match
    /// (`SYSLOG_IDENTIFIER=postgres`) instead of files (replaces input.journal): PostgreSQL
    /// started by systemd without a logging collector.
    #[arg(long, value_name = "UNIT", conflicts_with_all = ["follow", "stdin"])]
    pub journal: Option<String>,
    /// Server name in alerts (replaces `server`).
    #[arg(long)]
    pub server: Option<String>,
    /// Directory for the store and intelligence data (replaces state.dir).
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
    /// Address of the API (replaces api.listen; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub api_listen: Option<std::net::SocketAddr>,
    /// The store file (replaces store.path).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    // Signals first: a SIGTERM while starting still ends with a checkpoint, not a kill.
    let super::Signals { term, hup } = super::signals()?;
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
    if let Some(l) = args.api_listen {
        cfg.api.listen = l;
    }
    if let Some(s) = args.store {
        cfg.store.path = Some(s);
    }

    let mut prefix = cfg
        .input
        .log_line_prefix
        .as_deref()
        .map(Prefix::compile_given)
        .transpose()
        .context("input.log_line_prefix")?;
    // Directories holding postgresql.conf stand for their log directory.
    let mut roots = Vec::new();
    if let Some(j) = args.journal {
        cfg.input.journal = Some(j);
    }
    let paths = if args.stdin || cfg.input.journal.is_some() {
        Vec::new()
    } else if cfg.input.paths.is_empty() {
        // No paths given: the clusters on this host, as pg_lsclusters lists them (Debian),
        // and RHEL's and PGDG's data directories.
        let found = pgvigil::sources::pgconf::clusters();
        if found.is_empty() && cfg.proxy.enabled {
            // The proxy alone: its logins are the input.
            Vec::new()
        } else if found.is_empty() {
            bail!(
                "no PostgreSQL cluster found (/etc/postgresql/*/*, /var/lib/pgsql/*/data under {}); \
                 set input.paths in the config file or pass --follow PATH",
                pgvigil::sources::pgconf::host_root().display()
            );
        } else {
            found
        }
    } else {
        cfg.input.paths.clone()
    };
    let mut prefixes = Vec::new();
    for p in paths {
        match PgConf::read_dir(&p)? {
            Some(conf) => {
                let locs = conf.log_locations();
                if locs.is_empty() {
                    bail!(
                        "{}: logging_collector is off, so the logs are wherever the server's stderr goes; follow that file instead",
                        p.display()
                    );
                }
                let conf_prefix = conf.prefix()?;
                tracing::info!(
                    cluster = %conf.dir.display(),
                    logs = %locs.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(", "),
                    log_line_prefix = %prefix.as_ref().unwrap_or(&conf_prefix).as_str(),
                    "following the cluster's logs"
                );
                prefixes.push(conf_prefix);
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
    // The clusters' own prefix, unless given; clusters that disagree: each file's guessed.
    if prefix.is_none() {
        let agree = prefixes.windows(2).all(|w| w[0].as_str() == w[1].as_str());
        if agree {
            prefix = prefixes.pop();
        } else {
            tracing::warn!("the clusters have different log_line_prefix settings: each file's is worked out from its lines");
        }
    }
    let hints = Hints {
        format: cfg.input.format,
        prefix,
    };

    // The agent's own store: its checkpoint, its alerts and notifications. In a fleet
    // (store.url) also the queue of what goes to the central store, which the shipper sends;
    // the API, the proxy's blocks and the posture scan use the central store.
    let readers = if cfg.store.url.is_some() { 1 } else { 4 };
    let store = Arc::new(
        Store::open_with(&cfg.store_path(), readers)
            .context("the agent's store (store.path / state.dir)")?,
    );
    store.register_server(&cfg.server)?;
    let central = match &cfg.store.url {
        Some(u) => Some(Arc::new(
            Store::connect_lazily(u.expose(), cfg.store.ca_file.as_deref())
                .context("the central store (store.url)")?,
        )),
        None => None,
    };
    let shared = central.clone().unwrap_or_else(|| store.clone());
    let runtime = super::services::Runtime::new()?;
    let mut guard = if cfg.proxy.enabled {
        Some(start_proxy(&cfg, runtime.handle())?)
    } else {
        None
    };
    let services = super::services::start(
        &cfg,
        super::services::Stores {
            own: store.clone(),
            shared: shared.clone(),
            settings_written: central.clone().map(|c| {
                let (local, server) = (store.clone(), cfg.server.clone());
                let hook: pgvigil::api::SettingsHook = Arc::new(move || {
                    if let Err(e) = local.copy_settings_from(&c, &server) {
                        tracing::warn!(error = %e, "the new settings were not copied to the agent's store; they will be within a minute");
                    }
                });
                hook
            }),
        },
        true,
        guard.as_ref().map(|g| g.proxy.clone()),
        &runtime,
    )?;
    // Fleet alerts this agent's batches raise in the central store, printed as its own are.
    let (fleet_tx, fleet_alerts) = std::sync::mpsc::channel::<Vec<Alert>>();
    let (wake_shipper, wake) = std::sync::mpsc::channel::<()>();
    if let Some(c) = &central {
        let fleet = services.fleet_sender.clone();
        let mut sent = std::time::Instant::now();
        services.counters.ship.active.store(true, Relaxed);
        pgvigil::store::ship::Shipper {
            local: store.clone(),
            central: c.clone(),
            server: cfg.server.clone(),
            channels: services.channels.clone(),
            admins: services.admins.clone(),
            health: services.counters.ship.clone(),
            after: Box::new(move |central, done| {
                let raised: Vec<Alert> = done
                    .accepted
                    .iter()
                    .filter(|a| a.server == pgvigil::store::fleet::FLEET)
                    .cloned()
                    .collect();
                if !raised.is_empty() {
                    let _ = fleet_tx.send(raised);
                }
                // Fleet alerts' notifications at once; those that failed, again each minute.
                if done.queued > 0 || sent.elapsed() >= std::time::Duration::from_secs(60) {
                    sent = std::time::Instant::now();
                    fleet(central);
                }
            }),
            report_every: std::time::Duration::from_millis(
                cfg.state.checkpoint_interval.ms().max(0) as u64,
            )
            .max(std::time::Duration::from_secs(10)),
            wake,
        }
        .spawn()
        .context("the shipper's thread")?;
    }
    let origin = PathBuf::from(format!(
        "{} (checkpoint of {})",
        store.location(),
        cfg.server
    ));
    let mut saved_bytes = store.load_checkpoint(&cfg.server)?;
    if let (None, Some(c)) = (&saved_bytes, &central) {
        // Upgraded from a version that kept checkpoints in the central store: resume from
        // there once, rather than read every log again.
        match c.load_checkpoint(&cfg.server) {
            Ok(b) => saved_bytes = b,
            Err(e) => {
                tracing::warn!(error = %e, "no local checkpoint, and the central store's could not be read")
            }
        }
    }
    let saved = saved_bytes
        .map(|b| Checkpoint::from_bytes(&b, &origin))
        .transpose()?;
    let mut pipeline = Pipeline::new(&cfg.server, &cfg.detect);
    pipeline.enricher = super::load_enricher(&cfg, true, false)?;
    let mut alerts_file = open_alerts_file(cfg.output.file.as_deref())?;
    let mut positions = Vec::new();
    let mut journal_cursor = None;
    if let Some(c) = &saved {
        journal_cursor = c.journal_cursor.clone();
        c.restore_into(&mut pipeline, &origin)?;
        positions = c.files.clone();
        if let (Some(len), Some((path, file))) = (c.alerts_file_len, &alerts_file) {
            // Alerts written after the checkpoint will be raised again from the re-read lines:
            // cut them, in the file the checkpoint knew. A file rotated away since (a new,
            // shorter one) is left as it is: never extended, never padded.
            let meta = file
                .metadata()
                .with_context(|| path.display().to_string())?;
            let same = c
                .alerts_file_ino
                .is_none_or(|ino| ino == std::os::unix::fs::MetadataExt::ino(&meta));
            if same && meta.len() > len {
                file.set_len(len)
                    .with_context(|| path.display().to_string())?;
            }
        }
        tracing::info!(store = %store.location(), files = positions.len(), "resuming from the checkpoint");
    }
    let mut follower = if args.stdin {
        // A stream has no positions: what it brings after a restart is new.
        Follower::stdin(hints, cfg.input.max_entry_bytes)
    } else if let Some(unit) = &cfg.input.journal {
        Follower::journal(unit, hints, cfg.input.start_at, journal_cursor)
    } else {
        Follower::new(roots.clone(), hints, cfg.input.start_at, positions).with_limits(
            std::time::Duration::from_millis(cfg.input.rotated_grace.ms().max(0) as u64),
            cfg.input.max_entry_bytes,
        )
    };
    tracing::info!(server = %cfg.server, paths = ?roots, stdin = args.stdin, "pgvigil run started");
    let mut input_error = false;

    let stdout = std::io::stdout();
    let mut first = true;
    let (mut reported_events, mut reported_malformed) = (0u64, 0u64);
    // Alerts not yet in the store: they go with the next commit.
    let mut pending: Vec<Alert> = Vec::new();
    let mut to_file: Vec<Alert> = Vec::new();
    // When the profile summary last went to the store, and how many entities it had.
    let mut profile_sent: Option<(std::time::Instant, usize)> = None;
    // The last checkpoint, and the log read since.
    let mut checkpointed = std::time::Instant::now();
    let mut read_since = 0u64;
    let mut checkpoint_size = 0u64;
    let mut reported_at = std::time::Instant::now();
    // The alerts stored, as last stored (what makes an update urgent); when the store was
    // last written, and when the updates of known alerts last went with it.
    let mut shown: std::collections::HashMap<String, (Severity, String)> = Default::default();
    let mut committed_at: Option<std::time::Instant> = None;
    let mut updates_sent: Option<std::time::Instant> = None;
    let mut pace = WritePace::new(
        STORE_WRITES_PER_LOG_BYTE,
        STORE_WRITES_PER_SECOND,
        std::time::Instant::now(),
    );
    // Commits that new alerts may have at once, refilled one a second.
    let (mut burst, mut burst_at) = (NEW_ALERTS_BURST, std::time::Instant::now());
    let health = &services.counters.follower;
    health.active.store(true, Relaxed);
    // Blocks from before a restart, and from the fleet's other proxies, are enforced from
    // the first client on.
    let mut blocks_synced = std::time::Instant::now();
    // The suppression rules, read with the blocks: the proxy does not block what they dismiss.
    let mut rules: Vec<pgvigil::suppression::Rule> = shared.suppression_rules().unwrap_or_default();
    if let Some(g) = &guard {
        if let Err(e) = sync_blocks(&shared, &g.proxy.blocks) {
            tracing::error!(error = %e, "the proxy's blocks could not be read from the store");
        }
        g.listen(&cfg)?;
    }
    let mut draining = None;
    // Events received from the proxy: detection has acted on them once their alerts are
    // taken and considered for blocks.
    let mut proxy_events = 0u64;
    loop {
        // With the proxy, SIGTERM first drains it: its open sessions keep their detection
        // (and the log keeps being read) until they end or drain_timeout passes.
        let mut stopping = term.load(Relaxed);
        if let (true, Some(g)) = (stopping, &guard) {
            let d = draining.get_or_insert_with(|| {
                let p = g.proxy.clone();
                g.runtime.spawn(async move { p.drain().await })
            });
            stopping = d.is_finished();
        }
        let reopened = hup.swap(false, Relaxed);
        if reopened {
            // logrotate's postrotate: the alerts file is opened again by name, and the
            // configuration read again.
            alerts_file = open_alerts_file(cfg.output.file.as_deref())?;
            if let Some(path) = &args.config {
                match reload(path, &cfg, &mut follower) {
                    Ok(c) => cfg = c,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "configuration not reloaded")
                    }
                }
            }
            tracing::info!("SIGHUP: alerts file reopened, configuration reloaded");
        }
        if let Some(g) = &guard {
            pipeline.skip_log_sources = g.proxy.upstream_locals();
        }
        let mut consumed = follower.poll(&mut pipeline);
        read_since += consumed;
        pace.read(consumed, std::time::Instant::now());
        // Standard input has ended: what it brought is stored with a checkpoint, then exit.
        if let Some(ended) = follower.input_ended() {
            if !stopping {
                match &ended {
                    Some(e) => tracing::error!(error = %e, "standard input could not be read"),
                    None => tracing::info!("standard input ended"),
                }
            }
            input_error = ended.is_some();
            stopping = true;
        }
        // A quiet log: event time follows the wall clock, so incidents close on time.
        pipeline.heartbeat(now_ms());
        if let Some(g) = &mut guard {
            for ev in g.events.try_iter() {
                pipeline.observe(ev);
                proxy_events += 1;
                consumed += 1;
            }
        }
        let mut alerts = pipeline.take_alerts();
        if let Some(g) = &guard {
            let mut started = false;
            let now_utc = pgvigil::store::now_utc();
            for a in &mut alerts {
                // An alert a suppression rule will dismiss blocks no one: the operator has
                // said its source is expected.
                if rules.iter().any(|r| r.suppresses(a, &now_utc)) {
                    continue;
                }
                started |= g.proxy.blocks.consider(a, now_ms());
            }
            // The blocks are in force: logins the proxy holds amid failures may go on.
            g.proxy.acted_through(proxy_events);
            // A new block goes to the store (and the fleet) at once; the store's list comes
            // back every BLOCK_SYNC, with the suppression rules.
            if started || blocks_synced.elapsed() >= BLOCK_SYNC {
                blocks_synced = std::time::Instant::now();
                if let Err(e) = sync_blocks(&shared, &g.proxy.blocks) {
                    tracing::warn!(error = %e, "the proxy's blocks could not be exchanged with the store; retried");
                }
                match shared.suppression_rules() {
                    Ok(r) => rules = r,
                    Err(e) => {
                        tracing::warn!(error = %e, "the suppression rules could not be read; retried")
                    }
                }
            }
        }
        to_file.extend(alerts.iter().cloned());
        pending.extend(alerts);
        // Only an alert's last state is stored: updates waiting for the next commit are not
        // kept by the dozen.
        latest_per_id(&mut pending);
        // The whole state is saved at most every checkpoint_interval, and then only when
        // the log read since outweighs the last checkpoint CHECKPOINT_WEIGHT times: saving it
        // every poll wrote a hundred times the log's own volume. The positions saved are never older than
        // checkpoint_max_interval nor checkpoint_bytes of log behind.
        let since = checkpointed.elapsed().as_millis() as i64;
        // After the alerts file is reopened, the checkpoint must name the new file, or a
        // restart would not know to cut what was written there since.
        let checkpoint_due = first
            || stopping
            || reopened
            || (read_since > 0
                && ((since >= cfg.state.checkpoint_interval.ms()
                    && read_since >= CHECKPOINT_WEIGHT * checkpoint_size)
                    || since >= cfg.state.checkpoint_max_interval.ms()
                    || read_since >= cfg.state.checkpoint_bytes));
        // New alerts and escalations go out at once, alone; an alert that only counts on
        // goes out every ALERT_UPDATES_EVERY, its updates meanwhile folded into one (a crash
        // before then loses nothing: the log since the checkpoint is read again). Writing
        // each poll's update rewrote the same rows five times a second. While the store has
        // written more than its share of the log (`pace`), updates wait, up to
        // ALERT_UPDATES_LATEST.
        let news: std::collections::HashSet<String> = pending
            .iter()
            .filter(|a| {
                shown
                    .get(&a.id)
                    .is_none_or(|(s, name)| *s != a.severity || *name != a.display_name)
            })
            .map(|a| a.id.clone())
            .collect();
        let urgent = !news.is_empty();
        let sent_ago = committed_at.map_or(std::time::Duration::MAX, |t| t.elapsed());
        let updates_ago = updates_sent.map_or(std::time::Duration::MAX, |t| t.elapsed());
        let updates_due = !pending.is_empty()
            && updates_ago >= ALERT_UPDATES_EVERY
            && (pace.within() || updates_ago >= ALERT_UPDATES_LATEST);
        // The first alerts of a quiet spell go at once. In a storm of new alerts (thousands
        // of attacking addresses), one transaction a second at most, and while the store's
        // writes are ahead of the log, one every NEW_ALERTS_LATEST: more alerts to a
        // transaction share more of its index pages.
        let now = std::time::Instant::now();
        if pace.within() {
            burst = (burst + now.duration_since(burst_at).as_secs_f64()).min(NEW_ALERTS_BURST);
        }
        burst_at = now;
        let urgent = urgent
            && (burst >= 1.0
                || (sent_ago >= NEW_ALERTS_EVERY && pace.within())
                || sent_ago >= NEW_ALERTS_LATEST);
        if urgent {
            burst = (burst - 1.0).max(0.0);
        }
        // Between checkpoints, the server's lag, last event and profile summary still go
        // out every checkpoint_interval (one row; the counts wait for the checkpoint).
        let report_due = (read_since > 0 || profile_due(&profile_sent, &pipeline))
            && reported_at.elapsed().as_millis() as i64 >= cfg.state.checkpoint_interval.ms();
        if urgent || updates_due || checkpoint_due || report_due {
            // A checkpoint covers every alert before it; otherwise updates may wait.
            let all = updates_due || checkpoint_due;
            let mut batch: Vec<Alert> = if all {
                std::mem::take(&mut pending)
            } else {
                let (now, later) = std::mem::take(&mut pending)
                    .into_iter()
                    .partition(|a| news.contains(&a.id));
                pending = later;
                now
            };
            let sending: Vec<(String, (Severity, String))> = batch
                .iter()
                .map(|a| (a.id.clone(), (a.severity, a.display_name.clone())))
                .collect();
            let written_before = process_writes();
            let result = commit(
                &cfg,
                &store,
                &services,
                &follower,
                &pipeline,
                &mut batch,
                &mut to_file,
                alerts_file.as_mut(),
                (reported_events, reported_malformed),
                if checkpoint_due {
                    Report::Checkpoint
                } else if report_due {
                    Report::Light
                } else {
                    Report::None
                },
                profile_due(&profile_sent, &pipeline),
            );
            pace.wrote(match (written_before, process_writes()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                // Without the kernel's count: a page for the row and a dozen for its index
                // entries, written to the write-ahead log and again to the database.
                _ => (sending.len() * 2 * 13 * 4096) as u64,
            });
            match result {
                Ok((accepted, size)) => {
                    // Bounded: forgetting costs one early write of an update.
                    if shown.len() > 100_000 {
                        shown.clear();
                    }
                    shown.extend(sending);
                    committed_at = Some(std::time::Instant::now());
                    if all {
                        updates_sent = committed_at;
                    }
                    if checkpoint_due || report_due {
                        reported_at = std::time::Instant::now();
                        if profile_due(&profile_sent, &pipeline) {
                            profile_sent =
                                Some((std::time::Instant::now(), pipeline.engine.profile.size().0));
                        }
                    }
                    if let Some(size) = size {
                        checkpoint_size = size as u64;
                        reported_events = pipeline.events_total;
                        pipeline.logins.clear();
                        reported_malformed = follower.malformed;
                        checkpointed = std::time::Instant::now();
                        read_since = 0;
                    }
                    // Alerts for the central store go at once.
                    let _ = wake_shipper.send(());
                    print(&accepted, cfg.output.json, &mut stdout.lock())?;
                    first = false;
                }
                // The agent's own file store failing is not something waiting fixes (a
                // central store's absence is the shipper's to wait out).
                Err(e) => return Err(e),
            }
        }
        for raised in fleet_alerts.try_iter() {
            print(&raised, cfg.output.json, &mut stdout.lock())?;
        }
        health.last_poll_ms.store(now_ms(), Relaxed);
        health.files.store(follower.files() as u64, Relaxed);
        health.open.store(follower.open_files() as u64, Relaxed);
        health.bytes_behind.store(follower.bytes_behind(), Relaxed);
        health.read_errors.store(follower.read_errors, Relaxed);
        health
            .read_errors_last_poll
            .store(follower.read_errors_last_poll, Relaxed);
        health.oversize.store(follower.oversize, Relaxed);
        health
            .recovered_bytes
            .store(follower.recovered_bytes, Relaxed);
        if let Some(t) = pipeline.joiner_now() {
            health.newest_event_ms.store(t, Relaxed);
        }
        health
            .logins_succeeded
            .store(pipeline.logins_seen[0], Relaxed);
        health.logins_failed.store(pipeline.logins_seen[1], Relaxed);
        if stopping {
            let code = stop(&store, &services)?;
            return Ok(if input_error { 2 } else { code });
        }
        let interval =
            std::time::Duration::from_millis(cfg.input.poll_interval.ms().max(10) as u64);
        match &mut guard {
            // A login at the proxy wakes the loop at once: active response must not wait
            // for the next poll of the log files.
            Some(g) => {
                if let Ok(ev) = g.events.recv_timeout(&g.runtime, interval) {
                    pipeline.observe(ev);
                    proxy_events += 1;
                }
            }
            None => std::thread::sleep(interval),
        }
    }
}

/// SIGTERM: the current batch is in the store with a checkpoint; notifications due are given
/// a few seconds to go out (the rest go at the next start), then exit 0.
fn stop(store: &Store, services: &super::services::Services) -> Result<u8> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // In a fleet, what is queued for the central store is given the same few seconds;
    // what does not go now goes at the next start.
    let ship = &services.counters.ship;
    if ship.active.load(Relaxed) {
        ship.flush.store(true, Relaxed);
        let pending = || store.ship_backlog().map(|b| b.batches).unwrap_or(0);
        while pending() > 0
            && !ship.unreachable.load(Relaxed)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let mut queued = store.outbox_backlog().map(|b| b.0).unwrap_or(0);
    while queued > 0 && !services.channels.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        queued = store.outbox_backlog().map(|b| b.0).unwrap_or(0);
    }
    tracing::info!(
        notifications_queued = queued,
        "stopped: everything read is checkpointed"
    );
    Ok(0)
}

/// The proxy of `[proxy]`, running on its own runtime.
/// How often the proxy's blocks are exchanged with the store: a block lifted through another
/// API instance, or started by another proxy of the fleet, reaches this one within it.
const BLOCK_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// Saves the blocks started here, then enforces the store's list.
fn sync_blocks(
    store: &Store,
    blocks: &pgvigil::proxy::block::Blocklist,
) -> Result<(), pgvigil::store::StoreError> {
    let changed = blocks.take_changed();
    if let Err(e) = store.save_blocks(&changed) {
        blocks.requeue(&changed);
        return Err(e);
    }
    let active = store.active_blocks(&pgvigil::store::now_utc())?;
    let lifted = store.lifted_alerts()?;
    blocks.replace(&active, lifted);
    Ok(())
}

struct Guard {
    proxy: Arc<pgvigil::proxy::Proxy>,
    events: pgvigil::proxy::Events,
    runtime: tokio::runtime::Handle,
}

fn start_proxy(cfg: &Config, runtime: &tokio::runtime::Handle) -> Result<Guard> {
    let runtime = runtime.clone();
    let (proxy, events) = pgvigil::proxy::Proxy::new(cfg.proxy.clone())?;
    let proxy = Arc::new(proxy);
    Ok(Guard {
        proxy,
        events,
        runtime,
    })
}

impl Guard {
    /// Opens the proxy to clients: once detection is ready, so no attack outruns it.
    fn listen(&self, cfg: &Config) -> Result<()> {
        self.proxy
            .open(&self.runtime)
            .with_context(|| format!("proxy.listen {}", cfg.proxy.listen))?;
        Ok(())
    }
}

/// Writes the alerts file, then stores the pending alerts with the checkpoint and the
/// server's report in one transaction. Returns the alerts the policy let through, and the
/// checkpoint's size when one was saved.
#[allow(clippy::too_many_arguments)]
fn commit(
    cfg: &Config,
    store: &Store,
    services: &super::services::Services,
    follower: &Follower,
    pipeline: &Pipeline,
    pending: &mut Vec<Alert>,
    to_file: &mut Vec<Alert>,
    alerts_file: Option<&mut (PathBuf, std::fs::File)>,
    reported: (u64, u64),
    report: Report,
    send_profile: bool,
) -> Result<(Vec<Alert>, Option<usize>)> {
    // The alerts file first: if the store's transaction below does not happen, the next
    // start cuts the file back to the length in the previous checkpoint.
    let policy = store.get_policy(&cfg.server)?;
    to_file.retain(|a| policy.allows(a.alert_type));
    latest_per_id(to_file);
    let file = write_file(to_file, alerts_file)?;
    to_file.clear();
    // Counts go with the checkpoint that covers them: read again after a crash, they must
    // not count twice.
    let checkpoint = matches!(report, Report::Checkpoint);
    let now_event = pipeline.engine.now();
    let report = (!matches!(report, Report::None)).then(|| ServerReport {
        server: cfg.server.clone(),
        events: if checkpoint {
            pipeline.events_total - reported.0
        } else {
            0
        },
        parse_errors: if checkpoint {
            follower.malformed - reported.1
        } else {
            0
        },
        first_event: now_event.map(format_time),
        last_event: now_event.map(format_time),
        learning_until: pipeline
            .engine
            .profile
            .first_login
            .map(|f| format_time(f + cfg.detect.profile.learning_period.ms())),
        lag_seconds: now_event.map(|t| (now_ms() - t) as f64 / 1000.0),
        profile: send_profile.then(|| {
            pipeline
                .engine
                .profile
                .summary(&cfg.detect.profile)
                .to_string()
        }),
        logins: if checkpoint {
            pipeline.logins.clone()
        } else {
            Vec::new()
        },
        // As often as the profile: it changes as rarely.
        inputs: send_profile.then(|| follower.inputs().to_string()),
    });
    let bytes = checkpoint.then(|| {
        Checkpoint::save(
            &cfg.server,
            &follower.positions(),
            follower.journal_cursor().as_deref(),
            pipeline,
            file,
        )
    });
    let done = store.ingest(Ingest {
        alerts: pending,
        simulated: false,
        channels: &services.channels,
        admins: &services.admins,
        checkpoint: bytes.as_deref().map(|b| (cfg.server.as_str(), b)),
        report: report.as_ref(),
        ship: cfg.store.url.is_some(),
        notified: false,
    })?;
    pending.clear();
    services
        .counters
        .alerts_suppressed
        .fetch_add(done.suppressed as u64, Relaxed);
    Ok((done.accepted, bytes.map(|b| b.len())))
}

/// What goes to the store with the alerts of a commit.
enum Report {
    None,
    /// The server's lag, last event and profile summary.
    Light,
    /// The whole state, with the counts it covers.
    Checkpoint,
}

/// A checkpoint waits for this many times its own size of new log: with the store's
/// write-ahead log writing each page twice, checkpoints then write at most half a byte per
/// byte of log, and a crash reads again at most four checkpoints' worth of log.
const CHECKPOINT_WEIGHT: u64 = 4;

/// How often updates of known alerts (counts, end time, evidence) are stored and printed…
const ALERT_UPDATES_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// …when the store has written no more than this per byte of log read (alerts, checkpoints,
/// the write-ahead log and its copy into the database)…
const STORE_WRITES_PER_LOG_BYTE: f64 = 1.0;
/// …or than this a second, when the log is quiet…
const STORE_WRITES_PER_SECOND: f64 = 128.0 * 1024.0;
/// …and at least this often.
const ALERT_UPDATES_LATEST: std::time::Duration = std::time::Duration::from_secs(10);
/// New alerts (and escalations) are stored and printed at the poll that raised them, up to
/// NEW_ALERTS_BURST times in a row; beyond, once every NEW_ALERTS_EVERY, and while the
/// store's writes are ahead of the log, once every NEW_ALERTS_LATEST.
const NEW_ALERTS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const NEW_ALERTS_LATEST: std::time::Duration = std::time::Duration::from_secs(5);
const NEW_ALERTS_BURST: f64 = 5.0;

/// How often the profile summary goes to the store when only counts and times changed (it is
/// read by people, not detectors); a new entity sends it at once.
const PROFILE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn profile_due(sent: &Option<(std::time::Instant, usize)>, p: &Pipeline) -> bool {
    sent.is_none_or(|(at, size)| at.elapsed() >= PROFILE_EVERY || p.engine.profile.size().0 != size)
}

fn print(alerts: &[Alert], json: bool, out: &mut dyn Write) -> Result<()> {
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
    Ok(())
}

/// Keeps the last of several updates of one alert, in the order of those last updates.
fn latest_per_id(alerts: &mut Vec<Alert>) {
    let keep: Vec<bool> = {
        let mut last: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(alerts.len());
        for (i, a) in alerts.iter().enumerate() {
            last.insert(a.id.as_str(), i);
        }
        if last.len() == alerts.len() {
            return;
        }
        alerts
            .iter()
            .enumerate()
            .map(|(i, a)| last[a.id.as_str()] == i)
            .collect()
    };
    let mut keep = keep.into_iter();
    alerts.retain(|_| keep.next().unwrap_or(true));
}

/// Appends alerts to the alerts file (synced); returns the file's length and inode.
fn write_file(
    alerts: &[Alert],
    file: Option<&mut (PathBuf, std::fs::File)>,
) -> Result<Option<(u64, u64)>> {
    let Some((path, f)) = file else {
        return Ok(None);
    };
    if !alerts.is_empty() {
        let mut buf = Vec::new();
        for a in alerts {
            output::write_json_line(&mut buf, a)?;
        }
        f.write_all(&buf)
            .with_context(|| path.display().to_string())?;
        f.sync_data().with_context(|| path.display().to_string())?;
    }
    let meta = f.metadata().with_context(|| path.display().to_string())?;
    Ok(Some((
        meta.len(),
        std::os::unix::fs::MetadataExt::ino(&meta),
    )))
}

/// The alerts file (`output.file`), opened for appending.
fn open_alerts_file(f: Option<&std::path::Path>) -> Result<Option<(PathBuf, std::fs::File)>> {
    let Some(f) = f else { return Ok(None) };
    if let Some(dir) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(f)
        .with_context(|| f.display().to_string())?;
    Ok(Some((f.to_path_buf(), file)))
}

/// SIGHUP: settings that can change while running are applied; for the others, what needs a
/// restart is said.
fn reload(path: &std::path::Path, running: &Config, follower: &mut Follower) -> Result<Config> {
    let new = Config::load(path)?;
    let section = |c: &Config, name: &str| -> String {
        let v = serde_json::to_value(c).unwrap_or_default();
        v.get(name).map(|x| x.to_string()).unwrap_or_default()
    };
    let mut input_rest = new.input.clone();
    input_rest.poll_interval = running.input.poll_interval;
    input_rest.rotated_grace = running.input.rotated_grace;
    input_rest.max_entry_bytes = running.input.max_entry_bytes;
    if serde_json::to_value(&input_rest).ok() != serde_json::to_value(&running.input).ok() {
        tracing::warn!("input: paths, format, prefix and start_at change at the next restart");
    }
    for name in [
        "server", "state", "detect", "enrich", "intel", "store", "api", "notify", "scan", "proxy",
    ] {
        if section(&new, name) != section(running, name) {
            tracing::warn!(
                section = name,
                "changed in the configuration file: applied at the next restart"
            );
        }
    }
    follower.set_limits(
        std::time::Duration::from_millis(new.input.rotated_grace.ms().max(0) as u64),
        new.input.max_entry_bytes,
    );
    let mut applied = running.clone();
    applied.input.poll_interval = new.input.poll_interval;
    applied.input.rotated_grace = new.input.rotated_grace;
    applied.input.max_entry_bytes = new.input.max_entry_bytes;
    applied.output.json = new.output.json;
    Ok(applied)
}
