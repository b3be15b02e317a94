//! How much `run` lets its store write. Every alert written costs its row and a dozen index
//! entries, each a page in the write-ahead log and again in the database: on a busy server
//! under a storm of new attackers, storing each second's alerts at once wrote nearly twice
//! the log's own volume. The store's writes are counted against an allowance that the log
//! read pays (so much per byte), or time when the log is quiet; what can wait (updates of
//! known alerts, new alerts past the first of a storm) waits while the writes are ahead of it.

use std::time::Instant;

/// The store's writes, measured against an allowance.
#[derive(Debug)]
pub struct WritePace {
    per_log_byte: f64,
    per_second: f64,
    /// Bytes written beyond the allowance so far (never below zero: a quiet hour does not
    /// pay for a later storm).
    debt: f64,
    at: Instant,
}

impl WritePace {
    /// Allows `per_log_byte` bytes of writes per byte of log read, or `per_second` bytes a
    /// second, whichever is more.
    pub fn new(per_log_byte: f64, per_second: f64, now: Instant) -> Self {
        WritePace {
            per_log_byte,
            per_second,
            debt: 0.0,
            at: now,
        }
    }

    /// `bytes` of log were read by `now`.
    pub fn read(&mut self, bytes: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let paid = (bytes as f64 * self.per_log_byte).max(elapsed * self.per_second);
        self.debt = (self.debt - paid).max(0.0);
    }

    /// The store wrote `bytes`.
    pub fn wrote(&mut self, bytes: u64) {
        self.debt += bytes as f64;
    }

    /// Whether the writes so far are within the allowance.
    pub fn within(&self) -> bool {
        self.debt <= 0.0
    }
}

/// What this process has had written to storage so far, as the kernel counts it (Linux's
/// `/proc/self/io`): the store's pages, its write-ahead log and their copies, not what the
/// page cache absorbed twice. `None` where the kernel does not say.
pub fn process_writes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_log_read_pays_for_the_writes() {
        let t = Instant::now();
        let mut p = WritePace::new(1.0, 1000.0, t);
        assert!(p.within());
        p.wrote(500_000);
        assert!(!p.within());
        // 0.1 s pays 100 bytes by time, 300,000 by the log: not yet.
        p.read(300_000, t + Duration::from_millis(100));
        assert!(!p.within());
        p.read(200_000, t + Duration::from_millis(200));
        assert!(p.within());
    }

    #[test]
    fn a_quiet_log_pays_by_time_and_saves_nothing_for_later() {
        let t = Instant::now();
        let mut p = WritePace::new(1.0, 64_000.0, t);
        p.wrote(100_000);
        p.read(0, t + Duration::from_secs(1));
        assert!(!p.within(), "64,000 of 100,000 paid");
        p.read(0, t + Duration::from_secs(2));
        assert!(p.within());
        // An hour of quiet is not credit: the next write is ahead again at once.
        p.read(0, t + Duration::from_secs(3600));
        p.wrote(1);
        assert!(!p.within());
    }

    #[test]
    fn the_kernel_counts_this_process_writes() {
        let before = process_writes().expect("/proc/self/io on Linux");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        let after = process_writes().unwrap();
        assert!(after - before >= 1 << 20, "{before} -> {after}");
    }
}
