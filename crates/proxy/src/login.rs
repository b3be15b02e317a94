//! A client's login, observed: the startup packet and TLS, the server's authentication
//! exchange relayed (never a credential read), and its outcome as an event; a success held
//! while its source is under attack, and refused when detection blocks it.

use super::{feed, now_ms, protocol, tls_retry, BoxIo, Conn, FirstError, Proxy, UpstreamError};
use compact_str::CompactString;
use model::event::{EventKind, LoginFailure, ProtocolErrorKind};
use protocol::{Authentication, FirstPacket, ServerMsg, Startup};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// libpq retries a failed TLS login without TLS at once; later is another connection.
const LIBPQ_RETRY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

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

/// Largest server message read during authentication.
const MAX_AUTH_MESSAGE: usize = 1 << 20;

/// Client bytes accepted during authentication (password and SASL messages are small).
const MAX_CLIENT_AUTH_BYTES: usize = 64 * 1024;

impl Proxy {
    /// The login: first packets (TLS accepted or declined), then the server's authentication
    /// exchange relayed message by message. Returns the upstream connection once the session
    /// is ready, `None` when the connection ended (a failed login, a cancel request, garbage).
    pub(crate) async fn login(
        self: &Arc<Self>,
        client: &mut BoxIo,
        conn: &mut Conn,
    ) -> Option<BoxIo> {
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
        let (startup, tls_first) = self.negotiate(client, conn).await?;
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
                            ServerMsg::Auth(Authentication::Sasl) => {
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
                            ServerMsg::Auth(Authentication::Ok) => {
                                if self.blocked_after_hold(conn).await {
                                    self.refuse_in_flight(client, conn).await;
                                    return None;
                                }
                                authenticated = true;
                            }
                            ServerMsg::Auth(request) => {
                                // The client's answer's delay is timed.
                                if request.asks_client() {
                                    conn.asked = Some(std::time::Instant::now());
                                }
                                conn.auth_method = request.method().or(conn.auth_method);
                            }
                            ServerMsg::BackendKey { pid, key } => {
                                conn.backend_pid = Some(pid);
                                conn.cancel_key = Some(key);
                            }
                            ServerMsg::Error { code, message } => {
                                let _ = client.write_all(&to_client).await;
                                self.identify_timed(conn);
                                self.login_error(conn, authenticated, &code, &message).await;
                                return None;
                            }
                            ServerMsg::Ready => {
                                self.identify_timed(conn);
                                // Whatever came after ReadyForQuery belongs to the session.
                                to_client.extend_from_slice(&ubuf[at..]);
                                client.write_all(&to_client).await.ok()?;
                                self.counters.logins.fetch_add(1, Ordering::Relaxed);
                                self.emit(conn.event(EventKind::LoginSucceeded)).await;
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
                        self.protocol_error(conn, "too much data during authentication".into()).await;
                        return None;
                    }
                    up.write_all(&cbuf[..n]).await.ok()?;
                }
            }
        }
    }

    /// Reads the client's first packets up to its startup packet: TLS set up (after an
    /// SSLRequest, or direct with PostgreSQL's ALPN name), GSS encryption declined, a cancel
    /// request passed on when its key is one relayed here. A connection that ends first or
    /// sends something else is reported and gets `None`. With the startup packet, whether TLS
    /// came before it.
    async fn negotiate(&self, client: &mut BoxIo, conn: &mut Conn) -> Option<(Startup, bool)> {
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
                        self.emit(bare).await;
                    }
                    return None;
                }
                Err(e) => {
                    let msg = e.to_string();
                    match &e {
                        FirstError::Unsupported(_, packet) => {
                            self.relay_unsupported(client, packet).await;
                        }
                        // An invalid length, like PostgreSQL: closed without a word.
                        FirstError::Refused(p) if *p != protocol::ProtoError::InvalidLength => {
                            let _ = client
                                .write_all(&protocol::error_response("FATAL", "08P01", &msg))
                                .await;
                        }
                        FirstError::Refused(_) | FirstError::Io(_) => {}
                    }
                    self.protocol_error(conn, msg).await;
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
                                    self.protocol_error(conn, format!("TLS handshake failed: {e}"))
                                        .await;
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
                        )
                        .await;
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
                            )
                            .await;
                            return None;
                        }
                        Err(e) => {
                            self.protocol_error(conn, format!("TLS handshake failed: {e}"))
                                .await;
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
                    self.emit(e).await;
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
        Some((startup, tls_first))
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

    async fn login_error(&self, conn: &Conn, authenticated: bool, code: &str, message: &str) {
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
        self.emit(e).await;
    }
}
