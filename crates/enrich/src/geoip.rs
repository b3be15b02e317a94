//! MaxMind DB files: MaxMind GeoLite2/GeoIP2 City, Country and ASN (nested layout), DB-IP
//! Lite, and the flat ip-location-db layout (`country_code`, `city`, `latitude`, …). One
//! reader for all: each record is read for whichever of the fields it has.

use super::{EnrichError, Enrichment};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub struct MmdbSource {
    pub path: PathBuf,
    reader: maxminddb::Reader<Vec<u8>>,
}

#[derive(Deserialize, Default)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum City {
    Name(String),
    Names {
        names: Option<BTreeMap<String, String>>,
    },
}

#[derive(Deserialize, Default)]
struct Loc {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// The fields of every layout pgvigil reads; each file fills some of them.
#[derive(Deserialize, Default)]
struct Record {
    country: Option<Country>,
    registered_country: Option<Country>,
    country_code: Option<String>,
    city: Option<City>,
    location: Option<Loc>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<String>,
    // DB-IP ASN Lite
    asn: Option<u32>,
    as_organization: Option<String>,
}

impl MmdbSource {
    pub fn open(path: &Path) -> Result<MmdbSource, EnrichError> {
        let bytes = std::fs::read(path).map_err(|e| EnrichError::io(path, e))?;
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| EnrichError::Mmdb {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(MmdbSource {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// Fills what `out` does not know yet from this file's record for `ip`.
    pub fn fill(&self, ip: IpAddr, out: &mut Enrichment) {
        let Ok(res) = self.reader.lookup(ip) else {
            return;
        };
        let Ok(Some(r)) = res.decode::<Record>() else {
            return;
        };
        let country = r
            .country
            .and_then(|c| c.iso_code)
            .or(r.country_code)
            .or_else(|| r.registered_country.and_then(|c| c.iso_code));
        if out.country.is_none() {
            out.country = country.filter(|c| !c.is_empty() && c != "None" && c != "ZZ");
        }
        if out.city.is_none() {
            out.city = match r.city {
                Some(City::Name(n)) => Some(n),
                Some(City::Names { names: Some(n) }) => {
                    n.get("en").cloned().or_else(|| n.into_values().next())
                }
                _ => None,
            }
            .filter(|c| !c.is_empty());
        }
        if out.latitude.is_none() {
            let (lat, lon) = match r.location {
                Some(l) => (l.latitude, l.longitude),
                None => (r.latitude, r.longitude),
            };
            out.latitude = lat;
            out.longitude = lon;
        }
        if out.asn.is_none() {
            out.asn = r.autonomous_system_number.or(r.asn).filter(|a| *a != 0);
            out.org = r.autonomous_system_organization.or(r.as_organization);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmdb_writer::Writer;
    use serde::Serialize;

    fn write<T: Serialize>(dir: &Path, name: &str, net: &str, rec: &T) -> PathBuf {
        let mut w = Writer::new("test");
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), rec).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
        p
    }

    #[test]
    fn nested_flat_and_asn_layouts() {
        let dir = tempfile::tempdir().unwrap();
        #[derive(Serialize)]
        struct GeoCity {
            country: BTreeMap<&'static str, &'static str>,
            city: BTreeMap<&'static str, BTreeMap<&'static str, &'static str>>,
            location: BTreeMap<&'static str, f64>,
        }
        let city = write(
            dir.path(),
            "GeoLite2-City.mmdb",
            "203.0.113.0/24",
            &GeoCity {
                country: [("iso_code", "BR")].into(),
                city: [("names", [("en", "São Paulo")].into())].into(),
                location: [("latitude", -23.5), ("longitude", -46.6)].into(),
            },
        );
        #[derive(Serialize)]
        struct Flat {
            country_code: &'static str,
            city: &'static str,
        }
        let flat = write(
            dir.path(),
            "flat.mmdb",
            "198.51.100.0/24",
            &Flat {
                country_code: "DE",
                city: "Berlin",
            },
        );
        #[derive(Serialize)]
        struct Asn {
            autonomous_system_number: u32,
            autonomous_system_organization: &'static str,
        }
        let asn = write(
            dir.path(),
            "GeoLite2-ASN.mmdb",
            "203.0.113.0/24",
            &Asn {
                autonomous_system_number: 64500,
                autonomous_system_organization: "Example Net",
            },
        );

        let mut e = Enrichment::default();
        for p in [&city, &flat, &asn] {
            MmdbSource::open(p)
                .unwrap()
                .fill("203.0.113.9".parse().unwrap(), &mut e);
        }
        assert_eq!(e.country.as_deref(), Some("BR"));
        assert_eq!(e.city.as_deref(), Some("São Paulo"));
        assert_eq!(e.latitude, Some(-23.5));
        assert_eq!(
            (e.asn, e.org.as_deref()),
            (Some(64500), Some("Example Net"))
        );

        let mut e = Enrichment::default();
        MmdbSource::open(&flat)
            .unwrap()
            .fill("198.51.100.1".parse().unwrap(), &mut e);
        assert_eq!(
            (e.country.as_deref(), e.city.as_deref()),
            (Some("DE"), Some("Berlin"))
        );
    }

    #[test]
    fn a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.mmdb");
        std::fs::write(&p, b"this is not a maxmind db").unwrap();
        let e = MmdbSource::open(&p).err().unwrap().to_string();
        assert!(
            e.contains("broken.mmdb") && e.contains("not a MaxMind DB"),
            "{e}"
        );
    }
}
