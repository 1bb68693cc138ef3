//! Who is connecting, and how often: the client address an upgrade is counted against (the peer,
//! or `X-Forwarded-For` when the peer is a trusted proxy) and the per-address connection rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;

use axum::http::HeaderMap;
use tokio::time::Instant;

use super::gcra::Gcra;

/// Addresses the per-address limit remembers at most (~50 bytes each). An entry is forgotten
/// once its bucket is full again (the burst's worth of time after its last upgrade); if this
/// many addresses connected within that window, new ones are refused until entries age out.
const MAX_TRACKED: usize = 100_000;

/// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    mask: u128,
    v4: bool,
}

impl Cidr {
    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v4) = bits(ip.to_canonical());
        v4 == self.v4 && bits & self.mask == self.net
    }
}

fn bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), true),
        IpAddr::V6(a) => (u128::from(a), false),
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not an address block like 10.0.0.0/8 or fd00::/8");
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let ip = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let (value, v4) = bits(ip);
        let width = if v4 { 32 } else { 128 };
        let len = len.unwrap_or(width);
        if len > width {
            return Err(bad());
        }
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (128 - len)) >> (128 - width)
        };
        Ok(Self {
            net: value & mask,
            mask,
            v4,
        })
    }
}

/// The address an upgrade from `peer` is counted against. From a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (each proxy appends
/// the address it got the request from, so entries left of that one are the client's to
/// forge); from anyone else, the peer, whatever headers it sends.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !trusted_ip(peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match IpAddr::from_str(hop.trim()) {
            Ok(ip) => {
                client = ip.to_canonical();
                if !trusted_ip(client) {
                    break;
                }
            }
            // Not an address: what the nearest proxy saw is as far as we can trust.
            Err(_) => break,
        }
    }
    client
}

/// Connection attempts per address: a [`Gcra`] arrival time per address seen lately.
pub struct PerAddress {
    limit: Gcra,
    base: Instant,
    seen: Mutex<HashMap<IpAddr, u64>>,
}

impl PerAddress {
    /// `rate` upgrades a second per address, bursts of `burst`; `rate` 0: no limit (`None`).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        Some(Self {
            limit: Gcra::new(rate, burst)?,
            base: Instant::now(),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Counts an upgrade from `ip` at `now`; false when `ip` is over its rate.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let now = now.saturating_duration_since(self.base).as_nanos() as u64;
        let mut seen = self.seen.lock().expect("per-address lock");
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&ip) {
            // Forget the addresses whose bucket is full again; they would pass anyway.
            seen.retain(|_, tat| *tat > now);
            if seen.len() >= MAX_TRACKED {
                return false;
            }
        }
        let tat = seen.get(&ip).copied().unwrap_or(0);
        match self.limit.next(tat, now) {
            Some(next) => {
                seen.insert(ip, next);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain() {
        let v4: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(v4.contains(ip("10.1.200.3")) && !v4.contains(ip("10.2.0.1")));
        assert!(v4.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.2".parse().unwrap(),
        );
        // From a trusted proxy: the right-most address that is not a proxy of ours.
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("1.2.3.4"));
        // From anyone else the header is ignored: a client cannot pick its own key.
        assert_eq!(client_ip(ip("5.5.5.5"), &h, &trusted), ip("5.5.5.5"));
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
        // A trusted proxy with no header, or garbage at the right end: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        h.insert("x-forwarded-for", "1.2.3.4, garbage".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn each_address_has_its_own_rate() {
        let limit = PerAddress::new(1, 2).unwrap();
        let now = Instant::now();
        let (a, b) = (ip("1.1.1.1"), ip("2.2.2.2"));
        assert!(limit.allow(a, now) && limit.allow(a, now));
        assert!(!limit.allow(a, now), "a's burst is spent");
        assert!(limit.allow(b, now), "b is another address");
        assert!(limit.allow(a, now + Duration::from_secs(1)));
    }
}
