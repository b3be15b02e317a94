//! The Debian package: built by `cargo deb` around the binary under test, installed with
//! `dpkg -i` (as root), run, its units verified, then purged.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `cargo deb`, with the binary under test in place of a release build.
fn build_package(dir: &Path) -> PathBuf {
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_pgvigil"),
        target.join("release/pgvigil"),
    )
    .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let available = Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "cargo-deb is not installed: cargo install cargo-deb --locked (./test installs it)"
    );
    let out = dir.join("out");
    run(Command::new(&cargo)
        .args(["deb", "--no-build", "--no-dbgsym", "--fast", "-o"])
        .arg(&out)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("no .deb made")
}

#[test]
fn the_package_installs_runs_and_its_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path());
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/pgvigil",
        "./etc/pgvigil/pgvigil.toml",
        "./usr/lib/systemd/system/pgvigil.service",
        "./usr/lib/systemd/system/pgvigil-api.service",
        "./usr/lib/systemd/system/pgvigil-proxy.service",
        "./usr/lib/sysusers.d/pgvigil.conf",
        "./usr/share/pgvigil/iptoasn-country.mmdb",
        "./usr/share/pgvigil/grafana/pgvigil.json",
    ] {
        assert!(
            contents.contains(path),
            "{path} not in the package:\n{contents}"
        );
    }
    let info = run(Command::new("dpkg-deb").arg("--field").arg(&deb));
    assert!(info.contains("Package: pgvigil"), "{info}");
    assert!(info.contains("adduser"), "{info}");

    if !is_root() {
        eprintln!("skipped installing the package: dpkg -i needs root");
        return;
    }
    let installed_before = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "pgvigil"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"));
    if installed_before {
        eprintln!("skipped installing the package: a pgvigil package is installed here already");
        return;
    }
    run(Command::new("dpkg").arg("-i").arg(&deb));
    // Whatever fails below, the package goes again.
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["--purge", "pgvigil"]).output();
        }
    }
    let _purge = Purge;

    let version = run(Command::new("/usr/bin/pgvigil").arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    // Its own user, able to read Debian's PostgreSQL logs; the configuration readable by it
    // and by root alone.
    let groups = run(Command::new("id").args(["-nG", "pgvigil"]));
    assert!(
        groups.split_whitespace().any(|g| g == "adm"),
        "pgvigil is not in group adm: {groups}"
    );
    let conf = std::fs::metadata("/etc/pgvigil/pgvigil.toml").unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&conf.permissions()) & 0o777,
        0o640
    );
    let group = run(Command::new("stat").args(["-c", "%G", "/etc/pgvigil/pgvigil.toml"]));
    assert_eq!(group.trim(), "pgvigil");
    // The installed configuration is one pgvigil reads: a real log analysed with it finds
    // its brute force (exit status 1: alerts).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stderr/hydra.log");
    let out = Command::new("/usr/bin/pgvigil")
        .args(["analyze", "--json", "-c", "/etc/pgvigil/pgvigil.toml"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PostgreSQL_BruteForce"));
    for unit in [
        "pgvigil.service",
        "pgvigil-api.service",
        "pgvigil-proxy.service",
    ] {
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(Path::new("/usr/lib/systemd/system").join(unit)));
    }

    drop(_purge);
    assert!(!Path::new("/usr/bin/pgvigil").exists(), "purged");
    let user = Command::new("getent")
        .args(["passwd", "pgvigil"])
        .output()
        .unwrap();
    assert!(!user.status.success(), "the user stays after purge");
}
