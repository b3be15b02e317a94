//! Drivers that fall back from TLS on a new connection: with `sslmode=prefer`, pgx asks for
//! TLS, and when the proxy declines it closes and comes back without asking, where libpq
//! drivers go on over the same connection. The close, which alone would look like a bare
//! connect (a scanner's), and the retry are paired here by source address.

use crate::event::Event;
use std::net::IpAddr;

/// Sources that just closed a connection after the proxy declined their SSLRequest, without
/// sending a startup packet: the next plain connection from one of them within
/// [`TlsFallbacks::WITHIN`] is its retry (each such close pairs with one retry). Each close
/// keeps its `NoStartup` event: a retry drops it (a driver falling back is no probe), and
/// one never followed up is emitted after all.
#[derive(Default)]
pub(super) struct TlsFallbacks(
    std::sync::Mutex<rustc_hash::FxHashMap<IpAddr, Vec<(std::time::Instant, Event)>>>,
);

impl TlsFallbacks {
    const WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
    /// Bounds: sources remembered, and closes remembered per source.
    const SOURCES: usize = 10_000;
    const PER_SOURCE: usize = 64;

    /// Remembers a close; its event comes back from [`Self::overdue`] when no retry
    /// follows, or at once when the bounds are reached.
    pub(super) fn note(&self, ip: IpAddr, bare: Event) -> Option<Event> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::SOURCES && !m.contains_key(&ip) {
            return Some(bare);
        }
        let v = m.entry(ip).or_default();
        if v.len() >= Self::PER_SOURCE {
            return Some(bare);
        }
        v.push((std::time::Instant::now(), bare));
        None
    }

    /// Whether a connection from `ip` is a retry, pairing it with the close it follows.
    pub(super) fn take(&self, ip: IpAddr) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = m.get_mut(&ip) else {
            return false;
        };
        let hit = v
            .iter()
            .position(|(t, _)| t.elapsed() < Self::WITHIN)
            .map(|i| v.remove(i))
            .is_some();
        if v.is_empty() {
            m.remove(&ip);
        }
        hit
    }

    /// The events of closes no retry followed in time.
    pub(super) fn overdue(&self) -> Vec<Event> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        m.retain(|_, v| {
            let (old, young): (Vec<_>, Vec<_>) =
                v.drain(..).partition(|(t, _)| t.elapsed() >= Self::WITHIN);
            out.extend(old.into_iter().map(|(_, e)| e));
            *v = young;
            !v.is_empty()
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[test]
    fn each_refused_close_pairs_with_one_retry_from_its_address() {
        let f = TlsFallbacks::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let bare = || Event::new(0, EventKind::Disconnected);
        assert!(!f.take(a));
        assert!(f.note(a, bare()).is_none());
        assert!(f.note(a, bare()).is_none());
        assert!(!f.take(b), "another address is not a retry");
        assert!(f.take(a));
        assert!(f.take(a));
        assert!(!f.take(a), "two closes, two retries");
        assert!(f.overdue().is_empty(), "retried closes leave no event");
        for _ in 0..TlsFallbacks::PER_SOURCE {
            assert!(f.note(b, bare()).is_none());
        }
        assert!(
            f.note(b, bare()).is_some(),
            "past the bound, emitted at once"
        );
    }
}
