//! `pgvigil intel update` against a real HTTP server on 127.0.0.1: good downloads are checked
//! and swapped in, bad ones (HTTP error, not the right format, empty) keep the previous copy.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use support::pgvigil;

/// Serves fixed bodies by path, HTTP/1.1, one request per connection.
fn serve(routes: Vec<(&'static str, u16, Vec<u8>)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if r.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).map(|n| n <= 2).unwrap_or(true) {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = routes
                .iter()
                .find(|(p, _, _)| *p == path)
                .map(|(_, s, b)| (*s, b.clone()))
                .unwrap_or((404, b"not found".to_vec()));
            let mut w = stream;
            let _ = write!(
                w,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = w.write_all(&body);
        }
    });
    port
}

#[test]
fn update_swaps_good_files_and_keeps_the_old_copy_of_bad_ones() {
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/iptoasn-country.mmdb");
    let port = serve(vec![
        (
            "/tor",
            200,
            b"# exits\n45.10.20.30\n45.11.0.0/16\n".to_vec(),
        ),
        (
            "/asn",
            200,
            b"45.10.0.0,45.10.255.255,64501,Example Hosting\n".to_vec(),
        ),
        ("/bad.mmdb", 200, b"<html>rate limited</html>".to_vec()),
        ("/empty", 200, Vec::new()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let intel = dir.path().join("intel");
    std::fs::create_dir(&intel).unwrap();
    // A previous, good copy of the country database.
    std::fs::copy(&shipped, intel.join("iptoasn-country.mmdb")).unwrap();
    std::fs::write(intel.join("blocklist.txt"), "192.0.2.1\n").unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let cfg = dir.path().join("pgvigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[intel]\ntimeout = \"10s\"\nsources = [\n\
             {{ file = \"tor-exits.txt\", url = \"{base}/tor\", kind = \"iplist\" }},\n\
             {{ file = \"asn-ipv4.csv\", url = \"{base}/asn\", kind = \"asn\" }},\n\
             {{ file = \"iptoasn-country.mmdb\", url = \"{base}/bad.mmdb\", kind = \"mmdb\" }},\n\
             {{ file = \"blocklist.txt\", url = \"{base}/empty\", kind = \"iplist\" }},\n\
             {{ file = \"aws-ip-ranges.json\", url = \"{base}/gone\", kind = \"cloud\" }},\n]\n"
        ),
    )
    .unwrap();
    let out = pgvigil()
        .args(["intel", "update", "-c"])
        .arg(&cfg)
        .arg("--dir")
        .arg(&intel)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "some sources failed: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("tor-exits.txt: updated (") && stdout.contains("2 addresses"),
        "{stdout}"
    );
    assert!(stdout.contains("asn-ipv4.csv: updated ("), "{stdout}");
    // What happens next is said as it is: the previous copy kept, or none to keep.
    for (file, why, then) in [
        (
            "iptoasn-country.mmdb",
            "not a MaxMind DB",
            "the previous copy is kept",
        ),
        ("blocklist.txt", "no addresses", "the previous copy is kept"),
        ("aws-ip-ranges.json", "404", "there is no previous copy"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file}: {stderr}"));
        assert!(line.contains(why) && line.contains(then), "{line}");
    }
    // The bad download did not replace the good copy; nothing half-written is left.
    assert_eq!(
        std::fs::read(intel.join("iptoasn-country.mmdb")).unwrap(),
        std::fs::read(&shipped).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(intel.join("blocklist.txt")).unwrap(),
        "192.0.2.1\n"
    );
    assert!(!intel.join("aws-ip-ranges.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&intel)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".download"))
        .collect();
    assert!(leftovers.is_empty());

    // Lookups use the fresh copies.
    let e = pgvigil::enrich::Enricher::load(&pgvigil::enrich::EnrichConfig {
        intel_dir: Some(intel.clone()),
        ..Default::default()
    })
    .unwrap();
    let r = e.lookup("45.10.20.30".parse().unwrap());
    assert!(r.tor_exit);
    assert_eq!(
        (r.asn, r.org.as_deref()),
        (Some(64501), Some("Example Hosting"))
    );
    assert!(e.lookup("45.11.9.9".parse().unwrap()).tor_exit);
}
