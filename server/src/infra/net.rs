//! IP networks: lists of addresses and networks (`10.0.0.0/8, ::1`) that settings name, such
//! as the trusted proxies and the private targets merchants' URLs may reach.

use std::net::IpAddr;

/// One address or network (`10.0.0.0/8`, `::1`). An IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`) is the IPv4 address it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Option<Net> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
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

/// A list of addresses and networks; empty contains nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Networks(Vec<Net>);

impl Networks {
    /// A comma-separated list of addresses and networks; empty means none. `None` when an
    /// entry is not an address.
    pub fn parse(s: &str) -> Option<Networks> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Net::parse)
            .collect::<Option<Vec<_>>>()
            .map(Networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn lists_parse_or_are_refused() {
        assert_eq!(Networks::parse(""), Some(Networks::default()));
        assert!(Networks::parse("10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8").is_some());
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.1/x", "::1/129"] {
            assert_eq!(Networks::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let t = Networks::parse("10.1.0.0/16,::1,0.0.0.0/0").expect("list");
        assert!(t.0[0].contains(ip("10.1.255.3")));
        assert!(!t.0[0].contains(ip("10.2.0.1")));
        assert!(
            t.0[0].contains(ip("::ffff:10.1.0.9")),
            "an IPv4-mapped peer"
        );
        assert!(t.0[1].contains(ip("::1")));
        assert!(!t.0[1].contains(ip("127.0.0.1")));
        assert!(t.0[2].contains(ip("203.0.113.9")), "/0 is everything");
        assert!(!Networks::default().contains(ip("127.0.0.1")));
    }
}
