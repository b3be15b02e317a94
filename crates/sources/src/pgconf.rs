//! Reading `postgresql.conf` to find the logs and the `log_line_prefix` they were written with,
//! when pgvigil is pointed at a data or configuration directory instead of at log files.

use super::prefix::Prefix;
use super::SourceError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Settings from `postgresql.conf` (and `postgresql.auto.conf`, which wins, as in the server).
#[derive(Debug, Clone, Default)]
pub struct PgConf {
    pub settings: HashMap<String, String>,
    /// The directory the file was read from.
    pub dir: PathBuf,
}

/// Parses the `name = value` lines of a PostgreSQL configuration file.
pub fn parse(text: &str) -> HashMap<String, String> {
    entries(text).collect()
}

/// The `name = value` entries of a configuration file, in order (includes are entries too:
/// their order decides which value wins).
fn entries(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(entry)
}

/// One line's `name = value`; `None` for a blank or comment line.
fn entry(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = line[..name_end].to_ascii_lowercase();
    let mut rest = line[name_end..].trim_start();
    rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let value = if let Some(q) = rest.strip_prefix('\'') {
        // Quoted: '' and \' are quotes inside.
        let mut v = String::new();
        let mut chars = q.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    v.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        v.push(n);
                    }
                }
                c => v.push(c),
            }
        }
        v
    } else {
        rest.split(|c: char| c == '#' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_string()
    };
    Some((name, value))
}

/// Where the host's filesystem is: `/`, or `$PGVIGIL_HOST_ROOT` when pgvigil runs in a
/// container that mounts it elsewhere (`/host`). Cluster discovery looks under it.
pub fn host_root() -> PathBuf {
    std::env::var_os("PGVIGIL_HOST_ROOT")
        .filter(|r| !r.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `include` files nest at most this deep (PostgreSQL's own limit is 10).
const MAX_INCLUDE_DEPTH: usize = 10;

/// Reads `path` and the files it includes into `settings`, later values winning as in the
/// server. `include_if_exists` of a missing file is skipped; a missing `include` is an error.
fn read_into(
    path: &Path,
    settings: &mut HashMap<String, String>,
    depth: usize,
) -> Result<(), SourceError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(SourceError::io(
            path,
            std::io::Error::other("configuration files nested too deeply (an include loop?)"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| SourceError::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for (name, value) in entries(&text) {
        match name.as_str() {
            "include" | "include_if_exists" => {
                let f = base.join(&value);
                if name == "include_if_exists" && !f.is_file() {
                    continue;
                }
                read_into(&f, settings, depth + 1)?;
            }
            "include_dir" => {
                let d = base.join(&value);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
                    .map_err(|e| SourceError::io(&d, e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        let n = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        // As the server: only *.conf, no hidden files, in name order.
                        n.ends_with(".conf") && !n.starts_with('.') && f.is_file()
                    })
                    .collect();
                files.sort();
                for f in files {
                    read_into(&f, settings, depth + 1)?;
                }
            }
            _ => {
                settings.insert(name, value);
            }
        }
    }
    Ok(())
}

impl PgConf {
    /// Reads the configuration of the server whose data or configuration directory `dir` is:
    /// `dir/postgresql.conf` (a data directory as initdb makes it, RHEL's
    /// `/var/lib/pgsql/<v>/data`, or Debian's `/etc/postgresql/<v>/<cluster>`), or, for a
    /// data directory without one (Debian's `/var/lib/postgresql/<v>/<cluster>`), the
    /// `/etc/postgresql/*/*/postgresql.conf` whose `data_directory` it is. Included files are
    /// read, and `postgresql.auto.conf` in the data directory wins. `None` if `dir` is neither.
    pub fn read_dir(dir: &Path) -> Result<Option<PgConf>, SourceError> {
        Self::read_dir_under(dir, &host_root())
    }

    pub fn read_dir_under(dir: &Path, root: &Path) -> Result<Option<PgConf>, SourceError> {
        let main = dir.join("postgresql.conf");
        let conf_dir = if main.is_file() {
            dir.to_path_buf()
        } else if dir.join("PG_VERSION").is_file() {
            match Self::debian_conf_for(dir, root) {
                Some(d) => d,
                None => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let mut settings = HashMap::new();
        read_into(&conf_dir.join("postgresql.conf"), &mut settings, 0)?;
        let data_dir = settings
            .get("data_directory")
            .map(|d| conf_dir.join(d))
            .unwrap_or_else(|| conf_dir.clone());
        let auto = data_dir.join("postgresql.auto.conf");
        if auto.is_file() {
            read_into(&auto, &mut settings, 0)?;
        }
        Ok(Some(PgConf {
            settings,
            dir: conf_dir,
        }))
    }

    /// Debian's configuration directory for the data directory `data`: the cluster whose
    /// `data_directory` is it, as `pg_lsclusters` finds it.
    fn debian_conf_for(data: &Path, root: &Path) -> Option<PathBuf> {
        let want = std::fs::canonicalize(data).ok()?;
        clusters_under(root).into_iter().find(|conf_dir| {
            let mut settings = HashMap::new();
            if read_into(&conf_dir.join("postgresql.conf"), &mut settings, 0).is_err() {
                return false;
            }
            settings
                .get("data_directory")
                .and_then(|d| std::fs::canonicalize(conf_dir.join(d)).ok())
                .is_some_and(|d| d == want)
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// The `log_line_prefix` in force (PostgreSQL's default if unset).
    pub fn prefix(&self) -> Result<Prefix, SourceError> {
        match self.get("log_line_prefix") {
            Some(p) => Prefix::compile(p),
            None => Ok(Prefix::postgres_default()),
        }
    }

    fn on(&self, name: &str) -> bool {
        matches!(
            self.get(name).map(|v| v.to_ascii_lowercase()),
            Some(v) if v == "on" || v == "true" || v == "yes" || v == "1"
        )
    }

    /// The data directory: `data_directory` (relative to the configuration directory, as the
    /// server reads it), else the directory the configuration is in.
    pub fn data_dir(&self) -> PathBuf {
        self.get("data_directory")
            .map(|d| self.dir.join(d))
            .unwrap_or_else(|| self.dir.clone())
    }

    /// Debian's `<version>/<cluster>` when the configuration is in `/etc/postgresql`.
    pub fn debian_cluster(&self) -> Option<(String, String)> {
        let parts: Vec<&str> = self.dir.iter().filter_map(|c| c.to_str()).collect();
        let n = parts.len();
        (n >= 4 && parts[n - 3] == "postgresql" && parts[n - 4] == "etc")
            .then(|| (parts[n - 2].to_string(), parts[n - 1].to_string()))
    }

    /// Where this server's logs are: `log_directory` (relative to the data directory) when the
    /// logging collector is on; Debian's `/var/log/postgresql/postgresql-<version>-<cluster>.log*`
    /// (where `pg_ctlcluster` sends the server's stderr) otherwise.
    pub fn log_locations(&self) -> Vec<PathBuf> {
        if self.on("logging_collector") {
            let d = PathBuf::from(self.get("log_directory").unwrap_or("log"));
            return vec![self.data_dir().join(d)];
        }
        if let Some((ver, cluster)) = self.debian_cluster() {
            // The configuration is in <root>/etc/postgresql/<v>/<c>: the log is in
            // <root>/var/log/postgresql.
            let root = self.dir.ancestors().nth(4).unwrap_or(Path::new("/"));
            return vec![root
                .join("var/log/postgresql")
                .join(format!("postgresql-{ver}-{cluster}.log"))];
        }
        Vec::new()
    }
}

/// The clusters on this host, as `pg_lsclusters` lists Debian's, plus RHEL's and PGDG's
/// data directories: their configuration directories, in name order.
pub fn clusters() -> Vec<PathBuf> {
    clusters_under(&host_root())
}

pub fn clusters_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let subdirs = |d: PathBuf| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Debian and Ubuntu: /etc/postgresql/<version>/<cluster>/postgresql.conf
    for ver in subdirs(root.join("etc/postgresql")) {
        for cluster in subdirs(ver) {
            if cluster.join("postgresql.conf").is_file() {
                out.push(cluster);
            }
        }
    }
    // RHEL, Fedora and PGDG: /var/lib/pgsql/data, /var/lib/pgsql/<version>/data
    let pgsql = root.join("var/lib/pgsql");
    let mut rhel = vec![pgsql.join("data")];
    rhel.extend(subdirs(pgsql).into_iter().map(|v| v.join("data")));
    for d in rhel {
        if d.join("postgresql.conf").is_file() && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_and_comments() {
        let s = parse(
            "# comment\nlog_line_prefix = '%m [%p] %q%u@%d '   # Debian\nlogging_collector on\nlog_directory='it''s'\n",
        );
        assert_eq!(s["log_line_prefix"], "%m [%p] %q%u@%d ");
        assert_eq!(s["logging_collector"], "on");
        assert_eq!(s["log_directory"], "it's");
    }
}
