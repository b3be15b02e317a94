//! Reverse DNS: the registrable domain of a client address (its PTR name reduced with the
//! Public Suffix List: `db-client-7.eu.corp.example.co.uk` → `example.co.uk`). Off by default:
//! every lookup tells the resolver which addresses connect. Answers, and the lack of one, are
//! cached; a lookup waits at most `timeout`.

use model::duration::Span;
use model::setting::SettingError;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// `[enrich.reverse_dns]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReverseDnsConfig {
    pub enabled: bool,
    /// Names known without asking DNS: `address name` a line (`#` comments), like
    /// /etc/hosts; for networks whose addresses have no PTR records. Consulted first.
    pub hosts_file: Option<std::path::PathBuf>,
    /// Ask name servers for addresses the hosts file does not name.
    pub dns: bool,
    /// Name servers to ask (`"10.0.0.53:53"`); default: those of `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
    /// Longest wait for one answer.
    pub timeout: Span,
    /// Addresses whose answer is remembered.
    pub cache_size: usize,
}

impl Default for ReverseDnsConfig {
    fn default() -> Self {
        ReverseDnsConfig {
            enabled: false,
            hosts_file: None,
            dns: true,
            nameservers: Vec::new(),
            timeout: Span(500),
            cache_size: 100_000,
        }
    }
}

pub struct ReverseDns {
    hosts: rustc_hash::FxHashMap<IpAddr, String>,
    nameservers: Vec<SocketAddr>,
    timeout: std::time::Duration,
    cache: Mutex<rustc_hash::FxHashMap<IpAddr, Option<String>>>,
    cache_size: usize,
}

/// The registrable domain of a host name, lower-case, by the ICANN part of the Public Suffix
/// List; `None` for a bare public suffix. The list's private part is left out on purpose:
/// under it every cloud host (`ec2-….compute-1.amazonaws.com`) would be a domain of its own.
pub fn registrable(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    // The longest ICANN suffix; an unknown top-level domain is a suffix of one label.
    let mut suffix = 1;
    for k in 2..=labels.len() {
        let tail = labels[labels.len() - k..].join(".");
        if psl::suffix(tail.as_bytes())
            .is_some_and(|s| s.as_bytes() == tail.as_bytes() && s.typ() == Some(psl::Type::Icann))
        {
            suffix = k;
        }
    }
    if labels.len() <= suffix {
        return None;
    }
    Some(labels[labels.len() - suffix - 1..].join("."))
}

/// Why a name server gave no PTR names (logged at debug level: the address stays unnamed).
#[derive(Debug, thiserror::Error)]
enum PtrError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Encode(#[from] hickory_proto::error::ProtoError),
    #[error("timed out")]
    TimedOut,
    #[error("answer {0}")]
    Answer(hickory_proto::op::ResponseCode),
}

impl ReverseDns {
    pub fn new(cfg: &ReverseDnsConfig) -> Result<ReverseDns, SettingError> {
        const SETTING: &str = "enrich.reverse_dns.hosts_file";
        let mut hosts = rustc_hash::FxHashMap::default();
        if let Some(p) = &cfg.hosts_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                SettingError::new(
                    SETTING,
                    format!("enrich.reverse_dns.hosts_file {}: {e}", p.display()),
                )
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let mut w = line.split_whitespace();
                let (Some(ip), Some(name)) = (w.next(), w.next()) else {
                    return Err(SettingError::new(
                        SETTING,
                        format!("{}:{}: expected `address name`", p.display(), i + 1),
                    ));
                };
                let ip: IpAddr = ip.parse().map_err(|_| {
                    SettingError::new(
                        SETTING,
                        format!("{}:{}: {ip:?} is not an address", p.display(), i + 1),
                    )
                })?;
                hosts.insert(ip, name.to_string());
            }
        }
        let nameservers = if !cfg.dns {
            Vec::new()
        } else if cfg.nameservers.is_empty() {
            let (conf, _) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                SettingError::new(
                    "enrich.reverse_dns.nameservers",
                    format!("enrich.reverse_dns: /etc/resolv.conf: {e}"),
                )
            })?;
            let mut v: Vec<SocketAddr> =
                conf.name_servers().iter().map(|n| n.socket_addr).collect();
            v.dedup();
            v
        } else {
            cfg.nameservers.clone()
        };
        if cfg.dns && nameservers.is_empty() {
            return Err(SettingError::new(
                "enrich.reverse_dns.nameservers",
                "enrich.reverse_dns: no name server (set nameservers)",
            ));
        }
        Ok(ReverseDns {
            hosts,
            nameservers,
            timeout: cfg.timeout.duration(),
            cache: Mutex::new(Default::default()),
            cache_size: cfg.cache_size.max(1),
        })
    }

    /// The registrable domain of `ip`'s PTR name, if it has one.
    pub fn domain(&self, ip: IpAddr) -> Option<String> {
        if let Some(name) = self.hosts.get(&ip) {
            return registrable(name);
        }
        if let Some(hit) = self.cache.lock().ok()?.get(&ip) {
            return hit.clone();
        }
        let answer = self
            .nameservers
            .iter()
            .find_map(|ns| match self.ptr(ip, *ns) {
                Ok(names) => Some(names.iter().find_map(|n| registrable(n))),
                Err(e) => {
                    tracing::debug!(%ip, nameserver = %ns, error = %e, "no reverse DNS answer");
                    None
                }
            })
            .flatten();
        let mut cache = self.cache.lock().ok()?;
        if cache.len() >= self.cache_size {
            cache.clear();
        }
        cache.insert(ip, answer.clone());
        answer
    }

    /// Asks one name server for the PTR names of `ip`. The query is made here rather than by
    /// a stub resolver library, since those answer loopback and private ranges themselves
    /// (`localhost`) instead of asking the server the operator configured.
    fn ptr(&self, ip: IpAddr, ns: SocketAddr) -> Result<Vec<String>, PtrError> {
        use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
        use hickory_proto::rr::{Name, RData, RecordType};
        let mut id = [0u8; 2];
        let _ = getrandom::fill(&mut id);
        let id = u16::from_le_bytes(id);
        let mut q = Message::new();
        q.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from(ip), RecordType::PTR));
        let bytes = q.to_vec()?;
        let local: SocketAddr = if ns.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = std::net::UdpSocket::bind(local)?;
        sock.connect(ns)?;
        sock.send(&bytes)?;
        let deadline = std::time::Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline
                .checked_duration_since(std::time::Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(PtrError::TimedOut)?;
            sock.set_read_timeout(Some(left))?;
            let n = sock.recv(&mut buf)?;
            let Ok(m) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if m.id() != id || m.message_type() != MessageType::Response {
                continue;
            }
            if m.response_code() != ResponseCode::NoError
                && m.response_code() != ResponseCode::NXDomain
            {
                return Err(PtrError::Answer(m.response_code()));
            }
            return Ok(m
                .answers()
                .iter()
                .filter_map(|r| match r.data() {
                    Some(RData::PTR(p)) => Some(p.0.to_utf8()),
                    _ => None,
                })
                .collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::registrable;

    #[test]
    fn names_reduce_to_their_registrable_domain() {
        assert_eq!(
            registrable("db-7.eu.corp.example.co.uk.").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable("EC2-3-5-7-9.compute-1.amazonaws.com").as_deref(),
            Some("amazonaws.com")
        );
        assert_eq!(
            registrable("host.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(registrable("co.uk"), None);
        assert_eq!(
            registrable("box.corp.internal").as_deref(),
            Some("corp.internal")
        );
        assert_eq!(registrable("localhost"), None);
    }
}
