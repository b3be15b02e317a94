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
//!
//! The channel to detection is bounded: a detection that falls behind (a slow disk under the
//! store) slows the connections that make events, for `SEND_WAIT` at most each, rather than
//! fill memory. An event that still finds no room is dropped and counted, so a stalled
//! detection never stalls the database's traffic for good.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use model::event::Event;
use tokio::sync::mpsc;

/// A source whose login failed within this long has its successes held.
const SUSPECT_FOR: Duration = Duration::from_secs(60);
/// The longest a success waits for the source's other attempts in flight to end.
pub(super) const SIBLINGS_WAIT: Duration = Duration::from_secs(1);
/// The longest a success waits for detection to act on what came before it: a detection
/// stalled longer (a slow disk) lets logins through rather than hold them all.
const DECISION_WAIT: Duration = Duration::from_secs(2);
/// Sources remembered for their failures, at most (a spray from many addresses).
const MAX_SUSPECTS: usize = 100_000;
/// Events on their way to detection, at most: a few seconds of a busy proxy's logins and
/// statements, a few MB.
pub(super) const IN_FLIGHT: usize = 16_384;
/// The longest an event waits for room in a full channel before it is dropped.
const SEND_WAIT: Duration = Duration::from_secs(2);

/// The proxy's events, as detection reads them.
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

/// Why no event came.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    /// None within the wait.
    Timeout,
    /// The proxy is gone.
    Closed,
}

impl Events {
    /// The events waiting now, without waiting for more.
    pub fn try_iter(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.rx.try_recv().ok())
    }

    /// The next event, waiting `wait` at most; `runtime` is the proxy's (its timers).
    /// Called from a thread outside the runtime.
    pub fn recv_timeout(
        &mut self,
        runtime: &tokio::runtime::Handle,
        wait: Duration,
    ) -> Result<Event, RecvError> {
        // The timer is made inside: it belongs to the runtime.
        match runtime.block_on(async { tokio::time::timeout(wait, self.rx.recv()).await }) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(RecvError::Closed),
            Err(_) => Err(RecvError::Timeout),
        }
    }
}

pub(super) struct Feed {
    tx: mpsc::Sender<Event>,
    /// Held while an event is counted and sent, so the n-th sent is the n-th received.
    order: Mutex<()>,
    sent: AtomicU64,
    /// Events dropped for a full channel.
    dropped: AtomicU64,
    /// Events detection has acted on (its alerts raised and their blocks started).
    acted: tokio::sync::watch::Sender<u64>,
    /// Detection reports how far it has got: without it, nothing is held.
    tracked: AtomicBool,
    suspects: Mutex<rustc_hash::FxHashMap<IpAddr, Instant>>,
}

impl Feed {
    pub(super) fn new(capacity: usize) -> (Feed, Events) {
        let (tx, rx) = mpsc::channel(capacity);
        let feed = Feed {
            tx,
            order: Mutex::new(()),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            acted: tokio::sync::watch::channel(0).0,
            tracked: AtomicBool::new(false),
            suspects: Mutex::new(Default::default()),
        };
        (feed, Events { rx })
    }

    pub(super) async fn send(&self, e: Event) {
        let permit = match tokio::time::timeout(SEND_WAIT, self.tx.reserve()).await {
            Ok(Ok(permit)) => permit,
            // The receiver goes only when the process stops.
            Ok(Err(_)) => return,
            Err(_) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "detection is behind the proxy: events it had no room for are dropped \
                         (counted in pgvigil_proxy_events_dropped_total)"
                    );
                }
                return;
            }
        };
        let _order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.sent.fetch_add(1, Ordering::Relaxed);
        permit.send(e);
    }

    /// Events dropped so far for a full channel.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
        let (feed, mut rx) = Feed::new(IN_FLIGHT);
        let feed = std::sync::Arc::new(feed);
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
            feed.send(Event::new(0, model::event::EventKind::ConnectionReceived))
                .await;
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
        let (feed, _rx) = Feed::new(IN_FLIGHT);
        feed.acted_through(0);
        feed.send(Event::new(0, model::event::EventKind::ConnectionReceived))
            .await;
        let start = tokio::time::Instant::now();
        assert!(!feed.caught_up().await);
        assert_eq!(start.elapsed(), DECISION_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_channel_slows_senders_then_drops_and_counts() {
        let (feed, mut rx) = Feed::new(2);
        let feed = std::sync::Arc::new(feed);
        let ev = |t| Event::new(t, model::event::EventKind::ConnectionReceived);
        feed.send(ev(1)).await;
        feed.send(ev(2)).await;
        // Full: the third waits for room, and gets it when detection reads one.
        let third = tokio::spawn({
            let feed = feed.clone();
            async move { feed.send(ev(3)).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!third.is_finished(), "sent into a full channel");
        assert_eq!(rx.try_iter().next().map(|e| e.time), Some(1));
        third.await.unwrap();
        assert_eq!(feed.dropped(), 0);
        // Full again and no one reads: the sender waits SEND_WAIT, then the event is dropped.
        let start = tokio::time::Instant::now();
        feed.send(ev(4)).await;
        assert_eq!(start.elapsed(), SEND_WAIT);
        assert_eq!(feed.dropped(), 1);
        let got: Vec<_> = rx.try_iter().map(|e| e.time).collect();
        assert_eq!(got, [2, 3], "in order, the dropped one missing");
        // What detection was told covers only the events sent.
        feed.acted_through(3);
        assert!(feed.caught_up().await);
    }

    /// Detection reads from a thread of its own, outside the runtime.
    #[test]
    fn detection_reads_events_from_outside_the_runtime() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (feed, mut events) = Feed::new(IN_FLIGHT);
        let feed = std::sync::Arc::new(feed);
        let f = feed.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            f.send(Event::new(7, model::event::EventKind::ConnectionReceived))
                .await;
        });
        let wait = Duration::from_secs(5);
        assert_eq!(events.recv_timeout(rt.handle(), wait).unwrap().time, 7);
        let short = Duration::from_millis(20);
        assert_eq!(
            events.recv_timeout(rt.handle(), short).unwrap_err(),
            RecvError::Timeout
        );
        drop(feed);
        assert_eq!(
            events.recv_timeout(rt.handle(), wait).unwrap_err(),
            RecvError::Closed
        );
    }
}
