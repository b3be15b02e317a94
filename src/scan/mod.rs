//! `pgvigil scan`: a posture check of a live server. Each check reads catalogs and settings
//! (a `pg_monitor` + `pg_read_all_settings` role suffices for most; the password and pg_hba
//! checks need a superuser, and say so when they cannot run) and reports findings with
//! severity, evidence and a fix.

pub mod passwords;
mod versions;

use crate::alert::Severity;
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
        message: crate::store::db::pg_message(&e),
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

/// Connects (with TLS when the URL's `sslmode` asks, certificates verified against the
/// system's CAs and `ca_file`) and runs every check. `today` is days since 1970 (for
/// end-of-life dates).
pub fn scan(
    url: &str,
    ca_file: Option<&std::path::Path>,
    today: i64,
) -> Result<Vec<ScanFinding>, ScanError> {
    let tls =
        crate::store::tls_connector(ca_file).map_err(|e| ScanError::Connect(e.to_string()))?;
    let mut c = postgres::Client::connect(url, tls)
        .map_err(|e| ScanError::Connect(crate::store::db::pg_message(&e)))?;
    let mut out = Vec::new();
    settings(&mut c, today, &mut out)?;
    hba(&mut c, &mut out)?;
    roles(&mut c, &mut out)?;
    privileges(&mut c, &mut out)?;
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    Ok(out)
}

fn settings(
    c: &mut postgres::Client,
    today: i64,
    out: &mut Vec<ScanFinding>,
) -> Result<(), ScanError> {
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
    if let Ok(num) = get("server_version_num").parse::<u32>() {
        if let Some(v) = versions::eol_finding(num, today) {
            out.push(v);
        }
        if let Some(v) = versions::minor_finding(num) {
            out.push(v);
        }
    }
    Ok(())
}

fn hba(c: &mut postgres::Client, out: &mut Vec<ScanFinding>) -> Result<(), ScanError> {
    let rows = match c.query(
        "SELECT line_number, type, database::text, user_name, coalesce(address, ''),
           coalesce(netmask, ''), auth_method FROM pg_hba_file_rules WHERE error IS NULL",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            out.push(f(
                "hba-unreadable",
                Severity::Low,
                "pg_hba.conf could not be checked",
                crate::store::db::pg_message(&e),
                "Scan as a superuser, or GRANT SELECT ON pg_hba_file_rules and EXECUTE ON FUNCTION pg_hba_file_rules() to the scanning role.",
            ));
            return Ok(());
        }
    };
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
            "trust" if network => out.push(f(
                "hba-trust",
                Severity::High,
                "Logins from the network without a password",
                rule.clone(),
                "Replace trust with scram-sha-256 on host lines.",
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

fn roles(c: &mut postgres::Client, out: &mut Vec<ScanFinding>) -> Result<(), ScanError> {
    let rows = match c.query(
        "SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin ORDER BY rolname",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            out.push(f(
                "passwords-unreadable",
                Severity::Low,
                "Stored passwords could not be checked",
                crate::store::db::pg_message(&e),
                "Scan as a superuser to check password storage and weak passwords (offline; no login is tried).",
            ));
            return Ok(());
        }
    };
    for r in rows {
        let role: String = r.get(0);
        let Some(verifier): Option<String> = r.get(1) else {
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
                    crate::detect::advice::alter_role(&role, "PASSWORD '…'")
                ),
            ));
        }
        if let Some(g) = passwords::guesses(&role)
            .into_iter()
            .find(|g| passwords::matches(&verifier, &role, g))
        {
            let what = if g == role {
                "its own name".to_string()
            } else {
                "a common password".to_string()
            };
            out.push(f(
                "password-weak",
                Severity::High,
                format!("Role {role:?} can log in with {what}"),
                "its stored verifier matches a guess from pgvigil's short list (checked offline)"
                    .to_string(),
                format!(
                    "Set a long random password: {};",
                    crate::detect::advice::alter_role(&role, "PASSWORD '…'")
                ),
            ));
        }
    }
    Ok(())
}

fn privileges(c: &mut postgres::Client, out: &mut Vec<ScanFinding>) -> Result<(), ScanError> {
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
            "Every role may create objects in schema public (trojan functions, search_path attacks)",
            "CREATE on schema public is granted to PUBLIC",
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
            format!("Untrusted language {lang} is installed: functions in it run with the server's OS rights"),
            format!("pg_language: {lang} (not trusted)"),
            format!("DROP EXTENSION {lang}; if nothing needs it, or keep its use to superusers and audited."),
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
            format!("Extension {ext} is installed: it reaches files or other servers"),
            format!("pg_extension: {ext} (in the database scanned)"),
            format!("DROP EXTENSION {ext}; unless it is needed, and then restrict who may use it."),
        ));
    }
    for r in c
        .query(
            "SELECT g.rolname, m.rolname FROM pg_auth_members a
             JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
             WHERE g.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files')
             AND NOT m.rolsuper ORDER BY 1, 2",
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
            format!("REVOKE {group} FROM {member};"),
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
