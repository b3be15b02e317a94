//! `PostgreSQL_HarmfulApplication`: attack tools recognised by what they leave in the log.
//!
//! What the log shows (PostgreSQL 15, verified with each tool):
//! - hydra and medusa connect to database `template1` and send no application_name;
//! - nmap's pgsql scripts use role or database `versionprobe`, and pgsql-brute names the
//!   database after the role;
//! - tools that do send an application_name (sqlmap, Metasploit, …) say so in
//!   `connection authorized`.
//!
//! A failed login never carries application_name, so the first two are read from failure
//! bursts, the last from successful logins and disconnections. Behind the proxy, the client's
//! startup packet is fingerprinted too: failed logins from a tool's fingerprint count, whatever
//! application_name it claims.

use super::window::{keep_sample, Recent};
use super::Detector;
use compact_str::CompactString;
use model::alert::{AlertType, Entities, Finding, Severity};
use model::duration::Span;
use model::event::{format_time, Event, EventKind, EventTime};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// `[detect.harmful_application]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HarmfulApplicationConfig {
    /// application_name values of attack tools (case-insensitive; a name matches when it is
    /// the tool's name or starts with it followed by a non-letter, e.g. `sqlmap/1.8`).
    pub tools: Vec<String>,
    /// Failed logins to `template1` without an application_name, within `window`, that mark
    /// hydra or medusa.
    pub template1_failures: u32,
    /// Failed logins whose database is named after the role (not `postgres`), within
    /// `window`, that mark nmap's pgsql-brute.
    pub database_named_after_role_failures: u32,
    /// The window.
    pub window: Span,
}

impl Default for HarmfulApplicationConfig {
    fn default() -> Self {
        HarmfulApplicationConfig {
            tools: [
                "sqlmap",
                "hydra",
                "medusa",
                "ncrack",
                "nmap",
                "metasploit",
                "msfconsole",
                "msf",
                "patator",
                "pgsql-brute",
                "zgrab",
                "masscan",
                "nuclei",
                "havij",
                "crackmapexec",
                "netexec",
                "legba",
                "brutespray",
                "pgbrute",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            template1_failures: 3,
            database_named_after_role_failures: 5,
            window: Span::mins(10),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Incident {
    start: EventTime,
    last: EventTime,
    tools: Vec<String>,
    signals: Vec<String>,
    events: u64,
    reported: super::window::Reported,
    principal: Option<String>,
    database: Option<String>,
    application: Option<String>,
    samples: Vec<Event>,
    /// The tool got past authentication (it logged in, ran statements): High, as Defender
    /// rates it; a tool that only knocked is Medium.
    #[serde(default)]
    inside: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Source {
    template1: Recent,
    db_is_role: Recent,
    /// Failed logins from a client whose startup packet is an attack tool's (the proxy).
    #[serde(default)]
    fingerprinted: Recent,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    sources: FxHashMap<CompactString, Source>,
    incidents: FxHashMap<CompactString, Incident>,
    last_sweep: super::window::Sweep,
}

pub struct HarmfulApplication {
    cfg: HarmfulApplicationConfig,
    batch: bool,
    tools_lower: Vec<String>,
    /// application_name → tool, for names seen before (a server sees few distinct names).
    app_cache: FxHashMap<CompactString, Option<String>>,
    st: State,
}

impl HarmfulApplication {
    pub fn new(cfg: HarmfulApplicationConfig) -> Self {
        let tools_lower = cfg.tools.iter().map(|t| t.to_lowercase()).collect();
        HarmfulApplication {
            cfg,
            batch: false,
            tools_lower,
            app_cache: FxHashMap::default(),
            st: State::default(),
        }
    }

    fn tool_in_app_name(&self, app: &str) -> Option<&str> {
        let a = app.to_lowercase();
        self.tools_lower.iter().find_map(|t| {
            let rest = a.strip_prefix(t.as_str())?;
            let boundary = rest.chars().next().is_none_or(|c| !c.is_alphabetic());
            boundary.then_some(t.as_str())
        })
    }

    fn finding(&self, src: &str, inc: &Incident) -> Finding {
        let tools = inc.tools.join(", ");
        Finding {
            alert_type: AlertType::HarmfulApplication,
            display_name: AlertType::HarmfulApplication.title(),
            severity: if inc.inside {
                Severity::High
            } else {
                Severity::Medium
            },
            techniques: AlertType::HarmfulApplication.techniques(),
            entity: src.to_string(),
            start: inc.start,
            end: inc.last,
            entities: Entities {
                source_ip: Some(src.to_string()),
                principal: inc.principal.clone(),
                database: inc.database.clone(),
                application: inc.application.clone(),
                fingerprint: model::alert::fingerprint_of(&inc.samples),
                ..Entities::default()
            },
            evidence: model::evidence!({
                "tools": inc.tools,
                "signals": inc.signals,
                "events": inc.events,
                "sampleEvents": model::alert::samples(&inc.samples),
            }),
            description: format!(
                "{src} connected with a tool used for attacks ({tools}) between {} and {}.",
                format_time(inc.start),
                format_time(inc.last)
            ),
            anomaly_context: format!(
                "{}; legitimate clients (drivers, psql, admin tools) do not leave this trace.",
                inc.signals.join("; ")
            ),
            remediation: vec![
                format!("Find out who runs {tools} from {src}: an authorised penetration test, or an attacker."),
                format!("If it is not authorised, {}.", super::advice::block_advice(src)),
                "Check the other alerts for this source: attack tools usually come with brute force or scanning.".into(),
                "Keep PostgreSQL's port reachable only from the networks that need it.".into(),
            ],
        }
    }

    fn signal(
        &mut self,
        ev: &Event,
        src: &CompactString,
        tool: &str,
        signal: String,
        out: &mut Vec<Finding>,
    ) {
        // An incident from this source that went quiet is over: its final state first.
        let window = self.cfg.window.ms();
        if let Some(old) = self.st.incidents.get(src) {
            if ev.time - old.last > window {
                if let Some(old) = self.st.incidents.remove(src) {
                    if old.events != old.reported.count {
                        out.push(self.finding(src, &old));
                    }
                }
            }
        }
        let inc = self
            .st
            .incidents
            .entry(src.clone())
            .or_insert_with(|| Incident {
                start: ev.time,
                ..Incident::default()
            });
        inc.last = inc.last.max(ev.time);
        inc.events += 1;
        let inside = matches!(
            ev.kind,
            EventKind::LoginSucceeded | EventKind::Statement | EventKind::Error
        );
        // Getting in is news (an escalation) even when no new tool came with it.
        let escalated = inside && !inc.inside;
        inc.inside |= inside;
        if inc.principal.is_none() {
            inc.principal = ev.principal.as_ref().map(|p| p.to_string());
        }
        if inc.database.is_none() {
            inc.database = ev.database.as_ref().map(|p| p.to_string());
        }
        if inc.application.is_none() {
            inc.application = ev.application.as_ref().map(|p| p.to_string());
        }
        keep_sample(&mut inc.samples, ev, 5);
        let new_tool = !inc.tools.iter().any(|t| t == tool);
        if new_tool {
            inc.tools.push(tool.to_string());
        }
        if !inc.signals.contains(&signal) && inc.signals.len() < 10 {
            inc.signals.push(signal);
        }
        if !self.batch && (new_tool || escalated || inc.reported.due(inc.events, ev.time)) {
            inc.reported.mark(inc.events, ev.time);
            let inc = inc.clone();
            out.push(self.finding(src, &inc));
        }
    }
}

/// Which DBMS fork it reached is what a fingerprinting tool asks first and an application
/// never does: sqlmap asks `VERSION() LIKE '%CockroachDB%'` (Redshift, Greenplum,
/// Yellowbrick, EnterpriseDB…) and `AURORA_VERSION() LIKE '%'`, a function plain PostgreSQL
/// lacks, so that probe fails and is logged even with statement logging off. (A monitoring
/// agent on Aurora calls `aurora_version()` plainly, not in a LIKE.)
fn tool_probe(toks: &[model::sql::Token]) -> Option<(&'static str, String)> {
    use super::statement::{is_call, is_op, is_word};
    use model::sql::Token;
    const FORKS: [&str; 6] = [
        "%cockroachdb%",
        "%redshift%",
        "%greenplum%",
        "%yellowbrick%",
        "%enterprisedb%",
        "%opengauss%",
    ];
    for i in 0..toks.len() {
        if is_call(toks, i, &["AURORA_VERSION"])
            && is_op(toks.get(i + 2), ")")
            && is_word(toks.get(i + 3), "LIKE")
        {
            return Some((
                "sqlmap",
                "AURORA_VERSION() LIKE …: sqlmap's test for Amazon Aurora, a function PostgreSQL does not have".into(),
            ));
        }
        if is_call(toks, i, &["VERSION"])
            && is_op(toks.get(i + 2), ")")
            && is_word(toks.get(i + 3), "LIKE")
        {
            if let Some(Token::Str(p)) = toks.get(i + 4) {
                let p = p.to_lowercase();
                if FORKS.contains(&p.as_str()) {
                    return Some((
                        "sqlmap",
                        format!("VERSION() LIKE {p:?}: sqlmap's test for which PostgreSQL fork it reached"),
                    ));
                }
            }
        }
    }
    None
}

impl Detector for HarmfulApplication {
    fn id(&self) -> &'static str {
        "harmful_application"
    }

    fn observe(&mut self, ev: &Event, cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        if ev.kind == EventKind::ConnectionReceived {
            return;
        }
        let window = self.cfg.window.ms();
        let src = ev.source_key();
        // A tool's own queries: even with statement logging off, the ones that fail are
        // logged (log_min_error_statement), and fingerprinting queries fail in telling ways.
        if matches!(ev.kind, EventKind::Statement | EventKind::Error) {
            if let Some((tool, what)) = ev.sql.as_ref().and_then(|s| tool_probe(s.tokens())) {
                let failed = if ev.kind == EventKind::Error {
                    " (it failed, and was logged as the error's statement)"
                } else {
                    ""
                };
                self.signal(ev, &src, tool, format!("{what}{failed}"), out);
                return;
            }
        }
        if let Some(app) = &ev.application {
            let tool = match self.app_cache.get(app) {
                Some(t) => t.clone(),
                None => {
                    let t = self.tool_in_app_name(app).map(str::to_string);
                    if self.app_cache.len() < 10_000 {
                        self.app_cache.insert(app.clone(), t.clone());
                    }
                    t
                }
            };
            if let Some(tool) = tool {
                let s = format!("application_name {app:?} is the name of {tool}");
                self.signal(ev, &src, &tool, s, out);
                return;
            }
        }
        if ev.principal.as_deref() == Some("versionprobe")
            || ev.database.as_deref() == Some("versionprobe")
        {
            self.signal(
                ev,
                &src,
                "nmap",
                "role or database \"versionprobe\" is nmap's version probe".into(),
                out,
            );
            return;
        }
        let EventKind::LoginFailed { .. } = ev.kind else {
            // What the tool did besides (its logins, statements, errors) counts towards its
            // incident; disconnections and connections decided silent later are bookkeeping
            // of the same connections.
            let counted = matches!(
                ev.kind,
                EventKind::LoginSucceeded | EventKind::Statement | EventKind::Error
            );
            let mut escalated = None;
            if let Some(inc) = self.st.incidents.get_mut(&src) {
                if counted && ev.time - inc.last <= window {
                    inc.last = inc.last.max(ev.time);
                    inc.events += 1;
                    // The tool's source got in: the incident is High from now on.
                    if !inc.inside {
                        inc.inside = true;
                        if !self.batch {
                            inc.reported.mark(inc.events, ev.time);
                            escalated = Some(inc.clone());
                        }
                    }
                }
            }
            if let Some(inc) = escalated {
                out.push(self.finding(&src, &inc));
            }
            return;
        };
        // How this failure stands among its source's: at a tool's pace (three or more in a
        // row, each within a second: nobody types that fast), and how many attempts it adds
        // (libpq's immediate retry without TLS repeats the attempt before it: none).
        let rate = cx.failure.unwrap_or_default();
        let machine = rate.source_run >= 3;
        // Failures this one shows were a tool's: none before the third of a run, then the
        // whole run at once, then each.
        let tool_made = match rate.source_run {
            0..=2 => 0,
            3 => 3,
            _ => 1,
        };
        // The proxy saw the startup packet: a tool's fingerprint failing to log in. Named as
        // the fingerprint names it (hydra and medusa send the same packet). A packet a real
        // client sends too ("psql or ncrack": ncrack's is psql's at a terminal) names the
        // tool only when the failures come at a tool's pace: a person retyping a password
        // is not ncrack.
        let fp_tool = ev
            .fingerprint
            .as_deref()
            .and_then(|f| match f.split_once(" or ") {
                Some((real, tool)) => (machine && self.tool_in_app_name(tool).is_some())
                    .then(|| (tool.to_string(), format!("{tool}'s (and {real}'s)"))),
                None => self
                    .tool_in_app_name(f)
                    .map(|_| (f.to_string(), format!("{f}'s"))),
            });
        if let Some((tool, fp)) = fp_tool {
            let n = self.cfg.template1_failures as usize;
            let s = self.st.sources.entry(src.clone()).or_default();
            let ambiguous = ev
                .fingerprint
                .as_deref()
                .is_some_and(|f| f.contains(" or "));
            for _ in 0..if ambiguous { tool_made } else { 1 } {
                s.fingerprinted.push(ev.time, n);
            }
            if s.fingerprinted.reached(n, window) {
                let said = match &ev.application {
                    Some(app) => format!(" (it calls itself {app:?})"),
                    None => String::new(),
                };
                let pace = if fp.contains(" (and ") {
                    " at a tool's pace"
                } else {
                    ""
                };
                let signal = format!(
                    "{n}+ failed logins{pace} from a client whose startup packet is {fp}{said}"
                );
                self.signal(ev, &src, &tool, signal, out);
                return;
            }
        }
        let n1 = self.cfg.template1_failures as usize;
        let n2 = self.cfg.database_named_after_role_failures as usize;
        let template1 = ev.database.as_deref() == Some("template1") && ev.application.is_none();
        let db_is_role = ev.database.is_some()
            && ev.database == ev.principal
            && ev.database.as_deref() != Some("postgres");
        let mut hit: Option<(&str, String)> = None;
        if !(template1 || db_is_role) {
            if let Some(inc) = self.st.incidents.get_mut(&src) {
                if ev.time - inc.last <= window {
                    inc.last = inc.last.max(ev.time);
                    inc.events += 1;
                }
            }
            return;
        }
        let s = self.st.sources.entry(src.clone()).or_default();
        if template1 {
            for _ in 0..rate.attempts {
                s.template1.push(ev.time, n1);
            }
            if s.template1.reached(n1, window) {
                hit = Some(("hydra/medusa", format!(
                    "{n1}+ failed logins to database template1 with no application_name (hydra's and medusa's postgres modules)"
                )));
            }
        }
        // psql's default database is the role's name: a person mistyping a password fails
        // just like pgsql-brute, only slower. Only failures at a tool's pace count.
        if db_is_role && machine {
            for _ in 0..tool_made {
                s.db_is_role.push(ev.time, n2);
            }
            if s.db_is_role.reached(n2, window) {
                hit = Some(("nmap pgsql-brute", format!(
                    "{n2}+ failed logins whose database is named after the role (nmap's pgsql-brute)"
                )));
            }
        }
        match hit {
            Some((tool, signal)) => self.signal(ev, &src, tool, signal, out),
            None => {
                if let Some(inc) = self.st.incidents.get_mut(&src) {
                    if ev.time - inc.last <= window {
                        inc.last = inc.last.max(ev.time);
                        inc.events += 1;
                    }
                }
            }
        }
    }

    detector_state!();

    fn advance(&mut self, now: EventTime, out: &mut Vec<Finding>) {
        if !self.st.last_sweep.due(now, self.cfg.window.ms()) {
            return;
        }
        let window = self.cfg.window.ms();
        self.st.sources.retain(|_, s| {
            let last = s
                .template1
                .last()
                .into_iter()
                .chain(s.db_is_role.last())
                .chain(s.fingerprinted.last())
                .max();
            last.is_some_and(|l| now - l <= window)
        });
        for (key, inc) in super::window::close_quiet(&mut self.st.incidents, now, window, |i| {
            (i.last, i.events != i.reported.count)
        }) {
            out.push(self.finding(&key, &inc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use model::event::LoginFailure;

    /// `n` failed logins to template1 from 203.0.113.7, 10 ms apart: hydra's trace.
    fn template1_failures(n: i64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                with_db(
                    failed(i * 10, "203.0.113.7", "app", LoginFailure::BadPassword),
                    "template1",
                )
            })
            .collect()
    }

    fn with_db(mut e: Event, db: &str) -> Event {
        e.database = Some(db.into());
        e
    }

    #[test]
    fn hydra_template1_burst() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let f = run(&mut d, template1_failures(3));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence.value()["tools"][0], "hydra/medusa");
        // Knocking only: Medium, as Defender rates a tool that did not get in.
        assert_eq!(f[0].severity, Severity::Medium);
    }

    #[test]
    fn a_tool_that_gets_in_is_high() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let mut evs = template1_failures(3);
        let mut ok = with_db(succeeded(40, "203.0.113.7", "app"), "template1");
        ok.application = Some("sqlmap/1.8".into());
        evs.push(ok);
        let f = run(&mut d, evs);
        assert_eq!(
            f.iter().map(|f| f.severity).collect::<Vec<_>>(),
            [Severity::Medium, Severity::High],
            "{f:#?}"
        );
    }

    #[test]
    fn a_late_reported_earlier_event_does_not_move_the_end_back() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        d.set_batch(true);
        let mut evs = template1_failures(3);
        let mut e = succeeded(9_000, "203.0.113.7", "app");
        e.application = Some("sqlmap".into());
        evs.push(e);
        // A bare connect from the start, decided only later (the joiner's startup timeout).
        evs.push(protocol(
            5,
            "203.0.113.7",
            model::event::ProtocolErrorKind::NoStartup,
        ));
        let mut f = run(&mut d, evs);
        d.advance(100_000_000, &mut f);
        assert_eq!(f.last().unwrap().end, 9_000);
    }

    #[test]
    fn one_failed_template1_login_is_a_human() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        assert!(run(
            &mut d,
            [with_db(
                failed(0, "203.0.113.7", "app", LoginFailure::BadPassword),
                "template1"
            )]
        )
        .is_empty());
    }

    #[test]
    fn tool_application_names() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let mut e = succeeded(0, "203.0.113.7", "app");
        e.application = Some("sqlmap/1.8#stable".into());
        let f = run(&mut d, [e]);
        assert_eq!(f[0].evidence.value()["tools"][0], "sqlmap");
        // A word that merely starts like a tool is not one.
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let mut e = succeeded(0, "203.0.113.7", "app");
        e.application = Some("msformsapp".into());
        assert!(run(&mut d, [e]).is_empty());
    }

    #[test]
    fn sqlmaps_fork_probes_even_as_failed_statements() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let mut e = ev(0, EventKind::Error, "203.0.113.7", Some("app"));
        e.sql = Some(model::event::Sql::new(
            "SELECT (CASE WHEN (AURORA_VERSION() LIKE '%') THEN '1' ELSE '0' END)",
        ));
        let f = run(&mut d, [e]);
        assert_eq!(f[0].evidence.value()["tools"][0], "sqlmap");
        // Aurora's own monitoring asks plainly.
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let mut e = ev(0, EventKind::Statement, "203.0.113.7", Some("monitor"));
        e.sql = Some(model::event::Sql::new("SELECT aurora_version()"));
        assert!(run(&mut d, [e]).is_empty());
    }

    #[test]
    fn versionprobe_and_database_named_after_role() {
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let f = run(
            &mut d,
            [failed(
                0,
                "203.0.113.7",
                "versionprobe",
                LoginFailure::NoSuchRole,
            )],
        );
        assert_eq!(f[0].evidence.value()["tools"][0], "nmap");
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let f = run(
            &mut d,
            (0..5).map(|i| {
                with_db(
                    failed(i, "203.0.113.8", "md5user", LoginFailure::BadPassword),
                    "md5user",
                )
            }),
        );
        assert_eq!(f[0].evidence.value()["tools"][0], "nmap pgsql-brute");
    }
    /// psql at a terminal sends ncrack's packet. A person retyping a password (each typo two
    /// failures: libpq's retry without TLS) is never ncrack; ncrack's pace is.
    #[test]
    fn a_packet_shared_with_a_real_client_names_the_tool_only_at_a_tools_pace() {
        let typed = |t: EventTime, src: &str| {
            let mut e = with_db(failed(t, src, "alice", LoginFailure::BadPassword), "alice");
            e.application = Some("psql".into());
            e.fingerprint = Some("psql or ncrack".into());
            e
        };
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        // Six typos, 3 s apart, each retried 4 ms later: twelve failures, at a person's pace.
        let f = run(
            &mut d,
            (0..6).flat_map(|i| {
                [
                    typed(i * 3_000, "203.0.113.20"),
                    typed(i * 3_000 + 4, "203.0.113.20"),
                ]
            }),
        );
        assert!(f.is_empty(), "{f:?}");
        // The same packet, 5 failures 3 ms apart: ncrack.
        let mut d = HarmfulApplication::new(HarmfulApplicationConfig::default());
        let f = run(&mut d, (0..5).map(|i| typed(i * 3, "203.0.113.21")));
        assert!(!f.is_empty());
        assert_eq!(f[0].evidence.value()["tools"][0], "ncrack");
    }
}
