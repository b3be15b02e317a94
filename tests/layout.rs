//! Debian's layout, made as `pg_createcluster` makes it and run by a real PostgreSQL 15: the
//! configuration in etc/postgresql/15/main (with conf.d and the data directory's
//! postgresql.auto.conf), the data in var/lib/postgresql/15/main, the server's stderr in
//! var/log/postgresql/postgresql-15-main.log. `analyze` pointed at the data directory and
//! `run` with no paths find the logs and their prefix there.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::*;

struct Debian {
    root: tempfile::TempDir,
    conf: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    bin: PathBuf,
    running: bool,
}

/// Runs `cmd` to a successful end: its standard output.
fn ok(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&ran(cmd, "coreutils and postgresql-15").stdout).into_owned()
}

impl Debian {
    fn start() -> Debian {
        let bin = pg_bin();
        let root = tempfile::Builder::new()
            .prefix("pgvigil-debian-")
            .tempdir()
            .unwrap();
        let r = root.path();
        let conf = r.join("etc/postgresql/15/main");
        let data = r.join("var/lib/postgresql/15/main");
        let logdir = r.join("var/log/postgresql");
        for d in [&conf.join("conf.d"), &data, &logdir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let log = logdir.join("postgresql-15-main.log");
        std::fs::write(&log, "").unwrap();
        let pw = r.join("pw");
        std::fs::write(&pw, SUPERUSER_PASSWORD).unwrap();
        if is_root() {
            ok(Command::new("chown").args(["-R", "postgres"]).arg(r));
            ok(Command::new("chmod").arg("0700").arg(&data));
        }
        ok(pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth-host=scram-sha-256"])
            .args(["--auth-local=trust", "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pw.display())));
        // As pg_createcluster: the configuration files move to /etc.
        for f in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
            std::fs::rename(data.join(f), conf.join(f)).unwrap();
        }
        let port = free_port();
        let mut c = std::fs::read_to_string(conf.join("postgresql.conf")).unwrap();
        c.push_str(&format!(
            "data_directory = '{}'\nhba_file = '{}'\nident_file = '{}'\n\
             listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             log_line_prefix = '%m [%p] %q%u@%d '\nlog_timezone = 'UTC'\n\
             include_dir = 'conf.d'\n",
            data.display(),
            conf.join("pg_hba.conf").display(),
            conf.join("pg_ident.conf").display(),
            r.display(),
        ));
        std::fs::write(conf.join("postgresql.conf"), c).unwrap();
        std::fs::write(
            conf.join("conf.d/10-logging.conf"),
            "log_connections = on\nlog_disconnections = on\nlc_messages = 'C'\n",
        )
        .unwrap();
        std::fs::write(
            conf.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.0/8 scram-sha-256\n",
        )
        .unwrap();
        if is_root() {
            ok(Command::new("chown").args(["-R", "postgres"]).arg(r));
        }
        // As pg_ctlcluster: pg_ctl on the configuration directory, stderr to the log.
        ok(pg_command(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&conf)
            .args(["-w", "-t", "60", "start", "-l"])
            .arg(&log));
        let d = Debian {
            root,
            conf,
            data,
            log,
            port,
            bin,
            running: true,
        };
        d.psql(&format!("CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'"));
        d
    }

    fn psql(&self, sql: &str) -> String {
        ok(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.root.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-c", sql]))
    }

    /// Stopped and started again on an empty log, so that every line is written with the
    /// settings in force now.
    fn restart_on_a_new_log(&mut self) {
        self.stop();
        std::fs::write(&self.log, "").unwrap();
        if is_root() {
            ok(Command::new("chown").arg("postgres").arg(&self.log));
        }
        ok(pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.conf)
            .args(["-w", "-t", "60", "start", "-l"])
            .arg(&self.log));
        self.running = true;
    }

    fn stop(&mut self) {
        if self.running {
            ok(pg_command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.conf)
                .args(["-w", "-m", "fast", "stop"]));
            self.running = false;
        }
    }
}

impl Drop for Debian {
    fn drop(&mut self) {
        if self.running {
            let _ = pg_command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.conf)
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}

/// Twelve wrong passwords for `app` from 127.0.0.7, at a tool's pace.
fn brute_force(port: u16) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..12 {
            let ok = login(
                "127.0.0.7",
                port,
                "app",
                &format!("guess{i}"),
                "postgres",
                None,
            )
            .await;
            assert!(!ok);
        }
    });
}

#[test]
fn analyze_a_debian_data_directory_and_run_with_no_paths() {
    let mut pg = Debian::start();
    // ALTER SYSTEM writes postgresql.auto.conf in the data directory, which wins over
    // /etc: the prefix pgvigil must use is this one, with the client's address.
    pg.psql("ALTER SYSTEM SET log_line_prefix = '%m [%p] %q%u@%d %h '");
    // A reload would leave lines of both prefixes (a backend ending writes with the old one).
    pg.restart_on_a_new_log();
    brute_force(pg.port);
    pg.stop();
    let root = pg.root.path().as_os_str().to_owned();
    let log = std::fs::read_to_string(&pg.log).unwrap();
    assert!(
        log.contains("app@postgres 127.0.0.7 FATAL:  password authentication failed"),
        "the server logs with the auto.conf prefix: {log}"
    );

    // analyze, given the data directory (as the README's example does).
    let out = pgvigil()
        .env("PGVIGIL_HOST_ROOT", &root)
        .args(["analyze", "--json", "--no-progress", "--no-enrich"])
        .arg(&pg.data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        !stderr.contains("could not be read"),
        "every line read: {stderr}"
    );
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !find(&alerts, "PostgreSQL_BruteForce", "127.0.0.7").is_empty(),
        "{stdout}"
    );

    // run, given nothing: it finds the cluster, says which logs and prefix it uses.
    let state = tempfile::tempdir().unwrap();
    let runner = Runner::spawn_env(
        &[
            "run".as_ref(),
            "--api-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--start-at".as_ref(),
            "beginning".as_ref(),
            "--state-dir".as_ref(),
            state.path().as_os_str(),
        ],
        &[("PGVIGIL_HOST_ROOT", &root)],
    );
    let (_, found) = runner.until(std::time::Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["entities"]["sourceIp"] == "127.0.0.7"
    });
    let said = runner.log();
    assert!(found, "run raised the brute force: {said}");
    let line = said
        .lines()
        .find(|l| l.contains("following the cluster's logs"))
        .unwrap_or_else(|| panic!("run says what it follows: {said}"));
    assert!(
        line.contains("etc/postgresql/15/main")
            && line.contains("var/log/postgresql/postgresql-15-main.log")
            && line.contains("%m [%p] %q%u@%d %h"),
        "{line}"
    );
}

#[test]
fn includes_are_read_in_order_and_the_last_value_wins() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("etc/postgresql/16/reports");
    std::fs::create_dir_all(conf.join("conf.d")).unwrap();
    std::fs::write(
        conf.join("postgresql.conf"),
        "log_line_prefix = '%t '\ninclude_dir 'conf.d'\ninclude_if_exists = 'missing.conf'\n\
         include 'last.conf'\n",
    )
    .unwrap();
    std::fs::write(
        conf.join("conf.d/01.conf"),
        "logging_collector = on\nlog_directory = 'a'\n",
    )
    .unwrap();
    std::fs::write(conf.join("conf.d/02.conf"), "log_directory = 'pg_log'\n").unwrap();
    std::fs::write(conf.join("conf.d/.hidden.conf"), "log_directory = 'no'\n").unwrap();
    std::fs::write(conf.join("last.conf"), "log_line_prefix = '%m [%p] '\n").unwrap();
    let c = pgvigil::sources::pgconf::PgConf::read_dir(&conf)
        .unwrap()
        .unwrap();
    assert_eq!(c.get("log_line_prefix"), Some("%m [%p] "));
    assert_eq!(c.log_locations(), vec![conf.join("pg_log")]);
    assert_eq!(
        pgvigil::sources::pgconf::clusters_under(dir.path()),
        vec![conf.clone()]
    );
    // A missing `include` is an error naming the file.
    std::fs::write(conf.join("last.conf"), "include 'gone.conf'\n").unwrap();
    let e = pgvigil::sources::pgconf::PgConf::read_dir(&conf).unwrap_err();
    assert!(e.to_string().contains("gone.conf"), "{e}");
}
