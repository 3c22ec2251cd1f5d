//! The swarm's connection manager, sans-IO (`index.js` minus the sockets): peers found, the queue, the retry
//! timer, the set of connections by public key with its duplicate tie-break, and flushes.
//!
//! It takes events (a peer found, a dial finished, an incoming connection, a connection closed, time passing)
//! and queues [`Action`]s for a driver to carry out (dial, abort a dial, hand a connection to the application,
//! destroy one, answer a flush). [`super::Hyperswarm`] drives it on one task; tests drive it by hand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;

use super::connection::{keep_new_connection, Traffic};
use super::peer_info::{PeerQueue, PeerState};
use super::retry_timer::RetryTimer;
use super::{PeerInfo, SwarmStats};
use crate::hyperdht::Connection;

/// What the core needs to know of a connection.
pub trait SwarmConn {
    /// The peer's public key.
    fn remote_public_key(&self) -> [u8; 32];
    /// True when we dialled it.
    fn is_initiator(&self) -> bool;
}

impl SwarmConn for Connection {
    fn remote_public_key(&self) -> [u8; 32] {
        *Connection::remote_public_key(self)
    }

    fn is_initiator(&self) -> bool {
        Connection::is_initiator(self)
    }
}

/// Limits of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreConfig {
    /// Our public key (never dialled, never accepted).
    pub own_key: [u8; 32],
    /// `maxPeers`.
    pub max_peers: usize,
    /// `maxParallel`.
    pub max_parallel: usize,
    /// `maxClientConnections`.
    pub max_client_connections: usize,
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action<C> {
    /// Dial `key`; report with [`SwarmCore::client_done`] under `id`.
    Connect {
        /// The connection's id.
        id: u64,
        /// Whom to dial.
        key: [u8; 32],
        /// Pair through the relay whatever our NAT (`peerInfo.forceRelaying`: a dial of this peer failed
        /// in a way only a relay fixes).
        force_relay: bool,
    },
    /// Abort the dial `id` (the core already counts it as closed).
    AbortConnect {
        /// The dial.
        id: u64,
    },
    /// Hand an opened connection to the application and report its end with [`SwarmCore::closed`].
    Emit {
        /// The connection's id.
        id: u64,
        /// The connection.
        conn: C,
        /// What we know of the peer.
        info: PeerInfo,
        /// Traffic counters the application's handle must update.
        traffic: Arc<Traffic>,
    },
    /// Destroy the emitted connection `id` ([`SwarmCore::closed`] follows when it is gone).
    Destroy {
        /// The connection.
        id: u64,
    },
    /// Destroy a connection the core does not keep (a losing duplicate, a dial that finished after its abort).
    Reject {
        /// The connection.
        conn: C,
    },
    /// Answer flush `flush`.
    FlushDone {
        /// The flush's id (as given to [`SwarmCore::flush`]).
        flush: u64,
        /// False when the swarm was destroyed.
        ok: bool,
    },
}

#[derive(Debug)]
struct Entry {
    id: u64,
    client: bool,
    /// When it opened; `None` while a dial is under way.
    opened: Option<Instant>,
    /// Dialled for a queued peer (flushes count it).
    queued: bool,
    traffic: Arc<Traffic>,
}

#[derive(Debug)]
struct PendingFlush {
    flush: u64,
    missing: usize,
    tick: u64,
}

/// A client-side firewall: true rejects (and bans) the peer.
pub type CoreFirewall = Box<dyn FnMut(&[u8; 32]) -> bool + Send>;

/// The connection manager (see the module docs).
pub struct SwarmCore<C> {
    config: CoreConfig,
    firewall: CoreFirewall,
    peers: HashMap<[u8; 32], PeerState>,
    explicit: HashSet<[u8; 32]>,
    queue: PeerQueue,
    timer: RetryTimer<[u8; 32]>,
    joined: HashSet<[u8; 32]>,
    /// `_allConnections`: opened or being dialled, by remote public key.
    conns: HashMap<[u8; 32], Entry>,
    ids: HashMap<u64, [u8; 32]>,
    /// Incoming connections waiting for the one they replace (by its id) to close.
    swaps: HashMap<u64, C>,
    connecting: usize,
    client_connections: usize,
    /// `connections.size`.
    open: usize,
    pending_flushes: Vec<PendingFlush>,
    flush_tick: u64,
    draining: bool,
    destroyed: bool,
    next_id: u64,
    rng: StdRng,
    stats: SwarmStats,
    actions: VecDeque<Action<C>>,
}

impl<C> std::fmt::Debug for SwarmCore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmCore")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("open", &self.open)
            .field("connecting", &self.connecting)
            .finish_non_exhaustive()
    }
}

impl<C: SwarmConn> SwarmCore<C> {
    /// A core with these limits, client-side firewall, retry timer and randomness (for the queue).
    pub fn new(
        config: CoreConfig,
        firewall: CoreFirewall,
        timer: RetryTimer<[u8; 32]>,
        rng: StdRng,
    ) -> Self {
        Self {
            config,
            firewall,
            peers: HashMap::new(),
            explicit: HashSet::new(),
            queue: PeerQueue::new(),
            timer,
            joined: HashSet::new(),
            conns: HashMap::new(),
            ids: HashMap::new(),
            swaps: HashMap::new(),
            connecting: 0,
            client_connections: 0,
            open: 0,
            pending_flushes: Vec::new(),
            flush_tick: 0,
            draining: false,
            destroyed: false,
            next_id: 0,
            rng,
            stats: SwarmStats::default(),
            actions: VecDeque::new(),
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action<C>> {
        self.actions.pop_front()
    }

    /// When [`Self::poll_timers`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timer.next_deadline()
    }

    /// Requeues the peers whose backoff ran out by `now`.
    pub fn poll_timers(&mut self, now: Instant) {
        for batch in self.timer.poll(now) {
            self.requeue(batch, now);
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> SwarmStats {
        SwarmStats {
            connections: self.open,
            connecting: self.connecting,
            peers: self.peers.len(),
            queued: self.queue.len(),
            ..self.stats
        }
    }

    /// What is known of a peer.
    pub fn peer(&self, key: &[u8; 32]) -> Option<&PeerState> {
        self.peers.get(key)
    }

    /// A topic is joined: peers found under it are retried.
    pub fn topic_joined(&mut self, topic: [u8; 32]) {
        self.joined.insert(topic);
    }

    /// A topic was left.
    pub fn topic_left(&mut self, topic: &[u8; 32]) {
        self.joined.remove(topic);
    }

    fn upsert_peer(
        &mut self,
        key: [u8; 32],
        relay_addresses: Option<Vec<SocketAddrV4>>,
    ) -> Option<&mut PeerState> {
        if key == self.config.own_key {
            return None;
        }
        let p = self
            .peers
            .entry(key)
            .or_insert_with(|| PeerState::new(key, Vec::new()));
        // New is always better.
        p.relay_addresses = relay_addresses.unwrap_or_default();
        Some(p)
    }

    fn peer_info(&self, key: &[u8; 32], client: bool) -> PeerInfo {
        let p = self.peers.get(key);
        PeerInfo {
            public_key: *key,
            relay_addresses: p.map(|p| p.relay_addresses.clone()).unwrap_or_default(),
            topics: p.map(|p| p.topics.clone()).unwrap_or_default(),
            client,
        }
    }

    /// `_handlePeer`: `key` was found under `topic`.
    pub fn handle_peer(
        &mut self,
        topic: [u8; 32],
        key: [u8; 32],
        relay_addresses: Vec<SocketAddrV4>,
        now: Instant,
    ) {
        let connected = self.conns.contains_key(&key);
        let Some(p) = self.upsert_peer(key, Some(relay_addresses)) else {
            return;
        };
        p.add_topic(topic);
        if connected {
            return;
        }
        if !p.prioritized() || p.server() {
            p.reset();
        }
        if p.update_priority() {
            self.enqueue(key, now);
        }
    }

    /// The firewall banned `key` (it rejected an incoming connection).
    pub fn ban(&mut self, key: [u8; 32]) {
        if let Some(p) = self.upsert_peer(key, None) {
            p.banned = true;
            p.queued = false;
        }
        self.queue.remove(&key);
        self.stats.banned_peers += 1;
    }

    /// `joinPeer`: dial `key` directly and keep redialling it.
    pub fn join_peer(&mut self, key: [u8; 32], now: Instant) {
        let Some(p) = self.upsert_peer(key, None) else {
            return;
        };
        p.explicit = true;
        self.explicit.insert(key);
        if self.conns.contains_key(&key) {
            return;
        }
        if self
            .peers
            .get_mut(&key)
            .is_some_and(PeerState::update_priority)
        {
            self.enqueue(key, now);
        }
    }

    /// `leavePeer`.
    pub fn leave_peer(&mut self, key: [u8; 32]) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.explicit = false;
        self.explicit.remove(&key);
        self.maybe_delete_peer(&key);
    }

    fn enqueue(&mut self, key: [u8; 32], now: Instant) {
        let tick = self.flush_tick;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.queued {
            return;
        }
        p.queued = true;
        p.flush_tick = tick;
        self.queue.add(key, p.priority);
        self.attempt_client_connections(now);
    }

    /// `_requeue`: peers whose backoff ran out.
    fn requeue(&mut self, batch: Vec<[u8; 32]>, now: Instant) {
        let tick = self.flush_tick;
        for key in batch {
            let connected = self.conns.contains_key(&key);
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.waiting = false;
            if !p.update_priority() || connected || p.queued {
                continue;
            }
            p.queued = true;
            p.flush_tick = tick;
            self.queue.add(key, p.priority);
        }
        self.attempt_client_connections(now);
    }

    /// `_withinMaxPeers`: explicit peers make room for more connections.
    fn within_max_peers(&self) -> bool {
        let factor = match self.explicit.len() {
            0 => 1,
            1 => 2,
            2 | 3 => 3,
            _ => 4,
        };
        factor * self.conns.len() < self.config.max_peers
    }

    fn should_connect(&self) -> bool {
        !self.destroyed
            && self.connecting < self.config.max_parallel
            && self.within_max_peers()
            && self.client_connections < self.config.max_client_connections
    }

    /// `_attemptClientConnections`.
    fn attempt_client_connections(&mut self, now: Instant) {
        if self.draining {
            return;
        }
        self.draining = true;
        let explicit: Vec<[u8; 32]> = self.explicit.iter().copied().collect();
        for key in explicit {
            if self.destroyed || self.connecting >= self.config.max_parallel {
                break;
            }
            let Some(p) = self.peers.get(&key) else {
                continue;
            };
            let backing_off = p.disconnected_time.is_some_and(|t| {
                now.saturating_duration_since(t) < Duration::from_secs(u64::from(p.attempts))
            });
            if p.attempts >= 5 || backing_off {
                continue;
            }
            self.connect(key, false);
        }
        while !self.queue.is_empty() && self.should_connect() {
            let Some(key) = self.queue.shift(&mut self.rng) else {
                break;
            };
            if let Some(p) = self.peers.get_mut(&key) {
                p.queued = false;
            }
            self.connect(key, true);
        }
        self.draining = false;
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// `_connect`.
    fn connect(&mut self, key: [u8; 32], queued: bool) {
        let banned = self.peers.get(&key).is_none_or(|p| p.banned);
        if banned || self.conns.contains_key(&key) {
            if queued {
                self.flush_maybe(&key);
            }
            return;
        }
        if (self.firewall)(&key) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.banned = true;
            }
            self.stats.banned_peers += 1;
            if queued {
                self.flush_maybe(&key);
            }
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            key,
            Entry {
                id,
                client: true,
                opened: None,
                queued,
                traffic: Arc::new(Traffic::default()),
            },
        );
        self.ids.insert(id, key);
        let mut force_relay = false;
        if let Some(p) = self.peers.get_mut(&key) {
            p.tried = true;
            force_relay = p.force_relaying;
        }
        self.stats.client_attempted += 1;
        self.connecting += 1;
        self.client_connections += 1;
        self.actions.push_back(Action::Connect {
            id,
            key,
            force_relay,
        });
    }

    fn emit(&mut self, id: u64, key: [u8; 32], conn: C, client: bool, now: Instant) {
        let traffic = match self.conns.get_mut(&key) {
            Some(e) => {
                e.opened = Some(now);
                e.traffic.clone()
            }
            None => Arc::new(Traffic::default()),
        };
        let info = self.peer_info(&key, client);
        self.actions.push_back(Action::Emit {
            id,
            conn,
            info,
            traffic,
        });
    }

    /// Dial `id` failed in a way only a relay fixes (`shouldForceRelaying`) and the swarm has a relay: the
    /// peer's next dials go through it, and its attempts start over so that one comes soon. Call before
    /// [`SwarmCore::client_done`].
    pub fn force_relaying(&mut self, id: u64) {
        let Some(key) = self.ids.get(&id) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(key) {
            p.force_relaying = true;
            p.attempts = 0;
        }
    }

    /// Dial `id` finished: with the connection, or `None` when it failed.
    pub fn client_done(&mut self, id: u64, conn: Option<C>, now: Instant) {
        let Some(&key) = self.ids.get(&id) else {
            // Aborted meanwhile (a duplicate, or the swarm was destroyed).
            if let Some(conn) = conn {
                self.actions.push_back(Action::Reject { conn });
            }
            return;
        };
        match conn {
            Some(conn) => {
                let queued = self.conns.get(&key).is_some_and(|e| e.queued);
                self.stats.client_opened += 1;
                self.open += 1;
                if let Some(p) = self.peers.get_mut(&key) {
                    p.connected(now);
                    p.client = true;
                }
                self.emit(id, key, conn, true, now);
                self.connect_done(now);
                if queued {
                    self.flush_maybe(&key);
                }
            }
            None => self.closed(id, now),
        }
    }

    fn connect_done(&mut self, now: Instant) {
        self.connecting = self.connecting.saturating_sub(1);
        if self.connecting < self.config.max_parallel {
            self.attempt_client_connections(now);
        }
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// `_handleServerConnection`: a peer connected to us.
    pub fn server_connection(&mut self, conn: C, now: Instant) {
        if self.destroyed {
            self.actions.push_back(Action::Reject { conn });
            return;
        }
        let key = conn.remote_public_key();
        if let Some(existing) = self.conns.get(&key) {
            let established = existing
                .opened
                .is_some_and(|t| existing.traffic.established(t, now));
            tracing::debug!(
                "hyperswarm: incoming duplicate from {} (existing id {} client {} opened {} established {established})",
                hex::encode(key),
                existing.id,
                existing.client,
                existing.opened.is_some()
            );
            if !keep_new_connection(&self.config.own_key, &key, conn.is_initiator(), established) {
                self.stats.duplicates_dropped += 1;
                self.actions.push_back(Action::Reject { conn });
                return;
            }
            // Replace: close the existing one, take the new one once it is gone.
            self.stats.duplicates_replaced += 1;
            let id = existing.id;
            let opened = existing.opened.is_some();
            self.swaps.insert(id, conn);
            if opened {
                self.actions.push_back(Action::Destroy { id });
            } else {
                self.actions.push_back(Action::AbortConnect { id });
                self.closed(id, now);
            }
            return;
        }
        self.stats.server_opened += 1;
        let id = self.next_id;
        self.next_id += 1;
        if let Some(p) = self.upsert_peer(key, None) {
            p.client = false;
        }
        self.conns.insert(
            key,
            Entry {
                id,
                client: false,
                opened: Some(now),
                queued: false,
                traffic: Arc::new(Traffic::default()),
            },
        );
        self.ids.insert(id, key);
        self.open += 1;
        self.emit(id, key, conn, false, now);
    }

    /// Connection (or dial) `id` ended.
    pub fn closed(&mut self, id: u64, now: Instant) {
        let Some(key) = self.ids.remove(&id) else {
            return;
        };
        let Some(entry) = self.conns.remove(&key) else {
            return;
        };
        let opened = entry.opened.is_some();
        if opened {
            self.open = self.open.saturating_sub(1);
        }
        if entry.client {
            if !opened {
                self.connecting = self.connecting.saturating_sub(1);
            }
            self.stats.client_closed += 1;
            self.client_connections = self.client_connections.saturating_sub(1);
            let requeue = self.should_requeue(&key);
            if let Some(p) = self.peers.get_mut(&key) {
                p.disconnected(now);
                p.waiting = requeue && self.timer.add(key, p, now);
            }
            self.maybe_delete_peer(&key);
            if !opened && entry.queued {
                self.flush_maybe(&key);
            }
        } else {
            self.stats.server_closed += 1;
            self.maybe_delete_peer(&key);
        }
        if let Some(conn) = self.swaps.remove(&id) {
            self.server_connection(conn, now);
        }
        self.attempt_client_connections(now);
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// `_shouldRequeue`: an explicit peer, or one found under a topic still joined.
    fn should_requeue(&self, key: &[u8; 32]) -> bool {
        if self.destroyed {
            return false;
        }
        let Some(p) = self.peers.get(key) else {
            return false;
        };
        p.explicit || p.topics.iter().any(|t| self.joined.contains(t))
    }

    fn maybe_delete_peer(&mut self, key: &[u8; 32]) {
        let gc = self.peers.get(key).is_some_and(PeerState::should_gc);
        if gc && !self.conns.contains_key(key) {
            self.peers.remove(key);
        }
    }

    /// `_flushMaybe`: a queued peer got its attempt.
    fn flush_maybe(&mut self, key: &[u8; 32]) {
        let Some(tick) = self.peers.get(key).map(|p| p.flush_tick) else {
            return;
        };
        let mut done = Vec::new();
        self.pending_flushes.retain_mut(|f| {
            if tick > f.tick {
                return true;
            }
            f.missing = f.missing.saturating_sub(1);
            if f.missing > 0 {
                return true;
            }
            done.push(f.flush);
            false
        });
        for flush in done {
            self.actions
                .push_back(Action::FlushDone { flush, ok: true });
        }
    }

    /// `_flushAllMaybe`: nothing more will be dialled now, so every flush is done.
    fn flush_all_maybe(&mut self) -> bool {
        if self.connecting > 0
            || (self.within_max_peers()
                && self.client_connections < self.config.max_client_connections)
        {
            return false;
        }
        for f in std::mem::take(&mut self.pending_flushes) {
            self.actions.push_back(Action::FlushDone {
                flush: f.flush,
                ok: true,
            });
        }
        true
    }

    /// `flush()` once every discovery is flushed: answered with [`Action::FlushDone`] under `flush` when every
    /// peer queued by now was tried.
    pub fn flush(&mut self, flush: u64) {
        let done = |ok| Action::FlushDone { flush, ok };
        if self.destroyed {
            self.actions.push_back(done(false));
            return;
        }
        if self.flush_all_maybe() {
            self.actions.push_back(done(true));
            return;
        }
        let pending = self.conns.len().saturating_sub(self.open);
        if self.queue.is_empty() && pending == 0 {
            self.actions.push_back(done(true));
            return;
        }
        let tick = self.flush_tick;
        self.flush_tick += 1;
        self.pending_flushes.push(PendingFlush {
            flush,
            missing: self.queue.len() + pending,
            tick,
        });
    }

    /// Destroys everything: dials aborted, connections destroyed, flushes answered `false`; no more dials.
    pub fn destroy(&mut self) {
        self.destroyed = true;
        self.timer.clear();
        self.queue.clear();
        for (_, e) in self.conns.drain() {
            self.actions.push_back(if e.opened.is_some() {
                Action::Destroy { id: e.id }
            } else {
                Action::AbortConnect { id: e.id }
            });
        }
        self.ids.clear();
        for (_, conn) in self.swaps.drain() {
            self.actions.push_back(Action::Reject { conn });
        }
        for f in self.pending_flushes.drain(..) {
            self.actions.push_back(Action::FlushDone {
                flush: f.flush,
                ok: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::sync::atomic::Ordering;

    #[derive(Debug, PartialEq, Eq)]
    struct Fake {
        remote: [u8; 32],
        initiator: bool,
    }

    impl SwarmConn for Fake {
        fn remote_public_key(&self) -> [u8; 32] {
            self.remote
        }

        fn is_initiator(&self) -> bool {
            self.initiator
        }
    }

    const TOPIC: [u8; 32] = [0xaa; 32];
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn core_with(own: u8, config: impl FnOnce(&mut CoreConfig)) -> SwarmCore<Fake> {
        let mut c = CoreConfig {
            own_key: [own; 32],
            max_peers: 64,
            max_parallel: 3,
            max_client_connections: usize::MAX,
        };
        config(&mut c);
        let mut core = SwarmCore::new(
            c,
            Box::new(|_| false),
            RetryTimer::with_times([MS(1000), MS(5000), MS(15000), MS(600_000)]),
            StdRng::seed_from_u64(1),
        );
        core.topic_joined(TOPIC);
        core
    }

    fn core(own: u8) -> SwarmCore<Fake> {
        core_with(own, |_| {})
    }

    fn actions(core: &mut SwarmCore<Fake>) -> Vec<Action<Fake>> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn connect_id(a: &[Action<Fake>], want: u8) -> u64 {
        a.iter()
            .find_map(|a| match a {
                Action::Connect { id, key, .. } if *key == [want; 32] => Some(*id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no dial to {want} in {a:?}"))
    }

    fn incoming(from: u8) -> Fake {
        Fake {
            remote: [from; 32],
            initiator: false,
        }
    }

    fn dialled(to: u8) -> Fake {
        Fake {
            remote: [to; 32],
            initiator: true,
        }
    }

    #[test]
    fn found_peers_are_dialled_at_most_max_parallel_at_once() {
        let t0 = Instant::now();
        let mut c = core(1);
        for k in 2..=6 {
            c.handle_peer(TOPIC, [k; 32], Vec::new(), t0);
        }
        c.handle_peer(TOPIC, [1; 32], Vec::new(), t0); // ourselves: ignored
        let a = actions(&mut c);
        assert_eq!(a.len(), 3, "{a:?}");
        assert_eq!(c.stats().connecting, 3);
        assert_eq!(c.stats().queued, 2);
        // One dial ends: the next queued peer is dialled.
        let Action::Connect { id, key, .. } = &a[0] else {
            panic!("{a:?}")
        };
        c.client_done(*id, Some(dialled(key[0])), t0);
        let a = actions(&mut c);
        assert!(matches!(a[0], Action::Emit { .. }), "{a:?}");
        assert!(matches!(a[1], Action::Connect { .. }), "{a:?}");
        assert_eq!(c.stats().connections, 1);
        assert_eq!(c.stats().queued, 1);
    }

    #[test]
    fn crossing_dials_keep_the_larger_keys_dial_on_both_sides() {
        let t0 = Instant::now();
        // Side "large" (key 9) and side "small" (key 2) dial each other at once.
        let mut large = core(9);
        let mut small = core(2);
        large.handle_peer(TOPIC, [2; 32], Vec::new(), t0);
        small.handle_peer(TOPIC, [9; 32], Vec::new(), t0);
        let large_dial = connect_id(&actions(&mut large), 2);
        let small_dial = connect_id(&actions(&mut small), 9);

        // The small side's dial reaches the large side while the large side's own dial is pending: dropped.
        large.server_connection(incoming(2), t0);
        let a = actions(&mut large);
        assert!(
            matches!(&a[..], [Action::Reject { conn }] if conn.remote == [2; 32]),
            "{a:?}"
        );
        assert_eq!(large.stats().duplicates_dropped, 1);

        // The large side's dial reaches the small side while its own is pending: its dial is aborted and the
        // incoming one is kept.
        small.server_connection(incoming(9), t0);
        let a = actions(&mut small);
        assert!(
            matches!(a[0], Action::AbortConnect { id } if id == small_dial),
            "{a:?}"
        );
        assert!(
            matches!(&a[1], Action::Emit { info, .. } if !info.client && info.public_key == [9; 32]),
            "{a:?}"
        );
        assert_eq!(small.stats().duplicates_replaced, 1);
        assert_eq!(small.stats().connections, 1);
        assert_eq!(small.stats().connecting, 0);
        // The aborted dial's late result is destroyed.
        small.client_done(small_dial, Some(dialled(9)), t0);
        assert!(matches!(&actions(&mut small)[..], [Action::Reject { .. }]));

        // The large side's dial completes: one connection each, the same one.
        large.client_done(large_dial, Some(dialled(2)), t0);
        let a = actions(&mut large);
        assert!(
            matches!(&a[0], Action::Emit { info, .. } if info.client),
            "{a:?}"
        );
        assert_eq!(large.stats().connections, 1);
    }

    #[test]
    fn an_established_connection_yields_to_a_new_one_after_it_closes() {
        let t0 = Instant::now();
        // We have the smaller key, so by the tie-break alone an incoming dial would lose... unless ours is
        // established (bytes went both ways): then the peer must be reconnecting and the new one wins.
        let mut c = core(9);
        c.handle_peer(TOPIC, [2; 32], Vec::new(), t0);
        let id = connect_id(&actions(&mut c), 2);
        c.client_done(id, Some(dialled(2)), t0);
        let traffic = match &actions(&mut c)[0] {
            Action::Emit { traffic, .. } => traffic.clone(),
            other => panic!("{other:?}"),
        };
        // Not established yet: the incoming duplicate is dropped.
        c.server_connection(incoming(2), t0);
        assert!(matches!(&actions(&mut c)[..], [Action::Reject { .. }]));
        traffic.read.store(10, Ordering::Relaxed);
        traffic.written.store(10, Ordering::Relaxed);
        c.server_connection(incoming(2), t0 + MS(100));
        let a = actions(&mut c);
        assert!(
            matches!(&a[..], [Action::Destroy { id: d }] if *d == id),
            "{a:?}"
        );
        // The new one is handed out once the old one closed.
        c.closed(id, t0 + MS(200));
        let a = actions(&mut c);
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::Emit { info, .. } if !info.client)),
            "{a:?}"
        );
        assert_eq!(c.stats().connections, 1);
        assert_eq!(c.stats().server_opened, 1);
        // Idle long enough counts as established too.
        let mut d = core(9);
        d.server_connection(incoming(3), t0);
        let _ = actions(&mut d);
        d.server_connection(incoming(3), t0 + MS(4999));
        assert!(matches!(&actions(&mut d)[..], [Action::Reject { .. }]));
        d.server_connection(incoming(3), t0 + MS(5000));
        assert!(matches!(&actions(&mut d)[..], [Action::Destroy { .. }]));
    }

    #[test]
    fn closed_connections_are_redialled_after_the_backoff_while_the_topic_is_joined() {
        let t0 = Instant::now();
        let mut c = core(1);
        c.handle_peer(TOPIC, [2; 32], Vec::new(), t0);
        let id = connect_id(&actions(&mut c), 2);
        c.client_done(id, Some(dialled(2)), t0);
        let _ = actions(&mut c);
        // Closed after a short while: attempts 1, proven -> the short timer (1 s: ticks every 660 ms).
        c.closed(id, t0 + MS(100));
        assert!(c
            .peer(&[2; 32])
            .is_some_and(|p| p.waiting && p.attempts == 1));
        assert_eq!(c.next_deadline(), Some(t0 + MS(760)));
        c.poll_timers(t0 + MS(760));
        assert!(actions(&mut c).is_empty());
        c.poll_timers(t0 + MS(1420));
        let id = connect_id(&actions(&mut c), 2);
        // This dial fails: attempts 2, proven -> the medium timer.
        c.client_done(id, None, t0 + MS(1500));
        assert_eq!(c.next_deadline(), Some(t0 + MS(1500 + 3300)));
        c.poll_timers(t0 + MS(1500 + 6600));
        let id = connect_id(&actions(&mut c), 2);
        // After leaving the topic, a failure is not retried and the peer is forgotten.
        c.topic_left(&TOPIC);
        c.client_done(id, None, t0 + MS(9000));
        assert_eq!(c.next_deadline(), None);
        assert!(c.peer(&[2; 32]).is_none());
        assert_eq!(c.stats().client_attempted, 3);
    }

    #[test]
    fn flush_waits_for_queued_dials_and_max_peers() {
        let t0 = Instant::now();
        let mut c = core_with(1, |c| c.max_peers = 2);
        for k in 2..=4 {
            c.handle_peer(TOPIC, [k; 32], Vec::new(), t0);
        }
        let a = actions(&mut c);
        let (id2, id3) = (connect_id(&a, 2), connect_id(&a, 3));
        assert_eq!(a.len(), 2, "max_peers 2 limits dials: {a:?}");
        c.flush(7);
        assert!(actions(&mut c).is_empty(), "pending dials");
        c.client_done(id2, Some(dialled(2)), t0);
        assert!(!actions(&mut c)
            .iter()
            .any(|a| matches!(a, Action::FlushDone { .. })));
        c.client_done(id3, None, t0);
        let a = actions(&mut c);
        // The failed dial made room: peer 4 is dialled, and the flush still waits for it.
        let id4 = connect_id(&a, 4);
        assert!(
            !a.iter().any(|a| matches!(a, Action::FlushDone { .. })),
            "{a:?}"
        );
        c.client_done(id4, Some(dialled(4)), t0);
        let a = actions(&mut c);
        assert!(
            a.iter()
                .any(|a| matches!(a, Action::FlushDone { flush: 7, ok: true })),
            "{a:?}"
        );
        // Nothing queued, nothing pending: an immediate answer; after destroy, false.
        c.flush(8);
        assert!(matches!(
            &actions(&mut c)[..],
            [Action::FlushDone { flush: 8, ok: true }]
        ));
        c.destroy();
        let a = actions(&mut c);
        assert_eq!(
            a.iter()
                .filter(|a| matches!(a, Action::Destroy { .. }))
                .count(),
            2
        );
        c.flush(9);
        assert!(matches!(
            &actions(&mut c)[..],
            [Action::FlushDone {
                flush: 9,
                ok: false
            }]
        ));
        c.handle_peer(TOPIC, [5; 32], Vec::new(), t0);
        assert!(actions(&mut c).is_empty(), "no dials after destroy");
    }

    #[test]
    fn firewall_bans_and_explicit_peers_back_off() {
        let t0 = Instant::now();
        let mut c = SwarmCore::<Fake>::new(
            CoreConfig {
                own_key: [1; 32],
                max_peers: 64,
                max_parallel: 3,
                max_client_connections: usize::MAX,
            },
            Box::new(|k| *k == [6; 32]),
            RetryTimer::with_times([MS(1000), MS(5000), MS(15000), MS(600_000)]),
            StdRng::seed_from_u64(2),
        );
        c.topic_joined(TOPIC);
        c.handle_peer(TOPIC, [6; 32], Vec::new(), t0);
        assert!(actions(&mut c).is_empty());
        assert!(c.peer(&[6; 32]).is_some_and(|p| p.banned));
        // Banned peers are not queued again.
        c.handle_peer(TOPIC, [6; 32], Vec::new(), t0);
        assert!(actions(&mut c).is_empty());
        c.ban([7; 32]);
        c.handle_peer(TOPIC, [7; 32], Vec::new(), t0);
        assert!(actions(&mut c).is_empty());

        // An explicit peer is dialled, and redialled no sooner than 1 s x attempts after a failure.
        c.join_peer([8; 32], t0);
        let id = connect_id(&actions(&mut c), 8);
        c.client_done(id, None, t0);
        assert!(c
            .peer(&[8; 32])
            .is_some_and(|p| p.explicit && p.attempts == 1));
        // Another event before 1 s does not redial it...
        c.handle_peer(TOPIC, [9; 32], Vec::new(), t0 + MS(500));
        let a = actions(&mut c);
        assert!(
            !a.iter()
                .any(|a| matches!(a, Action::Connect { key, .. } if *key == [8; 32])),
            "{a:?}"
        );
        // ... the retry timer does (the medium timer for an unproven peer).
        c.poll_timers(t0 + MS(6600));
        connect_id(&actions(&mut c), 8);
        c.leave_peer([8; 32]);
        assert!(c.peer(&[8; 32]).is_some(), "kept while its dial is pending");
    }

    #[test]
    fn a_dial_failing_for_want_of_a_relay_is_redialled_through_it() {
        let t0 = Instant::now();
        let mut c = core(1);
        c.handle_peer(TOPIC, [2; 32], Vec::new(), t0);
        let a = actions(&mut c);
        assert!(
            matches!(
                a[0],
                Action::Connect {
                    force_relay: false,
                    ..
                }
            ),
            "{a:?}"
        );
        let id = connect_id(&a, 2);
        // This one fails with HOLEPUNCH_ABORTED (the driver calls force_relaying first): the attempts start
        // over (a peer past 3 attempts would otherwise be given up) and the redial goes through the relay.
        c.force_relaying(id);
        c.client_done(id, None, t0);
        let p = c.peer(&[2; 32]).expect("peer");
        assert!(p.force_relaying && p.attempts == 1, "{p:?}");
        let mut t = t0;
        let redial = loop {
            t += MS(100);
            assert!(t < t0 + MS(20_000), "no redial");
            c.poll_timers(t);
            let a = actions(&mut c);
            if let Some(Action::Connect { force_relay, .. }) = a
                .into_iter()
                .find(|a| matches!(a, Action::Connect { key, .. } if *key == [2; 32]))
            {
                break force_relay;
            }
        };
        assert!(redial, "the redial goes through the relay");
    }
}
