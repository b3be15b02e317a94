//! The server side: connecting to the upstream server (TCP, then TLS when configured), what
//! a failure means to an operator, and cancel requests forwarded to it.

use super::{protocol, BoxIo, Proxy};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
pub(crate) fn upstream_host(upstream: &str) -> &str {
    if let Some(rest) = upstream.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    upstream.rsplit_once(':').map_or(upstream, |(h, _)| h)
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

/// The local address the system would connect to `upstream` from: the address the server
/// logs proxied logins as coming from. A UDP socket's `connect` only picks the route; nothing
/// is sent.
pub(crate) fn routed_local(upstream: &str) -> Option<IpAddr> {
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
    /// A new connection to the server, TLS when configured.
    pub(crate) async fn connect_upstream(&self) -> Result<BoxIo, UpstreamError> {
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
    pub(crate) async fn connect_tcp(&self) -> Result<TcpStream, UpstreamError> {
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

    /// A cancel request goes to the server as it came: the key it carries is the server's own
    /// (BackendKeyData is passed through), so the server finds the right backend.
    pub(crate) async fn forward_cancel(&self, pid: u32, key: &[u8]) {
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
