//! Connections to the server opened ahead of the logins that will use them.
//!
//! PostgreSQL starts a backend process for each connection as it accepts it, before the
//! startup packet; that takes about half a millisecond, during which the client waits. A
//! transparent proxy cannot reuse a logged-in backend (the client authenticates end to end,
//! and the proxy holds no credentials), but it can have the next few backends started before
//! the clients arrive: a login takes a spare connection, and a spare is opened to replace it.
//!
//! A spare is opened only once logins have paused ([`QUIET`], none in progress): starting a
//! backend while another login's backend starts up slows that login down more than the
//! spare saves, on a machine without cores to spare. Clients that connect back to back, or
//! many at once, so get their connections on demand, and spares serve the pauses between.
//!
//! A spare is a TCP connection on which nothing was said. The server gives such a
//! connection `authentication_timeout` (60 s by default) to send its startup packet, so
//! spares are replaced once they are `max_age` old, and any the server closed meanwhile (a
//! restart, a shorter timeout) are dropped unused. The server's log sees them from the
//! proxy's own address, which `run` leaves out of log-based detection. Spares are kept only
//! from a first login on and while logins keep coming ([`IDLE`]): an idle proxy leaves the
//! server alone, and the connections that log detection sees from the proxy's address
//! without a login never outnumber those with one for long.

use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Without a login for this long, spares lapse until the next one.
pub const IDLE: Duration = Duration::from_secs(600);

/// How long logins must have paused before a spare is opened.
pub const QUIET: Duration = Duration::from_millis(2);

pub struct Spares {
    wanted: usize,
    /// Logins in progress, and when one last began or ended (none yet: no spares).
    logins: Mutex<(usize, Option<Instant>)>,
    max_age: Duration,
    /// Oldest first.
    pool: Mutex<Vec<(Instant, TcpStream)>>,
    /// Signalled when a login ends.
    taken: tokio::sync::Notify,
}

impl Spares {
    pub fn new(wanted: usize, max_age: Duration) -> Spares {
        Spares {
            wanted,
            logins: Mutex::new((0, None)),
            max_age,
            pool: Mutex::new(Vec::with_capacity(wanted)),
            taken: tokio::sync::Notify::new(),
        }
    }

    pub fn wanted(&self) -> usize {
        self.wanted
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, TcpStream)>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The youngest usable spare (it has the most time left), if any.
    pub fn take(&self) -> Option<TcpStream> {
        let mut pool = self.pool();
        while let Some((since, tcp)) = pool.pop() {
            if since.elapsed() < self.max_age && still_open(&tcp) {
                return Some(tcp);
            }
        }
        None
    }

    /// How many more spares are wanted, after dropping those too old or closed. Those near
    /// their end stay usable but are replaced already, so that there is never a moment
    /// without one.
    pub fn missing(&self) -> usize {
        let busy = self.logins().1.is_some_and(|t| t.elapsed() < IDLE);
        let mut pool = self.pool();
        pool.retain(|(since, tcp)| since.elapsed() < self.max_age && still_open(tcp));
        let renew = self.max_age.saturating_sub(self.look());
        let fresh = pool
            .iter()
            .filter(|(since, _)| since.elapsed() < renew)
            .count();
        if busy {
            self.wanted.saturating_sub(fresh)
        } else {
            0
        }
    }

    /// How often the spares' age is looked at.
    fn look(&self) -> Duration {
        (self.max_age / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    fn logins(&self) -> std::sync::MutexGuard<'_, (usize, Option<Instant>)> {
        self.logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A login begins; it ends when the guard goes.
    pub fn login(&self) -> Login<'_> {
        let mut l = self.logins();
        l.0 += 1;
        l.1 = Some(Instant::now());
        Login(self)
    }

    /// Logins under way now.
    pub fn logins_in_progress(&self) -> usize {
        self.logins().0
    }

    /// How much longer to wait before opening a spare: zero once logins have paused for
    /// [`QUIET`]; `None` while one is in progress (its end signals).
    pub fn quiet_in(&self) -> Option<Duration> {
        let l = self.logins();
        if l.0 > 0 {
            return None;
        }
        Some(l.1.map_or(Duration::ZERO, |t| QUIET.saturating_sub(t.elapsed())))
    }

    /// Spares ready now (some may be found closed when taken).
    pub fn ready(&self) -> usize {
        self.pool().len()
    }

    /// Keeps `tcp` as a spare if one is missing; closes it otherwise.
    pub fn offer(&self, tcp: TcpStream) {
        if self.missing() > 0 {
            self.put(tcp);
        }
    }

    pub fn put(&self, tcp: TcpStream) {
        self.pool().push((Instant::now(), tcp));
    }

    /// Until a login ends, or the next look at the spares' age is due.
    pub async fn wait(&self) {
        let _ = tokio::time::timeout(self.look(), self.taken.notified()).await;
    }
}

/// A login in progress.
pub struct Login<'a>(&'a Spares);

impl Drop for Login<'_> {
    fn drop(&mut self) {
        let mut l = self.0.logins();
        l.0 = l.0.saturating_sub(1);
        l.1 = Some(Instant::now());
        drop(l);
        self.0.taken.notify_one();
    }
}

/// Nothing to read and not closed: the server is still waiting for a startup packet. (The
/// server says nothing first; bytes or an end here mean it gave up on the connection.)
fn still_open(tcp: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(tcp).peek(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to `listener` and the listener's end of it.
    async fn pair(listener: &tokio::net::TcpListener) -> (TcpStream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (ours.unwrap(), theirs.unwrap().0)
    }

    #[tokio::test]
    async fn spares_are_renewed_before_their_end_and_never_handed_out_dead() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let spares = Spares::new(1, Duration::from_millis(400));
        assert_eq!(spares.missing(), 0, "none before the first login");
        let login = spares.login();
        assert_eq!(spares.quiet_in(), None, "not during a login");
        drop(login);
        assert!(spares.quiet_in().is_some_and(|d| d > Duration::ZERO));
        assert_eq!(spares.missing(), 1);
        tokio::time::sleep(QUIET).await;
        assert_eq!(spares.quiet_in(), Some(Duration::ZERO));
        let (a, _server_a) = pair(&listener).await;
        spares.put(a);
        assert_eq!(spares.missing(), 0);
        // Near its end: replaced already, still usable.
        tokio::time::sleep(Duration::from_millis(320)).await;
        assert_eq!(spares.missing(), 1);
        assert!(spares.take().is_some());
        // Past its end: dropped.
        let (b, _server_b) = pair(&listener).await;
        spares.put(b);
        tokio::time::sleep(Duration::from_millis(420)).await;
        assert!(spares.take().is_none());
        // Closed by the server: dropped.
        let (c, server_c) = pair(&listener).await;
        spares.put(c);
        drop(server_c);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(spares.missing(), 1);
        assert!(spares.take().is_none());
    }
}
