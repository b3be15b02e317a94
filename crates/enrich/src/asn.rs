//! ASN ranges: `first_ip,last_ip,asn,organisation` (RouteViews/DB-IP/NRO as merged by
//! ip-location-db), plain or gzip'd, IPv4 and IPv6.

use super::EnrichError;
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The ranges of every file, sorted by their start, with their organisations' names kept
/// once each in one string: 16 bytes an IPv4 range and 40 an IPv6 one, where a name beside
/// each range, shared or not, doubled the table and scattered it over the heap.
#[derive(Default)]
pub struct AsnRanges {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
    /// For each /16, where its ranges start in `v4`: a lookup searches a few entries instead
    /// of the whole table (an uncached lookup per new attacking address adds up).
    v4_index: Vec<u32>,
    orgs: Names,
}

/// A range of addresses and its AS; `org` indexes the names. Packed: an IPv6 range takes
/// 40 bytes, not 48.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Range<K> {
    start: K,
    end: K,
    asn: u32,
    org: u32,
}

/// Names, each once, in one string.
#[derive(Default)]
struct Names {
    text: String,
    /// Where name `i` ends in `text` (it starts where `i - 1` ends).
    ends: Vec<u32>,
}

impl Names {
    fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.ends
            .get(i)
            .and_then(|end| self.text.get(start..*end as usize))
            .unwrap_or("")
    }

    fn push(&mut self, name: &str) -> u32 {
        self.text.push_str(name);
        self.ends.push(self.text.len() as u32);
        (self.ends.len() - 1) as u32
    }
}

/// One file's ranges, IPv4 and IPv6, and its organisations' names.
struct Part {
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
    orgs: Names,
}

/// One file's ranges, each organisation's name kept once.
fn load_file(path: &Path) -> Result<Part, EnrichError> {
    let mut part = Part {
        v4: Vec::new(),
        v6: Vec::new(),
        orgs: Names::default(),
    };
    let mut seen: FxHashMap<Box<str>, u32> = FxHashMap::default();
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
        let name = rec.get(3).unwrap_or("");
        let org = match seen.get(name) {
            Some(o) => *o,
            None => {
                let o = part.orgs.push(name);
                seen.insert(name.into(), o);
                o
            }
        };
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => part.v4.push(Range {
                start: a.into(),
                end: b.into(),
                asn,
                org,
            }),
            (a, b) => part.v6.push(Range {
                start: to_u128(a),
                end: to_u128(b),
                asn,
                org,
            }),
        }
    }
    if part.orgs.text.len() > u32::MAX as usize / 2 {
        return Err(bad(line, "organisation names past 2 GiB".into()));
    }
    Ok(part)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Opens a data file, gzip'd or not (by its magic bytes).
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn std::io::Read>, EnrichError> {
    model::gzfile::open(path)
        .map(|r| r as Box<dyn std::io::Read>)
        .map_err(|e| EnrichError::io(path, e))
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
        let parts = parts.into_iter().collect::<Result<Vec<Part>, _>>()?;
        let mut r = AsnRanges::default();
        r.v4.reserve_exact(parts.iter().map(|p| p.v4.len()).sum());
        r.v6.reserve_exact(parts.iter().map(|p| p.v6.len()).sum());
        // The names of all files, each once (the IPv4 and IPv6 files name the same networks).
        let mut global: FxHashMap<&str, u32> = FxHashMap::default();
        let mut orgs = Names::default();
        for part in &parts {
            let ids: Vec<u32> = (0..part.orgs.ends.len() as u32)
                .map(|i| {
                    let name = part.orgs.get(i);
                    *global.entry(name).or_insert_with(|| orgs.push(name))
                })
                .collect();
            let global_org = |org: u32| ids.get(org as usize).copied().unwrap_or(0);
            r.v4.extend(part.v4.iter().map(|x| Range {
                org: global_org(x.org),
                ..*x
            }));
            r.v6.extend(part.v6.iter().map(|x| Range {
                org: global_org(x.org),
                ..*x
            }));
        }
        drop(global);
        orgs.text.shrink_to_fit();
        orgs.ends.shrink_to_fit();
        r.orgs = orgs;
        r.v4.sort_unstable_by_key(|x| x.start);
        r.v6.sort_unstable_by_key(|x| x.start);
        r.v4_index = (0..=65536u64)
            .map(|hi| {
                let start = (hi << 16).min(u64::from(u32::MAX) + 1);
                r.v4.partition_point(|x| u64::from(x.start) < start) as u32
            })
            .collect();
        Ok(r)
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<(u32, &str)> {
        fn find<K: Ord + Copy>(v: &[Range<K>], k: K) -> Option<(u32, u32)> {
            let i = v.partition_point(|x| { x.start } <= k);
            let x = v.get(i.checked_sub(1)?)?;
            let (start, end, asn) = (x.start, x.end, x.asn);
            (start <= k && k <= end && asn != 0).then_some((asn, x.org))
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
        let (asn, org) = match ip {
            IpAddr::V4(a) => v4(u32::from(a)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(a) => v4(u32::from(a)),
                None => find(&self.v6, u128::from(v6)),
            },
        }?;
        Some((asn, self.orgs.get(org)))
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
