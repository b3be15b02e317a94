//! Enrichment: what is known about a client address — country, city, ASN and organisation
//! (MaxMind DB files, ASN range files), cloud provider and region (the providers' published
//! ranges), and threat intelligence (Tor exits, blocklists). One module per source; every
//! source is loaded once and then only looked up.
//!
//! Private, loopback and link-local addresses are labelled as such and never looked up: no
//! database knows where 10.0.0.7 is, and a guess would be wrong.

pub mod asn;
pub mod cloud;
pub mod geoip;
pub mod prefix_table;
pub mod rdns;
pub mod threat;
pub mod update;

pub use model::place::{classify, AddressClass, Enrichment};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a MaxMind DB file: {reason}")]
    Mmdb { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error(transparent)]
    Config(#[from] model::setting::SettingError),
}

impl EnrichError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        EnrichError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `[enrich]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// Look addresses up at all.
    pub enabled: bool,
    /// The data shipped with pgvigil: a country database, ASN ranges, cloud ranges and Tor
    /// exits. Default: `data/` beside the executable's project, else `/usr/share/pgvigil`.
    /// Files missing here are a warning and that lookup is off.
    pub data_dir: Option<PathBuf>,
    /// More MaxMind DB files, consulted before the shipped one: GeoLite2/GeoIP2 City, Country
    /// or ASN, DB-IP Lite, ip-location-db. A file named here must exist.
    pub mmdb: Vec<PathBuf>,
    /// More ASN range files (`first_ip,last_ip,asn,organisation`, plain or .gz).
    pub asn_ranges: Vec<PathBuf>,
    /// More cloud range files: the shipped CSV layout (`cidr,provider,service,region`), AWS
    /// `ip-ranges.json`, Azure `ServiceTags_Public_*.json`, Google `cloud.json`, Oracle
    /// `public_ip_ranges.json`.
    pub cloud_ranges: Vec<PathBuf>,
    /// A Tor exit list (one address or CIDR a line) instead of the shipped one.
    pub tor_exits: Option<PathBuf>,
    /// Blocklists, one address or CIDR a line; named after their file.
    pub blocklists: Vec<PathBuf>,
    /// Reverse DNS of successful logins' addresses (for PostgreSQL_DomainAnomaly).
    pub reverse_dns: rdns::ReverseDnsConfig,
    /// Where `pgvigil intel update` put fresh copies; preferred to the shipped data.
    /// Default: `<state.dir>/intel` (set by the command line from the state directory).
    pub intel_dir: Option<PathBuf>,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            enabled: true,
            data_dir: None,
            mmdb: Vec::new(),
            asn_ranges: Vec::new(),
            cloud_ranges: Vec::new(),
            tor_exits: None,
            blocklists: Vec::new(),
            reverse_dns: rdns::ReverseDnsConfig::default(),
            intel_dir: None,
        }
    }
}

/// Where the shipped data is when not configured.
pub fn default_data_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/release/pgvigil → the project's data/
        for up in exe.ancestors().skip(1).take(4) {
            candidates.push(up.join("data"));
        }
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data"
    )));
    candidates.push(PathBuf::from("/usr/share/pgvigil"));
    candidates
        .into_iter()
        .find(|d| d.join("iptoasn-country.mmdb").is_file())
}

/// The ASN tables, read when the first public address is looked up: they are most of
/// start-up's time (0.3–0.5 s of both cores) and of an idle `run`'s memory, and a server whose
/// clients are all on private networks never needs them. Their files are opened at start (one
/// that cannot be is an error then); one that turns out malformed is reported when read, with
/// its line, and lookups go on without network names.
struct LazyAsn {
    files: Vec<PathBuf>,
    table: std::sync::OnceLock<Option<asn::AsnRanges>>,
}

impl LazyAsn {
    fn get(&self) -> Option<&asn::AsnRanges> {
        self.table
            .get_or_init(|| match asn::AsnRanges::load(&self.files) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(error = %e, "ASN data not loaded: addresses go without their network's name");
                    None
                }
            })
            .as_ref()
    }
}

/// All sources, loaded (the ASN tables when first needed).
#[derive(Default)]
pub struct Enricher {
    geo: Vec<geoip::MmdbSource>,
    /// The first `own_geo` databases are the user's own: they may map private ranges (an
    /// office's networks), so they are asked about non-public addresses too.
    own_geo: usize,
    asn: Option<LazyAsn>,
    cloud: Option<cloud::CloudRanges>,
    tor: Option<threat::IpList>,
    blocklists: Vec<threat::IpList>,
    /// Reverse DNS, when turned on.
    pub rdns: Option<rdns::ReverseDns>,
    /// Sources that were not found among the shipped data (warnings for the user).
    pub missing: Vec<String>,
}

impl Enricher {
    /// Loads every configured source. A file named in the configuration that cannot be read is
    /// an error naming it; a shipped file that is missing is a warning (`missing`).
    pub fn load(cfg: &EnrichConfig) -> Result<Enricher, EnrichError> {
        let mut e = Enricher::default();
        if !cfg.enabled {
            return Ok(e);
        }
        for p in &cfg.mmdb {
            e.geo.push(geoip::MmdbSource::open(p)?);
        }
        e.own_geo = cfg.mmdb.len();
        let data = cfg.data_dir.clone().or_else(default_data_dir);
        let intel = cfg.intel_dir.clone().filter(|d| d.is_dir());
        let fresh = |name: &str| intel.as_ref().map(|d| d.join(name)).filter(|p| p.is_file());
        let shipped = |name: &str, missing: &mut Vec<String>| -> Option<PathBuf> {
            let p = data.as_ref().map(|d| d.join(name));
            match p {
                Some(p) if p.is_file() => Some(p),
                _ => {
                    missing.push(name.to_string());
                    None
                }
            }
        };
        let country = match fresh("iptoasn-country.mmdb") {
            Some(p) => Some(p),
            None => shipped("iptoasn-country.mmdb", &mut e.missing),
        };
        if let Some(p) = country {
            e.geo.push(geoip::MmdbSource::open(&p)?);
        }
        let mut asn_files: Vec<PathBuf> = cfg.asn_ranges.clone();
        for (fresh_name, shipped_name) in [
            ("asn-ipv4.csv", "asn-ipv4.csv.gz"),
            ("asn-ipv6.csv", "asn-ipv6.csv.gz"),
        ] {
            match fresh(fresh_name) {
                Some(p) => asn_files.push(p),
                None => asn_files.extend(shipped(shipped_name, &mut e.missing)),
            }
        }
        if !asn_files.is_empty() {
            // Read when first needed; a file that cannot be opened is still an error now.
            for p in &asn_files {
                std::fs::File::open(p).map_err(|err| EnrichError::io(p, err))?;
            }
            e.asn = Some(LazyAsn {
                files: asn_files,
                table: std::sync::OnceLock::new(),
            });
        }
        // Fresh provider files first: for a range in both, the first one loaded stays.
        let mut cloud_files: Vec<PathBuf> = cfg.cloud_ranges.clone();
        for name in [
            "aws-ip-ranges.json",
            "google-cloud.json",
            "oracle-public-ip-ranges.json",
            "azure-service-tags.json",
        ] {
            cloud_files.extend(fresh(name));
        }
        cloud_files.extend(shipped("cloud-ranges-2023-11.csv.gz", &mut e.missing));
        if !cloud_files.is_empty() {
            e.cloud = Some(cloud::CloudRanges::load(&cloud_files)?);
        }
        let tor = match (&cfg.tor_exits, fresh("tor-exits.txt")) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(p)) => Some(p),
            (None, None) => shipped("tor-exits-2026-10-05.txt", &mut e.missing),
        };
        if let Some(p) = tor {
            e.tor = Some(threat::IpList::load(&p)?);
        }
        for p in &cfg.blocklists {
            e.blocklists.push(threat::IpList::load(p)?);
        }
        if cfg.reverse_dns.enabled {
            e.rdns = Some(rdns::ReverseDns::new(&cfg.reverse_dns)?);
        }
        Ok(e)
    }

    /// The cloud ranges loaded, if any (the simulator picks addresses from them).
    pub fn cloud_ranges(&self) -> Option<&cloud::CloudRanges> {
        self.cloud.as_ref()
    }

    pub fn lookup(&self, ip: IpAddr) -> Enrichment {
        let class = classify(ip);
        let mut out = Enrichment {
            class: Some(class),
            ..Enrichment::default()
        };
        if class != AddressClass::Public {
            for g in &self.geo[..self.own_geo] {
                g.fill(ip, &mut out);
            }
            return out;
        }
        for g in &self.geo {
            g.fill(ip, &mut out);
        }
        if out.asn.is_none() {
            if let Some((asn, org)) = self
                .asn
                .as_ref()
                .and_then(LazyAsn::get)
                .and_then(|a| a.lookup(ip))
            {
                out.asn = Some(asn);
                out.org = Some(org.to_string());
            }
        }
        if let Some(c) = self.cloud.as_ref().and_then(|c| c.lookup(ip)) {
            out.cloud_provider = Some(c.provider.to_string());
            out.cloud_region = c.region.as_ref().map(|r| r.to_string());
            out.cloud_service = c.service.as_ref().map(|r| r.to_string());
        }
        out.tor_exit = self.tor.as_ref().is_some_and(|t| t.contains(ip));
        out.blocklists = self
            .blocklists
            .iter()
            .filter(|b| b.contains(ip))
            .map(|b| b.name.clone())
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_labelled_not_guessed() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("127.0.0.5"), AddressClass::Loopback);
        assert_eq!(c("10.1.2.3"), AddressClass::Private);
        assert_eq!(c("192.168.0.1"), AddressClass::Private);
        assert_eq!(c("100.64.1.1"), AddressClass::Private);
        assert_eq!(c("169.254.1.1"), AddressClass::LinkLocal);
        assert_eq!(c("::1"), AddressClass::Loopback);
        assert_eq!(c("fd00::1"), AddressClass::Private);
        assert_eq!(c("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(c("::ffff:10.0.0.1"), AddressClass::Private);
        assert_eq!(c("8.8.8.8"), AddressClass::Public);
        assert_eq!(c("2a00:1450::1"), AddressClass::Public);
    }

    /// The ASN tables are read at the first public address: a file that cannot be opened is
    /// refused at start, one that is malformed leaves lookups without network names (the
    /// location and the rest still answer) instead of stopping them.
    #[test]
    fn asn_tables_are_read_when_first_needed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.csv");
        let cfg = |files: Vec<PathBuf>| EnrichConfig {
            data_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data").into()),
            asn_ranges: files,
            ..EnrichConfig::default()
        };
        let err = Enricher::load(&cfg(vec![missing.clone()])).err().unwrap();
        assert!(err.to_string().contains("absent.csv"), "{err}");
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "1.0.0.0,1.0.0.255,13335,Cloudflare\nnot,a,range\n").unwrap();
        let e = Enricher::load(&cfg(vec![bad])).unwrap();
        assert!(
            e.asn.as_ref().unwrap().table.get().is_none(),
            "not read at start"
        );
        let r = e.lookup("10.0.0.1".parse().unwrap());
        assert_eq!(r.class, Some(AddressClass::Private));
        assert!(
            e.asn.as_ref().unwrap().table.get().is_none(),
            "nor for a private address"
        );
        let r = e.lookup("1.0.0.1".parse().unwrap());
        assert_eq!(r.asn, None);
        assert!(r.country.is_some(), "the rest still answers: {r:?}");
    }

    #[test]
    fn shipped_data_answers() {
        let e = Enricher::load(&EnrichConfig {
            data_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data").into()),
            ..EnrichConfig::default()
        })
        .unwrap();
        assert!(e.missing.is_empty(), "{:?}", e.missing);
        let r = e.lookup("1.0.0.1".parse().unwrap());
        assert_eq!(r.asn, Some(13335));
        assert_eq!(r.org.as_deref(), Some("Cloudflare, Inc."));
        let aws = e.lookup("3.0.5.33".parse().unwrap());
        assert_eq!(aws.cloud_provider.as_deref(), Some("AWS"));
        // Longest prefix wins: 3.0.5.32/29 is EC2_INSTANCE_CONNECT inside 3.0.0.0/15 EC2.
        assert_eq!(aws.cloud_service.as_deref(), Some("EC2_INSTANCE_CONNECT"));
        assert_eq!(aws.cloud_region.as_deref(), Some("ap-southeast-1"));
        assert!(e.lookup("2.26.97.42".parse().unwrap()).tor_exit);
        let lo = e.lookup("127.0.0.1".parse().unwrap());
        assert_eq!(
            (lo.class, lo.country.as_deref(), lo.asn),
            (Some(AddressClass::Loopback), None, None)
        );
    }
}
