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
//!   retried after a backoff chosen by its attempts ([`retry_timer`]), while one of its topics is still
//!   joined.
//! - A firewall callback rejects peers (they are banned from then on); our own key is always rejected.
//! - [`Hyperswarm::flush`] waits until every discovery is flushed and every peer queued by then was tried.
//! - [`Hyperswarm::leave`] stops a topic's discovery and unannounces it; [`Hyperswarm::destroy`] leaves every
//!   topic, closes the server (unannouncing its key), closes every connection and destroys the DHT node.
//!
//! - [`Hyperswarm::join_peer`] keeps dialling one public key directly, whatever the topics.
//!
//! Not implemented: relaying through blind relays (`relayThrough`),
//! suspend/resume, the `limit` option of a join, per-connection relay address hints (HyperDHT's `connect` here
//! always looks the peer up), and the `update`/`ban` events (see [`Hyperswarm::stats`]).

pub mod connection;
pub mod peer_info;
pub mod retry_timer;

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
use crate::hyperdht::{Connection, HyperDht, HyperDhtError, HyperDhtOpts, Server};
use crate::udx::UdxStreamControl;

use connection::Traffic;
pub use connection::{keep_new_connection, ConnectionGuard, SwarmConnection};
pub use peer_info::{PeerQueue, PeerState};
pub use retry_timer::{Backoffs, RetryTimer};

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
    Flush(oneshot::Sender<bool>),
    Stats(oneshot::Sender<SwarmStats>),
    Destroy(oneshot::Sender<()>),
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
    /// `_handleFirewall`: true rejects.
    fn rejects(&self, remote: &[u8; 32], payload: Option<&NoisePayload>) -> bool {
        if *remote == self.own || lock(&self.banned).contains(remote) {
            return true;
        }
        let rejected = self.user.as_ref().is_some_and(|f| f(remote, payload));
        if rejected {
            lock(&self.banned).insert(*remote);
            let _ = self.events.send(Event::Banned(*remote));
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
    next_session: AtomicU64,
    refresh_interval: Duration,
    refresh_jitter: Duration,
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
                    .create_server(move |remote, payload| fw.rejects(remote, Some(payload)));
                server.listen(self.key_pair.clone()).await?;
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(server_task(server, self.events.clone(), rx));
                Ok(ServerHandle { ctl: tx })
            })
            .await
    }

    /// One discovery refresh (`PeerDiscovery._refresh`): announce (server) or look up (client only), and hand
    /// the peers found to the swarm when a client. True when the query succeeded.
    async fn refresh_topic(&self, topic: &[u8; 32], mode: Mode, announced: &AtomicBool) -> bool {
        let found = if mode.server {
            let server = match self.listening().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("hyperswarm: listen failed: {e}");
                    return false;
                }
            };
            let relays = server.relay_addresses().await;
            announced.store(true, Ordering::Release);
            self.dht
                .announce_and_lookup(topic, &self.key_pair, &relays)
                .await
        } else {
            let found = self.dht.lookup(topic).await;
            if announced.swap(false, Ordering::AcqRel) {
                let _ = self.dht.unannounce(topic, &self.key_pair).await;
            }
            found
        };
        match found {
            Ok(results) => {
                if mode.client {
                    for r in results {
                        for peer in r.peers {
                            let _ = self.events.send(Event::Peer {
                                topic: *topic,
                                peer,
                            });
                        }
                    }
                }
                true
            }
            Err(e) => {
                tracing::debug!("hyperswarm: refresh of {} failed: {e}", hex::encode(topic));
                false
            }
        }
    }
}

async fn discovery_task(
    shared: Weak<Shared>,
    topic: [u8; 32],
    mut mode: watch::Receiver<Mode>,
    refresh: Arc<watch::Sender<RefreshState>>,
    announced: Arc<AtomicBool>,
) {
    let mut requests = refresh.subscribe();
    // The joiner sets the mode and asks for the first refresh right after spawning us.
    while requests.borrow_and_update().requested == 0 {
        if requests.changed().await.is_err() {
            return;
        }
    }
    loop {
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
        let actor = Actor {
            dht: dht.clone(),
            key_pair: key_pair.clone(),
            events: events.clone(),
            out: Some(out),
            firewall: firewall.clone(),
            topics: topics.clone(),
            max_peers: opts.max_peers,
            max_parallel: opts.max_parallel,
            max_client_connections: opts.max_client_connections,
            peers: HashMap::new(),
            explicit: HashSet::new(),
            queue: PeerQueue::new(),
            timer,
            conns: HashMap::new(),
            ids: HashMap::new(),
            swaps: HashMap::new(),
            connecting: 0,
            client_connections: 0,
            open: 0,
            pending_flushes: Vec::new(),
            flush_tick: 0,
            draining: false,
            next_id: 0,
            rng,
            stats: SwarmStats::default(),
        };
        tokio::spawn(actor.run(rx));
        Self {
            shared: Arc::new(Shared {
                dht,
                key_pair,
                events,
                connections: tokio::sync::Mutex::new(connections),
                topics,
                server: OnceCell::new(),
                firewall,
                destroyed: AtomicBool::new(false),
                next_session: AtomicU64::new(0),
                refresh_interval: opts.refresh_interval,
                refresh_jitter: opts.refresh_jitter,
            }),
        }
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
            let (mode_tx, mode_rx) = watch::channel(Mode::default());
            let refresh = Arc::new(watch::channel(RefreshState::default()).0);
            let announced = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(discovery_task(
                Arc::downgrade(&self.shared),
                topic,
                mode_rx,
                refresh.clone(),
                announced.clone(),
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

struct ConnEntry {
    id: u64,
    client: bool,
    /// When it opened; `None` while a client connection is being made.
    opened: Option<Instant>,
    /// Made for a queued peer (flushes count it).
    queued: bool,
    control: Option<UdxStreamControl>,
    connect: Option<AbortHandle>,
    traffic: Arc<Traffic>,
}

struct PendingFlush {
    tx: oneshot::Sender<bool>,
    missing: usize,
    tick: u64,
}

/// The swarm's connection manager: owns peers, the queue, the retry timer and the connection set; runs on
/// one task and learns everything through [`Event`]s.
struct Actor {
    dht: HyperDht,
    key_pair: KeyPair,
    events: mpsc::UnboundedSender<Event>,
    out: Option<mpsc::UnboundedSender<(SwarmConnection, PeerInfo)>>,
    firewall: Arc<FirewallCtx>,
    topics: Topics,
    max_peers: usize,
    max_parallel: usize,
    max_client_connections: usize,
    peers: HashMap<[u8; 32], PeerState>,
    /// `explicitPeers`.
    explicit: HashSet<[u8; 32]>,
    queue: PeerQueue,
    timer: RetryTimer<[u8; 32]>,
    /// `_allConnections`: opened or being opened, by remote public key.
    conns: HashMap<[u8; 32], ConnEntry>,
    ids: HashMap<u64, [u8; 32]>,
    /// Incoming connections waiting for the connection they replace (by its id) to close.
    swaps: HashMap<u64, Connection>,
    connecting: usize,
    client_connections: usize,
    /// `connections.size`: opened connections.
    open: usize,
    pending_flushes: Vec<PendingFlush>,
    flush_tick: u64,
    draining: bool,
    next_id: u64,
    rng: StdRng,
    stats: SwarmStats,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        loop {
            let deadline = self.timer.next_deadline();
            let sleep_until = tokio::time::Instant::from_std(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            let event = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => ev,
                    None => return,
                },
                _ = tokio::time::sleep_until(sleep_until), if deadline.is_some() => {
                    for batch in self.timer.poll(Instant::now()) {
                        self.requeue(batch);
                    }
                    continue;
                }
            };
            match event {
                Event::Peer { topic, peer } => self.handle_peer(topic, peer),
                Event::ClientDone { id, result } => self.client_done(id, result),
                Event::Server(conn) => self.server_connection(conn),
                Event::Closed(id) => self.closed(id),
                Event::Banned(key) => {
                    let p = self.upsert_peer(key, None);
                    if let Some(p) = p {
                        p.banned = true;
                        p.queued = false;
                    }
                    self.queue.remove(&key);
                    self.stats.banned_peers += 1;
                }
                Event::JoinPeer(key) => self.join_peer(key),
                Event::LeavePeer(key) => self.leave_peer(key),
                Event::Flush(tx) => self.flush(tx),
                Event::Stats(tx) => {
                    let _ = tx.send(SwarmStats {
                        connections: self.open,
                        connecting: self.connecting,
                        peers: self.peers.len(),
                        queued: self.queue.len(),
                        ..self.stats
                    });
                }
                Event::Destroy(tx) => {
                    self.destroy_all();
                    let _ = tx.send(());
                    return;
                }
                Event::Shutdown => return,
            }
        }
    }

    fn destroy_all(&mut self) {
        self.timer.clear();
        self.queue.clear();
        for (_, c) in self.conns.drain() {
            if let Some(a) = &c.connect {
                a.abort();
            }
            if let Some(ctl) = &c.control {
                ctl.destroy();
            }
        }
        for (_, c) in self.swaps.drain() {
            c.get_ref().destroy();
        }
        for f in self.pending_flushes.drain(..) {
            let _ = f.tx.send(false);
        }
        self.out = None;
    }

    fn upsert_peer(
        &mut self,
        key: [u8; 32],
        relay_addresses: Option<Vec<SocketAddrV4>>,
    ) -> Option<&mut PeerState> {
        if key == self.key_pair.public {
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

    /// `_handlePeer`: a peer found under `topic`.
    fn handle_peer(&mut self, topic: [u8; 32], peer: Peer) {
        let key = peer.public_key;
        let connected = self.conns.contains_key(&key);
        let Some(p) = self.upsert_peer(key, Some(peer.relay_addresses)) else {
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
            self.enqueue(key);
        }
    }

    fn enqueue(&mut self, key: [u8; 32]) {
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
        self.attempt_client_connections();
    }

    /// `_requeue`: peers whose backoff ran out.
    fn requeue(&mut self, batch: Vec<[u8; 32]>) {
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
        self.attempt_client_connections();
    }

    /// `_withinMaxPeers`: explicit peers make room for more connections.
    fn within_max_peers(&self) -> bool {
        let factor = match self.explicit.len() {
            0 => 1,
            1 => 2,
            2 | 3 => 3,
            _ => 4,
        };
        factor * self.conns.len() < self.max_peers
    }

    /// `joinPeer`.
    fn join_peer(&mut self, key: [u8; 32]) {
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
            self.enqueue(key);
        }
    }

    /// `leavePeer`.
    fn leave_peer(&mut self, key: [u8; 32]) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.explicit = false;
        self.explicit.remove(&key);
        self.maybe_delete_peer(&key);
    }

    fn should_connect(&self) -> bool {
        self.out.is_some()
            && self.connecting < self.max_parallel
            && self.within_max_peers()
            && self.client_connections < self.max_client_connections
    }

    /// `_attemptClientConnections`.
    fn attempt_client_connections(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        let now = Instant::now();
        let explicit: Vec<[u8; 32]> = self.explicit.iter().copied().collect();
        for key in explicit {
            if self.out.is_none() || self.connecting >= self.max_parallel {
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
        if banned || self.conns.contains_key(&key) || self.firewall.rejects(&key, None) {
            if let Some(p) = self.peers.get_mut(&key) {
                // A firewall rejection bans at once (the Banned event follows).
                if lock(&self.firewall.banned).contains(&key) {
                    p.banned = true;
                }
            }
            if queued {
                self.flush_maybe(&key);
            }
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        tracing::debug!("connect id {id} to {}", &hex::encode(key)[..8]);
        let dht = self.dht.clone();
        let kp = self.key_pair.clone();
        let events = self.events.clone();
        let task = tokio::spawn(async move {
            let result = dht.connect_with(&key, &kp).await;
            let _ = events.send(Event::ClientDone { id, result });
        });
        self.conns.insert(
            key,
            ConnEntry {
                id,
                client: true,
                opened: None,
                queued,
                control: None,
                connect: Some(task.abort_handle()),
                traffic: Arc::new(Traffic::default()),
            },
        );
        self.ids.insert(id, key);
        if let Some(p) = self.peers.get_mut(&key) {
            p.tried = true;
        }
        self.stats.client_attempted += 1;
        self.connecting += 1;
        self.client_connections += 1;
    }

    /// Hands an opened connection to the application and watches for its end.
    fn emit(&mut self, id: u64, key: [u8; 32], conn: Connection, client: bool) {
        tracing::debug!("emit id {id} client {client} to {}", &hex::encode(key)[..8]);
        let control = conn.get_ref().control();
        let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
        let traffic = match self.conns.get_mut(&key) {
            Some(e) => {
                e.control = Some(control.clone());
                e.opened = Some(Instant::now());
                e.connect = None;
                e.traffic.clone()
            }
            None => Arc::new(Traffic::default()),
        };
        let info = self.peer_info(&key, client);
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

    fn client_done(&mut self, id: u64, result: Result<Connection, HyperDhtError>) {
        let Some(&key) = self.ids.get(&id) else {
            // Aborted meanwhile (a duplicate, or the swarm was destroyed).
            tracing::debug!("late client done id {id} ok {}", result.is_ok());
            if let Ok(conn) = result {
                conn.get_ref().destroy();
            }
            return;
        };
        match result {
            Ok(conn) => {
                let queued = self.conns.get(&key).is_some_and(|e| e.queued);
                self.stats.client_opened += 1;
                self.open += 1;
                if let Some(p) = self.peers.get_mut(&key) {
                    p.connected(Instant::now());
                    p.client = true;
                }
                self.emit(id, key, conn, true);
                self.connect_done();
                if queued {
                    self.flush_maybe(&key);
                }
            }
            Err(e) => {
                tracing::debug!("hyperswarm: connect to {} failed: {e}", hex::encode(key));
                self.closed(id);
            }
        }
    }

    fn connect_done(&mut self) {
        self.connecting = self.connecting.saturating_sub(1);
        if self.connecting < self.max_parallel {
            self.attempt_client_connections();
        }
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// `_handleServerConnection`.
    fn server_connection(&mut self, conn: Connection) {
        if self.out.is_none() {
            conn.get_ref().destroy();
            return;
        }
        let key = *conn.remote_public_key();
        if let Some(existing) = self.conns.get(&key) {
            let now = Instant::now();
            let established = existing
                .opened
                .is_some_and(|t| existing.traffic.established(t, now));
            tracing::debug!("server conn from {} while existing id {} client {} opened {} established {established}", &hex::encode(key)[..8], existing.id, existing.client, existing.opened.is_some());
            if !keep_new_connection(
                &self.key_pair.public,
                &key,
                conn.is_initiator(),
                established,
            ) {
                self.stats.duplicates_dropped += 1;
                conn.get_ref().destroy();
                return;
            }
            // Replace: close the existing one, take the new one once it is gone.
            self.stats.duplicates_replaced += 1;
            let id = existing.id;
            self.swaps.insert(id, conn);
            self.destroy_connection(id);
            return;
        }
        self.stats.server_opened += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.upsert_peer(key, None);
        if let Some(p) = self.peers.get_mut(&key) {
            p.client = false;
        }
        self.conns.insert(
            key,
            ConnEntry {
                id,
                client: false,
                opened: Some(Instant::now()),
                queued: false,
                control: None,
                connect: None,
                traffic: Arc::new(Traffic::default()),
            },
        );
        self.ids.insert(id, key);
        self.open += 1;
        self.emit(id, key, conn, false);
    }

    /// Closes a connection of the set: aborts a connect under way, destroys an opened stream.
    fn destroy_connection(&mut self, id: u64) {
        let Some(key) = self.ids.get(&id) else {
            return;
        };
        let Some(e) = self.conns.get(key) else {
            return;
        };
        if let Some(ctl) = &e.control {
            // The close watcher reports it.
            ctl.destroy();
        } else if let Some(a) = &e.connect {
            a.abort();
            self.closed(id);
        }
    }

    /// A connection (or attempt) ended.
    fn closed(&mut self, id: u64) {
        tracing::debug!("closed id {id}");
        let Some(key) = self.ids.remove(&id) else {
            return;
        };
        let Some(entry) = self.conns.remove(&key) else {
            return;
        };
        let now = Instant::now();
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
            self.server_connection(conn);
        }
        self.attempt_client_connections();
        if self.connecting == 0 {
            self.flush_all_maybe();
        }
    }

    /// `_shouldRequeue`: a topic it was found under is still joined.
    fn should_requeue(&self, key: &[u8; 32]) -> bool {
        if self.out.is_none() {
            return false;
        }
        let Some(p) = self.peers.get(key) else {
            return false;
        };
        if p.explicit {
            return true;
        }
        let topics = lock(&self.topics);
        p.topics.iter().any(|t| topics.contains_key(t))
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
        let mut i = 0;
        while i < self.pending_flushes.len() {
            let f = &mut self.pending_flushes[i];
            if tick > f.tick {
                i += 1;
                continue;
            }
            f.missing = f.missing.saturating_sub(1);
            if f.missing > 0 {
                i += 1;
                continue;
            }
            let f = self.pending_flushes.remove(i);
            let _ = f.tx.send(true);
        }
    }

    /// `_flushAllMaybe`: nothing more will be attempted now, so every flush is done.
    fn flush_all_maybe(&mut self) -> bool {
        if self.connecting > 0
            || (self.within_max_peers() && self.client_connections < self.max_client_connections)
        {
            return false;
        }
        for f in self.pending_flushes.drain(..) {
            let _ = f.tx.send(true);
        }
        true
    }

    fn flush(&mut self, tx: oneshot::Sender<bool>) {
        if self.out.is_none() {
            let _ = tx.send(false);
            return;
        }
        if self.flush_all_maybe() {
            let _ = tx.send(true);
            return;
        }
        let pending = self.conns.len().saturating_sub(self.open);
        if self.queue.is_empty() && pending == 0 {
            let _ = tx.send(true);
            return;
        }
        let tick = self.flush_tick;
        self.flush_tick += 1;
        self.pending_flushes.push(PendingFlush {
            tx,
            missing: self.queue.len() + pending,
            tick,
        });
    }
}
