//! The alert store: alerts with their state history, security alert policies, servers,
//! checkpoints, API tokens and the notification outbox. One SQLite file (WAL) by default; for
//! fleets the same schema on a central PostgreSQL (`store.url`) that every agent writes and
//! any number of API instances read.
//!
//! `pgvigil run` writes a poll's alerts, their notifications and the checkpoint that produced
//! them in one transaction, so a crash can neither lose an alert nor notify it twice. The API
//! reads through a small pool of read connections; WAL lets them run beside the writer.

mod alerts;
pub mod audit;
pub mod blocks;
pub mod db;
pub mod fleet;
pub mod health;
mod ingest;
mod months;
mod outbox;
mod overview;
mod policies;
mod policy_change;
mod queue;
mod servers;
pub mod ship;
#[cfg(test)]
mod suite;
mod suppression;
mod tokens;

pub use alerts::{AlertQuery, Order, PageKey, SortKey, Status, StatusChange, StoredAlert};
pub use ingest::{Ingest, Ingested};
pub use model::event::LoginHour;
pub use outbox::{Channel, OutboxItem};
pub use overview::Overview;
pub use policy_change::PolicyChange;
pub use servers::{ServerReport, ServerStatus};
pub use tokens::{hash as token_hash, Role, TokenInfo};

use db::{Db, Pg, Sqlite};
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
        path: String,
        found: i64,
        known: i64,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Postgres(String),
    #[error("store: stored {what} is not valid: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Schema migrations, in order; the index + 1 is the version. Never edit a released one:
/// add the next, for both databases.
const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_profile.sql"),
    include_str!("migrations/sqlite/0003_posture.sql"),
    include_str!("migrations/sqlite/0004_logins.sql"),
    include_str!("migrations/sqlite/0005_source_time.sql"),
    include_str!("migrations/sqlite/0006_audit.sql"),
    include_str!("migrations/sqlite/0007_blocks.sql"),
    include_str!("migrations/sqlite/0008_list_indexes.sql"),
    include_str!("migrations/sqlite/0009_suppression_rules.sql"),
    include_str!("migrations/sqlite/0010_console.sql"),
    include_str!("migrations/sqlite/0011_shipping.sql"),
    include_str!("migrations/sqlite/0012_alert_months.sql"),
    include_str!("migrations/sqlite/0013_time_range_cover.sql"),
];
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_profile.sql"),
    include_str!("migrations/postgres/0003_posture.sql"),
    include_str!("migrations/postgres/0004_logins.sql"),
    include_str!("migrations/postgres/0005_source_time.sql"),
    include_str!("migrations/postgres/0006_audit.sql"),
    include_str!("migrations/postgres/0007_blocks.sql"),
    include_str!("migrations/postgres/0008_list_indexes.sql"),
    include_str!("migrations/postgres/0009_suppression_rules.sql"),
    include_str!("migrations/postgres/0010_console.sql"),
    include_str!("migrations/postgres/0011_shipping.sql"),
    include_str!("migrations/postgres/0012_alert_months.sql"),
    include_str!("migrations/postgres/0013_time_range_cover.sql"),
];

const READERS: usize = 4;

enum Backend {
    Sqlite {
        writer: Mutex<Connection>,
        readers: Vec<Mutex<Connection>>,
    },
    Postgres(Box<Central>),
}

/// A central PostgreSQL store's connections. Each is made when first needed (and made again
/// after the server restarted), so that an agent starts, detects and alerts while the
/// central store is away; an agent's store has one connection, closed when idle.
struct Central {
    url: String,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    writer: Mutex<Option<postgres::Client>>,
    /// Empty: reads share the writer's connection.
    readers: Vec<Mutex<Option<postgres::Client>>>,
    /// The schema is brought up to date by the first connection.
    migrated: std::sync::atomic::AtomicBool,
    /// When a connection was last used (ms since the epoch), for `close_idle`.
    used_ms: std::sync::atomic::AtomicI64,
    /// The month ('YYYY-MM') whose alert partitions, and the next month's, are known to
    /// exist: a write first makes them when the month has turned.
    month: Mutex<String>,
}

pub struct Store {
    /// The file, or the URL without its password: for messages.
    location: String,
    backend: Backend,
    next_reader: AtomicUsize,
}

/// Wall-clock time as the store writes it (RFC 3339 UTC, milliseconds).
pub fn now_utc() -> String {
    model::event::format_time(now_ms())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A `postgres://` URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            let user = cred.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// `[store]` in pgvigil.toml.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file holding alerts, policies, checkpoints, API tokens and the notification
    /// outbox. Default: `pgvigil.db` in state.dir. In a fleet, `run`'s own store (its
    /// checkpoint, its alerts and the queue for the central store).
    pub path: Option<PathBuf>,
    /// A central PostgreSQL (`postgres://user:password@host/db`): fleet mode, every agent and
    /// API instance pointing at the same database. `run` ships its alerts and counts there;
    /// `api` and `token` use it instead of `path`.
    pub url: Option<model::secret::Secret>,
    /// Also trust this CA (PEM) for the central store's certificate. The connection uses TLS
    /// as the URL's `sslmode` says (`require` to insist); certificates are always verified.
    pub ca_file: Option<PathBuf>,
}

impl Store {
    /// The store `store.url` (PostgreSQL) names, or else the SQLite file at `path` (where
    /// `store.path` and the state directory put it).
    pub fn from_config(cfg: &StoreConfig, path: &Path) -> Result<Store> {
        match &cfg.url {
            Some(u) => Store::connect(u.expose(), cfg.ca_file.as_deref()),
            None => Store::open(path),
        }
    }

    /// Opens (creating it and its directory if needed) the SQLite store at `path`, and brings
    /// its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, READERS)
    }

    /// As `open`, with `readers` connections for reads beside the writer's: an agent of a
    /// fleet, whose API serves the central store, needs one.
    pub fn open_with(path: &Path, readers: usize) -> Result<Store> {
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
        migrate_sqlite(&mut writer, path)?;
        // Alerts, outbox and tokens: nothing here is for other users of the machine.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let mut pool = Vec::new();
        for _ in 0..readers.max(1) {
            let c = Connection::open(path).map_err(open_err)?;
            configure(&c).map_err(open_err)?;
            pool.push(Mutex::new(c));
        }
        let store = Store {
            location: path.display().to_string(),
            backend: Backend::Sqlite {
                writer: Mutex::new(writer),
                readers: pool,
            },
            next_reader: AtomicUsize::new(0),
        };
        store.forget_clear_storage_keys()?;
        Ok(store)
    }

    /// Connects to a central PostgreSQL store (fleet mode) and brings its schema up to date;
    /// agents starting together migrate it once, under an advisory lock. For an API instance:
    /// two connections for reads beside the writer's.
    pub fn connect(url: &str, ca_file: Option<&Path>) -> Result<Store> {
        let store = Store::central(url, ca_file, 2)?;
        if let Backend::Postgres(c) = &store.backend {
            drop(c.client(&c.writer, &store.location)?);
        }
        store.forget_clear_storage_keys()?;
        Ok(store)
    }

    /// A central PostgreSQL store as an agent uses it: no connection until the first use,
    /// then one, shared by reads and writes, and closed by `close_idle`. Unreachable, it
    /// fails each use (and a later use tries again) rather than the agent's start.
    pub fn connect_lazily(url: &str, ca_file: Option<&Path>) -> Result<Store> {
        Store::central(url, ca_file, 0)
    }

    fn central(url: &str, ca_file: Option<&Path>, readers: usize) -> Result<Store> {
        Ok(Store {
            location: redact(url),
            backend: Backend::Postgres(Box::new(Central {
                url: url.to_string(),
                tls: tls_connector(ca_file)?,
                writer: Mutex::new(None),
                readers: (0..readers).map(|_| Mutex::new(None)).collect(),
                migrated: Default::default(),
                used_ms: Default::default(),
                month: Default::default(),
            })),
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Closes a central store's connections unused for `idle`: an agent whose log is quiet
    /// holds none. The next use connects again.
    pub fn close_idle(&self, idle: std::time::Duration) {
        if let Backend::Postgres(c) = &self.backend {
            if now_ms() - c.used_ms.load(Ordering::Relaxed) < idle.as_millis() as i64 {
                return;
            }
            for slot in std::iter::once(&c.writer).chain(&c.readers) {
                // A connection in use now is not idle.
                if let Ok(mut g) = slot.try_lock() {
                    *g = None;
                }
            }
        }
    }

    /// Where the store is (a file, or a URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    pub(crate) fn read<T>(&self, mut f: impl FnMut(&mut dyn Db) -> Result<T>) -> Result<T> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed);
        match &self.backend {
            Backend::Sqlite { readers, .. } => {
                // A poisoned lock only means another request panicked mid-read: the
                // connection itself is fine.
                let c = readers[i % readers.len()]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                f(&mut Sqlite(&c))
            }
            Backend::Postgres(pg) => {
                let slot = if pg.readers.is_empty() {
                    &pg.writer
                } else {
                    &pg.readers[i % pg.readers.len()]
                };
                let mut g = pg.client(slot, &self.location)?;
                let c = g.as_mut().ok_or_else(|| gone(&self.location))?;
                match f(&mut Pg(&mut *c)) {
                    // The server restarted since this connection's last use: its first
                    // query finds out. A read is asked again on a new connection rather
                    // than answered with an error.
                    Err(_) if !alive(c) => {
                        *c = pg.connect(&self.location)?;
                        f(&mut Pg(&mut *c))
                    }
                    out => out,
                }
            }
        }
    }

    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let mut c = writer.lock().unwrap_or_else(|p| p.into_inner());
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let out = f(&mut Sqlite(&tx))?;
                tx.commit()?;
                Ok(out)
            }
            Backend::Postgres(pg) => {
                let mut g = pg.client(&pg.writer, &self.location)?;
                let c = g.as_mut().ok_or_else(|| gone(&self.location))?;
                // BEGIN is where a connection the server closed (a restart) shows it:
                // nothing has been written yet, so it is begun again on a new connection.
                match in_transaction(c, &pg.month, f) {
                    Ok(out) => out,
                    Err((e, f)) => {
                        if alive(c) {
                            return Err(StoreError::Postgres(db::pg_message(&e)));
                        }
                        *c = pg.connect(&self.location)?;
                        in_transaction(c, &pg.month, f)
                            .unwrap_or_else(|(e, _)| Err(StoreError::Postgres(db::pg_message(&e))))
                    }
                }
            }
        }
    }

    /// Whether the store answers a query now (`/healthz`).
    pub fn ping(&self) -> Result<()> {
        self.read(|db| db.query("SELECT 1", &[]).map(drop))
    }

    /// Whether this is a central PostgreSQL store.
    pub fn is_central(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }
}

/// `f` in a transaction of `c`; when the transaction cannot even begin, that error and `f`
/// back, untouched.
#[allow(clippy::type_complexity)]
fn in_transaction<T, F: FnOnce(&mut dyn Db) -> Result<T>>(
    c: &mut postgres::Client,
    month: &Mutex<String>,
    f: F,
) -> std::result::Result<Result<T>, (postgres::Error, F)> {
    if let Err(e) = ensure_partitions(c, month) {
        return Err((e, f));
    }
    let mut tx = match c.transaction() {
        Ok(tx) => tx,
        Err(e) => return Err((e, f)),
    };
    Ok((|| {
        let out = f(&mut Pg(&mut tx))?;
        tx.commit()
            .map_err(|e| StoreError::Postgres(db::pg_message(&e)))?;
        Ok(out)
    })())
}

/// Makes this month's and next month's alert partitions unless `known` says they exist.
/// Outside the write's transaction: making a partition locks the whole `alerts` table, which
/// should not wait on (or hold up) a batch's own locks.
fn ensure_partitions(
    c: &mut postgres::Client,
    known: &Mutex<String>,
) -> std::result::Result<(), postgres::Error> {
    let now = now_utc();
    let month = &now[..7];
    let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
    if *known == month {
        return Ok(());
    }
    c.execute(
        "SELECT pgvigil_partition($1), pgvigil_partition($2)",
        &[&month, &next_month(month)],
    )?;
    *known = month.to_string();
    Ok(())
}

/// The month after `month` ('YYYY-MM').
pub(crate) fn next_month(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or((month, "12"));
    let (y, m): (i32, u32) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(12));
    if m >= 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    }
}

impl Central {
    /// `slot`'s connection, made now if there is none or the server closed it; the first
    /// connection of the process brings the schema up to date.
    fn client<'a>(
        &self,
        slot: &'a Mutex<Option<postgres::Client>>,
        location: &str,
    ) -> Result<std::sync::MutexGuard<'a, Option<postgres::Client>>> {
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_none_or(|c| c.is_closed()) {
            *g = None;
            let mut c = self.connect(location)?;
            if !self.migrated.load(Ordering::Acquire) {
                migrate_postgres(&mut c, location)?;
                self.migrated.store(true, Ordering::Release);
            }
            *g = Some(c);
        }
        self.used_ms.store(now_ms(), Ordering::Relaxed);
        Ok(g)
    }

    fn connect(&self, location: &str) -> Result<postgres::Client> {
        let err = |m: String| StoreError::Postgres(format!("{location}: {m}"));
        let mut cfg: postgres::Config = self
            .url
            .parse()
            .map_err(|e: postgres::Error| err(db::pg_message(&e)))?;
        // Unset, a central store behind a dropped route would hold the agent's shipper
        // (and an API request) for the system's TCP timeout, minutes.
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(std::time::Duration::from_secs(10));
        }
        cfg.connect(self.tls.clone())
            .map_err(|e| err(db::pg_message(&e)))
    }
}

fn gone(location: &str) -> StoreError {
    StoreError::Postgres(format!("{location}: no connection"))
}

/// After an error: whether the connection still answers (a query's own error) or is gone
/// (the server restarted or the network dropped it).
fn alive(c: &mut postgres::Client) -> bool {
    !c.is_closed() && c.is_valid(std::time::Duration::from_secs(2)).is_ok()
}

/// TLS for the central store: the system's CAs, plus `ca_file` if given.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let config = tls::client_config(ca_file, "store.ca_file")
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.pragma_update(None, "journal_mode", "WAL")?;
    // WAL + NORMAL is durable across process crashes, which is what checkpoints promise.
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // Copied into the database every 16 MiB of write-ahead log rather than 4: a page written
    // again and again (an index's last page, the checkpoint's) is copied once per round.
    c.pragma_update(None, "wal_autocheckpoint", 4000)?;
    // Sorting and grouping (the console's counts, a page's order) in memory, not in a file in
    // /var/tmp: the systemd unit lets pgvigil write only its own directories.
    c.pragma_update(None, "temp_store", "MEMORY")?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

fn migrate_sqlite(c: &mut Connection, path: &Path) -> Result<()> {
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = SQLITE_MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: version,
            known,
        });
    }
    for (i, sql) in SQLITE_MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = c.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(store = %path.display(), version = i + 1, "store schema migrated");
    }
    Ok(())
}

fn migrate_postgres(c: &mut postgres::Client, location: &str) -> Result<()> {
    let e =
        |e: postgres::Error| StoreError::Postgres(format!("{location}: {}", db::pg_message(&e)));
    let mut tx = c.transaction().map_err(e)?;
    // Any number: it only has to be the same in every agent.
    tx.execute("SELECT pg_advisory_xact_lock(7417700)", &[])
        .map_err(e)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS pgvigil_schema (version BIGINT NOT NULL)")
        .map_err(e)?;
    let version: i64 = tx
        .query_opt("SELECT version FROM pgvigil_schema", &[])
        .map_err(e)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let known = POSTGRES_MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: location.to_string(),
            found: version,
            known,
        });
    }
    for (i, sql) in POSTGRES_MIGRATIONS
        .iter()
        .enumerate()
        .skip(version as usize)
    {
        tx.batch_execute(sql).map_err(e)?;
        tx.execute("DELETE FROM pgvigil_schema", &[]).map_err(e)?;
        tx.execute(
            "INSERT INTO pgvigil_schema (version) VALUES ($1)",
            &[&((i + 1) as i64)],
        )
        .map_err(e)?;
        tracing::info!(store = %location, version = i + 1, "store schema migrated");
    }
    tx.commit().map_err(e)?;
    Ok(())
}

/// For tests of this crate and of the crates above it (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_support {
    use super::Store;
    use model::alert::{Alert, AlertType, Entities, Severity};

    /// A brute-force-like alert from 127.0.0.9.
    pub fn alert(id: &str, server: &str, t: AlertType, sev: Severity, end: &str) -> Alert {
        Alert {
            id: id.into(),
            alert_type: t,
            display_name: "Suspected brute force attack".into(),
            severity: sev,
            status: "Active".into(),
            intent: t.intent().into(),
            techniques: vec!["T1110.001".into()],
            server: server.into(),
            start_time_utc: "2026-11-01T00:00:00.000Z".into(),
            end_time_utc: end.into(),
            entities: Entities {
                source_ip: Some("127.0.0.9".into()),
                ..Default::default()
            },
            evidence: model::evidence!({"failedLogins": 12}),
            description: "d".into(),
            anomaly_context: "c".into(),
            remediation_steps: vec!["r".into()],
        }
    }

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
    fn a_version_1_store_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgvigil.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(SQLITE_MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute("INSERT INTO servers (name, events) VALUES ('old', 7)", [])
                .unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.list_servers().unwrap()[0].events, 7);
        assert_eq!(s.server_profile("old").unwrap(), Some(None));
        s.report(&ServerReport {
            server: "old".into(),
            profile: Some(r#"{"principals": []}"#.into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            s.server_profile("old").unwrap(),
            Some(Some(serde_json::json!({"principals": []})))
        );
        assert_eq!(s.server_profile("nosuch").unwrap(), None);
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
