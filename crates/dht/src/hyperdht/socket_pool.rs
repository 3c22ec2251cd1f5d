//! Sockets of holepunch attempts (`hyperdht/lib/socket-pool.js`) and the tokio driver of a [`Holepuncher`].
//!
//! Every holepunch attempt gets sockets of its own, bound from the node's UDX instance (so a stream can move
//! onto them): the NAT analysis pings DHT nodes from them, PEER_HOLEPUNCH requests go out of them and punch
//! datagrams too, so the NAT mapping the remote learns about is the one the stream will use. On such a socket
//! a one-byte datagram is a punch; a longer one is a dht-rpc message: responses are matched to our requests by
//! transaction id, PEER_HOLEPUNCH requests (a relay forwarding to the address the server punches from) go to
//! the server's router.
//!
//! A socket closes when the [`PoolSocket`] and every stream it carries are gone (UDX keeps a socket alive
//! while a stream uses it).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use super::constants::Command;
use super::holepuncher::{Holepuncher, PuncherEvent, HOLEPUNCH};
use crate::compact_encoding::Encode;
use crate::dht_rpc::messages::{self as rpc, Id, Message, Request};
use crate::udx::{Udx, UdxSocket};

/// How long one request attempt waits for its response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Extra attempts of a request (dht-rpc's default).
const REQUEST_RETRIES: u32 = 3;
/// Punches and PEER_HOLEPUNCH requests waiting to be handled; more are dropped (a flood must not grow memory).
pub(crate) const QUEUE: usize = 256;

/// A PEER_HOLEPUNCH request that arrived on a pool socket.
#[derive(Debug, Clone)]
pub(crate) struct PoolRequest {
    /// Transaction id.
    pub tid: u16,
    /// The sender (a relaying DHT node).
    pub from: SocketAddrV4,
    /// Our address as the sender saw it.
    pub to: SocketAddrV4,
    /// Whether the internal flag was set.
    pub internal: bool,
    /// The target.
    pub target: Option<Id>,
    /// The value.
    pub value: Option<Vec<u8>>,
}

/// A response to one of our requests.
#[derive(Debug, Clone)]
pub(crate) struct PoolReply {
    /// Who answered.
    pub from: SocketAddrV4,
    /// Our address as it saw it.
    pub to: SocketAddrV4,
    /// Value.
    pub value: Option<Vec<u8>>,
}

type Pending = Arc<Mutex<HashMap<u16, oneshot::Sender<PoolReply>>>>;

/// One socket of a holepunch attempt.
pub(crate) struct PoolSocket {
    socket: UdxSocket,
    pending: Pending,
    task: JoinHandle<()>,
}

impl Drop for PoolSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(a) => a
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, a.port())),
    }
}

impl PoolSocket {
    /// Binds a socket of `udx` on `host:0`; punches received go to `punches` tagged with `index`, PEER_HOLEPUNCH
    /// requests to `requests`.
    pub(crate) async fn bind(
        udx: &Udx,
        host: Ipv4Addr,
        index: usize,
        punches: mpsc::Sender<(usize, SocketAddrV4)>,
        requests: Option<mpsc::Sender<(PoolRequest, Arc<PoolSocketHandle>)>>,
    ) -> io::Result<Self> {
        let socket = udx.bind(SocketAddr::V4(SocketAddrV4::new(host, 0))).await?;
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let handle = Arc::new(PoolSocketHandle {
            socket: socket.clone(),
        });
        let task = tokio::spawn(recv_loop(
            socket.clone(),
            pending.clone(),
            index,
            punches,
            requests,
            handle,
        ));
        Ok(Self {
            socket,
            pending,
            task,
        })
    }

    /// The UDX socket.
    pub(crate) fn socket(&self) -> &UdxSocket {
        &self.socket
    }

    /// Sends a user request (not internal) to `to` and waits for its response, retrying as dht-rpc does.
    pub(crate) async fn request(
        &self,
        to: SocketAddrV4,
        command: u64,
        target: Option<Id>,
        value: Option<Vec<u8>>,
        internal: bool,
        retries: u32,
    ) -> io::Result<PoolReply> {
        let (tx, mut rx) = oneshot::channel();
        let tid = {
            let mut p = self
                .pending
                .lock()
                .map_err(|_| io::Error::other("pool socket poisoned"))?;
            let mut tid = rand::random::<u16>();
            while p.contains_key(&tid) {
                tid = tid.wrapping_add(1);
            }
            p.insert(tid, tx);
            tid
        };
        let data = Message::Request(Request {
            tid,
            to,
            id: None,
            token: None,
            internal,
            command,
            target,
            value,
        })
        .to_bytes();
        let mut result = Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out"));
        for _ in 0..=retries {
            if let Err(e) = self.socket.send_to(&data, SocketAddr::V4(to)).await {
                result = Err(e);
                break;
            }
            match tokio::time::timeout(REQUEST_TIMEOUT, &mut rx).await {
                Ok(Ok(reply)) => {
                    result = Ok(reply);
                    break;
                }
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&tid);
        }
        result
    }

    /// Pings a DHT node once (a NAT sample).
    pub(crate) async fn ping(&self, to: SocketAddrV4) -> io::Result<PoolReply> {
        self.request(to, rpc::InternalCommand::PING.0, None, None, true, 0)
            .await
    }

    /// A PEER_HOLEPUNCH request through `relay` (retried).
    pub(crate) async fn peer_holepunch(
        &self,
        relay: SocketAddrV4,
        target: Id,
        value: Vec<u8>,
    ) -> io::Result<PoolReply> {
        self.request(
            relay,
            Command::PEER_HOLEPUNCH.into(),
            Some(target),
            Some(value),
            false,
            REQUEST_RETRIES,
        )
        .await
    }
}

/// What the receive loop hands out with an incoming request: the socket to answer from.
pub(crate) struct PoolSocketHandle {
    socket: UdxSocket,
}

impl PoolSocketHandle {
    /// The UDX socket.
    pub(crate) fn socket(&self) -> &UdxSocket {
        &self.socket
    }
}

/// Forwards a request under its tid to `to` from `socket` (dht-rpc `req.relay(value, to, { socket })`).
pub(crate) async fn relay_from(
    socket: &UdxSocket,
    tid: u16,
    internal: bool,
    command: u64,
    target: Option<Id>,
    value: Vec<u8>,
    to: SocketAddrV4,
) -> io::Result<()> {
    let data = Message::Request(Request {
        tid,
        to,
        id: None,
        token: None,
        internal,
        command,
        target,
        value: Some(value),
    })
    .to_bytes();
    socket.send_to(&data, SocketAddr::V4(to)).await.map(|_| ())
}

async fn recv_loop(
    socket: UdxSocket,
    pending: Pending,
    index: usize,
    punches: mpsc::Sender<(usize, SocketAddrV4)>,
    requests: Option<mpsc::Sender<(PoolRequest, Arc<PoolSocketHandle>)>>,
    handle: Arc<PoolSocketHandle>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Some(from) = v4(from) else { continue };
        let Some(data) = buf.get(..n) else { continue };
        if n == 1 {
            // A full queue drops the punch, as a full socket buffer would.
            let _ = punches.try_send((index, from));
            continue;
        }
        match Message::decode(data) {
            Ok(Message::Response(res)) => {
                let tx = pending.lock().ok().and_then(|mut p| p.remove(&res.tid));
                if let Some(tx) = tx {
                    let _ = tx.send(PoolReply {
                        from,
                        to: res.to,
                        value: res.value,
                    });
                }
            }
            Ok(Message::Request(req)) => {
                if Command::from(req.command) == Command::PEER_HOLEPUNCH && !req.internal {
                    if let Some(tx) = &requests {
                        let _ = tx.try_send((
                            PoolRequest {
                                tid: req.tid,
                                from,
                                to: req.to,
                                internal: req.internal,
                                target: req.target,
                                value: req.value,
                            },
                            handle.clone(),
                        ));
                    }
                } else if req.internal && req.command == rpc::InternalCommand::PING.0 {
                    // Answer pings as any dht-rpc socket would.
                    let res = Message::Response(rpc::Response {
                        tid: req.tid,
                        to: from,
                        id: None,
                        token: None,
                        closer_nodes: None,
                        error: rpc::ErrorCode::OK,
                        value: None,
                    })
                    .to_bytes();
                    let _ = socket.send_to(&res, SocketAddr::V4(from)).await;
                }
            }
            Err(_) => {}
        }
    }
}

/// A [`Holepuncher`] with its sockets and driver task. Dropping it stops punching and closes the sockets
/// no stream uses.
pub(crate) struct PunchSession {
    puncher: Arc<Mutex<Holepuncher>>,
    sockets: Arc<tokio::sync::Mutex<Vec<Arc<PoolSocket>>>>,
    main: Arc<PoolSocket>,
    wake: Arc<Notify>,
    settled: watch::Receiver<bool>,
    settled_tx: Arc<watch::Sender<bool>>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<PuncherEvent>>,
    task: JoinHandle<()>,
    sampler: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for PunchSession {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(t) = self.sampler.lock().ok().and_then(|mut s| s.take()) {
            t.abort();
        }
    }
}

impl PunchSession {
    /// Binds the main socket and starts the driver. `requests` receives PEER_HOLEPUNCH requests arriving on
    /// the session's sockets (servers).
    pub(crate) async fn start(
        udx: &Udx,
        host: Ipv4Addr,
        puncher: Holepuncher,
        requests: Option<mpsc::Sender<(PoolRequest, Arc<PoolSocketHandle>)>>,
    ) -> io::Result<Arc<Self>> {
        let (punch_tx, punch_rx) = mpsc::channel(QUEUE);
        let main =
            Arc::new(PoolSocket::bind(udx, host, 0, punch_tx.clone(), requests.clone()).await?);
        let sockets = Arc::new(tokio::sync::Mutex::new(vec![main.clone()]));
        let puncher = Arc::new(Mutex::new(puncher));
        let wake = Arc::new(Notify::new());
        let (settled_tx, settled) = watch::channel(false);
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(
            puncher.clone(),
            sockets.clone(),
            udx.clone(),
            host,
            punch_tx,
            punch_rx,
            requests,
            wake.clone(),
            ev_tx,
        ));
        Ok(Arc::new(Self {
            puncher,
            sockets,
            main,
            wake,
            settled,
            settled_tx: Arc::new(settled_tx),
            events: tokio::sync::Mutex::new(ev_rx),
            task,
            sampler: Mutex::new(None),
        }))
    }

    /// The main socket.
    pub(crate) fn main(&self) -> &Arc<PoolSocket> {
        &self.main
    }

    /// The socket numbered `i`.
    pub(crate) async fn socket(&self, i: usize) -> Option<Arc<PoolSocket>> {
        self.sockets.lock().await.get(i).cloned()
    }

    /// Runs `f` on the puncher, then wakes the driver (to send what it queued, re-arm timers).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Holepuncher) -> R) -> Option<R> {
        let r = self.puncher.lock().ok().map(|mut p| f(&mut p));
        self.refresh();
        r
    }

    fn refresh(&self) {
        let settled = self
            .puncher
            .lock()
            .map(|p| p.nat.is_settled())
            .unwrap_or(true);
        self.settled_tx.send_if_modified(|s| {
            let changed = *s != settled;
            *s = settled;
            changed
        });
        self.wake.notify_one();
    }

    /// Starts the NAT analysis: pings up to four of `nodes` (latest first) from the main socket, a second
    /// round for the missing samples, then settles (`autoSample`).
    pub(crate) fn auto_sample(self: &Arc<Self>, nodes_latest_first: Vec<SocketAddrV4>) {
        let me = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            for _ in 0..2 {
                let (targets, main) = {
                    let Some(s) = me.upgrade() else { return };
                    let t = s
                        .with(|p| p.nat.sample_targets(&nodes_latest_first, 0))
                        .unwrap_or_default();
                    (t, s.main.clone())
                };
                let mut set = tokio::task::JoinSet::new();
                for node in targets {
                    let main = main.clone();
                    set.spawn(async move { main.ping(node).await.ok() });
                }
                while let Some(r) = set.join_next().await {
                    if let (Ok(Some(reply)), Some(s)) = (r, me.upgrade()) {
                        s.with(|p| p.nat.add(reply.to, reply.from));
                    }
                }
                let Some(s) = me.upgrade() else { return };
                if s.with(|p| p.nat.is_settled()).unwrap_or(true) {
                    return;
                }
            }
            if let Some(s) = me.upgrade() {
                s.with(|p| p.nat.finish_sampling());
            }
        });
        if let Ok(mut s) = self.sampler.lock() {
            *s = Some(task);
        }
    }

    /// Waits for the NAT analysis to settle (`await nat.analyzing`).
    pub(crate) async fn analyzed(&self) {
        let mut rx = self.settled.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The next puncher event.
    pub(crate) async fn next_event(&self) -> Option<PuncherEvent> {
        self.events.lock().await.recv().await
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    puncher: Arc<Mutex<Holepuncher>>,
    sockets: Arc<tokio::sync::Mutex<Vec<Arc<PoolSocket>>>>,
    udx: Udx,
    host: Ipv4Addr,
    punch_tx: mpsc::Sender<(usize, SocketAddrV4)>,
    mut punch_rx: mpsc::Receiver<(usize, SocketAddrV4)>,
    requests: Option<mpsc::Sender<(PoolRequest, Arc<PoolSocketHandle>)>>,
    wake: Arc<Notify>,
    events: mpsc::UnboundedSender<PuncherEvent>,
) {
    loop {
        let now = tokio::time::Instant::now().into_std();
        let (packets, evs, timeout) = {
            let Ok(mut p) = puncher.lock() else { return };
            p.handle_timeout(now);
            let packets: Vec<_> = std::iter::from_fn(|| p.poll_transmit()).collect();
            let evs: Vec<_> = std::iter::from_fn(|| p.poll_event()).collect();
            (packets, evs, p.poll_timeout())
        };
        for pk in packets {
            let sock = {
                let mut socks = sockets.lock().await;
                while socks.len() <= pk.socket {
                    let i = socks.len();
                    match PoolSocket::bind(&udx, host, i, punch_tx.clone(), requests.clone()).await
                    {
                        Ok(s) => socks.push(Arc::new(s)),
                        Err(e) => {
                            tracing::debug!("holepunch socket: {e}");
                            break;
                        }
                    }
                }
                socks.get(pk.socket).cloned()
            };
            if let Some(sock) = sock {
                let _ = sock
                    .socket()
                    .send_to_ttl(&HOLEPUNCH, SocketAddr::V4(pk.to), pk.ttl())
                    .await;
            }
        }
        for ev in evs {
            let _ = events.send(ev);
        }
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            p = punch_rx.recv() => {
                let Some((i, from)) = p else { return };
                if let Ok(mut pu) = puncher.lock() {
                    pu.on_packet(i, from);
                }
            }
            () = sleep => {}
            () = wake.notified() => {}
        }
    }
}
