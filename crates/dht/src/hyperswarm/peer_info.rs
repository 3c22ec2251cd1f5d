//! What the swarm knows of one peer (`lib/peer-info.js`): attempts, priority, ban, and the queue peers wait in
//! for a client connection (`shuffled-priority-queue`). Pure state, no I/O.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand::Rng;

/// A connection that lasted this long resets the attempt count on close (`MIN_CONNECTION_TIME`).
pub const MIN_CONNECTION_TIME: Duration = Duration::from_secs(15);

/// Connection priority (`VERY_LOW_PRIORITY` .. `VERY_HIGH_PRIORITY`).
pub type Priority = u8;
/// `VERY_LOW_PRIORITY`.
pub const VERY_LOW_PRIORITY: Priority = 0;
/// `LOW_PRIORITY`.
pub const LOW_PRIORITY: Priority = 1;
/// `NORMAL_PRIORITY`.
pub const NORMAL_PRIORITY: Priority = 2;
/// `HIGH_PRIORITY`.
pub const HIGH_PRIORITY: Priority = 3;
/// `VERY_HIGH_PRIORITY`.
pub const VERY_HIGH_PRIORITY: Priority = 4;

/// The swarm's record of a peer (JS `PeerInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// The peer's public key.
    pub public_key: [u8; 32],
    /// The DHT nodes its announcement came from (hints for connecting).
    pub relay_addresses: Vec<SocketAddrV4>,
    /// Retry after a disconnect (`reconnecting`, true by default).
    pub reconnecting: bool,
    /// A connection to it opened once (`proven`).
    pub proven: bool,
    /// When the current connection opened.
    pub connected_time: Option<Instant>,
    /// When the last connection closed.
    pub disconnected_time: Option<Instant>,
    /// Never connect or accept (`banned`; set by the firewall).
    pub banned: bool,
    /// A connection was tried (`tried`).
    pub tried: bool,
    /// Joined by key rather than found under a topic (`explicit`).
    pub explicit: bool,
    /// In the retry timer (`waiting`).
    pub waiting: bool,
    /// In the connection queue (`queued`).
    pub queued: bool,
    /// The live connection is ours (we are the client).
    pub client: bool,
    /// Topics it was found under, in order.
    pub topics: Vec<[u8; 32]>,
    /// Failed or short-lived connections in a row (`attempts`).
    pub attempts: u32,
    /// Dial through the swarm's relay whatever our NAT (`forceRelaying`).
    pub force_relaying: bool,
    /// Current priority.
    pub priority: Priority,
    /// The swarm's flush tick when it was queued (`_flushTick`).
    pub flush_tick: u64,
}

impl PeerState {
    /// A new peer (`new PeerInfo({ publicKey, relayAddresses })`).
    pub fn new(public_key: [u8; 32], relay_addresses: Vec<SocketAddrV4>) -> Self {
        Self {
            public_key,
            relay_addresses,
            reconnecting: true,
            proven: false,
            connected_time: None,
            disconnected_time: None,
            banned: false,
            tried: false,
            explicit: false,
            waiting: false,
            queued: false,
            client: false,
            topics: Vec::new(),
            attempts: 0,
            force_relaying: false,
            priority: NORMAL_PRIORITY,
            flush_tick: 0,
        }
    }

    /// The live connection is the peer's (`server` getter: `!client`).
    pub fn server(&self) -> bool {
        !self.client
    }

    /// `prioritized`: priority at least normal.
    pub fn prioritized(&self) -> bool {
        self.priority >= NORMAL_PRIORITY
    }

    fn get_priority(&self) -> Priority {
        let stale = self.tried && !self.proven;
        if stale || self.attempts > 3 {
            VERY_LOW_PRIORITY
        } else if self.attempts == 3 {
            LOW_PRIORITY
        } else if self.attempts == 2 {
            HIGH_PRIORITY
        } else if self.attempts == 1 {
            VERY_HIGH_PRIORITY
        } else {
            NORMAL_PRIORITY
        }
    }

    /// A connection opened (`_connected`).
    pub fn connected(&mut self, now: Instant) {
        self.proven = true;
        self.connected_time = Some(now);
    }

    /// A connection (or attempt) closed (`_disconnected`): a connection that lasted
    /// [`MIN_CONNECTION_TIME`] resets the attempts first (fast retry).
    pub fn disconnected(&mut self, now: Instant) {
        self.disconnected_time = Some(now);
        if let Some(t) = self.connected_time.take() {
            if now.saturating_duration_since(t) >= MIN_CONNECTION_TIME {
                self.attempts = 0;
            }
        }
        self.attempts += 1;
    }

    /// `_deprioritize`.
    pub fn deprioritize(&mut self) {
        self.attempts = 3;
    }

    /// `_reset`: rediscovered, start afresh.
    pub fn reset(&mut self) {
        self.client = false;
        self.proven = false;
        self.tried = false;
        self.attempts = 0;
    }

    /// `_updatePriority`: recomputes the priority; false when the peer must not be queued now.
    pub fn update_priority(&mut self) -> bool {
        if self.explicit && self.attempts > 3 {
            self.deprioritize();
        }
        if self.banned || self.queued || self.attempts > 3 {
            return false;
        }
        self.priority = self.get_priority();
        true
    }

    /// Records a topic it was found under (`_topic`); false if known already.
    pub fn add_topic(&mut self, topic: [u8; 32]) -> bool {
        if self.topics.contains(&topic) {
            return false;
        }
        self.topics.push(topic);
        true
    }

    /// May be forgotten once it has no connection (`shouldGC`).
    pub fn should_gc(&self) -> bool {
        !(self.banned || self.queued || self.explicit || self.waiting)
    }
}

/// Peers waiting for a client connection: the highest priority first, in random order within a priority
/// (`shuffled-priority-queue`).
#[derive(Debug, Default, Clone)]
pub struct PeerQueue {
    buckets: Vec<Vec<[u8; 32]>>,
    index: HashMap<[u8; 32], Priority>,
}

impl PeerQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queued peers.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No queued peer.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Queues `key` at `priority` (a key queued already stays where it is).
    pub fn add(&mut self, key: [u8; 32], priority: Priority) {
        if self.index.contains_key(&key) {
            return;
        }
        let p = usize::from(priority);
        if self.buckets.len() <= p {
            self.buckets.resize_with(p + 1, Vec::new);
        }
        if let Some(b) = self.buckets.get_mut(p) {
            b.push(key);
            self.index.insert(key, priority);
        }
    }

    /// Takes a random peer of the highest priority present.
    pub fn shift(&mut self, rng: &mut impl Rng) -> Option<[u8; 32]> {
        let bucket = self.buckets.iter_mut().rev().find(|b| !b.is_empty())?;
        let i = rng.gen_range(0..bucket.len());
        let key = bucket.swap_remove(i);
        self.index.remove(&key);
        Some(key)
    }

    /// Removes `key` if queued.
    pub fn remove(&mut self, key: &[u8; 32]) -> bool {
        let Some(p) = self.index.remove(key) else {
            return false;
        };
        if let Some(b) = self.buckets.get_mut(usize::from(p)) {
            b.retain(|k| k != key);
        }
        true
    }

    /// Drops every queued peer.
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn priority_follows_attempts_as_peer_info_js() {
        let now = Instant::now();
        let mut p = PeerState::new([1; 32], Vec::new());
        assert!(p.update_priority());
        assert_eq!(p.priority, NORMAL_PRIORITY);
        let expected = [VERY_HIGH_PRIORITY, HIGH_PRIORITY, LOW_PRIORITY];
        for want in expected {
            p.disconnected(now);
            assert!(p.update_priority());
            assert_eq!(p.priority, want, "after {} attempts", p.attempts);
        }
        p.disconnected(now);
        assert_eq!(p.attempts, 4);
        assert!(!p.update_priority(), "more than 3 attempts: give up");
        // Tried but never proven: stale.
        let mut q = PeerState::new([2; 32], Vec::new());
        q.tried = true;
        assert!(q.update_priority());
        assert_eq!(q.priority, VERY_LOW_PRIORITY);
        // Explicit peers are deprioritized instead of dropped.
        p.explicit = true;
        assert!(p.update_priority());
        assert_eq!((p.attempts, p.priority), (3, LOW_PRIORITY));
        // Banned and queued peers are not (re)queued.
        p.banned = true;
        assert!(!p.update_priority());
        p.banned = false;
        p.queued = true;
        assert!(!p.update_priority());
    }

    #[test]
    fn a_long_connection_resets_attempts() {
        let t0 = Instant::now();
        let mut p = PeerState::new([1; 32], Vec::new());
        p.attempts = 3;
        p.connected(t0);
        p.disconnected(t0 + MIN_CONNECTION_TIME - Duration::from_millis(1));
        assert_eq!(p.attempts, 4, "short connection counts as an attempt");
        p.attempts = 3;
        p.connected(t0);
        p.disconnected(t0 + MIN_CONNECTION_TIME);
        assert_eq!(p.attempts, 1, "long connection: fast retry");
        assert!(p.proven);
        assert_eq!(p.connected_time, None);
    }

    #[test]
    fn gc_only_idle_peers() {
        let mut p = PeerState::new([1; 32], Vec::new());
        assert!(p.should_gc());
        for f in [
            |p: &mut PeerState| p.banned = true,
            |p: &mut PeerState| p.queued = true,
            |p: &mut PeerState| p.explicit = true,
            |p: &mut PeerState| p.waiting = true,
        ] {
            let mut q = p.clone();
            f(&mut q);
            assert!(!q.should_gc());
        }
        assert!(p.add_topic([5; 32]));
        assert!(!p.add_topic([5; 32]));
        assert_eq!(p.topics, vec![[5; 32]]);
    }

    #[test]
    fn queue_takes_highest_priority_first_shuffled_within() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut q = PeerQueue::new();
        q.add([1; 32], NORMAL_PRIORITY);
        q.add([2; 32], VERY_HIGH_PRIORITY);
        q.add([3; 32], NORMAL_PRIORITY);
        q.add([4; 32], VERY_LOW_PRIORITY);
        q.add([2; 32], LOW_PRIORITY);
        assert_eq!(q.len(), 4);
        assert_eq!(q.shift(&mut rng), Some([2; 32]));
        let mut mid = vec![
            q.shift(&mut rng).expect("normal"),
            q.shift(&mut rng).expect("normal"),
        ];
        mid.sort_unstable();
        assert_eq!(mid, vec![[1; 32], [3; 32]]);
        assert!(q.remove(&[4; 32]));
        assert!(!q.remove(&[4; 32]));
        assert_eq!(q.shift(&mut rng), None);
        assert!(q.is_empty());
        // Both orders of equal priorities occur.
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..64 {
            q.add([1; 32], NORMAL_PRIORITY);
            q.add([3; 32], NORMAL_PRIORITY);
            firsts.insert(q.shift(&mut rng));
            q.clear();
        }
        assert_eq!(firsts.len(), 2);
    }
}
