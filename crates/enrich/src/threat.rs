//! Threat intelligence lists: the Tor bulk exit list and any blocklist with one address or
//! CIDR a line (`#` and `;` start comments).

use super::prefix_table::PrefixTable;
use super::EnrichError;
use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;

pub struct IpList {
    /// The file's name, for evidence ("listed on tor-exits.txt").
    pub name: String,
    table: PrefixTable<()>,
}

impl IpList {
    pub fn load(path: &Path) -> Result<IpList, EnrichError> {
        let r = std::io::BufReader::new(super::asn::open_text(path)?);
        let mut table = PrefixTable::default();
        for (i, line) in r.lines().enumerate() {
            let line = line.map_err(|e| EnrichError::io(path, e))?;
            let entry = line
                .split(['#', ';'])
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            if entry.is_empty() {
                continue;
            }
            let net: ipnet::IpNet = match entry.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => ipnet::IpNet::from(ip),
                    Err(_) => {
                        return Err(EnrichError::Line {
                            path: path.to_path_buf(),
                            line: i + 1,
                            reason: format!("{entry:?} is neither an IP address nor a CIDR"),
                        })
                    }
                },
            };
            table.insert(net.trunc(), ());
        }
        Ok(IpList {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            table,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.table.lookup(ip).is_some()
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

    #[test]
    fn addresses_cidrs_comments_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("block.txt");
        std::fs::write(
            &p,
            "# list\n198.51.100.7\n203.0.113.0/24 ; scanners\n\n2001:db8::/48\n",
        )
        .unwrap();
        let l = IpList::load(&p).unwrap();
        assert!(l.contains("198.51.100.7".parse().unwrap()));
        assert!(l.contains("203.0.113.99".parse().unwrap()));
        assert!(l.contains("2001:db8::5".parse().unwrap()));
        assert!(!l.contains("198.51.100.8".parse().unwrap()));
        assert_eq!(l.name, "block.txt");
        std::fs::write(&p, "198.51.100.7\nnot-an-ip\n").unwrap();
        let e = IpList::load(&p).err().unwrap().to_string();
        assert!(e.contains("block.txt:2") && e.contains("not-an-ip"), "{e}");
    }
}
