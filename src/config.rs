//! `pgvigil.toml`: the configuration of `pgvigil run` (and of `analyze --config`). Every
//! option has a default; each component's settings live with the component and are gathered
//! here. The `///` comments are the user documentation of each option.

use crate::detect::registry::DetectConfig;
use crate::duration::Span;
use crate::sources::LogFormat;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A setting that parses but cannot work.
    #[error("{path}: {error}")]
    Setting {
        path: PathBuf,
        error: crate::setting::SettingError,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name of the monitored server, as it appears in alerts. Default: this machine's host name.
    pub server: String,
    pub input: InputConfig,
    pub output: OutputConfig,
    pub state: StateConfig,
    pub detect: DetectConfig,
    pub enrich: crate::enrich::EnrichConfig,
    pub intel: crate::enrich::update::IntelConfig,
    pub store: StoreConfig,
    pub api: crate::api::ApiConfig,
    pub notify: crate::notify::NotifyConfig,
    pub scan: ScanConfig,
    pub proxy: crate::proxy::ProxyConfig,
}

/// `[scan]`: the posture scan (`pgvigil scan`), run by `run` every `interval`; its findings go
/// to the store and `GET /servers/{server}/posture`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// The monitored server, as a monitoring role sees it (`postgres://monitor@host/postgres`;
    /// grants in the README). Unset: no periodic scan.
    pub url: Option<crate::secret::Secret>,
    /// Also trust this CA (PEM) for the server's certificate.
    pub ca_file: Option<PathBuf>,
    pub interval: crate::duration::Span,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            url: None,
            ca_file: None,
            interval: crate::duration::Span::mins(24 * 60),
        }
    }
}

pub use crate::store::StoreConfig;

pub use crate::ingest::StartAt;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Log files or directories to follow. A directory holding `postgresql.conf` (a data
    /// directory, or Debian's `/etc/postgresql/15/main`) is followed through its settings.
    /// Default: the usual Debian and RedHat places.
    pub paths: Vec<PathBuf>,
    /// `stderr`, `csvlog` or `jsonlog`; default: detected per file.
    pub format: Option<LogFormat>,
    /// The server's `log_line_prefix`, for stderr logs. Default: read from `postgresql.conf`
    /// when known, else guessed from the first lines.
    pub log_line_prefix: Option<String>,
    /// `beginning` or `end`, for files present at the very first start.
    pub start_at: StartAt,
    /// How often to look for new lines and new files.
    pub poll_interval: Span,
    /// A file renamed or deleted away (logrotate) is read until it has been quiet this long:
    /// the server may write to it until it is told to reopen its log. A file of the followed
    /// names quiet this long is closed, and opened again when it grows.
    pub rotated_grace: Span,
    /// A log entry (a line, a csv record) longer than this is skipped and counted, with its
    /// file and line: one runaway line must not take the memory.
    pub max_entry_bytes: u64,
    /// Follow the systemd journal of this unit (`postgresql@15-main`), or journal match
    /// (`SYSLOG_IDENTIFIER=postgres`), instead of `paths`: PostgreSQL started by systemd
    /// without a logging collector. The journal's cursor is the checkpoint.
    pub journal: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Print each alert (new or updated) to stdout as a JSON line; `false` prints a
    /// one-line human summary instead.
    pub json: bool,
    /// Also append each alert as a JSON line to this file.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Where checkpoints (file positions and detector state) are kept.
    pub dir: PathBuf,
    /// The whole detector state is saved at most this often, and only once at least as much
    /// log was read since as the last checkpoint weighed (so that checkpoints never write more
    /// than the log itself): alerts are stored as they come, and after a crash the log since
    /// the last checkpoint is read again, its alerts folding into the stored ones.
    pub checkpoint_interval: Span,
    /// …but at least this often when anything was read, which bounds how old the positions
    /// to resume from can be (the files they name may be rotated away and deleted)…
    pub checkpoint_max_interval: Span,
    /// …and at least every this many bytes of log read, which bounds what is read again.
    pub checkpoint_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: crate::notify::hostname(),
            input: InputConfig::default(),
            output: OutputConfig::default(),
            state: StateConfig::default(),
            detect: DetectConfig::default(),
            enrich: crate::enrich::EnrichConfig::default(),
            intel: crate::enrich::update::IntelConfig::default(),
            store: StoreConfig::default(),
            api: crate::api::ApiConfig::default(),
            notify: crate::notify::NotifyConfig::default(),
            scan: ScanConfig::default(),
            proxy: crate::proxy::ProxyConfig::default(),
        }
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            paths: Vec::new(),
            format: None,
            log_line_prefix: None,
            start_at: StartAt::End,
            poll_interval: Span(200),
            rotated_grace: Span(30_000),
            max_entry_bytes: 8 << 20,
            journal: None,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            json: true,
            file: None,
        }
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        // Under systemd, the unit's StateDirectory= (the first one) is where state goes.
        let systemd = std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| v.to_str()?.split(':').next().map(PathBuf::from))
            .filter(|p| p.is_absolute());
        let dir = if let Some(d) = systemd {
            d
        } else if nix_is_root() {
            PathBuf::from("/var/lib/pgvigil")
        } else {
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(|| PathBuf::from("."))
                .join("pgvigil")
        };
        StateConfig {
            dir,
            checkpoint_interval: Span(10_000),
            checkpoint_max_interval: Span(15 * 60_000),
            checkpoint_bytes: 64 << 20,
        }
    }
}

fn nix_is_root() -> bool {
    // /proc/self is owned by the process's user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

impl Config {
    /// Where `intel update` writes and lookups look first.
    pub fn intel_dir(&self) -> PathBuf {
        self.intel
            .dir
            .clone()
            .unwrap_or_else(|| self.state.dir.join("intel"))
    }

    /// The store's file.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.state.dir.join("pgvigil.db"))
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        c.detect
            .validate()
            .and_then(|_| c.proxy.validate())
            .map_err(|error| ConfigError::Setting {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_toml(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pgvigil.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = Config::from_toml(&text, &path).unwrap();
        assert_eq!(c.detect.brute_force.failures, 10);
        assert_eq!(c.server, "db1");
        assert_eq!(c.detect.profile.look_back, "60d".parse().unwrap());
        assert_eq!(c.detect.impossible_travel.max_speed_kmh, 1000.0);
        assert_eq!(c.intel.max_bytes, 512 << 20);
    }

    #[test]
    fn a_quiet_period_shorter_than_the_heartbeat_is_refused() {
        let e = Config::from_toml("[detect]\nquiet_period = \"5m\"\n", Path::new("x.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("quiet_period"), "{e}");
    }

    #[test]
    fn unknown_options_are_named() {
        let e = Config::from_toml("[detect.brute_force]\nfailurez = 3\n", Path::new("x.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("failurez"), "{e}");
        assert!(e.to_string().contains("x.toml"), "{e}");
    }
}
