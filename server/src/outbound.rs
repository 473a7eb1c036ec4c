//! The one guarded HTTP client for every URL a merchant supplies (webhook endpoints now,
//! anything later). A merchant, or anyone signed in as one, must not make ScanPay reach what
//! only ScanPay can reach: the database host, a cloud metadata service, the cluster's
//! internal routes. So:
//!
//! - a target is refused when its host is, or resolves to, a loopback, private, link-local,
//!   CGNAT, multicast, unspecified, reserved or documentation address, in IPv4, IPv6 or an
//!   IPv6 form that carries an IPv4 address (mapped, NAT64, 6to4), unless the operator allows
//!   its network (`SCANPAY_ALLOW_PRIVATE_TARGETS`, for on-premise shops and the tests);
//! - the check happens inside the client's own resolver, so the connection goes to the
//!   address that was checked (no second lookup that DNS rebinding could answer differently);
//! - redirects are not followed, no proxy from the environment is used, the whole exchange
//!   has a time limit, and at most [`MAX_ANSWER`] bytes of the answer are read.

use crate::infra::net::Networks;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The longest URL a merchant may set.
pub const MAX_URL: usize = 512;
/// How much of an answer is read; the rest is never downloaded.
pub const MAX_ANSWER: usize = 4 * 1024;

/// Why a merchant-supplied URL is refused. The message is shown to the merchant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the URL must be an absolute http:// or https:// URL of at most {MAX_URL} characters")]
    Syntax,
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error(
        "{host} is {ip}, a {kind} address; ScanPay sends only to public addresses \
         (an operator can allow a private network with SCANPAY_ALLOW_PRIVATE_TARGETS)"
    )]
    Forbidden {
        host: String,
        ip: IpAddr,
        kind: &'static str,
    },
}

/// What kind of address `ip` is, when it is one ScanPay does not send to; `None` for a public
/// address. IPv6 forms that carry an IPv4 address are judged by that address.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "IETF protocol",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let seg = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    Some(match seg[0] {
        // ::a.b.c.d (IPv4-compatible, deprecated) and the rest of ::/96.
        0 if seg[1..6] == [0; 5] => "IPv4-compatible",
        // 64:ff9b::/96, NAT64: the IPv4 address it translates to decides.
        0x0064 if seg[1] == 0xff9b && seg[2..6] == [0; 4] => {
            return forbidden_v4(embedded_v4(seg[6], seg[7]));
        }
        // 2002::/16, 6to4: likewise.
        0x2002 => return forbidden_v4(embedded_v4(seg[1], seg[2])),
        0x2001 if seg[1] == 0x0db8 => "documentation",
        0x2001 if seg[1] == 0 => "Teredo",
        s if s & 0xfe00 == 0xfc00 => "unique local (private)",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "site-local",
        s if s & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// Which addresses may be reached.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Networks the operator allows although they are not public.
    pub allow_private: Networks,
}

impl Policy {
    /// Refuses `ip` for `host` unless it is public or allowed.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), TargetError> {
        match forbidden_kind(ip) {
            Some(kind) if !self.allow_private.contains(ip) => Err(TargetError::Forbidden {
                host: host.to_string(),
                ip,
                kind,
            }),
            _ => Ok(()),
        }
    }

    /// Resolves `host` and checks every address it has: one forbidden address refuses the
    /// name, so a mixed answer cannot be used to reach the forbidden one.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| TargetError::Resolve {
                host: host.to_string(),
                reason: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TargetError::Resolve {
                host: host.to_string(),
                reason: "no address".into(),
            });
        }
        for a in &addrs {
            self.check(host, a.ip())?;
        }
        Ok(addrs)
    }
}

/// A checked URL: its syntax, and its host's addresses at the time of the check.
fn parse(url: &str) -> Result<reqwest::Url, TargetError> {
    if url.len() > MAX_URL {
        return Err(TargetError::Syntax);
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| TargetError::Syntax)?;
    let ok = matches!(parsed.scheme(), "http" | "https")
        && parsed.host().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    ok.then_some(parsed).ok_or(TargetError::Syntax)
}

/// The reqwest resolver that checks what it resolves (so the connection uses the checked
/// addresses).
struct GuardedResolver(Policy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What one guarded request found.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The first [`MAX_ANSWER`] bytes of the body, as text (invalid UTF-8 replaced).
    pub body: String,
}

/// Why a guarded request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{0}")]
    Transport(String),
}

/// The guarded client. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    policy: Policy,
    http: reqwest::Client,
}

impl Outbound {
    pub fn new(policy: Policy, connect_timeout: Duration, timeout: Duration) -> Outbound {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ScanPay/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| panic!("the HTTP client cannot be built at start-up: {e}"));
        Outbound { policy, http }
    }

    /// Checks a URL a merchant is setting: its form, and that its host is not, and does not
    /// resolve to, an address ScanPay may not reach. A name that does not resolve now is
    /// taken (DNS may be down, the shop not yet live): every send checks again, and a send
    /// to a name that never resolves is logged as failed.
    pub async fn check_url(&self, url: &str) -> Result<(), TargetError> {
        let parsed = parse(url)?;
        match self.check_host(&parsed).await {
            Err(TargetError::Resolve { .. }) => Ok(()),
            other => other,
        }
    }

    async fn check_host(&self, url: &reqwest::Url) -> Result<(), TargetError> {
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.policy.check(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.policy.check(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => self.policy.resolve(name, port).await.map(drop),
            None => Err(TargetError::Syntax),
        }
    }

    /// POSTs `body` to `url` with `headers`, reading at most [`MAX_ANSWER`] bytes back.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<Answer, SendError> {
        let parsed = parse(url)?;
        // Names are checked by the resolver as the connection is made; addresses written in
        // the URL never reach a resolver, so they are checked here.
        if !matches!(parsed.host(), Some(url::Host::Domain(_))) {
            self.check_host(&parsed).await?;
        }
        let mut request = self.http.post(parsed).body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut response = request.send().await.map_err(|e| self.explain(e))?;
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER - kept.len();
                    kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&kept).into_owned(),
        })
    }

    /// A transport error, with the resolver's refusal brought out when that was the cause.
    fn explain(&self, err: reqwest::Error) -> SendError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(t) = e.downcast_ref::<TargetError>() {
                return SendError::Target(t.clone());
            }
            source = e.source();
        }
        SendError::Transport(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn internal_addresses_are_forbidden_in_every_form() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("fd00::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
        ] {
            assert_eq!(forbidden_kind(ip(addr)), Some(kind), "{addr}");
        }
        for public in [
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "203.0.114.1",
            "2400:3200::1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(forbidden_kind(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn an_allowed_network_may_be_reached() {
        let policy = Policy {
            allow_private: Networks::parse("10.0.0.0/8").expect("list"),
        };
        assert!(policy.check("erp.local", ip("10.2.3.4")).is_ok());
        assert!(policy.check("x", ip("127.0.0.1")).is_err());
    }

    #[test]
    fn only_plain_http_urls_are_taken() {
        for bad in [
            "ftp://shop.example/hooks",
            "/hooks",
            "http://",
            "https://user:pw@shop.example/",
            "javascript:alert(1)",
        ] {
            assert_eq!(parse(bad).err(), Some(TargetError::Syntax), "{bad}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL));
        assert_eq!(parse(&long).err(), Some(TargetError::Syntax));
        assert!(parse("https://shop.example/hooks?x=1").is_ok());
    }
}
