//! A tokio driver for the sans-IO [`Dht`] node: owns its two sockets and the clock, and exposes an async
//! handle. The sockets are reached through the small [`DatagramSocket`] trait so the driver can later run
//! on the UDX socket (which shares its UDP socket with the DHT) instead of a plain `UdpSocket`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::handler::{Handled, RequestHandler, Responder};
use super::messages::{ErrorCode, Id, InternalCommand};
use super::node::{
    Commit, Config, Dht, Event, IncomingRequest, QueryError, QueryId, QueryOpts, QuerySpec, Reply,
    ReplyOpts, RequestError, RequestId, RequestOpts, RequestSpec, Socket,
};

/// A datagram socket the driver can run on. `recv_from` must be cancel-safe (it is raced against timers).
pub trait DatagramSocket: Send + Sync + 'static {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr)
        -> impl Future<Output = io::Result<usize>> + Send;
    /// Receives one datagram.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
    /// The bound address.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl DatagramSocket for tokio::net::UdpSocket {
    fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        tokio::net::UdpSocket::send_to(self, buf, to)
    }
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

/// What a command handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerReply {
    /// Reply with this value (and a token and closer nodes, as `req.reply(value)`).
    Value(Option<Vec<u8>>),
    /// Reply with an error code.
    Error(ErrorCode),
    /// Send nothing.
    Ignore,
}

/// A handler for a custom (non-internal) command.
pub type CommandHandler = Arc<dyn Fn(&IncomingRequest) -> HandlerReply + Send + Sync>;

/// Builds the commit request for one of a query's closest replies (`None` counts as a failed commit).
pub type CommitFn = Box<dyn Fn(&Reply) -> Option<RequestSpec> + Send>;

/// The outcome of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOutcome {
    /// Every successful reply, in arrival order.
    pub replies: Vec<Reply>,
    /// The closest nodes that replied, closest first.
    pub closest: Vec<Reply>,
    /// Success or the failure.
    pub result: Result<(), QueryError>,
}

/// Errors of the handle.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The driver task is gone.
    #[error("the DHT node was shut down")]
    Closed,
    /// Binding a socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// Only IPv4 is supported.
    #[error("only IPv4 addresses are supported")]
    NotIpv4,
}

/// A snapshot of the node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// Our id when persistent.
    pub id: Option<Id>,
    /// Whether the node is ephemeral.
    pub ephemeral: bool,
    /// Whether requests go out of the client socket.
    pub firewalled: bool,
    /// Whether the bootstrap finished.
    pub bootstrapped: bool,
    /// The public address estimate.
    pub public_host: Option<Ipv4Addr>,
    /// The public port estimate (0 = unknown).
    pub public_port: u16,
    /// Routing-table nodes, most recently seen first.
    pub nodes: Vec<SocketAddrV4>,
    /// Whether the node is suspended.
    pub suspended: bool,
}

/// What happens to the node's network ([`DhtHandle::events`]), as the JS node's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkEvent {
    /// The machine's interfaces or addresses changed (`network-change`); a re-bootstrap runs.
    Change,
    /// The machine slept (`wakeup`); a re-bootstrap runs.
    Wakeup,
    /// The node was suspended (`suspend`).
    Suspended,
    /// The node was resumed (`resume`); a re-bootstrap runs.
    Resumed,
    /// A re-bootstrap finished: servers re-announce now.
    Rebootstrapped,
}

#[derive(Clone)]
enum Handler {
    Sync(CommandHandler),
    Channel(mpsc::UnboundedSender<IncomingRequest>),
}

enum Command {
    Request {
        spec: RequestSpec,
        to: SocketAddrV4,
        opts: RequestOpts,
        internal_ping: bool,
        tx: oneshot::Sender<Result<Reply, RequestError>>,
    },
    Query {
        spec: QuerySpec,
        opts: QueryOpts,
        find_node: bool,
        commit: Option<CommitFn>,
        stream: Option<mpsc::UnboundedSender<Reply>>,
        tx: oneshot::Sender<QueryOutcome>,
    },
    Register {
        command: u64,
        handler: Handler,
        done: oneshot::Sender<()>,
    },
    Reply {
        req: Box<IncomingRequest>,
        value: Option<Vec<u8>>,
        opts: ReplyOpts,
    },
    Error {
        req: Box<IncomingRequest>,
        code: ErrorCode,
        opts: ReplyOpts,
    },
    Relay {
        req: Box<IncomingRequest>,
        value: Option<Vec<u8>>,
        to: SocketAddrV4,
    },
    AddNode(SocketAddrV4),
    Claim {
        target: Id,
        tx: Option<mpsc::UnboundedSender<IncomingRequest>>,
        done: oneshot::Sender<()>,
    },
    SetHandler(Box<dyn RequestHandler>, oneshot::Sender<()>),
    State(oneshot::Sender<NodeState>),
    Suspend(oneshot::Sender<()>),
    Resume(oneshot::Sender<()>),
    NetworkChanged,
}

/// A handle to a running node. Cloneable; the node stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct DhtHandle {
    tx: mpsc::UnboundedSender<Command>,
    bootstrapped: watch::Receiver<bool>,
    rebootstraps: watch::Receiver<u64>,
    events: broadcast::Sender<NetworkEvent>,
    server_addr: SocketAddrV4,
    client_addr: SocketAddrV4,
}

fn v4(a: SocketAddr) -> Result<SocketAddrV4, DriverError> {
    match a {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(DriverError::NotIpv4),
    }
}

impl DhtHandle {
    /// Binds a server socket on `host:port` (0 = any port) and a client socket on `host:0`, then runs a node
    /// with `config` on them. `config.server_port` is filled in; for a bootstrapper
    /// ([`Config::bootstrapper`]) pass its public address in the config.
    pub async fn bind(host: Ipv4Addr, port: u16, config: Config) -> Result<Self, DriverError> {
        let server = tokio::net::UdpSocket::bind(SocketAddrV4::new(host, port)).await?;
        let client = tokio::net::UdpSocket::bind(SocketAddrV4::new(host, 0)).await?;
        Self::spawn(config, server, client)
    }

    /// Runs a node on two already-bound sockets (spawns a tokio task).
    pub fn spawn<S: DatagramSocket>(
        mut config: Config,
        server: S,
        client: S,
    ) -> Result<Self, DriverError> {
        let server_addr = v4(server.local_addr()?)?;
        let client_addr = v4(client.local_addr()?)?;
        config.server_port = server_addr.port();
        let (tx, rx) = mpsc::unbounded_channel();
        let (btx, brx) = watch::channel(false);
        let (rtx, rrx) = watch::channel(0);
        let (events, _) = broadcast::channel(64);
        let dht = Dht::new(config, Instant::now());
        let task = Task {
            dht,
            server: Arc::new(server),
            client: Arc::new(client),
            rx,
            bootstrapped: btx,
            rebootstraps: rtx,
            events: events.clone(),
            requests: HashMap::new(),
            queries: HashMap::new(),
            handlers: HashMap::new(),
            handler: None,
            commit_requests: HashMap::new(),
            claims: HashMap::new(),
        };
        tokio::spawn(task.run());
        Ok(Self {
            tx,
            bootstrapped: brx,
            rebootstraps: rrx,
            events,
            server_addr,
            client_addr,
        })
    }

    /// The server socket's local address.
    pub fn server_addr(&self) -> SocketAddrV4 {
        self.server_addr
    }

    /// The client socket's local address.
    pub fn client_addr(&self) -> SocketAddrV4 {
        self.client_addr
    }

    /// Waits until the bootstrap finished.
    pub async fn bootstrapped(&self) -> Result<(), DriverError> {
        let mut rx = self.bootstrapped.clone();
        rx.wait_for(|b| *b).await.map_err(|_| DriverError::Closed)?;
        Ok(())
    }

    /// The node's network events (`network-change`, `wakeup`, `suspend`, `resume`, and the end of each
    /// re-bootstrap), from now on.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// How many re-bootstraps (after a network change, a wake-up or a resume) have finished; changes when
    /// one finishes. What servers re-announce on.
    pub fn rebootstraps(&self) -> watch::Receiver<u64> {
        self.rebootstraps.clone()
    }

    /// Tells the node that the machine's network changed: it re-bootstraps and analyses its NAT again
    /// (what a change seen by [`Self::watch_interfaces`] does).
    pub fn network_changed(&self) -> Result<(), DriverError> {
        self.tx
            .send(Command::NetworkChanged)
            .map_err(|_| DriverError::Closed)
    }

    /// Suspends the node (`dht.suspend()`): requests and queries in flight fail, new ones fail at once,
    /// datagrams are dropped and no timer runs until [`Self::resume`].
    pub async fn suspend(&self) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Suspend(tx))
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// Resumes a suspended node (`dht.resume()`); it re-bootstraps.
    pub async fn resume(&self) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Resume(tx))
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// Watches the machine's interface addresses every `every` ([`super::interfaces`]) and calls
    /// [`Self::network_changed`] when they change (udx-native's interface watcher). The watcher ends with
    /// the node; it does not keep the node alive.
    pub fn watch_interfaces(&self, every: Duration) {
        let weak = self.tx.downgrade();
        tokio::spawn(async move {
            let mut detector = super::interfaces::ChangeDetector::new();
            detector.update(super::interfaces::snapshot());
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(tx) = weak.upgrade() else { return };
                if tx.is_closed() {
                    return;
                }
                if detector.update(super::interfaces::snapshot()) {
                    tracing::debug!("network interfaces changed");
                    if tx.send(Command::NetworkChanged).is_err() {
                        return;
                    }
                }
            }
        });
    }

    /// Pings a node.
    pub async fn ping(&self, to: SocketAddrV4) -> Result<Reply, DriverError> {
        let spec = RequestSpec {
            command: InternalCommand::PING.0,
            ..RequestSpec::default()
        };
        self.send_request(spec, to, RequestOpts::default(), true)
            .await
    }

    /// Sends a user request.
    pub async fn request(
        &self,
        spec: RequestSpec,
        to: SocketAddrV4,
        opts: RequestOpts,
    ) -> Result<Reply, DriverError> {
        self.send_request(spec, to, opts, false).await
    }

    async fn send_request(
        &self,
        spec: RequestSpec,
        to: SocketAddrV4,
        opts: RequestOpts,
        internal_ping: bool,
    ) -> Result<Reply, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Request {
                spec,
                to,
                opts,
                internal_ping,
                tx,
            })
            .map_err(|_| DriverError::Closed)?;
        Ok(rx.await.map_err(|_| DriverError::Closed)??)
    }

    /// Runs a FIND_NODE query to completion.
    pub async fn find_node(&self, target: Id) -> Result<QueryOutcome, DriverError> {
        let spec = QuerySpec {
            target,
            command: InternalCommand::FIND_NODE.0,
            value: None,
        };
        self.run_query(spec, QueryOpts::default(), true, None, None)
            .await
    }

    /// Runs a user query to completion.
    pub async fn query(
        &self,
        spec: QuerySpec,
        opts: QueryOpts,
    ) -> Result<QueryOutcome, DriverError> {
        self.run_query(spec, opts, false, None, None).await
    }

    /// [`Self::query`] (or [`Self::query_with_commit`] when `commit` is given) that also sends each
    /// successful reply to `replies` as it arrives, so a caller can act on early replies (hyperswarm dials
    /// the peers of a lookup while the query still runs). `replies` is dropped when the query finishes.
    pub async fn query_streaming(
        &self,
        spec: QuerySpec,
        mut opts: QueryOpts,
        commit: Option<CommitFn>,
        replies: mpsc::UnboundedSender<Reply>,
    ) -> Result<QueryOutcome, DriverError> {
        if commit.is_some() {
            opts.commit = Commit::Manual;
        }
        self.run_query(spec, opts, false, commit, Some(replies))
            .await
    }

    /// Runs a user query whose commit phase sends, to each closest node that replied, the request
    /// `commit` builds from its reply (typically using the reply's token and the node id, as hyperdht's
    /// announce does). The query succeeds when at least one commit request got a response.
    pub async fn query_with_commit(
        &self,
        spec: QuerySpec,
        mut opts: QueryOpts,
        commit: impl Fn(&Reply) -> Option<RequestSpec> + Send + 'static,
    ) -> Result<QueryOutcome, DriverError> {
        opts.commit = Commit::Manual;
        self.run_query(spec, opts, false, Some(Box::new(commit)), None)
            .await
    }

    async fn run_query(
        &self,
        spec: QuerySpec,
        opts: QueryOpts,
        find_node: bool,
        commit: Option<CommitFn>,
        stream: Option<mpsc::UnboundedSender<Reply>>,
    ) -> Result<QueryOutcome, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Query {
                spec,
                opts,
                find_node,
                commit,
                stream,
                tx,
            })
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// Registers the handler of a custom command (in effect when this returns). Commands without a
    /// handler are answered with UNKNOWN_COMMAND, as a JS node without `request` listeners does.
    pub async fn on_command(
        &self,
        command: u64,
        handler: impl Fn(&IncomingRequest) -> HandlerReply + Send + Sync + 'static,
    ) -> Result<(), DriverError> {
        self.register(command, Handler::Sync(Arc::new(handler)))
            .await
    }

    async fn register(&self, command: u64, handler: Handler) -> Result<(), DriverError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Register {
                command,
                handler,
                done,
            })
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// Delivers the requests for a custom command on a channel instead (in effect when this returns); answer them later with
    /// [`Self::reply`], [`Self::error`] or [`Self::relay`]. Requests arriving after the receiver is
    /// dropped are answered with UNKNOWN_COMMAND.
    pub async fn subscribe(
        &self,
        command: u64,
    ) -> Result<mpsc::UnboundedReceiver<IncomingRequest>, DriverError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.register(command, Handler::Channel(tx)).await?;
        Ok(rx)
    }

    /// Replies to a request received through [`Self::subscribe`].
    pub fn reply(
        &self,
        req: &IncomingRequest,
        value: Option<Vec<u8>>,
        opts: ReplyOpts,
    ) -> Result<(), DriverError> {
        let req = Box::new(req.clone());
        self.tx
            .send(Command::Reply { req, value, opts })
            .map_err(|_| DriverError::Closed)
    }

    /// Answers a request received through [`Self::subscribe`] with an error code.
    pub fn error(
        &self,
        req: &IncomingRequest,
        code: ErrorCode,
        opts: ReplyOpts,
    ) -> Result<(), DriverError> {
        let req = Box::new(req.clone());
        self.tx
            .send(Command::Error { req, code, opts })
            .map_err(|_| DriverError::Closed)
    }

    /// Forwards a request to another node under its original tid (`req.relay(value, to)`).
    pub fn relay(
        &self,
        req: &IncomingRequest,
        value: Option<Vec<u8>>,
        to: SocketAddrV4,
    ) -> Result<(), DriverError> {
        let req = Box::new(req.clone());
        self.tx
            .send(Command::Relay { req, value, to })
            .map_err(|_| DriverError::Closed)
    }

    /// Installs the node's [`RequestHandler`] (replacing any earlier one), in effect when this returns: it
    /// sees every request no claim took ([`Self::claim_target`]) before the [`Self::on_command`] handlers,
    /// and answers the ones it knows (a protocol built on dht-rpc serves its commands this way, as
    /// hyperdht's persistent store does).
    pub async fn set_handler(&self, handler: impl RequestHandler) -> Result<(), DriverError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::SetHandler(Box::new(handler), done))
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// Delivers the requests whose target is `target` and that the installed handler lets be claimed
    /// ([`RequestHandler::claimable`]) on the returned channel, ahead of the handler itself and of command
    /// handlers: the node hosts the service of that target (hyperdht's router in its `onpeerhandshake`
    /// state, for one). In effect when this returns; [`Self::release_target`] undoes it. Requests arriving
    /// after the receiver is dropped go on to the handler.
    pub async fn claim_target(
        &self,
        target: Id,
    ) -> Result<mpsc::UnboundedReceiver<IncomingRequest>, DriverError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Claim {
                target,
                tx: Some(tx),
                done,
            })
            .map_err(|_| DriverError::Closed)?;
        wait.await.map_err(|_| DriverError::Closed)?;
        Ok(rx)
    }

    /// Undoes [`Self::claim_target`].
    pub async fn release_target(&self, target: Id) -> Result<(), DriverError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Claim {
                target,
                tx: None,
                done,
            })
            .map_err(|_| DriverError::Closed)?;
        wait.await.map_err(|_| DriverError::Closed)
    }

    /// Adds a node to the routing table.
    pub fn add_node(&self, addr: SocketAddrV4) -> Result<(), DriverError> {
        self.tx
            .send(Command::AddNode(addr))
            .map_err(|_| DriverError::Closed)
    }

    /// The node's current state.
    pub async fn state(&self) -> Result<NodeState, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::State(tx))
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }
}

struct PendingQuery {
    replies: Vec<Reply>,
    stream: Option<mpsc::UnboundedSender<Reply>>,
    commit: Option<CommitFn>,
    commits_pending: usize,
    commits_ok: usize,
    tx: oneshot::Sender<QueryOutcome>,
}

struct Task<S> {
    dht: Dht,
    server: Arc<S>,
    client: Arc<S>,
    rx: mpsc::UnboundedReceiver<Command>,
    bootstrapped: watch::Sender<bool>,
    rebootstraps: watch::Sender<u64>,
    events: broadcast::Sender<NetworkEvent>,
    requests: HashMap<RequestId, oneshot::Sender<Result<Reply, RequestError>>>,
    queries: HashMap<QueryId, PendingQuery>,
    handlers: HashMap<u64, Handler>,
    handler: Option<Box<dyn RequestHandler>>,
    commit_requests: HashMap<RequestId, QueryId>,
    claims: HashMap<Id, mpsc::UnboundedSender<IncomingRequest>>,
}

/// A clock that keeps counting while the machine sleeps (`CLOCK_BOOTTIME`), unlike [`Instant`]; `None`
/// where there is none.
fn boot_clock() -> Option<Duration> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to.
        if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } == 0 {
            return Some(Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            ));
        }
    }
    None
}

/// How much more the boot clock advanced than the monotonic one before the machine counts as having
/// slept (dht-rpc's `SLEEPING_INTERVAL`).
const SLEPT: Duration = Duration::from_secs(15);

/// Notices a system sleep: the boot clock ran ahead of the monotonic clock.
struct SleepDetector {
    last: Option<(Instant, Duration)>,
}

impl SleepDetector {
    fn new() -> Self {
        Self {
            last: boot_clock().map(|b| (Instant::now(), b)),
        }
    }

    fn slept(&mut self, now: Instant) -> bool {
        let Some(boot) = boot_clock() else {
            return false;
        };
        let slept = self.last.is_some_and(|(mono, prev)| {
            boot.saturating_sub(prev)
                .saturating_sub(now.saturating_duration_since(mono))
                > SLEPT
        });
        self.last = Some((now, boot));
        slept
    }
}

impl<S: DatagramSocket> Task<S> {
    async fn run(mut self) {
        let mut sbuf = vec![0u8; 65536];
        let mut cbuf = vec![0u8; 65536];
        let mut sleep_detector = SleepDetector::new();
        loop {
            self.flush().await;
            let deadline = self.dht.poll_timeout().map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let server = self.server.clone();
            let client = self.client.clone();
            tokio::select! {
                r = server.recv_from(&mut sbuf) => {
                    if let Ok((n, from)) = r {
                        self.dht.handle_datagram(Socket::Server, from, &sbuf[..n], Instant::now());
                    }
                }
                r = client.recv_from(&mut cbuf) => {
                    if let Ok((n, from)) = r {
                        self.dht.handle_datagram(Socket::Client, from, &cbuf[..n], Instant::now());
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                _ = sleep => {
                    let now = Instant::now();
                    if sleep_detector.slept(now) {
                        tracing::debug!("the machine slept: re-bootstrapping");
                        self.dht.woke_up(now);
                    }
                    self.dht.handle_timeout(now);
                    if let Some(handler) = &mut self.handler {
                        handler.on_tick(now);
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Request {
                spec,
                to,
                opts,
                internal_ping,
                tx,
            } => {
                let id = if internal_ping {
                    self.dht.ping(to, now)
                } else {
                    self.dht.request(spec, to, opts, now)
                };
                self.requests.insert(id, tx);
            }
            Command::Query {
                spec,
                opts,
                find_node,
                commit,
                stream,
                tx,
            } => {
                let id = if find_node {
                    self.dht.find_node(spec.target, opts, now)
                } else {
                    self.dht.query(spec, opts, now)
                };
                self.queries.insert(
                    id,
                    PendingQuery {
                        replies: Vec::new(),
                        stream,
                        commit,
                        commits_pending: 0,
                        commits_ok: 0,
                        tx,
                    },
                );
            }
            Command::Register {
                command,
                handler,
                done,
            } => {
                self.handlers.insert(command, handler);
                let _ = done.send(());
            }
            Command::AddNode(addr) => self.dht.add_node(addr, now),
            Command::Claim { target, tx, done } => {
                match tx {
                    Some(tx) => self.claims.insert(target, tx),
                    None => self.claims.remove(&target),
                };
                let _ = done.send(());
            }
            Command::SetHandler(handler, done) => {
                self.handler = Some(handler);
                let _ = done.send(());
            }
            Command::Reply { req, value, opts } => self.dht.reply(&req, value, opts),
            Command::Error { req, code, opts } => self.dht.error(&req, code, opts),
            Command::Relay { req, value, to } => self.dht.relay(&req, value, to),
            Command::State(tx) => {
                let (public_host, public_port) = self.dht.public_address();
                let _ = tx.send(NodeState {
                    id: self.dht.id(),
                    ephemeral: self.dht.is_ephemeral(),
                    firewalled: self.dht.is_firewalled(),
                    bootstrapped: self.dht.is_bootstrapped(),
                    public_host,
                    public_port,
                    nodes: self.dht.nodes(),
                    suspended: self.dht.is_suspended(),
                });
            }
            Command::Suspend(done) => {
                self.dht.suspend(now);
                let _ = done.send(());
            }
            Command::Resume(done) => {
                self.dht.resume(now);
                let _ = done.send(());
            }
            Command::NetworkChanged => self.dht.network_changed(now),
        }
    }

    async fn flush(&mut self) {
        loop {
            let mut idle = true;
            while let Some(e) = self.dht.poll_event() {
                idle = false;
                self.event(e);
            }
            while let Some(t) = self.dht.poll_transmit() {
                idle = false;
                let sock = match t.socket {
                    Socket::Server => &self.server,
                    Socket::Client => &self.client,
                };
                if let Err(e) = sock.send_to(&t.data, SocketAddr::V4(t.to)).await {
                    tracing::debug!("dht send to {} failed: {e}", t.to);
                }
            }
            if idle {
                return;
            }
        }
    }

    fn commit_settled(&mut self, id: QueryId, ok: bool) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        q.commits_pending = q.commits_pending.saturating_sub(1);
        if ok {
            q.commits_ok += 1;
        }
        if q.commits_pending == 0 {
            let ok = q.commits_ok > 0;
            self.dht.finish_commit(id, ok, Instant::now());
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Response { id, reply } => {
                if let Some(qid) = self.commit_requests.remove(&id) {
                    self.commit_settled(qid, true);
                } else if let Some(tx) = self.requests.remove(&id) {
                    let _ = tx.send(Ok(reply));
                }
            }
            Event::RequestFailed { id, error } => {
                if let Some(qid) = self.commit_requests.remove(&id) {
                    self.commit_settled(qid, false);
                } else if let Some(tx) = self.requests.remove(&id) {
                    let _ = tx.send(Err(error));
                }
            }
            Event::QueryCommit { id, closest } => {
                let now = Instant::now();
                let Some(q) = self.queries.get_mut(&id) else {
                    self.dht.finish_commit(id, false, now);
                    return;
                };
                let specs: Vec<(SocketAddrV4, RequestSpec)> = match &q.commit {
                    Some(f) => closest
                        .iter()
                        .filter_map(|r| f(r).map(|s| (r.from, s)))
                        .collect(),
                    None => Vec::new(),
                };
                q.commits_pending = specs.len();
                if specs.is_empty() {
                    self.dht.finish_commit(id, false, now);
                    return;
                }
                for (to, spec) in specs {
                    let rid = self.dht.request(spec, to, RequestOpts::default(), now);
                    self.commit_requests.insert(rid, id);
                }
            }
            Event::QueryReply { id, reply } => {
                if let Some(q) = self.queries.get_mut(&id) {
                    if let Some(stream) = &q.stream {
                        if stream.send(reply.clone()).is_err() {
                            q.stream = None;
                        }
                    }
                    q.replies.push(reply);
                }
            }
            Event::QueryDone {
                id,
                closest,
                result,
            } => {
                if let Some(q) = self.queries.remove(&id) {
                    let _ = q.tx.send(QueryOutcome {
                        replies: q.replies,
                        closest,
                        result,
                    });
                }
            }
            Event::Request(req) => {
                if let Some(handler) = &mut self.handler {
                    if !req.internal && handler.claimable(&req) {
                        if let Some(tx) = req.target.and_then(|t| self.claims.get(&t)) {
                            if tx.send(req.clone()).is_ok() {
                                return;
                            }
                        }
                    }
                    let mut node = Responder::new(&mut self.dht);
                    if handler.on_request(&req, &mut node, Instant::now()) == Handled::Done {
                        return;
                    }
                }
                let answer = match self.handlers.get(&req.command) {
                    Some(Handler::Sync(h)) => h(&req),
                    Some(Handler::Channel(tx)) => match tx.send(req.clone()) {
                        Ok(()) => HandlerReply::Ignore,
                        Err(_) => {
                            self.handlers.remove(&req.command);
                            HandlerReply::Error(ErrorCode::UNKNOWN_COMMAND)
                        }
                    },
                    None => HandlerReply::Error(ErrorCode::UNKNOWN_COMMAND),
                };
                match answer {
                    HandlerReply::Value(v) => self.dht.reply(&req, v, ReplyOpts::default()),
                    HandlerReply::Error(code) => {
                        let opts = ReplyOpts {
                            closer_nodes: req.target.is_some(),
                            ..ReplyOpts::default()
                        };
                        self.dht.error(&req, code, opts);
                    }
                    HandlerReply::Ignore => {}
                }
            }
            Event::Bootstrapped => {
                let _ = self.bootstrapped.send(true);
            }
            Event::NetworkChange => {
                let _ = self.events.send(NetworkEvent::Change);
            }
            Event::Wakeup => {
                let _ = self.events.send(NetworkEvent::Wakeup);
            }
            Event::Suspended => {
                let _ = self.events.send(NetworkEvent::Suspended);
            }
            Event::Resumed => {
                let _ = self.events.send(NetworkEvent::Resumed);
            }
            Event::Rebootstrapped => {
                self.rebootstraps.send_modify(|n| *n += 1);
                let _ = self.events.send(NetworkEvent::Rebootstrapped);
            }
            other => tracing::trace!("dht event {other:?}"),
        }
    }
}
