//! The parts of PostgreSQL's protocol 3.0 the proxy reads: the client's first packet
//! (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage) and the server's messages up to
//! the end of authentication (Authentication*, ErrorResponse, BackendKeyData, ReadyForQuery).
//! Everything is bounded and nothing panics on any input; after authentication the proxy
//! reads no more messages, it splices bytes.

/// Protocol codes of the first packet.
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;
pub const PROTOCOL_3_0: u32 = 196_608;

/// The client's first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstPacket {
    SslRequest,
    GssEncRequest,
    /// A cancel request: backend pid and secret key, forwarded as they came. The key is 4
    /// bytes in protocol 3.0 and up to 256 in 3.2.
    Cancel {
        pid: u32,
        key: Vec<u8>,
    },
    Startup(Startup),
    /// A TLS ClientHello where a packet should be: `sslnegotiation=direct` (libpq 17+),
    /// TLS from the first byte without an SSLRequest. The bytes read so far.
    DirectTls([u8; 4]),
}

/// A TLS record of type handshake starts so; no PostgreSQL packet can (its length would be
/// hundreds of megabytes).
pub const TLS_HANDSHAKE: u8 = 0x16;

/// A StartupMessage: protocol version and the parameters in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Startup {
    pub protocol: u32,
    /// The parameters, read as UTF-8 (bytes that are not become U+FFFD): for events and
    /// fingerprints.
    pub params: Vec<(String, String)>,
    /// The packet as the client sent it, which goes to the server unchanged: a role or
    /// database name in LATIN1 must reach the server as the client wrote it.
    pub raw: Vec<u8>,
}

impl Startup {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The startup packet as bytes, to send upstream: as received, when it was.
    pub fn encode(&self) -> Vec<u8> {
        if !self.raw.is_empty() {
            return self.raw.clone();
        }
        let mut body = Vec::new();
        body.extend_from_slice(&self.protocol.to_be_bytes());
        for (k, v) in &self.params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Why a first packet was refused: each is what PostgreSQL itself would log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("invalid length of startup packet")]
    InvalidLength,
    #[error("unsupported frontend protocol {0}.{1}")]
    UnsupportedProtocol(u16, u16),
    #[error("invalid startup packet layout: {0}")]
    Layout(&'static str),
}

/// The longest cancel key protocol 3.2 allows.
pub const MAX_CANCEL_KEY: usize = 256;

/// The length a first packet announces, once its 4-byte header is in: `Err` if it is not a
/// length PostgreSQL accepts (8 ..= `max`).
pub fn first_packet_len(header: [u8; 4], max: usize) -> Result<usize, ProtoError> {
    let len = u32::from_be_bytes(header) as usize;
    if len < 8 || len > max {
        return Err(ProtoError::InvalidLength);
    }
    Ok(len)
}

/// Parses a whole first packet (its length word included).
pub fn parse_first(packet: &[u8]) -> Result<FirstPacket, ProtoError> {
    if packet.len() < 8 {
        return Err(ProtoError::InvalidLength);
    }
    let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let body = &packet[8..];
    match code {
        SSL_REQUEST => Ok(FirstPacket::SslRequest),
        GSSENC_REQUEST => Ok(FirstPacket::GssEncRequest),
        CANCEL_REQUEST => {
            if !(8..=4 + MAX_CANCEL_KEY).contains(&body.len()) {
                return Err(ProtoError::Layout("cancel request of the wrong length"));
            }
            Ok(FirstPacket::Cancel {
                pid: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                key: body[4..].to_vec(),
            })
        }
        _ if code >> 16 == 3 => {
            let mut params = Vec::new();
            let mut rest = body;
            loop {
                let Some(end) = rest.iter().position(|b| *b == 0) else {
                    return Err(ProtoError::Layout("parameter name not terminated"));
                };
                if end == 0 {
                    // The terminating empty name: nothing may follow.
                    if rest.len() != 1 {
                        return Err(ProtoError::Layout("data after the parameter list"));
                    }
                    break;
                }
                let key = String::from_utf8_lossy(&rest[..end]).into_owned();
                rest = &rest[end + 1..];
                let Some(vend) = rest.iter().position(|b| *b == 0) else {
                    return Err(ProtoError::Layout("parameter value not terminated"));
                };
                let value = String::from_utf8_lossy(&rest[..vend]).into_owned();
                rest = &rest[vend + 1..];
                if params.len() >= 64 {
                    return Err(ProtoError::Layout("too many parameters"));
                }
                params.push((key, value));
            }
            Ok(FirstPacket::Startup(Startup {
                protocol: code,
                params,
                raw: packet.to_vec(),
            }))
        }
        _ => Err(ProtoError::UnsupportedProtocol(
            (code >> 16) as u16,
            (code & 0xffff) as u16,
        )),
    }
}

/// A server message during authentication, as far as the proxy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// `R`: where authentication stands.
    Auth(Authentication),
    /// `E`: SQLSTATE and message.
    Error {
        code: String,
        message: String,
    },
    /// `K`: the backend's pid and cancel key (4 bytes in protocol 3.0, up to 256 in 3.2).
    BackendKey {
        pid: u32,
        key: Vec<u8>,
    },
    /// `Z`: the session is ready: authentication is over.
    Ready,
    Other(u8),
}

/// An authentication message (`R`) by its request code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// 0: the server accepts the login.
    Ok,
    /// 3: a password in clear text.
    CleartextPassword,
    /// 5: an MD5 hash of the password.
    Md5Password,
    /// 10: SASL, with the mechanisms the server offers.
    Sasl,
    /// 11: the server's next SASL challenge.
    SaslContinue,
    /// 12: the server's last SASL message.
    SaslFinal,
    /// Kerberos, GSSAPI, SSPI and codes PostgreSQL may add.
    Other(u32),
}

impl Authentication {
    pub fn of_code(code: u32) -> Authentication {
        match code {
            0 => Authentication::Ok,
            3 => Authentication::CleartextPassword,
            5 => Authentication::Md5Password,
            10 => Authentication::Sasl,
            11 => Authentication::SaslContinue,
            12 => Authentication::SaslFinal,
            c => Authentication::Other(c),
        }
    }

    /// A request the client must answer (the time it takes is the client's).
    pub fn asks_client(self) -> bool {
        matches!(
            self,
            Authentication::CleartextPassword
                | Authentication::Md5Password
                | Authentication::Sasl
                | Authentication::SaslContinue
        )
    }

    /// The method it belongs to, as pg_hba.conf names it.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Authentication::CleartextPassword => Some("password"),
            Authentication::Md5Password => Some("md5"),
            Authentication::Sasl | Authentication::SaslContinue | Authentication::SaslFinal => {
                Some("scram-sha-256")
            }
            Authentication::Ok | Authentication::Other(_) => None,
        }
    }
}

/// Parses a server message body by its type byte.
pub fn parse_server(kind: u8, body: &[u8]) -> ServerMsg {
    let be = |b: &[u8]| -> Option<u32> { Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)) };
    match kind {
        b'R' => be(body).map_or(ServerMsg::Other(kind), |c| {
            ServerMsg::Auth(Authentication::of_code(c))
        }),
        b'K' => match (be(body), body.get(4..)) {
            (Some(pid), Some(key)) if (4..=MAX_CANCEL_KEY).contains(&key.len()) => {
                ServerMsg::BackendKey {
                    pid,
                    key: key.to_vec(),
                }
            }
            _ => ServerMsg::Other(kind),
        },
        b'Z' => ServerMsg::Ready,
        b'E' => {
            let (mut code, mut message) = (String::new(), String::new());
            for field in body.split(|b| *b == 0) {
                match field.split_first() {
                    Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
                    Some((b'M', v)) => message = String::from_utf8_lossy(v).into_owned(),
                    _ => {}
                }
            }
            ServerMsg::Error { code, message }
        }
        k => ServerMsg::Other(k),
    }
}

/// The SQL text of a client's simple query (`Q`: the query) or Parse (`P`: statement name,
/// then the query); `None` for other messages or a malformed body.
pub fn query_text(kind: u8, body: &[u8]) -> Option<&str> {
    let text = match kind {
        b'Q' => body,
        b'P' => {
            let name_end = body.iter().position(|b| *b == 0)?;
            &body[name_end + 1..]
        }
        _ => return None,
    };
    let end = text.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&text[..end]).ok()
}

/// An ErrorResponse, as the proxy sends it to refuse a client.
pub fn error_response(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, v) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(tag);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The 12 bytes that open a PROXY protocol v2 header.
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The client address a PROXY protocol v1 line gives (`PROXY TCP4 src dst sport dport`,
/// without its CRLF); `Ok(None)` for `PROXY UNKNOWN`.
pub fn parse_proxy_v1(line: &[u8]) -> Result<Option<std::net::SocketAddr>, ProtoError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtoError::Layout("PROXY line not text"))?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProtoError::Layout("PROXY line without PROXY"));
    }
    match parts.next() {
        Some("UNKNOWN") => Ok(None),
        Some("TCP4" | "TCP6") => {
            let src: std::net::IpAddr = parts
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or(ProtoError::Layout("PROXY line: bad source address"))?;
            let _dst = parts.next();
            let port: u16 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or(ProtoError::Layout("PROXY line: bad source port"))?;
            Ok(Some(std::net::SocketAddr::new(src, port)))
        }
        _ => Err(ProtoError::Layout("PROXY line: unknown protocol")),
    }
}

/// The client address of a PROXY protocol v2 header: `head` its 16 fixed bytes, `rest` the
/// `len` bytes after them. `Ok(None)` for LOCAL (a health check of the balancer itself) or
/// an address family other than TCP over IPv4/IPv6.
pub fn parse_proxy_v2(
    head: &[u8; 16],
    rest: &[u8],
) -> Result<Option<std::net::SocketAddr>, ProtoError> {
    if head[..12] != PROXY_V2_SIGNATURE || head[12] >> 4 != 2 {
        return Err(ProtoError::Layout("not a PROXY v2 header"));
    }
    match head[12] & 0x0f {
        0 => return Ok(None),
        1 => {}
        _ => return Err(ProtoError::Layout("PROXY v2: unknown command")),
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match head[13] {
        0x11 if rest.len() >= 12 => {
            let ip = std::net::Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            Ok(Some(std::net::SocketAddr::new(
                ip.into(),
                port(&rest[8..10]),
            )))
        }
        0x21 if rest.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&rest[..16]);
            let ip = std::net::Ipv6Addr::from(a);
            Ok(Some(std::net::SocketAddr::new(
                ip.into(),
                port(&rest[32..34]),
            )))
        }
        0x11 | 0x21 => Err(ProtoError::Layout("PROXY v2: address block too short")),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        Startup {
            protocol: PROTOCOL_3_0,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            raw: Vec::new(),
        }
        .encode()
    }

    #[test]
    fn first_packets_of_every_kind() {
        let p = startup(&[("user", "app"), ("database", "appdb")]);
        match parse_first(&p).unwrap() {
            FirstPacket::Startup(s) => {
                assert_eq!(s.get("user"), Some("app"));
                assert_eq!(s.params.len(), 2);
                assert_eq!(s.encode(), p);
            }
            x => panic!("{x:?}"),
        }
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(parse_first(&ssl).unwrap(), FirstPacket::SslRequest);
        let mut cancel = vec![0, 0, 0, 16];
        cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
        cancel.extend_from_slice(&7u32.to_be_bytes());
        cancel.extend_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            parse_first(&cancel).unwrap(),
            FirstPacket::Cancel {
                pid: 7,
                key: 9u32.to_be_bytes().to_vec()
            }
        );
        // Protocol 3.2: a 32-byte key, in the request and in BackendKeyData.
        let key: Vec<u8> = (0..32).collect();
        let mut long = (16u32 + 28).to_be_bytes().to_vec();
        long.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
        long.extend_from_slice(&7u32.to_be_bytes());
        long.extend_from_slice(&key);
        assert_eq!(
            parse_first(&long).unwrap(),
            FirstPacket::Cancel {
                pid: 7,
                key: key.clone()
            }
        );
        let mut k = 7u32.to_be_bytes().to_vec();
        k.extend_from_slice(&key);
        assert_eq!(
            parse_server(b'K', &k),
            ServerMsg::BackendKey { pid: 7, key }
        );
    }

    #[test]
    fn malformed_first_packets_are_refused_by_name() {
        assert_eq!(
            first_packet_len([0, 0, 0, 4], 10_000),
            Err(ProtoError::InvalidLength)
        );
        assert_eq!(
            first_packet_len([0x47, 0x45, 0x54, 0x20], 10_000),
            Err(ProtoError::InvalidLength),
            "an HTTP request"
        );
        let mut v2 = vec![0, 0, 0, 8];
        v2.extend_from_slice(&(2u32 << 16).to_be_bytes());
        assert_eq!(parse_first(&v2), Err(ProtoError::UnsupportedProtocol(2, 0)));
        let mut p = startup(&[("user", "app")]);
        p.pop();
        assert!(matches!(parse_first(&p), Err(ProtoError::Layout(_))));
    }

    #[test]
    fn proxy_protocol_headers() {
        assert_eq!(
            parse_proxy_v1(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 5432").unwrap(),
            Some("203.0.113.7:51000".parse().unwrap())
        );
        assert_eq!(
            parse_proxy_v1(b"PROXY TCP6 2001:db8::7 ::1 51000 5432").unwrap(),
            Some("[2001:db8::7]:51000".parse().unwrap())
        );
        assert_eq!(parse_proxy_v1(b"PROXY UNKNOWN").unwrap(), None);
        assert!(parse_proxy_v1(b"PROXY TCP4 nonsense").is_err());
        let mut head = [0u8; 16];
        head[..12].copy_from_slice(&PROXY_V2_SIGNATURE);
        head[12] = 0x21;
        head[13] = 0x11;
        head[15] = 12;
        let rest = [203, 0, 113, 9, 10, 0, 0, 1, 0xc7, 0x38, 0x15, 0x38];
        assert_eq!(
            parse_proxy_v2(&head, &rest).unwrap(),
            Some("203.0.113.9:51000".parse().unwrap())
        );
        head[12] = 0x20;
        assert_eq!(parse_proxy_v2(&head, &rest).unwrap(), None, "LOCAL");
        head[12] = 0x21;
        assert!(parse_proxy_v2(&head, &rest[..5]).is_err());
    }

    #[test]
    fn query_texts() {
        assert_eq!(query_text(b'Q', b"SELECT 1\0"), Some("SELECT 1"));
        assert_eq!(query_text(b'P', b"s1\0SELECT $1\0\0\0"), Some("SELECT $1"));
        assert_eq!(query_text(b'P', b"\0SELECT 2\0\0\0"), Some("SELECT 2"));
        assert_eq!(query_text(b'Q', b"no end"), None);
        assert_eq!(query_text(b'B', b"x\0"), None);
    }

    #[test]
    fn server_messages_during_authentication() {
        assert_eq!(
            parse_server(b'R', &[0, 0, 0, 10, b'S']),
            ServerMsg::Auth(Authentication::Sasl)
        );
        assert_eq!(parse_server(b'R', &[0]), ServerMsg::Other(b'R'));
        assert_eq!(
            parse_server(b'R', &[0, 0, 0, 0]),
            ServerMsg::Auth(Authentication::Ok)
        );
        // GSSAPI: not a password method, and not timed as the client's answer.
        let gss = Authentication::of_code(7);
        assert_eq!(gss, Authentication::Other(7));
        assert_eq!((gss.method(), gss.asks_client()), (None, false));
        let md5 = Authentication::of_code(5);
        assert_eq!((md5.method(), md5.asks_client()), (Some("md5"), true));
        let last = Authentication::of_code(12);
        assert_eq!(
            (last.method(), last.asks_client()),
            (Some("scram-sha-256"), false)
        );
        let e = error_response(
            "FATAL",
            "28P01",
            "password authentication failed for user \"x\"",
        );
        assert_eq!(
            parse_server(e[0], &e[5..]),
            ServerMsg::Error {
                code: "28P01".into(),
                message: "password authentication failed for user \"x\"".into()
            }
        );
    }
}
