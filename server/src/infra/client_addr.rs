//! The address a request came from, for the sign-in limiter: the connection's peer, unless
//! that peer is one of our own proxies (`SCANPAY_TRUSTED_PROXIES`: a load balancer in front
//! of the nodes of a cluster), in which case it is the nearest address in `X-Forwarded-For`
//! that is not one of them. Read from the right, as each proxy appends the address it saw:
//! entries left of the first untrusted one may be made up by the client, so they are never
//! believed. Without trusted proxies the header is ignored, so a client cannot choose its
//! own address.

use crate::infra::net::Networks;
use std::net::IpAddr;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    /// A comma-separated list of addresses and networks; empty means none. `None` when an
    /// entry is not an address.
    pub fn parse(s: &str) -> Option<TrustedProxies> {
        Networks::parse(s).map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client's address for a request from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut chain: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        while let Some(entry) = chain.pop() {
            match entry.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => client = ip,
                Ok(ip) => return ip,
                // Something other than an address: nothing further left can be believed.
                Err(_) => return client,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer_read_from_the_right() {
        let none = TrustedProxies::default();
        let lb = TrustedProxies::parse("10.0.0.0/8").expect("list");
        let peer = ip("10.0.0.5");
        // No trusted proxies: the header is ignored, whatever it says.
        assert_eq!(none.client(peer, &headers(&["1.2.3.4"])), peer);
        // From the load balancer: the address it saw.
        assert_eq!(
            lb.client(peer, &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // A client that sends its own header cannot choose: the rightmost untrusted entry wins.
        assert_eq!(
            lb.client(peer, &headers(&["1.2.3.4, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            lb.client(peer, &headers(&["1.2.3.4", "203.0.113.7, 10.0.0.9"])),
            ip("203.0.113.7"),
            "through two of our proxies, over two header lines"
        );
        // Not from a trusted peer: the header is not believed.
        assert_eq!(
            lb.client(ip("198.51.100.2"), &headers(&["203.0.113.7"])),
            ip("198.51.100.2")
        );
        // Garbage or nothing: the last trusted hop.
        assert_eq!(
            lb.client(peer, &headers(&["junk, 10.0.0.9"])),
            ip("10.0.0.9")
        );
        assert_eq!(lb.client(peer, &headers(&[])), peer);
    }
}
