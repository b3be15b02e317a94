//! The process's own health figures (notifications, the log follower, shipping to the
//! central store), written where the work is done and read by `/metrics` and `/healthz`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Counters of this process that the store does not hold.
#[derive(Debug, Default)]
pub struct Counters {
    pub notifications_sent: AtomicU64,
    pub notification_failures: AtomicU64,
    pub alerts_suppressed: AtomicU64,
    /// What `run`'s log follower last saw (unset in a process that follows no logs).
    pub follower: FollowerHealth,
    /// An agent's shipping to the central store (unset outside a fleet).
    pub ship: Arc<crate::ship::ShipHealth>,
}

/// The log follower's figures, for `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct FollowerHealth {
    /// This process follows logs.
    pub active: std::sync::atomic::AtomicBool,
    /// When the last poll of the logs ended (ms since the epoch).
    pub last_poll_ms: std::sync::atomic::AtomicI64,
    /// Log files followed (open, and closed until they grow).
    pub files: AtomicU64,
    /// Of those, open now.
    pub open: AtomicU64,
    /// Bytes written to the followed files and not read yet.
    pub bytes_behind: AtomicU64,
    /// Reads that failed, in all, and in the last poll.
    pub read_errors: AtomicU64,
    pub read_errors_last_poll: AtomicU64,
    /// Entries skipped for their length, and bytes recovered from rotated copies.
    pub oversize: AtomicU64,
    pub recovered_bytes: AtomicU64,
    /// The time of the newest event read (ms since the epoch), for a lag that stays live.
    pub newest_event_ms: std::sync::atomic::AtomicI64,
    /// Logins read (the log's and the proxy's), by outcome, since this process started.
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
}

impl FollowerHealth {
    /// Why this process is unhealthy, if it is.
    pub fn problem(&self, now_ms: i64) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.active.load(Relaxed) {
            return None;
        }
        let errors = self.read_errors_last_poll.load(Relaxed);
        if errors > 0 {
            return Some(format!("{errors} followed log file(s) could not be read"));
        }
        let last = self.last_poll_ms.load(Relaxed);
        if last > 0 && now_ms - last > 60_000 {
            return Some(format!(
                "the logs were last polled {} s ago",
                (now_ms - last) / 1000
            ));
        }
        None
    }
}
