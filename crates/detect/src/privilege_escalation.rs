//! `PostgreSQL_PrivilegeEscalation`: a role is given more power — `SUPERUSER`, `CREATEROLE`,
//! `BYPASSRLS` or `REPLICATION` by `ALTER ROLE` (at `CREATE ROLE`, the first and third), `GRANT ALL` on a
//! database, schema or all tables, membership in the roles that reach the operating system
//! (`pg_execute_server_program`, `pg_read_server_files`, `pg_write_server_files`) or all data
//! (`pg_read_all_data`, `pg_write_all_data`) — and superusers writing to user tables outside the
//! configured maintenance windows. One alert per role that gained the power.

use super::statement::{self as st, Explained, Incidents, StatementEvidence};
use super::Detector;
use model::alert::{AlertType, Finding, Severity};
use model::event::{Event, EventKind, EventTime};
use model::sql::Token;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// `[detect.privilege_escalation]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivilegeEscalationConfig {
    pub enabled: bool,
    /// Superuser roles (roles made superuser in the logs are added as they are seen).
    pub superusers: Vec<String>,
    /// UTC times of day ("02:00-04:00") when superusers may write to user tables. Empty: the
    /// rule is off (many servers are run by their superuser all day).
    pub maintenance_windows: Vec<String>,
}

impl Default for PrivilegeEscalationConfig {
    fn default() -> Self {
        PrivilegeEscalationConfig {
            enabled: true,
            superusers: vec!["postgres".into()],
            maintenance_windows: Vec::new(),
        }
    }
}

impl PrivilegeEscalationConfig {
    /// The windows as minutes of the day, or the first that is not `HH:MM-HH:MM`.
    pub fn windows(&self) -> Result<Vec<(u32, u32)>, model::setting::SettingError> {
        self.maintenance_windows
            .iter()
            .map(|w| {
                let parse = |s: &str| -> Option<u32> {
                    let (h, m) = s.trim().split_once(':')?;
                    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
                    (h < 24 && m < 60).then_some(h * 60 + m)
                };
                w.split_once('-')
                    .and_then(|(a, b)| Some((parse(a)?, parse(b)?)))
                    .ok_or_else(|| {
                        model::setting::SettingError::new(
                            "detect.privilege_escalation.maintenance_windows",
                            format!("detect.privilege_escalation.maintenance_windows: {w:?} is not HH:MM-HH:MM (UTC)"),
                        )
                    })
            })
            .collect()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
// A checkpoint from before a field existed still loads.
#[serde(default)]
struct State {
    incidents: Incidents,
    /// Roles made superuser in the logs.
    superusers: FxHashSet<String>,
    /// Per session, the gains of its last statement until the log tells whether it ran.
    pending: FxHashMap<u64, Pending>,
}

/// A statement that gives power, waiting for its outcome: the server logs a statement before
/// running it, and its error (if any) right after.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    ev: Event,
    /// `(role, rule, severity)`.
    gains: Vec<(String, String, Severity)>,
}

/// How long (event time) a statement's error may follow it; after that it ran.
const OUTCOME_WAIT_MS: EventTime = 2_000;

pub struct PrivilegeEscalation {
    cfg: PrivilegeEscalationConfig,
    windows: Vec<(u32, u32)>,
    shown: StatementEvidence,
    batch: bool,
    st: State,
}

impl PrivilegeEscalation {
    pub fn new(cfg: PrivilegeEscalationConfig, shown: StatementEvidence) -> Self {
        // Checked when the configuration is loaded; a bad window here just means none.
        let windows = cfg.windows().unwrap_or_default();
        PrivilegeEscalation {
            cfg,
            windows,
            shown,
            batch: false,
            st: State::default(),
        }
    }

    /// The findings of a statement whose outcome is known: `refusal` is the error that
    /// refused it, and then nothing was gained, only tried.
    fn report(&mut self, p: Pending, refusal: Option<&Event>, out: &mut Vec<Finding>) {
        let ev = &p.ev;
        let by = ev.principal.as_deref().unwrap_or("");
        for (role, rule, severity) in p.gains {
            let (rule, severity) = match refusal {
                Some(_) => (format!("refused: {rule}"), severity.min(Severity::Medium)),
                None => {
                    if rule == "made superuser" {
                        self.st.superusers.insert(role.clone());
                    }
                    (rule, severity)
                }
            };
            let shown = self.shown.show(ev);
            let inc = self.st.incidents.hit(&role, ev, &[&rule], severity, shown);
            let gained: Vec<&str> = inc
                .rules
                .iter()
                .filter(|r| !r.starts_with("refused: "))
                .map(String::as_str)
                .collect();
            let tried: Vec<&str> = inc
                .rules
                .iter()
                .filter_map(|r| r.strip_prefix("refused: "))
                .collect();
            let source = ev.source_key();
            let description = match (gained.is_empty(), tried.is_empty()) {
                (false, true) => format!(
                    "Role {role:?} gained privileges ({}), by {by:?} from {source}.",
                    gained.join(", ")
                ),
                (true, _) => format!(
                    "{by:?} from {source} tried to give role {role:?} privileges ({}); the server refused.",
                    tried.join(", ")
                ),
                (false, false) => format!(
                    "Role {role:?} gained privileges ({}), by {by:?} from {source}; also tried and refused: {}.",
                    gained.join(", "),
                    tried.join(", ")
                ),
            };
            let mut extra = vec![("grantedBy", serde_json::json!(by))];
            if let Some(e) = refusal {
                extra.push((
                    "refusal",
                    serde_json::json!({"sqlstate": e.sqlstate, "message": e.message}),
                ));
            }
            let x = Explained {
                alert_type: AlertType::PrivilegeEscalation,
                entity: role.clone(),
                description,
                why: if refusal.is_some() {
                    "A session that tries to give a role more power than it may is probing what its own role can do: the next attempt may be one its role is allowed.".into()
                } else if role == by {
                    "The role's own session used powers that it should use only in planned maintenance.".into()
                } else {
                    "Attackers who get a privileged session make themselves a lasting way back in by giving an ordinary role superuser or server-file powers; planned changes of this kind are rare.".into()
                },
                remediation: vec![
                    if gained.is_empty() {
                        format!("Nothing was changed. Ask the owner of {by:?} why its session tried; if nobody knows, end its sessions ({}) and change its password.", super::advice::terminate_role(by))
                    } else {
                        format!("Confirm with the owner of {by:?} that the change was planned; if not, revoke it ({}; REVOKE … FROM {}) and change both roles' passwords.", super::advice::alter_role(&role, "NOSUPERUSER NOCREATEROLE NOBYPASSRLS NOREPLICATION"), model::sql::quote_ident(&role))
                    },
                    format!("Review what {role:?} and {by:?} did since (log_statement or pgaudit) and which sessions they have open (pg_stat_activity)."),
                    "Give roles the least privilege they need: application roles never need superuser, CREATEROLE or the pg_*_server_* roles.".into(),
                ],
                extra,
            };
            out.push(st::finding(ev, inc, x));
        }
    }
}

/// A rule that matched: the role that gains, the rule, its severity.
#[derive(Debug, PartialEq)]
pub struct Gain {
    pub role: String,
    pub rule: &'static str,
    pub severity: Severity,
}

const POWERFUL_ATTRIBUTES: [(&str, Severity); 4] = [
    ("SUPERUSER", Severity::High),
    ("BYPASSRLS", Severity::High),
    ("CREATEROLE", Severity::Medium),
    ("REPLICATION", Severity::Medium),
];

const POWERFUL_ROLES: [(&str, Severity); 5] = [
    ("pg_execute_server_program", Severity::High),
    ("pg_write_server_files", Severity::High),
    ("pg_read_server_files", Severity::High),
    ("pg_write_all_data", Severity::Medium),
    ("pg_read_all_data", Severity::Medium),
];

/// The grantees after `TO` up to the end or a `WITH`/`GRANTED` clause.
fn grantees(s: &[Token]) -> Vec<String> {
    let Some(to) = s.iter().rposition(|t| st::is_word(Some(t), "TO")) else {
        return vec![];
    };
    s[to + 1..]
        .iter()
        .take_while(|t| !st::is_word(Some(t), "WITH") && !st::is_word(Some(t), "GRANTED"))
        .filter_map(|t| st::name_of(Some(t)))
        .filter(|n| n != "group")
        .collect()
}

/// The gains a text grants; `is_superuser` says which roles are superusers (membership in
/// one is superuser power).
pub fn gains(toks: &[Token], is_superuser: &dyn Fn(&str) -> bool) -> Vec<Gain> {
    let mut out = Vec::new();
    for s in st::statements(toks) {
        let role_stmt = (st::starts_with(s, &["ALTER"]) || st::starts_with(s, &["CREATE"]))
            && (st::is_word(s.get(1), "ROLE") || st::is_word(s.get(1), "USER"));
        if role_stmt {
            let Some(role) = st::name_of(s.get(2)) else {
                continue;
            };
            // A new role made with CREATEROLE or REPLICATION is an administrator or a replica
            // being provisioned; giving either to an existing role, or SUPERUSER/BYPASSRLS
            // ever, is the escalation.
            let creating = st::starts_with(s, &["CREATE"]);
            for t in &s[3..] {
                if let Token::Word(w) = t {
                    let found = POWERFUL_ATTRIBUTES
                        .iter()
                        .find(|(a, sev)| a == w && (!creating || *sev == Severity::High));
                    if let Some((attr, sev)) = found {
                        out.push(Gain {
                            role: role.clone(),
                            rule: match *attr {
                                "SUPERUSER" => "made superuser",
                                "BYPASSRLS" => "given BYPASSRLS",
                                "CREATEROLE" => "given CREATEROLE",
                                _ => "given REPLICATION",
                            },
                            severity: *sev,
                        });
                    }
                }
            }
        }
        if st::starts_with(s, &["GRANT"]) {
            let on = s.iter().position(|t| st::is_word(Some(t), "ON"));
            match on {
                Some(on) => {
                    let all = st::is_word(s.get(1), "ALL");
                    let wide = st::is_word(s.get(on + 1), "DATABASE")
                        || st::is_word(s.get(on + 1), "SCHEMA")
                        || st::starts_with(&s[on + 1..], &["ALL", "TABLES"]);
                    if all && wide {
                        for role in grantees(s) {
                            out.push(Gain {
                                role,
                                rule: "GRANT ALL on a database, schema or all tables",
                                severity: Severity::Medium,
                            });
                        }
                    }
                }
                None => {
                    // GRANT role, … TO grantee: membership.
                    let granted: Vec<String> = s[1..]
                        .iter()
                        .take_while(|t| !st::is_word(Some(t), "TO"))
                        .filter_map(|t| st::name_of(Some(t)))
                        .collect();
                    for g in granted {
                        if is_superuser(&g) {
                            for role in grantees(s) {
                                out.push(Gain {
                                    role,
                                    rule: "granted membership in a superuser role",
                                    severity: Severity::High,
                                });
                            }
                            continue;
                        }
                        if let Some((_, sev)) = POWERFUL_ROLES.iter().find(|(r, _)| *r == g) {
                            for role in grantees(s) {
                                out.push(Gain {
                                    role,
                                    rule: "granted a role that reaches the server's files, programs or all data",
                                    severity: *sev,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The table a superuser writes to, if the statement is a write to a user table.
fn written_table(toks: &[Token]) -> Option<String> {
    let s = st::statements(toks).next()?;
    let at = if st::starts_with(s, &["INSERT", "INTO"]) || st::starts_with(s, &["DELETE", "FROM"]) {
        2
    } else if st::starts_with(s, &["UPDATE"]) || st::starts_with(s, &["TRUNCATE"]) {
        if st::is_word(s.get(1), "ONLY") || st::is_word(s.get(1), "TABLE") {
            2
        } else {
            1
        }
    } else {
        return None;
    };
    let first = st::name_of(s.get(at))?;
    let name = if st::is_op(s.get(at + 1), ".") {
        format!("{first}.{}", st::name_of(s.get(at + 2))?)
    } else {
        first
    };
    let system = name.starts_with("pg_") || name.starts_with("information_schema.");
    (!system).then_some(name)
}

fn in_windows(windows: &[(u32, u32)], t: EventTime) -> bool {
    let minute = (t.rem_euclid(86_400_000) / 60_000) as u32;
    windows.iter().any(|&(a, b)| {
        if a <= b {
            (a..b).contains(&minute)
        } else {
            minute >= a || minute < b
        }
    })
}

impl Detector for PrivilegeEscalation {
    fn id(&self) -> &'static str {
        "privilege_escalation"
    }

    fn observe(&mut self, ev: &Event, _cx: &super::Context<'_>, out: &mut Vec<Finding>) {
        let statement_or_error = matches!(ev.kind, EventKind::Statement | EventKind::Error);
        if !self.cfg.enabled || (!statement_or_error && self.st.pending.is_empty()) {
            return;
        }
        let key = st::session_key(ev);
        let mut outcome_told = false;
        if let Some(p) = self.st.pending.remove(&key) {
            // The next word of the session on its statement: an error about that statement
            // (the joiner leaves out a statement text it has just seen) means it was refused;
            // anything else means it ran.
            let refused = ev.kind == EventKind::Error
                && ev
                    .sql
                    .as_ref()
                    .is_none_or(|q| p.ev.sql.as_ref().is_some_and(|s| s.text == q.text));
            if refused || ev.kind != EventKind::Statement || ev.sql.is_some() {
                outcome_told = refused;
                self.report(p, refused.then_some(ev), out);
            } else {
                // pgaudit repeating the statement (rows, no text): no outcome yet.
                self.st.pending.insert(key, p);
            }
        }
        // A statement refused before it was logged (pgaudit logs only what passed its
        // checks) is known by its error alone.
        let refused_alone = ev.kind == EventKind::Error && !outcome_told;
        if ev.kind != EventKind::Statement && !refused_alone {
            return;
        }
        let Some(sql) = &ev.sql else { return };
        let toks = sql.executed_tokens();
        let by = ev.principal.as_deref().unwrap_or("");
        let (cfg_su, seen_su) = (&self.cfg.superusers, &self.st.superusers);
        let is_su = |r: &str| cfg_su.iter().any(|s| s == r) || seen_su.contains(r);
        let mut found: Vec<(String, String, Severity)> = gains(toks, &is_su)
            .into_iter()
            .map(|g| (g.role, g.rule.to_string(), g.severity))
            .collect();
        let superuser =
            self.cfg.superusers.iter().any(|s| s == by) || self.st.superusers.contains(by);
        if superuser
            && !self.windows.is_empty()
            && !in_windows(&self.windows, ev.time)
            && written_table(toks).is_some()
        {
            found.push((
                by.to_string(),
                "superuser wrote to a user table outside maintenance".into(),
                Severity::Medium,
            ));
        }
        if found.is_empty() {
            return;
        }
        let p = Pending {
            ev: ev.clone(),
            gains: found,
        };
        if refused_alone {
            self.report(p, Some(ev), out);
        } else {
            self.st.pending.insert(key, p);
        }
    }

    fn advance(&mut self, now: EventTime, out: &mut Vec<Finding>) {
        let mut ran: Vec<Pending> = self
            .st
            .pending
            .extract_if(|_, p| now - p.ev.time > OUTCOME_WAIT_MS)
            .map(|(_, p)| p)
            .collect();
        ran.sort_by_key(|p| p.ev.time);
        for p in ran {
            self.report(p, None, out);
        }
        self.st.incidents.expire(now, st::QUIET_MS);
    }

    detector_state!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::testing::stmt;
    use crate::testing::run_to_end as run;
    use model::sql::tokens;

    fn g(sql: &str) -> Vec<(String, Severity)> {
        gains(&tokens(sql), &|r| r == "postgres")
            .into_iter()
            .map(|g| (g.role, g.severity))
            .collect()
    }

    #[test]
    fn membership_in_a_superuser_role_is_superuser_power() {
        let found = gains(&tokens("GRANT postgres TO mallory"), &|r| r == "postgres");
        assert_eq!(
            found,
            [Gain {
                role: "mallory".into(),
                rule: "granted membership in a superuser role",
                severity: Severity::High,
            }]
        );
    }

    #[test]
    fn each_escalation_names_the_role_that_gains() {
        assert_eq!(
            g("alter role eve superuser"),
            [("eve".into(), Severity::High)]
        );
        assert_eq!(
            g("ALTER USER \"Eve\" WITH CREATEROLE LOGIN"),
            [("Eve".into(), Severity::Medium)]
        );
        assert_eq!(
            g("CREATE ROLE x LOGIN BYPASSRLS PASSWORD 'p'"),
            [("x".into(), Severity::High)]
        );
        assert_eq!(
            g("grant pg_execute_server_program to eve"),
            [("eve".into(), Severity::High)]
        );
        assert_eq!(
            g("GRANT pg_read_all_data, pg_write_server_files TO a, b WITH ADMIN OPTION").len(),
            4
        );
        assert_eq!(
            g("grant all on all tables in schema public to eve"),
            [("eve".into(), Severity::Medium)]
        );
        assert_eq!(
            g("GRANT ALL PRIVILEGES ON DATABASE appdb TO app"),
            [("app".into(), Severity::Medium)]
        );
    }

    #[test]
    fn ordinary_changes_are_not_escalations() {
        for s in [
            "ALTER ROLE app NOSUPERUSER",
            "ALTER ROLE app PASSWORD 'superuser'",
            "GRANT SELECT ON t TO app",
            "GRANT ALL ON TABLE t TO app",
            "GRANT reporting TO app",
            "GRANT app_owner TO app",
            "CREATE ROLE app LOGIN",
            "CREATE ROLE dba LOGIN CREATEROLE PASSWORD 'x'",
        ] {
            assert!(g(s).is_empty(), "{s}: {:?}", g(s));
        }
    }

    #[test]
    fn superuser_writes_only_outside_the_windows() {
        let cfg = PrivilegeEscalationConfig {
            maintenance_windows: vec!["02:00-04:00".into()],
            ..Default::default()
        };
        assert!(cfg.windows().is_ok());
        let at = |h: i64| h * 3_600_000;
        let f = run(
            &mut PrivilegeEscalation::new(cfg, StatementEvidence::Redacted),
            [
                stmt(at(3), "postgres", "UPDATE accounts SET balance = 0"),
                stmt(at(5), "postgres", "INSERT INTO pg_temp.x VALUES (1)"),
                stmt(at(5), "app", "DELETE FROM accounts"),
                stmt(
                    at(6),
                    "postgres",
                    "DELETE FROM public.accounts WHERE id = 1",
                ),
            ],
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].entity, "postgres");
        let bad = PrivilegeEscalationConfig {
            maintenance_windows: vec!["2-4".into()],
            ..Default::default()
        };
        assert_eq!(
            bad.windows().unwrap_err().setting,
            "detect.privilege_escalation.maintenance_windows"
        );
    }

    #[test]
    fn a_grant_raises_an_alert_about_the_grantee() {
        let f = run(
            &mut PrivilegeEscalation::new(
                PrivilegeEscalationConfig::default(),
                StatementEvidence::Redacted,
            ),
            [
                stmt(1000, "postgres", "alter role eve superuser"),
                stmt(2000, "postgres", "grant pg_execute_server_program to eve"),
            ],
        );
        assert_eq!(f.len(), 2);
        assert!(f
            .iter()
            .all(|f| f.entity == "eve" && f.severity == Severity::High));
        assert_eq!(f[1].evidence.value()["grantedBy"], "postgres");
        assert_eq!(f[1].evidence.value()["rules"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_refused_statement_is_an_attempt_by_the_sessions_role() {
        let refused = |t: EventTime, sql: Option<&str>| {
            let mut e = stmt(t, "manager", sql.unwrap_or(""));
            e.kind = EventKind::Error;
            e.sql = sql.map(model::event::Sql::new);
            e.sqlstate = Some("42501".into());
            e.message = Some("permission denied to alter role".into());
            e
        };
        let f = run(
            &mut PrivilegeEscalation::new(
                PrivilegeEscalationConfig::default(),
                StatementEvidence::Redacted,
            ),
            [
                // Refused: the error names no statement (the joiner saw its text just before).
                stmt(1000, "manager", "ALTER ROLE victim SUPERUSER"),
                refused(1001, None),
                // Ran: the session's next statement came without an error.
                stmt(
                    2000,
                    "manager",
                    "GRANT pg_execute_server_program TO manager",
                ),
                stmt(2001, "manager", "SELECT 1"),
                // An error about another statement says nothing of this one.
                stmt(3000, "manager", "ALTER ROLE victim BYPASSRLS"),
                refused(3001, Some("SELEC 1")),
                // The last one: nothing follows before the end.
                stmt(4000, "manager", "ALTER ROLE other CREATEROLE"),
            ],
        );
        let got: Vec<(String, Severity, String)> = f
            .iter()
            .map(|f| {
                (
                    f.entity.clone(),
                    f.severity,
                    f.evidence.value()["rules"].to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "victim".into(),
                    Severity::Medium,
                    r#"["refused: made superuser"]"#.into()
                ),
                (
                    "manager".into(),
                    Severity::High,
                    r#"["granted a role that reaches the server's files, programs or all data"]"#
                        .into()
                ),
                (
                    "victim".into(),
                    Severity::High,
                    r#"["refused: made superuser","given BYPASSRLS"]"#.into()
                ),
                (
                    "other".into(),
                    Severity::Medium,
                    r#"["given CREATEROLE"]"#.into()
                ),
            ]
        );
        assert_eq!(
            f[0].description,
            "\"manager\" from 10.0.0.9 tried to give role \"victim\" privileges (made superuser); the server refused."
        );
        assert_eq!(f[0].evidence.value()["refusal"]["sqlstate"], "42501");
        assert_eq!(f[0].evidence.value()["grantedBy"], "manager");
    }

    #[test]
    fn a_checkpoint_from_before_outcomes_were_awaited_still_loads() {
        #[derive(Serialize)]
        struct Before {
            incidents: Incidents,
            superusers: FxHashSet<String>,
        }
        let bytes = crate::save_state(&Before {
            incidents: Incidents::default(),
            superusers: ["eve".to_string()].into_iter().collect(),
        });
        let mut d = PrivilegeEscalation::new(
            PrivilegeEscalationConfig::default(),
            StatementEvidence::Redacted,
        );
        d.restore(&bytes).unwrap();
        assert!(d.st.superusers.contains("eve"));
    }
}
