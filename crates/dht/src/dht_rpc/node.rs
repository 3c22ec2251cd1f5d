//! The sans-IO dht-rpc node: request/response matching, retries and congestion control (`lib/io.js`), the
//! iterative query engine (`lib/query.js`), bootstrap, the built-in command handlers, routing-table
//! maintenance, NAT sampling and the ephemeral/persistent decision (`index.js`).
//!
//! The node owns no socket and reads no clock. A driver feeds it datagrams ([`Dht::handle_datagram`]) and
//! the time ([`Dht::handle_timeout`], due at [`Dht::poll_timeout`]), sends what [`Dht::poll_transmit`]
//! returns and reacts to [`Dht::poll_event`]. Like dht-rpc, a node uses two UDP sockets: the *server*
//! socket (its public identity once persistent) and the *client* socket (used for requests while
//! firewalled). [`Socket`] names them.
//!
//! # Ephemeral and persistent
//!
//! A node starts ephemeral: it sends no id, so others do not add it to their routing tables. It becomes
//! persistent (sends `id = blake2b(public ip:port)`) only once the address other nodes report seeing is
//! consistent ([`NatSampler`]) and, if it started firewalled, once a PING_NAT probe proved that nodes can
//! reach its server socket at that address with the same port as the local one. With
//! [`Config::ephemeral`] `= Some(false)` this is checked during bootstrap; in adaptive mode (`None`) after
//! ~20 minutes of stable ticks, as dht-rpc does.
//!
//! # Differences from the JS
//!
//! * Bootstrap nodes are given as resolved IPv4 addresses (no `suggested-ip@hostname` resolution here;
//!   that belongs to the driver or the caller).
//! * A request is re-encoded at every resend (the JS encodes once), so a node that became persistent
//!   meanwhile sends its id on retries.
//! * No `adaptiveTimeout` option (off by default in the JS either).
//! * A network change ([`Dht::network_changed`], which a driver calls when the machine's interfaces or
//!   addresses change), a wake-up (a tick more than 15 s late: the machine slept) and [`Dht::resume`]
//!   re-bootstrap the node: the NAT sampler starts afresh, a node started firewalled is firewalled again
//!   until probes prove otherwise, a persistent node becomes ephemeral again (its id named the old
//!   address), and the bootstrap query and NAT analysis run again ([`Event::Rebootstrapped`] when done).
//!   The JS only re-announces servers on `network-change` and leaves its wake-up detection unused.
//! * A custom commit function is an [`Event::QueryCommit`] followed by [`Dht::finish_commit`]
//!   ([`Commit::Manual`]); `commit: true` is [`Commit::Auto`].
//! * Quirks kept on purpose: responses are matched by tid alone; a liveness ping (`_check`) removes a
//!   node that answered if it had already been seen in the same tick; the network-health counters can
//!   go negative.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::health::{Health, NetworkHealth};
use super::io::{CongestionWindow, DEFAULT_RETRIES, DRAIN_INTERVAL, MAX_WINDOW, REQUEST_TIMEOUT};

/// How many sends of a slow request to a node closer than a query's k-th closest reply the query waits for.
const SLOW_CLOSER_SENDS: u32 = 3;
use super::messages::{
    encode_ipv4_peer, ErrorCode, Id, InternalCommand, Message, Request, Response,
};
use super::nat_sampler::NatSampler;
use super::peer::{node_id, TokenSecrets};
use super::routing_table::{compare_distance, AddResult, RoutingTable, K};
use crate::compact_encoding::Encode;

/// How often the node runs its maintenance tick.
pub const TICK_INTERVAL: Duration = Duration::from_secs(5);
const SLEEPING_INTERVAL: Duration = Duration::from_secs(15);
const STABLE_TICKS: i64 = 240;
const MORE_STABLE_TICKS: i64 = 3 * STABLE_TICKS;
const REFRESH_TICKS: i64 = 60;
const RECENT_NODE: i64 = 12;
const OLD_NODE: i64 = 360;

/// Which of the node's two sockets a datagram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Socket {
    /// The socket requests are sent from while firewalled.
    Client,
    /// The socket whose address is the node's identity once persistent.
    Server,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The socket to send it from.
    pub socket: Socket,
    /// The destination.
    pub to: SocketAddrV4,
    /// The datagram.
    pub data: Vec<u8>,
}

/// Node configuration (the options of `new DHT(opts)` that do not concern sockets).
#[derive(Debug, Clone)]
pub struct Config {
    /// Bootstrap nodes (already resolved to IPv4 addresses).
    pub bootstrap: Vec<SocketAddrV4>,
    /// Parallel requests per query (default 10).
    pub concurrency: usize,
    /// Congestion window (default 80).
    pub max_window: usize,
    /// `Some(false)`: become persistent as soon as possible; `Some(true)`: stay ephemeral; `None`:
    /// adaptive (the default).
    pub ephemeral: Option<bool>,
    /// Start firewalled (the default): send requests from the client socket until proven reachable.
    pub firewalled: bool,
    /// Probe reachability with one PING_NAT during bootstrap (default true).
    pub quick_firewall: bool,
    /// Largest delay a DELAYED_PING may ask for (default 10 s).
    pub max_ping_delay: Duration,
    /// Send DOWN_HINTs about unresponsive nodes (default true).
    pub send_down_hints: bool,
    /// DOWN_HINTs per tick, `None` for no limit (default 50).
    pub down_hints_rate_limit: Option<u32>,
    /// Local port of the server socket (sent in PING_NAT probes, compared with the public port).
    pub server_port: u16,
    /// Our public address when known up front (bootstrappers): seeds the NAT sampler.
    pub public_address: Option<SocketAddrV4>,
    /// Seed of the node's random generator (table id, tids, secrets); random when `None`.
    pub seed: Option<u64>,
    /// Nodes to put in the routing table at start (`nodes`).
    pub nodes: Vec<SocketAddrV4>,
    /// Nodes this refuses are never added to the table nor queried (`filterNode`).
    pub filter_node: Option<NodeFilter>,
}

/// A predicate on node addresses (see [`Config::filter_node`]).
#[derive(Clone)]
pub struct NodeFilter(pub std::sync::Arc<dyn Fn(&SocketAddrV4) -> bool + Send + Sync>);

impl std::fmt::Debug for NodeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeFilter(..)")
    }
}

impl NodeFilter {
    /// Wraps a predicate.
    pub fn new(f: impl Fn(&SocketAddrV4) -> bool + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }

    fn allows(&self, addr: &SocketAddrV4) -> bool {
        (self.0)(addr)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            concurrency: 10,
            max_window: MAX_WINDOW,
            ephemeral: None,
            firewalled: true,
            quick_firewall: true,
            max_ping_delay: Duration::from_secs(10),
            send_down_hints: true,
            down_hints_rate_limit: Some(50),
            server_port: 0,
            public_address: None,
            seed: None,
            nodes: Vec::new(),
            filter_node: None,
        }
    }
}

impl Config {
    /// The configuration of `DHT.bootstrapper(port, host)`: persistent, not firewalled, no bootstrap
    /// nodes, public address known.
    pub fn bootstrapper(public: SocketAddrV4) -> Self {
        Self {
            ephemeral: Some(false),
            firewalled: false,
            server_port: public.port(),
            public_address: Some(public),
            ..Self::default()
        }
    }
}

/// What the node knows about a routing-table entry.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's address.
    pub addr: SocketAddrV4,
    /// Our address as this node reported seeing it.
    pub to: Option<SocketAddrV4>,
    /// Tick of the last NAT sample taken from it (0 = never).
    pub sampled: i64,
    /// Tick it was added.
    pub added: i64,
    /// Tick we last pinged it.
    pub pinged: i64,
    /// Tick we last heard from it.
    pub seen: i64,
    /// DOWN_HINTs received about it.
    pub down_hints: u32,
    order: u64,
}

/// Identifies a request made with [`Dht::request`], [`Dht::ping`]...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies a query made with [`Dht::query`] or [`Dht::find_node`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// A request received from another node, to answer with [`Dht::reply`] or [`Dht::error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// Transaction id.
    pub tid: u16,
    /// The sender's address.
    pub from: SocketAddrV4,
    /// The sender's id, when it sent one matching its address.
    pub from_id: Option<Id>,
    /// The socket it arrived on (the reply leaves from it).
    pub socket: Socket,
    /// Our address as the sender sees it.
    pub to: SocketAddrV4,
    /// The token it presented (already checked valid).
    pub token: Option<Id>,
    /// True for dht-rpc's own commands.
    pub internal: bool,
    /// The command.
    pub command: u64,
    /// The target.
    pub target: Option<Id>,
    /// The payload.
    pub value: Option<Vec<u8>>,
}

/// A response, as delivered to requests and queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The responder's address.
    pub from: SocketAddrV4,
    /// The responder's id, when it sent one matching its address.
    pub from_id: Option<Id>,
    /// Our address as the responder sees it.
    pub to: SocketAddrV4,
    /// A token for later requests to the responder.
    pub token: Option<Id>,
    /// Closer nodes to the target.
    pub closer_nodes: Vec<SocketAddrV4>,
    /// Error code ([`ErrorCode::OK`] = success).
    pub error: ErrorCode,
    /// The reply payload.
    pub value: Option<Vec<u8>>,
    /// Round-trip time since the request was created.
    pub rtt: Duration,
}

/// Why a request ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Every retry timed out.
    #[error("request timed out")]
    Timeout,
    /// The request was cancelled.
    #[error("request destroyed")]
    Destroyed,
    /// The node was suspended ([`Dht::suspend`]; `IO_SUSPENDED`).
    #[error("node suspended")]
    Suspended,
}

/// Why a query failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The commit phase had no node to commit to.
    #[error("too few nodes responded")]
    TooFewNodes,
    /// Every commit request failed.
    #[error("every commit request failed")]
    CommitFailed,
    /// The query was cancelled.
    #[error("query destroyed")]
    Destroyed,
}

/// Something the driver or the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A response to [`Dht::request`] / [`Dht::ping`].
    Response {
        /// The request.
        id: RequestId,
        /// The response.
        reply: Reply,
    },
    /// A request from [`Dht::request`] / [`Dht::ping`] failed.
    RequestFailed {
        /// The request.
        id: RequestId,
        /// Why.
        error: RequestError,
    },
    /// A user (non-internal) request arrived: answer with [`Dht::reply`] or [`Dht::error`].
    Request(IncomingRequest),
    /// A successful response to a query step.
    QueryReply {
        /// The query.
        id: QueryId,
        /// The response.
        reply: Reply,
    },
    /// A query finished.
    QueryDone {
        /// The query.
        id: QueryId,
        /// The closest nodes that replied successfully, closest first (at most k).
        closest: Vec<Reply>,
        /// Success, or why it failed.
        result: Result<(), QueryError>,
    },
    /// The bootstrap finished (`ready` in the JS).
    Bootstrapped,
    /// The node became persistent.
    Persistent,
    /// The node became ephemeral again (after waking up).
    Ephemeral,
    /// The public address estimate changed.
    NatUpdate(Option<Ipv4Addr>, u16),
    /// A node entered the routing table.
    AddNode(SocketAddrV4),
    /// A node left the routing table.
    RemoveNode(SocketAddrV4),
    /// A long pause between ticks was detected (the machine slept); a re-bootstrap follows.
    Wakeup,
    /// [`Dht::network_changed`] was called (`network-change`); a re-bootstrap follows.
    NetworkChange,
    /// The node was suspended ([`Dht::suspend`]).
    Suspended,
    /// The node was resumed ([`Dht::resume`]); a re-bootstrap follows.
    Resumed,
    /// A re-bootstrap (after a network change, a wake-up or a resume) finished: the routing table was
    /// refreshed and the NAT analysed again. Servers re-announce now.
    Rebootstrapped,
    /// The network health estimate changed (`network-update`).
    NetworkUpdate(Health),
    /// A query with [`Commit::Manual`] finished its walk: commit to these closest nodes (for example
    /// with [`Dht::request`] using each reply's token), then call [`Dht::finish_commit`].
    QueryCommit {
        /// The query.
        id: QueryId,
        /// The closest nodes that replied, closest first.
        closest: Vec<Reply>,
    },
}

/// What a request should carry (`dht.request({ token, command, target, value }, to)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestSpec {
    /// Token from an earlier reply of the receiver.
    pub token: Option<Id>,
    /// Command.
    pub command: u64,
    /// Target.
    pub target: Option<Id>,
    /// Payload.
    pub value: Option<Vec<u8>>,
}

/// Options of [`Dht::request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOpts {
    /// Do not resend (`retry: false`).
    pub no_retry: bool,
    /// Send from this socket instead of the default one.
    pub socket: Option<Socket>,
    /// Per-attempt timeout instead of one second.
    pub timeout: Option<Duration>,
}

/// What a query asks each node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySpec {
    /// The target id.
    pub target: Id,
    /// Command.
    pub command: u64,
    /// Payload.
    pub value: Option<Vec<u8>>,
}

/// The commit phase of a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Commit {
    /// None: the query ends after the walk.
    #[default]
    None,
    /// Send the query's command, target and value again to each closest node with its token
    /// (`commit: true` in the JS).
    Auto,
    /// Emit [`Event::QueryCommit`] and wait for [`Dht::finish_commit`] (a commit function in the JS).
    Manual,
}

/// Options of [`Dht::query`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOpts {
    /// Parallel requests (default: the node's concurrency).
    pub concurrency: Option<usize>,
    /// What to do with the closest nodes after the walk.
    pub commit: Commit,
    /// Start from these nodes (`closestNodes`) before the routing table.
    pub nodes: Vec<SocketAddrV4>,
    /// Resends per request (default 5).
    pub retries: Option<u32>,
    /// Only ask the given nodes, never follow closer nodes.
    pub only_closest_nodes: bool,
    /// Ignore the congestion window and do not retry.
    pub force: bool,
}

/// Options of [`Dht::reply`] and [`Dht::error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyOpts {
    /// Include a token (default: yes for replies, no for errors).
    pub token: Option<bool>,
    /// Include closer nodes when the request had a target (default true).
    pub closer_nodes: bool,
    /// Send to this address instead of the requester.
    pub to: Option<SocketAddrV4>,
}

impl Default for ReplyOpts {
    fn default() -> Self {
        Self {
            token: None,
            closer_nodes: true,
            to: None,
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests in flight.
    pub active: usize,
    /// Requests created.
    pub total: u64,
    /// Responses received.
    pub responses: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Resends.
    pub retries: u64,
    /// Queries created.
    pub queries: u64,
}

#[derive(Debug, Clone)]
enum Owner {
    User(RequestId),
    Query(QueryId),
    /// A DOWN_HINT sent by a query: cancelled with it, outcome ignored.
    QueryHint(QueryId),
    Commit(QueryId),
    Check {
        id: Id,
        last_seen: i64,
    },
    Reping {
        old: Id,
        last_seen: i64,
        new_id: Id,
        new_node: Box<NodeInfo>,
    },
    QuickNat,
    Probe,
}

#[derive(Debug)]
struct Inflight {
    to: SocketAddrV4,
    to_id: Option<Id>,
    socket: Socket,
    request: Request,
    sent: u32,
    retries: u32,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    created: Instant,
    owner: Owner,
    /// A query request whose first timeout has not been reported to the query yet (`oncycle`).
    cycle_armed: bool,
}

#[derive(Debug)]
enum Seen {
    Refs(Vec<(SocketAddrV4, Option<Id>)>),
    Done,
    Down,
}

#[derive(Debug, Clone, Copy)]
struct QNode {
    id: Option<Id>,
    addr: SocketAddrV4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    User,
    Background,
    Bootstrap,
}

#[derive(Debug)]
struct Query {
    id: QueryId,
    ended: Option<Result<(), QueryError>>,
    kind: QueryKind,
    target: Id,
    internal: bool,
    command: u64,
    value: Option<Vec<u8>>,
    k: usize,
    concurrency: usize,
    background_concurrency: usize,
    inflight: usize,
    slow: usize,
    slowdown: bool,
    from_table: bool,
    retries: u32,
    successes: usize,
    errors: usize,
    seen: HashMap<SocketAddrV4, Seen>,
    pending: Vec<QNode>,
    closest: Vec<Reply>,
    commit: Commit,
    committing: bool,
    commit_pending: usize,
    commit_ok: usize,
    only_closest: bool,
    force: bool,
}

impl Query {
    fn is_closer(&self, id: Option<&Id>) -> bool {
        if self.closest.len() < self.k {
            return true;
        }
        match (id, self.closest.last().and_then(|r| r.from_id.as_ref())) {
            (Some(id), Some(last)) => compare_distance(&self.target, id, last).is_lt(),
            _ => false,
        }
    }

    fn push_closest(&mut self, m: Reply) {
        let Some(id) = m.from_id else { return };
        let mut at = self.closest.len();
        while at > 0 {
            let prev = self.closest[at - 1].from_id.unwrap_or([0xff; 32]);
            match compare_distance(&self.target, &prev, &id) {
                std::cmp::Ordering::Less => break,
                std::cmp::Ordering::Equal => {
                    self.closest.remove(at - 1);
                    at -= 1;
                    break;
                }
                std::cmp::Ordering::Greater => at -= 1,
            }
        }
        self.closest.insert(at, m);
        self.closest.truncate(self.k);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Bootstrap(u8),
    Tick,
}

#[derive(Debug)]
struct NetworkCheck {
    only_firewall: bool,
    purpose: Purpose,
    host: Ipv4Addr,
    port: u16,
    sampler: NatSampler,
    hosts: HashSet<Ipv4Addr>,
    pending: usize,
    node_count: usize,
    pongs: Vec<Reply>,
}

#[derive(Debug)]
struct BootState {
    first: bool,
    test_nat: bool,
    only_firewall: bool,
    /// A re-bootstrap of a node that had bootstrapped before.
    again: bool,
}

/// The sans-IO dht-rpc node. See the module documentation.
#[derive(Debug)]
pub struct Dht {
    config: Config,
    rng: StdRng,
    table: RoutingTable<NodeInfo>,
    order: BTreeMap<u64, Id>,
    next_order: u64,
    // io
    inflight: HashMap<u16, Inflight>,
    queue: VecDeque<u16>,
    congestion: CongestionWindow,
    next_tid: u16,
    secrets: TokenSecrets,
    stats: Stats,
    next_request: u64,
    // queries
    queries: HashMap<QueryId, Query>,
    next_query: u64,
    // node state
    nat: NatSampler,
    ephemeral: bool,
    firewalled: bool,
    adaptive: bool,
    force_persistent: bool,
    bootstrapped: bool,
    boot: Option<BootState>,
    boot_round: u8,
    /// The bootstrap walk in flight (an older one ending is ignored).
    boot_query: Option<QueryId>,
    suspended: bool,
    network_check: Option<NetworkCheck>,
    tick: i64,
    stable_ticks: i64,
    refresh_ticks: i64,
    repinging: u32,
    checks: u32,
    last_host: Option<Option<Ipv4Addr>>,
    nonpersistent_samples: Vec<SocketAddrV4>,
    down_hints_sent: u32,
    health: NetworkHealth,
    health_state: Health,
    // timers and output
    next_tick: Instant,
    last_tick: Instant,
    next_drain: Instant,
    delayed: Vec<(Instant, Transmit)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

fn random_offset(rng: &mut StdRng, n: i64) -> i64 {
    n - (rng.gen::<f64>() * 0.5 * n as f64) as i64
}

impl Dht {
    /// A node that starts bootstrapping at `now` (the sockets must be bound: `config.server_port` set).
    pub fn new(config: Config, now: Instant) -> Self {
        let mut rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let mut s0 = [0u8; 32];
        let mut s1 = [0u8; 32];
        rng.fill_bytes(&mut s0);
        rng.fill_bytes(&mut s1);
        let adaptive = config.ephemeral.is_none();
        let tick = random_offset(&mut rng, 100);
        let refresh_ticks = random_offset(&mut rng, REFRESH_TICKS);
        let mut nat = NatSampler::new();
        if let Some(p) = config.public_address {
            nat.add(*p.ip(), p.port());
        }
        let mut dht = Self {
            rng,
            table: RoutingTable::new(id),
            order: BTreeMap::new(),
            next_order: 0,
            inflight: HashMap::new(),
            queue: VecDeque::new(),
            congestion: CongestionWindow::new(config.max_window),
            next_tid: 0,
            secrets: TokenSecrets::new(s0, s1),
            stats: Stats::default(),
            next_request: 0,
            queries: HashMap::new(),
            next_query: 0,
            nat,
            ephemeral: true,
            firewalled: config.firewalled,
            adaptive,
            force_persistent: config.ephemeral == Some(false),
            bootstrapped: false,
            boot: None,
            boot_round: 0,
            boot_query: None,
            suspended: false,
            network_check: None,
            tick,
            stable_ticks: if adaptive { STABLE_TICKS } else { 0 },
            refresh_ticks,
            repinging: 0,
            checks: 0,
            last_host: None,
            nonpersistent_samples: Vec::new(),
            down_hints_sent: 0,
            health: NetworkHealth::new(),
            health_state: Health::Online,
            next_tick: now + TICK_INTERVAL,
            last_tick: now,
            next_drain: now + DRAIN_INTERVAL,
            delayed: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        dht.next_tid = dht.rng.gen();
        for addr in dht.config.nodes.clone().iter().rev() {
            dht.add_node(*addr, now);
        }
        dht.start_bootstrap(now);
        dht
    }

    // ---------------------------------------------------------------- accessors

    /// Whether the node is suspended ([`Self::suspend`]).
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Our id when persistent (`dht.id`), `None` while ephemeral.
    pub fn id(&self) -> Option<Id> {
        if self.ephemeral {
            None
        } else {
            Some(*self.table.id())
        }
    }

    /// The routing table (its id is random while ephemeral).
    pub fn table(&self) -> &RoutingTable<NodeInfo> {
        &self.table
    }

    /// True while the node sends no id.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// True while requests go out of the client socket.
    pub fn is_firewalled(&self) -> bool {
        self.firewalled
    }

    /// True once the bootstrap finished.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped
    }

    /// Our public address estimate: host, and port (0 when unknown or random).
    pub fn public_address(&self) -> (Option<Ipv4Addr>, u16) {
        (self.nat.host(), self.nat.port())
    }

    /// The socket requests go out of.
    pub fn request_socket(&self) -> Socket {
        if self.firewalled {
            Socket::Client
        } else {
            Socket::Server
        }
    }

    /// Known nodes, most recently seen first (`dht.toArray()`).
    pub fn nodes(&self) -> Vec<SocketAddrV4> {
        self.order
            .values()
            .rev()
            .filter_map(|id| self.table.get(id))
            .map(|n| n.addr)
            .collect()
    }

    /// Request counters.
    pub fn stats(&self) -> Stats {
        Stats {
            active: self.inflight.len(),
            ..self.stats
        }
    }

    /// The network health estimate.
    pub fn health(&self) -> Health {
        self.health_state
    }

    /// The current maintenance tick counter.
    pub fn tick_count(&self) -> i64 {
        self.tick
    }

    // ---------------------------------------------------------------- driver interface

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.suspended {
            return None;
        }
        let mut t = self.next_tick.min(self.next_drain);
        for r in self.inflight.values() {
            if let Some(d) = r.deadline {
                t = t.min(d);
            }
        }
        for (d, _) in &self.delayed {
            t = t.min(*d);
        }
        Some(t)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.suspended {
            return;
        }
        if now >= self.next_drain {
            self.next_drain = now + DRAIN_INTERVAL;
            self.drain(now);
        }
        // In deadline order (then tid), so runs are reproducible whatever the map's iteration order.
        let mut due: Vec<(Instant, u16)> = self
            .inflight
            .iter()
            .filter_map(|(t, r)| r.deadline.filter(|d| *d <= now).map(|d| (d, *t)))
            .collect();
        due.sort_unstable();
        for (_, tid) in due {
            self.on_request_timeout(tid, now);
        }
        if !self.delayed.is_empty() {
            let (due, later): (Vec<_>, Vec<_>) =
                self.delayed.drain(..).partition(|(d, _)| *d <= now);
            self.delayed = later;
            self.transmits.extend(due.into_iter().map(|(_, t)| t));
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK_INTERVAL;
            self.on_tick(now);
        }
    }

    /// Handles a datagram that arrived on `socket` from `from`.
    pub fn handle_datagram(&mut self, socket: Socket, from: SocketAddr, data: &[u8], now: Instant) {
        let SocketAddr::V4(from) = from else { return };
        if self.suspended || data.len() < 2 || from.port() == 0 {
            return;
        }
        if socket == Socket::Server {
            if let Some(check) = &mut self.network_check {
                check.hosts.insert(*from.ip());
            }
        }
        let external = socket != self.request_socket();
        match Message::decode(data) {
            Ok(Message::Request(req)) => self.on_request(socket, from, req, external, now),
            Ok(Message::Response(res)) => self.on_response(from, res, external, now),
            Err(_) => {}
        }
    }

    // ---------------------------------------------------------------- public operations

    /// Adds a node to the routing table (`dht.addNode({ host, port })`).
    pub fn add_node(&mut self, addr: SocketAddrV4, now: Instant) {
        let id = node_id(&addr);
        self.add_table_node(id, self.new_node_info(addr, None), now);
    }

    /// Sends a user request (`dht.request(...)`); the outcome arrives as [`Event::Response`] or
    /// [`Event::RequestFailed`].
    pub fn request(
        &mut self,
        spec: RequestSpec,
        to: SocketAddrV4,
        opts: RequestOpts,
        now: Instant,
    ) -> RequestId {
        self.user_request(false, spec, to, opts, now)
    }

    /// Pings a node (`dht.ping(...)`).
    pub fn ping(&mut self, to: SocketAddrV4, now: Instant) -> RequestId {
        let spec = RequestSpec {
            command: InternalCommand::PING.0,
            ..RequestSpec::default()
        };
        self.user_request(true, spec, to, RequestOpts::default(), now)
    }

    /// Asks a node to answer after `delay` (`dht.delayedPing(...)`); `None` if the delay is above
    /// [`Config::max_ping_delay`].
    pub fn delayed_ping(
        &mut self,
        to: SocketAddrV4,
        delay: Duration,
        now: Instant,
    ) -> Option<RequestId> {
        if delay > self.config.max_ping_delay {
            return None;
        }
        let ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
        let spec = RequestSpec {
            command: InternalCommand::DELAYED_PING.0,
            value: Some(ms.to_le_bytes().to_vec()),
            ..RequestSpec::default()
        };
        let opts = RequestOpts {
            timeout: Some(delay + Duration::from_secs(1)),
            ..RequestOpts::default()
        };
        Some(self.user_request(true, spec, to, opts, now))
    }

    /// Cancels a request; it ends with [`RequestError::Destroyed`].
    pub fn cancel_request(&mut self, id: RequestId) {
        let tid = self
            .inflight
            .iter()
            .find(|(_, r)| matches!(r.owner, Owner::User(u) if u == id))
            .map(|(t, _)| *t);
        if let Some(tid) = tid {
            if self.remove_inflight(tid).is_some() {
                self.events.push_back(Event::RequestFailed {
                    id,
                    error: RequestError::Destroyed,
                });
            }
        }
    }

    /// Starts an iterative query (`dht.query(...)`): replies arrive as [`Event::QueryReply`], the end as
    /// [`Event::QueryDone`].
    pub fn query(&mut self, spec: QuerySpec, opts: QueryOpts, now: Instant) -> QueryId {
        if self.suspended {
            return self.suspended_query();
        }
        self.refresh_ticks = REFRESH_TICKS;
        self.start_query(QueryKind::User, false, spec, opts, now)
    }

    /// Starts a FIND_NODE query (`dht.findNode(target)`).
    pub fn find_node(&mut self, target: Id, opts: QueryOpts, now: Instant) -> QueryId {
        if self.suspended {
            return self.suspended_query();
        }
        self.refresh_ticks = REFRESH_TICKS;
        let spec = QuerySpec {
            target,
            command: InternalCommand::FIND_NODE.0,
            value: None,
        };
        self.start_query(QueryKind::User, true, spec, opts, now)
    }

    /// A query asked for while suspended: it ends at once, destroyed.
    fn suspended_query(&mut self) -> QueryId {
        self.stats.queries += 1;
        self.next_query += 1;
        let id = QueryId(self.next_query);
        self.events.push_back(Event::QueryDone {
            id,
            closest: Vec::new(),
            result: Err(QueryError::Destroyed),
        });
        id
    }

    /// Stops the node (`dht.suspend()`): every request and query in flight fails ([`RequestError::Suspended`],
    /// [`QueryError::Destroyed`]), new ones fail at once, datagrams are dropped and no timer runs until
    /// [`Self::resume`]. The routing table is kept.
    pub fn suspend(&mut self, now: Instant) {
        if self.suspended {
            return;
        }
        self.boot = None;
        self.boot_query = None;
        self.network_check = None;
        let ids: Vec<QueryId> = self.queries.keys().copied().collect();
        for id in ids {
            self.cancel_query(id, now);
        }
        let mut tids: Vec<u16> = self.inflight.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            if let Some(r) = self.inflight.remove(&tid) {
                if let Owner::User(id) = r.owner {
                    self.events.push_back(Event::RequestFailed {
                        id,
                        error: RequestError::Suspended,
                    });
                }
            }
        }
        self.queue.clear();
        self.congestion = CongestionWindow::new(self.config.max_window);
        self.repinging = 0;
        self.delayed.clear();
        self.transmits.clear();
        self.suspended = true;
        self.events.push_back(Event::Suspended);
    }

    /// Restarts a suspended node (`dht.resume()`): as after a wake-up, it re-bootstraps
    /// ([`Event::Rebootstrapped`] when done).
    pub fn resume(&mut self, now: Instant) {
        if !self.suspended {
            return;
        }
        self.suspended = false;
        self.last_tick = now;
        self.next_tick = now + TICK_INTERVAL;
        self.next_drain = now + DRAIN_INTERVAL;
        self.events.push_back(Event::Resumed);
        self.on_wakeup();
        self.rebootstrap(now);
    }

    /// The machine's network interfaces or addresses changed (udx's `network-change`): the node
    /// re-bootstraps and analyses its NAT again ([`Event::NetworkChange`] now, [`Event::Rebootstrapped`]
    /// when done). Ignored while suspended.
    pub fn network_changed(&mut self, now: Instant) {
        if self.suspended {
            return;
        }
        self.events.push_back(Event::NetworkChange);
        self.age_nodes();
        self.rebootstrap(now);
    }

    /// The machine slept (the driver saw its boot clock jump ahead of the monotonic clock, which stops
    /// during a system sleep): as a late tick does, the node treats its routing table as old and
    /// re-bootstraps ([`Event::Wakeup`], then [`Event::Rebootstrapped`]). Ignored while suspended.
    pub fn woke_up(&mut self, now: Instant) {
        if self.suspended {
            return;
        }
        self.on_wakeup();
        self.last_tick = now;
        if self.bootstrapped {
            self.rebootstrap(now);
        }
    }

    /// Whether a re-bootstrap (or the first bootstrap) is running.
    pub fn is_rebootstrapping(&self) -> bool {
        self.boot.is_some()
    }

    /// Cancels a query; it ends with [`QueryError::Destroyed`].
    pub fn cancel_query(&mut self, id: QueryId, now: Instant) {
        if let Some(q) = self.queries.remove(&id) {
            self.end_query(id, q, Err(QueryError::Destroyed), now);
        }
    }

    /// Ends the commit phase of a [`Commit::Manual`] query: `ok` when at least one commit succeeded (the
    /// query then ends with success), otherwise it ends with [`QueryError::CommitFailed`].
    pub fn finish_commit(&mut self, id: QueryId, ok: bool, now: Instant) {
        self.with_query(id, now, |_, q, _| {
            if q.committing && q.commit == Commit::Manual && q.ended.is_none() {
                let result = if ok {
                    Ok(())
                } else {
                    Err(QueryError::CommitFailed)
                };
                Self::mark_ended(q, result);
            }
        });
    }

    /// Refreshes the routing table with a background lookup of a random known node (`dht.refresh()`).
    pub fn refresh(&mut self, now: Instant) {
        let target = if self.table.is_empty() {
            *self.table.id()
        } else {
            let n = self.rng.gen_range(0..self.table.len());
            self.table.nth(n).map_or(*self.table.id(), |e| e.id)
        };
        self.background_query(target, QueryKind::Background, now);
    }

    /// Answers a request with a value (`req.reply(value, opts)`).
    pub fn reply(&mut self, req: &IncomingRequest, value: Option<Vec<u8>>, opts: ReplyOpts) {
        let to = opts.to.unwrap_or(req.from);
        let token = opts.token.unwrap_or(true);
        self.send_reply(
            req.tid,
            req.socket,
            to,
            req.target.as_ref(),
            ErrorCode::OK,
            value,
            token,
            opts.closer_nodes,
        );
    }

    /// Answers a request with an error code (`req.error(code, opts)`).
    pub fn error(&mut self, req: &IncomingRequest, code: ErrorCode, opts: ReplyOpts) {
        let to = opts.to.unwrap_or(req.from);
        let token = opts.token.unwrap_or(false);
        self.send_reply(
            req.tid,
            req.socket,
            to,
            req.target.as_ref(),
            code,
            None,
            token,
            opts.closer_nodes,
        );
    }

    /// Forwards a request to another node under the original tid, without token (`req.relay(value, to)`).
    /// hyperdht's router uses it to pass handshakes and holepunch messages along; the receiver's reply
    /// goes to whoever it addresses, so relays are fire-and-forget here.
    pub fn relay(&mut self, req: &IncomingRequest, value: Option<Vec<u8>>, to: SocketAddrV4) {
        let request = Request {
            tid: req.tid,
            to,
            id: self.own_id_for(req.socket),
            token: None,
            internal: req.internal,
            command: req.command,
            target: req.target,
            value,
        };
        self.transmits.push_back(Transmit {
            socket: req.socket,
            to,
            data: request.to_bytes(),
        });
    }

    // ---------------------------------------------------------------- io: requests

    fn own_id_for(&self, socket: Socket) -> Option<Id> {
        if !self.ephemeral && socket == Socket::Server {
            Some(*self.table.id())
        } else {
            None
        }
    }

    fn user_request(
        &mut self,
        internal: bool,
        spec: RequestSpec,
        to: SocketAddrV4,
        opts: RequestOpts,
        now: Instant,
    ) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        if self.suspended {
            self.events.push_back(Event::RequestFailed {
                id,
                error: RequestError::Suspended,
            });
            return id;
        }
        let retries = if opts.no_retry { 0 } else { DEFAULT_RETRIES };
        let tid = self.create_request(to, None, internal, spec, Owner::User(id), now);
        if let Some(r) = self.inflight.get_mut(&tid) {
            r.retries = retries;
            r.timeout = opts.timeout;
            if let Some(s) = opts.socket {
                r.socket = s;
            }
        }
        self.send(tid, false, now);
        id
    }

    fn create_request(
        &mut self,
        to: SocketAddrV4,
        to_id: Option<Id>,
        internal: bool,
        spec: RequestSpec,
        owner: Owner,
        now: Instant,
    ) -> u16 {
        let mut tid = self.next_tid;
        for _ in 0..=u16::MAX {
            if !self.inflight.contains_key(&tid) {
                break;
            }
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        // With all 65536 tids in flight, the request holding this one is given up.
        if let Some(old) = self.remove_inflight(tid) {
            self.request_failed(old, RequestError::Destroyed, now);
        }
        let request = Request {
            tid,
            to,
            id: None,
            token: spec.token,
            internal,
            command: spec.command,
            target: spec.target,
            value: spec.value,
        };
        self.inflight.insert(
            tid,
            Inflight {
                to,
                to_id,
                socket: self.request_socket(),
                request,
                sent: 0,
                retries: DEFAULT_RETRIES,
                timeout: None,
                deadline: None,
                created: now,
                owner,
                cycle_armed: false,
            },
        );
        self.stats.total += 1;
        tid
    }

    /// `dht._request`: an internal-bookkeeping request, sent at once.
    #[allow(clippy::too_many_arguments)]
    fn internal_request(
        &mut self,
        to: SocketAddrV4,
        to_id: Option<Id>,
        internal: bool,
        spec: RequestSpec,
        owner: Owner,
        force: bool,
        now: Instant,
    ) -> Option<u16> {
        if internal && !self.config.send_down_hints && spec.command == InternalCommand::DOWN_HINT.0
        {
            return None;
        }
        let tid = self.create_request(to, to_id, internal, spec, owner, now);
        self.send(tid, force, now);
        Some(tid)
    }

    fn send(&mut self, tid: u16, force: bool, now: Instant) {
        if !force && self.congestion.is_full() {
            self.queue.push_back(tid);
            return;
        }
        self.send_now(tid, now);
    }

    fn send_now(&mut self, tid: u16, now: Instant) {
        let own_id = *self.table.id();
        let ephemeral = self.ephemeral;
        let Some(r) = self.inflight.get_mut(&tid) else {
            return;
        };
        r.sent += 1;
        self.congestion.send();
        r.request.id = if !ephemeral && r.socket == Socket::Server {
            Some(own_id)
        } else {
            None
        };
        self.transmits.push_back(Transmit {
            socket: r.socket,
            to: r.to,
            data: r.request.to_bytes(),
        });
        r.deadline = Some(now + r.timeout.unwrap_or(REQUEST_TIMEOUT));
    }

    fn drain(&mut self, now: Instant) {
        self.secrets.tick();
        self.congestion.drain();
        self.send_queued(now);
    }

    /// Sends held-back requests, oldest first, while the window has room.
    fn send_queued(&mut self, now: Instant) {
        while !self.congestion.is_full() {
            let Some(tid) = self.queue.pop_front() else {
                break;
            };
            self.send_now(tid, now);
        }
    }

    fn remove_inflight(&mut self, tid: u16) -> Option<Inflight> {
        let r = self.inflight.remove(&tid)?;
        self.queue.retain(|t| *t != tid);
        self.congestion.recv();
        Some(r)
    }

    fn on_request_timeout(&mut self, tid: u16, now: Instant) {
        let Some(r) = self.inflight.get_mut(&tid) else {
            return;
        };
        r.deadline = None;
        if r.cycle_armed {
            r.cycle_armed = false;
            if let Owner::Query(qid) = r.owner {
                self.with_query(qid, now, |dht, q, now| {
                    q.slow += 1;
                    dht.read_more(q, now);
                });
            }
        }
        let Some(r) = self.inflight.get(&tid) else {
            return;
        };
        if r.sent > r.retries {
            self.stats.timeouts += 1;
            if let Some(r) = self.remove_inflight(tid) {
                let to_id = r.to_id;
                self.request_failed(r, RequestError::Timeout, now);
                if let Some(id) = to_id {
                    self.remove_node(&id);
                }
            }
        } else {
            self.stats.retries += 1;
            self.send(tid, false, now);
            // A slow request of a query that may be all the query still waits for (waits_for_slow_closer): after
            // the last send it waits for, let the query end.
            if let Some(Owner::Query(qid)) = self
                .inflight
                .get(&tid)
                .filter(|r| r.sent == SLOW_CLOSER_SENDS + 1)
                .map(|r| r.owner.clone())
            {
                self.with_query(qid, now, |dht, q, now| dht.read_more(q, now));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_reply(
        &mut self,
        tid: u16,
        socket: Socket,
        to: SocketAddrV4,
        target: Option<&Id>,
        error: ErrorCode,
        value: Option<Vec<u8>>,
        token: bool,
        closer: bool,
    ) {
        let closer_nodes = match target {
            Some(t) if closer => Some(
                self.table
                    .closest(t, K)
                    .iter()
                    .map(|e| e.value.addr)
                    .collect(),
            ),
            _ => None,
        };
        let res = Response {
            tid,
            to,
            id: self.own_id_for(socket),
            token: if token {
                Some(self.secrets.token(to.ip(), 1))
            } else {
                None
            },
            closer_nodes,
            error,
            value,
        };
        self.transmits.push_back(Transmit {
            socket,
            to,
            data: res.to_bytes(),
        });
    }

    // ---------------------------------------------------------------- incoming

    fn on_request(
        &mut self,
        socket: Socket,
        from: SocketAddrV4,
        req: Request,
        external: bool,
        now: Instant,
    ) {
        let from_id = req.id.filter(|id| *id == node_id(&from));
        let incoming = IncomingRequest {
            tid: req.tid,
            from,
            from_id,
            socket,
            to: req.to,
            token: req.token,
            internal: req.internal,
            command: req.command,
            target: req.target,
            value: req.value,
        };
        if let Some(token) = &incoming.token {
            if !self.secrets.verify(from.ip(), token) {
                let opts = ReplyOpts {
                    token: Some(true),
                    ..ReplyOpts::default()
                };
                self.error(&incoming, ErrorCode::INVALID_TOKEN, opts);
                return;
            }
        }
        if let Some(id) = from_id {
            self.add_node_from_network(!external, from, id, incoming.to, now);
        }
        if !incoming.internal {
            self.events.push_back(Event::Request(incoming));
            return;
        }
        let plain = |dht: &mut Self, r: &IncomingRequest, to: SocketAddrV4| {
            dht.send_reply(
                r.tid,
                r.socket,
                to,
                r.target.as_ref(),
                ErrorCode::OK,
                None,
                false,
                false,
            );
        };
        match InternalCommand(incoming.command) {
            InternalCommand::PING => plain(self, &incoming, from),
            InternalCommand::DELAYED_PING => {
                let Some(ms) = incoming.value.as_deref().and_then(|v| v.get(..4)) else {
                    return;
                };
                let ms = u32::from_le_bytes([ms[0], ms[1], ms[2], ms[3]]);
                let delay = Duration::from_millis(u64::from(ms));
                if delay > self.config.max_ping_delay {
                    return;
                }
                let res = Response {
                    tid: incoming.tid,
                    to: from,
                    id: self.own_id_for(socket),
                    token: None,
                    closer_nodes: None,
                    error: ErrorCode::OK,
                    value: None,
                };
                self.delayed.push((
                    now + delay,
                    Transmit {
                        socket,
                        to: from,
                        data: res.to_bytes(),
                    },
                ));
            }
            InternalCommand::PING_NAT => {
                let Some(p) = incoming.value.as_deref().and_then(|v| v.get(..2)) else {
                    return;
                };
                let port = u16::from_le_bytes([p[0], p[1]]);
                if port == 0 {
                    return;
                }
                plain(self, &incoming, SocketAddrV4::new(*from.ip(), port));
            }
            InternalCommand::FIND_NODE => {
                if let Some(target) = incoming.target {
                    self.send_reply(
                        incoming.tid,
                        socket,
                        from,
                        Some(&target),
                        ErrorCode::OK,
                        None,
                        false,
                        true,
                    );
                }
            }
            InternalCommand::DOWN_HINT => {
                let Some(addr) = incoming.value.as_deref().and_then(|v| v.get(..6)) else {
                    return;
                };
                if self.checks < 10 {
                    let id = super::hash::blake2b256(&[addr]);
                    let tick = self.tick;
                    if let Some(node) = self.table.get_mut(&id) {
                        if node.pinged < tick || node.down_hints == 0 {
                            node.down_hints += 1;
                            self.check(id, now);
                        }
                    }
                }
                plain(self, &incoming, from);
            }
            _ => {
                let target = incoming.target;
                self.send_reply(
                    incoming.tid,
                    socket,
                    from,
                    target.as_ref(),
                    ErrorCode::UNKNOWN_COMMAND,
                    None,
                    false,
                    target.is_some(),
                );
            }
        }
    }

    fn on_response(&mut self, from: SocketAddrV4, res: Response, external: bool, now: Instant) {
        let Some(req) = self.inflight.get(&res.tid) else {
            return;
        };
        let rtt = now.saturating_duration_since(req.created);
        let Some(req) = self.remove_inflight(res.tid) else {
            return;
        };
        // The answer freed room in the window: held-back requests leave now rather than at the next drain
        // (up to 750 ms later), so a burst of requests is paced by the replies, not by the drain clock. (The
        // JS sends its queue only on drains; the window's limits are the same.)
        self.send_queued(now);
        self.stats.responses += 1;
        let from_id = res.id.filter(|id| *id == node_id(&from));
        let reply = Reply {
            from,
            from_id,
            to: res.to,
            token: res.token,
            closer_nodes: res.closer_nodes.unwrap_or_default(),
            error: res.error,
            value: res.value,
            rtt,
        };
        // `_onresponse`: learn about the responder.
        match from_id {
            Some(id) => self.add_node_from_network(!external, from, id, reply.to, now),
            None if self.allowed(&from) => self.sample_bootstrap_maybe(from, reply.to),
            None => {}
        }
        self.request_succeeded(req, reply, now);
    }

    fn request_succeeded(&mut self, req: Inflight, reply: Reply, now: Instant) {
        match req.owner {
            Owner::User(id) => self.events.push_back(Event::Response { id, reply }),
            Owner::Query(qid) => {
                let cycle_fired = !req.cycle_armed;
                self.with_query(qid, now, |dht, q, now| {
                    dht.on_visit(q, qid, reply, cycle_fired, now)
                });
            }
            Owner::QueryHint(_) => {}
            Owner::Commit(qid) => self.on_commit_done(qid, true, now),
            Owner::Check { id, last_seen } => {
                self.checks = self.checks.saturating_sub(1);
                if self.table.get(&id).is_some_and(|n| n.seen <= last_seen) {
                    self.remove_node(&id);
                }
            }
            Owner::Reping {
                old,
                last_seen,
                new_id,
                new_node,
            } => {
                if self.table.get(&old).is_none_or(|n| n.seen <= last_seen) {
                    self.swap(&old, new_id, *new_node, now);
                } else {
                    self.repinging = self.repinging.saturating_sub(1);
                }
            }
            Owner::QuickNat => {
                if let Some(b) = &mut self.boot {
                    b.test_nat = true;
                }
            }
            Owner::Probe => self.on_probe_done(Some(reply), now),
        }
    }

    fn request_failed(&mut self, req: Inflight, error: RequestError, now: Instant) {
        match req.owner {
            Owner::User(id) => self.events.push_back(Event::RequestFailed { id, error }),
            Owner::Query(qid) => {
                let cycle_fired = !req.cycle_armed;
                let (to, to_id) = (req.to, req.to_id);
                self.with_query(qid, now, |dht, q, now| {
                    dht.on_visit_error(q, qid, to, to_id, error, cycle_fired, now)
                });
            }
            Owner::QueryHint(_) | Owner::QuickNat => {}
            Owner::Commit(qid) => self.on_commit_done(qid, false, now),
            Owner::Check { id, .. } => {
                self.checks = self.checks.saturating_sub(1);
                self.remove_node(&id);
            }
            Owner::Reping {
                old,
                new_id,
                new_node,
                ..
            } => self.swap(&old, new_id, *new_node, now),
            Owner::Probe => self.on_probe_done(None, now),
        }
    }

    // ---------------------------------------------------------------- routing table upkeep

    fn new_node_info(&self, addr: SocketAddrV4, to: Option<SocketAddrV4>) -> NodeInfo {
        NodeInfo {
            addr,
            to,
            sampled: 0,
            added: self.tick,
            pinged: self.tick,
            seen: self.tick,
            down_hints: 0,
            order: 0,
        }
    }

    fn touch_order(&mut self, id: Id) {
        self.next_order += 1;
        let order = self.next_order;
        if let Some(n) = self.table.get_mut(&id) {
            self.order.remove(&n.order);
            n.order = order;
            self.order.insert(order, id);
        }
    }

    fn nat_add(&mut self, addr: SocketAddrV4) {
        let prev = (self.nat.host(), self.nat.port());
        self.nat.add(*addr.ip(), addr.port());
        let now = (self.nat.host(), self.nat.port());
        if prev != now {
            self.events.push_back(Event::NatUpdate(now.0, now.1));
        }
    }

    fn sample_bootstrap_maybe(&mut self, from: SocketAddrV4, to: SocketAddrV4) {
        if self.nonpersistent_samples.len() >= self.config.bootstrap.len().max(1) {
            return;
        }
        if self.nonpersistent_samples.contains(&from) {
            return;
        }
        self.nonpersistent_samples.push(from);
        self.nat_add(to);
    }

    fn allowed(&self, addr: &SocketAddrV4) -> bool {
        self.config
            .filter_node
            .as_ref()
            .is_none_or(|f| f.allows(addr))
    }

    /// `_addNodeFromNetwork` for a sender with a valid id.
    fn add_node_from_network(
        &mut self,
        sample: bool,
        from: SocketAddrV4,
        id: Id,
        to: SocketAddrV4,
        now: Instant,
    ) {
        if !self.allowed(&from) {
            return;
        }
        let tick = self.tick;
        if let Some(old) = self.table.get_mut(&id) {
            let mut sampled = false;
            if sample && (old.sampled == 0 || tick - old.sampled >= OLD_NODE) {
                old.to = Some(to);
                old.sampled = tick;
                sampled = true;
            }
            old.pinged = tick;
            old.seen = tick;
            if sampled {
                self.nat_add(to);
            }
            self.touch_order(id);
            return;
        }
        let info = self.new_node_info(from, Some(to));
        self.add_table_node(id, info, now);
    }

    /// `_addNode`.
    fn add_table_node(&mut self, id: Id, mut info: NodeInfo, now: Instant) {
        if self.table.contains(&id) || id == *self.table.id() {
            return;
        }
        info.added = self.tick;
        info.pinged = self.tick;
        info.seen = self.tick;
        match self.table.add(id, info.clone()) {
            AddResult::Added | AddResult::Updated => {}
            AddResult::Full(row) => {
                self.on_full_row(id, info, row, now);
                return;
            }
        }
        self.touch_order(id);
        if let Some(to) = info.to {
            if info.sampled == 0 {
                if let Some(n) = self.table.get_mut(&id) {
                    n.sampled = self.tick;
                }
                self.nat_add(to);
            }
        }
        self.events.push_back(Event::AddNode(info.addr));
    }

    fn remove_node(&mut self, id: &Id) {
        if let Some(n) = self.table.remove(id) {
            self.order.remove(&n.order);
            self.events.push_back(Event::RemoveNode(n.addr));
        }
    }

    fn on_full_row(&mut self, new_id: Id, new_node: NodeInfo, row: usize, now: Instant) {
        if !self.bootstrapped || self.repinging >= 3 {
            return;
        }
        let tick = self.tick;
        let mut oldest: Option<&super::routing_table::Entry<NodeInfo>> = None;
        for e in self.table.row(row) {
            if e.value.pinged == tick {
                continue;
            }
            let older = match oldest {
                None => true,
                Some(o) => {
                    o.value.pinged > e.value.pinged
                        || (o.value.pinged == e.value.pinged && o.value.added > e.value.added)
                }
            };
            if older {
                oldest = Some(e);
            }
        }
        let Some(oldest) = oldest else { return };
        if tick - oldest.value.pinged < RECENT_NODE && tick - oldest.value.added > OLD_NODE {
            return;
        }
        let (old, addr, last_seen) = (oldest.id, oldest.value.addr, oldest.value.seen);
        if let Some(n) = self.table.get_mut(&old) {
            n.pinged = tick;
        }
        self.repinging += 1;
        let owner = Owner::Reping {
            old,
            last_seen,
            new_id,
            new_node: Box::new(new_node),
        };
        let spec = RequestSpec {
            command: InternalCommand::PING.0,
            ..RequestSpec::default()
        };
        self.internal_request(addr, None, true, spec, owner, false, now);
    }

    fn swap(&mut self, old: &Id, new_id: Id, new_node: NodeInfo, now: Instant) {
        self.repinging = self.repinging.saturating_sub(1);
        self.remove_node(old);
        self.add_table_node(new_id, new_node, now);
    }

    fn check(&mut self, id: Id, now: Instant) {
        let tick = self.tick;
        let Some(node) = self.table.get_mut(&id) else {
            return;
        };
        node.pinged = tick;
        let (addr, last_seen) = (node.addr, node.seen);
        self.checks += 1;
        let spec = RequestSpec {
            command: InternalCommand::PING.0,
            ..RequestSpec::default()
        };
        self.internal_request(
            addr,
            None,
            true,
            spec,
            Owner::Check { id, last_seen },
            false,
            now,
        );
    }

    fn ping_some(&mut self, now: Instant) {
        let mut cnt = if self.inflight.len() > 2 { 3 } else { 5 };
        let Some((_, &oldest)) = self.order.first_key_value() else {
            self.refresh(now);
            return;
        };
        let tick = self.tick;
        if self
            .table
            .get(&oldest)
            .is_some_and(|n| tick - n.pinged < RECENT_NODE)
        {
            cnt = 2;
        }
        // Walk from the oldest; like the JS, a node pinged this tick uses up a slot without advancing.
        let walk: Vec<Id> = self.order.values().copied().collect();
        let mut i = 0;
        while cnt > 0 {
            cnt -= 1;
            let Some(id) = walk.get(i) else { continue };
            if self.table.get(id).is_none_or(|n| n.pinged == tick) {
                continue;
            }
            self.check(*id, now);
            i += 1;
        }
    }

    fn on_tick(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_tick) > SLEEPING_INTERVAL {
            self.on_wakeup();
            if self.bootstrapped {
                self.rebootstrap(now);
            }
        } else {
            self.tick += 1;
        }
        self.last_tick = now;
        if !self.bootstrapped {
            return;
        }
        if self.adaptive && self.ephemeral {
            self.stable_ticks -= 1;
            if self.stable_ticks <= 0 {
                if self.last_host == Some(self.nat.host()) {
                    self.stable_ticks = MORE_STABLE_TICKS;
                } else {
                    self.update_network_state(false, Purpose::Tick, now);
                }
            }
        }
        if self.tick & 7 == 0 {
            self.ping_some(now);
        }
        let refresh_due = {
            self.refresh_ticks -= 1;
            self.refresh_ticks <= 0
        };
        if (self.tick & 63 == 0 && self.order.len() < self.table.k()) || refresh_due {
            self.refresh(now);
        }
        self.down_hints_sent = 0;
        if let Some(state) = self
            .health
            .update(self.stats.responses, self.stats.timeouts)
        {
            self.set_health(state);
        }
    }

    fn set_health(&mut self, state: Health) {
        if state != self.health_state {
            self.health_state = state;
            self.events.push_back(Event::NetworkUpdate(state));
        }
    }

    fn on_wakeup(&mut self) {
        self.age_nodes();
        if self.adaptive && !self.ephemeral {
            self.ephemeral = true;
            self.events.push_back(Event::Ephemeral);
        }
        self.events.push_back(Event::Wakeup);
    }

    /// What `_onwakeup` does to the timers: every node looks old (pinged in two ticks), a refresh next
    /// tick, the network health and the stable-host check start over.
    fn age_nodes(&mut self) {
        self.tick += 2 * OLD_NODE;
        self.tick += 8 - (self.tick & 7) - 2;
        self.stable_ticks = MORE_STABLE_TICKS;
        self.refresh_ticks = 1;
        self.last_host = None;
        self.health.reset();
        self.set_health(Health::Online);
    }

    /// Bootstraps again after a network change, a wake-up or a resume: the NAT sampler starts afresh, a
    /// node configured firewalled is firewalled again until the probes prove it reachable, a persistent
    /// node (not a bootstrapper) turns ephemeral (its id was the old address's), and the bootstrap walk
    /// and NAT analysis of [`Self::new`] run again.
    fn rebootstrap(&mut self, now: Instant) {
        if self.config.public_address.is_none() {
            let had = (self.nat.host(), self.nat.port());
            self.nat = NatSampler::new();
            self.nonpersistent_samples.clear();
            if had != (None, 0) {
                self.events.push_back(Event::NatUpdate(None, 0));
            }
            self.firewalled = self.config.firewalled;
            if !self.ephemeral {
                self.ephemeral = true;
                self.events.push_back(Event::Ephemeral);
            }
        }
        self.network_check = None;
        self.start_bootstrap(now);
    }

    // ---------------------------------------------------------------- bootstrap and network state

    fn start_bootstrap(&mut self, now: Instant) {
        self.boot = Some(BootState {
            first: self.firewalled && self.config.quick_firewall && !self.force_persistent,
            test_nat: false,
            only_firewall: !self.force_persistent,
            again: self.bootstrapped,
        });
        self.boot_round = 0;
        self.start_boot_query(now);
    }

    /// Starts a bootstrap walk towards our id; only the newest one's end counts (it may end at once).
    fn start_boot_query(&mut self, now: Instant) {
        self.boot_query = Some(QueryId(self.next_query + 1));
        self.background_query(*self.table.id(), QueryKind::Bootstrap, now);
    }

    fn on_bootstrap_query_done(&mut self, now: Instant) {
        let Some(boot) = &self.boot else { return };
        if (self.bootstrapped && !boot.again) || (!boot.test_nat && !self.force_persistent) {
            self.finish_bootstrap();
            return;
        }
        let only_firewall = boot.only_firewall;
        let round = self.boot_round;
        self.update_network_state(only_firewall, Purpose::Bootstrap(round), now);
    }

    fn finish_bootstrap(&mut self) {
        let again = self.boot.take().is_some_and(|b| b.again);
        if self.bootstrapped {
            if again {
                self.events.push_back(Event::Rebootstrapped);
            }
            return;
        }
        self.bootstrapped = true;
        self.events.push_back(Event::Bootstrapped);
    }

    fn on_network_update_done(&mut self, purpose: Purpose, ok: bool, now: Instant) {
        let Purpose::Bootstrap(round) = purpose else {
            return;
        };
        if ok && round == 0 {
            self.boot_round = 1;
            self.start_boot_query(now);
        } else {
            self.finish_bootstrap();
        }
    }

    /// `_updateNetworkState(onlyFirewall)`.
    fn update_network_state(&mut self, only_firewall: bool, purpose: Purpose, now: Instant) {
        if self.network_check.is_some() || !self.ephemeral || (only_firewall && !self.firewalled) {
            self.on_network_update_done(purpose, false, now);
            return;
        }
        let (host, port) = (self.nat.host(), self.nat.port());
        if !only_firewall {
            self.stable_ticks = MORE_STABLE_TICKS;
            self.last_host = Some(host);
        }
        let Some(host) = host.filter(|_| port != 0) else {
            self.on_network_update_done(purpose, false, now);
            return;
        };
        if !self.firewalled {
            self.finish_network_update(only_firewall, purpose, host, port, None, now);
            return;
        }
        // `_checkIfFirewalled`: ask up to five recent nodes (plus the bootstrap nodes) to PING_NAT us.
        let mut targets: Vec<SocketAddrV4> = self
            .order
            .values()
            .rev()
            .filter_map(|id| self.table.get(id))
            .map(|n| n.addr)
            .take(5)
            .collect();
        if targets.len() < 5 {
            targets.extend(self.config.bootstrap.iter().copied());
        }
        if targets.is_empty() {
            self.on_network_update_done(purpose, false, now);
            return;
        }
        self.network_check = Some(NetworkCheck {
            only_firewall,
            purpose,
            host,
            port,
            sampler: NatSampler::new(),
            hosts: HashSet::new(),
            pending: targets.len(),
            node_count: targets.len(),
            pongs: Vec::new(),
        });
        let value = self.config.server_port.to_le_bytes().to_vec();
        for to in targets {
            let spec = RequestSpec {
                command: InternalCommand::PING_NAT.0,
                value: Some(value.clone()),
                ..RequestSpec::default()
            };
            self.internal_request(to, None, true, spec, Owner::Probe, false, now);
        }
    }

    fn on_probe_done(&mut self, reply: Option<Reply>, now: Instant) {
        let Some(check) = &mut self.network_check else {
            return;
        };
        if let Some(r) = reply {
            check.pongs.push(r);
        }
        check.pending = check.pending.saturating_sub(1);
        if check.pending > 0 {
            return;
        }
        let Some(mut check) = self.network_check.take() else {
            return;
        };
        let mut count = 0;
        for r in &check.pongs {
            if check.hosts.contains(r.from.ip()) {
                count += 1;
                check.sampler.add(*r.to.ip(), r.to.port());
            }
        }
        let firewalled = count < (if check.node_count >= 5 { 3 } else { 1 })
            || check.sampler.host().is_none()
            || self.nat.host() != check.sampler.host()
            || check.sampler.port() == 0
            || check.sampler.port() != self.config.server_port;
        if firewalled {
            self.on_network_update_done(check.purpose, false, now);
            return;
        }
        let (only_firewall, purpose, host, port) =
            (check.only_firewall, check.purpose, check.host, check.port);
        self.finish_network_update(only_firewall, purpose, host, port, Some(check.sampler), now);
    }

    fn finish_network_update(
        &mut self,
        only_firewall: bool,
        purpose: Purpose,
        host: Ipv4Addr,
        port: u16,
        sampler: Option<NatSampler>,
        now: Instant,
    ) {
        self.firewalled = false;
        if !self.ephemeral || Some(host) != self.nat.host() || port != self.nat.port() {
            self.on_network_update_done(purpose, false, now);
            return;
        }
        let (s_host, s_port) = match &sampler {
            Some(s) => (s.host(), s.port()),
            None => (self.nat.host(), self.nat.port()),
        };
        let Some(s_host) = s_host.filter(|h| *h == host && s_port != 0) else {
            self.on_network_update_done(purpose, false, now);
            return;
        };
        let id = node_id(&SocketAddrV4::new(s_host, s_port));
        if !only_firewall {
            self.ephemeral = false;
        }
        if let Some(s) = sampler {
            let prev = (self.nat.host(), self.nat.port());
            self.nonpersistent_samples.clear();
            self.nat = s;
            if prev != (self.nat.host(), self.nat.port()) {
                self.events
                    .push_back(Event::NatUpdate(self.nat.host(), self.nat.port()));
            }
        }
        if *self.table.id() != id {
            let old = std::mem::replace(&mut self.table, RoutingTable::new(id));
            for e in old.to_vec() {
                if e.id == id {
                    self.order.remove(&e.value.order);
                    continue;
                }
                if let AddResult::Full(_) = self.table.add(e.id, e.value.clone()) {
                    self.order.remove(&e.value.order);
                }
            }
            if self.bootstrapped {
                self.refresh(now);
            }
        }
        if !self.ephemeral {
            self.events.push_back(Event::Persistent);
        }
        self.on_network_update_done(purpose, true, now);
    }

    // ---------------------------------------------------------------- queries

    fn background_query(&mut self, target: Id, kind: QueryKind, now: Instant) -> QueryId {
        self.refresh_ticks = REFRESH_TICKS;
        let concurrency = self
            .config
            .concurrency
            .min(2.max(self.config.concurrency / 8));
        let spec = QuerySpec {
            target,
            command: InternalCommand::FIND_NODE.0,
            value: None,
        };
        let opts = QueryOpts {
            concurrency: Some(concurrency),
            ..QueryOpts::default()
        };
        self.start_query(kind, true, spec, opts, now)
    }

    fn start_query(
        &mut self,
        kind: QueryKind,
        internal: bool,
        spec: QuerySpec,
        opts: QueryOpts,
        now: Instant,
    ) -> QueryId {
        self.stats.queries += 1;
        self.next_query += 1;
        let id = QueryId(self.next_query);
        let concurrency = opts.concurrency.unwrap_or(self.config.concurrency).max(1);
        let retries = opts.retries.unwrap_or(
            if internal && spec.command == InternalCommand::DOWN_HINT.0 {
                3
            } else {
                5
            },
        );
        let mut q = Query {
            id,
            ended: None,
            kind,
            target: spec.target,
            internal,
            command: spec.command,
            value: spec.value,
            k: self.table.k(),
            concurrency,
            background_concurrency: concurrency,
            inflight: 0,
            slow: 0,
            slowdown: false,
            from_table: false,
            retries,
            successes: 0,
            errors: 0,
            seen: HashMap::new(),
            pending: Vec::new(),
            closest: Vec::new(),
            commit: opts.commit,
            committing: false,
            commit_pending: 0,
            commit_ok: 0,
            only_closest: false,
            force: opts.force,
        };
        for addr in opts.nodes.iter().rev() {
            self.add_pending(
                &mut q,
                id,
                QNode {
                    id: Some(node_id(addr)),
                    addr: *addr,
                },
                None,
                now,
            );
        }
        q.only_closest = opts.only_closest_nodes;
        // `_open`
        self.add_from_table(&mut q, id, now);
        if q.pending.len() < q.k {
            for b in self.config.bootstrap.clone() {
                self.add_pending(
                    &mut q,
                    id,
                    QNode {
                        id: Some(node_id(&b)),
                        addr: b,
                    },
                    None,
                    now,
                );
            }
        }
        self.queries.insert(id, q);
        self.with_query(id, now, |dht, q, now| dht.read_more(q, now));
        id
    }

    /// Runs `f` on a query taken out of the map, putting it back unless it ended meanwhile.
    fn with_query(
        &mut self,
        id: QueryId,
        now: Instant,
        f: impl FnOnce(&mut Self, &mut Query, Instant),
    ) {
        let Some(mut q) = self.queries.remove(&id) else {
            return;
        };
        f(self, &mut q, now);
        match q.ended.take() {
            Some(result) => self.end_query(id, q, result, now),
            None => {
                self.queries.insert(id, q);
            }
        }
    }

    fn add_from_table(&mut self, q: &mut Query, qid: QueryId, now: Instant) {
        if q.pending.len() >= q.k {
            return;
        }
        q.from_table = true;
        let want = q.k - q.pending.len();
        let nodes: Vec<QNode> = self
            .table
            .closest(&q.target, want)
            .iter()
            .map(|e| QNode {
                id: Some(e.id),
                addr: e.value.addr,
            })
            .collect();
        for n in nodes {
            self.add_pending(q, qid, n, None, now);
        }
    }

    fn add_pending(
        &mut self,
        q: &mut Query,
        qid: QueryId,
        node: QNode,
        referrer: Option<(SocketAddrV4, Option<Id>)>,
        now: Instant,
    ) -> bool {
        if q.only_closest {
            return false;
        }
        let is_closer = q.is_closer(node.id.as_ref());
        match q.seen.get_mut(&node.addr) {
            Some(Seen::Done) => is_closer,
            Some(Seen::Down) => {
                if let Some(r) = referrer {
                    self.down_hint(qid, r, node.addr, now);
                }
                is_closer
            }
            Some(Seen::Refs(refs)) => {
                if let Some(r) = referrer {
                    refs.push(r);
                }
                is_closer
            }
            None => {
                if !is_closer {
                    return false;
                }
                q.seen
                    .insert(node.addr, Seen::Refs(referrer.into_iter().collect()));
                q.pending.push(node);
                true
            }
        }
    }

    fn down_hint(
        &mut self,
        qid: QueryId,
        to: (SocketAddrV4, Option<Id>),
        down: SocketAddrV4,
        now: Instant,
    ) {
        if let Some(limit) = self.config.down_hints_rate_limit {
            if self.down_hints_sent >= limit {
                return;
            }
        }
        self.down_hints_sent += 1;
        let spec = RequestSpec {
            command: InternalCommand::DOWN_HINT.0,
            value: Some(encode_ipv4_peer(&down).to_vec()),
            ..RequestSpec::default()
        };
        self.internal_request(to.0, to.1, true, spec, Owner::QueryHint(qid), false, now);
    }

    fn read_more(&mut self, q: &mut Query, now: Instant) {
        if q.committing {
            return;
        }
        let qid = q.id;
        let concurrency = (if q.slowdown { 3 } else { q.concurrency }) + q.slow;
        while q.inflight < concurrency {
            let Some(next) = q.pending.pop() else { break };
            if next.id.is_some() && !q.is_closer(next.id.as_ref()) {
                continue;
            }
            self.visit(q, qid, next, now);
        }
        if !q.from_table && q.successes == 0 && q.errors == 0 {
            q.slowdown = true;
        }
        if !q.pending.is_empty() {
            return;
        }
        if q.inflight == 0
            || (q.slow == q.inflight && q.closest.len() >= q.k && !self.waits_for_slow_closer(q))
        {
            if !q.from_table && (q.successes as f64) < q.k as f64 / 4.0 {
                self.add_from_table(q, qid, now);
                self.read_more(q, now);
                return;
            }
            self.flush(q, qid, now);
        }
    }

    /// Whether a slow request of this query (one whose first send timed out) goes to a node closer than its k-th
    /// closest reply and has been sent at most [`SLOW_CLOSER_SENDS`] times: the query waits for its reply before it
    /// ends. JS ends a query as soon as every request in flight is slow, so one lost datagram drops a node of the
    /// true top k from the result (dht_sim, 1,000 nodes, 5% loss: 18.75 of the true 20 on average, 18 at worst).
    fn waits_for_slow_closer(&self, q: &Query) -> bool {
        self.inflight.values().any(|r| {
            matches!(r.owner, Owner::Query(id) if id == q.id)
                && !r.cycle_armed
                && r.sent <= SLOW_CLOSER_SENDS
                && r.to_id.is_some()
                && q.is_closer(r.to_id.as_ref())
        })
    }

    fn visit(&mut self, q: &mut Query, qid: QueryId, to: QNode, now: Instant) {
        q.inflight += 1;
        let spec = RequestSpec {
            token: None,
            command: q.command,
            target: Some(q.target),
            value: q.value.clone(),
        };
        let tid = self.create_request(to.addr, to.id, q.internal, spec, Owner::Query(qid), now);
        if let Some(r) = self.inflight.get_mut(&tid) {
            r.retries = if q.force { 0 } else { q.retries };
            r.cycle_armed = true;
        }
        self.send(tid, q.force, now);
    }

    fn dec(q: &mut Query, cycle_fired: bool) {
        if cycle_fired {
            q.slow = q.slow.saturating_sub(1);
        }
        q.inflight = q.inflight.saturating_sub(1);
    }

    fn on_visit(&mut self, q: &mut Query, qid: QueryId, m: Reply, cycle_fired: bool, now: Instant) {
        Self::dec(q, cycle_fired);
        q.seen.insert(m.from, Seen::Done);
        if q.committing {
            return;
        }
        if m.error == ErrorCode::OK {
            q.successes += 1;
        } else {
            q.errors += 1;
        }
        if m.error == ErrorCode::OK && m.from_id.is_some() && q.is_closer(m.from_id.as_ref()) {
            q.push_closest(m.clone());
        }
        let own = *self.table.id();
        for addr in &m.closer_nodes {
            let id = node_id(addr);
            if !self.allowed(addr) || id == own {
                continue;
            }
            if !self.add_pending(
                q,
                qid,
                QNode {
                    id: Some(id),
                    addr: *addr,
                },
                Some((m.from, m.from_id)),
                now,
            ) {
                break;
            }
        }
        if !q.from_table && q.successes + q.errors >= q.concurrency {
            q.slowdown = false;
        }
        if m.error != ErrorCode::OK {
            self.read_more(q, now);
            return;
        }
        match q.kind {
            QueryKind::User => self
                .events
                .push_back(Event::QueryReply { id: qid, reply: m }),
            QueryKind::Background | QueryKind::Bootstrap => {
                q.concurrency = if self.inflight.len() < 3 {
                    self.config.concurrency
                } else {
                    q.background_concurrency
                };
                if q.kind == QueryKind::Bootstrap {
                    self.quick_nat_probe(m.from, now);
                }
            }
        }
        self.read_more(q, now);
    }

    fn quick_nat_probe(&mut self, to: SocketAddrV4, now: Instant) {
        let Some(boot) = &mut self.boot else { return };
        if !boot.first {
            return;
        }
        boot.first = false;
        let spec = RequestSpec {
            command: InternalCommand::PING_NAT.0,
            value: Some(self.config.server_port.to_le_bytes().to_vec()),
            ..RequestSpec::default()
        };
        self.internal_request(to, None, true, spec, Owner::QuickNat, false, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_visit_error(
        &mut self,
        q: &mut Query,
        qid: QueryId,
        to: SocketAddrV4,
        _to_id: Option<Id>,
        error: RequestError,
        cycle_fired: bool,
        now: Instant,
    ) {
        if error == RequestError::Timeout {
            if let Some(Seen::Refs(refs)) = q.seen.insert(to, Seen::Down) {
                for r in refs {
                    self.down_hint(qid, r, to, now);
                }
            }
        }
        Self::dec(q, cycle_fired);
        q.errors += 1;
        self.read_more(q, now);
    }

    fn flush(&mut self, q: &mut Query, qid: QueryId, now: Instant) {
        if q.committing {
            return;
        }
        q.committing = true;
        if q.commit == Commit::None {
            Self::mark_ended(q, Ok(()));
            return;
        }
        if q.closest.is_empty() {
            Self::mark_ended(q, Err(QueryError::TooFewNodes));
            return;
        }
        if q.commit == Commit::Manual {
            self.events.push_back(Event::QueryCommit {
                id: qid,
                closest: q.closest.clone(),
            });
            return;
        }
        let replies = q.closest.clone();
        q.commit_pending = replies.len();
        let mut immediate_failures = 0;
        for r in replies {
            let Some(token) = r.token else {
                immediate_failures += 1;
                continue;
            };
            let spec = RequestSpec {
                token: Some(token),
                command: q.command,
                target: Some(q.target),
                value: q.value.clone(),
            };
            let tid = self.create_request(r.from, None, false, spec, Owner::Commit(qid), now);
            self.send(tid, false, now);
        }
        q.commit_pending -= immediate_failures;
        if q.commit_pending == 0 {
            Self::mark_ended(q, Err(QueryError::CommitFailed));
        }
    }

    fn on_commit_done(&mut self, qid: QueryId, ok: bool, now: Instant) {
        self.with_query(qid, now, |_, q, _| {
            if ok {
                q.commit_ok += 1;
            }
            q.commit_pending = q.commit_pending.saturating_sub(1);
            if q.commit_pending == 0 {
                Self::mark_ended(
                    q,
                    if q.commit_ok > 0 {
                        Ok(())
                    } else {
                        Err(QueryError::CommitFailed)
                    },
                );
            }
        });
    }

    fn mark_ended(q: &mut Query, result: Result<(), QueryError>) {
        q.ended = Some(result);
    }

    fn end_query(&mut self, id: QueryId, q: Query, result: Result<(), QueryError>, now: Instant) {
        // The query's session ends with it: drop its outstanding requests (not the commit ones).
        let tids: Vec<u16> = self
            .inflight
            .iter()
            .filter(|(_, r)| matches!(r.owner, Owner::Query(x) | Owner::QueryHint(x) if x == id))
            .map(|(t, _)| *t)
            .collect();
        for tid in tids {
            self.remove_inflight(tid);
        }
        match q.kind {
            QueryKind::User => self.events.push_back(Event::QueryDone {
                id,
                closest: q.closest,
                result,
            }),
            QueryKind::Background => {}
            QueryKind::Bootstrap => {
                if self.boot_query == Some(id) {
                    self.boot_query = None;
                    self.on_bootstrap_query_done(now);
                }
            }
        }
    }
}
