//! Cloud data centers: provider, region and service of an address, by longest-prefix match
//! over the providers' own published ranges. Reads the CSV shipped with pgvigil
//! (`cidr,provider,service,region`) and the providers' files as they publish them: AWS
//! `ip-ranges.json`, Azure `ServiceTags_Public_*.json`, Google `cloud.json`, Oracle
//! `public_ip_ranges.json`.

use super::prefix_table::PrefixTable;
use super::EnrichError;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct CloudRange {
    pub provider: Arc<str>,
    pub service: Option<Arc<str>>,
    pub region: Option<Arc<str>>,
}

#[derive(Default)]
pub struct CloudRanges {
    table: PrefixTable<CloudRange>,
    names: HashMap<String, Arc<str>>,
}

impl CloudRanges {
    fn name(&mut self, s: &str) -> Option<Arc<str>> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        Some(match self.names.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(s);
                self.names.insert(s.to_string(), a.clone());
                a
            }
        })
    }

    fn add(
        &mut self,
        path: &Path,
        cidr: &str,
        provider: &str,
        service: &str,
        region: &str,
    ) -> Result<(), EnrichError> {
        let net: ipnet::IpNet = cidr.trim().parse().map_err(|_| EnrichError::Format {
            path: path.to_path_buf(),
            reason: format!("{cidr:?} is not a CIDR"),
        })?;
        let r = CloudRange {
            provider: self.name(provider).unwrap_or_else(|| Arc::from("unknown")),
            service: self.name(service),
            region: self.name(region),
        };
        self.table.insert(net.trunc(), r);
        Ok(())
    }

    pub fn load(paths: &[PathBuf]) -> Result<CloudRanges, EnrichError> {
        let mut c = CloudRanges::default();
        for p in paths {
            let mut text = String::new();
            super::asn::open_text(p)?
                .read_to_string(&mut text)
                .map_err(|e| EnrichError::io(p, e))?;
            if text.trim_start().starts_with('{') {
                c.load_json(p, &text)?;
            } else {
                c.load_csv(p, &text)?;
            }
        }
        Ok(c)
    }

    fn load_csv(&mut self, path: &Path, text: &str) -> Result<(), EnrichError> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| EnrichError::Line {
                path: path.to_path_buf(),
                line: i + 2,
                reason: e.to_string(),
            })?;
            if rec.len() < 2 {
                return Err(EnrichError::Line {
                    path: path.to_path_buf(),
                    line: i + 2,
                    reason: "expected cidr,provider,service,region".into(),
                });
            }
            self.add(
                path,
                &rec[0],
                &rec[1],
                rec.get(2).unwrap_or(""),
                rec.get(3).unwrap_or(""),
            )
            .map_err(|e| EnrichError::Line {
                path: path.to_path_buf(),
                line: i + 2,
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn load_json(&mut self, path: &Path, text: &str) -> Result<(), EnrichError> {
        let v: Value = serde_json::from_str(text).map_err(|e| EnrichError::Format {
            path: path.to_path_buf(),
            reason: format!("not JSON: {e}"),
        })?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let arr = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        if v.get("createDate").is_some() && v.get("prefixes").is_some() {
            // AWS ip-ranges.json
            for p in arr(&v, "prefixes") {
                self.add(
                    path,
                    &s(&p, "ip_prefix"),
                    "AWS",
                    &s(&p, "service"),
                    &s(&p, "region"),
                )?;
            }
            for p in arr(&v, "ipv6_prefixes") {
                self.add(
                    path,
                    &s(&p, "ipv6_prefix"),
                    "AWS",
                    &s(&p, "service"),
                    &s(&p, "region"),
                )?;
            }
        } else if v.get("cloud").is_some() && v.get("values").is_some() {
            // Azure ServiceTags_Public: tags by service and region; the regional ones are the
            // most specific, and an address first seen under a regional tag keeps it.
            let mut values = arr(&v, "values");
            values.sort_by_key(|t| {
                let props = t.get("properties").cloned().unwrap_or(Value::Null);
                std::cmp::Reverse(!s(&props, "region").is_empty())
            });
            for t in values {
                let props = t.get("properties").cloned().unwrap_or(Value::Null);
                for cidr in arr(&props, "addressPrefixes") {
                    if let Some(c) = cidr.as_str() {
                        self.add(
                            path,
                            c,
                            "Azure",
                            &s(&props, "systemService"),
                            &s(&props, "region"),
                        )?;
                    }
                }
            }
        } else if v.get("creationTime").is_some() && v.get("prefixes").is_some() {
            // Google cloud.json
            for p in arr(&v, "prefixes") {
                let cidr = if p.get("ipv4Prefix").is_some() {
                    s(&p, "ipv4Prefix")
                } else {
                    s(&p, "ipv6Prefix")
                };
                self.add(
                    path,
                    &cidr,
                    "Google Cloud",
                    &s(&p, "service"),
                    &s(&p, "scope"),
                )?;
            }
        } else if v.get("regions").is_some() {
            // Oracle public_ip_ranges.json
            for r in arr(&v, "regions") {
                for c in arr(&r, "cidrs") {
                    let tags: Vec<String> = arr(&c, "tags")
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect();
                    self.add(
                        path,
                        &s(&c, "cidr"),
                        "Oracle",
                        &tags.join(","),
                        &s(&r, "region"),
                    )?;
                }
            }
        } else {
            return Err(EnrichError::Format {
                path: path.to_path_buf(),
                reason: "not a known cloud range file (AWS ip-ranges.json, Azure ServiceTags, Google cloud.json, Oracle public_ip_ranges.json)".into(),
            });
        }
        Ok(())
    }

    /// The IPv4 ranges: (network, prefix length, range).
    pub fn iter_v4(&self) -> impl Iterator<Item = (u32, u8, &CloudRange)> {
        self.table.iter_v4()
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<&CloudRange> {
        self.table.lookup(ip)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str) -> Result<CloudRanges, EnrichError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        CloudRanges::load(&[p])
    }

    #[test]
    fn providers_own_formats() {
        let aws = load("ip-ranges.json", r#"{"syncToken":"1","createDate":"x","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON"}],"ipv6_prefixes":[{"ipv6_prefix":"2600:1f14::/35","region":"us-west-2","service":"EC2"}]}"#).unwrap();
        let r = aws.lookup("3.5.141.1".parse().unwrap()).unwrap();
        assert_eq!(
            (&*r.provider, r.region.as_deref()),
            ("AWS", Some("ap-northeast-2"))
        );
        assert_eq!(
            aws.lookup("2600:1f14::9".parse().unwrap())
                .unwrap()
                .region
                .as_deref(),
            Some("us-west-2")
        );

        let azure = load("ServiceTags_Public_20261123.json", r#"{"changeNumber":1,"cloud":"Public","values":[{"name":"AzureCloud","properties":{"region":"","systemService":"","addressPrefixes":["20.0.0.0/11"]}},{"name":"AzureCloud.westeurope","properties":{"region":"westeurope","systemService":"","addressPrefixes":["20.4.0.0/16"]}}]}"#).unwrap();
        assert_eq!(
            azure
                .lookup("20.4.1.1".parse().unwrap())
                .unwrap()
                .region
                .as_deref(),
            Some("westeurope")
        );
        assert_eq!(
            azure.lookup("20.9.1.1".parse().unwrap()).unwrap().region,
            None
        );

        let gcp = load("cloud.json", r#"{"syncToken":"1","creationTime":"x","prefixes":[{"ipv4Prefix":"34.1.208.0/20","service":"Google Cloud","scope":"africa-south1"}]}"#).unwrap();
        assert_eq!(
            gcp.lookup("34.1.209.1".parse().unwrap())
                .unwrap()
                .region
                .as_deref(),
            Some("africa-south1")
        );

        let oracle = load("public_ip_ranges.json", r#"{"last_updated_timestamp":"x","regions":[{"region":"us-phoenix-1","cidrs":[{"cidr":"129.146.0.0/21","tags":["OCI"]}]}]}"#).unwrap();
        assert_eq!(
            &*oracle
                .lookup("129.146.1.1".parse().unwrap())
                .unwrap()
                .provider,
            "Oracle"
        );
    }

    #[test]
    fn wrong_files_are_named() {
        let e = load("x.json", r#"{"hello":1}"#).err().unwrap().to_string();
        assert!(
            e.contains("x.json") && e.contains("not a known cloud range file"),
            "{e}"
        );
        let e = load(
            "c.csv",
            "cidr,provider,service,region\nnot-a-cidr,AWS,EC2,x\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("c.csv:2"), "{e}");
    }
}
