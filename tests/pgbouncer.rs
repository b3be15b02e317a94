//! PgBouncer (the Debian package) in front of a real cluster: PgBouncer checks the passwords,
//! so hydra's guesses and the clients' real addresses are in PgBouncer's log only, and the
//! server's log sees PgBouncer's pooled connections. `pgvigil run` follows both.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use support::*;

fn pgbouncer_bin() -> PathBuf {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            let out = Command::new("sh")
                .args(["-c", "command -v pgbouncer"])
                .output()
                .ok()?;
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!p.is_empty()).then(|| PathBuf::from(p))
        })
        .expect("pgbouncer is not installed: apt-get install -y pgbouncer")
}

/// A PgBouncer in front of `cl`, checking SCRAM passwords from an `auth_file` made of the
/// server's own secrets, writing its log to `log`.
struct Bouncer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Bouncer {
    fn start(cl: &Cluster, log: &Path) -> Bouncer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let users = cl.psql(
            "SELECT string_agg(format('%s %s', quote_ident(rolname), quote_ident(rolpassword)), E'\\n') \
             FROM pg_authid WHERE rolname IN ('app', 'alice')",
        );
        // quote_ident gives "name"; the auth_file wants both fields in double quotes.
        let users: String = users
            .lines()
            .map(|l| {
                let (u, p) = l.split_once(' ').unwrap();
                let q = |s: &str| format!("\"{}\"", s.trim_matches('"'));
                format!("{} {}\n", q(u), q(p))
            })
            .collect();
        std::fs::write(dir.path().join("users.txt"), users).unwrap();
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
                 listen_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\n\
                 auth_file = {}\nlogfile = {}\npidfile = {}\npool_mode = transaction\n",
                cl.port,
                dir.path().join("users.txt").display(),
                log.display(),
                dir.path().join("pgbouncer.pid").display()
            ),
        )
        .unwrap();
        give_to_postgres(dir.path());
        // PgBouncer refuses to run as root, as PostgreSQL does.
        let child = pg_command(&pgbouncer_bin())
            .arg("-q")
            .arg(dir.path().join("pgbouncer.ini"))
            .spawn()
            .expect("pgbouncer is not installed: apt-get install -y pgbouncer");
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < end,
                "pgbouncer did not listen on {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Bouncer { child, port, dir }
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // PgBouncer itself, whatever runs it (runuser, as root).
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hydra_through_pgbouncer_is_caught_with_its_real_address_and_typists_are_not() {
    let cl = Cluster::start(ClusterOptions::default());
    cl.psql("CREATE ROLE alice LOGIN PASSWORD 'Wonder-land-42'");
    let log = cl.log_dir.join("pgbouncer.log");
    let bouncer = Bouncer::start(&cl, &log);
    let detect = "[detect.brute_force]\nwindow = \"3s\"\n";
    let setup = RunSetup::new(&cl.log_dir, detect);
    let runner = setup.start();
    wait_ready(&setup.state);

    // People: the application from 127.0.0.5, alice from 127.0.0.6 with one typo.
    assert!(
        login(
            "127.0.0.5",
            bouncer.port,
            "app",
            APP_PASSWORD,
            "appdb",
            None
        )
        .await
    );
    assert!(
        !login(
            "127.0.0.6",
            bouncer.port,
            "alice",
            "Wonder-land-24",
            "appdb",
            None
        )
        .await
    );
    assert!(
        login(
            "127.0.0.6",
            bouncer.port,
            "alice",
            "Wonder-land-42",
            "appdb",
            None
        )
        .await
    );

    let words = setup.dir.path().join("words");
    std::fs::write(
        &words,
        "password\n123456\nqwerty\nletmein\nwelcome\nWonder-land-42\n",
    )
    .unwrap();
    let found = hydra(bouncer.port, "alice", &words, 4);
    assert!(found.contains("password: Wonder-land-42"), "hydra: {found}");

    let (mut seen, caught) = runner.until(Duration::from_secs(30), |a| {
        a["alertType"] == "PostgreSQL_BruteForce" && a["evidence"]["successfulPrincipal"] == "alice"
    });
    let pgb = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        caught,
        "no successful brute force: {seen:#?}\n{pgb}\n{}",
        runner.log()
    );
    // Every failure once: those PgBouncer logged for hydra's address, none from the server's
    // log of PgBouncer's own connections.
    let failures = pgb
        .lines()
        .filter(|l| l.contains("@127.0.0.1:") && l.ends_with(" password authentication failed"))
        .count();
    // A failure still in flight when the success came back (hydra's parallel tasks) joins
    // the alert when the incident closes: the window after its last failure, at the next
    // sweep (every 30 s at most). Then a little longer, for a count that would overshoot.
    let counted = |a: &serde_json::Value| {
        a["alertType"] == "PostgreSQL_BruteForce"
            && a["evidence"]["failedLogins"]
                .as_u64()
                .is_some_and(|n| n >= failures as u64)
    };
    if !seen.iter().any(counted) {
        let (more, _) = runner.until(Duration::from_secs(45), counted);
        seen.extend(more);
    }
    let (more, _) = runner.until(Duration::from_secs(3), |_| false);
    seen.extend(more);
    let last = seen
        .iter()
        .rfind(|a| a["alertType"] == "PostgreSQL_BruteForce")
        .unwrap();
    assert_eq!(last["entities"]["sourceIp"], "127.0.0.1", "{last:#}");
    assert_eq!(
        last["evidence"]["failedLogins"], failures,
        "{last:#}\n{pgb}"
    );
    for a in &seen {
        let src = a["entities"]["sourceIp"].as_str().unwrap_or("");
        assert!(
            src != "127.0.0.5" && src != "127.0.0.6",
            "a person was blamed: {a:#}"
        );
    }
}
