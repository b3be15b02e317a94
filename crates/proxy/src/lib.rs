//! The inline guard: a PostgreSQL proxy that sees every login as it happens. It reads the
//! client's first packets and the server's answers up to the end of authentication (never a
//! credential: password messages pass through unread), turns them into the same events the
//! log parsers make — with the real client address and the client's fingerprint — and then
//! splices bytes both ways without looking at them. With active response on, it refuses new
//! connections from sources in an open brute-force or attack-tool alert.
//!
//! Every buffer and wait is bounded: the startup packet (`max_startup_bytes`), the whole
//! login (`auth_timeout`), server messages during authentication (1 MiB), clients at once
//! (`max_clients`) and per source (`per_source_per_minute`); each refusal is a protocol error.

pub mod block;
mod feed;
pub mod fingerprint;
pub mod protocol;
pub mod spares;
mod tls_retry;

use block::Blocklist;
use compact_str::CompactString;
use fingerprint::{Fingerprints, Identified};
use model::duration::Span;
use model::event::{Event, EventKind, LoginFailure, ProtocolErrorKind};
use model::setting::SettingError;
use protocol::{FirstPacket, ServerMsg, Startup};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tls_retry::TlsFallbacks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `[proxy]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Start the proxy with `run`.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The PostgreSQL server (`host:port`).
    pub upstream: String,
    /// Largest startup packet accepted (PostgreSQL's own limit is 10,000 bytes).
    pub max_startup_bytes: usize,
    /// From connect to the end of authentication, at most this long (slow clients, slow-loris).
    pub auth_timeout: Span,
    pub connect_timeout: Span,
    /// Client connections at once.
    pub max_clients: usize,
    /// New connections per source address and minute.
    pub per_source_per_minute: u32,
    /// Connections from one source address in authentication at once: slow clients from a
    /// few addresses (slow-loris) cannot take every slot from the others. The allowlist of
    /// `[proxy.active_response]` is exempt from this and the rate above.
    pub per_source_in_auth: usize,
    /// Signatures of one's own, read before the built-in ones.
    pub fingerprints: Option<PathBuf>,
    /// Read the SQL of each query (simple and prepared) for the statement-level detectors.
    /// Off by default: then nothing after the login is looked at.
    pub inspect_statements: bool,
    /// Certificate chain and key (PEM) to accept TLS from clients; without them a client's
    /// SSLRequest is declined (sslmode=prefer clients go on in plain text).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Speak TLS to the server (certificate verified against the platform's roots and
    /// `upstream_ca_file`, for the name `upstream_server_name` or the upstream host).
    pub upstream_tls: bool,
    pub upstream_ca_file: Option<PathBuf>,
    pub upstream_server_name: Option<String>,
    /// Load balancers (addresses or networks) whose connections start with a PROXY protocol
    /// header (v1 or v2, as HAProxy sends it) naming the real client. Only these are trusted
    /// to say so; from them the header is required.
    pub proxy_protocol_from: Vec<String>,
    /// Connections to the server kept open ahead of the logins that will use them, so that
    /// a client does not wait for PostgreSQL to start its backend (0: open each on demand).
    /// Plain TCP to the server only: with `upstream_tls` each is opened on demand.
    pub spare_connections: usize,
    /// A spare unused this long is replaced. Keep it below the server's
    /// `authentication_timeout` (60 s by default), after which the server closes it.
    pub spare_max_age: Span,
    /// On SIGTERM the proxy stops accepting and waits this long for open sessions to end
    /// before it exits (their connections are then closed).
    pub drain_timeout: Span,
    pub active_response: block::ActiveResponseConfig,
}

impl ProxyConfig {
    /// Checks what parses but cannot work, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        self.active_response.networks()?;
        block::parse_networks(&self.proxy_protocol_from, "proxy.proxy_protocol_from")?;
        if self.spare_connections > 0 && self.spare_max_age.ms() < 100 {
            return Err(SettingError::new(
                "proxy.spare_max_age",
                "proxy.spare_max_age: at least 100ms",
            ));
        }
        // Each spare is a backend process on the server: a handful is what a login needs.
        if self.spare_connections > 100 {
            return Err(SettingError::new(
                "proxy.spare_connections",
                "proxy.spare_connections: at most 100",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(SettingError::new(
                "proxy.tls_cert",
                "proxy.tls_cert and proxy.tls_key go together",
            ));
        }
        Ok(())
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            upstream: "127.0.0.1:5432".into(),
            max_startup_bytes: 10_000,
            auth_timeout: Span::secs(10),
            connect_timeout: Span::secs(5),
            max_clients: 1000,
            per_source_per_minute: 600,
            per_source_in_auth: 32,
            fingerprints: None,
            inspect_statements: false,
            tls_cert: None,
            tls_key: None,
            upstream_tls: false,
            upstream_ca_file: None,
            upstream_server_name: None,
            proxy_protocol_from: Vec::new(),
            spare_connections: 2,
            spare_max_age: Span::secs(30),
            drain_timeout: Span::secs(30),
            active_response: block::ActiveResponseConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Fingerprints(#[from] fingerprint::FingerprintError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Config(#[from] SettingError),
}

/// Why the proxy could not reach the server (logged; the client is told the server cannot be
/// reached).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect timed out")]
    ConnectTimedOut,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server does not accept TLS (proxy.upstream_tls)")]
    NoTls,
    #[error("TLS handshake timed out")]
    TlsTimedOut,
    #[error("TLS to the server: {error}{}", upstream_tls_hint(&error.to_string()))]
    Tls { error: std::io::Error },
}

/// The host of `host:port` (`[v6]:port` too).
fn upstream_host(upstream: &str) -> &str {
    if let Some(rest) = upstream.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    upstream.rsplit_once(':').map_or(upstream, |(h, _)| h)
}

/// A first packet of an unsupported protocol version, kept to relay to the server.
#[derive(Debug)]
struct Unsupported(Vec<u8>);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |i: usize| u16::from_be_bytes([self.0[i], self.0[i + 1]]);
        write!(f, "unsupported frontend protocol {}.{}", v(4), v(6))
    }
}

impl std::error::Error for Unsupported {}

/// A client or server connection, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

/// A stream whose first bytes were already read: they are read again, then the rest.
struct Replay<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Replay<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.at < self.head.len() {
            let n = (self.head.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.head[at..at + n]);
            self.at += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads a PROXY protocol header (v1 or v2) and nothing more: the startup packet after it
/// is the client's. Returns the client address it names.
async fn read_proxy_header(tcp: &mut TcpStream) -> std::io::Result<Option<SocketAddr>> {
    let bad = |e: protocol::ProtoError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut head = [0u8; 16];
    tcp.read_exact(&mut head[..12]).await?;
    if head[..12] == protocol::PROXY_V2_SIGNATURE {
        tcp.read_exact(&mut head[12..]).await?;
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut rest = vec![0u8; len];
        tcp.read_exact(&mut rest).await?;
        return protocol::parse_proxy_v2(&head, &rest).map_err(bad);
    }
    if &head[..6] != b"PROXY " {
        return Err(bad(protocol::ProtoError::Layout("no PROXY header")));
    }
    // v1: a line of at most 107 bytes ending in CRLF, read a byte at a time so that nothing
    // of the startup packet after it is taken.
    let mut line = head[..12].to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= 107 {
            return Err(bad(protocol::ProtoError::Layout("PROXY line too long")));
        }
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await?;
        line.push(b[0]);
    }
    line.truncate(line.len() - 2);
    protocol::parse_proxy_v1(&line).map_err(bad)
}

/// Logins under way beyond which a server connection waits for the client's startup packet.
const EARLY_LIMIT: usize = 8;

/// A connection to the server opened as a client arrived. One its login did not use (a
/// spare came first; a cancel request; no startup at all) joins the spares when they are
/// short of one, and is closed otherwise.
struct Early {
    task: Option<tokio::task::JoinHandle<Result<TcpStream, UpstreamError>>>,
    proxy: Arc<Proxy>,
}

impl Early {
    async fn take(&mut self) -> Option<TcpStream> {
        self.task.take()?.await.ok()?.ok()
    }
}

impl Drop for Early {
    fn drop(&mut self) {
        // Dropped outside the runtime (it shutting down), the task goes with it.
        if let (Some(task), Ok(rt)) = (self.task.take(), tokio::runtime::Handle::try_current()) {
            let proxy = self.proxy.clone();
            rt.spawn(async move {
                if let Ok(Ok(tcp)) = task.await {
                    proxy.spares.offer(tcp);
                }
            });
        }
    }
}

/// What to do about a failed TLS handshake with the server, where the error alone does not
/// say it.
fn upstream_tls_hint(err: &str) -> &'static str {
    if err.contains("CaUsedAsEndEntity") {
        // The PostgreSQL documentation's self-signed recipe makes a certificate that is its
        // own CA (basicConstraints CA:TRUE), which verification refuses as a server's.
        "; the server's certificate is a CA certificate used as its own (as the self-signed \
         example in PostgreSQL's documentation makes it): give the server a certificate signed \
         by a CA and name that CA in proxy.upstream_ca_file"
    } else if err.contains("UnknownIssuer") {
        "; the server's certificate is not signed by a CA the proxy trusts: name its CA in \
         proxy.upstream_ca_file"
    } else if err.contains("NotValidForName") {
        "; the certificate is not for the name the proxy asked: set proxy.upstream_server_name \
         to a name it carries"
    } else {
        ""
    }
}

#[cfg(test)]
mod tls_hint_tests {
    #[test]
    fn certificate_errors_say_what_to_do() {
        assert!(super::upstream_tls_hint(
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))"
        )
        .contains("upstream_ca_file"));
        assert!(
            super::upstream_tls_hint("invalid peer certificate: UnknownIssuer")
                .contains("upstream_ca_file")
        );
        assert_eq!(super::upstream_tls_hint("connection reset"), "");
    }
}

/// Keepalive on client sockets: probes after a minute of silence, every 15 s, 4 unanswered
/// and the connection is closed (its server connection with it).
const CLIENT_KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(std::time::Duration::from_secs(60))
    .with_interval(std::time::Duration::from_secs(15))
    .with_retries(4);

/// libpq retries a failed TLS login without TLS at once; later is another connection.
const LIBPQ_RETRY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection counted among its source's in authentication, until dropped.
struct InAuth<'a> {
    proxy: &'a Proxy,
    ip: IpAddr,
}

impl Drop for InAuth<'_> {
    fn drop(&mut self) {
        let mut m = self.proxy.in_auth.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = m.get_mut(&self.ip) {
            a.attempts = a.attempts.saturating_sub(1);
            if a.attempts == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A source's connections in authentication.
#[derive(Default)]
struct SourceInAuth {
    attempts: usize,
    /// Of them, successes held (see `feed`): they wait for the others, not for each other.
    held: usize,
}

/// One success held among its source's attempts.
struct Holding<'a> {
    proxy: &'a Proxy,
    ip: IpAddr,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        let mut m = self.proxy.in_auth.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = m.get_mut(&self.ip) {
            a.held = a.held.saturating_sub(1);
        }
    }
}

/// The server's list of SASL mechanisms without `SCRAM-SHA-256-PLUS`: channel binding ties
/// SCRAM to the TLS session it runs in, and the client's session ends at the proxy, so the
/// client must not pick it (it falls back to plain SCRAM).
fn without_channel_binding(body: &[u8]) -> Option<Vec<u8>> {
    let mechs = body.get(4..)?;
    let kept: Vec<&[u8]> = mechs
        .split(|b| *b == 0)
        .filter(|m| !m.is_empty() && *m != b"SCRAM-SHA-256-PLUS")
        .collect();
    let mut out = body[..4].to_vec();
    for m in kept {
        out.extend_from_slice(m);
        out.push(0);
    }
    out.push(0);
    Some(out)
}

/// How long a connection may hold a client slot without logging in before, when the proxy is
/// full, it is cut to make room for a new one.
const EVICT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// What the proxy counts (`/metrics`, the log).
#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub accepted: AtomicU64,
    pub logins: AtomicU64,
    pub refused_blocked: AtomicU64,
    pub refused_limit: AtomicU64,
    pub invalid_startup: AtomicU64,
    pub timeouts: AtomicU64,
    pub cancels: AtomicU64,
    /// Logins that went over a spare connection.
    pub spares_used: AtomicU64,
    /// Connections recognised as a client's retry without TLS after the proxy declined it.
    pub tls_retries: AtomicU64,
    /// Logins the server accepted amid their source's failures, held until detection acted.
    pub held: AtomicU64,
}

/// The proxy's figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub accepted: u64,
    pub logins: u64,
    pub refused_blocked: u64,
    pub refused_limit: u64,
    pub invalid_startup: u64,
    pub timeouts: u64,
    pub cancels: u64,
    pub spares_used: u64,
    pub tls_retries: u64,
    pub held: u64,
    /// Client connections open now.
    pub clients: usize,
    /// Spare server connections ready now.
    pub spares_ready: usize,
    /// Sources blocked now.
    pub blocked: usize,
}

/// Largest server message read during authentication.
const MAX_AUTH_MESSAGE: usize = 1 << 20;
/// Statements longer than this are forwarded without inspection (and cut to
/// [`model::event::MAX_SQL_BYTES`] when inspected).
const MAX_INSPECTED_MESSAGE: usize = 1 << 20;
/// Client bytes accepted during authentication (password and SASL messages are small).
const MAX_CLIENT_AUTH_BYTES: usize = 64 * 1024;

pub struct Proxy {
    cfg: ProxyConfig,
    fingerprints: Fingerprints,
    /// The channel-binding refusal was explained in the log (once).
    binding_said: std::sync::atomic::AtomicBool,
    /// Connections in authentication, per source address.
    in_auth: std::sync::Mutex<rustc_hash::FxHashMap<IpAddr, SourceInAuth>>,
    /// Logins that failed over TLS lately, per source: their startup parameters.
    #[allow(clippy::type_complexity)]
    tls_failures: std::sync::Mutex<
        rustc_hash::FxHashMap<IpAddr, Vec<(std::time::Instant, Vec<(String, String)>)>>,
    >,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    trusted_balancers: Vec<ipnet::IpNet>,
    connector: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    pub blocks: Arc<Blocklist>,
    pub counters: Arc<ProxyCounters>,
    feed: feed::Feed,
    /// The local addresses of connections to the server: the server logs proxied logins as
    /// coming from them.
    upstream_locals: std::sync::Mutex<Vec<IpAddr>>,
    /// The cancel keys of the sessions relayed now (backend pid → key): a cancel request
    /// whose key is none of them is a guess, and is not passed on.
    cancel_keys: std::sync::Mutex<rustc_hash::FxHashMap<u32, Vec<u8>>>,
    /// Connections holding a client slot that have not logged in yet, by id (oldest first):
    /// when every slot is taken, the oldest of them is cut to make room (slow-loris).
    unauthenticated: std::sync::Mutex<
        std::collections::BTreeMap<u64, (std::time::Instant, tokio::sync::oneshot::Sender<()>)>,
    >,
    clients: Arc<tokio::sync::Semaphore>,
    rate: std::sync::Mutex<rustc_hash::FxHashMap<IpAddr, (i64, u32)>>,
    next_id: AtomicU64,
    spares: spares::Spares,
    tls_fallbacks: TlsFallbacks,
    /// Set when the proxy drains: the listener closes.
    stop: tokio::sync::watch::Sender<bool>,
    /// Connections being handled, from accept to close.
    live: Arc<AtomicUsize>,
}

/// Counts one connection as live while it is handled.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(n: &Arc<AtomicUsize>) -> Live {
        n.fetch_add(1, Ordering::Relaxed);
        Live(n.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    store::now_ms()
}

/// What the proxy knows of one connection, for its events.
#[derive(Default, Clone)]
struct Conn {
    id: u64,
    peer: Option<SocketAddr>,
    startup: Startup,
    fingerprint: Option<Identified>,
    auth_method: Option<&'static str>,
    backend_pid: Option<u32>,
    /// The session's cancel key (BackendKeyData).
    cancel_key: Option<Vec<u8>>,
    /// The client's connection is TLS (terminated here).
    tls: bool,
    /// The client asked for TLS before its startup packet.
    tls_first: bool,
    /// When the server's last authentication request went to the client, not yet answered.
    asked: Option<std::time::Instant>,
    /// How long the client took, in all, to answer authentication requests; `None` when
    /// it was never asked.
    client_auth: Option<std::time::Duration>,
    /// This connection is the client's retry without TLS after the proxy declined it.
    after_tls_refused: bool,
    /// This connection is libpq's retry without TLS of a login that failed over TLS here
    /// (`sslmode=prefer`): the same client, which did ask for TLS.
    libpq_retry: bool,
    /// When the connection was accepted: the start of its login attempt.
    accepted_at: model::event::EventTime,
}

impl Conn {
    fn event(&self, kind: EventKind) -> Event {
        let mut e = Event::new(now_ms(), kind);
        e.client_ip = self.peer.map(|p| p.ip());
        e.client_port = self.peer.map(|p| p.port());
        let get = |k: &str| {
            self.startup
                .get(k)
                .filter(|v| !v.is_empty())
                .map(CompactString::new)
        };
        e.principal = get("user");
        e.database = get("database").or_else(|| e.principal.clone());
        e.application = get("application_name");
        e.auth_method = self.auth_method.map(CompactString::new);
        e.ssl = Some(self.tls);
        e.session_id = Some(compact_str::format_compact!("proxy.{:x}", self.id));
        e.pid = self.backend_pid;
        e.fingerprint = self
            .fingerprint
            .as_ref()
            .map(|f| CompactString::new(&f.name));
        e.client_auth_us = self.auth_us();
        e.attempt_start = Some(self.accepted_at).filter(|t| *t > 0);
        e.source = e.compute_source_key();
        e
    }

    fn seen(&self) -> fingerprint::Seen {
        fingerprint::Seen {
            tls_first: self.tls_first || self.libpq_retry,
            auth_us: self.auth_us(),
            after_tls_refused: self.after_tls_refused,
        }
    }

    fn auth_us(&self) -> Option<u32> {
        self.client_auth
            .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
    }
}

/// The local address the system would connect to `upstream` from: the address the server
/// logs proxied logins as coming from. A UDP socket's `connect` only picks the route; nothing
/// is sent.
fn routed_local(upstream: &str) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let to = upstream.to_socket_addrs().ok()?.next()?;
    let any: SocketAddr = if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(to).ok()?;
    Some(s.local_addr().ok()?.ip())
}

impl Proxy {
    pub fn new(
        cfg: ProxyConfig,
        events: std::sync::mpsc::Sender<Event>,
    ) -> Result<Proxy, ProxyError> {
        cfg.validate().map_err(ProxyError::Config)?;
        let fingerprints = Fingerprints::load(cfg.fingerprints.as_deref())?;
        let acceptor = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => {
                let mut sc = tls::server_config(c, k, "proxy.tls")?;
                // PostgreSQL's ALPN name: libpq 17+ offers it, and with direct TLS requires it.
                sc.alpn_protocols = vec![b"postgresql".to_vec()];
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(sc)))
            }
            _ => None,
        };
        let trusted_balancers =
            block::parse_networks(&cfg.proxy_protocol_from, "proxy.proxy_protocol_from")
                .map_err(ProxyError::Config)?;
        let connector = if cfg.upstream_tls {
            let tls =
                tls::client_config(cfg.upstream_ca_file.as_deref(), "proxy.upstream_ca_file")?;
            let host = cfg
                .upstream_server_name
                .clone()
                .unwrap_or_else(|| upstream_host(&cfg.upstream).to_string());
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| {
                SettingError::new(
                    "proxy.upstream_server_name",
                    format!("proxy.upstream_server_name: {host:?} is not a host name"),
                )
            })?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(tls)), name))
        } else {
            None
        };
        let blocks = Arc::new(Blocklist::new(cfg.active_response.clone()));
        let spares = spares::Spares::new(
            if cfg.upstream_tls {
                0
            } else {
                cfg.spare_connections
            },
            cfg.spare_max_age.duration(),
        );
        // Known before the first connection: after a restart, the log's backlog holds the
        // logins this proxy relayed before it, which must not count as the proxy's own.
        let upstream_locals =
            std::sync::Mutex::new(routed_local(&cfg.upstream).into_iter().collect());
        Ok(Proxy {
            spares,
            tls_fallbacks: TlsFallbacks::default(),
            clients: Arc::new(tokio::sync::Semaphore::new(cfg.max_clients)),
            cfg,
            fingerprints,
            binding_said: Default::default(),
            in_auth: Default::default(),
            tls_failures: Default::default(),
            acceptor,
            trusted_balancers,
            connector,
            blocks,
            counters: Arc::new(ProxyCounters::default()),
            feed: feed::Feed::new(events),
            upstream_locals,
            cancel_keys: Default::default(),
            unauthenticated: Default::default(),
            rate: Default::default(),
            next_id: AtomicU64::new(1),
            stop: tokio::sync::watch::channel(false).0,
            live: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn emit(&self, e: Event) {
        self.feed.send(e);
    }

    /// Detection has acted on the first `n` events it received from the proxy: its alerts
    /// are raised and the blocks they call for started. Logins that succeed amid an attack
    /// are held until then (see `feed`).
    pub fn acted_through(&self, n: u64) {
        self.feed.acted_through(n);
    }

    /// The counters, and the connections open and spares ready now.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            accepted: n(&c.accepted),
            logins: n(&c.logins),
            refused_blocked: n(&c.refused_blocked),
            refused_limit: n(&c.refused_limit),
            invalid_startup: n(&c.invalid_startup),
            timeouts: n(&c.timeouts),
            cancels: n(&c.cancels),
            spares_used: n(&c.spares_used),
            tls_retries: n(&c.tls_retries),
            held: n(&c.held),
            clients: self
                .cfg
                .max_clients
                .saturating_sub(self.clients.available_permits()),
            spares_ready: self.spares.ready(),
            blocked: self.blocks.len(),
        }
    }

    /// Addresses the server sees proxied connections come from.
    pub fn upstream_locals(&self) -> Vec<IpAddr> {
        self.upstream_locals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Binds `listen` and serves it on `runtime`, with the sweep that ends blocks on time.
    /// Returns the bound address.
    pub fn open(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Runtime,
    ) -> std::io::Result<SocketAddr> {
        let listener = runtime.block_on(TcpListener::bind(self.cfg.listen))?;
        let addr = listener.local_addr()?;
        runtime.spawn(self.clone().serve(listener));
        let me = self.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                me.blocks.expire(now_ms());
                for e in me.tls_fallbacks.overdue() {
                    me.emit(e);
                }
            }
        });
        if self.spares.wanted() > 0 {
            runtime.spawn(self.clone().keep_spares());
        }
        // The figures in the log too (`pgvigil proxy` has no /metrics), when they changed.
        let me = self.clone();
        runtime.spawn(async move {
            let mut last = ProxyStats::default();
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                let s = me.stats();
                if s != last {
                    tracing::info!(
                        connections = s.accepted,
                        logins = s.logins,
                        refused_blocked = s.refused_blocked,
                        refused_limit = s.refused_limit,
                        invalid_startups = s.invalid_startup,
                        timeouts = s.timeouts,
                        cancels = s.cancels,
                        spares_used = s.spares_used,
                        tls_retries = s.tls_retries,
                        logins_held = s.held,
                        clients = s.clients,
                        blocked = s.blocked,
                        "proxy figures"
                    );
                    last = s;
                }
            }
        });
        tracing::info!(listen = %addr, upstream = %self.cfg.upstream, active_response = self.cfg.active_response.enabled, "proxy listening");
        Ok(addr)
    }

    /// Keeps the wanted number of spare connections to the server open and young. When the
    /// server cannot be reached this retries each second; logins meanwhile connect on their
    /// own and report the error.
    async fn keep_spares(self: Arc<Self>) {
        loop {
            if self.spares.missing() > 0 {
                match self.spares.quiet_in() {
                    None => {
                        self.spares.wait().await;
                        continue;
                    }
                    Some(d) if !d.is_zero() => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    Some(_) => {}
                }
                match self.connect_tcp().await {
                    Ok(tcp) => self.spares.put(tcp),
                    Err(e) => {
                        tracing::debug!(upstream = %self.cfg.upstream, error = %e, "proxy: no spare connection");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
                continue;
            }
            self.spares.wait().await;
        }
    }

    /// Stops accepting (new clients are refused by the system, so a pool or load balancer
    /// goes elsewhere) and waits up to `drain_timeout` for the open sessions to end.
    /// Returns how many were still open.
    pub async fn drain(&self) -> usize {
        let open = self.live.load(Ordering::Relaxed);
        tracing::info!(
            sessions = open,
            limit = %self.cfg.drain_timeout,
            "proxy draining: no new connections, waiting for open sessions to end"
        );
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + self.cfg.drain_timeout.duration();
        loop {
            let open = self.live.load(Ordering::Relaxed);
            if open == 0 {
                tracing::info!("proxy drained: every session ended");
                return 0;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    sessions = open,
                    "proxy: sessions still open after drain_timeout are closed"
                );
                return open;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Accepts connections until the listener fails or the proxy drains.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        let mut stop = self.stop.subscribe();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.wait_for(|s| *s) => {
                    // Dropping the listener closes the port.
                    return Ok(());
                }
            };
            let (sock, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "proxy accept");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            // A client that vanishes (a laptop shut, a NAT that forgot it) would hold its
            // backend for ever: TCP keepalive finds it gone within about two minutes.
            let _ = socket2::SockRef::from(&sock).set_tcp_keepalive(&CLIENT_KEEPALIVE);
            let me = self.clone();
            let live = Live::new(&self.live);
            tokio::spawn(async move {
                me.handle(sock, peer).await;
                drop(live);
            });
        }
    }

    /// Ends a connection that did not log in in time (or was cut to make room): the client
    /// is told, the count kept, and the event says whether it ever sent a startup packet.
    async fn cut_at_login(
        &self,
        client: &mut BoxIo,
        conn: &Conn,
        code: &str,
        told: &str,
        why: &str,
    ) {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
        let _ = client
            .write_all(&protocol::error_response("FATAL", code, told))
            .await;
        let what = if conn.startup.params.is_empty() {
            ProtocolErrorKind::NoStartup
        } else {
            ProtocolErrorKind::InvalidStartup
        };
        let mut e = conn.event(EventKind::ProtocolError { what });
        e.message = Some(why.into());
        self.emit(e);
    }

    /// Cuts the connection that has waited longest without logging in, if it has waited
    /// `EVICT_AFTER` at least (a real login takes milliseconds): whether one was cut.
    fn cut_oldest_unauthenticated(&self) -> bool {
        let mut u = self
            .unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some((&id, (since, _))) = u.iter().next() else {
            return false;
        };
        if since.elapsed() < EVICT_AFTER {
            return false;
        }
        match u.remove(&id) {
            Some((_, cut)) => cut.send(()).is_ok(),
            None => false,
        }
    }

    /// A slot among the source's connections in authentication, or `None` when it has
    /// `per_source_in_auth` already.
    fn enter_auth(&self, ip: IpAddr) -> Option<InAuth<'_>> {
        let mut m = self.in_auth.lock().unwrap_or_else(|p| p.into_inner());
        let a = m.entry(ip).or_default();
        if a.attempts >= self.cfg.per_source_in_auth.max(1) {
            return None;
        }
        a.attempts += 1;
        Some(InAuth { proxy: self, ip })
    }

    /// Counts a success as held among its source's attempts until dropped.
    fn holding(&self, ip: IpAddr) -> Holding<'_> {
        if let Some(a) = self
            .in_auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&ip)
        {
            a.held += 1;
        }
        Holding { proxy: self, ip }
    }

    /// The source's attempts in authentication that are not successes held.
    fn attempts_in_flight(&self, ip: IpAddr) -> usize {
        self.in_auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .map_or(0, |a| a.attempts.saturating_sub(a.held))
    }

    fn rate_ok(&self, ip: IpAddr) -> bool {
        let minute = now_ms() / 60_000;
        let mut r = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() > 100_000 {
            r.retain(|_, (m, _)| *m == minute);
        }
        let e = r.entry(ip).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= self.cfg.per_source_per_minute
    }

    async fn handle(self: Arc<Self>, mut tcp: TcpStream, mut peer: SocketAddr) {
        let accepted_at = now_ms();
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if self
            .trusted_balancers
            .iter()
            .any(|n| n.contains(&peer.ip()))
        {
            let limit = self.cfg.auth_timeout.duration();
            match tokio::time::timeout(limit, read_proxy_header(&mut tcp)).await {
                Ok(Ok(Some(real))) => peer = real,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    self.counters
                        .invalid_startup
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(balancer = %peer, error = %e, "proxy: no valid PROXY protocol header from a trusted balancer");
                    let _ = tcp
                        .write_all(&protocol::error_response(
                            "FATAL",
                            "08P01",
                            "invalid PROXY protocol header",
                        ))
                        .await;
                    return;
                }
                Err(_) => {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let mut client: BoxIo = Box::new(tcp);
        let mut conn = Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer: Some(peer),
            accepted_at,
            ..Conn::default()
        };
        if self.blocks.is_blocked(peer.ip(), now_ms()) {
            self.counters
                .refused_blocked
                .fetch_add(1, Ordering::Relaxed);
            self.refuse(&mut client, "28000", "connection refused")
                .await;
            return;
        }
        let allowlisted = self.blocks.allows(peer.ip());
        if !allowlisted && !self.rate_ok(peer.ip()) {
            self.counters.refused_limit.fetch_add(1, Ordering::Relaxed);
            self.refuse(
                &mut client,
                "53300",
                "too many connection attempts from this address",
            )
            .await;
            return;
        }
        let in_auth = if allowlisted {
            None
        } else {
            match self.enter_auth(peer.ip()) {
                Some(g) => Some(g),
                None => {
                    self.counters.refused_limit.fetch_add(1, Ordering::Relaxed);
                    self.refuse(
                        &mut client,
                        "53300",
                        "too many connections from this address in authentication",
                    )
                    .await;
                    return;
                }
            }
        };
        let permit = match self.clients.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            // Full: the oldest connection still not logged in (after EVICT_AFTER) makes room.
            Err(_) if self.cut_oldest_unauthenticated() => tokio::time::timeout(
                std::time::Duration::from_secs(1),
                self.clients.clone().acquire_owned(),
            )
            .await
            .ok()
            .and_then(Result::ok),
            Err(_) => None,
        };
        let Some(_permit) = permit else {
            self.counters.refused_limit.fetch_add(1, Ordering::Relaxed);
            self.refuse(&mut client, "53300", "sorry, too many clients already")
                .await;
            return;
        };
        self.emit(conn.event(EventKind::ConnectionReceived));
        let limit = self.cfg.auth_timeout.duration();
        let (cut_tx, cut_rx) = tokio::sync::oneshot::channel();
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conn.id, (std::time::Instant::now(), cut_tx));
        let login = {
            let _login = self.spares.login();
            tokio::select! {
                r = tokio::time::timeout(limit, self.login(&mut client, &mut conn)) => Some(r),
                _ = cut_rx => None,
            }
        };
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conn.id);
        drop(in_auth);
        let Some(login) = login else {
            self.cut_at_login(
                &mut client,
                &conn,
                "53300",
                "connection cut: the proxy is full and this connection had not logged in",
                "cut at the proxy, full, while still not logged in",
            )
            .await;
            return;
        };
        let mut upstream = match login {
            Ok(Some(up)) => up,
            Ok(None) => return,
            Err(_) => {
                self.cut_at_login(
                    &mut client,
                    &conn,
                    "08006",
                    "authentication timed out",
                    "authentication timed out at the proxy",
                )
                .await;
                return;
            }
        };
        let keyed = conn.backend_pid.zip(conn.cancel_key.clone());
        if let Some((pid, key)) = &keyed {
            self.cancel_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*pid, key.clone());
        }
        if self.cfg.inspect_statements {
            self.inspect(client, upstream, &conn).await;
        } else {
            // Authenticated: bytes both ways, unread.
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        if let Some((pid, key)) = keyed {
            let mut k = self.cancel_keys.lock().unwrap_or_else(|p| p.into_inner());
            if k.get(&pid) == Some(&key) {
                k.remove(&pid);
            }
        }
        self.emit(conn.event(EventKind::Disconnected));
    }

    /// Statement inspection: the client's messages are framed, and the SQL of each simple
    /// query (`Q`) and prepared statement (`P`) becomes a statement event for the statement
    /// detectors; everything is forwarded as it came. The server's side is copied unread.
    async fn inspect(&self, client: BoxIo, upstream: BoxIo, conn: &Conn) {
        let (mut c_read, mut c_write) = tokio::io::split(client);
        let (mut u_read, mut u_write) = tokio::io::split(upstream);
        let to_client = async {
            let _ = tokio::io::copy(&mut u_read, &mut c_write).await;
            let _ = c_write.shutdown().await;
        };
        let to_server = async {
            let mut header = [0u8; 5];
            loop {
                if c_read.read_exact(&mut header).await.is_err() {
                    break;
                }
                let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                if len < 4 || u_write.write_all(&header).await.is_err() {
                    break;
                }
                let body_len = len - 4;
                if matches!(header[0], b'Q' | b'P') && body_len <= MAX_INSPECTED_MESSAGE {
                    let mut body = vec![0u8; body_len];
                    if c_read.read_exact(&mut body).await.is_err()
                        || u_write.write_all(&body).await.is_err()
                    {
                        break;
                    }
                    if let Some(sql) = protocol::query_text(header[0], &body) {
                        let mut e = conn.event(EventKind::Statement);
                        e.message = sources::session::role_change(sql);
                        e.sql = Some(model::event::Sql::new(sql));
                        self.emit(e);
                    }
                } else {
                    // Bulk data (COPY, binds) and oversized statements stream through.
                    let mut part = (&mut c_read).take(body_len as u64);
                    match tokio::io::copy(&mut part, &mut u_write).await {
                        Ok(n) if n == body_len as u64 => {}
                        _ => break,
                    }
                }
            }
            let _ = u_write.shutdown().await;
        };
        tokio::join!(to_client, to_server);
    }

    /// Answers a refused client in its protocol: declines TLS if asked, then a FATAL error.
    async fn refuse(&self, client: &mut BoxIo, code: &str, message: &str) {
        let quick = std::time::Duration::from_secs(2);
        let _ = tokio::time::timeout(quick, async {
            for _ in 0..3 {
                match self.read_first(client).await {
                    Ok(Some(FirstPacket::SslRequest | FirstPacket::GssEncRequest)) => {
                        client.write_all(b"N").await?;
                    }
                    _ => break,
                }
            }
            client
                .write_all(&protocol::error_response("FATAL", code, message))
                .await
        })
        .await;
    }

    /// Reads one first packet; `Ok(None)` when the client closed before sending any byte.
    async fn read_first<S: tokio::io::AsyncRead + Unpin + ?Sized>(
        &self,
        client: &mut S,
    ) -> std::io::Result<Option<FirstPacket>> {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = client.read(&mut header[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        protocol::ProtoError::InvalidLength,
                    ))
                };
            }
            got += n;
        }
        if header[0] == protocol::TLS_HANDSHAKE {
            return Ok(Some(FirstPacket::DirectTls(header)));
        }
        let len = protocol::first_packet_len(header, self.cfg.max_startup_bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut packet = vec![0u8; len];
        packet[..4].copy_from_slice(&header);
        client.read_exact(&mut packet[4..]).await?;
        match protocol::parse_first(&packet) {
            Ok(p) => Ok(Some(p)),
            Err(protocol::ProtoError::UnsupportedProtocol(..)) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                Unsupported(packet),
            )),
            Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }

    /// A first packet of a protocol the proxy does not speak goes to the server, and its
    /// answer back: the client sees what PostgreSQL itself says (scanners compare it).
    async fn relay_unsupported(&self, client: &mut BoxIo, packet: &[u8]) {
        let Ok(mut up) = self.connect_upstream().await else {
            return;
        };
        if up.write_all(packet).await.is_err() {
            return;
        }
        let mut answer = Vec::new();
        let quick = std::time::Duration::from_secs(2);
        let _ = tokio::time::timeout(quick, (&mut up).take(4096).read_to_end(&mut answer)).await;
        let _ = client.write_all(&answer).await;
    }

    fn protocol_error(&self, conn: &Conn, message: String) {
        self.counters
            .invalid_startup
            .fetch_add(1, Ordering::Relaxed);
        let mut ev = conn.event(EventKind::ProtocolError {
            what: ProtocolErrorKind::InvalidStartup,
        });
        ev.sqlstate = Some("08P01".into());
        ev.message = Some(message);
        self.emit(ev);
    }

    /// The login: first packets (TLS accepted or declined), then the server's authentication
    /// exchange relayed message by message. Returns the upstream connection once the session
    /// is ready, `None` when the connection ended (a failed login, a cancel request, garbage).
    async fn login(self: &Arc<Self>, client: &mut BoxIo, conn: &mut Conn) -> Option<BoxIo> {
        // PostgreSQL starts the backend as it accepts the connection: when no spare is
        // ready, that starts now, while the client says what it wants. Not when many logins
        // are under way: clients that connect and say nothing (slow-loris) would each hold a
        // backend on the server, which the proxy otherwise spares it.
        let early_ok = self.connector.is_none()
            && self.spares.ready() == 0
            && self.spares.logins_in_progress() <= EARLY_LIMIT;
        let mut early = Early {
            task: early_ok.then(|| {
                let me = self.clone();
                tokio::spawn(async move { me.connect_tcp().await })
            }),
            proxy: self.clone(),
        };
        let mut tls_first = false;
        let mut declined: Option<tls_retry::Declined<'_>> = None;
        let startup = loop {
            match self.read_first(client).await {
                Ok(None) => {
                    let bare = conn.event(EventKind::ProtocolError {
                        what: ProtocolErrorKind::NoStartup,
                    });
                    // After a declined SSLRequest this may be a driver about to retry
                    // without TLS: the event waits to see (and is dropped if it does).
                    let bare = match declined.take() {
                        Some(d) => d.closed(bare),
                        None => Some(bare),
                    };
                    if let Some(bare) = bare {
                        self.emit(bare);
                    }
                    return None;
                }
                Err(e) => {
                    let msg = e.to_string();
                    let inner = e.get_ref();
                    if let Some(Unsupported(packet)) = inner.and_then(|i| i.downcast_ref()) {
                        self.relay_unsupported(client, packet).await;
                    } else if inner
                        .and_then(|i| i.downcast_ref::<protocol::ProtoError>())
                        .is_some_and(|p| *p != protocol::ProtoError::InvalidLength)
                    {
                        let _ = client
                            .write_all(&protocol::error_response("FATAL", "08P01", &msg))
                            .await;
                    }
                    // An invalid length, like PostgreSQL: closed without a word.
                    self.protocol_error(conn, msg);
                    return None;
                }
                Ok(Some(FirstPacket::SslRequest)) => {
                    tls_first = true;
                    match &self.acceptor {
                        Some(acceptor) if !conn.tls => {
                            client.write_all(b"S").await.ok()?;
                            let plain = std::mem::replace(client, Box::new(tokio::io::duplex(1).0));
                            match acceptor.accept(plain).await {
                                Ok(t) => {
                                    *client = Box::new(t);
                                    conn.tls = true;
                                }
                                Err(e) => {
                                    self.protocol_error(conn, format!("TLS handshake failed: {e}"));
                                    return None;
                                }
                            }
                        }
                        _ => {
                            client.write_all(b"N").await.ok()?;
                            declined = conn.peer.and_then(|p| self.tls_fallbacks.declined(p.ip()));
                        }
                    }
                }
                Ok(Some(FirstPacket::GssEncRequest)) => {
                    client.write_all(b"N").await.ok()?;
                }
                Ok(Some(FirstPacket::DirectTls(read))) => {
                    let Some(acceptor) = self.acceptor.as_ref().filter(|_| !conn.tls) else {
                        // As PostgreSQL without TLS: closed without a word.
                        self.protocol_error(
                            conn,
                            "TLS without an SSLRequest, and no TLS here".into(),
                        );
                        return None;
                    };
                    tls_first = true;
                    let plain = std::mem::replace(client, Box::new(tokio::io::duplex(1).0));
                    let replayed = Replay {
                        head: read.to_vec(),
                        at: 0,
                        inner: plain,
                    };
                    match acceptor.accept(replayed).await {
                        // Direct TLS without PostgreSQL's ALPN could be another protocol's
                        // client: refused, as PostgreSQL does.
                        Ok(t) if t.get_ref().1.alpn_protocol() == Some(b"postgresql") => {
                            *client = Box::new(t);
                            conn.tls = true;
                        }
                        Ok(_) => {
                            self.protocol_error(
                                conn,
                                "direct TLS without the ALPN name \"postgresql\"".into(),
                            );
                            return None;
                        }
                        Err(e) => {
                            self.protocol_error(conn, format!("TLS handshake failed: {e}"));
                            return None;
                        }
                    }
                }
                Ok(Some(FirstPacket::Cancel { pid, key })) => {
                    self.counters.cancels.fetch_add(1, Ordering::Relaxed);
                    let known = self
                        .cancel_keys
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&pid)
                        == Some(&key);
                    let mut e = conn.event(EventKind::CancelRequest);
                    e.pid = Some(pid);
                    e.message = Some(if known {
                        format!("cancel request for backend {pid}: the key of a session relayed here, passed on")
                    } else {
                        format!("cancel request for backend {pid}: its key matches no session relayed here (a guess), not passed on")
                    });
                    self.emit(e);
                    if known {
                        self.forward_cancel(pid, &key).await;
                    }
                    return None;
                }
                Ok(Some(FirstPacket::Startup(s))) => break s,
            }
        };
        // The client went on after a decline: no close of its to pair with.
        drop(declined);
        conn.startup = startup;
        conn.tls_first = tls_first;
        if let (false, Some(peer)) = (tls_first, conn.peer) {
            conn.after_tls_refused = self.tls_fallbacks.take(peer.ip()).await;
            conn.libpq_retry =
                !conn.after_tls_refused && self.take_tls_failure(peer.ip(), &conn.startup);
            if conn.after_tls_refused || conn.libpq_retry {
                self.counters.tls_retries.fetch_add(1, Ordering::Relaxed);
            }
        }
        conn.fingerprint = self.fingerprints.identify(&conn.startup, conn.seen());

        let startup = conn.startup.encode();
        let (mut up, mut spare) = self
            .send_startup(client, &startup, Some(&mut early))
            .await?;

        let mut ubuf: Vec<u8> = Vec::with_capacity(4096);
        let mut cbuf = [0u8; 4096];
        let mut from_client = 0usize;
        let mut authenticated = false;
        loop {
            tokio::select! {
                r = up.read_buf(&mut ubuf) => {
                    if !matches!(r, Ok(n) if n > 0) {
                        if spare && ubuf.is_empty() {
                            // A spare the server closed as it was taken (its
                            // authentication_timeout is shorter than spare_max_age): once
                            // more, on a new connection.
                            (up, spare) = self.send_startup(client, &startup, None).await?;
                            continue;
                        }
                        return None;
                    }
                    spare = false;
                    // Complete messages are looked at one by one and go on together, in one
                    // write (the server's greeting is a dozen small messages); the rest waits
                    // for its bytes.
                    let mut at = 0;
                    let mut to_client: Vec<u8> = Vec::with_capacity(ubuf.len());
                    while ubuf.len() - at >= 5 {
                        let kind = ubuf[at];
                        let len = u32::from_be_bytes([ubuf[at + 1], ubuf[at + 2], ubuf[at + 3], ubuf[at + 4]]) as usize;
                        if !(4..=MAX_AUTH_MESSAGE).contains(&len) {
                            return None;
                        }
                        if ubuf.len() - at < 1 + len {
                            break;
                        }
                        let body = &ubuf[at + 5..at + 1 + len];
                        let msg = protocol::parse_server(kind, body);
                        match &msg {
                            ServerMsg::Auth(10) => {
                                let b = without_channel_binding(body)?;
                                to_client.push(b'R');
                                to_client.extend_from_slice(&((b.len() + 4) as u32).to_be_bytes());
                                to_client.extend_from_slice(&b);
                            }
                            _ => to_client.extend_from_slice(&ubuf[at..at + 1 + len]),
                        }
                        at += 1 + len;
                        match msg {
                            // Blocked while this login was in flight (a tool's parallel
                            // tasks): the client never learns that its password was right.
                            ServerMsg::Auth(0) => {
                                if self.blocked_after_hold(conn).await {
                                    self.refuse_in_flight(client, conn).await;
                                    return None;
                                }
                                authenticated = true;
                            }
                            ServerMsg::Auth(code) => {
                                // Requests the client must answer: cleartext, MD5, SASL
                                // start and continue. The answer's delay is timed.
                                if matches!(code, 3 | 5 | 10 | 11) {
                                    conn.asked = Some(std::time::Instant::now());
                                }
                                conn.auth_method = match code {
                                    3 => Some("password"),
                                    5 => Some("md5"),
                                    10..=12 => Some("scram-sha-256"),
                                    _ => conn.auth_method,
                                }
                            }
                            ServerMsg::BackendKey { pid, key } => {
                                conn.backend_pid = Some(pid);
                                conn.cancel_key = Some(key);
                            }
                            ServerMsg::Error { code, message } => {
                                let _ = client.write_all(&to_client).await;
                                self.identify_timed(conn);
                                self.login_error(conn, authenticated, &code, &message);
                                return None;
                            }
                            ServerMsg::Ready => {
                                self.identify_timed(conn);
                                // Whatever came after ReadyForQuery belongs to the session.
                                to_client.extend_from_slice(&ubuf[at..]);
                                client.write_all(&to_client).await.ok()?;
                                self.counters.logins.fetch_add(1, Ordering::Relaxed);
                                self.emit(conn.event(EventKind::LoginSucceeded));
                                return Some(up);
                            }
                            ServerMsg::Other(_) => {}
                        }
                    }
                    if !to_client.is_empty() {
                        client.write_all(&to_client).await.ok()?;
                    }
                    ubuf.drain(..at);
                }
                r = client.read(&mut cbuf) => {
                    let n = r.ok()?;
                    if n == 0 {
                        // The client gave up during authentication (an attack tool's check,
                        // a client that has no password to give).
                        return None;
                    }
                    if let Some(t) = conn.asked.take() {
                        *conn.client_auth.get_or_insert_default() += t.elapsed();
                    }
                    from_client += n;
                    // Blocked since the connection came in: its password is not tried.
                    if self.blocked_now(conn) {
                        self.refuse_in_flight(client, conn).await;
                        return None;
                    }
                    if from_client > MAX_CLIENT_AUTH_BYTES {
                        let _ = client.write_all(&protocol::error_response("FATAL", "08P01", "too much data during authentication")).await;
                        self.protocol_error(conn, "too much data during authentication".into());
                        return None;
                    }
                    up.write_all(&cbuf[..n]).await.ok()?;
                }
            }
        }
    }

    /// A login over TLS failed: libpq (`sslmode=prefer`) comes back at once without TLS with
    /// the same startup packet.
    fn note_tls_failure(&self, conn: &Conn) {
        let Some(peer) = conn.peer else { return };
        if !conn.tls {
            return;
        }
        let mut m = self.tls_failures.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 10_000 {
            m.retain(|_, v| v.iter().any(|(t, _)| t.elapsed() < LIBPQ_RETRY_WITHIN));
        }
        let v = m.entry(peer.ip()).or_default();
        v.retain(|(t, _)| t.elapsed() < LIBPQ_RETRY_WITHIN);
        if v.len() < 64 {
            v.push((std::time::Instant::now(), conn.startup.params.clone()));
        }
    }

    /// Whether a plain connection is libpq's retry of a recent failure over TLS (the same
    /// parameters from the same address), pairing it with that failure.
    fn take_tls_failure(&self, ip: IpAddr, startup: &Startup) -> bool {
        let mut m = self.tls_failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = m.get_mut(&ip) else {
            return false;
        };
        v.retain(|(t, _)| t.elapsed() < LIBPQ_RETRY_WITHIN);
        let found = v.iter().position(|(_, p)| *p == startup.params);
        if let Some(i) = found {
            v.remove(i);
        }
        if v.is_empty() {
            m.remove(&ip);
        }
        found.is_some()
    }

    /// Whether a login the server accepted is refused: its source blocked now, or once held
    /// while its source's other attempts end and detection acts on them (see `feed`).
    async fn blocked_after_hold(&self, conn: &Conn) -> bool {
        let Some(ip) = conn.peer.map(|p| p.ip()) else {
            return false;
        };
        if self.blocked_now(conn) {
            return true;
        }
        // An attack tool recognised here is alerted on, and blocked, from its first
        // connection: its success waits for that decision too.
        let tool = conn.fingerprint.as_ref().is_some_and(|f| f.tool);
        if self.blocks.allows(ip) || !self.feed.holds(ip, tool) {
            return false;
        }
        self.counters.held.fetch_add(1, Ordering::Relaxed);
        {
            let _holding = self.holding(ip);
            let end = std::time::Instant::now() + feed::SIBLINGS_WAIT;
            while self.attempts_in_flight(ip) > 0 && std::time::Instant::now() < end {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        if !self.feed.caught_up().await {
            tracing::warn!(source = %ip, "proxy: a login held amid failures was let through: detection did not catch up within 2 s");
        }
        self.blocked_now(conn)
    }

    fn blocked_now(&self, conn: &Conn) -> bool {
        conn.peer
            .is_some_and(|p| self.blocks.is_blocked(p.ip(), now_ms()))
    }

    /// A login in flight when its source was blocked ends as a new connection would.
    async fn refuse_in_flight(&self, client: &mut BoxIo, conn: &Conn) {
        self.counters
            .refused_blocked
            .fetch_add(1, Ordering::Relaxed);
        let _ = client
            .write_all(&protocol::error_response(
                "FATAL",
                "28000",
                "connection refused",
            ))
            .await;
        tracing::debug!(source = ?conn.peer, "proxy: login in flight refused, its source was blocked");
    }

    /// The fingerprint again once the authentication timing is known (signatures may bound it).
    fn identify_timed(&self, conn: &mut Conn) {
        if conn.client_auth.is_some() {
            conn.fingerprint = self.fingerprints.identify(&conn.startup, conn.seen());
        }
    }

    /// A server connection with the client's startup packet sent: a spare one when there is
    /// one, else the one opened as the client arrived (`early`), else a new one; without
    /// `early`, a new one (a retry). Says whether it is a spare; `None` when the server
    /// cannot be reached (the client is told).
    async fn send_startup(
        &self,
        client: &mut BoxIo,
        startup: &[u8],
        early: Option<&mut Early>,
    ) -> Option<(BoxIo, bool)> {
        if let Some(early) = early {
            if let Some(mut tcp) = self.spares.take() {
                if tcp.write_all(startup).await.is_ok() {
                    self.counters.spares_used.fetch_add(1, Ordering::Relaxed);
                    return Some((Box::new(tcp), true));
                }
            }
            if let Some(mut tcp) = early.take().await {
                if tcp.write_all(startup).await.is_ok() {
                    return Some((Box::new(tcp), false));
                }
            }
        }
        match self.connect_upstream().await {
            Ok(mut up) => {
                up.write_all(startup).await.ok()?;
                Some((up, false))
            }
            Err(why) => {
                tracing::error!(upstream = %self.cfg.upstream, error = %why, "proxy: upstream unreachable");
                let _ = client
                    .write_all(&protocol::error_response(
                        "FATAL",
                        "08006",
                        "the database server cannot be reached",
                    ))
                    .await;
                None
            }
        }
    }

    /// A new connection to the server, TLS when configured.
    async fn connect_upstream(&self) -> Result<BoxIo, UpstreamError> {
        let mut tcp = self.connect_tcp().await?;
        let Some((connector, name)) = &self.connector else {
            return Ok(Box::new(tcp));
        };
        let connect = self.cfg.connect_timeout.duration();
        let mut ssl_request = 8u32.to_be_bytes().to_vec();
        ssl_request.extend_from_slice(&protocol::SSL_REQUEST.to_be_bytes());
        tcp.write_all(&ssl_request).await?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        if answer[0] != b'S' {
            return Err(UpstreamError::NoTls);
        }
        let tls = tokio::time::timeout(connect, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| UpstreamError::TlsTimedOut)?
            .map_err(|error| UpstreamError::Tls { error })?;
        Ok(Box::new(tls))
    }

    /// A TCP connection to the server; its local address is remembered (the server logs
    /// proxied logins as coming from it).
    async fn connect_tcp(&self) -> Result<TcpStream, UpstreamError> {
        let connect = self.cfg.connect_timeout.duration();
        let tcp = tokio::time::timeout(connect, TcpStream::connect(&self.cfg.upstream))
            .await
            .map_err(|_| UpstreamError::ConnectTimedOut)??;
        let _ = tcp.set_nodelay(true);
        if let Ok(local) = tcp.local_addr() {
            let mut l = self
                .upstream_locals
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !l.contains(&local.ip()) {
                l.push(local.ip());
            }
        }
        Ok(tcp)
    }

    fn login_error(&self, conn: &Conn, authenticated: bool, code: &str, message: &str) {
        // A client that could bind the channel (libpq's default, over TLS to the proxy) and
        // was not offered SCRAM-SHA-256-PLUS, which cannot cross a proxy that ends TLS: a
        // TLS server refuses that as a downgrade. No password was tried: it is no failed
        // login (libpq retries at once without TLS and gets in), and is said once.
        let binding = message.contains("channel binding negotiation");
        if binding
            && !self
                .binding_said
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "a client over TLS could bind SCRAM to the channel, which cannot cross the proxy while upstream_tls is on: \
                 the server refused it (libpq with sslmode=prefer retries without TLS). Give such clients channel_binding=disable"
            );
        }
        if !authenticated {
            self.note_tls_failure(conn);
        }
        let kind = if authenticated || binding {
            EventKind::Error
        } else {
            let reason = sources::session::classify_failure(Some(code), message, "")
                .unwrap_or(LoginFailure::Other);
            EventKind::LoginFailed { reason }
        };
        if let (EventKind::LoginFailed { .. }, Some(peer)) = (&kind, conn.peer) {
            self.feed.failed_from(peer.ip());
        }
        let mut e = conn.event(kind);
        e.sqlstate = Some(CompactString::new(code));
        e.message = Some(model::event::truncate(message, 200).to_string());
        self.emit(e);
    }

    /// A cancel request goes to the server as it came: the key it carries is the server's own
    /// (BackendKeyData is passed through), so the server finds the right backend.
    async fn forward_cancel(&self, pid: u32, key: &[u8]) {
        let connect = self.cfg.connect_timeout.duration();
        if let Ok(Ok(mut up)) =
            tokio::time::timeout(connect, TcpStream::connect(&self.cfg.upstream)).await
        {
            let mut p = Vec::with_capacity(12 + key.len());
            p.extend_from_slice(&(12 + key.len() as u32).to_be_bytes());
            p.extend_from_slice(&protocol::CANCEL_REQUEST.to_be_bytes());
            p.extend_from_slice(&pid.to_be_bytes());
            p.extend_from_slice(key);
            let _ = up.write_all(&p).await;
            let _ = up.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_settings_are_bounded() {
        let cfg = |toml: &str| -> ProxyConfig { toml::from_str(toml).unwrap() };
        assert!(cfg("spare_connections = 4").validate().is_ok());
        let e = cfg("spare_connections = 500").validate().unwrap_err();
        assert_eq!(e.setting, "proxy.spare_connections", "{e}");
        let e = cfg("spare_max_age = \"10ms\"").validate().unwrap_err();
        assert_eq!(e.setting, "proxy.spare_max_age", "{e}");
        assert!(cfg("spare_connections = 0\nspare_max_age = \"10ms\"")
            .validate()
            .is_ok());
    }

    /// The server logs proxied logins as coming from the proxy's side of its connection: that
    /// address is known from the start, before any login is relayed (a restart's backlog).
    #[test]
    fn the_address_the_server_sees_is_known_before_any_connection() {
        let cfg: ProxyConfig = toml::from_str("upstream = \"127.0.0.1:1\"").unwrap();
        let (tx, _rx) = std::sync::mpsc::channel();
        let p = Proxy::new(cfg, tx).unwrap();
        assert_eq!(p.upstream_locals(), vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(routed_local("not a host name"), None);
    }
}
