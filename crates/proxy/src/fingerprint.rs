//! Client fingerprints: which client family sent a startup packet, from the parameter names
//! and their order, some values, and whether TLS was asked for first. The signatures are data
//! (`data/fingerprints.toml`, built in; `[proxy] fingerprints` adds a file of one's own, read
//! first).

use super::protocol::Startup;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const BUILT_IN: &str = include_str!("../../../data/fingerprints.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub name: String,
    #[serde(default)]
    pub tool: bool,
    pub tls_first: Option<bool>,
    pub params: Option<Vec<String>>,
    /// The first parameter names, in order; any may follow (drivers that add optional ones).
    pub params_start: Option<Vec<String>>,
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Parameters whose values must start with these (applications that put their version
    /// or a connection label after their name).
    #[serde(default)]
    pub prefixes: BTreeMap<String, String>,
    /// Bounds on how long the client took, in all, to answer the server's authentication
    /// requests (milliseconds). A signature with either matches only logins where the proxy
    /// measured it.
    pub min_auth_ms: Option<f64>,
    pub max_auth_ms: Option<f64>,
    /// true: the client came back without asking for TLS right after closing a connection
    /// on which the proxy declined its SSLRequest (a driver whose `sslmode=prefer` retries
    /// on a new connection, as pgx does); false: it did not.
    pub after_tls_refused: Option<bool>,
    /// A real client that sends this very packet (ncrack's is byte for byte psql's at a
    /// terminal). The packet then cannot say which of the two it is: the connection is
    /// named `"<client> or <name>"` and not called a tool; only how it behaves can tell
    /// (failures at a tool's pace).
    pub same_packet_as: Option<String>,
}

/// What the proxy saw of a connection besides its startup packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// The client asked for TLS before its startup packet.
    pub tls_first: bool,
    /// How long the client took, in all, to answer authentication requests (µs).
    pub auth_us: Option<u32>,
    /// See [`Signature::after_tls_refused`].
    pub after_tls_refused: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    client: Vec<Signature>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FingerprintError {
    path: String,
    reason: String,
}

/// What a startup packet says about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    pub name: String,
    pub tool: bool,
}

#[derive(Debug, Clone)]
pub struct Fingerprints {
    signatures: Vec<Signature>,
}

impl Fingerprints {
    pub fn built_in() -> Fingerprints {
        // The built-in file is tested to parse.
        Self::parse(BUILT_IN, "built-in fingerprints").unwrap_or(Fingerprints {
            signatures: Vec::new(),
        })
    }

    /// The built-in signatures, after those of `extra` when given.
    pub fn load(extra: Option<&Path>) -> Result<Fingerprints, FingerprintError> {
        let mut all = Vec::new();
        if let Some(p) = extra {
            let text = std::fs::read_to_string(p).map_err(|e| FingerprintError {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            all.extend(Self::parse(&text, &p.display().to_string())?.signatures);
        }
        all.extend(Self::built_in().signatures);
        Ok(Fingerprints { signatures: all })
    }

    fn parse(text: &str, path: &str) -> Result<Fingerprints, FingerprintError> {
        let f: File = toml::from_str(text).map_err(|e| FingerprintError {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Fingerprints {
            signatures: f.client,
        })
    }

    /// The first signature that fits the startup packet and what else the proxy saw.
    pub fn identify(&self, s: &Startup, seen: Seen) -> Option<Identified> {
        let auth_ms = seen.auth_us.map(|us| f64::from(us) / 1000.0);
        self.signatures
            .iter()
            .find(|sig| {
                sig.tls_first.is_none_or(|t| t == seen.tls_first)
                    && sig
                        .after_tls_refused
                        .is_none_or(|t| t == seen.after_tls_refused)
                    && sig
                        .min_auth_ms
                        .is_none_or(|m| auth_ms.is_some_and(|a| a >= m))
                    && sig
                        .max_auth_ms
                        .is_none_or(|m| auth_ms.is_some_and(|a| a <= m))
                    && sig
                        .params
                        .as_ref()
                        .is_none_or(|p| p.len() == s.params.len() && starts_with(s, p))
                    && sig.params_start.as_ref().is_none_or(|p| starts_with(s, p))
                    && sig.values.iter().all(|(k, v)| s.get(k) == Some(v.as_str()))
                    && sig
                        .prefixes
                        .iter()
                        .all(|(k, v)| s.get(k).is_some_and(|x| x.starts_with(v.as_str())))
            })
            .map(|sig| match &sig.same_packet_as {
                Some(real) => Identified {
                    name: format!("{real} or {}", sig.name),
                    tool: false,
                },
                None => Identified {
                    name: sig.name.clone(),
                    tool: sig.tool,
                },
            })
    }
}

/// Whether the packet's parameter names begin with `names`, in order.
fn starts_with(s: &Startup, names: &[String]) -> bool {
    names.len() <= s.params.len() && names.iter().zip(&s.params).all(|(a, (b, _))| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the proxy saw besides the packet: TLS asked for first, the authentication time.
    fn seen(tls_first: bool, auth_us: Option<u32>) -> Seen {
        Seen {
            tls_first,
            auth_us,
            after_tls_refused: false,
        }
    }

    fn startup(params: &[(&str, &str)]) -> Startup {
        Startup {
            protocol: super::super::protocol::PROTOCOL_3_0,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            raw: Vec::new(),
        }
    }

    #[test]
    fn captured_clients_are_told_apart() {
        let f = Fingerprints::built_in();
        assert!(f.signatures.len() >= 10);
        let id = |p: &[(&str, &str)], tls| {
            f.identify(&startup(p), seen(tls, None))
                .map(|i| (i.name, i.tool))
        };
        // As captured from each client.
        assert_eq!(
            id(
                &[
                    ("user", "app"),
                    ("database", "appdb"),
                    ("application_name", "psql")
                ],
                true
            ),
            Some(("psql".into(), false))
        );
        assert_eq!(
            id(
                &[
                    ("user", "app"),
                    ("database", "postgres"),
                    ("application_name", "psql"),
                    ("client_encoding", "UTF8")
                ],
                false
            ),
            Some(("psql or ncrack".into(), false)),
            "ncrack's packet is psql's at a terminal: the packet alone calls nobody a tool"
        );
        assert_eq!(
            id(&[("user", "app"), ("database", "template1")], true),
            Some(("libpq or hydra/medusa".into(), false))
        );
        assert_eq!(
            id(&[("user", "app"), ("database", "postgres")], false),
            Some(("libpq or patator".into(), false))
        );
        assert_eq!(
            id(
                &[
                    ("client_encoding", "UTF8"),
                    ("user", "app"),
                    ("database", "appdb")
                ],
                false
            ),
            Some(("tokio-postgres".into(), false))
        );
        assert_eq!(
            id(&[("user", "app"), ("database", "appdb")], true).map(|x| x.1),
            Some(false),
            "psycopg2"
        );
        assert_eq!(
            id(
                &[
                    ("client_encoding", "'utf-8'"),
                    ("user", "app"),
                    ("database", "appdb")
                ],
                true
            ),
            Some(("asyncpg".into(), false))
        );
        assert_eq!(
            id(
                &[
                    ("user", "app"),
                    ("database", "appdb"),
                    ("client_encoding", "UTF8")
                ],
                false
            ),
            Some(("node-postgres".into(), false))
        );
        assert_eq!(id(&[("x", "y")], true), None);
    }

    /// Families whose packets were not captured here (no Debian package of the client):
    /// each as its driver's source writes the startup packet, checked against its neighbours.
    #[test]
    fn families_known_from_their_drivers_are_told_apart() {
        let f = Fingerprints::built_in();
        let id = |p: &[(&str, &str)], tls| {
            f.identify(&startup(p), seen(tls, None))
                .map(|i| (i.name, i.tool))
        };
        // Npgsql: user, client_encoding, database, then the optional ones.
        for extra in [
            &[][..],
            &[("application_name", "api"), ("TimeZone", "UTC")][..],
        ] {
            let mut p = vec![
                ("user", "app"),
                ("client_encoding", "UTF8"),
                ("database", "appdb"),
            ];
            p.extend_from_slice(extra);
            assert_eq!(id(&p, true), Some(("npgsql".into(), false)), "{p:?}");
        }
        // pgx writes a Go map: the order varies; database before user is its alone.
        assert_eq!(
            id(&[("database", "appdb"), ("user", "app")], true),
            Some(("pgx".into(), false))
        );
        assert_eq!(
            id(
                &[
                    ("application_name", "svc"),
                    ("user", "app"),
                    ("database", "appdb")
                ],
                false
            ),
            Some(("pgx".into(), false))
        );
        // pgAdmin (psycopg over libpq) and DBeaver (pgJDBC) name themselves.
        assert_eq!(
            id(
                &[
                    ("user", "app"),
                    ("database", "appdb"),
                    ("application_name", "pgAdmin 4 - DB:appdb")
                ],
                true
            ),
            Some(("pgAdmin".into(), false))
        );
        assert_eq!(
            id(
                &[
                    ("user", "app"),
                    ("database", "appdb"),
                    ("client_encoding", "UTF8"),
                    ("DateStyle", "ISO"),
                    ("TimeZone", "UTC"),
                    ("extra_float_digits", "2"),
                    ("application_name", "DBeaver 24.1.0 - Main <appdb>")
                ],
                false
            ),
            Some(("DBeaver".into(), false))
        );
        // Metasploit's postgres_login: user and template1, and no TLS asked for; libpq-based
        // hydra asks first.
        assert_eq!(
            id(&[("user", "postgres"), ("database", "template1")], false),
            Some(("libpq or metasploit".into(), false))
        );
        assert_eq!(
            id(&[("user", "postgres"), ("database", "template1")], true),
            Some(("libpq or hydra/medusa".into(), false))
        );
    }

    #[test]
    fn a_retry_without_tls_after_a_refusal_is_pgx() {
        let f = Fingerprints::built_in();
        let s = startup(&[("user", "app"), ("database", "appdb")]);
        let name = |tls_first, after_tls_refused| {
            let saw = Seen {
                after_tls_refused,
                ..seen(tls_first, Some(3_000))
            };
            f.identify(&s, saw).map(|i| i.name)
        };
        assert_eq!(name(false, true).as_deref(), Some("pgx"));
        // The same packet on the first connection is libpq's.
        assert_eq!(
            name(false, false).as_deref(),
            Some("libpq (psycopg2, psycopg 3, libpq-based drivers)")
        );
        assert_eq!(
            name(true, false).as_deref(),
            Some("libpq (psycopg2, psycopg 3, libpq-based drivers)")
        );
    }

    #[test]
    fn an_own_file_comes_first_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fp.toml");
        std::fs::write(
            &p,
            "[[client]]\nname = \"our-etl\"\nvalues = { application_name = \"psql\" }\n",
        )
        .unwrap();
        let f = Fingerprints::load(Some(&p)).unwrap();
        let s = startup(&[
            ("user", "a"),
            ("database", "b"),
            ("application_name", "psql"),
        ]);
        assert_eq!(f.identify(&s, seen(true, None)).unwrap().name, "our-etl");
        // Timing bounds: a login answered after 2 s is someone typing, not a script.
        std::fs::write(&p, "[[client]]\nname = \"by hand\"\nmin_auth_ms = 1500\n").unwrap();
        let f = Fingerprints::load(Some(&p)).unwrap();
        assert_eq!(
            f.identify(&s, seen(true, Some(2_000_000))).unwrap().name,
            "by hand"
        );
        assert_eq!(f.identify(&s, seen(true, Some(900))).unwrap().name, "psql");
        assert_eq!(
            f.identify(&s, seen(true, None)).unwrap().name,
            "psql",
            "unmeasured: timing signatures do not apply"
        );
        std::fs::write(&p, "[[client]]\nnom = 1\n").unwrap();
        let e = Fingerprints::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("fp.toml"), "{e}");
    }
}
