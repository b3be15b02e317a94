//! Syslog for SIEMs: RFC 5424 messages over UDP or TCP (octet-counted, RFC 6587), carrying
//! either the alert record as JSON or an ArcSight CEF line.

use super::{render, DeliveryError};
use model::alert::{Alert, Severity};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// RFC 5424 with structured data, the alert record as the message.
    #[default]
    Rfc5424,
    /// RFC 5424 header, CEF message.
    Cef,
}

/// `[[notify.syslog]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub name: String,
    /// `host:port` of the collector.
    pub address: String,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default)]
    pub format: SyslogFormat,
    /// Syslog facility number (default 10, authpriv).
    #[serde(default = "default_facility")]
    pub facility: u8,
}

fn default_facility() -> u8 {
    10
}

/// UDP datagrams beyond this are cut by many collectors; longer messages go over TCP.
const MAX_UDP: usize = 8192;

fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::High => 2,   // critical
        Severity::Medium => 4, // warning
        Severity::Low => 5,    // notice
    }
}

fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::High => 8,
        Severity::Medium => 6,
        Severity::Low => 3,
    }
}

/// RFC 5424 SD-PARAM values escape `"`, `\` and `]`.
fn sd_escape(s: &str) -> String {
    render::clean(s)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

fn cef_header_escape(s: &str) -> String {
    render::clean(s).replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_ext_escape(s: &str) -> String {
    render::clean(s).replace('\\', "\\\\").replace('=', "\\=")
}

/// RFC 5424 header fields are printable ASCII without spaces.
fn header_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// The CEF line; a sample alert says so in `cs6` (`cs6Label=simulated cs6=true`), so that a
/// SIEM's rules can leave it out.
pub fn cef(a: &Alert, simulated: bool) -> String {
    let e = &a.entities;
    let mut ext = vec![
        format!("rt={}", a.end_time_utc),
        format!("dvchost={}", cef_ext_escape(&a.server)),
        format!("cs1Label=alertId cs1={}", a.id),
        format!("cs2Label=techniques cs2={}", a.techniques.join(",")),
        format!("cat={}", a.alert_type.category()),
    ];
    if let Some(ip) = &e.source_ip {
        ext.push(format!("src={}", cef_ext_escape(ip)));
    }
    if let Some(p) = &e.principal {
        ext.push(format!("duser={}", cef_ext_escape(p)));
    }
    if let Some(d) = &e.database {
        ext.push(format!("cs3Label=database cs3={}", cef_ext_escape(d)));
    }
    if let Some(c) = e.location.as_ref().and_then(|l| l.country.as_ref()) {
        ext.push(format!("cs4Label=country cs4={}", cef_ext_escape(c)));
    }
    if simulated {
        ext.push("cs6Label=simulated cs6=true".into());
    }
    ext.push(format!("msg={}", cef_ext_escape(&a.anomaly_context)));
    format!(
        "CEF:0|pgvigil|pgvigil|{}|{}|{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header_escape(a.alert_type.as_str()),
        cef_header_escape(&a.display_name),
        cef_severity(a.severity),
        ext.join(" ")
    )
}

/// The whole syslog message for one alert.
pub fn message(
    cfg: &SyslogConfig,
    a: &Alert,
    simulated: bool,
    record: &str,
    hostname: &str,
) -> String {
    let pri = u16::from(cfg.facility.min(23)) * 8 + u16::from(syslog_severity(a.severity));
    let head = format!(
        "<{pri}>1 {} {} pgvigil {} {}",
        store::now_utc(),
        header_token(hostname, 255),
        std::process::id(),
        header_token(a.alert_type.as_str(), 32),
    );
    match cfg.format {
        SyslogFormat::Rfc5424 => {
            let e = &a.entities;
            let mut sd = format!(
                "[pgvigil@32473 id=\"{}\" server=\"{}\" severity=\"{}\"",
                sd_escape(&a.id),
                sd_escape(&a.server),
                a.severity
            );
            if let Some(ip) = &e.source_ip {
                sd.push_str(&format!(" src=\"{}\"", sd_escape(ip)));
            }
            if let Some(p) = &e.principal {
                sd.push_str(&format!(" user=\"{}\"", sd_escape(p)));
            }
            if simulated {
                sd.push_str(" simulated=\"true\"");
            }
            sd.push(']');
            // JSON escapes control characters, so the record stays on one line.
            format!("{head} {sd} {record}")
        }
        SyslogFormat::Cef => format!("{head} - {}", cef(a, simulated)),
    }
}

pub fn send(cfg: &SyslogConfig, msg: &str, timeout: Duration) -> Result<(), DeliveryError> {
    let failed = DeliveryError::Failed;
    let addr = cfg
        .address
        .to_socket_addrs()
        .map_err(|e| failed(format!("{}: {e}", cfg.address)))?
        .next()
        .ok_or_else(|| failed(format!("{}: no address", cfg.address)))?;
    match cfg.transport {
        Transport::Udp => {
            if msg.len() > MAX_UDP {
                return Err(DeliveryError::Refused(format!(
                    "message of {} bytes is too long for UDP syslog; use transport = \"tcp\"",
                    msg.len()
                )));
            }
            let local: std::net::SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let sock = UdpSocket::bind(local).map_err(|e| failed(e.to_string()))?;
            sock.send_to(msg.as_bytes(), addr)
                .map_err(|e| failed(format!("{}: {e}", cfg.address)))?;
        }
        Transport::Tcp => {
            let mut s = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| failed(format!("{}: {e}", cfg.address)))?;
            s.set_write_timeout(Some(timeout))
                .map_err(|e| failed(e.to_string()))?;
            s.write_all(format!("{} {msg}", msg.len()).as_bytes())
                .map_err(|e| failed(format!("{}: {e}", cfg.address)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_escapes_what_would_break_its_fields() {
        assert_eq!(cef_header_escape("a|b\\c"), "a\\|b\\\\c");
        assert_eq!(cef_ext_escape("k=v\nx"), "k\\=v x");
        assert_eq!(sd_escape("a\"b]c"), "a\\\"b\\]c");
    }
}
