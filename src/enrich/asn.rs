//! ASN ranges: `first_ip,last_ip,asn,organisation` (RouteViews/DB-IP/NRO as merged by
//! ip-location-db), plain or gzip'd, IPv4 and IPv6.

use super::EnrichError;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Default)]
pub struct AsnRanges {
    v4: Vec<(u32, u32, u32, Arc<str>)>,
    v6: Vec<(u128, u128, u32, Arc<str>)>,
    /// For each /16, where its ranges start in `v4`: a lookup searches a few entries instead
    /// of the whole table (an uncached lookup per new attacking address adds up).
    v4_index: Vec<u32>,
}

type Part = (
    Vec<(u32, u32, u32, Arc<str>)>,
    Vec<(u128, u128, u32, Arc<str>)>,
);

/// One file's ranges, IPv4 and IPv6, organisation names shared.
fn load_file(path: &Path) -> Result<Part, EnrichError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut orgs: FxHashMap<Box<str>, Arc<str>> = FxHashMap::default();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(open_text(path)?);
    let bad = |line: usize, reason: String| EnrichError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut rec = csv::StringRecord::new();
    let mut line = 0;
    loop {
        line += 1;
        match rdr.read_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(bad(line, e.to_string())),
        }
        if rec.len() < 3 {
            return Err(bad(
                line,
                format!(
                    "expected first_ip,last_ip,asn,organisation, found {} fields",
                    rec.len()
                ),
            ));
        }
        let (Ok(a), Ok(b)) = (rec[0].parse::<IpAddr>(), rec[1].parse::<IpAddr>()) else {
            if line == 1 && rec[0].chars().any(|c| c.is_ascii_alphabetic()) && !rec[0].contains(':')
            {
                continue; // a header line
            }
            return Err(bad(
                line,
                format!("{:?} or {:?} is not an IP address", &rec[0], &rec[1]),
            ));
        };
        let asn: u32 = rec[2]
            .trim_start_matches("AS")
            .parse()
            .map_err(|_| bad(line, format!("{:?} is not an AS number", &rec[2])))?;
        let org_name = rec.get(3).unwrap_or("");
        let org = match orgs.get(org_name) {
            Some(o) => o.clone(),
            None => {
                let o: Arc<str> = Arc::from(org_name);
                orgs.insert(org_name.into(), o.clone());
                o
            }
        };
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => v4.push((a.into(), b.into(), asn, org)),
            (a, b) => v6.push((to_u128(a), to_u128(b), asn, org)),
        }
    }
    Ok((v4, v6))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Opens a data file, gzip'd or not (by its magic bytes).
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn std::io::Read>, EnrichError> {
    crate::sources::file::open(path)
        .map(|r| r as Box<dyn std::io::Read>)
        .map_err(|e| match e {
            crate::sources::SourceError::Io { source, .. } => EnrichError::io(path, source),
            other => EnrichError::Format {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })
}

impl AsnRanges {
    /// Loads the files, each on a thread of its own (start-up time: the IPv4 and IPv6 tables
    /// are read side by side).
    pub fn load(paths: &[PathBuf]) -> Result<AsnRanges, EnrichError> {
        let parts: Vec<Result<Part, EnrichError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .iter()
                .map(|p| scope.spawn(move || load_file(p)))
                .collect();
            handles
                .into_iter()
                .zip(paths)
                .map(|(h, p)| {
                    h.join().unwrap_or_else(|_| {
                        Err(EnrichError::Format {
                            path: p.clone(),
                            reason: "its reader failed".into(),
                        })
                    })
                })
                .collect()
        });
        let mut r = AsnRanges::default();
        for part in parts {
            let (v4, v6) = part?;
            r.v4.extend(v4);
            r.v6.extend(v6);
        }
        r.v4.sort_by_key(|x| x.0);
        r.v6.sort_by_key(|x| x.0);
        r.v4_index = (0..=65536u64)
            .map(|hi| {
                let start = (hi << 16).min(u64::from(u32::MAX) + 1);
                r.v4.partition_point(|x| u64::from(x.0) < start) as u32
            })
            .collect();
        Ok(r)
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<(u32, &str)> {
        fn find<K: Ord + Copy>(v: &[(K, K, u32, Arc<str>)], k: K) -> Option<(u32, &str)> {
            let i = v.partition_point(|x| x.0 <= k);
            let (start, end, asn, org) = v.get(i.checked_sub(1)?)?;
            (*start <= k && k <= *end && *asn != 0).then_some((*asn, org.as_ref()))
        }
        let v4 = |a: u32| {
            if self.v4_index.len() != 65537 {
                return find(&self.v4, a);
            }
            // The range holding `a` starts in its /16 or is the last one before it.
            let hi = (a >> 16) as usize;
            let lo = (self.v4_index[hi] as usize).saturating_sub(1);
            let end = self.v4_index[hi + 1] as usize;
            find(&self.v4[lo..end], a)
        };
        match ip {
            IpAddr::V4(a) => v4(u32::from(a)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(a) => v4(u32::from(a)),
                None => find(&self.v6, u128::from(v6)),
            },
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("asn.csv");
        std::fs::write(
            &p,
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n2001:db8::,2001:db8::ffff,64500,Doc\n",
        )
        .unwrap();
        let a = AsnRanges::load(std::slice::from_ref(&p)).unwrap();
        assert_eq!(
            a.lookup("1.0.0.9".parse().unwrap()),
            Some((13335, "Cloudflare, Inc."))
        );
        assert_eq!(a.lookup("1.0.1.0".parse().unwrap()), None);
        assert_eq!(
            a.lookup("2001:db8::7".parse().unwrap()),
            Some((64500, "Doc"))
        );
        std::fs::write(&p, "1.0.0.0,1.0.0.255,13335,x\nnot,an,entry\n").unwrap();
        let e = AsnRanges::load(&[p]).err().unwrap().to_string();
        assert!(e.contains("asn.csv:2"), "{e}");
    }
}
