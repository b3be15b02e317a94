//! Longest-prefix match over CIDR ranges, IPv4 and IPv6: one hash map per prefix length
//! present, probed from the longest down (at most 33 or 129 probes, usually a handful).

use rustc_hash::FxHashMap;
use std::net::IpAddr;

pub struct PrefixTable<T> {
    v4: Vec<(u8, FxHashMap<u32, T>)>,
    v6: Vec<(u8, FxHashMap<u128, T>)>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - len))
    }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - len))
    }
}

impl<T> PrefixTable<T> {
    /// Adds a range; an equal range added later does not replace the first.
    pub fn insert(&mut self, net: ipnet::IpNet, value: T) {
        match net {
            ipnet::IpNet::V4(n) => {
                let len = n.prefix_len();
                let key = mask4(u32::from(n.network()), len);
                let i = match self.v4.iter().position(|(l, _)| *l == len) {
                    Some(i) => i,
                    None => {
                        self.v4.push((len, FxHashMap::default()));
                        self.v4.sort_by_key(|x| std::cmp::Reverse(x.0));
                        self.v4.iter().position(|(l, _)| *l == len).unwrap_or(0)
                    }
                };
                self.v4[i].1.entry(key).or_insert(value);
            }
            ipnet::IpNet::V6(n) => {
                let len = n.prefix_len();
                let key = mask6(u128::from(n.network()), len);
                let i = match self.v6.iter().position(|(l, _)| *l == len) {
                    Some(i) => i,
                    None => {
                        self.v6.push((len, FxHashMap::default()));
                        self.v6.sort_by_key(|x| std::cmp::Reverse(x.0));
                        self.v6.iter().position(|(l, _)| *l == len).unwrap_or(0)
                    }
                };
                self.v6[i].1.entry(key).or_insert(value);
            }
        }
    }

    /// The IPv4 ranges: (network, prefix length, value).
    pub fn iter_v4(&self) -> impl Iterator<Item = (u32, u8, &T)> {
        self.v4
            .iter()
            .flat_map(|(len, m)| m.iter().map(move |(k, v)| (*k, *len, v)))
    }

    /// The value of the longest prefix containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let a = u32::from(v4);
                self.v4.iter().find_map(|(len, m)| m.get(&mask4(a, *len)))
            }
            IpAddr::V6(v6) => {
                let a = u128::from(v6);
                self.v6.iter().find_map(|(len, m)| m.get(&mask6(a, *len)))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::default();
        t.insert("10.0.0.0/8".parse().unwrap(), "wide");
        t.insert("10.1.0.0/16".parse().unwrap(), "narrow");
        t.insert("2001:db8::/32".parse().unwrap(), "six");
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), Some(&"narrow"));
        assert_eq!(t.lookup("10.2.2.3".parse().unwrap()), Some(&"wide"));
        assert_eq!(
            t.lookup("::ffff:10.1.0.1".parse().unwrap()),
            Some(&"narrow")
        );
        assert_eq!(t.lookup("2001:db8::1".parse().unwrap()), Some(&"six"));
        assert_eq!(t.lookup("11.0.0.1".parse().unwrap()), None);
    }
}
