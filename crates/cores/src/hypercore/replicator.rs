//! Hypercore replication (`lib/replicator.js`): the `hypercore/alpha` protomux protocol that moves blocks,
//! proofs and signed heads between peers, wire compatible with JS hypercore 11.
//!
//! # The protocol (facts of hypercore 11.37)
//!
//! Each core is replicated on its own protomux channel, protocol `hypercore/alpha`, channel id = the core's
//! discovery key, so a remote that does not know the key cannot even name the channel. The channel open
//! carries a [`Handshake`] whose capability is `caps.replicate(isInitiator, key, handshakeHash)`: a keyed
//! BLAKE2b of the secret-stream handshake hash proving the sender knows the key *and* is the party on this
//! very stream. The receiver checks it with the other role's namespace; a wrong one ends the peer.
//!
//! Messages, by type number: 0 `sync` (head, flags), 1 `request`, 2 `cancel`, 3 `data`, 4 `noData`, 5 `want`,
//! 6 `unwant`, 7 `bitfield`, 8 `range`, 9 `extension`. On open each side sends `sync` and, when it holds
//! blocks `0..n` contiguously, `range(0, n)`. A side whose length grows sends `sync` again (an eager peer
//! then asks for the upgrade: a `request` with `upgrade: {start: ours, length: theirs - ours}` answered
//! with a signed upgrade proof). Blocks are fetched with `request { block: {index, nodes} }` where `nodes`
//! counts the tree nodes on the block's path the requester lacks, so the proof stops at one it trusts.
//! A `sync` carries the receiver's length as last heard (`remoteLength`): JS only asks a peer for an
//! upgrade when that echo matches its own length.
//!
//! # Structure
//!
//! [`ReplicatorCore`] is the sans-IO state of one core and all its peers: it takes channel opens and
//! messages, and emits per-peer messages, [`Event`]s and storage [`Effect`]s; it owns no socket, task or
//! clock, and does no disk I/O itself (it looks at what the [`Hypercore`] holds in memory). A received proof
//! that answers the request it names becomes an [`Effect::Store`]: the driver performs it
//! ([`Effect::perform`]: [`Hypercore::apply_proof`], which verifies hashes and the signature before storing
//! anything, then writes and syncs) and reports back ([`ReplicatorCore::complete`]); only then does the block
//! count as ours, so it is on disk before it is announced to any peer or served. A request we can serve
//! becomes an [`Effect::Serve`] (read the proof and block), answered on completion; at most [`MAX_SERVING`]
//! per peer are read at once. A peer whose data fails verification, does not answer the request it claims
//! to, or whose capability is wrong is dropped. [`ReplicatorCore::run_effects`] performs effects in place.
//!
//! Flow control: up to [`DEFAULT_MAX_INFLIGHT`] requests per peer; requests received while a peer's outbox
//! holds over [`OUTBOX_HIGH_WATER`] bytes are held (in order, cancellable) and answered as it drains, as JS
//! holds them while its stream is not drained; a request unanswered for [`REQUEST_TIMEOUT_TICKS`] ticks is
//! cancelled and asked again. Blocks are requested from the peer with the fewest requests in flight among
//! those that announced them (`range`, `bitfield`).
//!
//! Discovery (`want`/`unwant`, module `wants`, JS `lib/wants.js`): a peer announces only its contiguous
//! prefix on its own. When a block we need is announced by no peer, each open peer on our fork that may
//! hold it (past its announced prefix, not in what it announced) is sent `want` for the block's segment of
//! [`WANT_SEGMENT`] blocks, once; it answers with what it holds there and later announces blocks it gets in
//! that segment. At most [`MAX_LOCAL_WANTS`] segments are wanted per peer; a segment no longer needed is
//! `unwant`ed only to make room (as JS). We answer a peer's `want` with `range(0, n)` when our contiguous
//! prefix says it all, else with the runs we hold in the range (`range` messages, or exact `bitfield`s past
//! [`MAX_WANT_RANGES`] runs; JS always sends bitfields), remember the segment (bounded as JS), and announce
//! each block we download later with `range(i, 1)` to the peers that want its segment or when it is among
//! the last [`LAST_BLOCKS`] (JS `broadcastRange`); an `unwant` ends that.
//!
//! Extensions (module `extensions`): [`Replicator::register_extension`] gives an [`Extension`] that sends
//! `extension` messages (name, then the message in the extension's [`ExtensionEncoding`], JS's default
//! `c.buffer`) to one peer or all and receives those to its name; messages to names not registered are
//! ignored, and an empty name repeats the peer's last one, as JS.
//!
//! [`Replicator`] is the tokio driver: a cheap-to-clone handle that attaches the core to any number of
//! [`Mux`]es (a reader and a writer task per channel: reading never waits for a backed-up stream; effects are
//! performed in order by one worker at a time on tokio's blocking pool, never on a runtime worker) and offers
//! [`Replicator::get`], [`Replicator::download`] and [`Replicator::update`]. [`replicate`] /
//! [`replicate_stream`] start a mux over a stream with a set of cores (many cores share one connection, each
//! on its own channel).
//!
//! Forks: a peer announcing a newer fork (its writer truncated) is asked for the whole new tree at once
//! (`upgrade {start: 0}` on its fork); [`Hypercore::apply_proof`] checks the signature, keeps the prefix both
//! forks share and drops the rest. (JS finds the shared prefix with a series of hash requests first; the
//! single proof is bigger on huge cores but needs no extra round trips.)
//!
//! Not implemented: seek and hash requests from this side (we answer them), pushes, "any" wants from this
//! side (JS sends them for seeks and fork hash requests).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use super::bitfield::RangeSet;
use super::caps;
use super::messages::{
    BitfieldMessage, Cancel, Data, Extension as ExtensionMessage, Handshake, NoData, Range,
    Request, RequestBlock, RequestUpgrade, Sync, Want, NO_DATA_NOT_AVAILABLE,
};
use super::{Hypercore, HypercoreError};
use crate::compact_encoding::{Decode, DecodeError, Encode};
use crate::protomux::{Channel, ChannelOptions, FrameTransport, Mux};
use crate::secret_stream::SecretStream;

mod effects;
mod extensions;
mod wants;

pub use effects::{Completion, Effect};

use extensions::ExtensionState;
pub use extensions::{
    Extension, ExtensionEncoding, MAX_EXTENSION_INBOX, MAX_EXTENSION_INBOX_BYTES,
};
use wants::{segment_want, LocalWants, RemoteWants, WantAdded};
pub use wants::{
    MAX_LOCAL_WANTS, MAX_REMOTE_ANY, MAX_REMOTE_WANTS, MAX_REMOTE_WANT_SIZES, MAX_WANT_RANGE,
    MIN_WANT_RANGE, WANT_SEGMENT,
};

/// The protomux protocol name.
pub const PROTOCOL: &str = "hypercore/alpha";

/// Message type numbers on a `hypercore/alpha` channel.
pub mod kind {
    /// `sync`.
    pub const SYNC: u64 = 0;
    /// `request`.
    pub const REQUEST: u64 = 1;
    /// `cancel`.
    pub const CANCEL: u64 = 2;
    /// `data`.
    pub const DATA: u64 = 3;
    /// `noData`.
    pub const NO_DATA: u64 = 4;
    /// `want`.
    pub const WANT: u64 = 5;
    /// `unwant`.
    pub const UNWANT: u64 = 6;
    /// `bitfield`.
    pub const BITFIELD: u64 = 7;
    /// `range`.
    pub const RANGE: u64 = 8;
    /// `extension`.
    pub const EXTENSION: u64 = 9;
}

/// Requests in flight per peer by default (JS: 16 to 512 depending on latency).
pub const DEFAULT_MAX_INFLIGHT: usize = 512;
/// Candidate blocks looked at per scheduling pass (bounds the work one message can cause).
const SCAN_BUDGET: usize = 1 << 16;
/// Outbox bytes of a peer above which its requests are held back until the outbox drains.
pub const OUTBOX_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Requests of a peer being read from storage ([`Effect::Serve`]) at once; later ones are held back until
/// answers come in.
pub const MAX_SERVING: usize = 64;
/// Held-back requests of a peer at which its messages stop being read ([`ReplicatorCore::is_backlogged`]).
pub const MAX_PENDING_REQUESTS: usize = 1 << 16;
/// Ticks ([`ReplicatorCore::tick_peer`]) after which an unanswered request is cancelled and asked again.
pub const REQUEST_TIMEOUT_TICKS: u32 = 30;
/// Most runs of a peer's blocks remembered (beyond, its `bitfield`/`range` news is ignored).
const MAX_REMOTE_RUNS: usize = 1 << 16;
/// Events kept for [`ReplicatorCore::poll_event`] (older ones are dropped).
pub const MAX_EVENTS: usize = 4096;
/// Most `range` messages sent in answer to one `want`; a segment with more runs is answered with `bitfield`
/// messages instead (as JS always does).
pub const MAX_WANT_RANGES: usize = 256;
/// Blocks at the end of the core whose arrival is announced to every peer (JS `LAST_BLOCKS`); others only
/// to peers that want their segment.
pub const LAST_BLOCKS: u64 = 256;
/// Blocks per `bitfield` message built in one go when answering a `want` (a JS bitfield page).
const BITFIELD_CHUNK: u64 = 32768;

/// Why a peer was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The channel open's capability does not prove knowledge of the key on this stream.
    #[error("remote sent an invalid replication capability")]
    BadCapability,
    /// A message that does not decode.
    #[error("malformed message of type {kind}: {error}")]
    Decode {
        /// Message type.
        kind: u64,
        /// The decode error.
        error: DecodeError,
    },
    /// A `data` that is not what the request it names asked for.
    #[error("data does not answer request {0}")]
    Mismatch(u64),
    /// A proof or signature that failed verification (nothing was stored).
    #[error("invalid data: {0}")]
    InvalidData(String),
}

/// One peer's counters and identity ([`ReplicatorCore::peer_stats`]), as JS's `peer.stats` and
/// `peer.remotePublicKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer.
    pub peer: PeerId,
    /// The remote's public key on the stream, when the driver knows it (secret-stream connections).
    pub remote_public_key: Option<[u8; 32]>,
    /// Verified blocks stored from this peer.
    pub blocks_downloaded: u64,
    /// Blocks sent to this peer.
    pub blocks_uploaded: u64,
    /// How many blocks from the start the peer says it has (JS `peer.remoteContiguousLength`).
    pub remote_contiguous: u64,
}

/// A peer (one channel of one core) in a [`ReplicatorCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// What happened, for observers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The remote opened with a valid capability.
    PeerOpened(PeerId),
    /// A verified block was stored.
    Downloaded {
        /// Block index.
        index: u64,
        /// From whom.
        peer: PeerId,
    },
    /// A verified signed head moved the core to `length`.
    Upgraded {
        /// New length.
        length: u64,
        /// From whom.
        peer: PeerId,
    },
    /// A block was sent to a peer.
    Uploaded {
        /// Block index.
        index: u64,
        /// To whom.
        peer: PeerId,
    },
    /// A peer left or was dropped.
    PeerRemoved {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// Counters, for tests and tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `request`s sent.
    pub requests_sent: u64,
    /// `request`s received.
    pub requests_received: u64,
    /// `data` messages received.
    pub data_received: u64,
    /// Blocks verified and stored.
    pub blocks_downloaded: u64,
    /// `data` messages sent.
    pub data_sent: u64,
    /// Blocks sent.
    pub blocks_uploaded: u64,
    /// `noData` received.
    pub no_data_received: u64,
    /// Peers dropped for misbehaving.
    pub peers_dropped: u64,
    /// `want`s sent (segments asked about).
    pub wants_sent: u64,
    /// `unwant`s sent (segments given up to make room).
    pub unwants_sent: u64,
    /// `want`s received.
    pub wants_received: u64,
    /// `range` messages sent to announce a single block (a peer wants its segment, or it is near the end).
    pub haves_sent: u64,
    /// Extension messages received for a registered extension.
    pub extensions_received: u64,
    /// Extension messages dropped: a full inbox, or a payload its encoding cannot decode.
    pub extensions_dropped: u64,
    /// Extension messages sent.
    pub extensions_sent: u64,
}

#[derive(Debug, Clone, Copy)]
struct Inflight {
    peer: PeerId,
    block: Option<u64>,
    upgrade: bool,
    /// For a reorg request (an upgrade from 0 on the peer's newer fork): that fork.
    reorg: Option<u64>,
    /// [`ReplicatorCore::tick_peer`] calls since it was sent.
    age: u32,
    /// The answer arrived and is being verified and stored ([`Effect::Store`]): no longer aged, and kept
    /// (with its block counted in flight) until [`ReplicatorCore::complete`] reports it.
    storing: bool,
}

#[derive(Debug)]
struct Peer {
    expected_capability: [u8; 32],
    opened: bool,
    remote: Option<Sync>,
    remote_contig: u64,
    remote_has: RangeSet,
    /// Blocks this peer answered `noData` for.
    refused: HashSet<u64>,
    /// The (fork, length) an upgrade to was refused at.
    refused_upgrade: Option<(u64, u64)>,
    inflight: usize,
    outbox: VecDeque<(u64, Vec<u8>)>,
    /// Payload bytes in `outbox`.
    outbox_bytes: usize,
    /// Requests received while `outbox` was over [`OUTBOX_HIGH_WATER`] (or [`MAX_SERVING`] were being read),
    /// answered as it drains.
    pending: VecDeque<Request>,
    /// Requests being read from storage ([`Effect::Serve`] not completed yet).
    serving: usize,
    /// Set when the peer must be closed (misbehaviour); the driver closes the channel.
    error: Option<PeerError>,
    /// Largest `n` of a `range(0, n)` sent.
    contig_sent: u64,
    /// The remote's stream public key, if known.
    remote_public_key: Option<[u8; 32]>,
    /// Verified blocks stored from this peer.
    blocks_downloaded: u64,
    /// Blocks sent to this peer.
    blocks_uploaded: u64,
    /// Segments we asked this peer about (`want`).
    wants: LocalWants,
    /// Segments this peer asked us about.
    remote_wants: RemoteWants,
    /// Name of the last extension message sent (the next one to it goes with an empty name).
    last_extension_sent: String,
    /// Name of the last extension message received (an empty name means this one).
    last_extension_recv: String,
}

impl Peer {
    fn queue(&mut self, message: (u64, Vec<u8>)) {
        self.outbox_bytes += message.1.len();
        self.outbox.push_back(message);
    }

    fn has(&self, index: u64) -> bool {
        (index < self.remote_contig || self.remote_has.contains(index))
            && !self.refused.contains(&index)
    }
}

#[derive(Debug)]
struct DownloadRange {
    id: u64,
    start: u64,
    /// First index not known to be stored.
    cursor: u64,
    end: Option<u64>,
}

/// The sans-IO replication state of one core: its peers, wants and requests in flight.
#[derive(Debug)]
pub struct ReplicatorCore {
    core: Hypercore,
    peers: BTreeMap<PeerId, Peer>,
    next_peer: u64,
    next_request: u64,
    next_range: u64,
    inflight: HashMap<u64, Inflight>,
    blocks_inflight: HashSet<u64>,
    upgrade_inflight: Option<u64>,
    wanted: BTreeMap<u64, usize>,
    ranges: Vec<DownloadRange>,
    length: u64,
    fork: u64,
    contig: u64,
    max_inflight: usize,
    events: VecDeque<Event>,
    stats: Stats,
    /// Blocks stored since the last [`ReplicatorCore::refresh_local`], to announce to peers that want them.
    fresh: Vec<u64>,
    /// Registered extensions by name.
    extensions: HashMap<String, ExtensionState>,
    /// How many of the core's clears peers were told about.
    clears_seen: usize,
    /// Storage work for the driver ([`ReplicatorCore::poll_effect`]).
    effects: VecDeque<Effect>,
}

fn encode<T: Encode>(v: &T) -> Vec<u8> {
    v.to_bytes()
}

fn decode<'a, T: Decode<'a>>(kind: u64, payload: &'a [u8]) -> Result<T, PeerError> {
    T::from_bytes(payload).map_err(|error| PeerError::Decode { kind, error })
}

impl ReplicatorCore {
    /// Replication state for `core`, with no peers.
    pub fn new(core: Hypercore) -> Self {
        let (length, fork) = core.replicated_head();
        let mut me = Self {
            core,
            peers: BTreeMap::new(),
            next_peer: 1,
            next_request: 1,
            next_range: 1,
            inflight: HashMap::new(),
            blocks_inflight: HashSet::new(),
            upgrade_inflight: None,
            wanted: BTreeMap::new(),
            ranges: Vec::new(),
            length,
            fork,
            contig: 0,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            events: VecDeque::new(),
            stats: Stats::default(),
            fresh: Vec::new(),
            extensions: HashMap::new(),
            clears_seen: 0,
            effects: VecDeque::new(),
        };
        me.clears_seen = me.core.clear_count();
        me.advance_contig();
        me
    }

    /// The core.
    pub fn core(&self) -> &Hypercore {
        &self.core
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Sets how many requests may be in flight per peer.
    pub fn set_max_inflight(&mut self, n: usize) {
        self.max_inflight = n.max(1);
    }

    /// Adds a peer on a stream where we are `is_initiator` with `handshake_hash`; returns its id and the
    /// handshake to open its channel with.
    pub fn add_peer(&mut self, is_initiator: bool, handshake_hash: &[u8]) -> (PeerId, Vec<u8>) {
        let key = self.core.key();
        // A handshake hash is 64 bytes; caps only fail on longer ones, which then never match.
        let ours = caps::replicate(is_initiator, &key, handshake_hash).unwrap_or([0; 32]);
        let expected = caps::replicate(!is_initiator, &key, handshake_hash).unwrap_or([0xff; 32]);
        let id = PeerId(self.next_peer);
        self.next_peer += 1;
        self.peers.insert(
            id,
            Peer {
                expected_capability: expected,
                opened: false,
                remote: None,
                remote_contig: 0,
                remote_has: RangeSet::new(),
                refused: HashSet::new(),
                refused_upgrade: None,
                inflight: 0,
                outbox: VecDeque::new(),
                outbox_bytes: 0,
                pending: VecDeque::new(),
                serving: 0,
                error: None,
                contig_sent: 0,
                remote_public_key: None,
                blocks_downloaded: 0,
                blocks_uploaded: 0,
                wants: LocalWants::default(),
                remote_wants: RemoteWants::default(),
                last_extension_sent: String::new(),
                last_extension_recv: String::new(),
            },
        );
        let hs = Handshake {
            seeks: false,
            capability: ours,
        };
        (id, encode(&hs))
    }

    /// Records the public key the remote of `peer` proved on its stream (shown in [`PeerStats`]).
    pub fn set_remote_public_key(&mut self, peer: PeerId, key: [u8; 32]) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.remote_public_key = Some(key);
        }
    }

    /// Per-peer counters of the peers currently known (open or opening).
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        self.peers
            .iter()
            .map(|(id, p)| PeerStats {
                peer: *id,
                remote_public_key: p.remote_public_key,
                blocks_downloaded: p.blocks_downloaded,
                blocks_uploaded: p.blocks_uploaded,
                remote_contiguous: p.remote_contig,
            })
            .collect()
    }

    /// The remote's channel open arrived with `handshake`.
    pub fn on_open(&mut self, peer: PeerId, handshake: &[u8]) -> Result<(), PeerError> {
        let r = self.open_inner(peer, handshake);
        self.fail_on_error(peer, r)
    }

    fn open_inner(&mut self, peer: PeerId, handshake: &[u8]) -> Result<(), PeerError> {
        let hs: Handshake = decode(u64::MAX, handshake)?;
        // The core may have grown while no peer was there to notice (appends with no channel open): the
        // first sync must carry today's length, not a stale one the peer would take as our head.
        self.refresh_local();
        let contig = self.contig;
        let Some(p) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if hs.capability != p.expected_capability {
            return Err(PeerError::BadCapability);
        }
        if p.opened {
            return Ok(());
        }
        p.opened = true;
        self.send_sync(peer);
        if contig > 0 {
            self.send_range(peer, 0, contig);
        }
        self.event(Event::PeerOpened(peer));
        self.update();
        Ok(())
    }

    fn fail_on_error(&mut self, peer: PeerId, r: Result<(), PeerError>) -> Result<(), PeerError> {
        if let Err(e) = &r {
            self.stats.peers_dropped += 1;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.error = Some(e.clone());
            }
            self.remove_peer(peer, &e.to_string());
        }
        r
    }

    /// A message arrived from `peer`. An error means the peer misbehaved: it is removed here and its
    /// channel must be closed.
    pub fn on_message(&mut self, peer: PeerId, kind: u64, payload: &[u8]) -> Result<(), PeerError> {
        if !self.peers.get(&peer).is_some_and(|p| p.opened) {
            return Ok(());
        }
        let r = self.message_inner(peer, kind, payload);
        self.fail_on_error(peer, r)
    }

    fn message_inner(&mut self, peer: PeerId, k: u64, payload: &[u8]) -> Result<(), PeerError> {
        match k {
            kind::SYNC => self.on_sync(peer, decode(k, payload)?),
            kind::REQUEST => self.on_request(peer, decode(k, payload)?),
            kind::CANCEL => {
                // Only a request still held back can be cancelled; answered ones are gone.
                let c: Cancel = decode(k, payload)?;
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.pending.retain(|r| r.id != c.request);
                }
            }
            kind::DATA => self.on_data(peer, decode(k, payload)?)?,
            kind::NO_DATA => self.on_no_data(peer, decode(k, payload)?),
            kind::WANT => self.on_want(peer, decode(k, payload)?),
            kind::UNWANT => {
                let w: Want = decode(k, payload)?;
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.remote_wants.remove(&w);
                }
            }
            kind::BITFIELD => self.on_bitfield(peer, decode(k, payload)?),
            kind::RANGE => self.on_range(peer, decode(k, payload)?),
            kind::EXTENSION => self.on_extension(peer, decode(k, payload)?),
            // Unknown message types: ignored (a newer protocol revision).
            _ => {}
        }
        self.update();
        Ok(())
    }

    fn on_sync(&mut self, peer: PeerId, sync: Sync) {
        let (fork, length) = (self.fork, self.length);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.remote
            .is_some_and(|r| r.length != sync.length || r.fork != sync.fork)
        {
            p.refused_upgrade = None;
        }
        p.remote = Some(sync);
        if sync.fork == fork && length > sync.length {
            self.send_sync(peer);
        }
    }

    fn on_request(&mut self, peer: PeerId, req: Request) {
        self.stats.requests_received += 1;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.outbox_bytes > OUTBOX_HIGH_WATER || !p.pending.is_empty() || p.serving >= MAX_SERVING {
            // As JS queues requests while the stream is not drained: answered in order as it drains.
            p.pending.push_back(req);
            return;
        }
        self.answer(peer, req);
    }

    /// Answers a request: at once with `noData` when we cannot serve it, else through storage
    /// ([`Effect::Serve`], answered in [`ReplicatorCore::complete`]).
    fn answer(&mut self, peer: PeerId, req: Request) {
        if req.fork != self.fork || req.block.is_some_and(|b| !self.core.has(b.index)) {
            self.answered(peer, req.id, Err(NO_DATA_NOT_AVAILABLE));
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.serving += 1;
        self.effects.push_back(Effect::Serve { peer, request: req });
    }

    /// Queues the answer to request `id` of `peer`: the data read for it, or `noData` with a reason.
    fn answered(&mut self, peer: PeerId, id: u64, answer: Result<Box<Data>, u64>) {
        if !self.peers.get(&peer).is_some_and(|p| p.opened) {
            return;
        }
        match answer {
            Ok(data) => {
                self.stats.data_sent += 1;
                if let Some(b) = &data.block {
                    self.stats.blocks_uploaded += 1;
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.blocks_uploaded += 1;
                    }
                    self.event(Event::Uploaded {
                        index: b.index,
                        peer,
                    });
                }
                self.push(peer, kind::DATA, encode(&*data));
            }
            Err(reason) => self.push(
                peer,
                kind::NO_DATA,
                encode(&NoData {
                    request: id,
                    reason,
                }),
            ),
        }
    }

    fn release(&mut self, id: u64) -> Option<Inflight> {
        let inf = self.inflight.remove(&id)?;
        if let Some(p) = self.peers.get_mut(&inf.peer) {
            p.inflight = p.inflight.saturating_sub(1);
        }
        if let Some(b) = inf.block {
            self.blocks_inflight.remove(&b);
        }
        if inf.upgrade && self.upgrade_inflight == Some(id) {
            self.upgrade_inflight = None;
        }
        Some(inf)
    }

    /// A `data` answer: checked against the request it names here, then verified and stored by the driver
    /// ([`Effect::Store`]); [`ReplicatorCore::complete`] takes the result. The request stays in flight (its
    /// block is not asked of anyone else) until then.
    fn on_data(&mut self, peer: PeerId, data: Data) -> Result<(), PeerError> {
        self.stats.data_received += 1;
        let inf = match self.inflight.get(&data.request) {
            Some(inf) if inf.peer == peer && !inf.storing => *inf,
            // Unrequested data (pushes, answers to cancelled or another peer's requests, repeats): ignored,
            // as JS does without `allowPush`.
            _ => return Ok(()),
        };
        let block_ok = match (inf.block, &data.block) {
            (Some(i), Some(b)) => b.index == i,
            (None, None) => true,
            _ => false,
        };
        if !block_ok || (inf.upgrade && data.upgrade.is_none()) {
            self.release(data.request);
            return Err(PeerError::Mismatch(data.request));
        }
        if let Some(fork) = inf.reorg {
            if data.fork != fork || data.upgrade.as_ref().is_none_or(|u| u.start != 0) {
                self.release(data.request);
                return Err(PeerError::Mismatch(data.request));
            }
        } else if data.fork != self.core.replicated_head().1 {
            // We or they moved to another fork meanwhile; not an offence.
            self.release(data.request);
            return Ok(());
        }
        if let Some(inf) = self.inflight.get_mut(&data.request) {
            inf.storing = true;
        }
        self.effects.push_back(Effect::Store {
            peer,
            request: data.request,
            data: Box::new(data),
        });
        Ok(())
    }

    /// The result of a [`Effect::Store`]: the block (and head) are durable now, so they count as ours and are
    /// announced to peers from here on; a proof that failed verification drops the peer that sent it.
    fn stored(
        &mut self,
        peer: PeerId,
        request: u64,
        block: Option<u64>,
        result: Result<(u64, u64), String>,
    ) -> Result<(), PeerError> {
        if self.inflight.get(&request).is_some_and(|i| i.storing) {
            self.release(request);
        }
        let (before, after) = match result {
            Ok(lengths) => lengths,
            Err(e) => {
                if !self.peers.get(&peer).is_some_and(|p| p.opened) {
                    return Ok(());
                }
                return Err(PeerError::InvalidData(e));
            }
        };
        if let Some(index) = block {
            self.fresh.push(index);
            self.stats.blocks_downloaded += 1;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.blocks_downloaded += 1;
            }
            self.event(Event::Downloaded { index, peer });
        }
        if after > before {
            self.event(Event::Upgraded {
                length: after,
                peer,
            });
        }
        Ok(())
    }

    fn on_no_data(&mut self, peer: PeerId, msg: NoData) {
        self.stats.no_data_received += 1;
        match self.inflight.get(&msg.request) {
            Some(inf) if inf.peer == peer && !inf.storing => {}
            _ => return,
        }
        let Some(inf) = self.release(msg.request) else {
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Some(b) = inf.block {
            p.refused.insert(b);
        }
        if inf.upgrade {
            p.refused_upgrade = p.remote.map(|r| (r.fork, r.length));
        }
    }

    /// A peer wants to hear what we hold in a range (JS `_onwant`): answered with `range(0, contig)` when
    /// that says it all, else with the runs held there (`range`s, or `bitfield`s past [`MAX_WANT_RANGES`]
    /// runs); the segment is remembered, so blocks stored there later are announced to the peer.
    fn on_want(&mut self, peer: PeerId, want: Want) {
        self.stats.wants_received += 1;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.remote_wants.add(&want) != WantAdded::Added || p.outbox_bytes > OUTBOX_HIGH_WATER {
            // Repeats are not answered again, nor are wants while the peer does not read its answers.
            return;
        }
        let (contig, length) = (self.contig, self.length);
        let want_end = want.start.saturating_add(want.length);
        if contig > 0
            && (want_end < contig || contig == length || (want.any && want.start < contig))
        {
            self.send_range(peer, 0, contig);
            return;
        }
        let end = want_end.min(length);
        if want.start >= end {
            return;
        }
        let runs = self.core.stored_runs(want.start, end, MAX_WANT_RANGES + 1);
        if runs.len() <= MAX_WANT_RANGES {
            for (s, e) in runs {
                self.send_range(peer, s, e - s);
            }
            return;
        }
        self.send_bitfields(peer, want.start, end);
    }

    /// Sends `bitfield` messages saying exactly which blocks of `start..end` we hold, one per want segment
    /// that holds any, from a multiple of 32 (as JS `bitfield.want`).
    fn send_bitfields(&mut self, peer: PeerId, start: u64, end: u64) {
        let mut seg_start = start - start % 32;
        while seg_start < end {
            let seg_end = (seg_start - seg_start % WANT_SEGMENT)
                .saturating_add(WANT_SEGMENT)
                .min(end);
            let words_end = seg_end.div_ceil(32).saturating_mul(32);
            let mut words = Vec::new();
            let mut any = false;
            let mut chunk = seg_start;
            while chunk < words_end {
                let chunk_end = chunk.saturating_add(BITFIELD_CHUNK).min(words_end);
                let mut bits = vec![0u32; ((chunk_end - chunk) / 32) as usize];
                for (s, e) in self.core.stored_runs(chunk, chunk_end, usize::MAX) {
                    any = true;
                    for i in s..e {
                        let off = i - chunk;
                        if let Some(w) = bits.get_mut((off / 32) as usize) {
                            *w |= 1 << (off % 32);
                        }
                    }
                }
                words.extend_from_slice(&bits);
                chunk = chunk_end;
            }
            if any {
                self.push(
                    peer,
                    kind::BITFIELD,
                    encode(&BitfieldMessage {
                        start: seg_start,
                        bitfield: words,
                    }),
                );
            }
            seg_start = seg_end;
        }
    }

    fn on_bitfield(&mut self, peer: PeerId, msg: BitfieldMessage) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if msg.start < p.remote_contig {
                p.remote_contig = msg.start;
            }
            // A bound on what a peer can make us remember (an honest one rarely has this many holes).
            if p.remote_has.runs() < MAX_REMOTE_RUNS {
                p.remote_has.apply_words(msg.start, &msg.bitfield);
            }
        }
    }

    fn on_range(&mut self, peer: PeerId, r: Range) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let end = r.start.saturating_add(r.length);
        if r.drop {
            if r.start < p.remote_contig {
                // What was contiguous past the dropped range stays known.
                p.remote_has.insert(end, p.remote_contig);
                p.remote_contig = r.start;
            }
            p.remote_has.remove(r.start, end);
        } else if r.start == 0 {
            p.remote_contig = p.remote_contig.max(end);
            p.refused.retain(|&i| i >= end);
        } else if p.remote_has.runs() < MAX_REMOTE_RUNS {
            p.remote_has.insert(r.start, end);
            p.refused.retain(|&i| i < r.start || i >= end);
        }
    }

    /// Removes a peer (its channel closed); its requests in flight go to other peers.
    pub fn remove_peer(&mut self, peer: PeerId, reason: &str) {
        // Answers being stored stay in flight until their store completes.
        let ids: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, inf)| inf.peer == peer && !inf.storing)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.release(id);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            // Keep an errored peer until the driver saw the error (it closes the channel), then forget it.
            p.opened = false;
            p.outbox.clear();
            p.outbox_bytes = 0;
            p.pending.clear();
            p.serving = 0;
            if p.error.is_none() {
                self.peers.remove(&peer);
            }
        }
        {
            self.event(Event::PeerRemoved {
                peer,
                reason: reason.to_owned(),
            });
        }
        self.update();
    }

    /// Forgets a peer entirely (after its channel was closed).
    pub fn forget_peer(&mut self, peer: PeerId) {
        if self.peers.contains_key(&peer) {
            self.remove_peer(peer, "closed");
            self.peers.remove(&peer);
        }
    }

    /// The error a peer was dropped for, if any.
    pub fn peer_error(&self, peer: PeerId) -> Option<&PeerError> {
        self.peers.get(&peer).and_then(|p| p.error.as_ref())
    }

    /// Number of peers whose channel is open (capability checked).
    pub fn open_peers(&self) -> usize {
        self.peers.values().filter(|p| p.opened).count()
    }

    /// Wants block `index` (for a `get`): it is requested from a peer that has it. Calls nest.
    pub fn want_block(&mut self, index: u64) {
        *self.wanted.entry(index).or_insert(0) += 1;
        self.update();
    }

    /// Undoes one [`ReplicatorCore::want_block`].
    pub fn unwant_block(&mut self, index: u64) {
        if let Some(n) = self.wanted.get_mut(&index) {
            *n -= 1;
            if *n == 0 {
                self.wanted.remove(&index);
            }
        }
    }

    /// Downloads blocks `start..end` (`None`: to the end, following the core as it grows). Returns an id for
    /// [`ReplicatorCore::remove_range`].
    pub fn add_range(&mut self, start: u64, end: Option<u64>) -> u64 {
        let id = self.next_range;
        self.next_range += 1;
        self.ranges.push(DownloadRange {
            id,
            start,
            cursor: start,
            end,
        });
        self.update();
        id
    }

    /// Stops a download range.
    pub fn remove_range(&mut self, id: u64) {
        self.ranges.retain(|r| r.id != id);
    }

    /// The longest head an open peer on our fork told us of (0 when none did): for a core that does not take
    /// upgrades ([`Hypercore::takes_upgrades`]), how far peers are signed ahead of it.
    pub fn remote_length(&self) -> u64 {
        self.peers
            .values()
            .filter(|p| p.opened && p.error.is_none())
            .filter_map(|p| p.remote.filter(|r| r.fork == self.fork).map(|r| r.length))
            .max()
            .unwrap_or(0)
    }

    /// True when at least one open peer sent its head and no upgrade it offers is pending.
    pub fn is_updated(&self) -> bool {
        let synced = self.peers.values().any(|p| p.opened && p.remote.is_some());
        synced
            && self.upgrade_inflight.is_none()
            && self.upgrade_candidate().is_none()
            && self.reorg_candidate().is_none()
    }

    /// The next message for `peer`: `(type, payload)`.
    pub fn poll_transmit(&mut self, peer: PeerId) -> Option<(u64, Vec<u8>)> {
        let p = self.peers.get_mut(&peer)?;
        let m = p.outbox.pop_front()?;
        p.outbox_bytes -= m.1.len();
        if p.outbox_bytes <= OUTBOX_HIGH_WATER / 2 && !p.pending.is_empty() {
            self.answer_pending(peer);
        }
        Some(m)
    }

    /// Answers held requests until the outbox is over its high-water mark again.
    fn answer_pending(&mut self, peer: PeerId) {
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            if p.outbox_bytes > OUTBOX_HIGH_WATER || p.serving >= MAX_SERVING {
                return;
            }
            let Some(req) = p.pending.pop_front() else {
                return;
            };
            self.answer(peer, req);
        }
    }

    /// Ages `peer`'s requests in flight by one tick (the driver ticks each peer once a second); those
    /// unanswered for [`REQUEST_TIMEOUT_TICKS`] are cancelled (a `cancel` is sent) and asked again, from
    /// whichever peer has room. Returns how many timed out.
    pub fn tick_peer(&mut self, peer: PeerId) -> usize {
        let mut expired = Vec::new();
        for (id, inf) in &mut self.inflight {
            if inf.peer == peer && !inf.storing {
                inf.age += 1;
                if inf.age >= REQUEST_TIMEOUT_TICKS {
                    expired.push(*id);
                }
            }
        }
        for &id in &expired {
            self.release(id);
            self.push(peer, kind::CANCEL, encode(&Cancel { request: id }));
        }
        if !expired.is_empty() {
            self.update();
        }
        expired.len()
    }

    /// True when so many requests wait for the outbox to drain that the peer's messages should not be read
    /// until it does (a bound for peers that ask faster than they read).
    pub fn is_backlogged(&self, peer: PeerId) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| p.pending.len() >= MAX_PENDING_REQUESTS)
    }

    /// Peers with messages waiting in [`ReplicatorCore::poll_transmit`].
    pub fn peers_with_output(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.outbox.is_empty() || p.error.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The next piece of storage work for the driver: perform it ([`Effect::perform`], blocking I/O, so off
    /// the async runtime) and hand the result to [`ReplicatorCore::complete`]. Effects must be performed in
    /// the order they come (a proof is verified against what the ones before it stored).
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Takes the result of an [`Effect`]: a stored proof's block and head now count as ours (they are
    /// announced to peers, requests for them answered); a read request's answer is queued. An error means
    /// the peer sent data that failed verification: it is removed here and its channel must be closed.
    pub fn complete(&mut self, done: Completion) -> Result<(), PeerError> {
        match done {
            Completion::Stored {
                peer,
                request,
                block,
                result,
            } => {
                let r = self.stored(peer, request, block, result);
                let r = self.fail_on_error(peer, r);
                self.update();
                r
            }
            Completion::Served {
                peer,
                request,
                answer,
            } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return Ok(());
                };
                p.serving = p.serving.saturating_sub(1);
                self.answered(peer, request, answer);
                if self
                    .peers
                    .get(&peer)
                    .is_some_and(|p| !p.pending.is_empty() && p.outbox_bytes <= OUTBOX_HIGH_WATER)
                {
                    self.answer_pending(peer);
                }
                Ok(())
            }
        }
    }

    /// Performs every pending [`Effect`] here, blocking, and completes it (and those its completion causes):
    /// for tests and callers without a runtime. Returns the peers dropped for invalid data.
    pub fn run_effects(&mut self) -> Vec<(PeerId, PeerError)> {
        let mut dropped = Vec::new();
        while let Some(effect) = self.poll_effect() {
            let peer = effect.peer();
            let done = effect.perform(&self.core);
            if let Err(e) = self.complete(done) {
                dropped.push((peer, e));
            }
        }
        dropped
    }

    /// True while a proof of a block in `start..end` is being stored (an [`Effect::Store`] not completed).
    pub fn is_storing_range(&self, start: u64, end: u64) -> bool {
        self.inflight
            .values()
            .any(|i| i.storing && i.block.is_some_and(|b| (start..end).contains(&b)))
    }

    /// True while storage work is queued or being performed ([`ReplicatorCore::poll_effect`]).
    pub fn is_storing(&self) -> bool {
        !self.effects.is_empty()
            || self.inflight.values().any(|i| i.storing)
            || self.peers.values().any(|p| p.serving > 0)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues an event; the oldest are dropped past [`MAX_EVENTS`] when nobody reads them.
    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn push(&mut self, peer: PeerId, k: u64, payload: Vec<u8>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.queue((k, payload));
        }
    }

    fn compat(&self) -> bool {
        self.core
            .manifest()
            .is_none_or(|m| caps::manifest_hash(&m) != self.core.key())
    }

    fn send_sync(&mut self, peer: PeerId) {
        let (fork, length) = (self.fork, self.length);
        let has_manifest = !self.compat();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let remote_length = p.remote.filter(|r| r.fork == fork).map_or(0, |r| r.length);
        // As JS `_canUpgrade`: from nothing always; from a length we do not exceed never.
        let can_upgrade = match p.remote {
            None => true,
            Some(r) => r.fork == fork && (r.length == 0 || r.length < length),
        };
        let sync = Sync {
            fork,
            length,
            remote_length,
            can_upgrade,
            uploading: true,
            downloading: true,
            has_manifest,
            allow_push: false,
        };
        p.queue((kind::SYNC, encode(&sync)));
    }

    fn send_range(&mut self, peer: PeerId, start: u64, length: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if start == 0 {
                p.contig_sent = p.contig_sent.max(length);
            }
            p.queue((
                kind::RANGE,
                encode(&Range {
                    drop: false,
                    start,
                    length,
                }),
            ));
        }
    }

    fn advance_contig(&mut self) {
        while self.contig < self.length && self.core.has(self.contig) {
            self.contig += 1;
        }
    }

    /// Picks up local changes (appends, truncations, stored proofs): tells peers about a new head and new
    /// contiguous blocks. Called by every input; call it after appending to the core.
    pub fn refresh_local(&mut self) {
        let (length, fork) = self.core.replicated_head();
        let head_changed = length != self.length || fork != self.fork;
        let old_length = self.length;
        let forked = fork != self.fork;
        if forked || length < self.length {
            // A truncation or a reorg dropped blocks: count what is contiguous (and what ranges hold) again.
            self.contig = 0;
            for r in &mut self.ranges {
                r.cursor = r.start;
            }
        }
        self.length = length;
        self.fork = fork;
        self.tell_clears();
        self.advance_contig();
        // Blocks past the contiguous prefix may be gone: tell peers (as JS `ontruncate` does).
        let dropped = (self.contig < old_length && (forked || length < old_length))
            .then(|| (self.contig, old_length - self.contig));
        let open: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.opened)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            if let Some((start, len)) = dropped {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.contig_sent = p.contig_sent.min(start);
                    p.queue((
                        kind::RANGE,
                        encode(&Range {
                            drop: true,
                            start,
                            length: len,
                        }),
                    ));
                }
            }
            if head_changed {
                self.send_sync(id);
            }
            let sent = self.peers.get(&id).map_or(0, |p| p.contig_sent);
            if self.contig == self.length && self.contig > sent {
                self.send_range(id, 0, self.contig);
            }
        }
        self.announce_fresh();
    }

    /// Tells open peers about blocks cleared locally (JS `onhave(start, length, drop = true)`: a `range` with
    /// `drop`), and counts the contiguous prefix again when a clear cut into it.
    fn tell_clears(&mut self) {
        if self.core.clear_count() == self.clears_seen {
            return;
        }
        let clears = self.core.clears_since(self.clears_seen);
        self.clears_seen += clears.len();
        for (start, end) in clears {
            self.contig = self.contig.min(start);
            for r in &mut self.ranges {
                r.cursor = r.cursor.min(start).max(r.start);
            }
            for p in self.peers.values_mut().filter(|p| p.opened) {
                let believed = p.contig_sent;
                p.contig_sent = believed.min(start);
                p.queue((
                    kind::RANGE,
                    encode(&Range {
                        drop: true,
                        start,
                        length: end - start,
                    }),
                ));
                // A drop cuts the peer's idea of our contiguous prefix at `start` (JS forgets what followed):
                // what we still hold after the cleared range is advertised again.
                if believed > end {
                    p.queue((
                        kind::RANGE,
                        encode(&Range {
                            drop: false,
                            start: end,
                            length: believed - end,
                        }),
                    ));
                }
            }
        }
    }

    fn upgrade_candidate(&self) -> Option<PeerId> {
        if !self.core.takes_upgrades() {
            return None;
        }
        self.peers
            .iter()
            .filter(|(_, p)| p.opened && p.error.is_none())
            .filter_map(|(id, p)| {
                let r = p.remote?;
                let ok = r.fork == self.fork
                    && r.length > self.length
                    && r.can_upgrade
                    && p.refused_upgrade != Some((r.fork, r.length));
                ok.then_some((r.length, *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// A peer on a newer fork (the writer truncated): take its tree with a reorg proof.
    fn reorg_candidate(&self) -> Option<PeerId> {
        if !self.core.takes_upgrades() {
            return None;
        }
        self.peers
            .iter()
            .filter(|(_, p)| p.opened && p.error.is_none())
            .filter_map(|(id, p)| {
                let r = p.remote?;
                let ok = r.fork > self.fork
                    && r.length > 0
                    && p.refused_upgrade != Some((r.fork, r.length));
                ok.then_some((r.fork, *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn send_reorg_request(&mut self, peer: PeerId) {
        let Some(remote) = self.peers.get(&peer).and_then(|p| p.remote) else {
            return;
        };
        let id = self.request_id();
        let req = Request {
            id,
            fork: remote.fork,
            upgrade: Some(RequestUpgrade {
                start: 0,
                length: remote.length,
            }),
            manifest: self.core.manifest().is_none(),
            ..Request::default()
        };
        self.upgrade_inflight = Some(id);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.inflight += 1;
        }
        self.inflight.insert(
            id,
            Inflight {
                peer,
                block: None,
                upgrade: true,
                reorg: Some(remote.fork),
                age: 0,
                storing: false,
            },
        );
        self.stats.requests_sent += 1;
        self.push(peer, kind::REQUEST, encode(&req));
    }

    fn request_id(&mut self) -> u64 {
        loop {
            let id = self.next_request;
            self.next_request = self.next_request.wrapping_add(1).max(1);
            if !self.inflight.contains_key(&id) {
                return id;
            }
        }
    }

    fn send_request(&mut self, peer: PeerId, block: Option<u64>, upgrade: bool) {
        let id = self.request_id();
        let mut req = Request {
            id,
            fork: self.fork,
            ..Request::default()
        };
        if let Some(index) = block {
            req.block = Some(RequestBlock {
                index,
                nodes: self.core.missing_nodes(2 * index),
            });
            self.blocks_inflight.insert(index);
        }
        if upgrade {
            let remote = self.peers.get(&peer).and_then(|p| p.remote);
            let target = remote.map_or(self.length, |r| r.length);
            req.upgrade = Some(RequestUpgrade {
                start: self.length,
                length: target.saturating_sub(self.length),
            });
            req.manifest = self.core.manifest().is_none() && remote.is_some_and(|r| r.has_manifest);
            self.upgrade_inflight = Some(id);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.inflight += 1;
        }
        self.inflight.insert(
            id,
            Inflight {
                peer,
                block,
                upgrade,
                reorg: None,
                age: 0,
                storing: false,
            },
        );
        self.stats.requests_sent += 1;
        self.push(peer, kind::REQUEST, encode(&req));
    }

    /// Picks the peer with the fewest requests in flight that has `index` and room for one more.
    fn peer_for(&self, index: u64) -> Option<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| {
                p.opened
                    && p.error.is_none()
                    && p.inflight < self.max_inflight
                    && p.remote.is_some_and(|r| r.fork == self.fork)
                    && p.has(index)
            })
            .min_by_key(|(_, p)| p.inflight)
            .map(|(id, _)| *id)
    }

    fn all_saturated(&self) -> bool {
        self.peers
            .values()
            .filter(|p| p.opened && p.error.is_none())
            .all(|p| p.inflight >= self.max_inflight)
    }

    /// Sends the requests that can be sent now: an upgrade if a peer is ahead, then wanted blocks, then
    /// download ranges (after [`ReplicatorCore::refresh_local`]). Every input calls it; call it after
    /// changing the core directly (appending).
    pub fn update(&mut self) {
        self.refresh_local();
        if self.upgrade_inflight.is_none() {
            if let Some(peer) = self.reorg_candidate() {
                self.send_reorg_request(peer);
            } else if let Some(peer) = self.upgrade_candidate() {
                self.send_request(peer, None, true);
            }
        }
        if self.peers.is_empty() {
            return;
        }
        let mut budget = SCAN_BUDGET;
        let wanted: Vec<u64> = self
            .wanted
            .keys()
            .copied()
            .filter(|&i| i < self.length)
            .collect();
        for index in wanted {
            if self.all_saturated() {
                return;
            }
            self.try_request(index);
        }
        for r in 0..self.ranges.len() {
            let Some(range) = self.ranges.get(r) else {
                break;
            };
            let end = range.end.unwrap_or(u64::MAX).min(self.length);
            let mut cursor = range.cursor;
            while cursor < end && self.core.has(cursor) {
                cursor += 1;
            }
            if let Some(range) = self.ranges.get_mut(r) {
                range.cursor = cursor;
            }
            let mut index = cursor;
            while index < end && budget > 0 {
                if self.all_saturated() {
                    return;
                }
                budget -= 1;
                self.try_request(index);
                index += 1;
            }
        }
    }

    fn try_request(&mut self, index: u64) {
        if self.blocks_inflight.contains(&index) || self.core.has(index) {
            return;
        }
        if let Some(peer) = self.peer_for(index) {
            self.send_request(peer, Some(index), false);
        } else {
            self.want_from_peers(index);
        }
    }

    /// No peer announced block `index`: ask every open peer on our fork that may hold it past what it
    /// announced about the block's segment (`want`), once per segment (JS `_maybeWant`).
    fn want_from_peers(&mut self, index: u64) {
        let segment = index / WANT_SEGMENT;
        let fork = self.fork;
        let ids: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.opened
                    && p.error.is_none()
                    && p.remote.is_some_and(|r| r.fork == fork)
                    && index >= p.remote_contig
                    && !p.remote_has.contains(index)
                    && !p.wants.contains(segment)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let (wanted, ranges) = (&self.wanted, &self.ranges);
            let needed = |s: u64| segment_needed(wanted, ranges, s);
            let Some(change) = self
                .peers
                .get_mut(&id)
                .and_then(|p| p.wants.want(segment, needed))
            else {
                continue;
            };
            if let Some(old) = change.unwant {
                self.stats.unwants_sent += 1;
                self.push(id, kind::UNWANT, encode(&segment_want(old)));
            }
            self.stats.wants_sent += 1;
            self.push(id, kind::WANT, encode(&segment_want(change.want)));
        }
    }

    /// Tells peers about blocks stored since the last call (JS `broadcastRange` on download): a peer hears
    /// of a block it does not hold when it wants the block's segment or the block is among the last
    /// [`LAST_BLOCKS`]. (Once every block is held, [`ReplicatorCore::refresh_local`] sends `range(0, n)`.)
    fn announce_fresh(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        let fresh = std::mem::take(&mut self.fresh);
        if self.contig == self.length {
            return;
        }
        let length = self.length;
        let mut sent = 0;
        for p in self
            .peers
            .values_mut()
            .filter(|p| p.opened && p.error.is_none())
        {
            for &index in &fresh {
                let known = index < p.remote_contig || p.remote_has.contains(index);
                let near_end = index.saturating_add(LAST_BLOCKS) >= length;
                if index < length && !known && (near_end || p.remote_wants.has(index)) {
                    p.queue((
                        kind::RANGE,
                        encode(&Range {
                            drop: false,
                            start: index,
                            length: 1,
                        }),
                    ));
                    sent += 1;
                }
            }
        }
        self.stats.haves_sent += sent;
    }

    /// An extension message (JS `onextension`): an empty name repeats the last one received; delivered to
    /// the registered extension of that name, ignored when there is none.
    fn on_extension(&mut self, peer: PeerId, msg: ExtensionMessage) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !msg.name.is_empty() {
            p.last_extension_recv = msg.name;
        }
        let Some(ext) = self.extensions.get_mut(&p.last_extension_recv) else {
            return;
        };
        if ext.deliver(peer, &msg.message) {
            self.stats.extensions_received += 1;
        } else {
            self.stats.extensions_dropped += 1;
        }
    }

    /// Registers extension `name` (JS `core.registerExtension(name, { encoding })`): messages to it from any
    /// peer are kept for [`ReplicatorCore::poll_extension`]. Registrations nest: each needs one
    /// [`ReplicatorCore::unregister_extension`]; a repeat changes the encoding.
    pub fn register_extension(&mut self, name: &str, encoding: ExtensionEncoding) {
        self.extensions
            .entry(name.to_owned())
            .or_insert_with(|| ExtensionState::new(encoding))
            .register(encoding);
    }

    /// Undoes one [`ReplicatorCore::register_extension`]; the last one drops the extension and its unread
    /// messages (later messages to it are ignored).
    pub fn unregister_extension(&mut self, name: &str) {
        if self
            .extensions
            .get_mut(name)
            .is_some_and(|e| e.unregister())
        {
            self.extensions.remove(name);
        }
    }

    /// The oldest unread message to extension `name`: `(from, message)`, the message decoded per the
    /// extension's encoding.
    pub fn poll_extension(&mut self, name: &str) -> Option<(PeerId, Vec<u8>)> {
        self.extensions.get_mut(name)?.poll()
    }

    /// Sends `message` to extension `name` of `peer` (JS `ext.send(message, peer)`), encoded per the
    /// extension's encoding (raw when it is not registered). False when the peer is not open.
    pub fn send_extension(&mut self, peer: PeerId, name: &str, message: &[u8]) -> bool {
        let encoding = self
            .extensions
            .get(name)
            .map_or(ExtensionEncoding::Raw, ExtensionState::encoding);
        let Some(p) = self
            .peers
            .get_mut(&peer)
            .filter(|p| p.opened && p.error.is_none())
        else {
            return false;
        };
        let wire_name = if p.last_extension_sent == name {
            String::new()
        } else {
            name.to_owned()
        };
        name.clone_into(&mut p.last_extension_sent);
        let m = ExtensionMessage {
            name: wire_name,
            message: encoding.encode(message),
        };
        p.queue((kind::EXTENSION, encode(&m)));
        self.stats.extensions_sent += 1;
        true
    }

    /// Sends `message` to extension `name` of every open peer (JS `ext.broadcast(message)`); returns how
    /// many.
    pub fn broadcast_extension(&mut self, name: &str, message: &[u8]) -> usize {
        let ids = self.open_peer_ids();
        ids.into_iter()
            .filter(|&id| self.send_extension(id, name, message))
            .count()
    }

    /// The peers whose channel is open (capability checked), in id order.
    pub fn open_peer_ids(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.opened && p.error.is_none())
            .map(|(id, _)| *id)
            .collect()
    }
}

/// True while a `get` waits for a block of want segment `segment`, or a download range still needs blocks
/// there: its place among a peer's wants is then not given up.
fn segment_needed(wanted: &BTreeMap<u64, usize>, ranges: &[DownloadRange], segment: u64) -> bool {
    let lo = segment.saturating_mul(WANT_SEGMENT);
    let hi = lo.saturating_add(WANT_SEGMENT);
    wanted.range(lo..hi).next().is_some()
        || ranges
            .iter()
            .any(|r| r.cursor < hi && r.end.is_none_or(|e| e > lo))
}

/// Effects one storage worker run performs before it completes them (one lock of the state per batch).
const STORAGE_BATCH: usize = 64;

/// Effects waiting for the storage worker, and whether one runs.
#[derive(Debug, Default)]
struct StorageQueue {
    queue: VecDeque<Effect>,
    running: bool,
}

/// The driver's shared state.
#[derive(Debug)]
struct Shared {
    core: Hypercore,
    state: Mutex<ReplicatorCore>,
    notifies: Mutex<HashMap<PeerId, Arc<Notify>>>,
    changed: watch::Sender<u64>,
    storage: Mutex<StorageQueue>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ReplicatorCore> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the state's effects to the storage queue and starts a worker for them if none runs: one
    /// worker at a time on tokio's blocking pool performs them in order, so disk writes, syncs and reads
    /// never run on a runtime worker thread. (Outside a runtime they are performed here.)
    fn forward_effects(self: &Arc<Self>, g: &mut ReplicatorCore) {
        let mut q = self.storage.lock().unwrap_or_else(PoisonError::into_inner);
        q.queue.extend(std::iter::from_fn(|| g.poll_effect()));
        if q.running || q.queue.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            drop(q);
            g.run_effects();
            return;
        };
        q.running = true;
        let me = Arc::clone(self);
        rt.spawn_blocking(move || me.storage_worker());
    }

    /// Performs queued effects in order, a batch at a time, completing each batch in the state (which may
    /// queue more), until the queue is empty.
    fn storage_worker(self: Arc<Self>) {
        loop {
            let batch: Vec<Effect> = {
                let mut q = self.storage.lock().unwrap_or_else(PoisonError::into_inner);
                if q.queue.is_empty() {
                    q.running = false;
                    return;
                }
                let n = q.queue.len().min(STORAGE_BATCH);
                q.queue.drain(..n).collect()
            };
            let done: Vec<Completion> = batch.into_iter().map(|e| e.perform(&self.core)).collect();
            {
                let mut g = self.lock();
                for c in done {
                    // A peer whose data failed verification is removed by `complete`; its reader sees the
                    // error and closes the channel.
                    let _ = g.complete(c);
                }
                let mut q = self.storage.lock().unwrap_or_else(PoisonError::into_inner);
                q.queue.extend(std::iter::from_fn(|| g.poll_effect()));
            }
            self.kick();
        }
    }

    /// Wakes the peer tasks that have something to send and every waiter.
    fn kick(&self) {
        let ready = self.lock().peers_with_output();
        {
            let n = self.notifies.lock().unwrap_or_else(PoisonError::into_inner);
            for id in ready {
                if let Some(w) = n.get(&id) {
                    w.notify_one();
                }
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut ReplicatorCore) -> R) -> R {
        let r = {
            let mut g = self.lock();
            let r = f(&mut g);
            self.forward_effects(&mut g);
            r
        };
        self.kick();
        r
    }
}

/// Replicates one core with every peer of every mux it is attached to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Replicator {
    shared: Arc<Shared>,
}

struct WantGuard<'a> {
    shared: &'a Shared,
    index: Option<u64>,
    range: Option<u64>,
}

impl Drop for WantGuard<'_> {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        if let Some(i) = self.index {
            g.unwant_block(i);
        }
        if let Some(r) = self.range {
            g.remove_range(r);
        }
    }
}

impl Replicator {
    /// A replicator for `core` (not attached to anything yet).
    pub fn new(core: Hypercore) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(ReplicatorCore::new(core.clone())),
                core,
                notifies: Mutex::new(HashMap::new()),
                changed: watch::channel(0).0,
                storage: Mutex::new(StorageQueue::default()),
            }),
        }
    }

    /// The core.
    pub fn core(&self) -> &Hypercore {
        &self.shared.core
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Per-peer counters and remote public keys of the connected peers.
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        self.shared.lock().peer_stats()
    }

    /// Number of peers with an open channel.
    pub fn peers(&self) -> usize {
        self.shared.lock().open_peers()
    }

    /// Sets how many requests may be in flight per peer.
    pub fn set_max_inflight(&self, n: usize) {
        self.shared.lock().set_max_inflight(n);
    }

    /// Replicates the core over `mux`, where we are `is_initiator` on a stream with `handshake_hash`: opens
    /// our `hypercore/alpha` channel and accepts the remote's (re)opens of it. Call inside a tokio runtime,
    /// preferably from [`Mux::new_with`]'s setup so the remote's open cannot arrive first.
    pub fn attach(&self, mux: &Mux, is_initiator: bool, handshake_hash: &[u8]) {
        self.attach_remote(mux, is_initiator, handshake_hash, None);
    }

    /// [`Replicator::attach`], naming the remote's stream public key (reported in [`PeerStats`]).
    pub fn attach_remote(
        &self,
        mux: &Mux,
        is_initiator: bool,
        handshake_hash: &[u8],
        remote_public_key: Option<[u8; 32]>,
    ) {
        let dk = self.core().discovery_key();
        let banned = Arc::new(AtomicBool::new(false));
        if let Some(channel) = mux.create_channel(ChannelOptions::new(PROTOCOL).id(dk.to_vec())) {
            self.spawn_peer(
                channel,
                is_initiator,
                handshake_hash,
                remote_public_key,
                Arc::clone(&banned),
            );
        }
        let mut pairing = mux.pair(PROTOCOL, Some(&dk));
        let me = self.clone();
        let hh = handshake_hash.to_vec();
        tokio::spawn(async move {
            while let Some(incoming) = pairing.next().await {
                if banned.load(Ordering::Relaxed) {
                    continue; // dropping it rejects
                }
                if let Some(channel) = incoming.accept_default() {
                    me.spawn_peer(
                        channel,
                        is_initiator,
                        &hh,
                        remote_public_key,
                        Arc::clone(&banned),
                    );
                }
            }
        });
    }

    fn spawn_peer(
        &self,
        channel: Channel,
        is_initiator: bool,
        handshake_hash: &[u8],
        remote_public_key: Option<[u8; 32]>,
        banned: Arc<AtomicBool>,
    ) {
        let (id, hs) = {
            let mut g = self.shared.lock();
            let (id, hs) = g.add_peer(is_initiator, handshake_hash);
            if let Some(key) = remote_public_key {
                g.set_remote_public_key(id, key);
            }
            (id, hs)
        };
        if channel.open(&hs).is_err() {
            self.shared.lock().forget_peer(id);
            return;
        }
        let notify = Arc::new(Notify::new());
        self.shared
            .notifies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&notify));
        let shared = Arc::clone(&self.shared);
        let channel = Arc::new(channel);
        tokio::spawn(async move {
            let bad = run_peer(&shared, &channel, id, &notify).await;
            if bad {
                banned.store(true, Ordering::Relaxed);
            }
            channel.close();
            shared
                .notifies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            shared.with(|s| s.forget_peer(id));
        });
    }

    /// Block `index`: from local storage, or else requested from a peer that has it, verified and stored
    /// first. Waits (for peers, for the core to grow) until it is there; bound it with a timeout.
    pub async fn get(&self, index: u64) -> Result<Vec<u8>, HypercoreError> {
        let mut rx = self.core().subscribe();
        let mut state = self.shared.changed.subscribe();
        let mut guard = None;
        loop {
            if self.core().has(index) {
                // A block being stored from a peer is readable a moment before the store completes (and
                // is counted): wait for that, so the counters agree with what was returned.
                if !self.shared.lock().is_storing_range(index, index + 1) {
                    if let Some(b) = self.core().get(index)? {
                        return Ok(b);
                    }
                }
            } else if guard.is_none() {
                guard = Some(WantGuard {
                    shared: &self.shared,
                    index: Some(index),
                    range: None,
                });
                self.shared.with(|s| s.want_block(index));
                continue;
            }
            let dropped = tokio::select! {
                r = rx.changed() => r.is_err(),
                r = state.changed() => r.is_err(),
            };
            if dropped {
                return Err(HypercoreError::Corrupt("core dropped".into()));
            }
        }
    }

    /// Downloads blocks `start..end` and waits until all are stored.
    pub async fn download(&self, start: u64, end: u64) {
        let mut rx = self.core().subscribe();
        let id = self.shared.with(|s| s.add_range(start, Some(end)));
        let _guard = WantGuard {
            shared: &self.shared,
            index: None,
            range: Some(id),
        };
        let mut state = self.shared.changed.subscribe();
        let mut cursor = start;
        loop {
            while cursor < end && self.core().has(cursor) {
                cursor += 1;
            }
            // Stored, and every store in the range completed (counted, announced).
            if cursor >= end && !self.shared.lock().is_storing_range(start, end) {
                return;
            }
            let dropped = tokio::select! {
                r = rx.changed() => r.is_err(),
                r = state.changed() => r.is_err(),
            };
            if dropped {
                return;
            }
        }
    }

    /// Keeps downloading blocks `start..end` (`end` `None`: as the core grows) until the returned guard is
    /// dropped.
    pub fn download_range(&self, start: u64, end: Option<u64>) -> DownloadGuard {
        let id = self.shared.with(|s| s.add_range(start, end));
        DownloadGuard {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// The longest head an open peer told us of ([`ReplicatorCore::remote_length`]).
    pub fn remote_length(&self) -> u64 {
        self.shared.lock().remote_length()
    }

    /// Runs the replication state again (after a change of the core made outside the replicator, such as
    /// [`Hypercore::set_upgrades_allowed`]): new requests go out.
    pub fn poke(&self) {
        self.shared.with(ReplicatorCore::update);
    }

    /// Keeps downloading every block as the core grows until the returned guard is dropped.
    pub fn download_all(&self) -> DownloadGuard {
        let id = self.shared.with(|s| s.add_range(0, None));
        DownloadGuard {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// Waits until a peer told us its head and we took any upgrade it offered; returns the length.
    pub async fn update(&self) -> u64 {
        let mut rx = self.shared.changed.subscribe();
        loop {
            if self.shared.lock().is_updated() {
                return self.core().length();
            }
            if rx.changed().await.is_err() {
                return self.core().length();
            }
        }
    }

    /// Waits until at least `n` peers have an open channel.
    pub async fn wait_for_peers(&self, n: usize) {
        let mut rx = self.shared.changed.subscribe();
        while self.peers() < n {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// A receiver that sees a new value after every change of the replication state (a message processed,
    /// a peer added or removed): subscribe, check what you wait for, then await `changed()` and check again.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// Drains the events seen so far.
    pub fn events(&self) -> Vec<Event> {
        let mut g = self.shared.lock();
        std::iter::from_fn(|| g.poll_event()).collect()
    }
}

/// Keeps a [`Replicator::download_all`] going; dropping it stops it.
#[derive(Debug)]
pub struct DownloadGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for DownloadGuard {
    fn drop(&mut self) {
        self.shared.lock().remove_range(self.id);
    }
}

/// How often a peer's requests in flight age ([`ReplicatorCore::tick_peer`]).
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Messages sent per cork (one batch frame).
const FLUSH_BATCH: usize = 64;

/// One peer's reader: waits for the remote's open, then feeds the channel's messages to the state, while
/// [`write_peer`] sends what the state queues. Reading never waits for writing (so two peers pushing data
/// at each other cannot deadlock on full buffers), except past [`MAX_PENDING_REQUESTS`] held requests.
/// Returns true if the peer was dropped for misbehaving.
async fn run_peer(
    shared: &Arc<Shared>,
    channel: &Arc<Channel>,
    id: PeerId,
    notify: &Arc<Notify>,
) -> bool {
    let Ok(handshake) = channel.opened().await else {
        return false;
    };
    if shared.with(|s| s.on_open(id, &handshake)).is_err() {
        return true;
    }
    let progress = Arc::new(Notify::new());
    let mut writer = tokio::spawn(write_peer(
        Arc::clone(shared),
        Arc::clone(channel),
        id,
        Arc::clone(notify),
        Arc::clone(&progress),
    ));
    let mut core_rx = shared.core.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let bad = loop {
        if shared.lock().peer_error(id).is_some() {
            break true;
        }
        let backlogged = shared.lock().is_backlogged(id);
        tokio::select! {
            m = channel.recv(), if !backlogged => {
                let Some((k, payload)) = m else {
                    break false;
                };
                if shared.with(|s| s.on_message(id, k, &payload)).is_err() {
                    break true;
                }
            }
            () = progress.notified(), if backlogged => {}
            r = core_rx.changed() => {
                if r.is_ok() {
                    shared.with(ReplicatorCore::update);
                }
            }
            _ = tick.tick() => {
                shared.with(|s| s.tick_peer(id));
            }
            _ = &mut writer => break shared.lock().peer_error(id).is_some(),
        }
    };
    writer.abort();
    bad
}

/// One peer's writer: sends the messages the state queued for it, a batch frame at a time, waiting while
/// the stream is backed up. Ends when a send fails (the mux is gone).
async fn write_peer(
    shared: Arc<Shared>,
    channel: Arc<Channel>,
    id: PeerId,
    notify: Arc<Notify>,
    progress: Arc<Notify>,
) {
    loop {
        let (batch, failed): (Vec<(u64, Vec<u8>)>, bool) = {
            let mut g = shared.lock();
            let batch = std::iter::from_fn(|| g.poll_transmit(id))
                .take(FLUSH_BATCH)
                .collect();
            // Draining the outbox may have let held requests through to storage.
            shared.forward_effects(&mut g);
            (batch, g.peer_error(id).is_some())
        };
        if batch.is_empty() {
            if failed {
                // Dropped (its data failed verification in storage): the reader closes the channel.
                return;
            }
            notify.notified().await;
            continue;
        }
        channel.cork();
        let mut failed = false;
        for (k, payload) in &batch {
            if channel.send(*k, payload).await.is_err() {
                failed = true;
                break;
            }
        }
        channel.uncork();
        progress.notify_one();
        if failed {
            return;
        }
        // Answers to held requests may have been queued while sending.
        shared.kick();
    }
}

/// Starts a protomux over `transport` replicating `cores`, where we are `is_initiator` on a stream with
/// `handshake_hash` (both must be what the secret-stream handshake gave this side).
pub fn replicate<T: FrameTransport>(
    transport: T,
    is_initiator: bool,
    handshake_hash: &[u8],
    cores: &[Replicator],
) -> Mux {
    Mux::new_with(transport, |mux| {
        for c in cores {
            c.attach(mux, is_initiator, handshake_hash);
        }
    })
    .0
}

/// [`replicate`] over a secret stream (role and handshake hash taken from it).
pub fn replicate_stream<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: SecretStream<IO>,
    cores: &[Replicator],
) -> Mux {
    let is_initiator = stream.is_initiator();
    let hh = *stream.handshake_hash();
    let remote = Some(*stream.remote_public_key());
    Mux::new_with(stream, |mux| {
        for c in cores {
            c.attach_remote(mux, is_initiator, &hh, remote);
        }
    })
    .0
}
