//! Prints how long loading the shipped enrichment data takes, the memory each part holds
//! once loaded (anonymous RSS, with the allocator `pgvigil` ships with), and a few lookups
//! per second.
//!
//!     cargo run --release --example enrich_load

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Anonymous memory resident now, in KiB.
fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let step = |what: &str, before: u64, t: std::time::Instant| {
        println!(
            "{what:28} {:7.3} s {:8.1} MiB",
            t.elapsed().as_secs_f64(),
            (rss_anon_kib().saturating_sub(before)) as f64 / 1024.0
        );
    };
    let base = rss_anon_kib();
    let (b, t) = (rss_anon_kib(), std::time::Instant::now());
    let geo = pgvigil::enrich::geoip::MmdbSource::open(&data.join("iptoasn-country.mmdb")).unwrap();
    step("country database", b, t);
    let (b, t) = (rss_anon_kib(), std::time::Instant::now());
    let asn = pgvigil::enrich::asn::AsnRanges::load(&[
        data.join("asn-ipv4.csv.gz"),
        data.join("asn-ipv6.csv.gz"),
    ])
    .unwrap();
    step("ASN ranges", b, t);
    let (b, t) = (rss_anon_kib(), std::time::Instant::now());
    let cloud =
        pgvigil::enrich::cloud::CloudRanges::load(&[data.join("cloud-ranges-2023-11.csv.gz")])
            .unwrap();
    step("cloud ranges", b, t);
    println!(
        "{:28} {:9} {:8.1} MiB anonymous ({} ASN ranges)",
        "all",
        "",
        (rss_anon_kib() - base) as f64 / 1024.0,
        asn.len()
    );
    drop((geo, asn, cloud));

    let t = std::time::Instant::now();
    let e = pgvigil::enrich::Enricher::load(&pgvigil::enrich::EnrichConfig::default()).unwrap();
    println!(
        "load: {:.3}s, missing: {:?}",
        t.elapsed().as_secs_f64(),
        e.missing
    );
    let t = std::time::Instant::now();
    let mut n = 0u64;
    for i in 0..1_000_000u32 {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761)));
        n += e.lookup(ip).asn.unwrap_or(0) as u64 & 1;
    }
    println!("1M lookups: {:.3}s ({n})", t.elapsed().as_secs_f64());
}
