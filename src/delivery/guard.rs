//! The SSRF guard: outbound requests go only to public addresses unless the operator allows
//! private ones (`[delivery] allow_private_targets = true`, for local development).
//!
//! A URL is checked twice: when a subscription is saved (scheme, host, a literal IP address) and
//! at every connection, after DNS resolution, by [`PublicResolver`], so a name that resolves to
//! `127.0.0.1` or to a cloud metadata address (`169.254.169.254`) is refused too. Redirects are
//! never followed (the client is built with redirects off), so a public endpoint cannot bounce a
//! delivery to a private one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL, or not http(s), or without a host.
    #[error("`url` {0}")]
    Invalid(String),
    /// The address is loopback, private, link-local or otherwise not public.
    #[error(
        "`url` points to a non-public address ({0}); set [delivery] allow_private_targets = true to allow it"
    )]
    Private(String),
}

/// Checks a target URL's form and, when its host is an IP address, the address.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, TargetError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| TargetError::Invalid(format!("is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Invalid("must start with http:// or https://".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Invalid(
            "must not carry credentials; sign with the subscription secret".into(),
        ));
    }
    let Some(host) = parsed.host() else {
        return Err(TargetError::Invalid("has no host".into()));
    };
    if !allow_private {
        let ip = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(name)
                if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") =>
            {
                return Err(TargetError::Private(name.to_owned()));
            }
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = ip.filter(|ip| !is_public(*ip)) {
            return Err(TargetError::Private(ip.to_string()));
        }
    }
    Ok(parsed)
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// multicast, documentation or reserved). IPv4 inside IPv6 (mapped, NAT64) is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !BLOCKED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            !BLOCKED_V6.iter().any(|net| net.contains(&v6))
        }
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let nat64: Ipv6Net = Ipv6Net::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96).ok()?;
    nat64.contains(&v6).then(|| {
        let o = v6.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    })
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    match Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len) {
        Ok(net) => net,
        Err(_) => panic!("invalid prefix length"),
    }
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    match Ipv6Net::new(Ipv6Addr::new(a, b, c, d, e, f, g, h), len) {
        Ok(net) => net,
        Err(_) => panic!("invalid prefix length"),
    }
}

/// IPv4 ranges that are not public (RFC 6890 and friends).
const BLOCKED_V4: &[Ipv4Net] = &[
    v4(0, 0, 0, 0, 8),       // "this network"
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // shared address space (carrier-grade NAT)
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local, cloud metadata
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation
    v4(192, 88, 99, 0, 24),  // 6to4 relay
    v4(192, 168, 0, 0, 16),  // private
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation
    v4(203, 0, 113, 0, 24),  // documentation
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, broadcast
];

/// IPv6 ranges that are not public.
const BLOCKED_V6: &[Ipv6Net] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96), // unspecified, loopback, IPv4-compatible
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4 (embeds an IPv4 address)
    v6([0x0100, 0, 0, 0, 0, 0, 0, 0], 64), // discard
    v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
];

/// A DNS resolver that drops non-public addresses, and fails when none is left.
#[derive(Debug, Clone, Default)]
pub struct PublicResolver;

impl PublicResolver {
    /// As the `Arc` reqwest takes.
    pub fn shared() -> Arc<PublicResolver> {
        Arc::new(PublicResolver)
    }
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let shown = resolved.first().map(|a| a.ip().to_string()).unwrap_or_else(|| "nothing".into());
                let error: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves to a non-public address ({shown}); private targets are not allowed"
                )
                .into();
                return Err(error);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether the address in `ip` is refused (tests).
#[cfg(test)]
fn blocked(ip: &str) -> bool {
    !is_public(ip.parse().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_mapped_addresses_are_blocked() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!blocked(ip), "{ip} should pass");
        }
    }

    #[test]
    fn urls_are_checked_for_form_and_literal_addresses() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(matches!(check_url("ftp://example.com", false), Err(TargetError::Invalid(_))));
        assert!(matches!(check_url("not a url", false), Err(TargetError::Invalid(_))));
        assert!(matches!(check_url("https://user:pw@example.com", false), Err(TargetError::Invalid(_))));
        assert!(matches!(check_url("http://127.0.0.1:9/x", false), Err(TargetError::Private(_))));
        assert!(matches!(check_url("http://[::1]/x", false), Err(TargetError::Private(_))));
        assert!(matches!(check_url("http://localhost/x", false), Err(TargetError::Private(_))));
        assert!(matches!(check_url("http://169.254.169.254/latest", false), Err(TargetError::Private(_))));
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let name: Name = "localhost".parse().unwrap();
        let Err(error) = PublicResolver.resolve(name).await else { panic!("localhost must be refused") };
        assert!(error.to_string().contains("non-public"), "{error}");
    }
}
