//! The fuzz targets' bodies on stable Rust: mutations of the real fixtures (bytes flipped,
//! lines cut, garbage spliced in) and random bytes. `cargo fuzz run <target>` (nightly)
//! explores far more; this keeps the bodies honest in every CI run.

use pgvigil::fuzzing::{parse_any, prefix_any};
use pgvigil::sources::LogFormat;
use std::path::Path;

use pgvigil::rng::Rng;

fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + below(rng, 8) {
        if v.is_empty() {
            break;
        }
        let i = below(rng, v.len());
        match below(rng, 5) {
            0 => v[i] = rng.next_u64() as u8,
            1 => v.truncate(i),
            2 => {
                let junk: Vec<u8> = (0..below(rng, 64)).map(|_| rng.next_u64() as u8).collect();
                v.splice(i..i, junk);
            }
            3 => v.insert(i, [b'"', b'\n', b'\t', b',', b'{', b'\\'][below(rng, 6)]),
            _ => {
                let j = (i + below(rng, 200)).min(v.len());
                v.drain(i..j);
            }
        }
    }
    v
}

#[test]
fn parsers_and_pipeline_survive_mutated_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for (dir, ext, format) in [
        ("stderr", "log", LogFormat::Stderr),
        ("csvlog", "csv", LogFormat::Csvlog),
        ("jsonlog", "json", LogFormat::Jsonlog),
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if e.path().extension().and_then(|x| x.to_str()) != Some(ext) {
                continue;
            }
            let base = std::fs::read(e.path()).unwrap();
            parse_any(format, &base);
            for _ in 0..60 {
                let m = mutate(&mut rng, &base);
                // Each format's parser also gets the other formats' bytes.
                parse_any(format, &m);
                parse_any(LogFormat::Stderr, &m);
            }
        }
    }
}

#[test]
fn random_bytes_and_prefixes() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let n = below(&mut rng, 300);
        let data: Vec<u8> = (0..n)
            .map(|_| {
                let b = rng.next_u64() as u8;
                // Lean towards the bytes that matter to the parsers.
                match b % 4 {
                    0 => b"%mptudahrce\"\n\t :,[]{}"[below(&mut rng, 21)],
                    _ => b,
                }
            })
            .collect();
        prefix_any(&data);
        parse_any(LogFormat::Stderr, &data);
        parse_any(LogFormat::Csvlog, &data);
        parse_any(LogFormat::Jsonlog, &data);
    }
}

/// The proxy's packet parsers on random packets, and on startup packets with random changes.
#[test]
fn proxy_packets() {
    let mut rng = Rng(7);
    let base: Vec<u8> = pgvigil::proxy::protocol::Startup {
        protocol: pgvigil::proxy::protocol::PROTOCOL_3_0,
        params: vec![
            ("user".into(), "app".into()),
            ("database".into(), "appdb".into()),
        ],
        raw: Vec::new(),
    }
    .encode();
    for _ in 0..5000 {
        let n = below(&mut rng, 80);
        let random: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        pgvigil::fuzzing::proxy_packet_any(&random);
        pgvigil::fuzzing::proxy_packet_any(&mutate(&mut rng, &base));
    }
}
