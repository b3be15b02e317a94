//! A real PostgreSQL cluster in a temporary directory, for pgvigil's tests: its own port on
//! 127.0.0.1, SCRAM passwords, the logging settings a test asks for.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// PostgreSQL's server binaries: `pg_config --bindir`, else Debian's place, else PATH.
pub fn pg_bin() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut candidates: Vec<PathBuf> = from_pg_config.into_iter().collect();
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("bin")).collect();
        v.sort();
        candidates.extend(v.into_iter().rev());
    }
    for c in candidates {
        if c.join("initdb").is_file() && c.join("pg_ctl").is_file() {
            return c;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them: \
         `apt-get install -y postgresql-15` (Debian/Ubuntu) or `dnf install postgresql15-server`, \
         or put their directory on PATH."
    );
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (the server refuses root).
pub fn pg_command(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub data: PathBuf,
    pub log_dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

pub struct ClusterOptions<'a> {
    pub log_line_prefix: &'a str,
    pub log_destination: &'a str,
    pub log_filename: &'a str,
    pub extra: &'a str,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions {
            log_line_prefix: "%m [%p] %q%u@%d ",
            log_destination: "stderr,csvlog,jsonlog",
            log_filename: "postgresql.log",
            extra: "",
        }
    }
}

/// The password of the `postgres` superuser and of `app` in every test cluster.
pub const SUPERUSER_PASSWORD: &str = "Sup3r-secret";
pub const APP_PASSWORD: &str = "apppass";

impl Cluster {
    pub fn start(opts: ClusterOptions<'_>) -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("pgvigil-test-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, SUPERUSER_PASSWORD).unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             logging_collector = on\nlog_destination = '{}'\nlog_directory = 'log'\n\
             log_filename = '{}'\nlog_connections = on\nlog_disconnections = on\n\
             log_line_prefix = '{}'\nlog_timezone = 'UTC'\nlc_messages = 'C'\n\
             password_encryption = 'scram-sha-256'\n{}\n",
            dir.path().display(),
            opts.log_destination,
            opts.log_filename,
            opts.log_line_prefix,
            opts.extra
        );
        let mut c = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        c.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), c).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all md5user 127.0.0.0/8 md5\nhost all all 127.0.0.0/8 scram-sha-256\n",
        )
        .unwrap();
        let mut cl = Cluster {
            log_dir: data.join("log"),
            dir,
            port,
            data,
            bin,
            running: false,
        };
        cl.pg_ctl(
            &["-w", "-t", "60", "start", "-l"],
            Some(&cl.dir.path().join("startup.log")),
        );
        cl.running = true;
        cl.psql(&format!("CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'"));
        cl.psql("CREATE DATABASE appdb OWNER app");
        cl.psql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5pass'");
        cl
    }

    fn pg_ctl(&self, args: &[&str], extra: Option<&Path>) {
        if is_root() {
            if let Some(l) = extra {
                std::fs::write(l, "").unwrap();
                Command::new("chown")
                    .arg("postgres")
                    .arg(l)
                    .status()
                    .unwrap();
            }
        }
        let mut cmd = pg_command(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(&self.data).args(args);
        if let Some(e) = extra {
            cmd.arg(e);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL as the superuser over the unix socket (not logged as a network login).
    pub fn psql(&self, sql: &str) -> String {
        self.psql_db("postgres", sql)
    }

    /// psql as the superuser over the local socket, in database `db`.
    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Restarts the server (a fast shutdown: sessions are ended), as an upgrade or a
    /// failover would.
    pub fn restart(&mut self) {
        self.pg_ctl(
            &["-w", "-t", "60", "-m", "fast", "restart", "-l"],
            Some(&self.dir.path().join("startup.log")),
        );
    }

    /// The server again in the foreground, as in a container or under a systemd unit: no
    /// logging collector, its log on stderr (`stderr`), started through `wrapper` (such as
    /// `systemd-cat -t NAME`; as the `postgres` user when root). Returns once it listens.
    #[allow(dead_code)]
    pub fn foreground(&mut self, wrapper: &[&str], stderr: Stdio) -> std::process::Child {
        self.stop();
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if is_root() {
            argv.extend(["runuser", "-u", "postgres", "--"].map(Into::into));
        }
        argv.extend(wrapper.iter().map(Into::into));
        argv.push(self.bin.join("postgres").into());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        let child = c
            .arg("-D")
            .arg(&self.data)
            .args([
                "-c",
                "logging_collector=off",
                "-c",
                "log_destination=stderr",
            ])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{wrapper:?} postgres: {e}"));
        let mut child = child;
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            // A wrapper that cannot start (no journal to write to) ends at once: say so
            // rather than wait.
            if let Ok(Some(st)) = child.try_wait() {
                panic!("{wrapper:?} postgres ended before the server listened: {st}");
            }
            assert!(
                std::time::Instant::now() < end,
                "the server did not start within 30 s under {wrapper:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child
    }

    /// Stops a server started with [`Cluster::foreground`].
    #[allow(dead_code)]
    pub fn stop_foreground(&self, mut child: std::process::Child) {
        self.pg_ctl(&["-w", "-m", "fast", "stop"], None);
        let _ = child.wait();
    }

    /// Starts a server stopped with [`Cluster::stop`] again.
    #[allow(dead_code)]
    pub fn start_again(&mut self) {
        if !self.running {
            self.pg_ctl(
                &["-w", "-t", "60", "start", "-l"],
                Some(&self.dir.path().join("startup.log")),
            );
            self.running = true;
        }
    }

    /// Stops the server, so every log line is on disk.
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl(&["-w", "-m", "fast", "stop"], None);
            self.running = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = pg_command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
