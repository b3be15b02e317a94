//! What is known about a client address: what kind of address it is, where it is, whose
//! network and which cloud it belongs to. Plain data, filled by `enrich` and read by events,
//! detectors and alerts, so that none of them depends on how it was looked up.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What kind of address it is, before any database is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    Public,
    Private,
    Loopback,
    LinkLocal,
    /// Unspecified, multicast, documentation and other special ranges.
    Special,
}

impl AddressClass {
    /// The name alerts carry (`link-local`), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Private => "private",
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Special => "special",
        }
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                AddressClass::Loopback
            } else if v4.is_private() || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 {
                // RFC 1918, and 100.64.0.0/10 (carrier-grade NAT) which is private in practice.
                AddressClass::Private
            } else if v4.is_link_local() {
                AddressClass::LinkLocal
            } else if v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
            {
                AddressClass::Special
            } else {
                AddressClass::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            if v6.is_loopback() {
                AddressClass::Loopback
            } else if seg0 & 0xfe00 == 0xfc00 {
                AddressClass::Private
            } else if seg0 & 0xffc0 == 0xfe80 {
                AddressClass::LinkLocal
            } else if v6.is_unspecified()
                || v6.is_multicast()
                || seg0 == 0x2001 && v6.segments()[1] == 0x0db8
            {
                AddressClass::Special
            } else {
                AddressClass::Public
            }
        }
    }
}

/// Everything known about one address.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrichment {
    pub class: Option<AddressClass>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<u32>,
    pub org: Option<String>,
    pub cloud_provider: Option<String>,
    pub cloud_region: Option<String>,
    pub cloud_service: Option<String>,
    pub tor_exit: bool,
    /// Names of the blocklists that list the address.
    pub blocklists: Vec<String>,
}

impl Enrichment {
    pub fn location(&self) -> Location {
        Location {
            country: self.country.clone(),
            city: self.city.clone(),
            asn: self.asn,
            org: self.org.clone(),
            address_class: self.class,
        }
    }

    pub fn cloud(&self) -> Option<Cloud> {
        self.cloud_provider.as_ref().map(|p| Cloud {
            provider: Some(p.clone()),
            region: self.cloud_region.clone(),
        })
    }
}

/// Where the source is (filled by enrichment; `null` until then).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub country: Option<String>,
    pub city: Option<String>,
    pub asn: Option<u32>,
    pub org: Option<String>,
    /// `public`, or `private`/`loopback`/`link-local`/`special`: such addresses are labelled,
    /// never looked up.
    pub address_class: Option<AddressClass>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cloud {
    pub provider: Option<String>,
    pub region: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_class_names_are_the_serialised_ones() {
        for c in [
            AddressClass::Public,
            AddressClass::Private,
            AddressClass::Loopback,
            AddressClass::LinkLocal,
            AddressClass::Special,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
