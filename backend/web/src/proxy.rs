//! Which address a request came from when Riposte runs behind reverse proxies.
//!
//! Per-client limits (login failures, auth attempts) key on the client's address.
//! Behind a proxy every request arrives from the proxy, so one client's failures
//! would throttle everyone. The operator names the proxies it trusts
//! (`trusted_proxies = "10.0.0.0/8, 127.0.0.1"`); a request whose peer is one of
//! them is attributed to the right-most `X-Forwarded-For` address that is not a
//! trusted proxy. Addresses a client wrote itself sit further left and are never
//! read, so a client cannot choose its own key. With no trusted proxies the peer
//! address is the client, whatever the headers say.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One trusted network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is its IPv4 address.
pub(crate) fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` Riposte believes; empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

/// At most this many networks in the setting, and this many hops read per request.
const MAX_NETWORKS: usize = 64;
const MAX_HOPS: usize = 32;

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma- or space-separated addresses or CIDR networks.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in text.split([',', ' ']).filter(|s| !s.trim().is_empty()) {
            let item = item.trim();
            if nets.len() == MAX_NETWORKS {
                return Err(format!("trusted_proxies: at most {MAX_NETWORKS} networks"));
            }
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (item, None),
            };
            let addr = unmap(IpAddr::from_str(addr).map_err(|_| {
                format!(
                    "trusted_proxies: {item:?} is not an address or CIDR network such as 10.0.0.0/8"
                )
            })?);
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("trusted_proxies: {item:?} has a prefix length outside 0..={max}")
                })?,
            };
            nets.push(Network { addr, prefix });
        }
        Ok(Self(nets))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|n| format!("{}/{}", n.addr, n.prefix))
            .collect();
        f.write_str(&items.join(", "))
    }
}

impl<'de> serde::Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client behind `peer`: `peer` itself unless it is a trusted proxy, else
    /// the right-most `X-Forwarded-For` entry that is not a trusted proxy (all the
    /// header lines, in order). An unreadable entry ends the walk at the last
    /// trusted hop, which then stands for the client.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = unmap(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev().take(MAX_HOPS) {
            match IpAddr::from_str(hop) {
                Ok(ip) => {
                    client = unmap(ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                Err(_) => return client,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_networks_and_refuses_the_rest() {
        let t: TrustedProxies = "10.0.0.0/8, 127.0.0.1 ::1 fd00::/8".parse().unwrap();
        assert_eq!(t.to_string(), "10.0.0.0/8, 127.0.0.1/32, ::1/128, fd00::/8");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        let err = "10.0.0.0/33".parse::<TrustedProxies>().unwrap_err();
        assert!(err.contains("prefix length outside 0..=32"), "{err}");
        let err = "proxy.local".parse::<TrustedProxies>().unwrap_err();
        assert!(err.contains("\"proxy.local\" is not an address"), "{err}");
    }

    #[test]
    fn networks_match_by_prefix() {
        let t: TrustedProxies = "10.1.0.0/16, fd00::/8, 0.0.0.0/0".parse().unwrap();
        assert!(t.0[0].contains(ip("10.1.255.3")));
        assert!(!t.0[0].contains(ip("10.2.0.1")));
        assert!(t.0[0].contains(ip("::ffff:10.1.0.9")));
        assert!(t.0[1].contains(ip("fd12::1")));
        assert!(!t.0[1].contains(ip("fe80::1")));
        assert!(!t.0[1].contains(ip("10.1.0.1")));
        assert!(t.0[2].contains(ip("203.0.113.9")));
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let t = TrustedProxies::default();
        assert_eq!(
            t.client(ip("198.51.100.7"), ["1.2.3.4"].into_iter()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_proxies_the_right_most_untrusted_hop_is_the_client() {
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        // The client wrote "6.6.6.6" itself; the first proxy appended the real address.
        let xff = ["6.6.6.6, 203.0.113.5", "10.0.0.2"];
        assert_eq!(t.client(ip("10.0.0.1"), xff.into_iter()), ip("203.0.113.5"));
        // An untrusted peer's header is ignored.
        assert_eq!(
            t.client(ip("198.51.100.1"), xff.into_iter()),
            ip("198.51.100.1")
        );
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.0.0.1"), std::iter::empty()), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            t.client(ip("10.0.0.1"), ["junk, 10.0.0.3"].into_iter()),
            ip("10.0.0.3")
        );
    }
}
