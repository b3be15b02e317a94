//! The proxy's events on their way to detection, and how far detection has acted on them.
//!
//! A tool's parallel attempts race the block they cause: the attempt with the right password
//! can be answered by the server before detection has read the failures that came back just
//! ahead of it, and the tool learns the password although the block was a few milliseconds
//! away. So a login that succeeds from a source whose logins failed here lately (or from a
//! client recognised as an attack tool, which is alerted on at once) is held
//! until its source's other attempts then in flight have ended and detection has acted on
//! every event sent before; only then is it told, or refused if its source is now blocked.
//! A typist (one connection, the typo long read) waits for nothing; everyone else, not at all.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use model::event::Event;

/// A source whose login failed within this long has its successes held.
const SUSPECT_FOR: Duration = Duration::from_secs(60);
/// The longest a success waits for the source's other attempts in flight to end.
pub(super) const SIBLINGS_WAIT: Duration = Duration::from_secs(1);
/// The longest a success waits for detection to act on what came before it: a detection
/// stalled longer (a slow disk) lets logins through rather than hold them all.
const DECISION_WAIT: Duration = Duration::from_secs(2);
/// Sources remembered for their failures, at most (a spray from many addresses).
const MAX_SUSPECTS: usize = 100_000;

pub(super) struct Feed {
    tx: Mutex<Sender<Event>>,
    /// Events sent: counted under `tx`'s lock, so the n-th sent is the n-th received.
    sent: AtomicU64,
    /// Events detection has acted on (its alerts raised and their blocks started).
    acted: tokio::sync::watch::Sender<u64>,
    /// Detection reports how far it has got: without it, nothing is held.
    tracked: AtomicBool,
    suspects: Mutex<rustc_hash::FxHashMap<IpAddr, Instant>>,
}

impl Feed {
    pub(super) fn new(tx: Sender<Event>) -> Feed {
        Feed {
            tx: Mutex::new(tx),
            sent: AtomicU64::new(0),
            acted: tokio::sync::watch::channel(0).0,
            tracked: AtomicBool::new(false),
            suspects: Mutex::new(Default::default()),
        }
    }

    pub(super) fn send(&self, e: Event) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        self.sent.fetch_add(1, Ordering::Relaxed);
        // The receiver goes only when the process stops.
        let _ = tx.send(e);
    }

    /// Detection has acted on the first `n` events received.
    pub(super) fn acted_through(&self, n: u64) {
        self.tracked.store(true, Ordering::Relaxed);
        self.acted.send_if_modified(|v| {
            let newer = n > *v;
            if newer {
                *v = n;
            }
            newer
        });
    }

    pub(super) fn failed_from(&self, ip: IpAddr) {
        let mut m = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_SUSPECTS {
            m.retain(|_, t| t.elapsed() < SUSPECT_FOR);
            if m.len() >= MAX_SUSPECTS {
                return;
            }
        }
        m.insert(ip, Instant::now());
    }

    /// Whether a success from `ip` (`tool`: a client recognised as an attack tool) is held
    /// (see the module's comment).
    pub(super) fn holds(&self, ip: IpAddr, tool: bool) -> bool {
        self.tracked.load(Ordering::Relaxed)
            && (tool
                || self
                    .suspects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&ip)
                    .is_some_and(|t| t.elapsed() < SUSPECT_FOR))
    }

    /// Waits until detection has acted on every event sent so far; false if it did not
    /// within `DECISION_WAIT`.
    pub(super) async fn caught_up(&self) -> bool {
        let target = self.sent.load(Ordering::Relaxed);
        let mut rx = self.acted.subscribe();
        let acted = tokio::time::timeout(DECISION_WAIT, rx.wait_for(|v| *v >= target))
            .await
            .is_ok_and(|r| r.is_ok());
        acted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_success_waits_for_detection_to_act_on_what_came_before() {
        let (tx, rx) = std::sync::mpsc::channel();
        let feed = std::sync::Arc::new(Feed::new(tx));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        feed.failed_from(ip);
        // No one reports how far detection has got: nothing is held.
        assert!(!feed.holds(ip, false));
        assert!(!feed.holds(ip, true));
        feed.acted_through(0);
        assert!(feed.holds(ip, false));
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert!(!feed.holds(other, false));
        assert!(feed.holds(other, true));
        for _ in 0..3 {
            feed.send(Event::new(0, model::event::EventKind::ConnectionReceived));
        }
        let waiting = tokio::spawn({
            let feed = feed.clone();
            async move { feed.caught_up().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "let through before detection read the events"
        );
        assert_eq!(rx.try_iter().count(), 3);
        feed.acted_through(2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "let through one event short");
        feed.acted_through(3);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_detection_holds_a_success_two_seconds_at_most() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let feed = Feed::new(tx);
        feed.acted_through(0);
        feed.send(Event::new(0, model::event::EventKind::ConnectionReceived));
        let start = tokio::time::Instant::now();
        assert!(!feed.caught_up().await);
        assert_eq!(start.elapsed(), DECISION_WAIT);
    }
}
