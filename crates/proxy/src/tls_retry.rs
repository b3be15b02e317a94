//! Drivers that fall back from TLS on a new connection: with `sslmode=prefer`, pgx asks for
//! TLS, and when the proxy declines it closes and comes back without asking, where libpq
//! drivers go on over the same connection. The close, which alone would look like a bare
//! connect (a scanner's), and the retry are paired here by source address.
//!
//! The retry's startup packet can be read before the proxy has seen the first connection
//! end (each connection is its own task): a plain startup from an address with a declined
//! connection still open waits, briefly, for that connection to settle.

use model::event::Event;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Source {
    /// Connections whose SSLRequest was declined, neither gone nor on to a startup yet.
    declined: usize,
    /// Closes after a decline, with their `NoStartup` events, oldest first.
    closes: Vec<(Instant, Event)>,
}

/// Per source address: closes after a declined SSLRequest without a startup packet. The next
/// plain connection from one of them within [`TlsFallbacks::WITHIN`] is its retry (each close
/// pairs with one retry). Each close keeps its `NoStartup` event: a retry drops it (a driver
/// falling back is no probe), and one never followed up is emitted after all.
#[derive(Default)]
pub(super) struct TlsFallbacks {
    sources: Mutex<rustc_hash::FxHashMap<IpAddr, Source>>,
    /// Signalled when a declined connection settles (closes or goes on).
    settled: tokio::sync::Notify,
}

/// A connection whose SSLRequest the proxy declined, until it closes ([`Declined::closed`])
/// or goes on (dropped).
pub(super) struct Declined<'a> {
    fallbacks: &'a TlsFallbacks,
    ip: IpAddr,
}

impl TlsFallbacks {
    const WITHIN: Duration = Duration::from_secs(2);
    /// How long a plain startup waits for a declined connection from its address to settle.
    const SETTLE: Duration = Duration::from_millis(100);
    /// Bounds: sources remembered, and closes remembered per source.
    const SOURCES: usize = 10_000;
    const PER_SOURCE: usize = 64;

    fn sources(&self) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<IpAddr, Source>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The proxy declined a connection's SSLRequest; `None` past the bound on sources (the
    /// connection is then not followed).
    pub(super) fn declined(&self, ip: IpAddr) -> Option<Declined<'_>> {
        let mut m = self.sources();
        if m.len() >= Self::SOURCES && !m.contains_key(&ip) {
            return None;
        }
        m.entry(ip).or_default().declined += 1;
        Some(Declined {
            fallbacks: self,
            ip,
        })
    }

    /// Whether a plain connection from `ip` is a retry, pairing it with the close it follows.
    pub(super) async fn take(&self, ip: IpAddr) -> bool {
        let deadline = tokio::time::Instant::now() + Self::SETTLE;
        loop {
            // Armed before looking, so that a settling in between is not missed.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let mut m = self.sources();
                let Some(s) = m.get_mut(&ip) else {
                    return false;
                };
                if let Some(i) = s
                    .closes
                    .iter()
                    .position(|(t, _)| t.elapsed() < Self::WITHIN)
                {
                    s.closes.remove(i);
                    if s.closes.is_empty() && s.declined == 0 {
                        m.remove(&ip);
                    }
                    return true;
                }
                if s.declined == 0 {
                    return false;
                }
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return false;
            }
        }
    }

    /// The events of closes no retry followed in time.
    pub(super) fn overdue(&self) -> Vec<Event> {
        let mut out = Vec::new();
        self.sources().retain(|_, s| {
            let (old, young): (Vec<_>, Vec<_>) = s
                .closes
                .drain(..)
                .partition(|(t, _)| t.elapsed() >= Self::WITHIN);
            out.extend(old.into_iter().map(|(_, e)| e));
            s.closes = young;
            !s.closes.is_empty() || s.declined > 0
        });
        out
    }
}

impl Declined<'_> {
    /// The connection closed without a startup packet: its event waits for a retry, and
    /// comes back from [`TlsFallbacks::overdue`] when none follows, or at once past the
    /// bound.
    pub(super) fn closed(self, bare: Event) -> Option<Event> {
        let mut m = self.fallbacks.sources();
        let s = m.entry(self.ip).or_default();
        if s.closes.len() >= TlsFallbacks::PER_SOURCE {
            return Some(bare);
        }
        s.closes.push((Instant::now(), bare));
        None
    }
}

impl Drop for Declined<'_> {
    fn drop(&mut self) {
        let mut m = self.fallbacks.sources();
        if let Some(s) = m.get_mut(&self.ip) {
            s.declined = s.declined.saturating_sub(1);
            if s.declined == 0 && s.closes.is_empty() {
                m.remove(&self.ip);
            }
        }
        drop(m);
        self.fallbacks.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::event::EventKind;

    fn bare() -> Event {
        Event::new(0, EventKind::Disconnected)
    }

    #[tokio::test]
    async fn each_refused_close_pairs_with_one_retry_from_its_address() {
        let f = TlsFallbacks::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!f.take(a).await);
        assert!(f.declined(a).unwrap().closed(bare()).is_none());
        assert!(f.declined(a).unwrap().closed(bare()).is_none());
        assert!(!f.take(b).await, "another address is not a retry");
        assert!(f.take(a).await);
        assert!(f.take(a).await);
        assert!(!f.take(a).await, "two closes, two retries");
        assert!(f.overdue().is_empty(), "retried closes leave no event");
        for _ in 0..TlsFallbacks::PER_SOURCE {
            assert!(f.declined(b).unwrap().closed(bare()).is_none());
        }
        assert!(
            f.declined(b).unwrap().closed(bare()).is_some(),
            "past the bound, emitted at once"
        );
    }

    #[tokio::test]
    async fn a_retry_read_before_the_close_is_seen_still_pairs() {
        let f = std::sync::Arc::new(TlsFallbacks::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let g = f.clone();
        let first = tokio::spawn(async move {
            let d = g.declined(a).unwrap();
            let _ = tx.send(());
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(d.closed(bare()).is_none());
        });
        rx.await.unwrap();
        assert!(
            f.take(a).await,
            "waited for the declined connection to close"
        );
        first.await.unwrap();
        // A declined connection that goes on to its startup is no close to pair with.
        let d = f.declined(a).unwrap();
        let g = f.clone();
        let waiting = tokio::spawn(async move { g.take(a).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(d);
        assert!(!waiting.await.unwrap());
    }
}
