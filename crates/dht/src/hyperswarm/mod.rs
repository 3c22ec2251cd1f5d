//! Compatibility with JS `hyperswarm` 4 (4.17.2): find peers by topic on HyperDHT and keep one encrypted
//! connection per peer.
//!
//! What it does, as `index.js` and `lib/*` do:
//!
//! - [`Hyperswarm::join`] a 32-byte topic. As a **server** the swarm listens on its key pair (one HyperDHT
//!   server for all topics, started on the first server join) and announces itself under the topic; as a
//!   **client** it looks the topic up and connects to the peers found. Each topic's discovery refreshes every
//!   10 minutes plus up to 2 minutes of jitter (`REFRESH_INTERVAL`, `RANDOM_JITTER`); [`Discovery::flushed`]
//!   waits for the current refresh (announce and lookup).
//! - Connections (ours to servers, and servers' from clients) come out of [`Hyperswarm::next_connection`] with
//!   a [`PeerInfo`]. There is at most one per peer public key: when a peer connects while we already have (or
//!   are opening) a connection with it, [`keep_new_connection`] decides which survives, the same way on both
//!   ends.
//! - Found peers wait in a priority queue (`lib/peer-info.js`); at most `max_parallel` client connections are
//!   opened at once, and none while `max_peers` connections exist. A failed or closed client connection is
//!   retried after a backoff chosen by its attempts ([`RetryTimer`], [`Backoffs`]), while one of its topics is still
//!   joined.
//! - A firewall callback rejects peers (they are banned from then on); our own key is always rejected.
//! - [`Hyperswarm::flush`] waits until every discovery is flushed and every peer queued by then was tried.
//! - [`Hyperswarm::leave`] stops a topic's discovery and unannounces it; [`Hyperswarm::destroy`] leaves every
//!   topic, closes the server (unannouncing its key), closes every connection and destroys the DHT node.
//! - [`Hyperswarm::join_peer`] keeps dialling one public key directly, whatever the topics.
//! - Blind relays ([`SwarmOpts::relay_through`], `relayThrough`): a [`SwarmRelay`] chooses a relay for each
//!   connection, ours and the server's, from `force` (the peer's last dial failed in a way only a relay
//!   fixes: `HOLEPUNCH_ABORTED`, `HOLEPUNCH_DOUBLE_RANDOMIZED_NATS`, `CANNOT_HOLEPUNCH`,
//!   `REMOTE_NOT_HOLEPUNCHABLE`; the peer is then redialled soon, its attempts reset) and whether our NAT
//!   randomizes ports. A key relays when forced or randomized, as in the JS. The relayed connection is handed
//!   out at once and moves to a punched path when one opens (HyperDHT's `relayThrough`).
//! - When the machine's network changes (or it wakes up), the node re-bootstraps, the server re-announces
//!   its key and every topic's discovery refreshes at once (the JS `_handleNetworkChange`).
//!   [`Hyperswarm::suspend`] closes every connection, pauses the discoveries and suspends the node;
//!   [`Hyperswarm::resume`] resumes it and refreshes every topic.
//!
//! Structure: the connection manager is sans-IO ([`SwarmCore`]: events in, [`Action`]s out, clock passed in),
//! driven by one task per swarm that owns the dials and the connections' close watchers; each topic's
//! discovery is a task of its own; the HyperDHT server runs on another. Connections are handed out as
//! [`SwarmConnection`]s, which count traffic for the tie-break and tell the swarm when they are dropped.
//!
//! Public surface: [`Hyperswarm`] with [`SwarmOpts`], [`Discovery`], [`PeerInfo`] and [`SwarmConnection`];
//! the sans-IO parts under their own names ([`SwarmCore`], [`PeerQueue`], [`RetryTimer`]); the submodules
//! are private.
//!
//! Differences from the JS: peers found by a query are dialled when the query ends, not as replies stream in;
//! an incoming duplicate that loses the tie-break does not make us send a keep-alive on the surviving
//! connection; "established" (`rawBytesRead > 0 && rawBytesWritten > 0` in the JS) is judged from the
//! application's traffic, or from an age past the keep-alive interval. Not implemented: suspend/resume, the `limit` option of a join, the first announce's clearing of
//! stale announcements (`clear`), per-connection relay address hints (HyperDHT's `connect` here always looks the
//! peer up), and the `update`/`ban` events (see [`Hyperswarm::stats`]).

mod connection;
mod core;
mod peer_info;
mod retry_timer;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot, watch, OnceCell};
use tokio::task::{AbortHandle, JoinHandle};

use crate::crypto::KeyPair;
use crate::hyperdht::messages::{NoisePayload, Peer};
use crate::hyperdht::{
    ConnectOpts, Connection, HyperDht, HyperDhtError, HyperDhtOpts, LookupResult, RelayThrough,
    Server,
};
use crate::udx::UdxStreamControl;

pub use self::core::{Action, CoreConfig, CoreFirewall, SwarmConn, SwarmCore};
pub use connection::{
    keep_new_connection, ConnectionGuard, SwarmConnection, Traffic, ESTABLISHED_AFTER,
};
pub use peer_info::{
    PeerQueue, PeerState, Priority, HIGH_PRIORITY, LOW_PRIORITY, MIN_CONNECTION_TIME,
    NORMAL_PRIORITY, VERY_HIGH_PRIORITY, VERY_LOW_PRIORITY,
};
pub use retry_timer::{Backoff, Backoffs, BulkTimer, RetryTimer, BACKOFF_JITTER};

/// Default `maxPeers`.
pub const MAX_PEERS: usize = 64;
/// Default `maxParallel`: client connections being opened at once.
pub const MAX_PARALLEL: usize = 3;
/// A discovery refreshes this often (`REFRESH_INTERVAL`)...
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// ... plus up to this much (`RANDOM_JITTER`).
pub const RANDOM_JITTER: Duration = Duration::from_secs(120);

/// `firewall(remotePublicKey, payload)`: true **rejects** the peer (and bans it). The payload is the peer's
/// handshake payload for incoming connections, `None` before we connect out.
pub type Firewall = Arc<dyn Fn(&[u8; 32], Option<&NoisePayload>) -> bool + Send + Sync>;

/// The swarm's `relayThrough`: which blind relay a connection pairs through.
#[derive(Clone)]
pub enum SwarmRelay {
    /// This relay, when forced (the last dial failed in a way only a relay fixes) or when our NAT
    /// randomizes ports (the JS `(force, swarm) => force || swarm.dht.randomized ? key : null`).
    Key([u8; 32]),
    /// Asked for each connection with `(force, randomized)`; `None` connects without a relay. A server's
    /// connections ask with `force` false.
    Select(Arc<dyn Fn(bool, bool) -> Option<[u8; 32]> + Send + Sync>),
}

impl SwarmRelay {
    /// The relay for one connection.
    pub fn select(&self, force: bool, randomized: bool) -> Option<[u8; 32]> {
        match self {
            Self::Key(k) => (force || randomized).then_some(*k),
            Self::Select(f) => f(force, randomized),
        }
    }
}

impl std::fmt::Debug for SwarmRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(k) => f.debug_tuple("Key").field(&hex::encode(k)).finish(),
            Self::Select(_) => f.write_str("Select(..)"),
        }
    }
}

impl From<[u8; 32]> for SwarmRelay {
    fn from(k: [u8; 32]) -> Self {
        Self::Key(k)
    }
}

/// Whether a dial error makes the next dial of that peer go through the relay (`shouldForceRelaying`).
pub fn should_force_relaying(e: &HyperDhtError) -> bool {
    matches!(
        e,
        HyperDhtError::HolepunchAborted(_)
            | HyperDhtError::HolepunchDoubleRandomizedNats
            | HyperDhtError::CannotHolepunch
            | HyperDhtError::RemoteNotHolepunchable
    )
}

/// Errors of the swarm.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The swarm was destroyed.
    #[error("swarm destroyed")]
    Destroyed,
    /// A join or refresh with neither `server` nor `client`.
    #[error("cannot refresh with neither client nor server option")]
    NeitherClientNorServer,
    /// The topic was left (or the swarm destroyed) since this discovery was made.
    #[error("peer discovery is destroyed")]
    DiscoveryDestroyed,
    /// The DHT failed.
    #[error(transparent)]
    Dht(#[from] HyperDhtError),
}

/// Options of [`Hyperswarm::new`] (the JS constructor options).
#[derive(Clone)]
pub struct SwarmOpts {
    /// The swarm's key pair: servers listen on it, connections are made with it (random by default).
    pub key_pair: Option<KeyPair>,
    /// At most this many connections (`maxPeers`) before no more client connections are opened.
    pub max_peers: usize,
    /// Client connections opened at once (`maxParallel`).
    pub max_parallel: usize,
    /// At most this many client connections (`maxClientConnections`).
    pub max_client_connections: usize,
    /// Rejects peers (`firewall`); accepts everyone by default.
    pub firewall: Option<Firewall>,
    /// Retry backoffs (`backoffs`); the JS defaults, randomised, when `None`.
    pub backoffs: Option<Backoffs>,
    /// Extra random delay of each backoff timer (`jitter`).
    pub jitter: Duration,
    /// How often discoveries refresh, before jitter ([`REFRESH_INTERVAL`]).
    pub refresh_interval: Duration,
    /// Random extra refresh delay ([`RANDOM_JITTER`]).
    pub refresh_jitter: Duration,
    /// Pair connections through a blind relay (`relayThrough`): ours, and those of our server.
    pub relay_through: Option<SwarmRelay>,
}

impl Default for SwarmOpts {
    fn default() -> Self {
        Self {
            key_pair: None,
            max_peers: MAX_PEERS,
            max_parallel: MAX_PARALLEL,
            max_client_connections: usize::MAX,
            firewall: None,
            backoffs: None,
            jitter: retry_timer::BACKOFF_JITTER,
            refresh_interval: REFRESH_INTERVAL,
            refresh_jitter: RANDOM_JITTER,
            relay_through: None,
        }
    }
}

impl std::fmt::Debug for SwarmOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmOpts")
            .field(
                "key_pair",
                &self.key_pair.as_ref().map(|k| hex::encode(k.public)),
            )
            .field("max_peers", &self.max_peers)
            .field("max_parallel", &self.max_parallel)
            .field("max_client_connections", &self.max_client_connections)
            .field("firewall", &self.firewall.is_some())
            .field("backoffs", &self.backoffs)
            .field("jitter", &self.jitter)
            .field("refresh_interval", &self.refresh_interval)
            .field("refresh_jitter", &self.refresh_jitter)
            .field("relay_through", &self.relay_through)
            .finish()
    }
}

/// How to join a topic (`swarm.join(topic, { server, client })`); both by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinOpts {
    /// Announce the topic and accept connections.
    pub server: bool,
    /// Look the topic up and connect to the peers found.
    pub client: bool,
}

impl Default for JoinOpts {
    fn default() -> Self {
        Self {
            server: true,
            client: true,
        }
    }
}

/// What the swarm knew of a peer when it handed out a connection (a snapshot of JS `PeerInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's public key.
    pub public_key: [u8; 32],
    /// The DHT nodes its announcement came from.
    pub relay_addresses: Vec<SocketAddrV4>,
    /// The topics it was found under (empty for a peer that connected to us unannounced).
    pub topics: Vec<[u8; 32]>,
    /// True when we opened the connection (we are the client).
    pub client: bool,
}

/// Counters (`swarm.stats` and a few sizes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwarmStats {
    /// Open connections (`swarm.connections.size`).
    pub connections: usize,
    /// Client connections being opened (`swarm.connecting`).
    pub connecting: usize,
    /// Known peers (`swarm.peers.size`).
    pub peers: usize,
    /// Peers waiting in the queue.
    pub queued: usize,
    /// Client connections attempted.
    pub client_attempted: u64,
    /// Client connections opened.
    pub client_opened: u64,
    /// Client connections closed (opened or not).
    pub client_closed: u64,
    /// Server connections opened.
    pub server_opened: u64,
    /// Server connections closed.
    pub server_closed: u64,
    /// Incoming connections dropped as duplicates of an existing one.
    pub duplicates_dropped: u64,
    /// Existing connections (or attempts) closed for an incoming duplicate that won the tie-break.
    pub duplicates_replaced: u64,
    /// Peers banned by the firewall.
    pub banned_peers: u64,
}

enum Event {
    Peer {
        topic: [u8; 32],
        peer: Peer,
    },
    ClientDone {
        id: u64,
        result: Result<Connection, HyperDhtError>,
    },
    Server(Connection),
    Closed(u64),
    Banned([u8; 32]),
    JoinPeer([u8; 32]),
    LeavePeer([u8; 32]),
    TopicJoined([u8; 32]),
    TopicLeft([u8; 32]),
    Flush(oneshot::Sender<bool>),
    Stats(oneshot::Sender<SwarmStats>),
    Destroy(oneshot::Sender<()>),
    /// `swarm.suspend()`: close every connection.
    Suspend(oneshot::Sender<()>),
    Shutdown,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mode {
    server: bool,
    client: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct RefreshState {
    requested: u64,
    done: u64,
    ok: bool,
}

struct TopicState {
    sessions: HashMap<u64, JoinOpts>,
    mode: watch::Sender<Mode>,
    refresh: Arc<watch::Sender<RefreshState>>,
    announced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl TopicState {
    fn mode(&self) -> Mode {
        Mode {
            server: self.sessions.values().any(|s| s.server),
            client: self.sessions.values().any(|s| s.client),
        }
    }

    /// Applies the sessions' mode and asks for a refresh unless one with that mode is under way.
    fn refresh(&self) {
        let mode = self.mode();
        let changed = *self.mode.borrow() != mode;
        if changed {
            self.mode.send_replace(mode);
        }
        self.refresh.send_modify(|r| {
            if changed || r.done >= r.requested {
                r.requested += 1;
            }
        });
    }
}

type Topics = Arc<Mutex<HashMap<[u8; 32], TopicState>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent; a panic elsewhere must not wedge the swarm.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct FirewallCtx {
    own: [u8; 32],
    banned: Mutex<HashSet<[u8; 32]>>,
    user: Option<Firewall>,
    events: mpsc::UnboundedSender<Event>,
}

impl FirewallCtx {
    /// `_handleFirewall` for an incoming connection: true rejects (and bans, telling the core).
    fn rejects(&self, remote: &[u8; 32], payload: &NoisePayload) -> bool {
        let rejected = self.check(remote, Some(payload));
        if rejected {
            let _ = self.events.send(Event::Banned(*remote));
        }
        rejected
    }

    /// `_handleFirewall` before we dial: the core bans the peer itself.
    fn rejects_outgoing(&self, remote: &[u8; 32]) -> bool {
        self.check(remote, None)
    }

    fn check(&self, remote: &[u8; 32], payload: Option<&NoisePayload>) -> bool {
        if *remote == self.own || lock(&self.banned).contains(remote) {
            return true;
        }
        let rejected = self.user.as_ref().is_some_and(|f| f(remote, payload));
        if rejected {
            lock(&self.banned).insert(*remote);
        }
        rejected
    }
}

enum ServerCtl {
    Relays(oneshot::Sender<Vec<SocketAddrV4>>),
    Close(oneshot::Sender<()>),
}

struct ServerHandle {
    ctl: mpsc::UnboundedSender<ServerCtl>,
}

impl ServerHandle {
    async fn relay_addresses(&self) -> Vec<SocketAddrV4> {
        let (tx, rx) = oneshot::channel();
        if self.ctl.send(ServerCtl::Relays(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.ctl.send(ServerCtl::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn server_task(
    mut server: Server,
    events: mpsc::UnboundedSender<Event>,
    mut ctl: mpsc::UnboundedReceiver<ServerCtl>,
) {
    loop {
        tokio::select! {
            conn = server.accept() => match conn {
                Some(conn) => {
                    if events.send(Event::Server(conn)).is_err() {
                        break;
                    }
                }
                None => break,
            },
            msg = ctl.recv() => match msg {
                Some(ServerCtl::Relays(tx)) => {
                    let _ = tx.send(server.relay_addresses());
                }
                Some(ServerCtl::Close(tx)) => {
                    server.close().await;
                    let _ = tx.send(());
                    return;
                }
                None => break,
            },
        }
    }
    server.close().await;
}

struct Shared {
    dht: HyperDht,
    key_pair: KeyPair,
    events: mpsc::UnboundedSender<Event>,
    connections: tokio::sync::Mutex<mpsc::UnboundedReceiver<(SwarmConnection, PeerInfo)>>,
    topics: Topics,
    server: OnceCell<ServerHandle>,
    firewall: Arc<FirewallCtx>,
    destroyed: AtomicBool,
    suspended: watch::Sender<bool>,
    next_session: AtomicU64,
    refresh_interval: Duration,
    refresh_jitter: Duration,
    relay_through: Option<SwarmRelay>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for (_, t) in lock(&self.topics).drain() {
            t.task.abort();
        }
        let _ = self.events.send(Event::Shutdown);
    }
}

impl Shared {
    /// `swarm.listen()`: the swarm's server, listening on its key pair (started once).
    async fn listening(&self) -> Result<&ServerHandle, HyperDhtError> {
        self.server
            .get_or_try_init(|| async {
                let fw = self.firewall.clone();
                let mut server = self
                    .dht
                    .create_server(move |remote, payload| fw.rejects(remote, payload));
                if let Some(relay) = self.relay_through.clone() {
                    // A server's connections are never forced (`_maybeRelayConnection(undefined)`).
                    server.set_relay_through(Some(RelayThrough::Randomized(Arc::new(
                        move |randomized| relay.select(false, randomized),
                    ))));
                }
                server.listen(self.key_pair.clone()).await?;
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(server_task(server, self.events.clone(), rx));
                Ok(ServerHandle { ctl: tx })
            })
            .await
    }

    /// One discovery refresh (`PeerDiscovery._refresh`): announce (server) or look up (client only), and hand
    /// the peers found to the swarm as each node's reply arrives when a client (as the JS lookup stream
    /// does: dialing starts while the query still runs). True when the query succeeded.
    async fn refresh_topic(&self, topic: &[u8; 32], mode: Mode, announced: &AtomicBool) -> bool {
        let (found_tx, mut found_rx) = mpsc::unbounded_channel::<LookupResult>();
        let query = async {
            if mode.server {
                if let Some(lan) = self.dht.lan() {
                    // Answer LAN queries for the topic at once, not after the DHT announce (which, with no
                    // DHT reachable, takes until its queries time out).
                    lan.advertise(*topic, Some(self.key_pair.public));
                }
                let server = match self.listening().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!("hyperswarm: listen failed: {e}");
                        drop(found_tx);
                        return None;
                    }
                };
                let relays = server.relay_addresses().await;
                announced.store(true, Ordering::Release);
                Some(
                    self.dht
                        .announce_and_lookup_streaming(topic, &self.key_pair, &relays, found_tx)
                        .await,
                )
            } else {
                let found = self.dht.lookup_streaming(topic, found_tx).await;
                if announced.swap(false, Ordering::AcqRel) {
                    let _ = self.dht.unannounce(topic, &self.key_pair).await;
                }
                Some(found)
            }
        };
        // Ends when the query drops its sender (it is moved into the query, so also on an early return).
        let forward = async {
            while let Some(result) = found_rx.recv().await {
                if mode.client {
                    for peer in result.peers {
                        let _ = self.events.send(Event::Peer {
                            topic: *topic,
                            peer,
                        });
                    }
                }
            }
        };
        // A server and client join looks the topic up on the LAN at once too: its DHT lookup waits for the
        // server to listen (announced first), which takes until the DHT's queries time out when no DHT is
        // reachable. (A client-only lookup asks the LAN itself.)
        let early_lan = async {
            let Some(lan) = self.dht.lan().filter(|_| mode.server && mode.client) else {
                return;
            };
            let mut rx = lan.query(*topic);
            while let Some(f) = rx.recv().await {
                match f.public_key {
                    Some(public_key) if public_key != self.key_pair.public => {
                        let _ = self.events.send(Event::Peer {
                            topic: *topic,
                            peer: Peer {
                                public_key,
                                relay_addresses: Vec::new(),
                            },
                        });
                    }
                    _ => {}
                }
            }
        };
        let (found, (), ()) = tokio::join!(query, forward, early_lan);
        match found {
            Some(Ok(_)) => true,
            Some(Err(e)) => {
                tracing::debug!("hyperswarm: refresh of {} failed: {e}", hex::encode(topic));
                false
            }
            None => false,
        }
    }
}

async fn discovery_task(
    shared: Weak<Shared>,
    topic: [u8; 32],
    mut mode: watch::Receiver<Mode>,
    refresh: Arc<watch::Sender<RefreshState>>,
    announced: Arc<AtomicBool>,
    mut suspended: watch::Receiver<bool>,
) {
    let mut requests = refresh.subscribe();
    // The joiner sets the mode and asks for the first refresh right after spawning us.
    while requests.borrow_and_update().requested == 0 {
        if requests.changed().await.is_err() {
            return;
        }
    }
    loop {
        // No discovery while suspended (`PeerDiscovery.suspend`); `resume` asks for a refresh.
        if suspended.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let requested = refresh.borrow().requested;
        let m = *mode.borrow_and_update();
        let delay = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let ok = shared.refresh_topic(&topic, m, &announced).await;
            refresh.send_modify(|r| {
                r.done = r.done.max(requested);
                r.ok = ok;
            });
            let jitter = shared.refresh_jitter.as_millis() as u64;
            shared.refresh_interval
                + Duration::from_millis(rand::thread_rng().gen_range(0..=jitter))
        };
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            if requests.borrow_and_update().requested > requested {
                break;
            }
            tokio::select! {
                _ = &mut sleep => {
                    refresh.send_modify(|r| r.requested += 1);
                    break;
                }
                r = requests.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Asks every topic's discovery for a refresh now.
fn refresh_all(shared: &Shared) {
    for t in lock(&shared.topics).values() {
        t.refresh();
    }
}

/// `_handleNetworkChange`: once the node re-bootstrapped after a network change (or a wake-up), refresh
/// every topic (the node's server re-announces its key by itself).
async fn network_task(
    shared: Weak<Shared>,
    mut events: tokio::sync::broadcast::Receiver<crate::hyperdht::NetworkEvent>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(crate::hyperdht::NetworkEvent::Rebootstrapped) | Err(RecvError::Lagged(_)) => {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                if !*shared.suspended.borrow() && !shared.destroyed.load(Ordering::Acquire) {
                    tracing::debug!("hyperswarm: network changed, refreshing every topic");
                    refresh_all(&shared);
                }
            }
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// A Hyperswarm (JS `new Hyperswarm(opts)`). Cheap to clone; clones share the swarm.
#[derive(Clone)]
pub struct Hyperswarm {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hyperswarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hyperswarm")
            .field("public_key", &hex::encode(self.shared.key_pair.public))
            .field("topics", &lock(&self.shared.topics).len())
            .finish_non_exhaustive()
    }
}

/// One join of a topic (JS `PeerDiscoverySession`): refresh it, wait for it, or destroy it.
#[derive(Debug)]
pub struct Discovery {
    swarm: Hyperswarm,
    topic: [u8; 32],
    session: u64,
}

impl Hyperswarm {
    /// A swarm on a new HyperDHT node bound with `dht_opts` (JS `new Hyperswarm({ bootstrap, ... })`).
    pub async fn bind(dht_opts: HyperDhtOpts, opts: SwarmOpts) -> Result<Self, SwarmError> {
        let dht = HyperDht::bind(dht_opts).await?;
        Ok(Self::new(dht, opts))
    }

    /// A swarm on an existing node (JS `new Hyperswarm({ dht })`). [`Hyperswarm::destroy`] destroys the node
    /// too, as the JS does.
    pub fn new(dht: HyperDht, opts: SwarmOpts) -> Self {
        let key_pair = opts.key_pair.clone().unwrap_or_else(KeyPair::generate);
        let (events, rx) = mpsc::unbounded_channel();
        let (out, connections) = mpsc::unbounded_channel();
        let firewall = Arc::new(FirewallCtx {
            own: key_pair.public,
            banned: Mutex::new(HashSet::new()),
            user: opts.firewall.clone(),
            events: events.clone(),
        });
        let topics: Topics = Arc::new(Mutex::new(HashMap::new()));
        let mut rng = StdRng::from_entropy();
        let backoffs = opts.backoffs.unwrap_or_else(|| Backoffs::random(&mut rng));
        let timer = RetryTimer::new(backoffs, opts.jitter, &mut rng);
        let outgoing_firewall = firewall.clone();
        let core = SwarmCore::new(
            CoreConfig {
                own_key: key_pair.public,
                max_peers: opts.max_peers,
                max_parallel: opts.max_parallel,
                max_client_connections: opts.max_client_connections,
            },
            Box::new(move |key| outgoing_firewall.rejects_outgoing(key)),
            timer,
            rng,
        );
        let actor = Actor {
            core,
            dht: dht.clone(),
            key_pair: key_pair.clone(),
            events: events.clone(),
            relay_through: opts.relay_through.clone(),
            out: Some(out),
            dials: HashMap::new(),
            controls: HashMap::new(),
            flushes: HashMap::new(),
            next_flush: 0,
        };
        tokio::spawn(actor.run(rx));
        let network = dht.network_events();
        let shared = Arc::new(Shared {
            dht,
            key_pair,
            events,
            connections: tokio::sync::Mutex::new(connections),
            topics,
            server: OnceCell::new(),
            firewall,
            destroyed: AtomicBool::new(false),
            suspended: watch::channel(false).0,
            next_session: AtomicU64::new(0),
            refresh_interval: opts.refresh_interval,
            refresh_jitter: opts.refresh_jitter,
            relay_through: opts.relay_through,
        });
        tokio::spawn(network_task(Arc::downgrade(&shared), network));
        Self { shared }
    }

    /// Suspends the swarm (`swarm.suspend()`): closes every connection, pauses every topic's discovery
    /// and suspends the DHT node (its server unannounces). Nothing is dialled until [`Self::resume`].
    pub async fn suspend(&self) -> Result<(), SwarmError> {
        self.check_alive()?;
        if self.shared.suspended.send_replace(true) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self.shared.events.send(Event::Suspend(tx)).is_ok() {
            let _ = rx.await;
        }
        self.shared.dht.suspend().await?;
        Ok(())
    }

    /// Resumes a suspended swarm (`swarm.resume()`): the node re-bootstraps, the server re-announces, and
    /// every topic refreshes (announce and lookup), so peers are found and dialled again.
    pub async fn resume(&self) -> Result<(), SwarmError> {
        self.check_alive()?;
        if !*self.shared.suspended.borrow() {
            return Ok(());
        }
        self.shared.dht.resume().await?;
        self.shared.suspended.send_replace(false);
        refresh_all(&self.shared);
        Ok(())
    }

    /// Whether the swarm is suspended.
    pub fn is_suspended(&self) -> bool {
        *self.shared.suspended.borrow()
    }

    /// The swarm's key pair.
    pub fn key_pair(&self) -> &KeyPair {
        &self.shared.key_pair
    }

    /// The DHT node.
    pub fn dht(&self) -> &HyperDht {
        &self.shared.dht
    }

    fn check_alive(&self) -> Result<(), SwarmError> {
        if self.shared.destroyed.load(Ordering::Acquire) {
            Err(SwarmError::Destroyed)
        } else {
            Ok(())
        }
    }

    /// Joins `topic` (`swarm.join(topic, opts)`): starts (or adds a session to) its discovery. Returns at
    /// once; [`Discovery::flushed`] waits for the first announce/lookup.
    pub fn join(&self, topic: [u8; 32], opts: JoinOpts) -> Result<Discovery, SwarmError> {
        self.check_alive()?;
        if !opts.server && !opts.client {
            return Err(SwarmError::NeitherClientNorServer);
        }
        let session = self.shared.next_session.fetch_add(1, Ordering::Relaxed);
        let mut topics = lock(&self.shared.topics);
        let state = topics.entry(topic).or_insert_with(|| {
            let _ = self.shared.events.send(Event::TopicJoined(topic));
            let (mode_tx, mode_rx) = watch::channel(Mode::default());
            let refresh = Arc::new(watch::channel(RefreshState::default()).0);
            let announced = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(discovery_task(
                Arc::downgrade(&self.shared),
                topic,
                mode_rx,
                refresh.clone(),
                announced.clone(),
                self.shared.suspended.subscribe(),
            ));
            TopicState {
                sessions: HashMap::new(),
                mode: mode_tx,
                refresh,
                announced,
                task,
            }
        });
        state.sessions.insert(session, opts);
        state.refresh();
        Ok(Discovery {
            swarm: self.clone(),
            topic,
            session,
        })
    }

    /// Leaves `topic` (`swarm.leave(topic)`): ends every session of it, stops its discovery and unannounces
    /// it. Peers found under it are no longer retried (connections stay).
    pub async fn leave(&self, topic: &[u8; 32]) {
        let Some(state) = lock(&self.shared.topics).remove(topic) else {
            return;
        };
        let _ = self.shared.events.send(Event::TopicLeft(*topic));
        state.task.abort();
        let _ = state.task.await;
        if state.announced.load(Ordering::Acquire) {
            let _ = self
                .shared
                .dht
                .unannounce(topic, &self.shared.key_pair)
                .await;
        }
    }

    /// The topics joined.
    pub fn topics(&self) -> Vec<[u8; 32]> {
        lock(&self.shared.topics).keys().copied().collect()
    }

    /// Waits until every discovery is flushed and every peer queued by then has been tried
    /// (`swarm.flush()`). False when the swarm is destroyed meanwhile.
    pub async fn flush(&self) -> bool {
        let waits: Vec<watch::Receiver<RefreshState>> = lock(&self.shared.topics)
            .values()
            .map(|t| t.refresh.subscribe())
            .collect();
        for rx in waits {
            wait_refreshed(rx).await;
        }
        let (tx, rx) = oneshot::channel();
        if self.shared.events.send(Event::Flush(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The next connection and what the swarm knew of its peer (JS `'connection'` event); `None` once the
    /// swarm is destroyed. Connections not taken wait here, open.
    pub async fn next_connection(&self) -> Option<(SwarmConnection, PeerInfo)> {
        self.shared.connections.lock().await.recv().await
    }

    /// Counters and sizes.
    pub async fn stats(&self) -> SwarmStats {
        let (tx, rx) = oneshot::channel();
        if self.shared.events.send(Event::Stats(tx)).is_err() {
            return SwarmStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Connects to `public_key` directly and keeps reconnecting, whatever the topics (`swarm.joinPeer`).
    pub fn join_peer(&self, public_key: [u8; 32]) {
        let _ = self.shared.events.send(Event::JoinPeer(public_key));
    }

    /// Stops [`Self::join_peer`]'s reconnecting (`swarm.leavePeer`); an open connection stays.
    pub fn leave_peer(&self, public_key: [u8; 32]) {
        let _ = self.shared.events.send(Event::LeavePeer(public_key));
    }

    /// Starts listening now (`swarm.listen()`; a server join does it anyway).
    pub async fn listen(&self) -> Result<(), SwarmError> {
        self.check_alive()?;
        self.shared.listening().await?;
        Ok(())
    }

    /// Destroys the swarm (`swarm.destroy()`): leaves every topic (unannouncing), closes the server
    /// (unannouncing its key), closes every connection, fails pending flushes and destroys the DHT node.
    pub async fn destroy(&self) {
        if self.shared.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        for topic in self.topics() {
            self.leave(&topic).await;
        }
        if let Some(server) = self.shared.server.get() {
            server.close().await;
        }
        let (tx, rx) = oneshot::channel();
        if self.shared.events.send(Event::Destroy(tx)).is_ok() {
            let _ = rx.await;
        }
        // Connections nobody took are destroyed already: drop them (a caller waiting in `next_connection`
        // gets them, then `None`).
        if let Ok(mut waiting) = self.shared.connections.try_lock() {
            while waiting.try_recv().is_ok() {}
        }
        self.shared.dht.destroy().await;
    }
}

async fn wait_refreshed(mut rx: watch::Receiver<RefreshState>) -> bool {
    let target = rx.borrow_and_update().requested;
    loop {
        {
            let r = rx.borrow_and_update();
            if r.done >= target {
                return r.ok;
            }
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

impl Discovery {
    /// The topic.
    pub fn topic(&self) -> &[u8; 32] {
        &self.topic
    }

    /// Waits for the discovery's current refresh (announce and/or lookup) to finish
    /// (`discovery.flushed()`); true when it succeeded, false when it failed or the topic was left.
    pub async fn flushed(&self) -> bool {
        let rx = match lock(&self.swarm.shared.topics).get(&self.topic) {
            Some(t) => t.refresh.subscribe(),
            None => return false,
        };
        wait_refreshed(rx).await
    }

    /// Changes this session's mode and refreshes now (`session.refresh({ server, client })`); returns when
    /// the refresh is done, with its success.
    pub async fn refresh(&self, opts: JoinOpts) -> Result<bool, SwarmError> {
        if !opts.server && !opts.client {
            return Err(SwarmError::NeitherClientNorServer);
        }
        {
            let mut topics = lock(&self.swarm.shared.topics);
            let state = topics
                .get_mut(&self.topic)
                .filter(|t| t.sessions.contains_key(&self.session))
                .ok_or(SwarmError::DiscoveryDestroyed)?;
            state.sessions.insert(self.session, opts);
            state.refresh();
        }
        Ok(self.flushed().await)
    }

    /// Ends this session (`session.destroy()`): the last session of a topic leaves it; otherwise, when no
    /// server session remains, the next refresh unannounces.
    pub async fn destroy(self) {
        let last = {
            let mut topics = lock(&self.swarm.shared.topics);
            match topics.get_mut(&self.topic) {
                Some(state) if state.sessions.contains_key(&self.session) => {
                    state.sessions.remove(&self.session);
                    if state.sessions.is_empty() {
                        true
                    } else {
                        if !state.mode().server && state.announced.load(Ordering::Acquire) {
                            state.refresh();
                        }
                        false
                    }
                }
                _ => false,
            }
        };
        if last {
            self.swarm.leave(&self.topic).await;
        }
    }
}

/// Drives [`SwarmCore`] on one task: feeds it [`Event`]s and the clock, and carries out its actions.
struct Actor {
    core: SwarmCore<Connection>,
    dht: HyperDht,
    key_pair: KeyPair,
    events: mpsc::UnboundedSender<Event>,
    relay_through: Option<SwarmRelay>,
    out: Option<mpsc::UnboundedSender<(SwarmConnection, PeerInfo)>>,
    dials: HashMap<u64, AbortHandle>,
    controls: HashMap<u64, UdxStreamControl>,
    flushes: HashMap<u64, oneshot::Sender<bool>>,
    next_flush: u64,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        loop {
            let deadline = self.core.next_deadline();
            let sleep_until = tokio::time::Instant::from_std(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            let event = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => ev,
                    None => return,
                },
                _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                    self.core.poll_timers(Instant::now());
                    self.run_actions();
                    continue;
                }
            };
            let now = Instant::now();
            match event {
                Event::Peer { topic, peer } => {
                    self.core
                        .handle_peer(topic, peer.public_key, peer.relay_addresses, now)
                }
                Event::ClientDone { id, result } => {
                    let conn = match result {
                        Ok(conn) => Some(conn),
                        Err(e) => {
                            tracing::debug!("hyperswarm: dial {id} failed: {e}");
                            if self.relay_through.is_some() && should_force_relaying(&e) {
                                self.core.force_relaying(id);
                            }
                            None
                        }
                    };
                    self.dials.remove(&id);
                    self.core.client_done(id, conn, now);
                }
                Event::Server(conn) => self.core.server_connection(conn, now),
                Event::Closed(id) => {
                    self.controls.remove(&id);
                    self.core.closed(id, now);
                }
                Event::Banned(key) => self.core.ban(key),
                Event::JoinPeer(key) => self.core.join_peer(key, now),
                Event::LeavePeer(key) => self.core.leave_peer(key),
                Event::TopicJoined(topic) => self.core.topic_joined(topic),
                Event::TopicLeft(topic) => self.core.topic_left(&topic),
                Event::Flush(tx) => {
                    let id = self.next_flush;
                    self.next_flush += 1;
                    self.flushes.insert(id, tx);
                    self.core.flush(id);
                }
                Event::Stats(tx) => {
                    let _ = tx.send(self.core.stats());
                }
                Event::Suspend(tx) => {
                    // Dials in flight end by themselves (the suspended node fails them).
                    for c in self.controls.values() {
                        c.destroy();
                    }
                    let _ = tx.send(());
                }
                Event::Destroy(tx) => {
                    self.core.destroy();
                    self.run_actions();
                    self.out = None;
                    let _ = tx.send(());
                    return;
                }
                Event::Shutdown => return,
            }
            self.run_actions();
        }
    }

    fn run_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Connect {
                    id,
                    key,
                    force_relay,
                } => {
                    tracing::debug!("hyperswarm: dial {id} to {}", hex::encode(key));
                    let dht = self.dht.clone();
                    let kp = self.key_pair.clone();
                    let events = self.events.clone();
                    let relay = self.relay_through.clone();
                    let task = tokio::spawn(async move {
                        let relay_through = match relay {
                            Some(r) => r
                                .select(force_relay, dht.randomized().await)
                                .map(RelayThrough::Key),
                            None => None,
                        };
                        let opts = ConnectOpts {
                            key_pair: Some(kp),
                            relay_through,
                            relay_keep_alive: None,
                        };
                        let result = dht.connect_opts(&key, opts).await;
                        let _ = events.send(Event::ClientDone { id, result });
                    });
                    self.dials.insert(id, task.abort_handle());
                }
                Action::AbortConnect { id } => {
                    if let Some(d) = self.dials.remove(&id) {
                        d.abort();
                    }
                }
                Action::Emit {
                    id,
                    conn,
                    info,
                    traffic,
                } => self.emit(id, conn, info, traffic),
                Action::Destroy { id } => {
                    if let Some(c) = self.controls.get(&id) {
                        c.destroy();
                    }
                }
                Action::Reject { conn } => conn.get_ref().destroy(),
                Action::FlushDone { flush, ok } => {
                    if let Some(tx) = self.flushes.remove(&flush) {
                        let _ = tx.send(ok);
                    }
                }
            }
        }
    }

    /// Hands an opened connection to the application and watches for its end.
    fn emit(&mut self, id: u64, conn: Connection, info: PeerInfo, traffic: Arc<Traffic>) {
        tracing::debug!(
            "hyperswarm: connection {id} with {} (client {})",
            hex::encode(info.public_key),
            info.client
        );
        self.dials.remove(&id);
        let control = conn.get_ref().control();
        self.controls.insert(id, control.clone());
        let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
        let wrapped = SwarmConnection::new(conn, traffic, dropped_tx);
        match &self.out {
            Some(out) => {
                let _ = out.send((wrapped, info));
            }
            None => wrapped.destroy(),
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = control.closed() => {}
                _ = dropped_rx => {}
            }
            let _ = events.send(Event::Closed(id));
        });
    }
}
