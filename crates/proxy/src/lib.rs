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

mod admission;
pub mod block;
mod feed;
pub use feed::{Events, RecvError};
pub mod fingerprint;
mod login;
pub mod protocol;
pub mod spares;
mod tls_retry;
mod upstream;

pub use upstream::UpstreamError;

use admission::{Live, SourceInAuth};
use block::Blocklist;
use compact_str::CompactString;
use fingerprint::{Fingerprints, Identified};
use model::duration::Span;
use model::event::{Event, EventKind, ProtocolErrorKind};
use model::setting::SettingError;
use protocol::{FirstPacket, Startup};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tls_retry::TlsFallbacks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use upstream::{routed_local, upstream_host};

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

/// Why the client's first packet was not taken.
#[derive(Debug, thiserror::Error)]
enum FirstError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Refused, as PostgreSQL refuses it.
    #[error(transparent)]
    Refused(protocol::ProtoError),
    /// A protocol version PostgreSQL does not speak: the packet is kept to relay to the
    /// server, whose answer the client gets.
    #[error("{0}")]
    Unsupported(protocol::ProtoError, Vec<u8>),
}

/// A client or server connection, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

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

/// Keepalive on client sockets: probes after a minute of silence, every 15 s, 4 unanswered
/// and the connection is closed (its server connection with it).
const CLIENT_KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(std::time::Duration::from_secs(60))
    .with_interval(std::time::Duration::from_secs(15))
    .with_retries(4);

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
    /// Events dropped because detection was too far behind to take them.
    pub events_dropped: u64,
    /// Client connections open now.
    pub clients: usize,
    /// Spare server connections ready now.
    pub spares_ready: usize,
    /// Sources blocked now.
    pub blocked: usize,
}

/// Statements longer than this are forwarded without inspection (and cut to
/// [`model::event::MAX_SQL_BYTES`] when inspected).
const MAX_INSPECTED_MESSAGE: usize = 1 << 20;

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

impl Proxy {
    /// The proxy, and the channel its events come to detection by.
    pub fn new(cfg: ProxyConfig) -> Result<(Proxy, feed::Events), ProxyError> {
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
        let (feed, events) = feed::Feed::new(feed::IN_FLIGHT);
        let proxy = Proxy {
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
            feed,
            upstream_locals,
            cancel_keys: Default::default(),
            unauthenticated: Default::default(),
            rate: Default::default(),
            next_id: AtomicU64::new(1),
            stop: tokio::sync::watch::channel(false).0,
            live: Arc::new(AtomicUsize::new(0)),
        };
        Ok((proxy, events))
    }

    async fn emit(&self, e: Event) {
        self.feed.send(e).await;
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
            events_dropped: self.feed.dropped(),
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
    pub fn open(self: &Arc<Self>, runtime: &tokio::runtime::Handle) -> std::io::Result<SocketAddr> {
        let listener = runtime.block_on(TcpListener::bind(self.cfg.listen))?;
        let addr = listener.local_addr()?;
        runtime.spawn(self.clone().serve(listener));
        let me = self.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                me.blocks.expire(now_ms());
                for e in me.tls_fallbacks.overdue() {
                    me.emit(e).await;
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
                        events_dropped = s.events_dropped,
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

    /// The client's address: `peer`, or the one a trusted balancer's PROXY protocol header
    /// names. `None` when a trusted balancer sent no valid header in time (the connection
    /// is answered and counted).
    async fn real_peer(&self, tcp: &mut TcpStream, peer: SocketAddr) -> Option<SocketAddr> {
        if !self
            .trusted_balancers
            .iter()
            .any(|n| n.contains(&peer.ip()))
        {
            return Some(peer);
        }
        let limit = self.cfg.auth_timeout.duration();
        match tokio::time::timeout(limit, read_proxy_header(tcp)).await {
            Ok(Ok(Some(real))) => Some(real),
            Ok(Ok(None)) => Some(peer),
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
                None
            }
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    async fn handle(self: Arc<Self>, mut tcp: TcpStream, peer: SocketAddr) {
        let accepted_at = now_ms();
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let Some(peer) = self.real_peer(&mut tcp, peer).await else {
            return;
        };
        let mut client: BoxIo = Box::new(tcp);
        let mut conn = Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer: Some(peer),
            accepted_at,
            ..Conn::default()
        };
        let (in_auth, _slot) = match self.admit(peer.ip()).await {
            admission::Verdict::Admitted { in_auth, slot } => (in_auth, slot),
            admission::Verdict::Refused(why) => {
                let (code, message) = why.told();
                self.refuse(&mut client, code, message).await;
                return;
            }
        };
        self.emit(conn.event(EventKind::ConnectionReceived)).await;
        let Some(upstream) = self.authenticate(&mut client, &mut conn, in_auth).await else {
            return;
        };
        self.relay(client, upstream, &conn).await;
        self.emit(conn.event(EventKind::Disconnected)).await;
    }

    /// The login, within `auth_timeout` and unless cut to make room: the server's
    /// connection once logged in, or `None` (the client told why, when there is a why).
    /// `in_auth`, the connection's place among its source's in authentication, is given up
    /// when the login ends.
    async fn authenticate(
        self: &Arc<Self>,
        client: &mut BoxIo,
        conn: &mut Conn,
        in_auth: Option<admission::InAuth<'_>>,
    ) -> Option<BoxIo> {
        let limit = self.cfg.auth_timeout.duration();
        let (cut_tx, cut_rx) = tokio::sync::oneshot::channel();
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conn.id, (std::time::Instant::now(), cut_tx));
        let login = {
            let _login = self.spares.login();
            tokio::select! {
                r = tokio::time::timeout(limit, self.login(client, conn)) => Some(r),
                _ = cut_rx => None,
            }
        };
        self.unauthenticated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conn.id);
        drop(in_auth);
        let (code, told, why) = match login {
            Some(Ok(upstream)) => return upstream,
            None => (
                "53300",
                "connection cut: the proxy is full and this connection had not logged in",
                "cut at the proxy, full, while still not logged in",
            ),
            Some(Err(_)) => (
                "08006",
                "authentication timed out",
                "authentication timed out at the proxy",
            ),
        };
        self.cut_at_login(client, conn, code, told, why).await;
        None
    }

    /// The logged-in session, relayed (inspected if so set) until either side ends it; its
    /// cancel key is known meanwhile.
    async fn relay(&self, mut client: BoxIo, mut upstream: BoxIo, conn: &Conn) {
        let keyed = conn.backend_pid.zip(conn.cancel_key.clone());
        if let Some((pid, key)) = &keyed {
            self.cancel_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*pid, key.clone());
        }
        if self.cfg.inspect_statements {
            self.inspect(client, upstream, conn).await;
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
                        self.emit(e).await;
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
    ) -> Result<Option<FirstPacket>, FirstError> {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = client.read(&mut header[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(FirstError::Refused(protocol::ProtoError::InvalidLength))
                };
            }
            got += n;
        }
        if header[0] == protocol::TLS_HANDSHAKE {
            return Ok(Some(FirstPacket::DirectTls(header)));
        }
        let len = protocol::first_packet_len(header, self.cfg.max_startup_bytes)
            .map_err(FirstError::Refused)?;
        let mut packet = vec![0u8; len];
        packet[..4].copy_from_slice(&header);
        client.read_exact(&mut packet[4..]).await?;
        match protocol::parse_first(&packet) {
            Ok(p) => Ok(Some(p)),
            Err(e @ protocol::ProtoError::UnsupportedProtocol(..)) => {
                Err(FirstError::Unsupported(e, packet))
            }
            Err(e) => Err(FirstError::Refused(e)),
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

    async fn protocol_error(&self, conn: &Conn, message: String) {
        self.counters
            .invalid_startup
            .fetch_add(1, Ordering::Relaxed);
        let mut ev = conn.event(EventKind::ProtocolError {
            what: ProtocolErrorKind::InvalidStartup,
        });
        ev.sqlstate = Some("08P01".into());
        ev.message = Some(message);
        self.emit(ev).await;
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
        let (p, _events) = Proxy::new(cfg).unwrap();
        assert_eq!(p.upstream_locals(), vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(routed_local("not a host name"), None);
    }
}
