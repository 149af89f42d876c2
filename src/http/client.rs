//! Who is asking: the client's IP address, which throttles, lockout counts and the
//! request log key on.
//!
//! It is the socket's peer address, unless that peer is a proxy listed in
//! `TRUSTED_PROXIES`: then `X-Forwarded-For` is read from the right, skipping trusted
//! hops, and the first address not in the list is the client. Entries further left were
//! written by whoever sent the request and prove nothing, so a client cannot pick its
//! own address by sending the header itself.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// The client's address, resolved once per request by the log middleware and kept in
/// the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Resolves the client of a request that arrived from `peer` with `headers`.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let peer = canonical(peer);
        if !is_trusted(peer, trusted) {
            return Self(peer);
        }
        // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
        // Split the raw bytes, not a decoded string: one entry a client filled with
        // non-ASCII bytes must not discard the entries a proxy appended after it.
        let hops: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match std::str::from_utf8(hop)
                .ok()
                .and_then(|h| parse_hop(h.trim()))
            {
                // Written by a proxy we trust: believe it, and go on while it is a proxy.
                Some(address) => {
                    client = address;
                    if !is_trusted(address, trusted) {
                        break;
                    }
                }
                // Garbage: the hop we trust could not name its client. Stay with it.
                None => break,
            }
        }
        Self(client)
    }

    /// The key throttles count under: the address, or for IPv6 its /64, since one
    /// machine usually holds a whole /64 and could otherwise rotate through it.
    pub fn throttle_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        }
    }
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&address))
}

/// An IPv4 client reaching a dual-stack socket shows up as `::ffff:a.b.c.d`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|socket| canonical(socket.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(peer: &str, forwarded: &[&str], trusted: &str) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect();
        ClientIp::resolve(peer.parse().unwrap(), &headers, &trusted)
            .0
            .to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(resolve("203.0.113.9", &["1.2.3.4"], ""), "203.0.113.9");
        assert_eq!(
            resolve("203.0.113.9", &["1.2.3.4"], "10.0.0.0/8"),
            "203.0.113.9"
        );
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_skipping_trusted_hops() {
        let trusted = "127.0.0.1/32,10.0.0.0/8";
        assert_eq!(
            resolve("127.0.0.1", &["198.51.100.7"], trusted),
            "198.51.100.7"
        );
        // The client sent a forged entry; the proxies appended the real one.
        assert_eq!(
            resolve("127.0.0.1", &["6.6.6.6, 198.51.100.7, 10.1.2.3"], trusted),
            "198.51.100.7"
        );
        assert_eq!(
            resolve("127.0.0.1", &["6.6.6.6", "198.51.100.7:4711"], trusted),
            "198.51.100.7"
        );
        // Every hop trusted: the leftmost is the best we know.
        assert_eq!(resolve("127.0.0.1", &["10.0.0.5"], trusted), "10.0.0.5");
        // No header: the proxy itself.
        assert_eq!(resolve("127.0.0.1", &[], trusted), "127.0.0.1");
        // A client's non-ASCII junk in front does not hide the proxy's entry.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.7").unwrap(),
        );
        let trusted_nets: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            ClientIp::resolve("127.0.0.1".parse().unwrap(), &headers, &trusted_nets)
                .0
                .to_string(),
            "198.51.100.7"
        );
        // Garbage written by a trusted hop: stop at that hop.
        assert_eq!(
            resolve("127.0.0.1", &["198.51.100.7, nonsense"], trusted),
            "127.0.0.1"
        );
    }

    #[test]
    fn ipv6_clients_are_throttled_by_their_slash_64() {
        let key = |ip: &str| ClientIp(ip.parse().unwrap()).throttle_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
        assert_eq!(
            ClientIp::resolve("::ffff:192.0.2.1".parse().unwrap(), &HeaderMap::new(), &[]).0,
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
