//! The HyperDHT node (`hyperdht/index.js`, `lib/server.js`, `lib/connect.js`, `lib/announcer.js`): a dht-rpc
//! node running on two UDX sockets, servers listening on a key pair, and connections to a public key.
//!
//! As in the JS, the DHT's two sockets (server and client, see [`crate::dht_rpc`]) are UDX sockets of one
//! [`Udx`] instance, so DHT messages and the UDX streams of connections share them. Streams use the DHT's
//! current socket (`dht.socket`: the client socket while the node is firewalled, else the server socket), a
//! direct handshake's socket, or, for the LAN shortcut, the server socket.
//!
//! What a connection does (as `lib/connect.js` and `lib/server.js`):
//!
//! 1. The client runs a FIND_PEER query for `hash(public key)` and sends a PEER_HANDSHAKE (mode FROM_CLIENT)
//!    with the first message of a Noise IK handshake ([`NoiseWrap`]) to a node that holds the server's
//!    announcement. The node relays it to the server, which answers with the second message through the node.
//! 2. Both payloads ([`NoisePayload`]) carry the sender's firewall kind, addresses and UDX stream id.
//! 3. Then the UDX stream is connected: directly when the server answered without a relay, or says it is
//!    reachable (`OPEN`), or is not holepunchable; when both are on the same host or LAN the client pings the
//!    server's local address and connects there (the LAN shortcut). The server's stream connects itself to
//!    the first UDX packet it receives (its firewall hook), as in the JS.
//! 4. A [`SecretStream`] runs over the stream with the keys of the IK handshake (no second handshake).
//!
//! When neither side is reachable, step 3 is NAT holepunching (`holepunch.rs`, a child module): the server
//! sets up a [`Holepuncher`] on sockets of its own and answers the handshake from there; the client races the
//! LAN shortcut with PEER_HOLEPUNCH rounds through the server's relay (a probe round exchanging NAT kinds and
//! addresses, then a punch round), both punch ([`super::holepuncher`]: consistent x consistent, and the
//! random-port and birthday strategies when one NAT is random), and the stream connects through the socket
//! and address the first punch came from. [`HyperDht::connection_path`] tells a connection's path.
//!
//! Blind relays (`relayThrough`, `relay.rs`, a child module): a client ([`ConnectOpts::relay_through`]) or
//! server ([`Server::set_relay_through`]) naming a relay peer sends it with a token in its handshake
//! payload; both sides then pair their raw streams through that relay (the server's if both named one)
//! while the direct path, LAN shortcut and holepunching go on. The first path to connect the stream wins;
//! a punch that succeeds after the relayed path is up moves the stream onto the punched path (the
//! application keeps its [`Connection`]) and the relay connection closes. [`ConnectionPath::Relay`] tells
//! a connection that is relayed.
//!
//! When the stream moved from the relay to a punched path, the relay connection closes once both sides
//! confirmed the new path (`confirmDirectUpgrade`: each side's pre-move packets acknowledged, then an empty
//! UDX message each way). Random-NAT punches are limited node-wide ([`RandomPunches`]: one at a time, 20 s
//! apart); a side over the limit waits 10 to 20 s and tries again (the server answering TRY_LATER) when a
//! relay carries the connection meanwhile, and gives up otherwise (`HOLEPUNCH_ABORTED`, or the server's
//! TRY_LATER abort).
//!
//! IPv6 (`super::ipv6`, not in the JS): when both payloads carry `addresses6` (Rust peers on hosts with
//! global IPv6 addresses), the client probes the server's IPv6 socket alongside the IPv4 path above and
//! prefers it; the DHT itself stays IPv4.
//!
//! LAN discovery ([`crate::lan_discovery`], [`HyperDhtOpts::lan`], Rust peers only): a listening server also
//! answers LAN queries for `hash(public key)`, and step 1 races the DHT lookup with a LAN query whose answers
//! get the same first handshake message directly (mode FROM_CLIENT to the server's own node, which answers
//! it as a DHT node holding the server would); the rest is unchanged. Lookups stream LAN answers for a topic
//! alongside the DHT's, and announces make the node answer for the topic.
//!
//! Network changes: the node watches the machine's interface addresses ([`crate::dht_rpc::interfaces`],
//! polled every second; udx-native polls every 5 s) and its clock (a system sleep). On a change, a wake-up
//! or [`HyperDht::resume`] the dht-rpc node re-bootstraps and analyses its NAT again, and every server
//! re-announces as soon as that is done ([`HyperDht::network_events`] tells each step). The JS servers
//! only re-announce on `network-change`; a ping of the old relays that still succeeds from the new
//! address is no proof that the announced address is right, so the re-announce is not skipped.
//! [`HyperDht::suspend`] unannounces the servers and stops the node until [`HyperDht::resume`].
//!
//! Not implemented: reopening the puncher's socket when the NAT looks unstable (`analyze(true)`),
//! reusable sockets / socket routes, `deferRandomPunch`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::constants::{ns, Command, ErrorCode, Firewall, Mode};
use super::messages::{
    announce_signable, decode, mutable_signable, sign, verify, Announce, Handshake, HolepunchInfo,
    LookupReply, MutableGetResponse, MutablePutRequest, NoisePayload, Peer, RelayInfo,
    SecretStreamInfo, UdxInfo,
};
use super::noise_wrap::{NoiseWrap, NoiseWrapError};
use super::persistent::{CacheOpts, ServeHyperdht};
use crate::compact_encoding::{Encode, Writer};
use crate::crypto::{self, KeyPair};
use crate::dht_rpc::driver::{DatagramSocket, DhtHandle, DriverError, NetworkEvent};
use crate::dht_rpc::messages::{ErrorCode as RpcErrorCode, Id};
use crate::dht_rpc::node::{
    Config, IncomingRequest, QueryOpts, QuerySpec, Reply, ReplyOpts, RequestSpec,
};
use crate::lan_discovery::{Lan, LanOpts};
use crate::noise::HandshakeResult;
use crate::secret_stream::{SecretStream, SecretStreamOptions};
use crate::udx::{FirewallVerdict, Udx, UdxSocket, UdxStream};

#[path = "holepunch.rs"]
mod holepunch;
#[path = "peer_routes.rs"]
mod peer_routes;
#[path = "relay.rs"]
mod relay;
use super::holepuncher::Holepuncher;
use super::ipv6::{self, V6Path};
use super::secure_payload::SecurePayload;
use super::socket_pool::{PoolRequest, PoolSocketHandle, PunchSession};
use holepunch::{ClientPunch, HolepunchRequest, ServerHole};
pub use relay::{RelayThrough, RELAY_KEEP_ALIVE};

/// An end-to-end encrypted connection: a secret-stream over a UDX stream. `remote_public_key()` names the
/// peer.
pub type Connection = SecretStream<UdxStream>;

/// How long a server waits for the client's first UDX packet after answering its handshake
/// (`HANDSHAKE_INITIAL_TIMEOUT`).
pub const HANDSHAKE_INITIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a handled handshake is remembered, so a retransmitted one gets the same answer
/// (`HANDSHAKE_CLEAR_WAIT`).
pub const HANDSHAKE_CLEAR_WAIT: Duration = Duration::from_secs(10);
/// Default secret-stream keep-alive of connections (`connectionKeepAlive`).
pub const CONNECTION_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Most LAN answers a connect tries.
const LAN_TRIES: usize = 8;
/// Handshakes sent through this many relays at once.
const PARALLEL_HANDSHAKES: usize = 2;
/// Announcements go to this many of the closest nodes (`pickBest`).
const ANNOUNCE_NODES: usize = 3;
/// The announcer pings its relays this often.
const ANNOUNCER_PING_INTERVAL: Duration = Duration::from_secs(3);
/// ... and re-announces after this many ping rounds (about five minutes).
const ANNOUNCER_ROUNDS: usize = 100;

/// Errors of HyperDHT operations, named as the JS errors (`lib/errors.js`).
#[derive(Debug, thiserror::Error)]
pub enum HyperDhtError {
    /// No DHT node knows the server (`PEER_NOT_FOUND`).
    #[error("PEER_NOT_FOUND: no node holds an announcement of the server")]
    PeerNotFound,
    /// The server was found but no handshake got an answer: it is gone, or its firewall rejected us
    /// (a JS server does not answer rejected peers) (`PEER_CONNECTION_FAILED`).
    #[error("PEER_CONNECTION_FAILED: the server did not answer the handshake (gone, or its firewall rejected us)")]
    PeerConnectionFailed,
    /// No direct path was found and holepunching did not succeed (`HOLEPUNCH_ABORTED`).
    #[error("HOLEPUNCH_ABORTED: {0}")]
    HolepunchAborted(String),
    /// The server's holepunch reply could not be decrypted (`HOLEPUNCH_INVALID`).
    #[error("HOLEPUNCH_INVALID: the holepunch reply could not be decrypted")]
    HolepunchInvalid,
    /// A side's NAT kind stayed unknown after probing (`HOLEPUNCH_PROBE_TIMEOUT`).
    #[error("HOLEPUNCH_PROBE_TIMEOUT: the NAT analysis did not conclude")]
    HolepunchProbeTimeout,
    /// Both sides are behind randomizing NATs (`HOLEPUNCH_DOUBLE_RANDOMIZED_NATS`).
    #[error("HOLEPUNCH_DOUBLE_RANDOMIZED_NATS: both peers are behind randomizing NATs")]
    HolepunchDoubleRandomizedNats,
    /// The server aborted the holepunch with an error code (`REMOTE_ABORTED`).
    #[error("REMOTE_ABORTED: remote aborted with error code {0:?}")]
    RemoteAborted(ErrorCode),
    /// The server did not start punching (`REMOTE_NOT_HOLEPUNCHING`).
    #[error("REMOTE_NOT_HOLEPUNCHING: the remote is not punching")]
    RemoteNotHolepunching,
    /// No punching strategy fits the two NATs (`REMOTE_NOT_HOLEPUNCHABLE`).
    #[error("REMOTE_NOT_HOLEPUNCHABLE: no holepunch strategy for these NATs")]
    RemoteNotHolepunchable,
    /// The server cannot be holepunched and is not reachable directly (`CANNOT_HOLEPUNCH`).
    #[error("CANNOT_HOLEPUNCH: the server is neither reachable nor holepunchable")]
    CannotHolepunch,
    /// The server answered with an error (`SERVER_ERROR`).
    #[error("SERVER_ERROR: {0}")]
    ServerError(String),
    /// The server speaks another handshake version (`SERVER_INCOMPATIBLE`).
    #[error("SERVER_INCOMPATIBLE: the server speaks handshake version {0}")]
    ServerIncompatible(u64),
    /// The server's handshake answer could not be read (`HANDSHAKE_INVALID`).
    #[error("HANDSHAKE_INVALID: {0}")]
    HandshakeInvalid(#[from] NoiseWrapError),
    /// A server already listens on this key pair in this node (`KEYPAIR_ALREADY_USED`).
    #[error("KEYPAIR_ALREADY_USED: a server of this node already listens on this key pair")]
    KeyPairAlreadyUsed,
    /// `listen` on a server that listens already (`ALREADY_LISTENING`).
    #[error("ALREADY_LISTENING: the server is already listening")]
    AlreadyListening,
    /// The node was destroyed (`NODE_DESTROYED`).
    #[error("NODE_DESTROYED: the node was destroyed")]
    NodeDestroyed,
    /// The blind relay pairing failed or timed out, and no other path connected (`RELAY_ABORTED`).
    #[error("RELAY_ABORTED: {0}")]
    RelayAborted(String),
    /// The node is suspended ([`HyperDht::suspend`], `SUSPENDED`).
    #[error("SUSPENDED: the node is suspended")]
    Suspended,
    /// The stream did not connect in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The DHT driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A socket or stream failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

type Result<T, E = HyperDhtError> = std::result::Result<T, E>;

impl DatagramSocket for UdxSocket {
    fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        UdxSocket::send_to(self, buf, to)
    }
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        UdxSocket::recv_from(self, buf)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(UdxSocket::local_addr(self))
    }
}

/// Options of [`HyperDht::bind`] (the JS constructor options).
#[derive(Debug, Clone)]
pub struct HyperDhtOpts {
    /// Bootstrap nodes. Empty by default (a node of its own); the public network's are
    /// [`super::bootstrap::default_nodes`] (resolve them with [`super::bootstrap::resolve`]).
    pub bootstrap: Vec<SocketAddrV4>,
    /// Address to bind (default 0.0.0.0).
    pub host: Ipv4Addr,
    /// Server socket port (default 0: any).
    pub port: u16,
    /// Force the node ephemeral (`Some(true)`) or persistent (`Some(false)`); adaptive when `None`.
    pub ephemeral: Option<bool>,
    /// Start firewalled (default true, as dht-rpc).
    pub firewalled: bool,
    /// The key pair servers and connections use when none is given (random by default).
    pub key_pair: Option<KeyPair>,
    /// Storage limits when the node becomes persistent.
    pub cache: CacheOpts,
    /// Keep-alive of connections (`connectionKeepAlive`; `None` disables it).
    pub connection_keep_alive: Option<Duration>,
    /// Behave as a firewalled peer in handshakes whatever the DHT finds out (announce no public address,
    /// firewall kind UNKNOWN, streams on the client socket). For tests of the LAN shortcut on loopback, where
    /// every node is found reachable.
    #[doc(hidden)]
    pub assume_firewalled: bool,
    /// Hold back this node's direct path as a client of connections that pair through a relay (direct
    /// connect, LAN shortcut, holepunch): `None` as usual, `Some(None)` never (only a relay can connect), `Some(Some(d))` only after `d` (so a relayed
    /// connection moves to the direct path later). For tests of relayed connections on loopback.
    #[doc(hidden)]
    pub hold_direct_path: Option<Option<Duration>>,
    /// Least time between the end of a random-NAT punch and the next (`randomPunchInterval`, 20 s).
    pub random_punch_interval: Duration,
    /// The IPv6 addresses offered to peers for a direct IPv6 path (`addresses6`, see [`super::ipv6`]):
    /// `None` (the default) finds the host's global ones ([`super::ipv6::direct_addresses`]) when `host` is
    /// unspecified, and offers none when the node is bound to one IPv4 address; `Some(list)` offers
    /// `list` (empty: no IPv6 path; `::1` for tests on loopback).
    pub ipv6_addresses: Option<Vec<Ipv6Addr>>,
    /// LAN discovery ([`crate::lan_discovery`], Rust peers only): servers and announced topics answer
    /// multicast queries on the LAN, and connects and lookups ask the LAN in parallel with the DHT, so
    /// peers on one LAN connect with no DHT reachable. Off (`None`) by default; the tools turn it on.
    pub lan: Option<LanOpts>,
}

impl Default for HyperDhtOpts {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            host: Ipv4Addr::UNSPECIFIED,
            port: 0,
            ephemeral: None,
            firewalled: true,
            key_pair: None,
            cache: CacheOpts::default(),
            connection_keep_alive: Some(CONNECTION_KEEP_ALIVE),
            assume_firewalled: false,
            hold_direct_path: None,
            random_punch_interval: holepunch::RANDOM_PUNCH_INTERVAL,
            ipv6_addresses: None,
            lan: None,
        }
    }
}

/// Options of [`HyperDht::connect_opts`] (the JS `dht.connect(publicKey, opts)` options).
#[derive(Debug, Clone, Default)]
pub struct ConnectOpts {
    /// Our key pair (the node's default when `None`).
    pub key_pair: Option<KeyPair>,
    /// Pair through this blind relay as well (`relayThrough`). The server's relay is used instead if it
    /// names one.
    pub relay_through: Option<RelayThrough>,
    /// Keep-alive of the connection to the relay (`relayKeepAlive`, [`RELAY_KEEP_ALIVE`] when `None`).
    pub relay_keep_alive: Option<Duration>,
}

struct Inner {
    handle: DhtHandle,
    host: Ipv4Addr,
    udx: Udx,
    server_socket: UdxSocket,
    client_socket: UdxSocket,
    default_key_pair: KeyPair,
    keep_alive: Option<Duration>,
    assume_firewalled: bool,
    hold_direct_path: Option<Option<Duration>>,
    random_punches: Arc<holepunch::RandomPunches>,
    destroyed: AtomicBool,
    /// Whether the node is suspended; the servers' announcers follow it.
    suspended: tokio::sync::watch::Sender<bool>,
    /// How many servers unannounced since the node was suspended.
    unannounced: tokio::sync::watch::Sender<usize>,
    listening: Mutex<Vec<[u8; 32]>>,
    /// Local ids of the raw streams currently carried through a blind relay.
    relayed: Mutex<std::collections::HashSet<u32>>,
    /// The nodes holding the records of servers connected to, shared by the connects.
    peer_routes: peer_routes::PeerRoutes,
    /// [`HyperDhtOpts::ipv6_addresses`].
    ipv6_addresses: Option<Vec<Ipv6Addr>>,
    /// The IPv6 socket, bound at the first handshake offering IPv6 addresses (`None`: it did not bind).
    v6: tokio::sync::OnceCell<Option<Arc<V6Path>>>,
    /// LAN discovery, when on.
    lan: Option<Lan>,
}

/// A HyperDHT node (JS `new DHT(opts)`). Cheap to clone.
#[derive(Clone)]
pub struct HyperDht {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HyperDht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperDht")
            .field("server", &self.inner.server_socket.local_addr())
            .field("client", &self.inner.client_socket.local_addr())
            .finish_non_exhaustive()
    }
}

/// How a connection's stream reaches the peer ([`HyperDht::connection_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPath {
    /// Through one of the DHT's own sockets: a reachable peer, a direct handshake or the LAN shortcut.
    Direct,
    /// Through a socket of a holepunch attempt: the NATs were punched.
    Holepunched,
    /// Through a blind relay (`relayThrough`); a punch that succeeds later moves it to `Holepunched`.
    Relay,
}

impl std::fmt::Display for ConnectionPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Holepunched => "holepunch",
            Self::Relay => "relay",
        })
    }
}

/// Where [`HyperDht::choose_path`] says the client's stream goes: `Some((socket or None for dht.socket,
/// address))`, or `None` to wait for the server.
type DirectPath = Option<(Option<UdxSocket>, SocketAddr)>;

/// A handshake answer: the node it came through, and (noise, server address, client address, relayed).
type HandshakeAnswer = (SocketAddrV4, (Vec<u8>, SocketAddrV4, SocketAddrV4, bool));

/// Where a client's handshake answer came from (`router.peerHandshake`'s result).
#[derive(Debug, Clone, Copy)]
struct Route {
    /// The node the handshake went to.
    relay: SocketAddrV4,
    /// The server as the relay sees it (the relay itself when not relayed).
    server_address: SocketAddrV4,
    /// Us as the relay sees us.
    client_address: SocketAddrV4,
    /// Whether the node relayed the handshake to the server.
    relayed: bool,
}

/// A value read with [`HyperDht::mutable_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableValue {
    /// Sequence number.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
    /// The writer's signature.
    pub signature: [u8; 64],
    /// The node that returned it.
    pub from: SocketAddrV4,
}

/// What a lookup reply carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// The node that replied.
    pub from: SocketAddrV4,
    /// The peers announced under the topic there.
    pub peers: Vec<Peer>,
}

/// A LOOKUP (or ANNOUNCE) reply's peers, when its value decodes.
fn lookup_result(r: &crate::dht_rpc::node::Reply) -> Option<LookupResult> {
    let l = decode::<LookupReply>(r.value.as_deref()?).ok()?;
    Some(LookupResult {
        from: r.from,
        peers: l.peers,
    })
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, a.port()),
    }
}

fn signing_key(kp: &KeyPair) -> SigningKey {
    SigningKey::from_bytes(&kp.seed())
}

impl HyperDht {
    /// Binds the node's two UDX sockets (server on `host:port`, client on `host:0`) and starts it.
    pub async fn bind(opts: HyperDhtOpts) -> Result<Self> {
        let udx = Udx::new();
        let server_socket = udx
            .bind(SocketAddr::V4(SocketAddrV4::new(opts.host, opts.port)))
            .await?;
        let client_socket = udx
            .bind(SocketAddr::V4(SocketAddrV4::new(opts.host, 0)))
            .await?;
        let config = Config {
            bootstrap: opts.bootstrap.clone(),
            ephemeral: opts.ephemeral,
            firewalled: opts.firewalled,
            ..Config::default()
        };
        // A node of a testnet on this machine (every bootstrap node on loopback) or bound to loopback keeps
        // LAN discovery on loopback too: its peers are on this machine.
        let local = opts.host.is_loopback()
            || (!opts.bootstrap.is_empty() && opts.bootstrap.iter().all(|a| a.ip().is_loopback()));
        let lan = opts.lan.clone().map(|mut o| {
            if local && o.interfaces.is_none() {
                o.interfaces = Some(vec![Ipv4Addr::LOCALHOST]);
            }
            // Only nodes of this DHT network find each other on the LAN (two testnets on one machine, or
            // a testnet and the public network, never mix).
            if o.network.is_none() {
                o.network = Some(crate::lan_discovery::network_id(&opts.bootstrap));
            }
            Lan::new(o, server_socket.local_addr().port())
        });
        let handle = DhtHandle::spawn(config, server_socket.clone(), client_socket.clone())?;
        handle.serve_hyperdht(opts.cache).await?;
        handle.watch_interfaces(crate::dht_rpc::interfaces::POLL_INTERVAL);
        let events = handle.events();
        let dht = Self {
            inner: Arc::new(Inner {
                handle,
                host: opts.host,
                udx,
                server_socket,
                client_socket,
                default_key_pair: opts.key_pair.unwrap_or_else(KeyPair::generate),
                keep_alive: opts.connection_keep_alive,
                assume_firewalled: opts.assume_firewalled,
                hold_direct_path: opts.hold_direct_path,
                random_punches: Arc::new(holepunch::RandomPunches::new(opts.random_punch_interval)),
                destroyed: AtomicBool::new(false),
                suspended: tokio::sync::watch::channel(false).0,
                unannounced: tokio::sync::watch::channel(0).0,
                listening: Mutex::new(Vec::new()),
                relayed: Mutex::default(),
                peer_routes: peer_routes::PeerRoutes::default(),
                ipv6_addresses: opts.ipv6_addresses,
                v6: tokio::sync::OnceCell::new(),
                lan,
            }),
        };
        dht.probe_on_network_change(events);
        Ok(dht)
    }

    /// After a network change or a wake-up, every open connection sends a probe from where we are now, so
    /// peers that follow a connection to a new address (Rust peers: [`UdxStream::set_migration`]) keep it.
    fn probe_on_network_change(&self, mut events: tokio::sync::broadcast::Receiver<NetworkEvent>) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(
                        NetworkEvent::Change
                        | NetworkEvent::Wakeup
                        | NetworkEvent::Resumed
                        | NetworkEvent::Rebootstrapped,
                    ) => {
                        let Some(inner) = weak.upgrade() else { return };
                        tracing::debug!("network changed: probing the open connections");
                        inner.udx.probe_streams();
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The dht-rpc handle (requests, queries, state).
    pub fn handle(&self) -> &DhtHandle {
        &self.inner.handle
    }

    /// The default key pair.
    pub fn default_key_pair(&self) -> &KeyPair {
        &self.inner.default_key_pair
    }

    /// LAN discovery, when on ([`HyperDhtOpts::lan`]).
    pub fn lan(&self) -> Option<&Lan> {
        self.inner.lan.as_ref()
    }

    /// The server socket's address.
    pub fn server_addr(&self) -> SocketAddrV4 {
        v4(self.inner.server_socket.local_addr())
    }

    /// The client socket's address.
    pub fn client_addr(&self) -> SocketAddrV4 {
        v4(self.inner.client_socket.local_addr())
    }

    /// How `conn` reaches its peer, from the socket carrying its stream, with the peer's address.
    pub fn connection_path(&self, conn: &Connection) -> (ConnectionPath, Option<SocketAddr>) {
        let raw = conn.get_ref();
        let remote = raw.remote().map(|(_, a)| a);
        let local = raw.local_addr();
        let own = [
            Some(self.inner.server_socket.local_addr()),
            Some(self.inner.client_socket.local_addr()),
            self.v6_path().map(|p| p.socket().local_addr()),
        ];
        let relayed = self
            .inner
            .relayed
            .lock()
            .is_ok_and(|r| r.contains(&raw.local_id()));
        let path = if relayed {
            ConnectionPath::Relay
        } else if local.is_some_and(|l| own.contains(&Some(l))) {
            ConnectionPath::Direct
        } else {
            ConnectionPath::Holepunched
        };
        (path, remote)
    }

    /// Whether our NAT maps each destination to another port (dht-rpc's `randomized`: the public host is
    /// known and the samples disagree on the port). False while unknown.
    pub async fn randomized(&self) -> bool {
        self.inner
            .handle
            .state()
            .await
            .is_ok_and(|st| st.public_host.is_some() && st.public_port == 0)
    }

    /// Waits until the bootstrap finished (`ready()`).
    pub async fn ready(&self) -> Result<()> {
        Ok(self.inner.handle.bootstrapped().await?)
    }

    /// Same as [`Self::ready`] (`fullyBootstrapped()`).
    pub async fn fully_bootstrapped(&self) -> Result<()> {
        self.ready().await
    }

    /// The node's network events: `network-change` ([`NetworkEvent::Change`]), wake-ups, suspend and
    /// resume, and the end of each re-bootstrap (after which servers re-announce).
    pub fn network_events(&self) -> tokio::sync::broadcast::Receiver<NetworkEvent> {
        self.inner.handle.events()
    }

    /// Tells the node that the machine's network changed (what the interface watcher does by itself):
    /// it re-bootstraps, analyses its NAT again, and its servers re-announce.
    pub fn network_changed(&self) -> Result<()> {
        Ok(self.inner.handle.network_changed()?)
    }

    /// Whether the node is suspended.
    pub fn is_suspended(&self) -> bool {
        *self.inner.suspended.borrow()
    }

    /// Suspends the node (`dht.suspend()`, for a machine about to sleep or an app going to the
    /// background): servers unannounce and stop answering, new connections fail with `SUSPENDED`, the
    /// DHT node stops (requests and queries fail, datagrams are dropped, no timers run). Open connections
    /// stay; their keep-alives decide. Returns once the servers unannounced.
    pub async fn suspend(&self) -> Result<()> {
        if self.inner.suspended.send_replace(true) {
            return Ok(());
        }
        // The announcers unannounce while the node still runs.
        let servers = self.inner.listening.lock().map(|l| l.len()).unwrap_or(0);
        let mut done = self.inner.unannounced.subscribe();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), done.wait_for(|n| *n >= servers)).await;
        Ok(self.inner.handle.suspend().await?)
    }

    /// Resumes a suspended node (`dht.resume()`): it re-bootstraps, then its servers announce again.
    pub async fn resume(&self) -> Result<()> {
        if !*self.inner.suspended.borrow() {
            return Ok(());
        }
        self.inner.handle.resume().await?;
        self.inner.unannounced.send_replace(0);
        self.inner.suspended.send_replace(false);
        Ok(())
    }

    /// Marks the node destroyed: new servers and connections fail. Close servers first ([`Server::close`]) to
    /// unannounce them; the sockets close when the last clone of the node and of its servers is dropped.
    pub async fn destroy(&self) {
        self.inner.destroyed.store(true, Ordering::Release);
    }

    fn check_alive(&self) -> Result<()> {
        if self.inner.destroyed.load(Ordering::Acquire) {
            Err(HyperDhtError::NodeDestroyed)
        } else {
            Ok(())
        }
    }

    /// `dht.socket`: the client socket while firewalled, else the server socket.
    async fn current_socket(&self) -> Result<(UdxSocket, Option<SocketAddrV4>)> {
        let st = self.inner.handle.state().await?;
        if self.inner.assume_firewalled {
            return Ok((self.inner.client_socket.clone(), None));
        }
        let remote = match (st.firewalled, st.public_host) {
            (false, Some(h)) if st.public_port == self.server_addr().port() => {
                Some(SocketAddrV4::new(h, st.public_port))
            }
            _ => None,
        };
        let sock = if st.firewalled {
            self.inner.client_socket.clone()
        } else {
            self.inner.server_socket.clone()
        };
        Ok((sock, remote))
    }

    /// The IPv6 socket, if bound.
    fn v6_path(&self) -> Option<Arc<V6Path>> {
        self.inner.v6.get().cloned().flatten()
    }

    /// Our IPv6 socket and the addresses to offer in a handshake (`addresses6`), when the host has any
    /// ([`HyperDhtOpts::ipv6_addresses`]); binds the socket the first time.
    async fn ipv6_offer(&self) -> Option<(Arc<V6Path>, Vec<SocketAddrV6>)> {
        let ips = match &self.inner.ipv6_addresses {
            Some(list) => list.clone(),
            None if self.inner.host.is_unspecified() => ipv6::direct_addresses(),
            None => Vec::new(),
        };
        if ips.is_empty() {
            return None;
        }
        let path = self
            .inner
            .v6
            .get_or_init(|| async {
                V6Path::bind(&self.inner.udx)
                    .await
                    .map_err(|e| tracing::debug!("ipv6: no socket: {e}"))
                    .ok()
            })
            .await
            .clone()?;
        let addrs = path.addresses(&ips);
        Some((path, addrs))
    }

    /// A new UDX stream of the node's instance with a free random id, not carried by any socket yet
    /// (`createRawStream`): what a blind relay creates its relay streams with, and what a peer pairs.
    pub fn create_raw_stream(&self) -> Result<UdxStream> {
        for _ in 0..64 {
            let id = rand::random::<u32>();
            match self.inner.udx.create_stream(id) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("no free udx stream id").into())
    }

    fn secret_stream(&self, raw: UdxStream, is_initiator: bool, hs: HandshakeResult) -> Connection {
        let mut stream = SecretStream::from_handshake_with(
            raw,
            is_initiator,
            hs,
            SecretStreamOptions {
                keep_alive: self.inner.keep_alive,
                ..SecretStreamOptions::default()
            },
        );
        // Frames are encrypted into, and decrypted from, the UDX stream's rings (one copy fewer each way).
        stream.set_in_place(super::in_place::UDX_IN_PLACE);
        stream
    }

    /// Creates a server (`dht.createServer({ firewall })`). `firewall(remote_public_key, payload)` returns
    /// true to **reject** the peer, as the JS firewall does; a rejected peer gets no answer (as from a JS
    /// server) and its connect fails with `PEER_CONNECTION_FAILED`.
    pub fn create_server(
        &self,
        firewall: impl Fn(&[u8; 32], &NoisePayload) -> bool + Send + Sync + 'static,
    ) -> Server {
        Server {
            dht: self.clone(),
            firewall: Arc::new(firewall),
            listening: None,
            relay_through: None,
            relay_keep_alive: RELAY_KEEP_ALIVE,
        }
    }

    /// Connects to the server listening on `remote_public_key`, with the node's default key pair.
    pub async fn connect(&self, remote_public_key: &[u8; 32]) -> Result<Connection> {
        let kp = self.inner.default_key_pair.clone();
        self.connect_with(remote_public_key, &kp).await
    }

    /// Connects to the server listening on `remote_public_key` as `key_pair`.
    pub async fn connect_with(
        &self,
        remote_public_key: &[u8; 32],
        key_pair: &KeyPair,
    ) -> Result<Connection> {
        self.connect_opts(
            remote_public_key,
            ConnectOpts {
                key_pair: Some(key_pair.clone()),
                ..ConnectOpts::default()
            },
        )
        .await
    }

    /// Connects to the server listening on `remote_public_key` with options (`dht.connect(key, opts)`).
    ///
    /// (A boxed future: a connection through a relay opens a connection to the relay with this function.)
    pub fn connect_opts<'a>(
        &'a self,
        remote_public_key: &'a [u8; 32],
        opts: ConnectOpts,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Connection>> + Send + 'a>> {
        Box::pin(self.connect_opts_inner(remote_public_key, opts))
    }

    async fn connect_opts_inner(
        &self,
        remote_public_key: &[u8; 32],
        opts: ConnectOpts,
    ) -> Result<Connection> {
        self.check_alive()?;
        if self.is_suspended() {
            return Err(HyperDhtError::Suspended);
        }
        let key_pair = &opts
            .key_pair
            .clone()
            .unwrap_or_else(|| self.inner.default_key_pair.clone());
        // Never through the peer we connect to: a connection to the relay itself is not paired through it.
        let our_relay = match &opts.relay_through {
            Some(r) => r.select_for(self).await,
            None => None,
        }
        .filter(|k| k != remote_public_key)
        .map(|k| (k, crate::blind_relay::token()));
        // Set once the stream runs through the relay: from then on only our own move to a punched path
        // changes its remote (relay traffic on the old path must not move it back, but is accepted).
        let relaying = Arc::new(relay::RelayPath::default());
        let target = crypto::hash(&[remote_public_key]);
        let (socket, remote_addr) = self.current_socket().await?;

        let raw = self.create_raw_stream()?;
        // The stream connects itself to the first packet of the server once its id is known (the JS firewall
        // hook; needed when the server reaches us first); packets before that are held.
        let remote_id: Arc<Mutex<Option<u32>>> = Arc::new(Mutex::new(None));
        let (reached_tx, reached_rx) = tokio::sync::watch::channel(false);
        // Set while (and once) the stream moves to the IPv6 path: the server's packets on the IPv4 path are
        // then the stream's own and must not move it back.
        let v6_pin = Arc::new(ipv6::Pin::default());
        {
            let remote_id = remote_id.clone();
            let relaying = relaying.clone();
            let v6_pin = v6_pin.clone();
            raw.set_firewall(move |from, _local| {
                if let Some(v) = v6_pin.verdict() {
                    return v;
                }
                if relaying.is_set() {
                    // Relay traffic after our move to a punched path: the server's retransmits of what it
                    // sent through the relay. Anything else waits for our own move.
                    return if relaying.is_relay_packet(from) {
                        FirewallVerdict::Accept
                    } else {
                        FirewallVerdict::Reject
                    };
                }
                match remote_id.lock().ok().and_then(|g| *g) {
                    Some(id) => {
                        let _ = reached_tx.send(true);
                        FirewallVerdict::Connect { remote_id: id }
                    }
                    // The server's first packets can outrun its handshake reply (which names its stream):
                    // kept until the stream connects, as the JS client's firewall lets them in, instead of
                    // dropped (which cost the server a 1 s retransmission timeout).
                    None => FirewallVerdict::Hold,
                }
            })?;
        }

        let mut noise = NoiseWrap::initiator(key_pair, remote_public_key)?;
        let mut addresses4 = Vec::new();
        addresses4.extend(remote_addr);
        addresses4.extend(local_addresses(self.server_addr()));
        let v6 = self.ipv6_offer().await;
        let request = noise.send(&NoisePayload {
            firewall: if remote_addr.is_some() {
                Firewall::OPEN
            } else {
                Firewall::UNKNOWN
            },
            addresses4,
            addresses6: v6.as_ref().map(|(_, a)| a.clone()).unwrap_or_default(),
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: u64::from(raw.local_id()),
                seq: 0,
            }),
            secret_stream: Some(SecretStreamInfo { version: 1 }),
            relay_through: relay::info(our_relay),
            ..NoisePayload::default()
        })?;

        // The nodes holding the server's record: shared with the node's other connects to it (one query at
        // a time, remembered afterwards; see `peer_routes`). Remembered nodes that all fail are looked up
        // again, once.
        let via_dht = async {
            let mut stale = None;
            loop {
                let found = match self
                    .inner
                    .peer_routes
                    .find(target, stale, || self.find_peer_nodes(target))
                    .await
                {
                    Ok(f) => f,
                    Err(e) => break Err(e),
                };
                if found.relays.is_empty() {
                    break Err(HyperDhtError::PeerNotFound);
                }
                match self.handshake_through(target, &request, found.relays).await {
                    Some(answer) => {
                        self.inner.peer_routes.worked(target, answer.0);
                        break Ok(answer);
                    }
                    None if found.remembered && stale.is_none() => {
                        tracing::debug!(
                            "no answer through the remembered nodes, looking the server up again"
                        );
                        stale = Some(found.generation);
                    }
                    None => break Err(HyperDhtError::PeerConnectionFailed),
                }
            }
        };
        let (relay, (reply_noise, server_address, client_address, relayed)) =
            self.dht_or_lan(target, &request, via_dht).await?;

        let payload = noise.recv(&reply_noise)?;
        if payload.version != 1 {
            return Err(HyperDhtError::ServerIncompatible(payload.version));
        }
        if payload.error != ErrorCode::NONE {
            return Err(HyperDhtError::ServerError(format!(
                "the server answered with error code {:?}",
                payload.error
            )));
        }
        let Some(udx) = payload.udx else {
            return Err(HyperDhtError::ServerError(
                "Server did not send UDX data".into(),
            ));
        };
        let finished = noise.finish()?;
        let server_stream = u32::try_from(udx.id)
            .map_err(|_| HyperDhtError::ServerError("bad udx stream id".into()))?;
        if let Ok(mut g) = remote_id.lock() {
            *g = Some(server_stream);
        }
        // The server's packets that came before its id was known connect the stream now (else, when we wait
        // for the server to reach us, only its retransmission a second later would).
        raw.retry_held()?;

        let route = Route {
            relay,
            server_address,
            client_address,
            relayed,
        };
        let we_are_open = remote_addr.is_some();
        let secret = finished.holepunch_secret;
        let dht = self.clone();
        let chooser_payload = payload.clone();
        let relay_plan = relay::plan(false, our_relay, payload.relay_through.as_ref());
        let hold = relay_plan.and(self.inner.hold_direct_path);
        // Both sides offered IPv6 addresses: the IPv6 path is tried alongside and preferred.
        let v6_try = v6.and_then(|(path, ours)| {
            let theirs = ipv6::probe_targets(&payload.addresses6, &ours);
            (!theirs.is_empty()).then_some((path, theirs))
        });
        let mut path_task = tokio::spawn(async move {
            match hold {
                None => {}
                Some(None) => {
                    return Err(HyperDhtError::HolepunchAborted(
                        "direct paths are held back (test option)".into(),
                    ))
                }
                Some(Some(d)) => tokio::time::sleep(d).await,
            }
            let v4 = async {
                dht.choose_path(
                    &chooser_payload,
                    route,
                    we_are_open,
                    (target, &secret),
                    relay_plan.is_some(),
                )
                .await
                .map(|p| p.map(|(sock, a)| (sock, SocketAddr::V4(a))))
            };
            match v6_try {
                None => v4.await,
                Some((path, theirs)) => ipv6::prefer(&path, &theirs, v4).await,
            }
        });
        let relay_task = relay_plan.map(|(init, key, token)| {
            tokio::spawn(relay::pair(
                self.clone(),
                key,
                init,
                token,
                raw.local_id(),
                opts.relay_keep_alive.unwrap_or(RELAY_KEEP_ALIVE),
            ))
        });
        let path = match relay_task {
            None => joined((&mut path_task).await),
            Some(mut rt) => {
                tokio::select! {
                    p = &mut path_task => match joined(p) {
                        Ok(p) => {
                            // The direct path won; a later pairing is dropped with the task.
                            rt.abort();
                            Ok(p)
                        }
                        Err(e) => {
                            tracing::debug!("no direct path ({e}), waiting for the relay");
                            let link = joined(rt.await)?;
                            return self
                                .relayed_client(raw, link, &relaying, None, server_stream, socket, finished.result)
                                .await;
                        }
                    },
                    l = &mut rt => match joined(l) {
                        Ok(link) => {
                            return self
                                .relayed_client(raw, link, &relaying, Some(path_task), server_stream, socket, finished.result)
                                .await;
                        }
                        Err(e) => {
                            tracing::debug!("relay pairing failed: {e}");
                            joined(path_task.await)
                        }
                    },
                }
            }
        }?;
        match path {
            Some((sock, addr)) => {
                let sock = sock.unwrap_or(socket);
                if addr.is_ipv6() {
                    v6_pin.moving();
                }
                if raw.remote().is_none() {
                    raw.connect_via(&sock, server_stream, addr)?;
                } else if addr.is_ipv6() && raw.remote().map(|(_, a)| a) != Some(addr) {
                    // The server reached us over IPv4 first: move to the IPv6 path.
                    raw.change_remote_via(&sock, server_stream, addr)?;
                }
                if addr.is_ipv6() {
                    v6_pin.pinned();
                    raw.retry_held()?;
                    tracing::debug!("connection over IPv6 to {addr}");
                }
            }
            None => {
                // We are reachable: the server connects to us.
                let mut reached = reached_rx;
                let waited =
                    tokio::time::timeout(HANDSHAKE_INITIAL_TIMEOUT, reached.wait_for(|r| *r)).await;
                if !matches!(waited, Ok(Ok(_))) && raw.remote().is_none() {
                    return Err(HyperDhtError::HolepunchAborted(
                        "the server never reached us".into(),
                    ));
                }
            }
        }
        // A direct connection follows the server to a new address (its network changed).
        let _ = raw.set_migration(true);
        let mut conn = self.secret_stream(raw, true, finished.result);
        // Send our secret-stream header now, as the JS `start` does.
        tokio::io::AsyncWriteExt::flush(&mut conn).await?;
        Ok(conn)
    }

    /// The client's stream through the relay: connects `raw` to its relay stream and starts the secret
    /// stream on it. If `path` (the direct path / holepunch still under way) succeeds later, the stream moves
    /// there and the relay connection closes; else the relay connection lives as long as the stream.
    #[allow(clippy::too_many_arguments)]
    async fn relayed_client(
        &self,
        raw: UdxStream,
        link: relay::RelayLink,
        relaying: &Arc<relay::RelayPath>,
        path: Option<JoinHandle<Result<DirectPath>>>,
        server_stream: u32,
        dht_socket: UdxSocket,
        hs: HandshakeResult,
    ) -> Result<Connection> {
        if raw.remote().is_some() {
            // The server reached us directly meanwhile: no relay.
            if let Some(p) = path {
                p.abort();
            }
            let _ = raw.set_migration(true);
            let mut conn = self.secret_stream(raw, true, hs);
            tokio::io::AsyncWriteExt::flush(&mut conn).await?;
            return Ok(conn);
        }
        relaying.set(link.addr);
        raw.connect_alongside(&link.control, link.remote_id)?;
        tracing::debug!("connection relayed through relay stream {}", link.remote_id);
        let id = raw.local_id();
        if let Ok(mut r) = self.inner.relayed.lock() {
            r.insert(id);
        }
        let control = raw.control();
        let mut conn = self.secret_stream(raw, true, hs);
        tokio::io::AsyncWriteExt::flush(&mut conn).await?;
        let dht = self.clone();
        let relaying = relaying.clone();
        tokio::spawn(async move {
            let upgraded = async {
                let Some(p) = path else {
                    return std::future::pending().await;
                };
                match p.await {
                    Ok(Ok(Some((sock, addr)))) => {
                        let sock = sock.unwrap_or(dht_socket);
                        match control.change_remote_via(&sock, server_stream, addr) {
                            Ok(()) => tracing::debug!("relayed connection moved to {addr}"),
                            Err(e) => {
                                tracing::debug!("moving the relayed connection failed: {e}");
                                std::future::pending().await
                            }
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                () = upgraded => {
                    if let Ok(mut r) = dht.inner.relayed.lock() {
                        r.remove(&id);
                    }
                    tokio::select! {
                        () = relay::confirm_direct_upgrade(&control, &relaying) => {
                            tracing::debug!("direct path confirmed, closing the relay connection");
                        }
                        _ = control.closed() => {}
                    }
                }
                _ = control.closed() => {
                    if let Ok(mut r) = dht.inner.relayed.lock() {
                        r.remove(&id);
                    }
                }
            }
            drop(link);
        });
        Ok(conn)
    }

    /// Where to connect the stream: `Some((socket or None for dht.socket, address))`, or `None` to wait for
    /// the server (we are reachable).
    async fn choose_path(
        &self,
        payload: &NoisePayload,
        route: Route,
        we_are_open: bool,
        punch: (Id, &[u8; 32]),
        through_relay: bool,
    ) -> Result<Option<(Option<UdxSocket>, SocketAddrV4)>> {
        let Route {
            relay,
            server_address,
            client_address,
            relayed,
        } = route;
        if !relayed {
            return Ok(Some((None, relay)));
        }
        let holepunchable = payload
            .holepunch
            .as_ref()
            .is_some_and(|h| !h.relays.is_empty());
        if payload.firewall == Firewall::OPEN || !holepunchable {
            let addr = payload
                .addresses4
                .iter()
                .copied()
                .find(|a| !is_bogon(*a.ip()))
                .unwrap_or(server_address);
            return Ok(Some((None, addr)));
        }
        if we_are_open {
            return Ok(None);
        }
        if !holepunchable {
            return Err(HyperDhtError::CannotHolepunch);
        }
        let Some(hp) = payload.holepunch.as_ref() else {
            return Err(HyperDhtError::CannotHolepunch);
        };
        let Some(server_relay) = holepunch::pick_server_relay(&hp.relays, relay) else {
            return Err(HyperDhtError::CannotHolepunch);
        };
        let (target, secret) = punch;
        let st = self.inner.handle.state().await?;
        // We told the server we are not reachable: analyse our NAT as a firewalled node would, even if the
        // DHT found out meanwhile that we are (an OPEN verdict would give the server no address to punch).
        let puncher = Holepuncher::new(true, payload.firewall, true);
        let session = PunchSession::start(&self.inner.udx, self.inner.host, puncher, None).await?;
        session.auto_sample(st.nodes.iter().rev().copied().collect());
        let client = ClientPunch {
            session: session.clone(),
            target,
            id: hp.id,
            secure: SecurePayload::new(secret),
            round: 0,
            random: self.inner.random_punches.clone(),
            relayed: through_relay,
        };
        let punched = client.run(server_address, relay, server_relay, true);
        tokio::pin!(punched);

        // Race the LAN shortcut with the holepunch: the same host behind one NAT (or on one LAN).
        if client_address.ip() == server_address.ip() {
            let theirs: Vec<SocketAddrV4> = payload
                .addresses4
                .iter()
                .copied()
                .filter(|a| !is_reserved(*a.ip()))
                .collect();
            let mine = local_addresses(self.server_addr());
            if let Some(addr) = match_address(&mine, &theirs).or(theirs.first().copied()) {
                let lan = self.inner.handle.ping(addr);
                tokio::select! {
                    r = &mut punched => {
                        let (sock, to) = r?;
                        return Ok(Some((Some(sock), to)));
                    }
                    pinged = lan => {
                        if pinged.is_ok() {
                            session.with(|p| p.destroy());
                            return Ok(Some((Some(self.inner.server_socket.clone()), addr)));
                        }
                    }
                }
            }
        }
        let (sock, to) = punched.await?;
        Ok(Some((Some(sock), to)))
    }

    /// The FIND_PEER query for `target`: the nodes that answered with the server's record, in the order
    /// they answered.
    async fn find_peer_nodes(&self, target: Id) -> Result<Vec<SocketAddrV4>> {
        let outcome = self
            .inner
            .handle
            .query(
                QuerySpec {
                    target,
                    command: Command::FIND_PEER.into(),
                    value: None,
                },
                QueryOpts::default(),
            )
            .await?;
        let mut relays: Vec<SocketAddrV4> = Vec::new();
        for r in &outcome.replies {
            let found = r
                .value
                .as_deref()
                .and_then(|v| decode::<Peer>(v).ok())
                .is_some();
            if found && !relays.contains(&r.from) {
                relays.push(r.from);
            }
        }
        Ok(relays)
    }

    /// Sends the same first handshake message through each of `relays`, a few at a time (the JS runs two
    /// attempts in parallel); the first answer wins (the server answers duplicates identically). `None`
    /// when no node got an answer.
    async fn handshake_through(
        &self,
        target: Id,
        request: &[u8],
        relays: Vec<SocketAddrV4>,
    ) -> Option<HandshakeAnswer> {
        let mut answer = None;
        let mut pending = relays.into_iter();
        let mut set = tokio::task::JoinSet::new();
        loop {
            while set.len() < PARALLEL_HANDSHAKES {
                let Some(relay) = pending.next() else { break };
                let dht = self.clone();
                let request = request.to_vec();
                set.spawn(
                    async move { (relay, dht.peer_handshake(target, &request, relay).await) },
                );
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            match done {
                Ok((relay, Ok(a))) => {
                    answer = Some((relay, a));
                    break;
                }
                Ok((relay, Err(e))) => tracing::debug!("handshake through {relay} failed: {e}"),
                Err(e) => tracing::debug!("handshake task failed: {e}"),
            }
        }
        set.abort_all();
        answer
    }

    /// The handshake answer through the DHT (`via_dht`), raced with one found on the LAN when LAN discovery
    /// is on: each LAN answer's addresses get the same first handshake message directly (the server's own
    /// node answers it, as a DHT node holding the server would). The first answer wins; when one side
    /// finds nothing, the other's result stands (the DHT's error when neither found the server).
    async fn dht_or_lan(
        &self,
        target: Id,
        request: &[u8],
        via_dht: impl Future<Output = Result<HandshakeAnswer>>,
    ) -> Result<HandshakeAnswer> {
        let Some(lan) = &self.inner.lan else {
            return via_dht.await;
        };
        let via_lan = async {
            let mut found = lan.query(target);
            // Every answer is tried at once (a host answering with an address that never replies must not
            // hold up the right one), up to a few.
            let mut tries = tokio::task::JoinSet::new();
            let mut started = 0;
            let mut open = true;
            loop {
                tokio::select! {
                    f = found.recv(), if open => match f {
                        Some(f) if started < LAN_TRIES => {
                            tracing::debug!("LAN discovery: {} answered for the server", f.from);
                            started += 1;
                            let dht = self.clone();
                            let request = request.to_vec();
                            tries.spawn(async move {
                                dht.handshake_through(target, &request, f.addresses).await
                            });
                        }
                        Some(_) => {}
                        None => open = false,
                    },
                    Some(r) = tries.join_next() => {
                        if let Ok(Some(a)) = r {
                            return Some(a);
                        }
                    }
                    else => return None,
                }
            }
        };
        tokio::pin!(via_dht);
        tokio::pin!(via_lan);
        tokio::select! {
            d = &mut via_dht => match d {
                Ok(a) => Ok(a),
                Err(e) => match via_lan.await {
                    Some(a) => Ok(a),
                    None => Err(e),
                },
            },
            l = &mut via_lan => match l {
                Some(a) => Ok(a),
                None => via_dht.await,
            },
        }
    }

    /// How many FIND_PEER queries the node's connects started (connects to one server share them).
    pub fn find_peer_queries(&self) -> u64 {
        self.inner.peer_routes.queries()
    }

    /// The client half of `router.peerHandshake`: returns (noise, server address, client address, relayed).
    async fn peer_handshake(
        &self,
        target: Id,
        noise: &[u8],
        to: SocketAddrV4,
    ) -> Result<(Vec<u8>, SocketAddrV4, SocketAddrV4, bool)> {
        let value = Handshake {
            mode: Mode::FROM_CLIENT,
            noise: noise.to_vec(),
            peer_address: None,
            relay_address: None,
        }
        .to_bytes();
        let res = self
            .inner
            .handle
            .request(
                RequestSpec {
                    token: None,
                    command: Command::PEER_HANDSHAKE.into(),
                    target: Some(target),
                    value: Some(value),
                },
                to,
                Default::default(),
            )
            .await?;
        let hs = res
            .value
            .as_deref()
            .and_then(|v| decode::<Handshake>(v).ok());
        match hs {
            Some(hs) if hs.mode == Mode::REPLY && res.from == to && !hs.noise.is_empty() => {
                let relayed = hs.peer_address.is_some();
                Ok((hs.noise, hs.peer_address.unwrap_or(to), res.to, relayed))
            }
            _ => Err(HyperDhtError::ServerError("BAD_HANDSHAKE_REPLY".into())),
        }
    }

    // ----- storage: lookup / announce / unannounce / mutable / immutable -----

    /// The LOOKUP query for `topic` (what `lookup` and `unannounce` both start with).
    async fn lookup_query(&self, topic: &[u8; 32]) -> Result<crate::dht_rpc::driver::QueryOutcome> {
        Ok(self
            .inner
            .handle
            .query(
                QuerySpec {
                    target: *topic,
                    command: Command::LOOKUP.into(),
                    value: None,
                },
                QueryOpts::default(),
            )
            .await?)
    }

    /// Finds the peers announced under `topic` (`dht.lookup(topic)`), one entry per replying node.
    pub async fn lookup(&self, topic: &[u8; 32]) -> Result<Vec<LookupResult>> {
        self.lookup_inner(topic, None, None).await
    }

    /// [`Self::lookup`], also sending each node's result to `found` as its reply arrives (hyperswarm dials
    /// peers while the query still runs, as the JS lookup stream allows).
    pub async fn lookup_streaming(
        &self,
        topic: &[u8; 32],
        found: mpsc::UnboundedSender<LookupResult>,
    ) -> Result<Vec<LookupResult>> {
        self.lookup_inner(topic, None, Some(found)).await
    }

    /// Announces `key_pair` under `topic` to the closest nodes (`dht.announce(topic, keyPair, relays)`),
    /// signed as the JS does.
    pub async fn announce(
        &self,
        topic: &[u8; 32],
        key_pair: &KeyPair,
        relay_addresses: &[SocketAddrV4],
    ) -> Result<()> {
        self.announce_and_lookup(topic, key_pair, relay_addresses)
            .await
            .map(drop)
    }

    /// [`Self::announce`], also returning the peers its lookup phase found under `topic` (the JS announce
    /// query yields them, as a lookup does; hyperswarm's discovery uses both).
    pub async fn announce_and_lookup(
        &self,
        topic: &[u8; 32],
        key_pair: &KeyPair,
        relay_addresses: &[SocketAddrV4],
    ) -> Result<Vec<LookupResult>> {
        self.lookup_inner(topic, Some((key_pair, relay_addresses)), None)
            .await
    }

    /// [`Self::announce_and_lookup`], also sending each node's lookup result to `found` as it arrives.
    pub async fn announce_and_lookup_streaming(
        &self,
        topic: &[u8; 32],
        key_pair: &KeyPair,
        relay_addresses: &[SocketAddrV4],
        found: mpsc::UnboundedSender<LookupResult>,
    ) -> Result<Vec<LookupResult>> {
        self.lookup_inner(topic, Some((key_pair, relay_addresses)), Some(found))
            .await
    }

    /// The LOOKUP query, with an ANNOUNCE commit when `announce` is given, optionally streaming results.
    async fn lookup_inner(
        &self,
        topic: &[u8; 32],
        announce: Option<(&KeyPair, &[SocketAddrV4])>,
        found: Option<mpsc::UnboundedSender<LookupResult>>,
    ) -> Result<Vec<LookupResult>> {
        let spec = QuerySpec {
            target: *topic,
            command: Command::LOOKUP.into(),
            value: None,
        };
        if let (Some(lan), Some((kp, _))) = (&self.inner.lan, announce) {
            lan.advertise(*topic, Some(kp.public));
        }
        let commit = announce.map(|(kp, relays)| {
            let target = *topic;
            let kp = kp.clone();
            let relays = relays.to_vec();
            Box::new(move |reply: &crate::dht_rpc::node::Reply| {
                announce_request(&target, reply, &kp, &relays, Command::ANNOUNCE)
            }) as crate::dht_rpc::driver::CommitFn
        });
        // The LAN's answers for the topic, gathered (and streamed) alongside the DHT query.
        let lan_found = Mutex::new(Vec::new());
        let via_lan = async {
            let Some(lan) = &self.inner.lan else { return };
            let mut rx = lan.query(*topic);
            while let Some(f) = rx.recv().await {
                let Some(public_key) = f.public_key else {
                    continue;
                };
                tracing::debug!("LAN discovery: {} answered for the topic", f.from);
                let r = LookupResult {
                    from: f.from,
                    peers: vec![Peer {
                        public_key,
                        relay_addresses: Vec::new(),
                    }],
                };
                if let Some(tx) = &found {
                    let _ = tx.send(r.clone());
                }
                if let Ok(mut l) = lan_found.lock() {
                    l.push(r);
                }
            }
        };
        let via_dht = self.lookup_dht(spec, commit, found.clone());
        let (outcome, ()) = tokio::join!(via_dht, via_lan);
        let lan_found = lan_found.into_inner().unwrap_or_default();
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) if lan_found.is_empty() || announce.is_some() => return Err(e),
            Err(_) => return Ok(lan_found),
        };
        if announce.is_some() {
            outcome.result.map_err(|e| {
                HyperDhtError::Driver(DriverError::Io(io::Error::other(e.to_string())))
            })?;
        }
        let mut results: Vec<LookupResult> =
            outcome.replies.iter().filter_map(lookup_result).collect();
        results.extend(lan_found);
        Ok(results)
    }

    /// The DHT half of [`Self::lookup_inner`].
    async fn lookup_dht(
        &self,
        spec: QuerySpec,
        commit: Option<crate::dht_rpc::driver::CommitFn>,
        found: Option<mpsc::UnboundedSender<LookupResult>>,
    ) -> Result<crate::dht_rpc::driver::QueryOutcome> {
        Ok(match found {
            None => match commit {
                None => self.inner.handle.query(spec, QueryOpts::default()).await?,
                Some(c) => {
                    self.inner
                        .handle
                        .query_with_commit(spec, QueryOpts::default(), c)
                        .await?
                }
            },
            Some(found) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let query =
                    self.inner
                        .handle
                        .query_streaming(spec, QueryOpts::default(), commit, tx);
                // The driver drops `tx` when the query ends, which ends the forwarding.
                let forward = async move {
                    while let Some(reply) = rx.recv().await {
                        if let Some(r) = lookup_result(&reply) {
                            let _ = found.send(r);
                        }
                    }
                };
                tokio::join!(query, forward).0?
            }
        })
    }

    /// Removes `key_pair`'s announcement under `topic` from the nodes that hold it (`dht.unannounce`).
    pub async fn unannounce(&self, topic: &[u8; 32], key_pair: &KeyPair) -> Result<()> {
        if let Some(lan) = &self.inner.lan {
            lan.withdraw(topic, Some(key_pair.public));
        }
        let outcome = self.lookup_query(topic).await?;
        for r in &outcome.replies {
            let Some(l) = r
                .value
                .as_deref()
                .and_then(|v| decode::<LookupReply>(v).ok())
            else {
                continue;
            };
            let found =
                l.peers.len() >= 20 || l.peers.iter().any(|p| p.public_key == key_pair.public);
            if !found {
                continue;
            }
            if let Some(spec) = announce_request(topic, r, key_pair, &[], Command::UNANNOUNCE) {
                let _ = self
                    .inner
                    .handle
                    .request(spec, r.from, Default::default())
                    .await;
            }
        }
        Ok(())
    }

    /// Stores `value` signed by `key_pair` with sequence number `seq` (`dht.mutablePut`).
    pub async fn mutable_put(&self, key_pair: &KeyPair, value: &[u8], seq: u64) -> Result<()> {
        let target = crypto::hash(&[&key_pair.public]);
        let signature = sign(&mutable_signable(seq, value), &signing_key(key_pair));
        let signed = MutablePutRequest {
            public_key: key_pair.public,
            seq,
            value: value.to_vec(),
            signature,
        }
        .to_bytes();
        let mut w = Writer::new();
        w.uint(0);
        let outcome = self
            .inner
            .handle
            .query_with_commit(
                QuerySpec {
                    target,
                    command: Command::MUTABLE_GET.into(),
                    value: Some(w.into_vec()),
                },
                QueryOpts::default(),
                move |reply| {
                    Some(RequestSpec {
                        token: reply.token,
                        command: Command::MUTABLE_PUT.into(),
                        target: Some(target),
                        value: Some(signed.clone()),
                    })
                },
            )
            .await?;
        outcome
            .result
            .map_err(|e| HyperDhtError::Driver(DriverError::Io(io::Error::other(e.to_string()))))
    }

    /// The latest value stored under `public_key` with a valid signature (`dht.mutableGet`).
    pub async fn mutable_get(&self, public_key: &[u8; 32]) -> Result<Option<MutableValue>> {
        let target = crypto::hash(&[public_key]);
        let mut w = Writer::new();
        w.uint(0);
        let outcome = self
            .inner
            .handle
            .query(
                QuerySpec {
                    target,
                    command: Command::MUTABLE_GET.into(),
                    value: Some(w.into_vec()),
                },
                QueryOpts::default(),
            )
            .await?;
        let mut best: Option<MutableValue> = None;
        for r in &outcome.replies {
            let Some(m) = r
                .value
                .as_deref()
                .and_then(|v| decode::<MutableGetResponse>(v).ok())
            else {
                continue;
            };
            if !verify(&m.signature, &mutable_signable(m.seq, &m.value), public_key) {
                continue;
            }
            if best.as_ref().is_none_or(|b| m.seq > b.seq) {
                best = Some(MutableValue {
                    seq: m.seq,
                    value: m.value,
                    signature: m.signature,
                    from: r.from,
                });
            }
        }
        Ok(best)
    }

    /// Stores `value` under its BLAKE2b-256 hash, which is returned (`dht.immutablePut`).
    pub async fn immutable_put(&self, value: &[u8]) -> Result<[u8; 32]> {
        let target = crypto::hash(&[value]);
        let value = value.to_vec();
        let outcome = self
            .inner
            .handle
            .query_with_commit(
                QuerySpec {
                    target,
                    command: Command::IMMUTABLE_GET.into(),
                    value: None,
                },
                QueryOpts::default(),
                move |reply| {
                    Some(RequestSpec {
                        token: reply.token,
                        command: Command::IMMUTABLE_PUT.into(),
                        target: Some(target),
                        value: Some(value.clone()),
                    })
                },
            )
            .await?;
        outcome
            .result
            .map_err(|e| HyperDhtError::Driver(DriverError::Io(io::Error::other(e.to_string()))))?;
        Ok(target)
    }

    /// The value whose hash is `hash`, checked against it (`dht.immutableGet`).
    pub async fn immutable_get(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        let outcome = self
            .inner
            .handle
            .query(
                QuerySpec {
                    target: *hash,
                    command: Command::IMMUTABLE_GET.into(),
                    value: None,
                },
                QueryOpts::default(),
            )
            .await?;
        Ok(outcome
            .replies
            .iter()
            .filter_map(|r| r.value.clone())
            .find(|v| crypto::hash(&[v]) == *hash))
    }
}

/// The signed ANNOUNCE / UNANNOUNCE request for one node's reply (needs its token and id).
fn announce_request(
    target: &[u8; 32],
    reply: &Reply,
    key_pair: &KeyPair,
    relay_addresses: &[SocketAddrV4],
    command: Command,
) -> Option<RequestSpec> {
    let token = reply.token?;
    let node_id = reply.from_id?;
    let peer = Peer {
        public_key: key_pair.public,
        relay_addresses: relay_addresses.to_vec(),
    };
    let namespace = if command == Command::ANNOUNCE {
        ns::announce()
    } else {
        ns::unannounce()
    };
    let signable = announce_signable(target, &token, &node_id, &peer, None, &namespace);
    let ann = Announce {
        peer: Some(peer),
        refresh: None,
        signature: Some(sign(&signable, &signing_key(key_pair))),
        bump: 0,
    };
    Some(RequestSpec {
        token: Some(token),
        command: command.into(),
        target: Some(*target),
        value: Some(ann.to_bytes()),
    })
}

/// `bogon`'s private ranges.
fn is_private(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 10
        || (o[0] == 100 && (64..=127).contains(&o[1]))
        || o[0] == 127
        || (o[0] == 169 && o[1] == 254)
        || (o[0] == 172 && (16..=31).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
}

/// `bogon`'s reserved ranges.
fn is_reserved(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0
        || (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2))
        || (o[0] == 198 && (18..=19).contains(&o[1]))
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || o[0] >= 224
}

fn is_bogon(ip: Ipv4Addr) -> bool {
    is_private(ip) || is_reserved(ip)
}

/// `Holepuncher.localAddresses(serverSocket)`: the bound address if it is 127.0.0.1, else the machine's
/// non-internal IPv4 addresses (127.0.0.1 if none), with the socket's port.
fn local_addresses(bound: SocketAddrV4) -> Vec<SocketAddrV4> {
    let port = bound.port();
    if *bound.ip() == Ipv4Addr::LOCALHOST {
        return vec![bound];
    }
    let mut out: Vec<SocketAddrV4> = interface_addresses()
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddrV4::new(ip, port))
        .collect();
    if !bound.ip().is_unspecified() {
        out.retain(|a| a.ip() == bound.ip());
        if out.is_empty() {
            out.push(bound);
        }
    }
    if out.is_empty() {
        out.push(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    }
    out
}

/// The IPv4 addresses of the machine's interfaces.
fn interface_addresses() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family tells its real type.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: an AF_INET sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// `Holepuncher.matchAddress`: the remote address sharing the most leading octets (at least one) with one
/// of ours; three shared octets win at once.
fn match_address(mine: &[SocketAddrV4], theirs: &[SocketAddrV4]) -> Option<SocketAddrV4> {
    let mut best: (u8, Option<SocketAddrV4>) = (1, None);
    for a in mine {
        let a = a.ip().octets();
        for r in theirs {
            let b = r.ip().octets();
            if a[0] == b[0] {
                if best.0 == 1 {
                    best = (2, Some(*r));
                }
                if a[1] == b[1] {
                    if best.0 == 2 {
                        best = (3, Some(*r));
                    }
                    if a[2] == b[2] {
                        return Some(*r);
                    }
                }
            }
        }
    }
    best.1
}

/// A server's firewall: true rejects the peer.
pub type FirewallFn = Arc<dyn Fn(&[u8; 32], &NoisePayload) -> bool + Send + Sync>;

/// The relays a server announced itself to (`announcer.relays` / `relayAddresses`).
#[derive(Debug, Default, Clone)]
struct Announced {
    relays: Vec<RelayInfo>,
    relay_addresses: Vec<SocketAddrV4>,
}

struct Listening {
    key_pair: KeyPair,
    target: Id,
    conns: mpsc::UnboundedReceiver<Connection>,
    announced: Arc<Mutex<Announced>>,
    router: JoinHandle<()>,
    announcer: JoinHandle<()>,
    rounds: tokio::sync::watch::Receiver<u64>,
}

/// A HyperDHT server (`dht.createServer()`): [`Server::listen`] on a key pair, then [`Server::accept`]
/// connections.
pub struct Server {
    dht: HyperDht,
    firewall: FirewallFn,
    listening: Option<Listening>,
    relay_through: Option<RelayThrough>,
    relay_keep_alive: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("public_key", &self.public_key().map(hex::encode))
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The key pair's public key, while listening.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        self.listening.as_ref().map(|l| l.key_pair.public)
    }

    /// Pairs every connection through this blind relay as well (`relayThrough`); call before
    /// [`Server::listen`]. Its relay wins over a client's.
    pub fn set_relay_through(&mut self, relay_through: Option<RelayThrough>) {
        self.relay_through = relay_through;
    }

    /// Keep-alive of the connections to the relay (`relayKeepAlive`, [`RELAY_KEEP_ALIVE`] by default).
    pub fn set_relay_keep_alive(&mut self, keep_alive: Duration) {
        self.relay_keep_alive = keep_alive;
    }

    /// The relay nodes the server is announced to.
    pub fn relay_addresses(&self) -> Vec<SocketAddrV4> {
        self.listening
            .as_ref()
            .and_then(|l| l.announced.lock().ok().map(|a| a.relay_addresses.clone()))
            .unwrap_or_default()
    }

    /// Starts serving `key_pair`: handles handshakes routed to `hash(public key)` and announces the server to
    /// the closest nodes (returns once announced), refreshing the announcement as the JS announcer does.
    pub async fn listen(&mut self, key_pair: KeyPair) -> Result<()> {
        if self.listening.is_some() {
            return Err(HyperDhtError::AlreadyListening);
        }
        self.dht.check_alive()?;
        {
            let mut l = self
                .dht
                .inner
                .listening
                .lock()
                .map_err(|_| HyperDhtError::NodeDestroyed)?;
            if l.contains(&key_pair.public) {
                return Err(HyperDhtError::KeyPairAlreadyUsed);
            }
            l.push(key_pair.public);
        }
        let target = crypto::hash(&[&key_pair.public]);
        let requests = self.dht.inner.handle.claim_target(target).await?;
        if let Some(lan) = &self.dht.inner.lan {
            // Answer LAN queries for the target at once: peers on the LAN need no announce.
            lan.advertise(target, None);
        }
        let announced = Arc::new(Mutex::new(Announced::default()));
        let (tx, conns) = mpsc::unbounded_channel();
        let (pool_tx, pool_rx) = mpsc::channel(super::socket_pool::QUEUE);
        let router = tokio::spawn(
            Router {
                dht: self.dht.clone(),
                key_pair: key_pair.clone(),
                firewall: self.firewall.clone(),
                announced: announced.clone(),
                connections: tx,
                seen: HashMap::new(),
                next_id: 0,
                holepunches: Arc::new(Mutex::new(HashMap::new())),
                pool_tx,
                relay_through: self.relay_through.clone(),
                relay_keep_alive: self.relay_keep_alive,
            }
            .run(requests, pool_rx),
        );
        // Re-bootstraps from here on make the announcer announce again (taken before the first announce and
        // before the loop's task runs: one finished meanwhile is not missed).
        let mut rebootstraps = self.dht.inner.handle.rebootstraps();
        rebootstraps.borrow_and_update();
        let first = announce_server(&self.dht, &key_pair, target).await;
        if let Ok(mut a) = announced.lock() {
            *a = first.clone();
        }
        let (rounds_tx, rounds) = tokio::sync::watch::channel(1);
        let announcer = tokio::spawn(announcer_loop(
            self.dht.clone(),
            key_pair.clone(),
            target,
            announced.clone(),
            first,
            rounds_tx,
            rebootstraps,
        ));
        self.listening = Some(Listening {
            key_pair,
            target,
            conns,
            announced,
            router,
            announcer,
            rounds,
        });
        Ok(())
    }

    /// How many times the server announced itself (1 after [`Self::listen`]), changing with each
    /// re-announce (periodic, after losing relays, or after a network change); `None` when not listening.
    pub fn announce_rounds(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.listening.as_ref().map(|l| l.rounds.clone())
    }

    /// The next connection; `None` once the server is closed (or not listening).
    pub async fn accept(&mut self) -> Option<Connection> {
        self.listening.as_mut()?.conns.recv().await
    }

    /// Stops listening: stops refreshing, unannounces from the relays and stops answering handshakes.
    pub async fn close(&mut self) {
        let Some(l) = self.listening.take() else {
            return;
        };
        l.announcer.abort();
        l.router.abort();
        if let Some(lan) = &self.dht.inner.lan {
            lan.withdraw(&l.target, None);
        }
        let _ = self.dht.inner.handle.release_target(l.target).await;
        let relays = l
            .announced
            .lock()
            .map(|a| a.relays.clone())
            .unwrap_or_default();
        for r in relays {
            unannounce_server(&self.dht, &l.key_pair, l.target, r.relay_address).await;
        }
        if let Ok(mut ls) = self.dht.inner.listening.lock() {
            ls.retain(|k| *k != l.key_pair.public);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(l) = &self.listening {
            l.announcer.abort();
            l.router.abort();
            if let Some(lan) = &self.dht.inner.lan {
                lan.withdraw(&l.target, None);
            }
            if let Ok(mut ls) = self.dht.inner.listening.lock() {
                ls.retain(|k| *k != l.key_pair.public);
            }
        }
    }
}

/// One announce round (`announcer._update`): FIND_PEER towards the target, then a signed ANNOUNCE to the
/// closest nodes that replied.
async fn announce_server(dht: &HyperDht, key_pair: &KeyPair, target: Id) -> Announced {
    let handle = &dht.inner.handle;
    let outcome = match handle
        .query(
            QuerySpec {
                target,
                command: Command::FIND_PEER.into(),
                value: None,
            },
            QueryOpts::default(),
        )
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::debug!("announce query failed: {e}");
            return Announced::default();
        }
    };
    let mut out = Announced::default();
    if let Ok((_, Some(addr))) = dht.current_socket().await {
        out.relay_addresses.push(addr);
    }
    let mut set = tokio::task::JoinSet::new();
    for reply in outcome.closest.iter().take(ANNOUNCE_NODES) {
        let Some(spec) = announce_request(&target, reply, key_pair, &[], Command::ANNOUNCE) else {
            continue;
        };
        let handle = handle.clone();
        let (from, to) = (reply.from, reply.to);
        set.spawn(async move {
            let r = handle.request(spec, from, Default::default()).await;
            (
                from,
                to,
                matches!(r, Ok(ref rep) if rep.error == RpcErrorCode::OK),
            )
        });
    }
    while let Some(r) = set.join_next().await {
        if let Ok((from, to, true)) = r {
            if out.relay_addresses.len() < 3 {
                out.relay_addresses.push(from);
            }
            out.relays.push(RelayInfo {
                relay_address: from,
                peer_address: to,
            });
        }
    }
    out
}

/// `announcer._unannounce`: FIND_PEER for a token, then a signed UNANNOUNCE.
async fn unannounce_server(dht: &HyperDht, key_pair: &KeyPair, target: Id, to: SocketAddrV4) {
    let handle = &dht.inner.handle;
    let Ok(reply) = handle
        .request(
            RequestSpec {
                token: None,
                command: Command::FIND_PEER.into(),
                target: Some(target),
                value: None,
            },
            to,
            Default::default(),
        )
        .await
    else {
        return;
    };
    if reply.value.is_none() {
        return;
    }
    if let Some(spec) = announce_request(&target, &reply, key_pair, &[], Command::UNANNOUNCE) {
        let _ = handle.request(spec, to, Default::default()).await;
    }
}

/// The announcer's background loop: ping the relays every 3 s, re-announce every ~5 minutes or when
/// fewer than `min(3, relays)` answer, unannouncing from relays no longer used. Re-announces at once when
/// the node finished a re-bootstrap (a network change, a wake-up, a resume); unannounces while the node is
/// suspended. Counts the announce rounds in `rounds`.
async fn announcer_loop(
    dht: HyperDht,
    key_pair: KeyPair,
    target: Id,
    announced: Arc<Mutex<Announced>>,
    mut current: Announced,
    rounds: tokio::sync::watch::Sender<u64>,
    mut rebootstraps: tokio::sync::watch::Receiver<u64>,
) {
    let mut suspended = dht.inner.suspended.subscribe();
    loop {
        let wait = async {
            if current.relays.is_empty() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
            for _ in 0..ANNOUNCER_ROUNDS {
                tokio::time::sleep(ANNOUNCER_PING_INTERVAL).await;
                let mut alive = 0;
                for r in &current.relays {
                    if dht.inner.handle.ping(r.relay_address).await.is_ok() {
                        alive += 1;
                    }
                }
                if alive < current.relays.len().min(3) {
                    // Lost too many relays: announce again, after a breath.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return;
                }
            }
        };
        tokio::select! {
            () = wait => {}
            r = rebootstraps.changed() => {
                if r.is_err() {
                    return;
                }
                tracing::debug!("re-bootstrapped: re-announcing");
            }
            r = suspended.wait_for(|s| *s) => {
                if r.is_err() {
                    return;
                }
            }
        }
        if *suspended.borrow_and_update() {
            for r in &current.relays {
                unannounce_server(&dht, &key_pair, target, r.relay_address).await;
            }
            current = Announced::default();
            if let Ok(mut a) = announced.lock() {
                *a = current.clone();
            }
            dht.inner.unannounced.send_modify(|n| *n += 1);
            if suspended.wait_for(|s| !*s).await.is_err() {
                return;
            }
            // Resumed: announce once the node re-bootstrapped.
            let _ = tokio::time::timeout(Duration::from_secs(10), rebootstraps.changed()).await;
        }
        rebootstraps.borrow_and_update();
        let next = announce_server(&dht, &key_pair, target).await;
        for old in &current.relays {
            if !next
                .relays
                .iter()
                .any(|r| r.relay_address == old.relay_address)
            {
                unannounce_server(&dht, &key_pair, target, old.relay_address).await;
            }
        }
        if let Ok(mut a) = announced.lock() {
            *a = next.clone();
        }
        current = next;
        rounds.send_modify(|n| *n += 1);
    }
}

/// The server's handshake handling (`router.onpeerhandshake` for a target we serve + `server._addHandshake`).
struct Router {
    dht: HyperDht,
    key_pair: KeyPair,
    firewall: FirewallFn,
    announced: Arc<Mutex<Announced>>,
    connections: mpsc::UnboundedSender<Connection>,
    /// Handshakes answered recently, by their noise message: a retransmission gets the same answer (from
    /// the same socket: the puncher's, or the DHT's when `None`).
    seen: HashMap<Vec<u8>, (Instant, Option<HandshakeReply>)>,
    next_id: u64,
    /// Holepunch sessions by id.
    holepunches: Arc<Mutex<HashMap<u64, Arc<ServerHole>>>>,
    /// PEER_HOLEPUNCH requests arriving on puncher sockets.
    pool_tx: mpsc::Sender<(PoolRequest, Arc<PoolSocketHandle>)>,
    relay_through: Option<RelayThrough>,
    relay_keep_alive: Duration,
}

/// A server's handshake answer and the socket it goes out of (`None`: the DHT's).
type HandshakeReply = (Vec<u8>, Option<UdxSocket>);

impl Router {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<IncomingRequest>,
        mut pool: mpsc::Receiver<(PoolRequest, Arc<PoolSocketHandle>)>,
    ) {
        loop {
            tokio::select! {
                req = requests.recv() => {
                    let Some(req) = req else { return };
                    if Command::from(req.command) == Command::PEER_HANDSHAKE {
                        self.on_handshake(&req).await;
                    } else if Command::from(req.command) == Command::PEER_HOLEPUNCH {
                        self.spawn_holepunch(HolepunchRequest {
                            tid: req.tid,
                            from: req.from,
                            to: req.to,
                            internal: req.internal,
                            target: req.target,
                            value: req.value,
                            on_socket: None,
                        });
                    }
                }
                Some((req, sock)) = pool.recv() => {
                    self.spawn_holepunch(HolepunchRequest {
                        tid: req.tid,
                        from: req.from,
                        to: req.to,
                        internal: req.internal,
                        target: req.target,
                        value: req.value,
                        on_socket: Some(sock.socket().local_addr()),
                    });
                }
            }
        }
    }

    /// Handles a PEER_HOLEPUNCH message in the background (it waits for the NAT analysis).
    fn spawn_holepunch(&self, req: HolepunchRequest) {
        let is_server_relay = self
            .announced
            .lock()
            .map(|a| a.relays.iter().any(|r| r.relay_address == req.from))
            .unwrap_or(false);
        let holes = self.holepunches.clone();
        tokio::spawn(async move {
            let lookup = |id| holes.lock().ok().and_then(|h| h.get(&id).cloned());
            holepunch::on_server_holepunch(req, lookup, is_server_relay).await;
        });
    }

    async fn on_handshake(&mut self, req: &IncomingRequest) {
        let Some(hs) = req
            .value
            .as_deref()
            .and_then(|v| decode::<Handshake>(v).ok())
        else {
            return;
        };
        if hs.noise.is_empty() {
            return;
        }
        let now = Instant::now();
        self.seen
            .retain(|_, (t, _)| now.duration_since(*t) < HANDSHAKE_CLEAR_WAIT);
        let reply = match self.seen.get(&hs.noise) {
            Some((_, r)) => r.clone(),
            None => {
                let client = hs.peer_address.unwrap_or(req.from);
                let direct = hs.peer_address.is_none();
                let r = match self.add_handshake(&hs.noise, client, req, direct).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!("handshake from {client} refused: {e}");
                        None
                    }
                };
                self.seen.insert(hs.noise.clone(), (now, r.clone()));
                r
            }
        };
        let Some((noise, from_socket)) = reply else {
            return;
        };
        let handle = &self.dht.inner.handle;
        if let (Some(sock), Mode::FROM_RELAY | Mode::FROM_SECOND_RELAY) = (&from_socket, hs.mode) {
            // Answer from the puncher's socket, so the client learns the address punches come from.
            let to = if hs.mode == Mode::FROM_RELAY {
                Some(req.from)
            } else {
                hs.relay_address
            };
            if let Some(to) = to {
                let value = Handshake {
                    mode: Mode::FROM_SERVER,
                    noise,
                    peer_address: hs.peer_address,
                    relay_address: None,
                }
                .to_bytes();
                let _ = socket_pool_relay(sock, req, value, to).await;
            }
            return;
        }
        let opts = ReplyOpts {
            token: Some(false),
            closer_nodes: false,
            to: None,
        };
        let _ = match hs.mode {
            Mode::FROM_CLIENT => handle.reply(
                req,
                Some(
                    Handshake {
                        mode: Mode::REPLY,
                        noise,
                        peer_address: None,
                        relay_address: None,
                    }
                    .to_bytes(),
                ),
                opts,
            ),
            Mode::FROM_RELAY => handle.relay(
                req,
                Some(
                    Handshake {
                        mode: Mode::FROM_SERVER,
                        noise,
                        peer_address: hs.peer_address,
                        relay_address: None,
                    }
                    .to_bytes(),
                ),
                req.from,
            ),
            Mode::FROM_SECOND_RELAY => match hs.relay_address {
                Some(relay) => handle.relay(
                    req,
                    Some(
                        Handshake {
                            mode: Mode::FROM_SERVER,
                            noise,
                            peer_address: hs.peer_address,
                            relay_address: None,
                        }
                        .to_bytes(),
                    ),
                    relay,
                ),
                None => Ok(()),
            },
            _ => Ok(()),
        };
    }

    /// Reads the client's handshake, applies the firewall, sets up the stream and returns our answer
    /// (`None`: stay silent, as the JS does for rejected or broken handshakes).
    async fn add_handshake(
        &mut self,
        noise_msg: &[u8],
        client: SocketAddrV4,
        req: &IncomingRequest,
        direct: bool,
    ) -> Result<Option<HandshakeReply>> {
        let mut noise = NoiseWrap::responder(&self.key_pair)?;
        let mut remote = noise.recv(noise_msg)?;
        let Some(remote_pk) = noise.remote_public_key() else {
            return Ok(None);
        };
        // A client naming us as its relay (a relay's own peers pairing their connection to it through it):
        // we cannot pair a connection through ourselves; the connection is direct or punched as any other.
        if remote
            .relay_through
            .as_ref()
            .is_some_and(|r| r.public_key == self.key_pair.public)
        {
            remote.relay_through = None;
        }
        if (self.firewall)(&remote_pk, &remote) {
            tracing::debug!("firewall rejected {}", hex::encode(remote_pk));
            return Ok(None);
        }
        let error = if remote.version != 1 {
            ErrorCode::VERSION_MISMATCH
        } else if remote.udx.is_none() {
            ErrorCode::ABORTED
        } else {
            ErrorCode::NONE
        };
        let (socket, our_remote) = self.dht.current_socket().await?;
        let mut addresses4 = Vec::new();
        addresses4.extend(our_remote);
        addresses4.extend(local_addresses(self.dht.server_addr()));
        // IPv6 addresses only for a client that offered some (a Rust peer): a JS client's answer stays as
        // the JS server's.
        let v6 = if remote.addresses6.is_empty() || error != ErrorCode::NONE {
            None
        } else {
            self.dht.ipv6_offer().await
        };
        let v6_targets = v6
            .as_ref()
            .map(|(_, ours)| ipv6::probe_targets(&remote.addresses6, ours))
            .unwrap_or_default();
        let v6 = v6.filter(|_| !v6_targets.is_empty());
        let announced = self.announced.lock().map(|a| a.clone()).unwrap_or_default();

        let raw = if error == ErrorCode::NONE {
            Some(self.dht.create_raw_stream()?)
        } else {
            None
        };
        let id = self.next_id;
        self.next_id += 1;
        let our_relay = match (&raw, &self.relay_through) {
            (Some(_), Some(r)) => r
                .select_for(&self.dht)
                .await
                .filter(|k| *k != remote_pk)
                .map(|k| (k, crate::blind_relay::token())),
            _ => None,
        };
        let reply = noise.send(&NoisePayload {
            error,
            firewall: if our_remote.is_some() {
                Firewall::OPEN
            } else {
                Firewall::UNKNOWN
            },
            holepunch: if our_remote.is_some() {
                None
            } else {
                Some(HolepunchInfo {
                    id,
                    relays: announced.relays.clone(),
                })
            },
            addresses4,
            addresses6: v6.as_ref().map(|(_, a)| a.clone()).unwrap_or_default(),
            udx: Some(UdxInfo {
                version: 1,
                reusable_socket: false,
                id: raw.as_ref().map_or(0, |r| u64::from(r.local_id())),
                seq: 0,
            }),
            secret_stream: Some(SecretStreamInfo { version: 1 }),
            relay_through: relay::info(our_relay),
            relay_addresses: if announced.relay_addresses.is_empty() {
                None
            } else {
                Some(announced.relay_addresses.clone())
            },
            ..NoisePayload::default()
        })?;
        let finished = noise.finish()?;
        let (Some(raw), Some(udx)) = (raw, remote.udx) else {
            return Ok(Some((reply, None)));
        };
        let Ok(remote_id) = u32::try_from(udx.id) else {
            return Ok(Some((reply, None)));
        };
        let mut hole: Option<Arc<ServerHole>> = None;
        let mut reply_socket = None;
        if remote.firewall != Firewall::OPEN && !direct && our_remote.is_none() {
            // We are firewalled: set up a puncher (`setupHolepuncher`). On the same LAN as the client the
            // answer still goes out of the DHT socket so the LAN shortcut reaches it.
            let theirs: Vec<SocketAddrV4> = remote
                .addresses4
                .iter()
                .copied()
                .filter(|a| is_private(*a.ip()))
                .collect();
            let lan = client.ip() == req.to.ip()
                && match_address(&local_addresses(self.dht.server_addr()), &theirs).is_some();
            let st = self.dht.inner.handle.state().await?;
            // We told the client we are not reachable: analyse our NAT as a firewalled node.
            let puncher = Holepuncher::new(false, remote.firewall, true);
            let session = PunchSession::start(
                &self.dht.inner.udx,
                self.dht.inner.host,
                puncher,
                Some(self.pool_tx.clone()),
            )
            .await?;
            session.auto_sample(st.nodes.iter().rev().copied().collect());
            if !lan {
                reply_socket = Some(session.main().socket().clone());
            }
            let weak = Arc::downgrade(&session);
            let prepunching = tokio::spawn(async move {
                tokio::time::sleep(HANDSHAKE_INITIAL_TIMEOUT).await;
                if let Some(s) = weak.upgrade() {
                    s.with(|p| p.destroy());
                }
            });
            let h = Arc::new(ServerHole {
                secure: SecurePayload::new(&finished.holepunch_secret),
                session,
                round: Mutex::new(0),
                prepunching: Mutex::new(Some(prepunching)),
                relayed: our_relay.is_some() || remote.relay_through.is_some(),
                random: self.dht.inner.random_punches.clone(),
            });
            if let Ok(mut hs) = self.holepunches.lock() {
                hs.insert(id, h.clone());
            }
            hole = Some(h);
        }

        // `true` once the client's first packet came in (the stream connected, or moved, to it).
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let relay_path = Arc::new(relay::RelayPath::default());
        // Whether the client came over IPv6 (then the stream stays there).
        let on_v6 = Arc::new(AtomicBool::new(false));
        // Where the stream connects over IPv4 if a client offering IPv6 sends nothing in time.
        let mut v4_fallback: Option<(UdxSocket, SocketAddrV4)> = None;
        if let Some((path, _)) = &v6 {
            path.open_towards(&v6_targets);
        }
        let v6_offered = v6.is_some();
        if remote.firewall == Firewall::OPEN || direct {
            // The client is reachable (or talked to us directly): connect now.
            let sock = if direct {
                match req.socket {
                    crate::dht_rpc::node::Socket::Server => self.dht.inner.server_socket.clone(),
                    crate::dht_rpc::node::Socket::Client => self.dht.inner.client_socket.clone(),
                }
            } else {
                socket
            };
            // Both sides offered IPv6 (and no relay): a Rust client. It sends first, over the path it chose;
            // the stream connects to its first packet, or over IPv4 after `ipv6::SERVER_WAIT` (a client
            // waiting for us to reach it). So the connection opens on its final path.
            let v6_first = v6.is_some()
                && relay::plan(true, our_relay, remote.relay_through.as_ref()).is_none();
            if v6_first {
                v4_fallback = Some((sock, client));
            } else {
                raw.connect_via(&sock, remote_id, SocketAddr::V4(client))?;
            }
            // Follow the client to whichever of our sockets its packets arrive on (the JS `onsocket` hook):
            // a server that became reachable after announcing connects from its server socket, while the
            // client connects to the address the DHT saw, our client socket; udx drops packets arriving on
            // another socket than the stream's unless its firewall says otherwise. (Direct wins here, so no
            // relay path can be racing this stream.)
            let on_v6 = on_v6.clone();
            let tx = if v6_first {
                Some(tx)
            } else {
                let _ = tx.send(true);
                None
            };
            raw.set_firewall(move |from, _| {
                let verdict = ipv6::server_verdict(&on_v6, from, remote_id, || {
                    FirewallVerdict::Connect { remote_id }
                });
                if let Some(tx) = &tx {
                    let _ = tx.send(true);
                }
                verdict
            })?;
        } else {
            // Wait for the client's first packet (LAN shortcut, or the client connecting to our address).
            // While the stream runs through a relay this moves it to the client's direct path. Later
            // packets from elsewhere (relay traffic on the old path: the client's retransmits of what it
            // sent through the relay before it moved) are the stream's own and are accepted, as the JS
            // firewall does, without moving the stream again.
            let fired = AtomicBool::new(false);
            let relay_path = relay_path.clone();
            let on_v6 = on_v6.clone();
            raw.set_firewall(move |from, local| {
                let verdict = ipv6::server_verdict(&on_v6, from, remote_id, || {
                    server_stream_verdict(&fired, &relay_path, from, remote_id)
                });
                if matches!(verdict, FirewallVerdict::Connect { .. }) {
                    tracing::debug!("server stream: first packet from {from} on {local}");
                    let _ = tx.send(true);
                }
                verdict
            })?;
        }
        let relay_task = relay::plan(true, our_relay, remote.relay_through.as_ref()).map(
            |(init, key, token)| {
                tokio::spawn(relay::pair(
                    self.dht.clone(),
                    key,
                    init,
                    token,
                    raw.local_id(),
                    self.relay_keep_alive,
                ))
            },
        );
        let dht = self.dht.clone();
        let conns = self.connections.clone();
        let holes = self.holepunches.clone();
        tokio::spawn(async move {
            // Until the client's first packet, or the puncher gave up (or 10 s without one).
            let direct = async {
                match &hole {
                    Some(h) => {
                        let punched = tokio::select! {
                            r = rx.wait_for(|v| *v) => Some(r.is_ok()),
                            () = wait_aborted(&h.session) => None,
                        };
                        match punched {
                            Some(connected) => connected,
                            // The puncher gave up (two random NATs, say), but a client that probed our
                            // IPv6 socket may still come that way.
                            None if v6_offered => {
                                tokio::time::timeout(ipv6::AFTER_ABORT, rx.wait_for(|v| *v))
                                    .await
                                    .is_ok_and(|r| r.is_ok())
                            }
                            None => false,
                        }
                    }
                    None => match &v4_fallback {
                        Some((sock, addr)) => {
                            let _ =
                                tokio::time::timeout(ipv6::SERVER_WAIT, rx.wait_for(|v| *v)).await;
                            raw.remote().is_some()
                                || raw
                                    .connect_via(sock, remote_id, SocketAddr::V4(*addr))
                                    .map_err(|e| tracing::debug!("connecting the stream: {e}"))
                                    .is_ok()
                        }
                        None => {
                            tokio::time::timeout(HANDSHAKE_INITIAL_TIMEOUT, rx.wait_for(|v| *v))
                                .await
                                .is_ok_and(|r| r.is_ok())
                        }
                    },
                }
            };
            let mut link = None;
            let connected = match relay_task {
                None => direct.await,
                Some(mut rt) => {
                    tokio::pin!(direct);
                    tokio::select! {
                        d = &mut direct => {
                            if d {
                                rt.abort();
                                true
                            } else {
                                link = rt.await.ok().and_then(|r| r.map_err(|e| tracing::debug!("relay: {e}")).ok());
                                link.is_some()
                            }
                        }
                        l = &mut rt => {
                            link = l.ok().and_then(|r| r.map_err(|e| tracing::debug!("relay: {e}")).ok());
                            link.is_some() || direct.await
                        }
                    }
                }
            };
            tracing::debug!(
                "server stream wait: connected {connected}, relay {}",
                link.is_some()
            );
            if !connected {
                if let Some(h) = &hole {
                    h.session.with(|p| p.destroy());
                    if let Ok(mut hs) = holes.lock() {
                        hs.remove(&id);
                    }
                }
                raw.destroy();
                return;
            }
            // Relay only if the client did not reach us directly meanwhile.
            let link = link.filter(|_| raw.remote().is_none());
            let relayed_id = raw.local_id();
            if let Some(l) = &link {
                relay_path.set(l.addr);
                if let Err(e) = raw.connect_alongside(&l.control, l.remote_id) {
                    tracing::debug!("connecting through the relay failed: {e}");
                    raw.destroy();
                    return;
                }
                // The client's first direct packet may come to the relay connection's socket: the
                // firewall must see it to move the stream (and it counts the relay's packets).
                let _ = raw.set_firewall_off_path(true);
                if let Ok(mut r) = dht.inner.relayed.lock() {
                    r.insert(relayed_id);
                }
            }
            if link.is_none() {
                // A direct connection follows the client to a new address (its network changed).
                let _ = raw.set_migration(true);
            }
            let control = raw.control();
            let mut conn = dht.secret_stream(raw, false, finished.result);
            // Send our secret-stream header now, as the JS does: a client waiting for our
            // first packet must not depend on the application polling the connection.
            match tokio::time::timeout(
                HANDSHAKE_INITIAL_TIMEOUT,
                tokio::io::AsyncWriteExt::flush(&mut conn),
            )
            .await
            {
                Ok(Ok(())) => {
                    let _ = conns.send(conn);
                }
                _ => tracing::debug!("connection failed before it opened"),
            }
            if let Some(link) = link {
                // Keep punching: the client's first direct packet moves the stream off the relay.
                let moved = async {
                    match &hole {
                        Some(h) => tokio::select! {
                            r = rx.wait_for(|v| *v) => r.is_ok(),
                            () = wait_aborted(&h.session) => false,
                        },
                        None => rx.wait_for(|v| *v).await.is_ok(),
                    }
                };
                let moved = tokio::select! {
                    m = moved => m,
                    _ = control.closed() => false,
                };
                if moved {
                    tracing::debug!("relayed connection moved to a direct path");
                    if let Ok(mut r) = dht.inner.relayed.lock() {
                        r.remove(&relayed_id);
                    }
                    tokio::select! {
                        () = relay::confirm_direct_upgrade(&control, &relay_path) => {
                            tracing::debug!("direct path confirmed, closing the relay connection");
                        }
                        _ = control.closed() => {}
                    }
                } else {
                    let _ = control.closed().await;
                    if let Ok(mut r) = dht.inner.relayed.lock() {
                        r.remove(&relayed_id);
                    }
                }
                drop(link);
            }
            if let Some(h) = &hole {
                h.session.with(|p| p.destroy());
                if let Ok(mut hs) = holes.lock() {
                    hs.remove(&id);
                }
            }
        });
        Ok(Some((reply, reply_socket)))
    }
}

/// The firewall of a server stream waiting for the client's first packet on another socket than the
/// stream's (the JS `firewall` of `_addHandshake`): the first packet not from the relay connects (or moves)
/// the stream to its source; every later one, and every packet from the relay (after a move: the client's
/// retransmits of what it sent through the relay, which JS sends along the old path), is the stream's own
/// and is accepted without moving it. (Rejecting them stalled a JS client's transfer after the move.)
fn server_stream_verdict(
    fired: &AtomicBool,
    relay: &relay::RelayPath,
    from: SocketAddr,
    remote_id: u32,
) -> FirewallVerdict {
    if relay.is_relay_packet(from) || fired.swap(true, Ordering::AcqRel) {
        FirewallVerdict::Accept
    } else {
        FirewallVerdict::Connect { remote_id }
    }
}

/// A task's result, its panic or cancellation as an error.
fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.unwrap_or_else(|e| Err(io::Error::other(e.to_string()).into()))
}

/// Resolves when the session's puncher reports it gave up.
async fn wait_aborted(session: &PunchSession) {
    while let Some(ev) = session.next_event().await {
        if ev == super::holepuncher::PuncherEvent::Aborted {
            return;
        }
    }
}

/// Forwards a handshake answer under the request's tid from a puncher socket (`req.relay(..., { socket })`).
async fn socket_pool_relay(
    sock: &UdxSocket,
    req: &IncomingRequest,
    value: Vec<u8>,
    to: SocketAddrV4,
) -> io::Result<()> {
    super::socket_pool::relay_from(
        sock,
        req.tid,
        req.internal,
        req.command,
        req.target,
        value,
        to,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_stream_accepts_relay_traffic_after_a_move() {
        let relay: SocketAddr = "198.18.0.2:4000".parse().expect("addr");
        let client: SocketAddr = "198.18.0.14:5000".parse().expect("addr");
        let path = relay::RelayPath::default();
        path.set(relay);
        let fired = AtomicBool::new(false);
        // Relay traffic never moves the stream, before or after the move, and is never dropped.
        assert_eq!(
            server_stream_verdict(&fired, &path, relay, 7),
            FirewallVerdict::Accept
        );
        // The client's first direct packet moves the stream.
        assert_eq!(
            server_stream_verdict(&fired, &path, client, 7),
            FirewallVerdict::Connect { remote_id: 7 }
        );
        // Its retransmits along the relay are accepted (and counted for confirmDirectUpgrade).
        for _ in 0..3 {
            assert_eq!(
                server_stream_verdict(&fired, &path, relay, 7),
                FirewallVerdict::Accept
            );
        }
        assert_eq!(path.packets(), 4);
        // Later packets from elsewhere do not move it again.
        let other: SocketAddr = "198.18.0.14:6000".parse().expect("addr");
        assert_eq!(
            server_stream_verdict(&fired, &path, other, 7),
            FirewallVerdict::Accept
        );
        // Without a relay the first packet connects.
        let unrelayed = relay::RelayPath::default();
        assert!(!unrelayed.is_set());
        assert_eq!(
            server_stream_verdict(&AtomicBool::new(false), &unrelayed, relay, 9),
            FirewallVerdict::Connect { remote_id: 9 }
        );
    }

    #[test]
    fn address_helpers() {
        let a = |s: &str| s.parse::<SocketAddrV4>().expect("addr");
        assert!(is_bogon(Ipv4Addr::LOCALHOST));
        assert!(is_reserved(Ipv4Addr::new(0, 0, 0, 0)));
        assert!(!is_reserved(Ipv4Addr::LOCALHOST));
        assert!(!is_bogon(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(local_addresses(a("127.0.0.1:5")), vec![a("127.0.0.1:5")]);
        let mine = [a("192.168.122.238:1")];
        assert_eq!(
            match_address(&mine, &[a("192.168.0.23:2"), a("192.168.122.1:3")]),
            Some(a("192.168.122.1:3"))
        );
        assert_eq!(match_address(&mine, &[a("10.0.0.1:2")]), None);
        assert_eq!(
            match_address(&mine, &[a("10.0.0.1:2"), a("192.1.1.1:4")]),
            Some(a("192.1.1.1:4"))
        );
    }
}
