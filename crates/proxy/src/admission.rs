//! Admission: how many connections a source may have in authentication at once and how fast
//! it may open them, and which connection is cut when the proxy is full.

use super::{now_ms, protocol, BoxIo, Conn, Proxy};
use model::event::{EventKind, ProtocolErrorKind};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// How long a connection may hold a client slot without logging in before, when the proxy is
/// full, it is cut to make room for a new one.
pub(crate) const EVICT_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// A connection counted among its source's in authentication, until dropped.
pub(crate) struct InAuth<'a> {
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
pub(crate) struct SourceInAuth {
    attempts: usize,
    /// Of them, successes held (see `feed`): they wait for the others, not for each other.
    held: usize,
}

/// One success held among its source's attempts.
pub(crate) struct Holding<'a> {
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

/// Counts one connection as live while it is handled.
pub(crate) struct Live(Arc<AtomicUsize>);

impl Live {
    pub(crate) fn new(n: &Arc<AtomicUsize>) -> Live {
        n.fetch_add(1, Ordering::Relaxed);
        Live(n.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Proxy {
    /// Ends a connection that did not log in in time (or was cut to make room): the client
    /// is told, the count kept, and the event says whether it ever sent a startup packet.
    pub(crate) async fn cut_at_login(
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
        self.emit(e).await;
    }

    /// Cuts the connection that has waited longest without logging in, if it has waited
    /// `EVICT_AFTER` at least (a real login takes milliseconds): whether one was cut.
    pub(crate) fn cut_oldest_unauthenticated(&self) -> bool {
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
    pub(crate) fn enter_auth(&self, ip: IpAddr) -> Option<InAuth<'_>> {
        let mut m = self.in_auth.lock().unwrap_or_else(|p| p.into_inner());
        let a = m.entry(ip).or_default();
        if a.attempts >= self.cfg.per_source_in_auth.max(1) {
            return None;
        }
        a.attempts += 1;
        Some(InAuth { proxy: self, ip })
    }

    /// Counts a success as held among its source's attempts until dropped.
    pub(crate) fn holding(&self, ip: IpAddr) -> Holding<'_> {
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
    pub(crate) fn attempts_in_flight(&self, ip: IpAddr) -> usize {
        self.in_auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .map_or(0, |a| a.attempts.saturating_sub(a.held))
    }

    pub(crate) fn rate_ok(&self, ip: IpAddr) -> bool {
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
}
