//! Prints how long loading the shipped enrichment data takes and a few lookups per second.
fn main() {
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
