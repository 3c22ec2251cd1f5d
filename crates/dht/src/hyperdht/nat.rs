//! NAT analysis for holepunching (`hyperdht/lib/nat.js`), sans-IO.
//!
//! A holepunch attempt pings a few DHT nodes from its own socket; each reply says which address the node saw
//! us at (`to`). From those samples [`Nat`] decides the firewall kind of that socket:
//!
//! * [`Firewall::OPEN`] when the DHT node itself is not firewalled;
//! * [`Firewall::CONSISTENT`] when three samples agree on `host:port` (or two agree on each of two hosts);
//! * [`Firewall::RANDOM`] when no `host:port` repeats (each node saw another port), or, with a single host,
//!   when more than three samples were taken without a majority;
//! * [`Firewall::UNKNOWN`] until then.
//!
//! The addresses it gives the remote peer are the consistent ones (those seen at least twice, at least two),
//! or the bare host (port 0) of a random NAT. [`Nat::freeze`] stops the conclusions from changing once they
//! were told to the other peer.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::constants::Firewall;

/// Samples the analysis wants (`_minSamples`).
pub const MIN_SAMPLES: usize = 4;
/// When the DHT knows at least this many nodes, the most recent ones are skipped (they tend to be the
/// bootstrappers, which everybody uses).
const SKIP_THRESHOLD: usize = 8;
/// How many recent nodes are skipped then.
const SKIP: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    host: Ipv4Addr,
    port: u16,
    hits: u32,
}

/// Adds one hit to `host:port`, keeping the list sorted by hits (most first, earlier first among equals).
fn add_sample(samples: &mut Vec<Sample>, host: Ipv4Addr, port: u16) {
    if let Some(mut i) = samples
        .iter()
        .position(|s| s.host == host && s.port == port)
    {
        samples[i].hits += 1;
        while i > 0 && samples[i - 1].hits < samples[i].hits {
            samples.swap(i - 1, i);
            i -= 1;
        }
    } else {
        samples.push(Sample {
            host,
            port,
            hits: 1,
        });
    }
}

/// Whether a node was asked (1) or answered (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    Pinged,
    Sampled,
}

/// The NAT analysis of one socket (JS `Nat`).
#[derive(Debug, Clone)]
pub struct Nat {
    samples_host: Vec<Sample>,
    samples_full: Vec<Sample>,
    visited: HashMap<SocketAddrV4, Visit>,
    sampled: usize,
    firewall: Firewall,
    addresses: Option<Vec<SocketAddrV4>>,
    frozen: bool,
    dht_firewalled: bool,
    settled: bool,
    min_samples: usize,
}

impl Nat {
    /// A new analysis; `dht_firewalled` is the DHT node's own verdict (an unfirewalled node is OPEN).
    pub fn new(dht_firewalled: bool) -> Self {
        Self {
            samples_host: Vec::new(),
            samples_full: Vec::new(),
            visited: HashMap::new(),
            sampled: 0,
            firewall: if dht_firewalled {
                Firewall::UNKNOWN
            } else {
                Firewall::OPEN
            },
            addresses: None,
            frozen: false,
            dht_firewalled,
            settled: false,
            min_samples: MIN_SAMPLES,
        }
    }

    /// The firewall kind concluded so far ([`Firewall`]).
    pub fn firewall(&self) -> Firewall {
        self.firewall
    }

    /// The addresses to give the remote peer (`None` while UNKNOWN or OPEN).
    pub fn addresses(&self) -> Option<&[SocketAddrV4]> {
        self.addresses.as_deref()
    }

    /// How many samples were taken.
    pub fn sampled(&self) -> usize {
        self.sampled
    }

    /// Whether the analysis reached a conclusion or gave up (`await nat.analyzing` resolved).
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// Whether the conclusions are frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Picks the nodes to ping for samples (`autoSample`): up to [`MIN_SAMPLES`] minus what is taken or
    /// pending, from `nodes_latest_first`, skipping the 5 most recent ones when there are 8 or more, and
    /// nodes already asked. `pending` is how many pings are still out.
    pub fn sample_targets(
        &mut self,
        nodes_latest_first: &[SocketAddrV4],
        pending: usize,
    ) -> Vec<SocketAddrV4> {
        let mut out = Vec::new();
        let skip = if nodes_latest_first.len() >= SKIP_THRESHOLD {
            SKIP
        } else {
            0
        };
        for node in nodes_latest_first.iter().skip(skip) {
            if self.sampled + pending + out.len() >= self.min_samples {
                break;
            }
            if self.visited.contains_key(node) {
                continue;
            }
            self.visited.insert(*node, Visit::Pinged);
            out.push(*node);
        }
        out
    }

    /// Sampling ended (every ping answered or failed, retries used): the analysis settles with what it has.
    pub fn finish_sampling(&mut self) {
        self.settled = true;
    }

    /// Stops the analysis (`destroy`): it settles as it is and takes no more samples.
    pub fn destroy(&mut self) {
        self.min_samples = 0;
        self.settled = true;
    }

    /// Freezes the conclusions (samples are still counted).
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Unfreezes and recomputes the conclusions.
    pub fn unfreeze(&mut self) {
        self.frozen = false;
        self.update_firewall();
        self.update_addresses();
    }

    /// Tells the analysis the DHT's firewalled verdict changed, and recomputes (`update`).
    pub fn update(&mut self, dht_firewalled: bool) {
        self.dht_firewalled = dht_firewalled;
        if dht_firewalled && self.firewall == Firewall::OPEN {
            self.firewall = Firewall::UNKNOWN;
        }
        self.update_firewall();
        self.update_addresses();
    }

    /// Adds a sample: node `from` saw us at `addr` (`add(addr, from)`). A node counts once.
    pub fn add(&mut self, addr: SocketAddrV4, from: SocketAddrV4) {
        if self.visited.get(&from) == Some(&Visit::Sampled) {
            return;
        }
        self.visited.insert(from, Visit::Sampled);
        add_sample(&mut self.samples_host, *addr.ip(), 0);
        add_sample(&mut self.samples_full, *addr.ip(), addr.port());
        self.sampled += 1;
        if (self.sampled >= 3 || !self.dht_firewalled) && !self.frozen {
            self.update(self.dht_firewalled);
        }
        if self.firewall == Firewall::CONSISTENT
            || self.firewall == Firewall::OPEN
            || self.sampled >= self.min_samples
        {
            self.settled = true;
        }
    }

    fn update_firewall(&mut self) {
        if !self.dht_firewalled {
            self.firewall = Firewall::OPEN;
            return;
        }
        if self.sampled < 3 {
            return;
        }
        let max = self.samples_full.first().map_or(0, |s| s.hits);
        if max >= 3 {
            self.firewall = Firewall::CONSISTENT;
        } else if max == 1 {
            self.firewall = Firewall::RANDOM;
        } else if self.samples_host.len() == 1 && self.sampled > 3 {
            // max == 2 on a single host with two bad samples.
            self.firewall = Firewall::RANDOM;
        } else if self.samples_host.len() > 1
            && self.samples_full.get(1).is_some_and(|s| s.hits > 1)
        {
            // Double hits on two different hosts.
            self.firewall = Firewall::CONSISTENT;
        } else if self.sampled > 4 {
            self.firewall = Firewall::RANDOM;
        }
    }

    fn update_addresses(&mut self) {
        self.addresses = match self.firewall {
            Firewall::RANDOM => self
                .samples_host
                .first()
                .map(|s| vec![SocketAddrV4::new(s.host, s.port)]),
            Firewall::CONSISTENT => {
                let mut out = Vec::new();
                for s in &self.samples_full {
                    if s.hits >= 2 || out.len() < 2 {
                        out.push(SocketAddrV4::new(s.host, s.port));
                    }
                }
                Some(out)
            }
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().expect("addr")
    }

    fn node(i: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, i), 49737)
    }

    #[test]
    fn consistent_after_three_equal_samples() {
        let mut nat = Nat::new(true);
        nat.add(a("198.18.1.1:4000"), node(1));
        nat.add(a("198.18.1.1:4000"), node(2));
        assert_eq!(nat.firewall(), Firewall::UNKNOWN);
        assert!(!nat.is_settled());
        nat.add(a("198.18.1.1:4000"), node(3));
        assert_eq!(nat.firewall(), Firewall::CONSISTENT);
        assert!(nat.is_settled());
        assert_eq!(nat.addresses(), Some(&[a("198.18.1.1:4000")][..]));
    }

    #[test]
    fn a_node_counts_once() {
        let mut nat = Nat::new(true);
        for _ in 0..5 {
            nat.add(a("198.18.1.1:4000"), node(1));
        }
        assert_eq!(nat.sampled(), 1);
        assert_eq!(nat.firewall(), Firewall::UNKNOWN);
    }

    #[test]
    fn random_when_every_port_differs() {
        let mut nat = Nat::new(true);
        for i in 1..=3u8 {
            nat.add(
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 4000 + u16::from(i)),
                node(i),
            );
        }
        assert_eq!(nat.firewall(), Firewall::RANDOM);
        // A random NAT gives its host with port 0.
        assert_eq!(nat.addresses(), Some(&[a("198.18.1.1:0")][..]));
        assert!(!nat.is_settled());
        nat.add(a("198.18.1.1:5000"), node(4));
        assert!(nat.is_settled());
    }

    #[test]
    fn two_of_four_on_one_host_is_random() {
        let mut nat = Nat::new(true);
        nat.add(a("198.18.1.1:4000"), node(1));
        nat.add(a("198.18.1.1:4000"), node(2));
        nat.add(a("198.18.1.1:4001"), node(3));
        assert_eq!(nat.firewall(), Firewall::UNKNOWN);
        nat.add(a("198.18.1.1:4002"), node(4));
        assert_eq!(nat.firewall(), Firewall::RANDOM);
    }

    #[test]
    fn double_hits_on_two_hosts_is_consistent() {
        let mut nat = Nat::new(true);
        nat.add(a("198.18.1.1:4000"), node(1));
        nat.add(a("198.18.1.2:4000"), node(2));
        nat.add(a("198.18.1.1:4000"), node(3));
        assert_eq!(nat.firewall(), Firewall::UNKNOWN);
        nat.add(a("198.18.1.2:4000"), node(4));
        assert_eq!(nat.firewall(), Firewall::CONSISTENT);
        assert_eq!(
            nat.addresses(),
            Some(&[a("198.18.1.1:4000"), a("198.18.1.2:4000")][..])
        );
    }

    #[test]
    fn open_when_the_dht_is_not_firewalled() {
        let mut nat = Nat::new(false);
        assert_eq!(nat.firewall(), Firewall::OPEN);
        nat.add(a("198.18.1.1:4000"), node(1));
        assert_eq!(nat.firewall(), Firewall::OPEN);
        assert!(nat.is_settled());
        assert_eq!(nat.addresses(), None);
        nat.update(true);
        assert_eq!(nat.firewall(), Firewall::UNKNOWN);
    }

    #[test]
    fn frozen_conclusions_do_not_change() {
        let mut nat = Nat::new(true);
        for i in 1..=3 {
            nat.add(a("198.18.1.1:4000"), node(i));
        }
        nat.freeze();
        for i in 4..=9 {
            nat.add(
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, i), 1000 + u16::from(i)),
                node(i),
            );
        }
        assert_eq!(nat.firewall(), Firewall::CONSISTENT);
        nat.unfreeze();
        assert_eq!(nat.addresses().map(<[_]>::len), Some(2));
    }

    #[test]
    fn sample_targets_skip_recent_nodes_and_visited() {
        let mut nat = Nat::new(true);
        let nodes: Vec<_> = (1..=10).map(node).collect();
        let first = nat.sample_targets(&nodes, 0);
        assert_eq!(first, vec![node(6), node(7), node(8), node(9)]);
        // Two answered, two failed: the retry asks the remaining ones.
        nat.add(a("198.18.1.1:4000"), node(6));
        nat.add(a("198.18.1.1:4000"), node(7));
        assert_eq!(nat.sample_targets(&nodes, 0), vec![node(10)]);
        let few: Vec<_> = (1..=3).map(node).collect();
        let mut nat = Nat::new(true);
        assert_eq!(nat.sample_targets(&few, 0), few);
        nat.destroy();
        assert!(nat.is_settled());
    }
}
