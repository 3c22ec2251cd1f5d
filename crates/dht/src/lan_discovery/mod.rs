//! LAN discovery: peers on one LAN find each other without any DHT node (a plane, a ship, an air-gapped
//! lab). A Rust-only addition; the JS stack has nothing like it.
//!
//! A node with LAN discovery on ([`crate::hyperdht::HyperDhtOpts::lan`]) answers queries on a UDP
//! multicast group ([`GROUP`]:[`PORT`], administratively scoped, TTL 1: it never leaves the LAN) for
//! what it serves:
//!
//! - each [`Server`](crate::hyperdht::Server) listening on a key pair, under `hash(public key)`, the target
//!   a client's FIND_PEER looks up on the DHT;
//! - each topic announced with [`HyperDht::announce`](crate::hyperdht::HyperDht::announce) (hyperswarm
//!   joins as a server), under the topic, with the announcing key pair's public key (as the DHT's announce
//!   records carry it).
//!
//! Both are scoped to the node's DHT network ([`LanOpts::network`]: a hash of its bootstrap nodes, the public
//! ones by default): the id on the LAN is `hash(network, id)`, so nodes of another network (a local testnet
//! beside the public network, two testnets on one machine) neither find nor answer each other.
//!
//! So a LAN observer learns what a DHT observer learns, no more: the ids are the DHT's own targets and a
//! server's public key is never sent ([`wire`] has the packets). A client looks the same ids up on the LAN
//! in parallel with the DHT ([`Lan::query`]: a query sent at once, again after 250 ms and 750 ms, answers
//! collected for at most [`QUERY_TIME`]); an answer names the peer's DHT server port and addresses. The
//! connection then runs hyperdht's normal handshake directly to that address: a PEER_HANDSHAKE request in
//! mode FROM_CLIENT to the server's own node, which its router answers itself (a DHT node that holds the
//! server answers the same way), with the Noise IK handshake, the server's firewall / allow list and the
//! secret stream exactly as through the DHT. Nothing on the connection is new, only how the address is
//! found.
//!
//! Costs: with LAN discovery off nothing runs; with it on, the responder (one socket and one task per node)
//! starts with the first server or announce, and each query is one short-lived socket and task. A query
//! never delays the DHT path: connect and lookup race the two.

pub mod wire;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use wire::{Answer, Packet, Query, Record};

/// The multicast group queries go to (administratively scoped: 239.255.0.0/16).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 72, 68);
/// The UDP port of the group (the DHT's 49737, plus one).
pub const PORT: u16 = 49738;
/// How long a query collects answers.
pub const QUERY_TIME: Duration = Duration::from_millis(1500);
/// When a query is sent again (from its start), for LANs that drop a multicast packet.
pub const RESEND: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(750)];
/// Most candidate addresses a client tries from one answer.
const MAX_CANDIDATES: usize = 4;

/// Options of LAN discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanOpts {
    /// The multicast group and port ([`GROUP`]:[`PORT`]).
    pub group: SocketAddrV4,
    /// The interfaces (by IPv4 address) to query and answer on; `None`: every IPv4 interface, loopback
    /// included (peers on the same machine find each other too), or only loopback for a node bound to
    /// loopback or whose bootstrap nodes are all on loopback (a local testnet).
    pub interfaces: Option<Vec<Ipv4Addr>>,
    /// How long a query collects answers ([`QUERY_TIME`]).
    pub query_time: Duration,
    /// The DHT network the node is part of ([`network_id`] of its bootstrap nodes): ids are asked and
    /// answered scoped to it ([`scoped_id`]), so nodes of different networks (a local testnet and the
    /// public network, two testnets on one machine) never find each other on the LAN. `None`: unscoped.
    /// [`crate::hyperdht::HyperDht::bind`] sets it.
    pub network: Option<[u8; 32]>,
}

/// The id of the DHT network bootstrapped from `bootstrap` (order and duplicates do not matter): nodes
/// with the same bootstrap nodes, the public ones by default, share it.
pub fn network_id(bootstrap: &[SocketAddrV4]) -> [u8; 32] {
    let mut list: Vec<String> = bootstrap.iter().map(ToString::to_string).collect();
    list.sort();
    list.dedup();
    let joined = list.join(",");
    crate::crypto::hash(&[b"hyperdht-lan-network", joined.as_bytes()])
}

/// `id` as asked and answered on the LAN by nodes of `network`.
pub fn scoped_id(network: Option<&[u8; 32]>, id: &[u8; 32]) -> [u8; 32] {
    match network {
        Some(n) => crate::crypto::hash(&[b"hyperdht-lan-id", n, id]),
        None => *id,
    }
}

impl Default for LanOpts {
    fn default() -> Self {
        Self {
            group: SocketAddrV4::new(GROUP, PORT),
            interfaces: None,
            query_time: QUERY_TIME,
            network: None,
        }
    }
}

/// A peer an answer named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The announcing peer's public key (topic answers).
    pub public_key: Option<[u8; 32]>,
    /// Where the answer came from.
    pub from: SocketAddrV4,
    /// The addresses to try, best first: the answer's source address with the peer's DHT server port, then
    /// the addresses the peer listed.
    pub addresses: Vec<SocketAddrV4>,
}

/// What a node advertises: for each id, the public keys it answers with (`None`: a server's id).
pub type AdvertTable = Mutex<HashMap<[u8; 32], Vec<Option<[u8; 32]>>>>;
type Adverts = Arc<AdvertTable>;

/// LAN discovery of one node: what it advertises, its responder, and its queries.
#[derive(Debug)]
pub struct Lan {
    opts: LanOpts,
    /// The port of the node's DHT server socket, sent in answers.
    port: u16,
    adverts: Adverts,
    responder: Mutex<Option<JoinHandle<()>>>,
}

impl Lan {
    /// LAN discovery for a node whose DHT server socket has `port`. Starts nothing yet.
    pub fn new(opts: LanOpts, port: u16) -> Self {
        Self {
            opts,
            port,
            adverts: Arc::default(),
            responder: Mutex::new(None),
        }
    }

    /// The options.
    pub fn opts(&self) -> &LanOpts {
        &self.opts
    }

    fn interfaces(&self) -> Vec<Ipv4Addr> {
        self.opts.interfaces.clone().unwrap_or_else(ipv4_interfaces)
    }

    /// Answers queries for `id` from now on (with `public_key` for a topic), starting the responder if
    /// needed. Call within a tokio runtime.
    pub fn advertise(&self, id: [u8; 32], public_key: Option<[u8; 32]>) {
        let id = scoped_id(self.opts.network.as_ref(), &id);
        if let Ok(mut a) = self.adverts.lock() {
            let list = a.entry(id).or_default();
            if !list.contains(&public_key) {
                list.push(public_key);
            }
        }
        self.start_responder();
    }

    /// Stops answering for `id` with `public_key`.
    pub fn withdraw(&self, id: &[u8; 32], public_key: Option<[u8; 32]>) {
        let id = scoped_id(self.opts.network.as_ref(), id);
        if let Ok(mut a) = self.adverts.lock() {
            if let Some(list) = a.get_mut(&id) {
                list.retain(|k| *k != public_key);
                if list.is_empty() {
                    a.remove(&id);
                }
            }
        }
    }

    /// Whether the responder runs (it starts with the first advert).
    pub fn responding(&self) -> bool {
        self.responder.lock().is_ok_and(|r| r.is_some())
    }

    fn start_responder(&self) {
        let Ok(mut r) = self.responder.lock() else {
            return;
        };
        if r.is_some() {
            return;
        }
        let interfaces = self.interfaces();
        match responder_socket(self.opts.group, &interfaces) {
            Ok(sock) => {
                *r = Some(tokio::spawn(respond(
                    sock,
                    self.adverts.clone(),
                    self.port,
                    interfaces,
                )));
            }
            Err(e) => {
                tracing::debug!("LAN discovery: cannot answer on {}: {e}", self.opts.group);
                *r = Some(tokio::spawn(async {}));
            }
        }
    }

    /// Asks the LAN who serves `id`: each new answer's peer is sent to the receiver as it arrives, and
    /// the receiver ends after [`LanOpts::query_time`] (or when a send fails). Dropping the receiver stops
    /// the query. Call within a tokio runtime.
    pub fn query(&self, id: [u8; 32]) -> mpsc::UnboundedReceiver<Found> {
        let id = scoped_id(self.opts.network.as_ref(), &id);
        let (tx, rx) = mpsc::unbounded_channel();
        let opts = self.opts.clone();
        let interfaces = self.interfaces();
        tokio::spawn(async move {
            if let Err(e) = run_query(id, &opts, &interfaces, &tx).await {
                tracing::debug!("LAN discovery: query failed: {e}");
            }
        });
        rx
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Ok(mut r) = self.responder.lock() {
            if let Some(h) = r.take() {
                h.abort();
            }
        }
    }
}

/// The machine's IPv4 interface addresses, loopback included.
fn ipv4_interfaces() -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn responder_socket(group: SocketAddrV4, interfaces: &[Ipv4Addr]) -> io::Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Every node on the machine answers: each socket joined to the group gets its own copy.
    sock.set_reuse_address(true)?;
    #[cfg(unix)]
    sock.set_reuse_port(true)?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    let mut joined = 0;
    for ip in interfaces {
        match sock.join_multicast_v4(group.ip(), ip) {
            Ok(()) => joined += 1,
            Err(e) => tracing::debug!("LAN discovery: cannot join {} on {ip}: {e}", group.ip()),
        }
    }
    if joined == 0 {
        return Err(io::Error::other("no interface joined the group"));
    }
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

/// The responder: answers each query naming an id we advertise, by unicast to the querier.
async fn respond(sock: UdpSocket, adverts: Adverts, port: u16, interfaces: Vec<Ipv4Addr>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("LAN discovery: receive failed: {e}");
                continue;
            }
        };
        let SocketAddr::V4(from) = from else {
            continue;
        };
        let Some(answer) = answer_for(
            buf.get(..n).unwrap_or_default(),
            &adverts,
            port,
            &interfaces,
            from,
        ) else {
            continue;
        };
        if let Err(e) = sock.send_to(&answer, from).await {
            tracing::debug!("LAN discovery: answer to {from} failed: {e}");
        }
    }
}

/// The answer to the packet `bytes` from `from`, if it is a query naming something in `adverts`.
pub fn answer_for(
    bytes: &[u8],
    adverts: &AdvertTable,
    port: u16,
    interfaces: &[Ipv4Addr],
    from: SocketAddrV4,
) -> Option<Vec<u8>> {
    let Ok(Packet::Query(q)) = Packet::decode(bytes) else {
        return None;
    };
    let mut addresses: Vec<Ipv4Addr> = interfaces
        .iter()
        .copied()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    if from.ip().is_loopback() {
        addresses.insert(0, Ipv4Addr::LOCALHOST);
    }
    addresses.truncate(wire::MAX_ADDRESSES);
    let records: Vec<Record> = {
        let a = adverts.lock().ok()?;
        q.ids
            .iter()
            .flat_map(|id| {
                a.get(id)
                    .into_iter()
                    .flatten()
                    .map(|pk| Record {
                        id: *id,
                        public_key: *pk,
                        port,
                        addresses: addresses.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .take(wire::MAX_RECORDS)
            .collect()
    };
    if records.is_empty() {
        return None;
    }
    Some(
        Packet::Answer(Answer {
            nonce: q.nonce,
            records,
        })
        .encode(),
    )
}

/// The peers an answer (`bytes` from `from`) names for `id`, given the query's `nonce`.
pub fn found_in(bytes: &[u8], from: SocketAddrV4, id: &[u8; 32], nonce: u32) -> Vec<Found> {
    let Ok(Packet::Answer(a)) = Packet::decode(bytes) else {
        return Vec::new();
    };
    if a.nonce != nonce {
        return Vec::new();
    }
    a.records
        .into_iter()
        .filter(|r| r.id == *id && r.port != 0)
        .map(|r| {
            let mut addresses = vec![SocketAddrV4::new(*from.ip(), r.port)];
            for ip in r.addresses {
                let a = SocketAddrV4::new(ip, r.port);
                if !ip.is_unspecified() && !ip.is_multicast() && !addresses.contains(&a) {
                    addresses.push(a);
                }
            }
            addresses.truncate(MAX_CANDIDATES);
            Found {
                public_key: r.public_key,
                from,
                addresses,
            }
        })
        .collect()
}

async fn run_query(
    id: [u8; 32],
    opts: &LanOpts,
    interfaces: &[Ipv4Addr],
    tx: &mpsc::UnboundedSender<Found>,
) -> io::Result<()> {
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).await?;
    let nonce: u32 = rand::random();
    let packet = Packet::Query(Query {
        nonce,
        ids: vec![id],
    })
    .encode();
    let send = |sock: &UdpSocket| {
        let sref = socket2::SockRef::from(sock);
        let _ = sref.set_multicast_ttl_v4(1);
        let _ = sref.set_multicast_loop_v4(true);
        for ip in interfaces {
            if sref.set_multicast_if_v4(ip).is_ok() {
                if let Err(e) = sref.send_to(&packet, &SocketAddr::V4(opts.group).into()) {
                    tracing::trace!("LAN discovery: query on {ip} failed: {e}");
                }
            }
        }
    };
    send(&sock);
    let start = tokio::time::Instant::now();
    let deadline = tokio::time::sleep_until(start + opts.query_time);
    tokio::pin!(deadline);
    let mut resends = RESEND
        .iter()
        .map(|d| start + *d)
        .collect::<Vec<_>>()
        .into_iter();
    let mut next_resend = resends.next();
    let mut seen: Vec<(Option<[u8; 32]>, SocketAddrV4)> = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let resend = async {
            match next_resend {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut deadline => return Ok(()),
            () = tx.closed() => return Ok(()),
            () = resend => {
                send(&sock);
                next_resend = resends.next();
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, SocketAddr::V4(from))) = r else { continue };
                for f in found_in(buf.get(..n).unwrap_or_default(), from, &id, nonce) {
                    let key = (f.public_key, f.addresses.first().copied().unwrap_or(from));
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key);
                    if tx.send(f).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
