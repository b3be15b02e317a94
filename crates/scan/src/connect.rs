//! Connecting for a scan as libpq would: `sslmode` with libpq's meanings (`prefer` and
//! `require` encrypt without checking the certificate unless `sslrootcert` is given,
//! `verify-ca` checks the chain, `verify-full` the chain and the host name), `connect_timeout`
//! for the whole start-up (a server that accepts and then says nothing does not hang the
//! scan; 10 s when the URL sets none), and errors that say what went wrong.

use super::ScanError;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tls::CertCheck;

/// What the scan connects with: rust-postgres's configuration (with the libpq-only options
/// taken out) and how to check the server's certificate.
pub struct Target {
    pub config: postgres::Config,
    check: CertCheck,
    ca_file: Option<PathBuf>,
    timeout: Duration,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Target {
    /// Parses a `postgres://…` URL or a `key=value` string.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Target, ScanError> {
        let (rest, options) = take_libpq_options(url);
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e| ScanError::Connect(format!("connection URL: {e}")))?;
        let mut check = CertCheck::None;
        let mut ca_file = ca_file.map(Path::to_path_buf);
        let mut timeout = DEFAULT_TIMEOUT;
        let mut mode = "prefer".to_string();
        for (k, v) in options {
            match k.as_str() {
                "sslmode" => mode = v,
                "sslrootcert" if v != "system" => ca_file = Some(PathBuf::from(v)),
                "sslrootcert" => {}
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| {
                        ScanError::Connect(format!(
                            "connection URL: connect_timeout={v:?} is not a number of seconds"
                        ))
                    })?;
                    // libpq: 0 (or nothing) waits for ever; a scan never does.
                    timeout = if secs == 0 {
                        DEFAULT_TIMEOUT
                    } else {
                        Duration::from_secs(secs.max(2))
                    };
                }
                _ => {}
            }
        }
        let ssl = match mode.as_str() {
            "disable" => postgres::config::SslMode::Disable,
            "allow" | "prefer" => postgres::config::SslMode::Prefer,
            "require" => postgres::config::SslMode::Require,
            "verify-ca" => {
                check = CertCheck::Chain;
                postgres::config::SslMode::Require
            }
            "verify-full" => {
                check = CertCheck::Full;
                postgres::config::SslMode::Require
            }
            other => {
                return Err(ScanError::Connect(format!(
                    "connection URL: sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        };
        // libpq: with a root certificate, `require` checks the chain as verify-ca does.
        if check == CertCheck::None && mode == "require" && ca_file.is_some() {
            check = CertCheck::Chain;
        }
        config.ssl_mode(ssl);
        config.connect_timeout(timeout);
        Ok(Target {
            config,
            check,
            ca_file,
            timeout,
        })
    }

    /// The same server, another database.
    pub fn with_database(&self, db: &str) -> Target {
        let mut config = self.config.clone();
        config.dbname(db);
        Target {
            config,
            check: self.check,
            ca_file: self.ca_file.clone(),
            timeout: self.timeout,
        }
    }

    pub fn database(&self) -> String {
        self.config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres")
            .to_string()
    }

    fn endpoint(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// Connects, giving up after the timeout however far the start-up got.
    pub fn connect(&self) -> Result<postgres::Client, ScanError> {
        let tls = tls::libpq_client_config(self.check, self.ca_file.as_deref(), "sslrootcert")
            .map_err(|e| ScanError::Connect(e.to_string()))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let config = self.config.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // The start-up can block on a server that accepted and says nothing; the thread is
        // left to the socket's own end when the answer does not come in time.
        std::thread::Builder::new()
            .name("pgvigil-scan-connect".into())
            .spawn(move || {
                let _ = tx.send(config.connect(tls));
            })
            .map_err(|e| ScanError::Connect(format!("connect: {e}")))?;
        let endpoint = self.endpoint();
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(ScanError::Connect(explain(&endpoint, &e))),
            Err(_) => Err(ScanError::Connect(format!(
                "{endpoint}: no answer within {} s (connect_timeout): is it a PostgreSQL server, and reachable?",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// `sslmode`, `sslrootcert` and `connect_timeout` taken out of a URL's query string or a
/// `key=value` string (rust-postgres does not know the libpq-only values), and the rest.
fn take_libpq_options(url: &str) -> (String, Vec<(String, String)>) {
    const OURS: [&str; 3] = ["sslmode", "sslrootcert", "connect_timeout"];
    let mut taken = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_string(), taken);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if OURS.contains(&k) {
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                taken.push((k.to_string(), v.into_owned()));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, taken);
    }
    let mut kept = Vec::new();
    for part in url.split_whitespace() {
        match part.split_once('=') {
            Some((k, v)) if OURS.contains(&k) => taken.push((k.to_string(), v.to_string())),
            _ => kept.push(part),
        }
    }
    (kept.join(" "), taken)
}

/// A connection error in words: a server that answers but not as PostgreSQL is said to be
/// so, rather than the protocol decoder's complaint.
fn explain(endpoint: &str, e: &postgres::Error) -> String {
    let detail = store::db::pg_message(e);
    let lower = detail.to_lowercase();
    let not_postgres = [
        "bytes remaining",
        "unexpected message",
        "invalid message length",
        "unknown authentication",
        "unexpected eof",
        "invalid message",
    ]
    .iter()
    .any(|m| lower.contains(m));
    if e.as_db_error().is_none() && not_postgres {
        format!("{endpoint} answered, but not as a PostgreSQL server ({detail})")
    } else if lower.contains("certificate") || lower.contains("invalidcertificate") {
        format!("{endpoint}: the server's TLS certificate was not accepted ({detail}); sslmode=require encrypts without checking it, verify-ca checks it against sslrootcert (or --ca-file)")
    } else {
        format!("{endpoint}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_options_are_taken_out_of_urls_and_keyword_strings() {
        let (rest, opts) = take_libpq_options(
            "postgres://u:p@db/x?sslmode=verify-full&application_name=a&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=3",
        );
        assert_eq!(rest, "postgres://u:p@db/x?application_name=a");
        assert_eq!(
            opts,
            [
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/tmp/ca.pem".to_string()),
                ("connect_timeout".to_string(), "3".to_string())
            ]
        );
        let (rest, opts) = take_libpq_options("host=db user=u sslmode=verify-ca dbname=x");
        assert_eq!(rest, "host=db user=u dbname=x");
        assert_eq!(opts, [("sslmode".to_string(), "verify-ca".to_string())]);
        let t = Target::parse(
            "postgres://u@db/x?sslmode=require&sslrootcert=/ca.pem",
            None,
        )
        .unwrap();
        assert_eq!(
            t.check,
            CertCheck::Chain,
            "require with a root certificate checks the chain"
        );
        assert!(Target::parse("postgres://u@db/x?sslmode=bogus", None).is_err());
        assert!(Target::parse("postgres://u@db/x?connect_timeout=soon", None).is_err());
    }
}
