//! The JS `nat-sampler` package: guesses our public address from what other nodes report seeing.
//!
//! Each sample adds two entries to a ring of 32 (the `host:port` pair and the bare host). A sample that
//! matches one of the last four entries of its kind bumps that entry's hit count instead. The address is
//! trusted when the best entry has at least `threshold` hits, where `threshold` is the number of samples
//! (up to 16) minus a tolerance of 0..3. If only the host is consistent, the port is reported as 0 (a
//! "random" NAT).

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    host: Ipv4Addr,
    port: u16,
    hits: u32,
}

const RING: usize = 32;

/// Public address estimator.
#[derive(Debug, Clone, Default)]
pub struct NatSampler {
    host: Option<Ipv4Addr>,
    port: u16,
    size: usize,
    // Samples live in an arena; the ring holds indexes into it, so shared entries can be bumped.
    arena: Vec<Sample>,
    ring: Vec<usize>,
    a: Option<usize>,
    b: Option<usize>,
    threshold: u32,
    top: usize,
}

impl NatSampler {
    /// An empty sampler.
    pub fn new() -> Self {
        Self::default()
    }

    /// The public host, once enough samples agree.
    pub fn host(&self) -> Option<Ipv4Addr> {
        self.host
    }

    /// The public port, or 0 when unknown or inconsistent.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Number of samples counted towards the threshold (at most 16).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Adds a sample; returns the hit count of its `host:port` entry.
    pub fn add(&mut self, host: Ipv4Addr, port: u16) -> u32 {
        let a = self.bump(host, port, 2);
        let b = self.bump(host, 0, 1);

        if self.ring.len() < RING {
            self.size += 1;
            let tolerance = match self.size {
                0..=3 => 0,
                4..=7 => 1,
                8..=11 => 2,
                _ => 3,
            };
            self.threshold = (self.size - tolerance) as u32;
            self.ring.push(a);
            self.ring.push(b);
            self.top += 2;
        } else {
            if self.top == RING {
                self.top = 0;
            }
            let oa = self.ring[self.top];
            self.ring[self.top] = a;
            self.top += 1;
            self.arena[oa].hits = self.arena[oa].hits.saturating_sub(1);
            let ob = self.ring[self.top];
            self.ring[self.top] = b;
            self.top += 1;
            self.arena[ob].hits = self.arena[ob].hits.saturating_sub(1);
        }

        if self
            .a
            .is_none_or(|x| self.arena[x].hits < self.arena[a].hits)
        {
            self.a = Some(a);
        }
        if self
            .b
            .is_none_or(|x| self.arena[x].hits < self.arena[b].hits)
        {
            self.b = Some(b);
        }

        let best_a = self.a.map(|i| &self.arena[i]);
        let best_b = self.b.map(|i| &self.arena[i]);
        match (best_a, best_b) {
            (Some(sa), _) if sa.hits >= self.threshold => {
                self.host = Some(sa.host);
                self.port = sa.port;
            }
            (_, Some(sb)) if sb.hits >= self.threshold => {
                self.host = Some(sb.host);
                self.port = 0;
            }
            _ => {
                self.host = None;
                self.port = 0;
            }
        }
        self.arena[a].hits
    }

    fn bump(&mut self, host: Ipv4Addr, port: u16, inc: usize) -> usize {
        for i in 0..4 {
            let j = (self.top.wrapping_sub(inc).wrapping_sub(2 * i)) & (RING - 1);
            let Some(&idx) = self.ring.get(j) else { break };
            let s = &mut self.arena[idx];
            if s.port == port && s.host == host {
                s.hits += 1;
                return idx;
            }
        }
        self.new_sample(host, port)
    }

    fn new_sample(&mut self, host: Ipv4Addr, port: u16) -> usize {
        // Reuse arena slots no longer referenced by the ring or the best pointers, so the arena stays small.
        if self.arena.len() > 4 * RING {
            let mut used = vec![false; self.arena.len()];
            for &i in self.ring.iter().chain(self.a.iter()).chain(self.b.iter()) {
                used[i] = true;
            }
            if let Some(free) = used.iter().position(|u| !u) {
                self.arena[free] = Sample {
                    host,
                    port,
                    hits: 1,
                };
                return free;
            }
        }
        self.arena.push(Sample {
            host,
            port,
            hits: 1,
        });
        self.arena.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: Ipv4Addr = Ipv4Addr::new(1, 2, 3, 4);
    const H2: Ipv4Addr = Ipv4Addr::new(5, 6, 7, 8);

    #[test]
    fn consistent_samples() {
        let mut s = NatSampler::new();
        s.add(H1, 1000);
        assert_eq!((s.host(), s.port()), (Some(H1), 1000));
        s.add(H1, 1000);
        s.add(H1, 1000);
        assert_eq!((s.host(), s.port()), (Some(H1), 1000));
    }

    #[test]
    fn random_ports_give_port_zero() {
        let mut s = NatSampler::new();
        s.add(H1, 1000);
        s.add(H1, 1001);
        assert_eq!((s.host(), s.port()), (Some(H1), 0));
    }

    #[test]
    fn disagreeing_hosts_give_nothing() {
        let mut s = NatSampler::new();
        s.add(H1, 1000);
        s.add(H2, 1000);
        assert_eq!((s.host(), s.port()), (None, 0));
    }

    #[test]
    fn many_samples_stay_bounded() {
        let mut s = NatSampler::new();
        for i in 0..1000u16 {
            s.add(H1, 2000 + i);
        }
        assert_eq!((s.host(), s.port()), (Some(H1), 0));
        assert!(s.arena.len() <= 4 * RING + 1);
        for _ in 0..40 {
            s.add(H1, 7);
        }
        assert_eq!((s.host(), s.port()), (Some(H1), 7));
    }
}
