//! `blind-relay` (1.6): a blind relay for UDX streams over a protomux channel, wire compatible with the
//! JavaScript module. A host reachable by both peers pairs their requests by a shared token and forwards
//! the raw UDX packets of their streams to each other (TURN-like; the payload stays end-to-end encrypted).
//!
//! Protocol (facts of blind-relay 1.6.1):
//! - One protomux channel of protocol [`PROTOCOL`] per connection to the relay, opened by both sides with
//!   an empty handshake. HyperDHT names the channel with the client's public key (the client uses its own
//!   key, the relay the connection's remote key).
//! - Message 0, [`Pair`]: `bitfield(7)` flags (bit 0: `isInitiator`), `fixed32` token, `uint` stream id,
//!   `uint` seq (always 0). A peer sends the id of its own UDX stream; once both sides of a token
//!   (initiator and not) asked, the relay creates one UDX stream per side, relays each to the other
//!   (`relayTo`), and answers each side with a `pair` carrying the id of *its* relay stream. A second
//!   request for a side already waiting is ignored.
//! - Message 1, [`Unpair`]: `bitfield(7)` flags (unused), `fixed32` token: cancels a pending pairing, or
//!   tears down an established one.
//! - A relay stream connects itself (firewall hook) to the first packet it receives, with the remote id
//!   the peer sent in its `pair`; the peer connects its stream to the relay stream's id through the path
//!   of its connection to the relay ([`UdxStream::connect_alongside`]).
//!
//! [`BlindRelayServer`] is the relay, [`BlindRelayClient`] the peer side.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, Notify};

use crate::compact_encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::protomux::{Channel, ChannelOptions, FrameTransport, Mux, ProtomuxError};
use crate::udx::{FirewallVerdict, UdxStream, UdxStreamControl};

/// The protomux protocol name.
pub const PROTOCOL: &str = "blind-relay";
/// Message type of [`Pair`].
pub const MSG_PAIR: u64 = 0;
/// Message type of [`Unpair`].
pub const MSG_UNPAIR: u64 = 1;

/// A pairing token (32 random bytes, shared by the two peers out of band).
pub type Token = [u8; 32];

/// A new random token (`relay.token()`).
pub fn token() -> Token {
    rand::random()
}

/// The `pair` message: a request from a peer, or the relay's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Which side of the pairing this is.
    pub is_initiator: bool,
    /// The pairing token.
    pub token: Token,
    /// The sender's UDX stream id.
    pub id: u64,
    /// The stream's initial sequence number (always 0).
    pub seq: u64,
}

/// The `unpair` message: cancels a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpair {
    /// The pairing token.
    pub token: Token,
}

impl Encode for Pair {
    fn encode(&self, w: &mut Writer) {
        w.uint8(u8::from(self.is_initiator))
            .bytes(&self.token)
            .uint(self.id)
            .uint(self.seq);
    }
}

impl<'a> Decode<'a> for Pair {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let flags = r.bitfield(7)?;
        Ok(Self {
            is_initiator: flags.first().is_some_and(|b| b & 1 != 0),
            token: r.fixed32()?,
            id: r.uint()?,
            seq: r.uint()?,
        })
    }
}

impl Encode for Unpair {
    fn encode(&self, w: &mut Writer) {
        w.uint8(0).bytes(&self.token);
    }
}

impl<'a> Decode<'a> for Unpair {
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        r.bitfield(7)?;
        Ok(Self {
            token: r.fixed32()?,
        })
    }
}

/// Errors of the blind relay, named as the JS errors.
#[derive(Debug, thiserror::Error)]
pub enum BlindRelayError {
    /// The channel closed before the pairing completed (`CHANNEL_CLOSED`).
    #[error("CHANNEL_CLOSED: channel closed")]
    ChannelClosed,
    /// A pairing with this token is already under way on this client (`ALREADY_PAIRING`).
    #[error("ALREADY_PAIRING: already pairing")]
    AlreadyPairing,
    /// The pairing was cancelled (`PAIRING_CANCELLED`).
    #[error("PAIRING_CANCELLED: pairing cancelled")]
    PairingCancelled,
    /// The relay answered with a stream id that is not a `u32`.
    #[error("invalid relay stream id {0}")]
    InvalidStreamId(u64),
    /// The protomux channel failed.
    #[error("protomux: {0}")]
    Protomux(#[from] ProtomuxError),
    /// A UDX operation failed.
    #[error("udx: {0}")]
    Io(#[from] io::Error),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates and opens the `blind-relay` channel (messages pair and unpair, empty handshake). The new
/// constructors run it before the mux reads anything: a remote open meeting a channel that is created but
/// not opened yet would be rejected.
fn open_channel(mux: &Mux, id: Option<&[u8]>) -> Result<Channel, BlindRelayError> {
    let opts = ChannelOptions::new(PROTOCOL);
    let opts = match id {
        Some(id) => opts.id(id.to_vec()),
        None => opts,
    };
    let channel = mux
        .create_channel(opts)
        .ok_or(BlindRelayError::ChannelClosed)?;
    channel.add_message();
    channel.add_message();
    channel.open(b"")?;
    Ok(channel)
}

// ---------------------------------------------------------------------------------------------------------
// Client

type Waiters = HashMap<Token, (bool, oneshot::Sender<u64>)>;

/// The peer side (`relay.Client`): asks the relay to pair one of its UDX streams with the other peer's.
#[derive(Debug)]
pub struct BlindRelayClient {
    channel: Arc<Channel>,
    waiters: Arc<Mutex<Waiters>>,
    closed: Arc<AtomicBool>,
    reader: tokio::task::JoinHandle<()>,
}

impl BlindRelayClient {
    /// Starts protomux on `transport` (the connection to the relay) and opens the channel (named `id`;
    /// HyperDHT uses the connection's local public key). Must run inside a tokio runtime.
    pub fn new<T: FrameTransport>(
        transport: T,
        id: Option<&[u8]>,
    ) -> Result<Self, BlindRelayError> {
        let (_mux, channel) = Mux::new_with(transport, |mux| open_channel(mux, id));
        Self::start(channel?)
    }

    /// Opens the channel on an existing mux (`Client.from(mux)`). Call it before the remote's open can
    /// arrive: a remote open meeting no opened channel is rejected (see [`crate::protomux`]).
    pub fn from_mux(mux: &Mux, id: Option<&[u8]>) -> Result<Self, BlindRelayError> {
        Self::start(open_channel(mux, id)?)
    }

    fn start(channel: Channel) -> Result<Self, BlindRelayError> {
        let channel = Arc::new(channel);
        let waiters: Arc<Mutex<Waiters>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(client_reader(
            channel.clone(),
            waiters.clone(),
            closed.clone(),
        ));
        Ok(Self {
            channel,
            waiters,
            closed,
            reader,
        })
    }

    /// Asks the relay to pair `stream_id` (the local UDX stream) as side `is_initiator` of `token`, and
    /// waits for the other side: returns the id of the relay stream to connect to (through the
    /// connection's path, [`UdxStream::connect_alongside`]). Dropping the future leaves the request
    /// pending at the relay; call [`BlindRelayClient::unpair`] to cancel it.
    pub async fn pair(
        &self,
        is_initiator: bool,
        token: Token,
        stream_id: u32,
    ) -> Result<u32, BlindRelayError> {
        let rx = {
            let mut w = lock(&self.waiters);
            if self.closed.load(Ordering::Acquire) {
                return Err(BlindRelayError::ChannelClosed);
            }
            if w.contains_key(&token) {
                return Err(BlindRelayError::AlreadyPairing);
            }
            let (tx, rx) = oneshot::channel();
            w.insert(token, (is_initiator, tx));
            rx
        };
        let msg = Pair {
            is_initiator,
            token,
            id: u64::from(stream_id),
            seq: 0,
        };
        if let Err(e) = self.channel.send_encoded(MSG_PAIR, &msg).await {
            lock(&self.waiters).remove(&token);
            return Err(e.into());
        }
        let id = rx.await.map_err(|_| {
            if self.closed.load(Ordering::Acquire) {
                BlindRelayError::ChannelClosed
            } else {
                BlindRelayError::PairingCancelled
            }
        })?;
        u32::try_from(id).map_err(|_| BlindRelayError::InvalidStreamId(id))
    }

    /// Cancels a pairing (pending or established) of `token` (`unpair`).
    pub async fn unpair(&self, token: Token) -> Result<(), BlindRelayError> {
        lock(&self.waiters).remove(&token);
        self.channel
            .send_encoded(MSG_UNPAIR, &Unpair { token })
            .await?;
        Ok(())
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.channel.is_closed()
    }

    /// Closes the channel; pending pairings fail with [`BlindRelayError::ChannelClosed`].
    pub fn close(&self) {
        self.channel.close();
    }
}

impl Drop for BlindRelayClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn client_reader(
    channel: Arc<Channel>,
    waiters: Arc<Mutex<Waiters>>,
    closed: Arc<AtomicBool>,
) {
    while let Some((kind, payload)) = channel.recv().await {
        if kind != MSG_PAIR {
            continue;
        }
        let Ok(m) = Pair::from_bytes(&payload) else {
            continue;
        };
        let mut w = lock(&waiters);
        if w.get(&m.token)
            .is_some_and(|(init, _)| *init == m.is_initiator)
        {
            if let Some((_, tx)) = w.remove(&m.token) {
                let _ = tx.send(m.id);
            }
        }
    }
    closed.store(true, Ordering::Release);
    lock(&waiters).clear();
}

// ---------------------------------------------------------------------------------------------------------
// Server

/// Counters of a relay server (`server.stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Sessions accepted.
    pub sessions_accepted: u64,
    /// Sessions closed.
    pub sessions_closed: u64,
    /// Pair requests taken.
    pub pairings_requested: u64,
    /// Pairings matched (both sides asked).
    pub pairings_matched: u64,
    /// Pairings cancelled (unpair, or the session closed while pending).
    pub pairings_cancelled: u64,
    /// Pairings waiting for their other side.
    pub pairings_pending: u64,
    /// Relay streams opened.
    pub streams_opened: u64,
}

type CreateStream = dyn Fn() -> io::Result<UdxStream> + Send + Sync;

struct PendingLink {
    session: u64,
    channel: Arc<Channel>,
    links: Arc<Mutex<Links>>,
    remote_id: u32,
}

type Links = HashMap<Token, Arc<UdxStream>>;

#[derive(Default)]
struct PendingPair {
    /// Index 1: the initiator's request, index 0: the other's.
    sides: [Option<PendingLink>; 2],
}

struct ServerInner {
    create_stream: Box<CreateStream>,
    pairing: Mutex<HashMap<Token, PendingPair>>,
    stats: Mutex<RelayStats>,
    next_session: AtomicU64,
}

/// The relay (`relay.Server`): accepts sessions on connections and relays the paired streams.
#[derive(Clone)]
pub struct BlindRelayServer {
    inner: Arc<ServerInner>,
}

impl std::fmt::Debug for BlindRelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindRelayServer")
            .field("stats", &self.stats())
            .finish()
    }
}

/// One accepted session ([`BlindRelayServer::accept`]). It runs until the channel closes; dropping the
/// handle does not stop it.
#[derive(Debug)]
pub struct RelaySession {
    channel: Arc<Channel>,
    done: Arc<Notify>,
    finished: Arc<AtomicBool>,
}

impl RelaySession {
    /// Waits until the session ended (its channel closed) and its relay streams were torn down.
    pub async fn closed(&self) {
        loop {
            let notified = self.done.notified();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Ends the session: closes the channel, which tears down its pending and established pairings.
    pub fn close(&self) {
        self.channel.close();
    }
}

impl BlindRelayServer {
    /// A relay creating its relay streams with `create_stream` (HyperDHT: a new raw stream of the node's
    /// UDX instance, not carried by any socket yet; it attaches itself to the socket its first packet
    /// arrives on).
    pub fn new(create_stream: impl Fn() -> io::Result<UdxStream> + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(ServerInner {
                create_stream: Box::new(create_stream),
                pairing: Mutex::default(),
                stats: Mutex::default(),
                next_session: AtomicU64::new(1),
            }),
        }
    }

    /// The counters.
    pub fn stats(&self) -> RelayStats {
        *lock(&self.inner.stats)
    }

    /// Starts protomux on `transport` (a connection from a peer) and serves a session on it; `id` names
    /// the channel (HyperDHT: the connection's remote public key). Must run inside a tokio runtime.
    pub fn accept<T: FrameTransport>(
        &self,
        transport: T,
        id: Option<&[u8]>,
    ) -> Result<RelaySession, BlindRelayError> {
        let (_mux, channel) = Mux::new_with(transport, |mux| open_channel(mux, id));
        self.start(channel?)
    }

    /// Serves a session on an existing mux. Call it before the peer's open can arrive: a remote open
    /// meeting no opened channel is rejected (see [`crate::protomux`]).
    pub fn accept_mux(
        &self,
        mux: &Mux,
        id: Option<&[u8]>,
    ) -> Result<RelaySession, BlindRelayError> {
        self.start(open_channel(mux, id)?)
    }

    fn start(&self, channel: Channel) -> Result<RelaySession, BlindRelayError> {
        let channel = Arc::new(channel);
        lock(&self.inner.stats).sessions_accepted += 1;
        let done = Arc::new(Notify::new());
        let finished = Arc::new(AtomicBool::new(false));
        let session = Session {
            id: self.inner.next_session.fetch_add(1, Ordering::Relaxed),
            server: self.inner.clone(),
            channel: channel.clone(),
            links: Arc::default(),
        };
        let (d, f) = (done.clone(), finished.clone());
        tokio::spawn(async move {
            session.run().await;
            f.store(true, Ordering::Release);
            d.notify_waiters();
        });
        Ok(RelaySession {
            channel,
            done,
            finished,
        })
    }
}

struct Session {
    id: u64,
    server: Arc<ServerInner>,
    channel: Arc<Channel>,
    links: Arc<Mutex<Links>>,
}

impl Session {
    async fn run(&self) {
        while let Some((kind, payload)) = self.channel.recv().await {
            match kind {
                MSG_PAIR => {
                    if let Ok(m) = Pair::from_bytes(&payload) {
                        self.on_pair(m);
                    }
                }
                MSG_UNPAIR => {
                    if let Ok(m) = Unpair::from_bytes(&payload) {
                        self.on_unpair(&m.token);
                    }
                }
                _ => {}
            }
        }
        self.teardown();
    }

    fn on_pair(&self, m: Pair) {
        // A stream id beyond u32 cannot name a UDX stream: ignore the request.
        let Ok(remote_id) = u32::try_from(m.id) else {
            return;
        };
        let side = usize::from(m.is_initiator);
        let matched = {
            let mut pairing = lock(&self.server.pairing);
            let entry = pairing.entry(m.token).or_insert_with(|| {
                lock(&self.server.stats).pairings_pending += 1;
                PendingPair::default()
            });
            if entry.sides.get(side).is_some_and(Option::is_some) {
                return;
            }
            if let Some(slot) = entry.sides.get_mut(side) {
                *slot = Some(PendingLink {
                    session: self.id,
                    channel: self.channel.clone(),
                    links: self.links.clone(),
                    remote_id,
                });
            }
            lock(&self.server.stats).pairings_requested += 1;
            if entry.sides.iter().all(Option::is_some) {
                pairing.remove(&m.token)
            } else {
                None
            }
        };
        let Some(PendingPair {
            sides: [Some(responder), Some(initiator)],
        }) = matched
        else {
            return;
        };
        {
            let mut stats = lock(&self.server.stats);
            stats.pairings_pending = stats.pairings_pending.saturating_sub(1);
            stats.pairings_matched += 1;
        }
        if let Err(e) = self.link(&m.token, &initiator, &responder) {
            tracing::debug!("blind-relay: could not set up relay streams: {e}");
        }
    }

    /// Creates the two relay streams of a matched pairing, relays them to each other and answers both sides.
    fn link(
        &self,
        token: &Token,
        initiator: &PendingLink,
        responder: &PendingLink,
    ) -> io::Result<()> {
        let a = (self.server.create_stream)()?;
        let b = match (self.server.create_stream)() {
            Ok(b) => b,
            Err(e) => {
                a.destroy();
                return Err(e);
            }
        };
        let setup = || -> io::Result<()> {
            a.set_firewall(connect_once(initiator.remote_id))?;
            b.set_firewall(connect_once(responder.remote_id))?;
            a.relay_to(&b)?;
            b.relay_to(&a)?;
            Ok(())
        };
        if let Err(e) = setup() {
            a.destroy();
            b.destroy();
            return Err(e);
        }
        lock(&self.server.stats).streams_opened += 2;
        for (side, stream, is_initiator) in [(initiator, a, true), (responder, b, false)] {
            let reply = Pair {
                is_initiator,
                token: *token,
                id: u64::from(stream.local_id()),
                seq: 0,
            };
            let control = stream.control();
            let stream = Arc::new(stream);
            lock(&side.links).insert(*token, stream.clone());
            // Forget the stream once it closed (its peer left, or the other side's stream went).
            let links = Arc::downgrade(&side.links);
            let token = *token;
            tokio::spawn(async move {
                let _ = control.closed().await;
                if let Some(links) = links.upgrade() {
                    let mut l = lock(&links);
                    if l.get(&token).is_some_and(|s| Arc::ptr_eq(s, &stream)) {
                        l.remove(&token);
                    }
                }
            });
            let _ = side.channel.try_send(MSG_PAIR, &reply.to_bytes());
        }
        Ok(())
    }

    fn on_unpair(&self, token: &Token) {
        let pending = lock(&self.server.pairing).remove(token);
        if pending.is_some() {
            let mut stats = lock(&self.server.stats);
            stats.pairings_pending = stats.pairings_pending.saturating_sub(1);
            stats.pairings_cancelled += 1;
            return;
        }
        let link = lock(&self.links).remove(token);
        if let Some(stream) = link {
            // The other side's relay stream relays to this one, so it goes down with it.
            stream.destroy();
            lock(&self.server.stats).pairings_cancelled += 1;
        }
    }

    fn teardown(&self) {
        let cancelled = {
            let mut pairing = lock(&self.server.pairing);
            let before = pairing.len();
            pairing.retain(|_, p| !p.sides.iter().flatten().any(|link| link.session == self.id));
            before - pairing.len()
        };
        {
            let mut stats = lock(&self.server.stats);
            stats.pairings_pending = stats.pairings_pending.saturating_sub(cancelled as u64);
            stats.pairings_cancelled += cancelled as u64;
            stats.sessions_closed += 1;
        }
        let links: Vec<_> = lock(&self.links).drain().map(|(_, s)| s).collect();
        for s in links {
            s.destroy();
        }
    }
}

/// The firewall of a relay stream: connect to the first packet's source with the peer's stream id, once.
fn connect_once(
    remote_id: u32,
) -> impl FnMut(std::net::SocketAddr, std::net::SocketAddr) -> FirewallVerdict {
    let mut connected = false;
    move |_, _| {
        if connected {
            FirewallVerdict::Reject
        } else {
            connected = true;
            FirewallVerdict::Connect { remote_id }
        }
    }
}

/// Connects `stream` to the relay stream `relay_stream_id` along the path of the connection to the relay
/// (`relay_connection` controls the UDX stream carrying it; take it with [`UdxStream::control`] before the
/// connection moves into the client), as hyperdht does once a pairing completed.
pub fn connect_through_relay(
    stream: &UdxStream,
    relay_connection: &UdxStreamControl,
    relay_stream_id: u32,
) -> io::Result<()> {
    stream.connect_alongside(relay_connection, relay_stream_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protomux::memory_pair;
    use crate::udx::{Udx, UdxSocket};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    const LIMIT: Duration = Duration::from_secs(20);

    fn tok() -> Token {
        std::array::from_fn(|i| i as u8 + 1)
    }

    /// Vectors from `tests/interop/js/blind_relay_vectors.js` (blind-relay 1.6.1).
    #[test]
    fn pair_and_unpair_match_js() {
        let t = tok();
        let th = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
        let cases = [
            (true, t, 1u64, 0u64, format!("01{th}0100")),
            (false, t, 0xfc, 0, format!("00{th}fc00")),
            (true, t, 0xffff_ffff, 7, format!("01{th}feffffffff07")),
            (
                false,
                [0xab; 32],
                0x12345,
                0x10000,
                format!("00{}fe45230100fe00000100", "ab".repeat(32)),
            ),
        ];
        for (is_initiator, token, id, seq, hex_js) in cases {
            let m = Pair {
                is_initiator,
                token,
                id,
                seq,
            };
            assert_eq!(hex::encode(m.to_bytes()), hex_js);
            let bytes = hex::decode(&hex_js).expect("hex");
            assert_eq!(Pair::from_bytes_exact(&bytes).expect("decode"), m);
        }
        let u = Unpair { token: t };
        assert_eq!(hex::encode(u.to_bytes()), format!("00{th}"));
        assert_eq!(Unpair::from_bytes_exact(&u.to_bytes()).expect("decode"), u);
        // The JS decoder takes a long-form flags field.
        let long = hex::decode(format!("fd0100{th}0500")).expect("hex");
        let m = Pair::from_bytes_exact(&long).expect("long flags");
        assert!(m.is_initiator);
        assert_eq!((m.id, m.seq), (5, 0));
    }

    proptest! {
        #[test]
        fn truncated_and_mutated_messages_never_panic(
            id in any::<u64>(), seq in any::<u64>(), init in any::<bool>(),
            cut in 0usize..60, flip in any::<(usize, u8)>(),
        ) {
            let bytes = Pair { is_initiator: init, token: tok(), id, seq }.to_bytes();
            let cut = cut.min(bytes.len());
            if cut < bytes.len() {
                prop_assert!(Pair::from_bytes(&bytes[..cut]).is_err());
            }
            let mut m = bytes.clone();
            let i = flip.0 % m.len();
            if let Some(b) = m.get_mut(i) {
                *b ^= flip.1;
            }
            let _ = Pair::from_bytes(&m);
            let _ = Unpair::from_bytes(&m);
            let _ = Unpair::from_bytes(&m[..cut.min(m.len())]);
        }
    }

    struct Peer {
        client: BlindRelayClient,
        socket: UdxSocket,
    }

    async fn relay_and_peers() -> (BlindRelayServer, UdxSocket, Vec<RelaySession>, Peer, Peer) {
        let udx = Udx::new();
        let relay_socket = udx.bind(LOOPBACK).await.expect("bind relay");
        let ids = Arc::new(AtomicU64::new(1000));
        let server = BlindRelayServer::new(move || {
            udx.create_stream(ids.fetch_add(1, Ordering::Relaxed) as u32)
        });
        let mut sessions = Vec::new();
        let mut peers = Vec::new();
        for name in [b"peer-a".as_slice(), b"peer-b".as_slice()] {
            let (t_client, t_relay) = memory_pair();
            sessions.push(server.accept(t_relay, Some(name)).expect("accept"));
            peers.push(Peer {
                client: BlindRelayClient::new(t_client, Some(name)).expect("client"),
                socket: UdxSocket::bind(LOOPBACK).await.expect("bind peer"),
            });
        }
        let b = peers.pop().expect("b");
        let a = peers.pop().expect("a");
        (server, relay_socket, sessions, a, b)
    }

    /// Sends `data` and ends, reads to the end.
    async fn exchange(st: &UdxStream, data: &[u8]) -> Vec<u8> {
        let send = async {
            let mut w = st;
            w.write_all(data).await.expect("write");
            w.shutdown().await.expect("end");
        };
        let recv = async {
            let mut r = st;
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("read");
            got
        };
        tokio::join!(send, recv).1
    }

    /// Two peers pair through the relay and exchange bytes end to end over the relayed UDX streams;
    /// unpair tears the relay streams down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pairs_and_relays_end_to_end() {
        let (server, relay_socket, sessions, a, b) = relay_and_peers().await;
        let sa = a.socket.create_stream(1).expect("a stream");
        let sb = b.socket.create_stream(2).expect("b stream");
        let token = token();
        let (ra, rb) = tokio::time::timeout(LIMIT, async {
            tokio::join!(
                a.client.pair(true, token, 1),
                b.client.pair(false, token, 2)
            )
        })
        .await
        .expect("paired in time");
        let (ra, rb) = (ra.expect("a paired"), rb.expect("b paired"));
        assert_ne!(ra, rb);
        let st = server.stats();
        assert_eq!(
            (st.pairings_matched, st.pairings_pending, st.streams_opened),
            (1, 0, 2)
        );
        sa.connect(ra, relay_socket.local_addr())
            .expect("a -> relay");
        sb.connect(rb, relay_socket.local_addr())
            .expect("b -> relay");

        // A relay stream learns its peer from the peer's first packet: both sides send.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let (at_a, at_b) = tokio::time::timeout(LIMIT, async {
            tokio::join!(exchange(&sa, &data[..1000]), exchange(&sb, &data))
        })
        .await
        .expect("relayed in time");
        assert!(at_b[..] == data[..1000], "a -> b through the relay");
        assert!(at_a == data, "b -> a through the relay");

        // unpair from a destroys both relay streams
        a.client.unpair(token).await.expect("unpair");
        tokio::time::timeout(LIMIT, async {
            while relay_socket.stream_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("relay streams gone");
        assert_eq!(server.stats().pairings_cancelled, 1);
        drop(sessions);
    }

    /// A second request for a taken side is ignored, a pending request is cancelled when its session
    /// closes, and a client refuses a token it is already pairing.
    #[tokio::test]
    async fn pending_pairings() {
        let (server, _relay_socket, sessions, a, b) = relay_and_peers().await;
        let token = token();
        let first = a.client.pair(true, token, 1);
        tokio::pin!(first);
        // let the request reach the relay
        tokio::time::timeout(LIMIT, async {
            loop {
                tokio::select! {
                    _ = &mut first => panic!("paired without a second side"),
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                if server.stats().pairings_pending == 1 {
                    break;
                }
            }
        })
        .await
        .expect("pending");
        assert!(matches!(
            a.client.pair(true, token, 3).await,
            Err(BlindRelayError::AlreadyPairing)
        ));
        // b asks for the same side: ignored, still pending
        let other = b.client.pair(true, token, 2);
        tokio::pin!(other);
        tokio::select! {
            _ = &mut other => panic!("a taken side paired"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        assert_eq!(server.stats().pairings_requested, 1);
        // closing a's session cancels its pending pairing; a's pair fails
        sessions.first().expect("session a").close();
        let r = tokio::time::timeout(LIMIT, &mut first)
            .await
            .expect("a answered");
        assert!(matches!(r, Err(BlindRelayError::ChannelClosed)), "{r:?}");
        tokio::time::timeout(LIMIT, sessions.first().expect("a").closed())
            .await
            .expect("session ended");
        let st = server.stats();
        assert_eq!(
            (
                st.pairings_pending,
                st.pairings_cancelled,
                st.sessions_closed
            ),
            (0, 1, 1)
        );
    }
}
