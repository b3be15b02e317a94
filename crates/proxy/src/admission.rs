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

/// Whether a new connection may go on to its login: what it holds while it does, or why not.
pub(crate) enum Verdict<'a> {
    Admitted {
        /// Its place among its source's connections in authentication (none when the
        /// source is allowlisted), released when the login ends.
        in_auth: Option<InAuth<'a>>,
        /// Its client slot, for the life of the connection.
        slot: tokio::sync::OwnedSemaphorePermit,
    },
    Refused(Refusal),
}

/// Why a connection was refused before its login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its source is blocked by active response.
    Blocked,
    /// Its source opened more than `per_source_per_minute` connections this minute.
    Rate,
    /// Its source has `per_source_in_auth` connections in authentication already.
    InAuth,
    /// Every client slot is taken, none by a connection idle long enough to cut.
    Full,
}

impl Refusal {
    /// The SQLSTATE and message the client is told.
    pub(crate) fn told(self) -> (&'static str, &'static str) {
        match self {
            Refusal::Blocked => ("28000", "connection refused"),
            Refusal::Rate => ("53300", "too many connection attempts from this address"),
            Refusal::InAuth => (
                "53300",
                "too many connections from this address in authentication",
            ),
            Refusal::Full => ("53300", "sorry, too many clients already"),
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
    /// Decides whether a connection from `ip` goes on to its login, and counts a refusal.
    /// A blocked source is refused before it counts against any limit.
    pub(crate) async fn admit(&self, ip: IpAddr) -> Verdict<'_> {
        let refused = |r: Refusal| {
            let counter = match r {
                Refusal::Blocked => &self.counters.refused_blocked,
                _ => &self.counters.refused_limit,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Verdict::Refused(r)
        };
        if self.blocks.is_blocked(ip, now_ms()) {
            return refused(Refusal::Blocked);
        }
        let allowlisted = self.blocks.allows(ip);
        if !allowlisted && !self.rate_ok(ip) {
            return refused(Refusal::Rate);
        }
        let in_auth = if allowlisted {
            None
        } else {
            match self.enter_auth(ip) {
                Some(g) => Some(g),
                None => return refused(Refusal::InAuth),
            }
        };
        let slot = match self.clients.clone().try_acquire_owned() {
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
        match slot {
            Some(slot) => Verdict::Admitted { in_auth, slot },
            None => refused(Refusal::Full),
        }
    }

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
