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
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
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
        out.insert(name, value);
    }
    out
}

impl PgConf {
    /// Reads a directory holding `postgresql.conf` (a data directory, or Debian's
    /// `/etc/postgresql/<version>/<cluster>`). `None` if there is none.
    pub fn read_dir(dir: &Path) -> Result<Option<PgConf>, SourceError> {
        let main = dir.join("postgresql.conf");
        if !main.is_file() {
            return Ok(None);
        }
        let mut settings = HashMap::new();
        for f in [main, dir.join("postgresql.auto.conf")] {
            if f.is_file() {
                let text = std::fs::read_to_string(&f).map_err(|e| SourceError::io(&f, e))?;
                settings.extend(parse(&text));
            }
        }
        Ok(Some(PgConf {
            settings,
            dir: dir.to_path_buf(),
        }))
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

    /// Where this server's logs are: `log_directory` under the data directory when the logging
    /// collector is on; Debian's `/var/log/postgresql/postgresql-<version>-<cluster>.log*`
    /// otherwise.
    pub fn log_locations(&self) -> Vec<PathBuf> {
        let data_dir = self
            .get("data_directory")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.clone());
        if self.on("logging_collector") {
            let d = PathBuf::from(self.get("log_directory").unwrap_or("log"));
            return vec![if d.is_absolute() { d } else { data_dir.join(d) }];
        }
        // Debian: /etc/postgresql/15/main → /var/log/postgresql/postgresql-15-main.log
        let parts: Vec<&str> = self.dir.iter().filter_map(|c| c.to_str()).collect();
        if parts.len() >= 4 && parts[parts.len() - 3] == "postgresql" && parts[1] == "etc" {
            let ver = parts[parts.len() - 2];
            let cluster = parts[parts.len() - 1];
            return vec![PathBuf::from(format!(
                "/var/log/postgresql/postgresql-{ver}-{cluster}.log"
            ))];
        }
        Vec::new()
    }
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
