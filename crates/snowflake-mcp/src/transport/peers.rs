//! Who is on the other end of a connection, and how much of the server one address may take.
//!
//! The connection guard ([`crate::transport::conn`]) counts open connections per direct peer address
//! (`server.max_connections_per_ip`), so one address cannot take every slot. Behind a load
//! balancer every connection comes from the balancer, which multiplexes many clients: its
//! connections are not counted per address (it is in `server.trusted_proxies`), and
//! [`limit_forwarded`] counts instead the requests in progress — SSE streams included — per
//! client address taken from `X-Forwarded-For`. That header is believed only from a trusted
//! proxy, read from the right (the address the nearest untrusted hop connected from), since
//! anyone can write what they like to its left.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::lock;

/// An address or a CIDR range (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let bad = || format!("'{text}' is not an IP address or CIDR range");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let base: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(IpRange { base, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(i)) => {
                masked(u32::from(b).into(), 32, self.prefix)
                    == masked(u32::from(i).into(), 32, self.prefix)
            }
            (IpAddr::V6(b), IpAddr::V6(i)) => {
                masked(u128::from(b), 128, self.prefix) == masked(u128::from(i), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The trusted proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpRange>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| IpRange::parse(e).map_err(|e| format!("[server] trusted_proxies: {e}")))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client's address for a request that came from `peer` with these
    /// `X-Forwarded-For` values: the peer itself unless it is trusted, else the right-most
    /// forwarded address that is not a trusted proxy (an unreadable entry ends the walk: what
    /// stands left of it cannot be believed).
    pub fn client_of<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

/// The direct peer of a connection, for [`axum::extract::ConnectInfo`].
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Requests in progress per forwarded client address (see the module doc).
pub struct ForwardedLimit {
    pub trusted: TrustedProxies,
    pub max_per_ip: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ForwardedLimit {
    pub fn new(trusted: TrustedProxies, max_per_ip: usize) -> Arc<ForwardedLimit> {
        Arc::new(ForwardedLimit {
            trusted,
            max_per_ip: max_per_ip.max(1),
            open: Mutex::default(),
        })
    }

    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<OpenRequest> {
        let mut open = lock(&self.open);
        let n = open.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(OpenRequest {
            limit: self.clone(),
            ip,
        })
    }
}

/// One counted request; uncounted when its response has been sent or dropped.
struct OpenRequest {
    limit: Arc<ForwardedLimit>,
    ip: IpAddr,
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let mut open = lock(&self.limit.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The axum layer: a request that came through a trusted proxy is counted against its
/// forwarded client address while its response is in progress; over the limit it gets 429.
pub async fn limit_forwarded(
    State(limit): State<Arc<ForwardedLimit>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0 .0.ip())
    else {
        return next.run(request).await;
    };
    if !limit.trusted.trusts(canonical(peer)) {
        return next.run(request).await; // counted per connection by the connection guard
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client = limit.trusted.client_of(peer, forwarded);
    let Some(counted) = limit.enter(client) else {
        tracing::warn!("refused a request: too many in progress from one forwarded address");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests in progress from your address; retry shortly\n",
        )
            .into_response();
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return response;
    };
    crate::transport::http::Holding::wrap(next.run(request).await, counted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_addresses_and_bad_entries_are_refused() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.200.1.2")) && !r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped IPv6");
        assert!(IpRange::parse("192.0.2.7")
            .unwrap()
            .contains(ip("192.0.2.7")));
        assert!(!IpRange::parse("192.0.2.7")
            .unwrap()
            .contains(ip("192.0.2.8")));
        assert!(IpRange::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(IpRange::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129", "1.2.3.4/x"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_forwarded_address_is_believed_only_from_a_trusted_proxy_and_read_from_the_right() {
        let t = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let xff = |v: &'static str| std::iter::once(v);
        // An untrusted peer's header is ignored.
        assert_eq!(
            t.client_of(ip("198.51.100.1"), xff("1.2.3.4")),
            ip("198.51.100.1")
        );
        // A trusted peer: the right-most address that is not a trusted proxy.
        assert_eq!(
            t.client_of(ip("127.0.0.1"), xff("6.6.6.6, 203.0.113.5, 10.1.1.1")),
            ip("203.0.113.5"),
            "what the client wrote on the left is not believed"
        );
        assert_eq!(
            t.client_of(ip("127.0.0.1"), std::iter::empty()),
            ip("127.0.0.1")
        );
        assert_eq!(
            t.client_of(ip("127.0.0.1"), xff("junk, 10.2.2.2")),
            ip("10.2.2.2")
        );
        let two = ["203.0.113.5", "198.51.100.7"];
        assert_eq!(
            t.client_of(ip("127.0.0.1"), two.into_iter()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn requests_are_counted_per_address_and_released() {
        let limit = ForwardedLimit::new(TrustedProxies::default(), 2);
        let a = ip("203.0.113.5");
        let first = limit.enter(a).unwrap();
        let _second = limit.enter(a).unwrap();
        assert!(limit.enter(a).is_none(), "third from the same address");
        assert!(limit.enter(ip("203.0.113.6")).is_some(), "another address");
        drop(first);
        assert!(limit.enter(a).is_some(), "released with the response");
    }
}
