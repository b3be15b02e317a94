//! `pgvigil scan`: a posture check of a live server. Each check reads catalogs and settings
//! (a `pg_monitor` + `pg_read_all_settings` role suffices for most; the password and pg_hba
//! checks need a superuser, and the report says what could not be checked and why) in every
//! database that accepts connections, and reports findings with severity, evidence, a fix and
//! the CIS PostgreSQL Benchmark recommendation the check implements.

mod connect;
pub mod passwords;
mod versions;

use detect::advice;
use model::alert::Severity;
use model::sql::quote_ident;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanFinding {
    /// Stable name of the check, e.g. `hba-trust`.
    pub check: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: String,
    pub fix: String,
    /// The CIS PostgreSQL Benchmark recommendation the check implements, if any.
    pub cis: Option<Cis>,
}

/// A CIS PostgreSQL 15 Benchmark (v1.1.0) recommendation: its number and title (the title is
/// what stays the same when a later edition renumbers).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Cis {
    pub item: &'static str,
    pub title: &'static str,
}

/// What a check could not look at (no privilege, a database refusing connections), and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotChecked {
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub findings: Vec<ScanFinding>,
    pub not_checked: Vec<NotChecked>,
}

impl ScanReport {
    fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.not_checked.push(NotChecked {
            what: what.into(),
            reason: reason.into(),
        });
    }
}

/// The recommendation each check implements.
pub fn cis_of(check: &str) -> Option<Cis> {
    let (item, title) = match check {
        "version-eol" | "version-minor" => {
            ("1.5", "Ensure the Latest Security Patches are Applied")
        }
        "logging-collector" => ("3.1.3", "Ensure the logging collector is enabled"),
        "log-min-messages" => (
            "3.1.14",
            "Ensure the correct messages are written to the server log",
        ),
        "log-min-error-statement" => (
            "3.1.15",
            "Ensure the correct SQL statements generating errors are recorded",
        ),
        "log-connections" => ("3.1.20", "Ensure 'log_connections' is enabled"),
        "log-disconnections" => ("3.1.21", "Ensure 'log_disconnections' is enabled"),
        "log-line-prefix" | "log-line-prefix-time" | "lc-messages" => {
            ("3.1.24", "Ensure 'log_line_prefix' is set correctly")
        }
        "log-statement" => ("3.1.25", "Ensure 'log_statement' is set correctly"),
        "pgaudit-missing" => (
            "3.2",
            "Ensure the PostgreSQL Audit Extension (pgAudit) is enabled",
        ),
        "superuser-extra" | "createrole" | "bypassrls" | "replication-role" | "server-program" => (
            "4.2",
            "Ensure excessive administrative privileges are revoked",
        ),
        "security-definer" | "public-file-functions" => {
            ("4.3", "Ensure excessive function privileges are revoked")
        }
        "public-write" | "public-create" => ("4.4", "Ensure excessive DML privileges are revoked"),
        "hba-trust"
        | "hba-password"
        | "hba-md5"
        | "hba-ident"
        | "hba-open"
        | "hba-superuser-remote"
        | "hba-nossl"
        | "password-md5"
        | "password-encryption"
        | "login-no-password" => (
            "5.2",
            "Ensure login via \"host\" TCP/IP Socket is configured correctly",
        ),
        "ssl-off" => ("6.8", "Ensure TLS is enabled and configured correctly"),
        _ => return None,
    };
    Some(Cis { item, title })
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Connect(String),
    #[error("{what}: {message}")]
    Query { what: &'static str, message: String },
}

fn q(e: postgres::Error, what: &'static str) -> ScanError {
    ScanError::Query {
        what,
        message: store::db::pg_message(&e),
    }
}

fn f(
    check: &'static str,
    severity: Severity,
    title: impl Into<String>,
    evidence: impl Into<String>,
    fix: impl Into<String>,
) -> ScanFinding {
    ScanFinding {
        check,
        severity,
        title: title.into(),
        evidence: evidence.into(),
        fix: fix.into(),
        cis: cis_of(check),
    }
}

/// Whether a pg_hba line's role list is `all`, and whether it names a superuser: whole
/// entries, not substrings (`callcenter` is not `all`, `postgres_ro` is not `postgres`).
fn hba_users(users: &[String], supers: &[String]) -> (bool, bool) {
    let all = users.iter().any(|u| u == "all");
    let superuser = users.iter().any(|u| supers.iter().any(|s| s == u));
    (all, superuser)
}

fn is_local(addr: &str) -> bool {
    let a = addr.trim();
    a.is_empty()
        || a == "localhost"
        || a.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Connects as libpq would (`sslmode`, `sslrootcert`, `connect_timeout`; `ca_file` is one
/// more trusted CA) and runs every check, those about objects in every database that accepts
/// connections. `today` is days since 1970 (for end-of-life dates).
pub fn scan(
    url: &str,
    ca_file: Option<&std::path::Path>,
    today: i64,
) -> Result<ScanReport, ScanError> {
    let target = connect::Target::parse(url, ca_file)?;
    let mut c = target.connect()?;
    let mut report = ScanReport::default();
    let version = settings(&mut c, today, &mut report.findings)?;
    hba(&mut c, &mut report)?;
    roles(&mut c, version, &mut report)?;
    let first = target.database();
    let databases: Vec<String> = c
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .map_err(|e| q(e, "pg_database"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    database(&mut c, &first, &mut report.findings)?;
    for db in databases.iter().filter(|d| **d != first) {
        match target.with_database(db).connect() {
            Ok(mut other) => database(&mut other, db, &mut report.findings)?,
            Err(e) => report.skip(format!("objects in database {db:?}"), e.to_string()),
        }
    }
    report
        .findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    Ok(report)
}

/// The settings' findings; returns `server_version_num` (0 if unreadable), which other checks
/// need.
fn settings(
    c: &mut postgres::Client,
    today: i64,
    out: &mut Vec<ScanFinding>,
) -> Result<u32, ScanError> {
    let rows = c
        .query(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1)",
            &[&vec![
                "log_connections",
                "log_line_prefix",
                "log_destination",
                "logging_collector",
                "lc_messages",
                "password_encryption",
                "ssl",
                "listen_addresses",
                "server_version_num",
                "log_statement",
                "log_disconnections",
                "log_min_messages",
                "log_min_error_statement",
                "authentication_timeout",
                "lo_compat_privileges",
                "shared_preload_libraries",
            ]],
        )
        .map_err(|e| q(e, "pg_settings"))?;
    let get = |n: &str| -> String {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == n)
            .map(|r| r.get::<_, String>(1))
            .unwrap_or_default()
    };
    if get("log_connections") != "on" {
        out.push(f(
            "log-connections",
            Severity::High,
            "Logins are not logged: brute force, spray and every access anomaly go unseen",
            "log_connections = off",
            "ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf();",
        ));
    }
    let dest = get("log_destination");
    let stderr_only = !dest.contains("csvlog") && !dest.contains("jsonlog");
    if get("logging_collector") != "on" {
        out.push(f(
            "logging-collector",
            Severity::Low,
            "The logs go to the server's stderr, not to files pgvigil can follow",
            "logging_collector = off",
            "Set logging_collector = on (restart), or point pgvigil at the file the service manager writes.",
        ));
    }
    let prefix = get("log_line_prefix");
    if stderr_only {
        if !prefix.contains("%p") && !prefix.contains("%c") {
            out.push(f(
                "log-line-prefix",
                Severity::Medium,
                "Log lines carry no process or session id: a backend's lines cannot be joined into logins",
                format!("log_line_prefix = '{prefix}'"),
                "Use a prefix with %m and %p, e.g. '%m [%p] %q%u@%d ' (or log_destination = 'csvlog').",
            ));
        }
        if !["%m", "%t", "%n"].iter().any(|e| prefix.contains(e)) {
            out.push(f(
                "log-line-prefix-time",
                Severity::Medium,
                "Log lines carry no time: alerts cannot say when",
                format!("log_line_prefix = '{prefix}'"),
                "Add %m to log_line_prefix.",
            ));
        }
        let lc = get("lc_messages");
        let english = lc.is_empty() || lc == "C" || lc == "POSIX" || lc.starts_with("en");
        if !english && !prefix.contains("%e") {
            out.push(f(
                "lc-messages",
                Severity::Medium,
                "Messages are not in English and lines carry no SQLSTATE: failures cannot be classified",
                format!("lc_messages = '{lc}', log_line_prefix = '{prefix}'"),
                "Add %e to log_line_prefix, or log to csvlog/jsonlog (they carry the SQLSTATE).",
            ));
        }
    }
    if get("log_disconnections") != "on" {
        out.push(f(
            "log-disconnections",
            Severity::Low,
            "Session ends are not logged: how long a session lasted (an intruder's, a dump's) is unknown",
            "log_disconnections = off",
            "ALTER SYSTEM SET log_disconnections = on; SELECT pg_reload_conf();",
        ));
    }
    // Levels as log_min_messages orders them: LOG sits between ERROR and FATAL.
    let rank = |l: &str| -> u8 {
        match l {
            "error" => 8,
            "log" => 9,
            "fatal" => 10,
            "panic" => 11,
            _ => 0,
        }
    };
    let min_messages = get("log_min_messages");
    if rank(&min_messages) > rank("error") {
        let (severity, lost) = match min_messages.as_str() {
            "panic" => (
                Severity::High,
                "failed logins (FATAL), logins (LOG) and errors are not logged: brute force and every statement detection go blind",
            ),
            "fatal" => (
                Severity::High,
                "logins (LOG) and errors are not logged: successful logins and SQL injection probing go unseen",
            ),
            _ => (
                Severity::Medium,
                "errors are not logged: SQL injection probing (its syntax errors) goes unseen",
            ),
        };
        out.push(f(
            "log-min-messages",
            severity,
            format!("log_min_messages is above ERROR: {lost}"),
            format!("log_min_messages = {min_messages}"),
            "ALTER SYSTEM SET log_min_messages = 'warning'; SELECT pg_reload_conf();",
        ));
    }
    let min_error_statement = get("log_min_error_statement");
    if rank(&min_error_statement) > rank("error") {
        out.push(f(
            "log-min-error-statement",
            Severity::Low,
            "A failing statement's text is not logged with its error: injection attempts show as errors without what was sent",
            format!("log_min_error_statement = {min_error_statement}"),
            "ALTER SYSTEM SET log_min_error_statement = 'error'; SELECT pg_reload_conf();",
        ));
    }
    if get("authentication_timeout")
        .parse::<u32>()
        .is_ok_and(|s| s > 60)
    {
        out.push(f(
            "authentication-timeout",
            Severity::Low,
            "Clients may take more than a minute to authenticate: half-open logins can hold every connection slot",
            format!("authentication_timeout = {} s", get("authentication_timeout")),
            "ALTER SYSTEM SET authentication_timeout = '30s'; SELECT pg_reload_conf();",
        ));
    }
    if get("lo_compat_privileges") == "on" {
        out.push(f(
            "lo-compat-privileges",
            Severity::Medium,
            "Every role may read and change every large object, whoever owns it",
            "lo_compat_privileges = on",
            "ALTER SYSTEM SET lo_compat_privileges = off; SELECT pg_reload_conf();",
        ));
    }
    let preload = get("shared_preload_libraries");
    if !preload
        .split(',')
        .any(|l| l.trim().trim_matches('"') == "pgaudit")
    {
        out.push(f(
            "pgaudit-missing",
            Severity::Low,
            "pgaudit is not loaded: statements are known only as far as log_statement logs them (not what a DO block or function ran, nor row counts)",
            format!("shared_preload_libraries = '{preload}'"),
            "Install pgaudit, add it to shared_preload_libraries (restart), CREATE EXTENSION pgaudit; and set pgaudit.log = 'role,ddl,misc'.",
        ));
    }
    if get("log_statement") == "none" {
        out.push(f(
            "log-statement",
            Severity::Low,
            "Role changes are not logged: a new role's first login cannot be told from an intruder's",
            "log_statement = none",
            "ALTER SYSTEM SET log_statement = 'ddl'; SELECT pg_reload_conf();",
        ));
    }
    let enc = get("password_encryption");
    if enc != "scram-sha-256" {
        out.push(f(
            "password-encryption",
            Severity::Medium,
            "New passwords are stored as MD5 hashes, which leak to anyone who reads them and are weak against offline guessing",
            format!("password_encryption = {enc}"),
            "ALTER SYSTEM SET password_encryption = 'scram-sha-256'; then reset each role's password.",
        ));
    }
    let listen = get("listen_addresses");
    let beyond = listen.split(',').any(|a| !is_local(a));
    if beyond && get("ssl") != "on" {
        out.push(f(
            "ssl-off",
            Severity::High,
            "The server listens beyond this machine without TLS: passwords and data cross the network in clear",
            format!("listen_addresses = '{listen}', ssl = off"),
            "Configure ssl = on with a certificate, and hostssl lines in pg_hba.conf.",
        ));
    }
    if listen
        .split(',')
        .any(|a| a.trim() == "*" || a.trim() == "0.0.0.0" || a.trim() == "::")
    {
        out.push(f(
            "listen-all",
            Severity::Low,
            "The server listens on every interface",
            format!("listen_addresses = '{listen}'"),
            "List only the addresses clients use.",
        ));
    }
    let version = get("server_version_num").parse::<u32>().unwrap_or(0);
    if version > 0 {
        if let Some(v) = versions::eol_finding(version, today) {
            out.push(v);
        }
        if let Some(v) = versions::minor_finding(version) {
            out.push(v);
        }
    }
    Ok(version)
}

fn hba(c: &mut postgres::Client, report: &mut ScanReport) -> Result<(), ScanError> {
    let rows = match c.query(
        "SELECT line_number, type, array_to_string(database, ','), user_name, coalesce(address, ''),
           coalesce(netmask, ''), auth_method FROM pg_hba_file_rules WHERE error IS NULL",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            report.skip(
                "pg_hba.conf (trust, ident, password, md5 and unencrypted lines; superusers from the network)",
                format!("{} — scan as a superuser, or GRANT SELECT ON pg_hba_file_rules and EXECUTE ON FUNCTION pg_hba_file_rules() to the scanning role", store::db::pg_message(&e)),
            );
            return Ok(());
        }
    };
    let out = &mut report.findings;
    let supers: Vec<String> = c
        .query("SELECT rolname FROM pg_roles WHERE rolsuper", &[])
        .map_err(|e| q(e, "pg_roles"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for r in rows {
        let (line, ty, db, users, addr, mask, method): (
            i32,
            String,
            String,
            Vec<String>,
            String,
            String,
            String,
        ) = (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        );
        if !ty.starts_with("host") {
            continue;
        }
        let rule = format!(
            "pg_hba.conf line {line}: {ty} {db} {} {addr}{} {method}",
            users.join(","),
            if mask.is_empty() {
                String::new()
            } else {
                format!(" {mask}")
            }
        );
        let network = !(is_local(&addr) || addr == "samehost");
        match method.as_str() {
            // Over TCP even from this machine: every local account, and every service that
            // can be made to connect (SSRF), is whoever it claims to be, superusers included.
            "trust" => out.push(f(
                "hba-trust",
                Severity::High,
                if network {
                    "Logins from the network without a password"
                } else {
                    "Logins over TCP from this machine without a password: any local user or any service tricked into connecting (SSRF) becomes any role, superusers included"
                },
                rule.clone(),
                "Replace trust with scram-sha-256 on host lines (administer over the local socket with peer).",
            )),
            "ident" => out.push(f(
                "hba-ident",
                if network { Severity::High } else { Severity::Medium },
                "ident over TCP: the client's own machine says who the user is (an identd the client runs can say anything)",
                rule.clone(),
                "Use scram-sha-256 (or cert) on host lines; ident is only as trustworthy as every client machine.",
            )),
            "password" => out.push(f(
                "hba-password",
                Severity::High,
                "Passwords accepted in clear text over the network",
                rule.clone(),
                "Use scram-sha-256 instead of password.",
            )),
            "md5" => out.push(f(
                "hba-md5",
                Severity::Medium,
                "MD5 authentication where SCRAM is possible",
                rule.clone(),
                "Reset the roles' passwords with password_encryption = 'scram-sha-256', then use scram-sha-256 on this line.",
            )),
            _ => {}
        }
        if ty == "hostnossl" && method != "reject" {
            out.push(f(
                "hba-nossl",
                Severity::Medium,
                "A line that admits connections only without TLS: passwords and data cross the network in clear",
                rule.clone(),
                "Use hostssl (or host with ssl = on and clients using sslmode=verify-full).",
            ));
        }
        let everywhere = addr == "all"
            || (addr == "0.0.0.0" && mask == "0.0.0.0")
            || (addr == "::" && mask == "::");
        let (all_users, names_superuser) = hba_users(&users, &supers);
        if everywhere && all_users && method != "reject" {
            out.push(f(
                "hba-open",
                Severity::Medium,
                "Every role may log in from any address",
                rule.clone(),
                "Limit the line to the networks and roles that need it.",
            ));
        }
        if network && method != "reject" && (all_users || names_superuser) {
            out.push(f(
                "hba-superuser-remote",
                Severity::Medium,
                "Superusers can log in from the network",
                format!("{rule} (superusers: {})", supers.join(", ")),
                "Add `host all <superuser> 0.0.0.0/0 reject` (and ::/0) before this line; administer over the local socket.",
            ));
        }
    }
    Ok(())
}

fn roles(c: &mut postgres::Client, version: u32, report: &mut ScanReport) -> Result<(), ScanError> {
    let out = &mut report.findings;
    // Attributes are public (pg_roles); the bootstrap superuser (oid 10) is expected.
    for r in c
        .query(
            "SELECT rolname, oid = 10, rolsuper, rolcreaterole, rolbypassrls, rolreplication, rolcanlogin
             FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname",
            &[],
        )
        .map_err(|e| q(e, "pg_roles"))?
    {
        let role: String = r.get(0);
        let (bootstrap, sup, createrole, bypassrls, replication, login): (bool, bool, bool, bool, bool, bool) =
            (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6));
        if sup && !bootstrap {
            out.push(f(
                "superuser-extra",
                Severity::Medium,
                format!("Role {role:?} is a superuser besides the bootstrap superuser"),
                format!("pg_roles: {role} rolsuper"),
                format!("{}; unless it must administer the server (then keep its logins to the local socket).", advice::alter_role(&role, "NOSUPERUSER")),
            ));
        }
        if sup {
            continue;
        }
        if createrole {
            // Up to PostgreSQL 15, CREATEROLE may grant any role but superuser, itself too:
            // pg_execute_server_program is one GRANT away.
            let (severity, why) = if version < 160_000 {
                (Severity::High, "on PostgreSQL 15 and older it can grant itself pg_execute_server_program and run programs on the server")
            } else {
                (Severity::Medium, "it can create roles and grant the roles it administers")
            };
            out.push(f(
                "createrole",
                severity,
                format!("Role {role:?} has CREATEROLE: {why}"),
                format!("pg_roles: {role} rolcreaterole"),
                format!("{}; and create roles as a superuser, or through a SECURITY DEFINER function that checks what it grants.", advice::alter_role(&role, "NOCREATEROLE")),
            ));
        }
        if bypassrls {
            out.push(f(
                "bypassrls",
                Severity::Medium,
                format!("Role {role:?} bypasses every row-level security policy"),
                format!("pg_roles: {role} rolbypassrls"),
                format!("{};", advice::alter_role(&role, "NOBYPASSRLS")),
            ));
        }
        if replication && login {
            out.push(f(
                "replication-role",
                Severity::Medium,
                format!("Role {role:?} may stream replication: it can copy every table of every database"),
                format!("pg_roles: {role} rolreplication"),
                format!("Keep REPLICATION to the standby's role, admitted by pg_hba.conf from the standby only; otherwise {};", advice::alter_role(&role, "NOREPLICATION")),
            ));
        }
    }

    // Memberships are cluster-wide: checked once, not per database.
    for r in c
        .query(
            "SELECT g.rolname, m.rolname FROM pg_auth_members a
             JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
             WHERE g.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files')
             AND NOT m.rolsuper
             ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| q(e, "pg_auth_members"))?
    {
        let (group, member): (String, String) = (r.get(0), r.get(1));
        out.push(f(
            "server-program",
            Severity::High,
            format!("Role {member:?} may run programs or touch files on the server ({group})"),
            format!("{member} is a member of {group}"),
            format!("REVOKE {group} FROM {};", quote_ident(&member)),
        ));
    }
    let rows = match c.query(
        "SELECT rolname, rolpassword, oid = 10 FROM pg_authid WHERE rolcanlogin ORDER BY rolname",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            report.skip(
                "stored passwords (MD5 verifiers, weak and breached passwords, login roles without one)",
                format!("{} — scan as a superuser (the check is offline: no login is tried)", store::db::pg_message(&e)),
            );
            return Ok(());
        }
    };
    let mut weak_checks = Vec::new();
    for r in rows {
        let role: String = r.get(0);
        let bootstrap: bool = r.get(2);
        let Some(verifier): Option<String> = r.get(1) else {
            if !bootstrap {
                out.push(f(
                    "login-no-password",
                    Severity::Low,
                    format!("Role {role:?} may log in but has no password"),
                    format!("pg_authid: {role} rolcanlogin, rolpassword NULL"),
                    format!("Only methods without a password (trust, peer, ident, cert) admit it: if it does not log in that way, {};", advice::alter_role(&role, "NOLOGIN")),
                ));
            }
            continue;
        };
        if verifier.starts_with("md5") {
            out.push(f(
                "password-md5",
                Severity::Medium,
                format!("Role {role:?} has an MD5 password"),
                format!("pg_authid.rolpassword of {role:?} starts with md5"),
                format!(
                    "Reset it with password_encryption = 'scram-sha-256': {};",
                    advice::alter_role(&role, "PASSWORD '…'")
                ),
            ));
        }
        weak_checks.push((role, verifier));
    }
    // Each SCRAM guess costs thousands of hashes: the roles are checked on every core.
    let found = passwords::find_weak(&weak_checks);
    for (role, what) in found {
        out.push(f(
            "password-weak",
            Severity::High,
            format!("Role {role:?} can log in with {what}"),
            "its stored verifier matches a guess (checked offline: no login is tried)".to_string(),
            format!(
                "Set a long random password: {};",
                advice::alter_role(&role, "PASSWORD '…'")
            ),
        ));
    }
    Ok(())
}

/// The checks about objects, which live in each database.
fn database(
    c: &mut postgres::Client,
    db: &str,
    out: &mut Vec<ScanFinding>,
) -> Result<(), ScanError> {
    let in_db = format!("in database {db:?}");
    let public_create: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a
             WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')",
            &[],
        )
        .map_err(|e| q(e, "pg_namespace"))?
        .get(0);
    if public_create {
        out.push(f(
            "public-create",
            Severity::Medium,
            format!("Every role may create objects in schema public {in_db} (trojan functions, search_path attacks)"),
            format!("CREATE on schema public is granted to PUBLIC {in_db}"),
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        ));
    }
    for r in c
        .query(
            "SELECT lanname FROM pg_language WHERE NOT lanpltrusted AND lanname NOT IN ('c', 'internal')",
            &[],
        )
        .map_err(|e| q(e, "pg_language"))?
    {
        let lang: String = r.get(0);
        out.push(f(
            "untrusted-language",
            Severity::Medium,
            format!("Untrusted language {lang} is installed {in_db}: functions in it run with the server's OS rights"),
            format!("pg_language: {lang} (not trusted)"),
            format!("DROP EXTENSION {}; if nothing needs it, or keep its use to superusers and audited.", quote_ident(&lang)),
        ));
    }
    for r in c
        .query(
            "SELECT extname FROM pg_extension WHERE extname IN ('adminpack', 'dblink', 'file_fdw') ORDER BY 1",
            &[],
        )
        .map_err(|e| q(e, "pg_extension"))?
    {
        let ext: String = r.get(0);
        out.push(f(
            "risky-extension",
            Severity::Medium,
            format!("Extension {ext} is installed {in_db}: it reaches files or other servers"),
            format!("pg_extension: {ext}"),
            format!("DROP EXTENSION {}; unless it is needed, and then restrict who may use it.", quote_ident(&ext)),
        ));
    }
    for r in c
        .query(
            "SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), r.rolsuper,
                    has_function_privilege('public', p.oid, 'EXECUTE')
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_roles r ON r.oid = p.proowner
             WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) s
                               WHERE s LIKE 'search\\_path=%')
             ORDER BY 1",
            &[],
        )
        .map_err(|e| q(e, "pg_proc"))?
    {
        let (func, owner, owner_super, public): (String, String, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let severity = if owner_super && public {
            Severity::High
        } else {
            Severity::Medium
        };
        out.push(f(
            "security-definer",
            severity,
            format!("SECURITY DEFINER function {func} {in_db} has no fixed search_path: a caller can make it run the caller's own functions as {owner:?}"),
            format!("{func}: owner {owner}{}, EXECUTE {}", if owner_super { " (superuser)" } else { "" }, if public { "granted to PUBLIC" } else { "restricted" }),
            format!("ALTER FUNCTION {func} SET search_path = pg_catalog, pg_temp; and REVOKE EXECUTE ON FUNCTION {func} FROM PUBLIC; unless every role must call it."),
        ));
    }
    for r in c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'pg_catalog'::regnamespace
               AND p.proname IN ('pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file',
                                 'lo_import', 'lo_export', 'pg_ls_logdir', 'pg_ls_waldir', 'pg_ls_tmpdir')
               AND has_function_privilege('public', p.oid, 'EXECUTE')
             ORDER BY 1",
            &[],
        )
        .map_err(|e| q(e, "pg_proc"))?
    {
        let func: String = r.get(0);
        out.push(f(
            "public-file-functions",
            Severity::High,
            format!("Every role may call {func} {in_db}: it reads the server's files"),
            format!("EXECUTE on {func} is granted to PUBLIC"),
            format!("REVOKE EXECUTE ON FUNCTION {func} FROM PUBLIC;"),
        ));
    }
    for r in c
        .query(
            "SELECT c.oid::regclass::text, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
             FROM pg_class c, aclexplode(c.relacl) a
             WHERE a.grantee = 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
               AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
               AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .map_err(|e| q(e, "pg_class"))?
    {
        let (table, privileges): (String, String) = (r.get(0), r.get(1));
        out.push(f(
            "public-write",
            Severity::Medium,
            format!("Every role may change table {table} {in_db} ({privileges})"),
            format!("{privileges} on {table} granted to PUBLIC"),
            format!("REVOKE ALL ON {table} FROM PUBLIC; then GRANT what each role needs."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_role_lists_are_matched_by_whole_entries() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let supers = v(&["postgres"]);
        assert_eq!(hba_users(&v(&["callcenter"]), &supers), (false, false));
        assert_eq!(
            hba_users(&v(&["postgres_ro", "app"]), &supers),
            (false, false)
        );
        assert_eq!(hba_users(&v(&["all"]), &supers), (true, false));
        assert_eq!(hba_users(&v(&["app", "postgres"]), &supers), (false, true));
    }
}
