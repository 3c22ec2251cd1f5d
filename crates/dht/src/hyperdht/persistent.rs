//! The storage side of a persistent hyperdht node (`hyperdht/lib/persistent.js`, plus the record part of
//! `lib/router.js`): answers LOOKUP, ANNOUNCE (and refreshes), UNANNOUNCE, FIND_PEER, MUTABLE_PUT/GET and
//! IMMUTABLE_PUT/GET requests that reach a dht-rpc node, with the JS caches' size and age limits.
//!
//! Sans-IO: [`Persistent::handle`] takes an [`IncomingRequest`] and says how to answer it
//! ([`Answer`]); the caller sends the reply (e.g. with [`crate::dht_rpc::node::Dht::reply`]). As a
//! dht-rpc [`RequestHandler`] it answers them itself: [`ServeHyperdht::serve_hyperdht`] installs one in a
//! driver, and lets the servers the node hosts claim their handshakes ([`DhtHandle::claim_target`]). Only
//! persistent nodes (with an id) store anything, as in the JS. PEER_HANDSHAKE and PEER_HOLEPUNCH are
//! routed as by a JS node that hosts no server itself (between a client and the node a server announced
//! itself through).
//!
//! Differences from the JS: a LOOKUP returns the first 20 stored records rather than 20 picked at
//! random.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::constants::{ns, Command, ErrorCode, Mode};
use super::messages::{
    announce_signable, verify, Announce, Handshake, Holepunch, Key, LookupReply,
    MutableGetResponse, MutablePutRequest,
};
use crate::compact_encoding::{Decode, Encode, Reader};
use crate::dht_rpc::driver::{DhtHandle, DriverError};
use crate::dht_rpc::handler::{Handled, RequestHandler, Responder};
use crate::dht_rpc::hash::blake2b256;
use crate::dht_rpc::node::{IncomingRequest, ReplyOpts};

/// Largest accepted future drift of an announce's bump timestamp.
pub const MAX_BUMP_DRIFT_MS: u64 = 60_000;
/// At most this many records are returned by a LOOKUP.
pub const LOOKUP_RECORDS: usize = 20;
/// At most this many relay addresses are kept per announced record.
pub const MAX_RELAY_ADDRESSES: usize = 3;

/// How to answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Reply with a value (`req.reply(value, { token, closerNodes, to })`).
    Reply {
        /// The value.
        value: Option<Vec<u8>>,
        /// Include a token.
        token: bool,
        /// Include closer nodes.
        closer_nodes: bool,
        /// Send the reply there instead of to the requester (the router answers a client on behalf
        /// of a server).
        to: Option<SocketAddrV4>,
    },
    /// Forward the request, under its tid, with this value to another node (`req.relay(value, to)`).
    Relay {
        /// The new request value.
        value: Vec<u8>,
        /// Where to send it.
        to: SocketAddrV4,
    },
    /// Reply with an error code (`req.error(code)`: no token, closer nodes).
    Error(ErrorCode),
    /// Do not answer (malformed or unauthorised request; the JS stays silent too).
    Drop,
}

impl Answer {
    fn value(value: Option<Vec<u8>>) -> Self {
        Self::Reply {
            value,
            token: true,
            closer_nodes: true,
            to: None,
        }
    }

    fn stored() -> Self {
        Self::Reply {
            value: None,
            token: false,
            closer_nodes: false,
            to: None,
        }
    }

    fn routed(value: Vec<u8>, to: Option<SocketAddrV4>) -> Self {
        Self::Reply {
            value: Some(value),
            token: false,
            closer_nodes: false,
            to,
        }
    }
}

/// Size and age limits of the caches (`defaultCacheOpts` in hyperdht).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOpts {
    /// Entries per cache generation (default 65536; mutable and immutable caches take half).
    pub max_size: usize,
    /// Age of announcements and refreshes (default 20 minutes).
    pub max_age: Duration,
    /// Age of mutable and immutable values (default 48 hours).
    pub max_value_age: Duration,
}

impl Default for CacheOpts {
    fn default() -> Self {
        Self {
            max_size: 65536,
            max_age: Duration::from_secs(20 * 60),
            max_value_age: Duration::from_secs(48 * 60 * 60),
        }
    }
}

/// How many periodic collections are due at `now` (`None` if none), moving `next_gc` past `now`.
fn due_collections(next_gc: &mut Instant, interval: Duration, now: Instant) -> Option<u128> {
    if now < *next_gc {
        return None;
    }
    let period = interval.as_nanos().max(1);
    let late = (now - *next_gc).as_nanos();
    let runs = late / period + 1;
    let until_next = period - late % period;
    *next_gc = now + Duration::from_nanos(u64::try_from(until_next).unwrap_or(u64::MAX));
    Some(runs)
}

/// The `xache` two-generation cache: entries live in `latest`, move to `oldest` on garbage collection
/// (when `latest` reaches `max_size`, or every 2/3 of `max_age`), and are dropped at the next one unless
/// read (which moves them back to `latest`).
#[derive(Debug, Clone)]
pub struct MaxCache<V> {
    max_size: usize,
    interval: Duration,
    next_gc: Instant,
    gced: bool,
    latest: HashMap<Key, V>,
    oldest: HashMap<Key, V>,
}

impl<V> MaxCache<V> {
    /// An empty cache.
    pub fn new(max_size: usize, max_age: Duration, now: Instant) -> Self {
        let interval = max_age.mul_f64(2.0 / 3.0).max(Duration::from_millis(1));
        Self {
            max_size: max_size.max(1),
            interval,
            next_gc: now + interval,
            gced: false,
            latest: HashMap::new(),
            oldest: HashMap::new(),
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.latest.len() + self.oldest.len()
    }

    /// Stores a value.
    pub fn set(&mut self, k: Key, v: V) {
        self.latest.insert(k, v);
        self.oldest.remove(&k);
        if self.latest.len() >= self.max_size {
            self.gc();
        }
    }

    /// Reads a value, refreshing it.
    pub fn get(&mut self, k: &Key) -> Option<&V> {
        if let Some(v) = self.oldest.remove(k) {
            self.latest.insert(*k, v);
        }
        self.latest.get(k)
    }

    /// Removes a value.
    pub fn delete(&mut self, k: &Key) -> Option<V> {
        self.latest.remove(k).or_else(|| self.oldest.remove(k))
    }

    fn gc(&mut self) {
        self.gced = true;
        self.oldest = std::mem::take(&mut self.latest);
    }

    /// Runs the age-based collection when due.
    pub fn tick(&mut self, now: Instant) {
        let Some(runs) = due_collections(&mut self.next_gc, self.interval, now) else {
            return;
        };
        // Past two collections every generation is empty: further runs change nothing.
        for _ in 0..runs.min(2) {
            if !self.gced {
                self.gc();
            }
            self.gced = false;
        }
    }
}

/// `record-cache`: per-topic sets of records keyed by public key, in two generations.
#[derive(Debug, Clone)]
pub struct RecordCache {
    max_size: usize,
    interval: Duration,
    next_gc: Instant,
    gced: bool,
    fresh: RecordStore,
    stale: RecordStore,
}

#[derive(Debug, Clone, Default)]
struct RecordStore {
    topics: HashMap<Key, Vec<(Key, Vec<u8>)>>,
    size: usize,
}

impl RecordStore {
    fn add(&mut self, topic: Key, pk: Key, record: Vec<u8>) -> bool {
        let set = self.topics.entry(topic).or_default();
        if set.iter().any(|(k, _)| *k == pk) {
            return false;
        }
        set.push((pk, record));
        self.size += 1;
        true
    }

    fn remove(&mut self, topic: &Key, pk: &Key) -> bool {
        let Some(set) = self.topics.get_mut(topic) else {
            return false;
        };
        let Some(i) = set.iter().position(|(k, _)| k == pk) else {
            return false;
        };
        set.swap_remove(i);
        self.size -= 1;
        if set.is_empty() {
            self.topics.remove(topic);
        }
        true
    }

    fn get(&self, topic: &Key) -> &[(Key, Vec<u8>)] {
        self.topics.get(topic).map_or(&[], |v| v.as_slice())
    }
}

impl RecordCache {
    /// An empty cache.
    pub fn new(max_size: usize, max_age: Duration, now: Instant) -> Self {
        let interval = max_age.mul_f64(2.0 / 3.0).max(Duration::from_millis(1));
        Self {
            max_size: max_size.max(1),
            interval,
            next_gc: now + interval,
            gced: false,
            fresh: RecordStore::default(),
            stale: RecordStore::default(),
        }
    }

    /// Adds (or renews) a record of `pk` under `topic`. An already fresh record is kept as it is, as
    /// in the JS.
    pub fn add(&mut self, topic: Key, pk: Key, record: Vec<u8>) {
        self.stale.remove(&topic, &pk);
        if self.fresh.add(topic, pk, record) && self.fresh.size > self.max_size {
            self.gc();
        }
    }

    /// Removes the record of `pk` under `topic`.
    pub fn remove(&mut self, topic: &Key, pk: &Key) {
        self.fresh.remove(topic, pk);
        self.stale.remove(topic, pk);
    }

    /// Up to `n` records under `topic` (all of them when `n` is 0), picked at random among the fresh and
    /// stale ones, in random order, as JS `record-cache` does. A killed peer's record stays until it ages
    /// out (about 20 minutes); picking the first `n` would hide every record added after `n` of those.
    pub fn get(&self, topic: &Key, n: usize) -> Vec<Vec<u8>> {
        self.get_with(topic, n, &mut rand::thread_rng())
    }

    /// [`RecordCache::get`] with the given source of randomness.
    pub fn get_with<R: rand::Rng + ?Sized>(
        &self,
        topic: &Key,
        n: usize,
        rng: &mut R,
    ) -> Vec<Vec<u8>> {
        let (fresh, stale) = (self.fresh.get(topic), self.stale.get(topic));
        let len = fresh.len() + stale.len();
        let n = if n == 0 { len } else { n.min(len) };
        rand::seq::index::sample(rng, len, n)
            .into_iter()
            .filter_map(|i| {
                fresh
                    .get(i)
                    .or_else(|| stale.get(i.wrapping_sub(fresh.len())))
                    .map(|(_, r)| r.clone())
            })
            .collect()
    }

    fn gc(&mut self) {
        self.stale = std::mem::take(&mut self.fresh);
        self.gced = true;
    }

    /// Runs the age-based collection when due.
    pub fn tick(&mut self, now: Instant) {
        let Some(runs) = due_collections(&mut self.next_gc, self.interval, now) else {
            return;
        };
        // Past two collections every generation is empty: further runs change nothing.
        for _ in 0..runs.min(2) {
            if !self.gced {
                self.gc();
            }
            self.gced = false;
        }
    }
}

/// A record announced by the peer whose public key hashes to the topic ("announce self"): the router
/// keeps it with the node it came through, for FIND_PEER and LOOKUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The node the announcement came from (where handshakes for the peer are relayed).
    pub relay: SocketAddrV4,
    /// The encoded [`super::messages::Peer`] record.
    pub record: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Refresh {
    topic: Key,
    record: Vec<u8>,
    announce_self: bool,
}

/// The stores of a persistent hyperdht node.
#[derive(Debug, Clone)]
pub struct Persistent {
    records: RecordCache,
    bumps: MaxCache<u64>,
    refreshes: MaxCache<Refresh>,
    mutables: MaxCache<Vec<u8>>,
    immutables: MaxCache<Vec<u8>>,
    forwards: MaxCache<Forward>,
}

fn decode<'a, T: Decode<'a>>(value: Option<&'a [u8]>) -> Option<T> {
    value.and_then(|v| T::from_bytes(v).ok())
}

impl Persistent {
    /// Empty stores.
    pub fn new(opts: CacheOpts, now: Instant) -> Self {
        let half = (opts.max_size / 2).max(1);
        Self {
            records: RecordCache::new(opts.max_size, opts.max_age, now),
            bumps: MaxCache::new(opts.max_size, opts.max_age, now),
            refreshes: MaxCache::new(opts.max_size, opts.max_age, now),
            mutables: MaxCache::new(half, opts.max_value_age, now),
            immutables: MaxCache::new(half, opts.max_value_age, now),
            forwards: MaxCache::new(opts.max_size, opts.max_age, now),
        }
    }

    /// Ages the caches; call it now and then (every few seconds is plenty).
    pub fn tick(&mut self, now: Instant) {
        self.records.tick(now);
        self.bumps.tick(now);
        self.refreshes.tick(now);
        self.mutables.tick(now);
        self.immutables.tick(now);
        self.forwards.tick(now);
    }

    /// The record and relay of a peer that announced itself under `target` (its key's hash).
    pub fn forward(&mut self, target: &Key) -> Option<&Forward> {
        self.forwards.get(target)
    }

    /// Handles a hyperdht storage command. `node_id` is our id (`None` while ephemeral: nothing is
    /// stored or served then, and the caller should answer UNKNOWN_COMMAND as the JS does); `wall_ms`
    /// is the wall clock in milliseconds since the Unix epoch (bump timestamps are checked against it).
    /// Returns `None` for commands this does not handle (plugins, unknown).
    pub fn handle(
        &mut self,
        req: &IncomingRequest,
        node_id: Option<&Key>,
        wall_ms: u64,
    ) -> Option<Answer> {
        if req.internal {
            return None;
        }
        // Routing works on ephemeral nodes too (they just never hold announcements).
        match Command::from(req.command) {
            Command::PEER_HANDSHAKE => return Some(self.on_peer_handshake(req)),
            Command::PEER_HOLEPUNCH => return Some(self.on_peer_holepunch(req)),
            _ => {}
        }
        let node_id = node_id?;
        let answer = match Command::from(req.command) {
            Command::FIND_PEER => self.on_find_peer(req),
            Command::LOOKUP => self.on_lookup(req),
            Command::ANNOUNCE => self.on_announce(req, node_id, wall_ms),
            Command::UNANNOUNCE => self.on_unannounce(req, node_id),
            Command::MUTABLE_PUT => self.on_mutable_put(req),
            Command::MUTABLE_GET => self.on_mutable_get(req),
            Command::IMMUTABLE_PUT => self.on_immutable_put(req),
            Command::IMMUTABLE_GET => self.on_immutable_get(req),
            _ => return None,
        };
        Some(answer)
    }

    /// The router's handshake forwarding for a node that hosts no server: a client's handshake goes to
    /// the node the server announced through (or the relay it names), a server's answer back to the
    /// client.
    fn on_peer_handshake(&mut self, req: &IncomingRequest) -> Answer {
        let Some(hs) = decode::<Handshake>(req.value.as_deref()) else {
            return Answer::Drop;
        };
        let relay = req
            .target
            .and_then(|t| self.forwards.get(&t).map(|f| f.relay));
        match hs.mode {
            Mode::FROM_CLIENT => {
                let Some(to) = hs.relay_address.or(relay) else {
                    // Help the client route closer.
                    return Answer::Reply {
                        value: None,
                        token: false,
                        closer_nodes: true,
                        to: None,
                    };
                };
                let fwd = Handshake {
                    mode: Mode::FROM_RELAY,
                    noise: hs.noise,
                    peer_address: Some(req.from),
                    relay_address: None,
                };
                Answer::Relay {
                    value: fwd.to_bytes(),
                    to,
                }
            }
            Mode::FROM_RELAY => {
                let Some(to) = relay else { return Answer::Drop };
                let fwd = Handshake {
                    mode: Mode::FROM_SECOND_RELAY,
                    noise: hs.noise,
                    peer_address: hs.peer_address,
                    relay_address: Some(req.from),
                };
                Answer::Relay {
                    value: fwd.to_bytes(),
                    to,
                }
            }
            Mode::FROM_SERVER => {
                let Some(client) = hs.peer_address else {
                    return Answer::Drop;
                };
                let reply = Handshake {
                    mode: Mode::REPLY,
                    noise: hs.noise,
                    peer_address: Some(req.from),
                    relay_address: None,
                };
                Answer::routed(reply.to_bytes(), Some(client))
            }
            _ => Answer::Drop,
        }
    }

    /// The router's holepunch forwarding for a node that hosts no server.
    fn on_peer_holepunch(&mut self, req: &IncomingRequest) -> Answer {
        let Some(hp) = decode::<Holepunch>(req.value.as_deref()) else {
            return Answer::Drop;
        };
        let relay = req
            .target
            .and_then(|t| self.forwards.get(&t).map(|f| f.relay));
        match hp.mode {
            Mode::FROM_CLIENT => {
                let Some(to) = hp.peer_address.or(relay) else {
                    return Answer::Drop;
                };
                let fwd = Holepunch {
                    mode: Mode::FROM_RELAY,
                    id: hp.id,
                    payload: hp.payload,
                    peer_address: Some(req.from),
                };
                Answer::Relay {
                    value: fwd.to_bytes(),
                    to,
                }
            }
            Mode::FROM_SERVER => {
                let reply = Holepunch {
                    mode: Mode::REPLY,
                    id: hp.id,
                    payload: hp.payload,
                    peer_address: Some(req.from),
                };
                Answer::routed(reply.to_bytes(), hp.peer_address)
            }
            _ => Answer::Drop,
        }
    }

    fn on_find_peer(&mut self, req: &IncomingRequest) -> Answer {
        let Some(target) = req.target else {
            return Answer::Drop;
        };
        Answer::value(self.forwards.get(&target).map(|f| f.record.clone()))
    }

    fn on_lookup(&mut self, req: &IncomingRequest) -> Answer {
        let Some(target) = req.target else {
            return Answer::Drop;
        };
        let mut records = self.records.get(&target, LOOKUP_RECORDS);
        let bump = self.bumps.get(&target).copied().unwrap_or(0);
        if records.len() < LOOKUP_RECORDS {
            if let Some(fwd) = self.forwards.get(&target) {
                records.push(fwd.record.clone());
            }
        }
        if records.is_empty() {
            return Answer::value(None);
        }
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        Answer::value(Some(LookupReply::encode_raw(&refs, bump)))
    }

    fn on_announce(&mut self, req: &IncomingRequest, node_id: &Key, wall_ms: u64) -> Answer {
        let (Some(target), Some(token)) = (req.target, req.token) else {
            return Answer::Drop;
        };
        let Some(ann) = decode::<Announce>(req.value.as_deref()) else {
            return Answer::Drop;
        };
        let Some(mut peer) = ann.peer else {
            return match ann.refresh {
                Some(refresh) => self.on_refresh(&refresh, req.from),
                None => Answer::Drop,
            };
        };
        let signable = announce_signable(
            &target,
            &token,
            node_id,
            &peer,
            ann.refresh.as_ref(),
            &ns::announce(),
        );
        let Some(signature) = ann.signature else {
            return Answer::Drop;
        };
        if !verify(&signature, &signable, &peer.public_key) {
            return Answer::Drop;
        }
        peer.relay_addresses.truncate(MAX_RELAY_ADDRESSES);
        let announce_self = blake2b256(&[&peer.public_key]) == target;
        let record = peer.to_bytes();
        if announce_self {
            self.forwards.set(
                target,
                Forward {
                    relay: req.from,
                    record: record.clone(),
                },
            );
            self.records.remove(&target, &peer.public_key);
        } else {
            let current = self.bumps.get(&target).copied().unwrap_or(0);
            if ann.bump > current && ann.bump <= wall_ms.saturating_add(MAX_BUMP_DRIFT_MS) {
                self.bumps.set(target, ann.bump);
            }
            self.records.add(target, peer.public_key, record.clone());
        }
        if let Some(refresh) = ann.refresh {
            self.refreshes.set(
                refresh,
                Refresh {
                    topic: target,
                    record,
                    announce_self,
                },
            );
        }
        Answer::stored()
    }

    fn on_refresh(&mut self, token: &Key, from: SocketAddrV4) -> Answer {
        let active = blake2b256(&[token]);
        let Some(r) = self.refreshes.get(&active).cloned() else {
            return Answer::Drop;
        };
        let Some(pk) = r
            .record
            .get(..32)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Answer::Drop;
        };
        if r.announce_self {
            self.forwards.set(
                r.topic,
                Forward {
                    relay: from,
                    record: r.record.clone(),
                },
            );
            self.records.remove(&r.topic, &pk);
        } else {
            self.records.add(r.topic, pk, r.record.clone());
        }
        self.refreshes.delete(&active);
        self.refreshes.set(*token, r);
        Answer::stored()
    }

    fn on_unannounce(&mut self, req: &IncomingRequest, node_id: &Key) -> Answer {
        let (Some(target), Some(token)) = (req.target, req.token) else {
            return Answer::Drop;
        };
        let Some(unann) = decode::<Announce>(req.value.as_deref()) else {
            return Answer::Drop;
        };
        let (Some(peer), Some(signature)) = (unann.peer, unann.signature) else {
            return Answer::Drop;
        };
        let signable = announce_signable(
            &target,
            &token,
            node_id,
            &peer,
            unann.refresh.as_ref(),
            &ns::unannounce(),
        );
        if !verify(&signature, &signable, &peer.public_key) {
            return Answer::Drop;
        }
        if blake2b256(&[&peer.public_key]) == target {
            self.forwards.delete(&target);
        }
        self.records.remove(&target, &peer.public_key);
        Answer::stored()
    }

    fn on_mutable_get(&mut self, req: &IncomingRequest) -> Answer {
        let (Some(target), Some(value)) = (req.target, req.value.as_deref()) else {
            return Answer::Drop;
        };
        let Ok(seq) = Reader::new(value).uint() else {
            return Answer::Drop;
        };
        let Some(stored) = self.mutables.get(&target) else {
            return Answer::value(None);
        };
        let local_seq = Reader::new(stored).uint().unwrap_or(0);
        Answer::value(if local_seq < seq {
            None
        } else {
            Some(stored.clone())
        })
    }

    fn on_mutable_put(&mut self, req: &IncomingRequest) -> Answer {
        if req.token.is_none() {
            return Answer::Drop;
        }
        let Some(target) = req.target else {
            return Answer::Drop;
        };
        let Some(put) = decode::<MutablePutRequest>(req.value.as_deref()) else {
            return Answer::Drop;
        };
        if blake2b256(&[&put.public_key]) != target {
            return Answer::Drop;
        }
        let signable = super::messages::mutable_signable(put.seq, &put.value);
        if !verify(&put.signature, &signable, &put.public_key) {
            return Answer::Drop;
        }
        if let Some(existing) = self
            .mutables
            .get(&target)
            .and_then(|b| MutableGetResponse::from_bytes(b).ok())
        {
            if existing.seq == put.seq && existing.value != put.value {
                return Answer::Error(ErrorCode::SEQ_REUSED);
            }
            if put.seq < existing.seq {
                return Answer::Error(ErrorCode::SEQ_TOO_LOW);
            }
        }
        let stored = MutableGetResponse {
            seq: put.seq,
            value: put.value,
            signature: put.signature,
        };
        self.mutables.set(target, stored.to_bytes());
        Answer::value(None)
    }

    fn on_immutable_get(&mut self, req: &IncomingRequest) -> Answer {
        let Some(target) = req.target else {
            return Answer::Drop;
        };
        Answer::value(self.immutables.get(&target).cloned())
    }

    fn on_immutable_put(&mut self, req: &IncomingRequest) -> Answer {
        let (Some(target), Some(_), Some(value)) = (req.target, req.token, req.value.as_ref())
        else {
            return Answer::Drop;
        };
        if blake2b256(&[value]) != target {
            return Answer::Drop;
        }
        self.immutables.set(target, value.clone());
        Answer::value(None)
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 if it is set before it).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RequestHandler for Persistent {
    /// Handshakes and holepunch messages go to the server the node hosts for their target, if any
    /// (the JS router's `onpeerhandshake` state), before the routing [`Persistent::handle`] does.
    fn claimable(&self, req: &IncomingRequest) -> bool {
        matches!(
            Command::from(req.command),
            Command::PEER_HANDSHAKE | Command::PEER_HOLEPUNCH
        )
    }

    fn on_request(
        &mut self,
        req: &IncomingRequest,
        node: &mut Responder<'_>,
        _now: Instant,
    ) -> Handled {
        let id = node.id();
        let Some(answer) = self.handle(req, id.as_ref(), wall_ms()) else {
            return Handled::Pass;
        };
        match answer {
            Answer::Reply {
                value,
                token,
                closer_nodes,
                to,
            } => {
                let opts = ReplyOpts {
                    token: Some(token),
                    closer_nodes,
                    to,
                };
                node.reply(req, value, opts);
            }
            Answer::Relay { value, to } => node.relay(req, Some(value), to),
            Answer::Error(code) => node.error(req, code.into(), ReplyOpts::default()),
            Answer::Drop => {}
        }
        Handled::Done
    }

    fn on_tick(&mut self, now: Instant) {
        self.tick(now);
    }
}

/// Makes a dht-rpc node a hyperdht node: [`DhtHandle::serve_hyperdht`](ServeHyperdht::serve_hyperdht).
pub trait ServeHyperdht {
    /// Makes the node answer hyperdht's storage commands (LOOKUP, ANNOUNCE, UNANNOUNCE, FIND_PEER,
    /// MUTABLE_*, IMMUTABLE_*) as a persistent JS hyperdht node does, once it is persistent itself, and
    /// route PEER_HANDSHAKE / PEER_HOLEPUNCH messages between clients and announced servers (unless a
    /// server this node hosts claimed their target). These commands then bypass
    /// [`DhtHandle::on_command`] handlers. Installs a [`Persistent`] store with `opts` as the node's
    /// [`RequestHandler`].
    fn serve_hyperdht(
        &self,
        opts: CacheOpts,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;
}

impl ServeHyperdht for DhtHandle {
    fn serve_hyperdht(
        &self,
        opts: CacheOpts,
    ) -> impl Future<Output = Result<(), DriverError>> + Send {
        self.set_handler(Persistent::new(opts, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperdht::messages::{mutable_signable, sign, Peer};
    use ed25519_dalek::SigningKey;

    const NODE_ID: Key = [9; 32];
    const TOKEN: Key = [8; 32];

    fn req(
        command: Command,
        target: Key,
        token: Option<Key>,
        value: Option<Vec<u8>>,
    ) -> IncomingRequest {
        IncomingRequest {
            tid: 1,
            from: "10.0.0.1:5000".parse().expect("addr"),
            from_id: None,
            socket: crate::dht_rpc::node::Socket::Server,
            to: "10.0.0.2:49737".parse().expect("addr"),
            token,
            internal: false,
            command: command.into(),
            target: Some(target),
            value,
        }
    }

    fn store() -> (Persistent, Instant) {
        let now = Instant::now();
        (Persistent::new(CacheOpts::default(), now), now)
    }

    fn mutable_put(key: &SigningKey, seq: u64, value: &[u8]) -> IncomingRequest {
        let pk = key.verifying_key().to_bytes();
        let signature = sign(&mutable_signable(seq, value), key);
        let put = MutablePutRequest {
            public_key: pk,
            seq,
            value: value.to_vec(),
            signature,
        };
        req(
            Command::MUTABLE_PUT,
            blake2b256(&[&pk]),
            Some(TOKEN),
            Some(put.to_bytes()),
        )
    }

    #[test]
    fn ephemeral_nodes_and_other_commands_are_not_handled() {
        let (mut p, _) = store();
        let r = req(Command::IMMUTABLE_GET, [1; 32], None, None);
        assert_eq!(p.handle(&r, None, 0), None);
        let r = req(Command::PLUGIN, [1; 32], None, None);
        assert_eq!(p.handle(&r, Some(&NODE_ID), 0), None);
        let r = req(Command(42), [1; 32], None, None);
        assert_eq!(p.handle(&r, Some(&NODE_ID), 0), None);
    }

    #[test]
    fn mutable_sequence_rules() {
        let (mut p, _) = store();
        let key = SigningKey::from_bytes(&[1; 32]);
        let ok = Answer::value(None);
        assert_eq!(
            p.handle(&mutable_put(&key, 5, b"a"), Some(&NODE_ID), 0),
            Some(ok.clone())
        );
        assert_eq!(
            p.handle(&mutable_put(&key, 5, b"a"), Some(&NODE_ID), 0),
            Some(ok.clone())
        );
        assert_eq!(
            p.handle(&mutable_put(&key, 5, b"b"), Some(&NODE_ID), 0),
            Some(Answer::Error(ErrorCode::SEQ_REUSED))
        );
        assert_eq!(
            p.handle(&mutable_put(&key, 4, b"c"), Some(&NODE_ID), 0),
            Some(Answer::Error(ErrorCode::SEQ_TOO_LOW))
        );
        assert_eq!(
            p.handle(&mutable_put(&key, 6, b"d"), Some(&NODE_ID), 0),
            Some(ok)
        );
        // A forged signature is ignored.
        let mut forged = mutable_put(&key, 9, b"e");
        if let Some(v) = forged.value.as_mut() {
            if let Some(last) = v.last_mut() {
                *last ^= 1;
            }
        }
        assert_eq!(p.handle(&forged, Some(&NODE_ID), 0), Some(Answer::Drop));
        let pk = key.verifying_key().to_bytes();
        let get = |seq: u8| {
            req(
                Command::MUTABLE_GET,
                blake2b256(&[&pk]),
                None,
                Some(vec![seq]),
            )
        };
        let Some(Answer::Reply { value: Some(v), .. }) = p.handle(&get(6), Some(&NODE_ID), 0)
        else {
            panic!("value expected")
        };
        let m = MutableGetResponse::from_bytes(&v).expect("decodes");
        assert_eq!((m.seq, m.value.as_slice()), (6, &b"d"[..]));
        assert_eq!(
            p.handle(&get(7), Some(&NODE_ID), 0),
            Some(Answer::value(None))
        );
    }

    #[test]
    fn immutable_values_are_content_addressed() {
        let (mut p, _) = store();
        let v = b"content".to_vec();
        let h = blake2b256(&[&v]);
        let wrong = req(
            Command::IMMUTABLE_PUT,
            [0; 32],
            Some(TOKEN),
            Some(v.clone()),
        );
        assert_eq!(p.handle(&wrong, Some(&NODE_ID), 0), Some(Answer::Drop));
        let no_token = req(Command::IMMUTABLE_PUT, h, None, Some(v.clone()));
        assert_eq!(p.handle(&no_token, Some(&NODE_ID), 0), Some(Answer::Drop));
        let put = req(Command::IMMUTABLE_PUT, h, Some(TOKEN), Some(v.clone()));
        assert_eq!(p.handle(&put, Some(&NODE_ID), 0), Some(Answer::value(None)));
        let get = req(Command::IMMUTABLE_GET, h, None, None);
        assert_eq!(
            p.handle(&get, Some(&NODE_ID), 0),
            Some(Answer::value(Some(v)))
        );
    }

    fn announce(key: &SigningKey, topic: Key, refresh: Option<Key>, bump: u64) -> IncomingRequest {
        let peer = Peer {
            public_key: key.verifying_key().to_bytes(),
            relay_addresses: vec![],
        };
        let signable = announce_signable(
            &topic,
            &TOKEN,
            &NODE_ID,
            &peer,
            refresh.as_ref(),
            &ns::announce(),
        );
        let ann = Announce {
            peer: Some(peer),
            refresh,
            signature: Some(sign(&signable, key)),
            bump,
        };
        req(Command::ANNOUNCE, topic, Some(TOKEN), Some(ann.to_bytes()))
    }

    fn lookup(p: &mut Persistent, topic: Key) -> LookupReply {
        match p.handle(&req(Command::LOOKUP, topic, None, None), Some(&NODE_ID), 0) {
            Some(Answer::Reply { value: Some(v), .. }) => {
                LookupReply::from_bytes(&v).expect("decodes")
            }
            _ => LookupReply::default(),
        }
    }

    #[test]
    fn announces_bumps_refreshes_and_expiry() {
        let (mut p, now) = store();
        let topic = [0x0c; 32];
        let key = SigningKey::from_bytes(&[2; 32]);
        let refresh_preimage: Key = [0x77; 32];
        let refresh = blake2b256(&[&refresh_preimage]);
        assert_eq!(
            p.handle(
                &announce(&key, topic, Some(refresh), 1000),
                Some(&NODE_ID),
                2000
            ),
            Some(Answer::stored())
        );
        let l = lookup(&mut p, topic);
        assert_eq!(l.peers.len(), 1);
        assert_eq!(l.bump, 1000);
        // A bump too far in the future is ignored; the announce itself is still stored.
        p.handle(
            &announce(&key, topic, None, 1_000_000),
            Some(&NODE_ID),
            2000,
        );
        assert_eq!(lookup(&mut p, topic).bump, 1000);
        // Signed for another node: refused.
        let other = SigningKey::from_bytes(&[3; 32]);
        let mut bad = announce(&other, topic, None, 0);
        bad.token = Some([1; 32]);
        assert_eq!(p.handle(&bad, Some(&NODE_ID), 0), Some(Answer::Drop));

        // Records expire after two collections without a refresh...
        p.tick(now + Duration::from_secs(14 * 60));
        assert_eq!(
            lookup(&mut p, topic).peers.len(),
            1,
            "stale records are still served"
        );
        // ...but a refresh (the preimage of the announced refresh hash) renews the record.
        let refresh_only = Announce {
            peer: None,
            refresh: Some(refresh_preimage),
            signature: None,
            bump: 0,
        };
        let r = req(
            Command::ANNOUNCE,
            topic,
            Some(TOKEN),
            Some(refresh_only.to_bytes()),
        );
        assert_eq!(p.handle(&r, Some(&NODE_ID), 0), Some(Answer::stored()));
        p.tick(now + Duration::from_secs(27 * 60));
        assert_eq!(
            lookup(&mut p, topic).peers.len(),
            1,
            "refreshed record survives"
        );
        p.tick(now + Duration::from_secs(54 * 60));
        assert!(lookup(&mut p, topic).peers.is_empty(), "expired");
    }

    #[test]
    fn router_relays_handshakes_and_holepunches() {
        let (mut p, _) = store();
        let server = SigningKey::from_bytes(&[5; 32]);
        let target = blake2b256(&[&server.verifying_key().to_bytes()]);
        let hs = |mode, peer_address| {
            Handshake {
                mode,
                noise: b"noise".to_vec(),
                peer_address,
                relay_address: None,
            }
            .to_bytes()
        };
        let client_hs = req(
            Command::PEER_HANDSHAKE,
            target,
            None,
            Some(hs(Mode::FROM_CLIENT, None)),
        );
        // Nobody announced yet: help the client route.
        assert_eq!(
            p.handle(&client_hs, None, 0),
            Some(Answer::Reply {
                value: None,
                token: false,
                closer_nodes: true,
                to: None
            })
        );
        // The server announces itself through this node (from 10.0.0.1:5000, `req`'s sender).
        assert_eq!(
            p.handle(&announce(&server, target, None, 0), Some(&NODE_ID), 0),
            Some(Answer::stored())
        );
        let server_addr: SocketAddrV4 = "10.0.0.1:5000".parse().expect("addr");
        let client_addr: SocketAddrV4 = "10.9.9.9:7000".parse().expect("addr");
        let mut from_client = client_hs.clone();
        from_client.from = client_addr;
        let Some(Answer::Relay { value, to }) = p.handle(&from_client, None, 0) else {
            panic!("relay")
        };
        assert_eq!(to, server_addr);
        let fwd = Handshake::from_bytes(&value).expect("decodes");
        assert_eq!(
            (fwd.mode, fwd.peer_address),
            (Mode::FROM_RELAY, Some(client_addr))
        );
        // The server's answer comes back and is sent on to the client.
        let from_server = req(
            Command::PEER_HANDSHAKE,
            target,
            None,
            Some(hs(Mode::FROM_SERVER, Some(client_addr))),
        );
        let Some(Answer::Reply {
            value: Some(v),
            to: Some(to),
            ..
        }) = p.handle(&from_server, None, 0)
        else {
            panic!("routed reply")
        };
        assert_eq!(to, client_addr);
        let reply = Handshake::from_bytes(&v).expect("decodes");
        assert_eq!(
            (reply.mode, reply.peer_address),
            (Mode::REPLY, Some(server_addr))
        );

        let hp = |mode, peer_address| {
            Holepunch {
                mode,
                id: 3,
                payload: b"p".to_vec(),
                peer_address,
            }
            .to_bytes()
        };
        let mut punch = req(
            Command::PEER_HOLEPUNCH,
            target,
            None,
            Some(hp(Mode::FROM_CLIENT, None)),
        );
        punch.from = client_addr;
        let Some(Answer::Relay { value, to }) = p.handle(&punch, None, 0) else {
            panic!("relay")
        };
        assert_eq!(to, server_addr);
        assert_eq!(
            Holepunch::from_bytes(&value).expect("decodes").peer_address,
            Some(client_addr)
        );
        let back = req(
            Command::PEER_HOLEPUNCH,
            target,
            None,
            Some(hp(Mode::FROM_SERVER, Some(client_addr))),
        );
        let Some(Answer::Reply { to, .. }) = p.handle(&back, None, 0) else {
            panic!("reply")
        };
        assert_eq!(to, Some(client_addr));
        // Garbage and server-only modes are dropped.
        let junk = req(Command::PEER_HOLEPUNCH, target, None, Some(vec![0xff]));
        assert_eq!(p.handle(&junk, None, 0), Some(Answer::Drop));
        let relay_mode = req(
            Command::PEER_HOLEPUNCH,
            target,
            None,
            Some(hp(Mode::FROM_RELAY, None)),
        );
        assert_eq!(p.handle(&relay_mode, None, 0), Some(Answer::Drop));
    }

    #[test]
    fn caches_collect_by_size() {
        let now = Instant::now();
        let mut c: MaxCache<u32> = MaxCache::new(2, Duration::from_secs(60), now);
        c.set([1; 32], 1);
        c.set([2; 32], 2); // latest reaches 2: moved to oldest
        c.set([3; 32], 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&[1; 32]), Some(&1)); // promoted back; latest reaches 2 again on the next set
        c.set([4; 32], 4);
        c.set([5; 32], 5);
        assert_eq!(c.get(&[2; 32]), None);
        assert!(c.get(&[5; 32]).is_some());
        assert_eq!(c.delete(&[5; 32]), Some(5));
    }

    /// More records than a LOOKUP reply holds: each reply is a random pick (JS `record-cache`), so a
    /// record added after 20 stale ones (killed peers not yet aged out) is seen, and every record is.
    #[test]
    fn lookups_pick_records_at_random_past_the_reply_size() {
        use rand::SeedableRng;
        let now = Instant::now();
        let mut cache = RecordCache::new(1000, Duration::from_secs(1200), now);
        let topic = [1; 32];
        for i in 0..30u8 {
            cache.add(topic, [i; 32], vec![i]);
        }
        // A generation later the first 30 are stale; the newest is the one a peer needs.
        cache.tick(now + Duration::from_secs(801));
        cache.add(topic, [99; 32], vec![99]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        let mut newest = 0;
        for _ in 0..20 {
            let got = cache.get_with(&topic, LOOKUP_RECORDS, &mut rng);
            assert_eq!(got.len(), LOOKUP_RECORDS);
            let distinct: std::collections::BTreeSet<_> = got.iter().cloned().collect();
            assert_eq!(distinct.len(), got.len(), "no record twice in a reply");
            newest += usize::from(got.contains(&vec![99]));
            seen.extend(got);
        }
        assert_eq!(seen.len(), 31, "every record shows up");
        assert!(newest >= 5, "the newest record shows up in {newest} of 20");
        // Fewer than asked (or 0: all of them): each once.
        let mut all = cache.get_with(&topic, 0, &mut rng);
        all.sort();
        assert_eq!(all.len(), 31);
        all.dedup();
        assert_eq!(all.len(), 31);
        assert_eq!(
            cache.get_with(&[2; 32], 20, &mut rng),
            Vec::<Vec<u8>>::new()
        );
    }
}
