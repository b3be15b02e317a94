//! The alert store: alerts with their state history, security alert policies, servers,
//! checkpoints, API tokens and the notification outbox, in one SQLite file (WAL).
//!
//! `pgvigil run` writes a poll's alerts, their notifications and the checkpoint that produced
//! them in one transaction, so a crash can neither lose an alert nor notify it twice. The API
//! reads through a small pool of read connections; WAL lets them run beside the writer.

mod alerts;
mod outbox;
mod policies;
mod servers;
mod tokens;

pub use alerts::{AlertQuery, Ingest, Ingested, Status};
pub use outbox::OutboxItem;
pub use servers::{ServerReport, ServerStatus};
pub use tokens::{Role, TokenInfo};

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: schema version {found} is newer than this pgvigil knows ({known}); upgrade pgvigil")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: stored {what} is not valid: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Schema migrations, in order; the index + 1 is the version. Never edit a released one:
/// add the next.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

const READERS: usize = 4;

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// Wall-clock time as the store writes it (RFC 3339 UTC, milliseconds).
pub fn now_utc() -> String {
    crate::event::format_time(now_ms())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating it and its directory if needed) the store at `path`, and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let open_err = |e| StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        };
        let mut writer = Connection::open(path).map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        migrate(&mut writer, path)?;
        // Alerts, outbox and tokens: nothing here is for other users of the machine.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let c = Connection::open(path).map_err(open_err)?;
            configure(&c).map_err(open_err)?;
            readers.push(Mutex::new(c));
        }
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        // A poisoned lock only means another request panicked mid-read: the connection
        // itself is fine.
        let c = self.readers[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&c)
    }

    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let mut c = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.pragma_update(None, "journal_mode", "WAL")?;
    // WAL + NORMAL is durable across process crashes, which is what checkpoints promise.
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

fn migrate(c: &mut Connection, path: &Path) -> Result<()> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = c.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(store = %path.display(), version = i + 1, "store schema migrated");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Store;

    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("pgvigil.db")).unwrap();
        (dir, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_keeps_the_data_and_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/pgvigil.db");
        {
            let s = Store::open(&p).unwrap();
            s.register_server("db1").unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.list_servers().unwrap().len(), 1);
    }

    #[test]
    fn a_store_from_a_newer_pgvigil_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgvigil.db");
        drop(Store::open(&p).unwrap());
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Store::open(&p).err().unwrap().to_string();
        assert!(e.contains("pgvigil.db") && e.contains("99"), "{e}");
    }
}
