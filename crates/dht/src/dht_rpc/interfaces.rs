//! Watching the machine's network interfaces (what udx-native's `watchNetworkInterfaces` does): a cheap
//! poll of the interface addresses (getifaddrs, through the `if-addrs` crate), reporting when the set of
//! `(interface, address)` pairs differs from the last one seen.

use std::net::IpAddr;
use std::time::Duration;

/// How often the watcher looks at the interfaces (udx-native polls every 5 s).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The machine's interfaces and their addresses, sorted (an error reads as no interfaces).
pub fn snapshot() -> Vec<(String, IpAddr)> {
    let mut v: Vec<(String, IpAddr)> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| (i.name.clone(), i.ip())).collect())
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Remembers the last snapshot and tells whether a new one differs.
#[derive(Debug, Clone, Default)]
pub struct ChangeDetector {
    last: Option<Vec<(String, IpAddr)>>,
}

impl ChangeDetector {
    /// A detector whose first [`Self::update`] sets the baseline (no change reported).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `now`; true when it differs from the previous snapshot.
    pub fn update(&mut self, now: Vec<(String, IpAddr)>) -> bool {
        match self.last.replace(now) {
            None => false,
            Some(prev) => Some(&prev) != self.last.as_ref(),
        }
    }
}

/// Whether `ip` is a global IPv6 address (not loopback, unspecified, link-local, unique-local,
/// documentation or multicast).
pub fn is_global_ipv6(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(a) => {
            let s = a.segments();
            let link_local = (s[0] & 0xffc0) == 0xfe80;
            let unique_local = (s[0] & 0xfe00) == 0xfc00;
            let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || link_local
                || unique_local
                || documentation)
        }
        IpAddr::V4(_) => false,
    }
}

/// Whether the host has a global IPv6 address ([`is_global_ipv6`]).
pub fn has_global_ipv6() -> bool {
    snapshot().iter().any(|(_, ip)| is_global_ipv6(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn detects_changes_after_the_baseline() {
        let a = vec![("eth0".to_string(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))];
        let b = vec![("eth0".to_string(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))];
        let mut d = ChangeDetector::new();
        assert!(!d.update(a.clone()));
        assert!(!d.update(a.clone()));
        assert!(d.update(b.clone()));
        assert!(!d.update(b));
        assert!(d.update(Vec::new()));
        assert!(d.update(a));
    }

    #[test]
    fn global_ipv6() {
        let g = |s: &str| is_global_ipv6(&s.parse().expect("ip"));
        assert!(g("2a01:4f8::1"));
        assert!(!g("::1"));
        assert!(!g("fe80::1"));
        assert!(!g("fd00::1"));
        assert!(!g("2001:db8::1"));
        assert!(!g("10.0.0.1"));
    }

    #[test]
    fn snapshot_is_sorted_and_has_loopback() {
        let s = snapshot();
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().any(|(_, ip)| ip.is_loopback()));
    }
}
