//! The sans-IO UDX endpoint's routing on a virtual network and clock: which stream a datagram reaches, the
//! firewall, held packets, relays, remote changes and datagrams passed through to the DHT. No sockets, no real
//! time, no sleeps; every test is bounded in virtual time.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holepunch_udx::packet::{self, flags, Header};
use holepunch_udx::SocketId;
use holepunch_udx::{
    Endpoint, Event, FirewallVerdict, Outgoing, Routing, StreamChange, StreamConfig, StreamError,
};
use proptest::prelude::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A UDX packet for stream `remote_id` with a payload.
fn udx_packet(remote_id: u32, type_flags: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        type_flags,
        data_offset: 0,
        remote_id,
        recv_window: 1 << 20,
        seq,
        ack: 0,
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// One endpoint and its sockets (socket `i` is bound to `sockets[i]`), with what it surfaced.
struct Node {
    ep: Endpoint,
    sockets: Vec<SocketAddr>,
    /// Datagrams passed through: (socket, source, datagram).
    raw: Vec<(SocketId, SocketAddr, Vec<u8>)>,
    changes: Vec<(u32, StreamChange)>,
    transmit_events: Vec<SocketId>,
}

impl Node {
    fn new(sockets: &[SocketAddr]) -> Self {
        Self {
            ep: Endpoint::default(),
            sockets: sockets.to_vec(),
            raw: Vec::new(),
            changes: Vec::new(),
            transmit_events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(event) = self.ep.poll_event() {
            match event {
                Event::PassThrough {
                    socket,
                    from,
                    datagram,
                } => self.raw.push((socket, from, datagram)),
                Event::Transmit { socket } => self.transmit_events.push(socket),
                Event::Stream { id, change } => self.changes.push((id, change)),
            }
        }
    }

    fn handle(&mut self, now: Instant, socket: SocketId, from: SocketAddr, d: &[u8]) -> Routing {
        let local = self.sockets[socket];
        let r = self.ep.handle(now, socket, local, from, d);
        self.drain();
        r
    }

    /// Services socket `socket`: the datagrams it sends, as (destination, datagram).
    fn service(&mut self, now: Instant, socket: SocketId) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut buf = Vec::new();
        let mut out: Vec<Outgoing> = Vec::new();
        self.ep
            .service(now, socket, &mut buf, 4, 256 * 1024, &mut out);
        self.drain();
        let mut retired = Vec::new();
        self.ep.take_retired(&mut retired);
        let mut sends = Vec::new();
        for o in out {
            for d in buf[o.start..o.end].chunks(o.segment_size.max(1)) {
                sends.push((o.destination, d.to_vec()));
            }
        }
        sends
    }

    fn read_all(&mut self, id: u32) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Some(s) = self.ep.stream_mut(id) {
            let n = s.stream_mut().read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }
}

/// Nodes on a virtual network with a one-way delay; a datagram to an address no node has is lost.
struct Net {
    nodes: Vec<Node>,
    start: Instant,
    now: Instant,
    delay: Duration,
    /// (delivery time, source, destination, datagram)
    wire: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    delivered: usize,
}

impl Net {
    fn new(nodes: Vec<Node>) -> Self {
        let now = Instant::now();
        Self {
            nodes,
            start: now,
            now,
            delay: Duration::from_millis(5),
            wire: Vec::new(),
            delivered: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Services every socket, then delivers what is due. Returns how many datagrams were sent or delivered.
    fn step(&mut self) -> usize {
        let now = self.now;
        let mut activity = 0;
        for node in &mut self.nodes {
            for socket in 0..node.sockets.len() {
                let from = node.sockets[socket];
                for (to, d) in node.service(now, socket) {
                    self.wire.push((now + self.delay, from, to, d));
                    activity += 1;
                }
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|(at, ..)| *at <= now);
        self.wire = later;
        for (_, from, to, d) in due {
            activity += 1;
            for node in &mut self.nodes {
                if let Some(socket) = node.sockets.iter().position(|a| *a == to) {
                    node.handle(now, socket, from, &d);
                    self.delivered += 1;
                }
            }
        }
        activity
    }

    /// Lets `app` act (it returns whether the goal is reached), then steps; when nothing moves, the clock jumps
    /// to the next delivery or timer. Gives up after `limit` of virtual time. Returns whether the goal was
    /// reached.
    fn run_until(&mut self, limit: Duration, mut app: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.now + limit;
        for _ in 0..1_000_000 {
            if app(self) {
                return true;
            }
            if self.step() > 0 {
                continue;
            }
            let next_wire = self.wire.iter().map(|(at, ..)| *at).min();
            let next_timer = self
                .nodes
                .iter()
                .flat_map(|n| (0..n.sockets.len()).filter_map(|s| n.ep.poll_timeout(s)))
                .min();
            let Some(next) = next_wire.into_iter().chain(next_timer).min() else {
                return app(self);
            };
            if next > end {
                return app(self);
            }
            if next > self.now {
                self.now = next;
            } else if self.step() == 0 {
                // A timer due now that sends nothing: move on by a millisecond.
                self.now += Duration::from_millis(1);
            }
        }
        false
    }
}

/// Connects stream `a_id` of node 0 (socket 0) and `b_id` of node 1 (socket 0) to each other.
fn connect_pair(net: &mut Net, a_id: u32, b_id: u32) {
    let now = net.now;
    let (a_addr, b_addr) = (net.nodes[0].sockets[0], net.nodes[1].sockets[0]);
    let config = StreamConfig::default;
    net.nodes[0]
        .ep
        .create_stream(a_id, config(), Some(0), now)
        .unwrap();
    net.nodes[1]
        .ep
        .create_stream(b_id, config(), Some(0), now)
        .unwrap();
    net.nodes[0]
        .ep
        .connect(a_id, None, b_id, b_addr, now)
        .unwrap();
    net.nodes[1]
        .ep
        .connect(b_id, None, a_id, a_addr, now)
        .unwrap();
}

/// Writes `data` into stream `id` of node `from` (then ends it) and reads stream `to_id` of node `to` until
/// its remote ended; returns what was read.
fn transfer(net: &mut Net, from: usize, id: u32, to: usize, to_id: u32, data: &[u8]) -> Vec<u8> {
    let mut written = 0;
    let mut got = Vec::new();
    let ok = net.run_until(Duration::from_secs(60), |net| {
        if written < data.len() {
            let s = net.nodes[from].ep.stream_mut(id).unwrap().stream_mut();
            written += s.write(&data[written..]);
            if written == data.len() {
                net.nodes[from].ep.finish(id).unwrap();
            }
        }
        got.extend(net.nodes[to].read_all(to_id));
        net.nodes[to]
            .ep
            .stream(to_id)
            .is_some_and(|s| s.is_remote_ended())
    });
    assert!(
        ok,
        "transfer did not finish: {} of {} bytes",
        got.len(),
        data.len()
    );
    got
}

#[test]
fn non_udx_and_unknown_stream_datagrams_pass_through() {
    let now = Instant::now();
    let mut node = Node::new(&[addr(1000), addr(1001)]);
    node.ep
        .create_stream(7, StreamConfig::default(), Some(0), now)
        .unwrap();
    node.ep.connect(7, None, 70, addr(2000), now).unwrap();
    let peer = addr(2000);

    assert_eq!(
        node.handle(now, 0, peer, b"hello dht"),
        Routing::PassThrough
    );
    // Magic and version right but too short: not UDX.
    assert_eq!(
        node.handle(now, 1, peer, &[packet::MAGIC, packet::VERSION, 0, 0]),
        Routing::PassThrough
    );
    // A UDX packet for a stream id the endpoint does not have: passed on, no stream touched.
    let unknown = udx_packet(99, flags::MESSAGE, 0, b"for nobody");
    assert_eq!(node.handle(now, 0, peer, &unknown), Routing::PassThrough);
    assert_eq!(
        node.raw,
        vec![
            (0, peer, b"hello dht".to_vec()),
            (1, peer, vec![packet::MAGIC, packet::VERSION, 0, 0]),
            (0, peer, unknown),
        ]
    );
    let stats = node.ep.stream(7).unwrap().stream().stats();
    assert_eq!(stats.packets_received, 0, "unknown ids touch no stream");
    assert!(node.changes.is_empty());

    // A closed stream's packets pass through too (libudx forgets closed streams at once).
    node.ep
        .create_stream(
            8,
            StreamConfig {
                linger: Duration::ZERO,
                ..StreamConfig::default()
            },
            Some(0),
            now,
        )
        .unwrap();
    node.ep.connect(8, None, 80, peer, now).unwrap();
    node.ep.destroy(8).unwrap();
    node.service(now, 0);
    assert!(node.ep.stream(8).unwrap().stream().is_closed());
    let late = udx_packet(8, flags::MESSAGE, 0, b"late");
    assert_eq!(node.handle(now, 0, peer, &late), Routing::PassThrough);
    assert_eq!(node.raw.last(), Some(&(0, peer, late)));
}

#[test]
fn firewall_rejects_the_first_packet_by_default_and_can_connect() {
    let now = Instant::now();
    let (local, peer) = (addr(1000), addr(2000));
    let mut node = Node::new(&[local]);
    node.ep
        .create_stream(2, StreamConfig::default(), Some(0), now)
        .unwrap();

    // No firewall: rejected, delivered nowhere.
    let first = udx_packet(2, flags::MESSAGE, 0, b"dropped");
    assert_eq!(node.handle(now, 0, peer, &first), Routing::Rejected(2));
    assert!(node.raw.is_empty() && node.changes.is_empty());
    assert_eq!(node.ep.stream(2).unwrap().stream().remote(), None);

    // An explicit reject, then a connecting firewall.
    node.ep
        .set_firewall(2, Box::new(|_, _| FirewallVerdict::Reject))
        .unwrap();
    assert_eq!(node.handle(now, 0, peer, &first), Routing::Rejected(2));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let previous = node
        .ep
        .set_firewall(
            2,
            Box::new(move |from, local| {
                seen2.lock().unwrap().push((from, local));
                FirewallVerdict::Connect { remote_id: 1 }
            }),
        )
        .unwrap();
    assert!(previous.is_some(), "the old firewall is handed back");
    let let_in = udx_packet(2, flags::MESSAGE, 0, b"let in");
    assert_eq!(node.handle(now, 0, peer, &let_in), Routing::Stream(2));
    assert_eq!(*seen.lock().unwrap(), vec![(peer, local)]);
    let slot = node.ep.stream_mut(2).unwrap();
    assert_eq!(slot.stream().remote(), Some((1, peer)));
    assert_eq!(slot.socket(), Some(0));
    node.service(now, 0);
    assert!(node.changes.contains(&(2, StreamChange::Message)));
    let slot = node.ep.stream_mut(2).unwrap();
    assert_eq!(slot.pop_message(), Some(b"let in".to_vec()));

    // Connected now: the firewall is not asked about packets from the remote.
    let next = udx_packet(2, flags::MESSAGE, 0, b"next");
    assert_eq!(node.handle(now, 0, peer, &next), Routing::Stream(2));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn firewall_accepts_packets_on_another_socket_and_off_path_when_asked() {
    let now = Instant::now();
    let (s0, s1, peer, other) = (addr(1000), addr(1001), addr(2000), addr(3000));
    let mut node = Node::new(&[s0, s1]);
    node.ep
        .create_stream(2, StreamConfig::default(), Some(0), now)
        .unwrap();
    node.ep.connect(2, None, 1, peer, now).unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let asked2 = Arc::clone(&asked);
    node.ep
        .set_firewall(
            2,
            Box::new(move |from, local| {
                asked2.lock().unwrap().push((from, local));
                if local == s1 {
                    FirewallVerdict::Accept
                } else {
                    FirewallVerdict::Connect { remote_id: 3 }
                }
            }),
        )
        .unwrap();
    let p = udx_packet(2, flags::MESSAGE, 0, b"x");
    // On another socket: the firewall decides (accept: handed over as is, the stream stays put).
    assert_eq!(node.handle(now, 1, peer, &p), Routing::Stream(2));
    assert_eq!(node.ep.stream(2).unwrap().socket(), Some(0));
    // From elsewhere on the carrying socket: the stream's own unless off-path checks are on.
    assert_eq!(node.handle(now, 0, other, &p), Routing::Stream(2));
    assert_eq!(*asked.lock().unwrap(), vec![(peer, s1)]);
    node.ep.set_firewall_off_path(2, true).unwrap();
    assert_eq!(node.handle(now, 0, other, &p), Routing::Stream(2));
    assert_eq!(asked.lock().unwrap().last(), Some(&(other, s0)));
    // The firewall moved the stream to the new sender (a change of remote).
    let slot = node.ep.stream(2).unwrap();
    assert_eq!(slot.stream().remote(), Some((3, other)));
    assert!(slot.is_remote_changing());
}

/// The 1 s stall of HyperDHT connections: the server's first packets reached the client's stream before it knew
/// the server's stream id. Held packets are handed over when the stream connects, with no retransmission timeout.
#[test]
fn held_packets_reach_the_stream_once_it_connects() {
    let mut net = Net::new(vec![Node::new(&[addr(1000)]), Node::new(&[addr(2000)])]);
    let now = net.now;
    net.nodes[0]
        .ep
        .create_stream(1, StreamConfig::default(), Some(0), now)
        .unwrap();
    net.nodes[1]
        .ep
        .create_stream(2, StreamConfig::default(), Some(0), now)
        .unwrap();
    net.nodes[0]
        .ep
        .set_firewall(1, Box::new(|_, _| FirewallVerdict::Hold))
        .unwrap();
    net.nodes[1]
        .ep
        .connect(2, None, 1, addr(1000), now)
        .unwrap();
    let n = net.nodes[1]
        .ep
        .stream_mut(2)
        .unwrap()
        .stream_mut()
        .write(b"early");
    assert_eq!(n, 5);
    assert!(net.run_until(Duration::from_millis(100), |net| {
        net.nodes[0].ep.stream(1).unwrap().held_len() > 0
    }));
    assert_eq!(net.nodes[0].read_all(1), b"");
    let now = net.now;
    net.nodes[0]
        .ep
        .connect(1, None, 2, addr(2000), now)
        .unwrap();
    net.nodes[0].ep.settle(1, now);
    assert_eq!(net.nodes[0].ep.stream(1).unwrap().held_len(), 0);
    assert_eq!(net.nodes[0].read_all(1), b"early");
    let early = net.elapsed();
    // The sender gets its ack at once: no retransmission timeout.
    assert!(net.run_until(Duration::from_secs(5), |net| {
        net.nodes[1].ep.stream(2).unwrap().stream().unacked_len() == 0
    }));
    assert_eq!(
        net.nodes[1]
            .ep
            .stream(2)
            .unwrap()
            .stream()
            .stats()
            .rto_count,
        0
    );
    assert!(net.elapsed() - early < Duration::from_millis(100));
    let back = transfer(&mut net, 0, 1, 1, 2, b"late");
    assert_eq!(back, b"late");
}

/// At most `HELD_MAX` packets are held; `retry_held` offers them again (the firewall can connect now).
#[test]
fn retry_held_lets_the_firewall_connect_with_held_packets() {
    let now = Instant::now();
    let (local, peer) = (addr(1000), addr(2000));
    let mut node = Node::new(&[local]);
    node.ep
        .create_stream(1, StreamConfig::default(), Some(0), now)
        .unwrap();
    let known = Arc::new(Mutex::new(false));
    let known2 = Arc::clone(&known);
    node.ep
        .set_firewall(
            1,
            Box::new(move |_, _| {
                if *known2.lock().unwrap() {
                    FirewallVerdict::Connect { remote_id: 2 }
                } else {
                    FirewallVerdict::Hold
                }
            }),
        )
        .unwrap();
    for i in 0..holepunch_udx::HELD_MAX as u32 {
        let p = udx_packet(1, flags::MESSAGE, i, &[i as u8]);
        assert_eq!(node.handle(now, 0, peer, &p), Routing::Held(1));
    }
    let p = udx_packet(1, flags::MESSAGE, 99, b"one too many");
    assert_eq!(node.handle(now, 0, peer, &p), Routing::Dropped(1));
    // Retrying while the firewall still holds keeps them.
    node.ep.retry_held(1, now).unwrap();
    assert_eq!(
        node.ep.stream(1).unwrap().held_len(),
        holepunch_udx::HELD_MAX
    );
    *known.lock().unwrap() = true;
    node.ep.retry_held(1, now).unwrap();
    let slot = node.ep.stream_mut(1).unwrap();
    assert_eq!(slot.stream().remote(), Some((2, peer)));
    assert_eq!(slot.held_len(), 0);
    node.service(now, 0);
    let slot = node.ep.stream_mut(1).unwrap();
    let mut got = Vec::new();
    while let Some(m) = slot.pop_message() {
        got.extend(m);
    }
    assert_eq!(got, (0..holepunch_udx::HELD_MAX as u8).collect::<Vec<_>>());
    assert!(node.ep.retry_held(42, now).is_err(), "unknown stream");
}

/// A blind relay (udx-native `relayTo`): two peers talk end to end through a pair of relay streams that rewrite
/// stream ids; a DESTROY passes through and takes both relay streams down.
#[test]
fn relay_streams_forward_between_two_peers() {
    let (r_addr, a_addr, b_addr) = (addr(1000), addr(2000), addr(3000));
    let mut net = Net::new(vec![
        Node::new(&[r_addr]),
        Node::new(&[a_addr]),
        Node::new(&[b_addr]),
    ]);
    let now = net.now;
    let c = StreamConfig::default;
    {
        let r = &mut net.nodes[0].ep;
        for (id, remote, at) in [
            (101, 1, a_addr),
            (102, 2, b_addr),
            (103, 3, a_addr),
            (104, 4, b_addr),
        ] {
            r.create_stream(id, c(), Some(0), now).unwrap();
            r.connect(id, None, remote, at, now).unwrap();
        }
        r.relay_to(101, 102).unwrap();
        r.relay_to(102, 101).unwrap();
        assert_eq!(
            r.relay_to(101, 102),
            Err(holepunch_udx::EndpointError::Stream(
                StreamError::AlreadyRelaying
            ))
        );
        r.relay_to(103, 104).unwrap();
        r.relay_to(104, 103).unwrap();
    }
    for (node, id, remote, at) in [
        (1, 1, 101, r_addr),
        (2, 2, 102, r_addr),
        (1, 3, 103, r_addr),
        (2, 4, 104, r_addr),
    ] {
        net.nodes[node]
            .ep
            .create_stream(id, c(), Some(0), now)
            .unwrap();
        net.nodes[node]
            .ep
            .connect(id, None, remote, at, now)
            .unwrap();
    }

    // One packet by hand: routed as relayed, sent on with the id rewritten.
    let hand = udx_packet(101, flags::MESSAGE, 0, b"by hand");
    assert_eq!(
        net.nodes[0].handle(now, 0, a_addr, &hand),
        Routing::Relayed { from: 101, to: 102 }
    );
    assert_eq!(net.nodes[0].transmit_events, vec![0]);
    let sent = net.nodes[0].service(now, 0);
    let (to, d) = sent.first().unwrap();
    assert_eq!(*to, b_addr);
    assert_eq!(packet::destination_id(d), Some(2));
    assert_eq!(&d[packet::HEADER_LEN..], b"by hand");

    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(transfer(&mut net, 1, 1, 2, 2, &data), data);
    assert_eq!(transfer(&mut net, 2, 2, 1, 1, &data[..1000]), &data[..1000]);
    assert!(net.run_until(Duration::from_secs(10), |net| {
        net.nodes[1].ep.stream(1).unwrap().close_state() == Some(None)
            && net.nodes[2].ep.stream(2).unwrap().close_state() == Some(None)
    }));

    // A DESTROY passes through the relay and takes both relay streams down.
    assert_eq!(transfer(&mut net, 1, 3, 2, 4, b"ping"), b"ping");
    net.nodes[1].ep.destroy(3).unwrap();
    assert!(net.run_until(Duration::from_secs(10), |net| {
        net.nodes[2].ep.stream(4).unwrap().close_state().is_some()
            && net.nodes[0].ep.stream(103).unwrap().close_state().is_some()
            && net.nodes[0].ep.stream(104).unwrap().close_state().is_some()
    }));
    assert_eq!(
        net.nodes[2].ep.stream(4).unwrap().close_state(),
        Some(Some(&StreamError::Reset))
    );
    assert_eq!(
        net.nodes[0].ep.stream(103).unwrap().close_state(),
        Some(Some(&StreamError::Reset)),
        "r3 reset by the DESTROY it relayed"
    );
}

/// udx-native's `changeRemote(socket, ...)`: a stream moves to another socket and remote mid-transfer; what
/// was in flight on the old path is still acknowledged there, then the change completes on both sides.
#[test]
fn change_remote_moves_a_stream_mid_transfer() {
    let (s1, s2, peer) = (addr(1000), addr(1001), addr(2000));
    let mut net = Net::new(vec![Node::new(&[s1, s2]), Node::new(&[peer])]);
    connect_pair(&mut net, 1, 2);
    // Like HyperDHT's firewall: accept the old path while the change completes.
    net.nodes[0]
        .ep
        .set_firewall(1, Box::new(|_, _| FirewallVerdict::Accept))
        .unwrap();
    let data: Vec<u8> = (0..2_000_000usize)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    let mut written = 0;
    let mut got = Vec::new();
    let mut moved = false;
    let ok = net.run_until(Duration::from_secs(60), |net| {
        if written < data.len() {
            let s = net.nodes[0].ep.stream_mut(1).unwrap().stream_mut();
            written += s.write(&data[written..]);
            if written == data.len() {
                net.nodes[0].ep.finish(1).unwrap();
            }
        }
        got.extend(net.nodes[1].read_all(2));
        if !moved && got.len() > 500_000 {
            moved = true;
            let now = net.now;
            net.nodes[0]
                .ep
                .change_remote(1, Some(1), 2, peer, now)
                .unwrap();
            net.nodes[1].ep.change_remote(2, None, 1, s2, now).unwrap();
        }
        net.nodes[1].ep.stream(2).unwrap().is_remote_ended()
    });
    assert!(
        ok,
        "moved transfer finished ({} of {})",
        got.len(),
        data.len()
    );
    assert!(got == data, "bytes differ after the move");
    assert!(net.run_until(Duration::from_secs(10), |net| {
        !net.nodes[0].ep.stream(1).unwrap().is_remote_changing()
            && !net.nodes[1].ep.stream(2).unwrap().is_remote_changing()
    }));
    assert!(net.nodes[0]
        .changes
        .contains(&(1, StreamChange::RemoteChanged)));
    assert!(net.nodes[1]
        .changes
        .contains(&(2, StreamChange::RemoteChanged)));
    assert_eq!(net.nodes[0].ep.stream(1).unwrap().socket(), Some(1));
    assert_eq!(net.nodes[0].ep.stream_count(0), 0);
    assert_eq!(net.nodes[0].ep.stream_count(1), 1);
    assert_eq!(
        net.nodes[0].ep.stream(1).unwrap().stream().remote(),
        Some((2, peer))
    );
    // Changing the remote of a stream that is not connected is refused.
    let now = net.now;
    net.nodes[0]
        .ep
        .create_stream(5, StreamConfig::default(), Some(0), now)
        .unwrap();
    assert_eq!(
        net.nodes[0].ep.change_remote(5, None, 1, peer, now),
        Err(holepunch_udx::EndpointError::NotConnected)
    );
}

/// A socketless stream (HyperDHT's server side) is connected by its firewall through the socket the first
/// packet arrives on; a detached stream is retired once closed.
#[test]
fn firewall_connects_a_socketless_stream_and_detached_streams_retire() {
    let (s1, s2, peer) = (addr(1000), addr(1001), addr(2000));
    let mut net = Net::new(vec![Node::new(&[s1, s2]), Node::new(&[peer])]);
    let now = net.now;
    let quick = || StreamConfig {
        linger: Duration::ZERO,
        ..StreamConfig::default()
    };
    net.nodes[0]
        .ep
        .create_stream(5, quick(), None, now)
        .unwrap();
    assert_eq!(
        net.nodes[0].ep.connect(5, None, 9, peer, now),
        Err(holepunch_udx::EndpointError::NoSocket)
    );
    net.nodes[0]
        .ep
        .set_firewall(
            5,
            Box::new(move |_, local| {
                if local == s2 {
                    FirewallVerdict::Connect { remote_id: 9 }
                } else {
                    FirewallVerdict::Reject
                }
            }),
        )
        .unwrap();
    net.nodes[1]
        .ep
        .create_stream(9, quick(), Some(0), now)
        .unwrap();
    net.nodes[1].ep.connect(9, None, 5, s2, now).unwrap();
    assert_eq!(
        transfer(&mut net, 1, 9, 0, 5, b"hello over s2"),
        b"hello over s2"
    );
    assert_eq!(net.nodes[0].ep.stream(5).unwrap().socket(), Some(1));
    assert_eq!(
        net.nodes[0].ep.stream(5).unwrap().stream().remote(),
        Some((9, peer))
    );
    // Both let go: the streams finish, close, and are retired.
    assert!(
        net.nodes[0].ep.detach(5).is_none(),
        "carried: retired later"
    );
    assert!(net.nodes[1].ep.detach(9).is_none());
    assert!(net.run_until(Duration::from_secs(10), |net| {
        net.nodes[0].ep.is_empty() && net.nodes[1].ep.is_empty()
    }));
    // A socketless stream is handed back at once.
    let now = net.now;
    net.nodes[0]
        .ep
        .create_stream(6, quick(), None, now)
        .unwrap();
    assert!(net.nodes[0].ep.detach(6).is_some());
    assert!(net.nodes[0].ep.is_empty());
}

/// The peer's END went out before we were bound (lost to a closed port): our data must still flow at once.
#[test]
fn data_flows_promptly_after_the_peers_early_end_was_lost() {
    let (a_addr, b_addr) = (addr(1000), addr(2000));
    // Node 0 is not on the network yet (an address nobody has): b's first packets are lost.
    let mut net = Net::new(vec![Node::new(&[addr(9)]), Node::new(&[b_addr])]);
    let now = net.now;
    net.nodes[1]
        .ep
        .create_stream(2, StreamConfig::default(), Some(0), now)
        .unwrap();
    net.nodes[1].ep.connect(2, None, 1, a_addr, now).unwrap();
    net.nodes[1].ep.finish(2).unwrap();
    let until = net.now + Duration::from_millis(300);
    assert!(!net.run_until(Duration::from_millis(300), |_| false));
    net.now = net.now.max(until);
    net.nodes[0].sockets[0] = a_addr;
    let now = net.now;
    net.nodes[0]
        .ep
        .create_stream(1, StreamConfig::default(), Some(0), now)
        .unwrap();
    net.nodes[0].ep.connect(1, None, 2, b_addr, now).unwrap();
    let start = net.elapsed();
    let data = vec![7u8; 100_000];
    assert_eq!(transfer(&mut net, 0, 1, 1, 2, &data).len(), data.len());
    let took = net.elapsed() - start;
    assert!(took < Duration::from_millis(500), "100 kB took {took:?}");
}

/// Streams shaped for the hostile-input test: connected, held, connecting, relaying, closed.
fn hostile_node(now: Instant) -> Node {
    let (s0, s1, peer) = (addr(1000), addr(1001), addr(2000));
    let mut node = Node::new(&[s0, s1]);
    let ep = &mut node.ep;
    let quick = || StreamConfig {
        linger: Duration::ZERO,
        ..StreamConfig::default()
    };
    for id in 1..=7 {
        ep.create_stream(id, quick(), Some(0), now).unwrap();
    }
    ep.connect(1, None, 11, peer, now).unwrap();
    ep.set_firewall(2, Box::new(|_, _| FirewallVerdict::Hold))
        .unwrap();
    ep.set_firewall(
        3,
        Box::new(|_, _| FirewallVerdict::Connect { remote_id: 13 }),
    )
    .unwrap();
    ep.connect(4, None, 14, peer, now).unwrap();
    ep.connect(5, Some(1), 15, addr(3000), now).unwrap();
    ep.relay_to(4, 5).unwrap();
    ep.relay_to(5, 4).unwrap();
    ep.connect(6, None, 16, peer, now).unwrap();
    ep.destroy(6).unwrap();
    ep.set_firewall(7, Box::new(|_, _| FirewallVerdict::Accept))
        .unwrap();
    ep.set_firewall_off_path(7, true).unwrap();
    ep.connect(7, None, 17, peer, now).unwrap();
    node
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Hostile datagrams (random bytes, many shaped like UDX packets for the live streams: random flags,
    /// sequence numbers, SACK garbage, truncations) never panic the endpoint, and datagrams for no stream
    /// pass through untouched.
    #[test]
    fn hostile_datagrams_never_panic(
        datagrams in prop::collection::vec(
            (
                0usize..2,
                0u16..3,
                0u32..10,
                any::<bool>(),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..1500),
                0u64..50,
            ),
            1..48,
        )
    ) {
        let start = Instant::now();
        let mut node = hostile_node(start);
        let mut now = start;
        for (socket, from, id, shaped, type_flags, mut d, advance) in datagrams {
            if shaped && d.len() >= packet::HEADER_LEN {
                d[0] = packet::MAGIC;
                d[1] = packet::VERSION;
                d[2] = type_flags;
                d[4..8].copy_from_slice(&id.to_le_bytes());
            }
            let from = addr(2000 + from * 500);
            let raw_before = node.raw.len();
            let routing = node.handle(now, socket, from, &d);
            let known = packet::destination_id(&d).is_some_and(|id| (1..=7).contains(&id));
            if !known {
                prop_assert_eq!(routing, Routing::PassThrough);
                prop_assert_eq!(node.raw.len(), raw_before + 1);
                prop_assert_eq!(&node.raw[raw_before].2, &d);
            }
            now += Duration::from_millis(advance);
            for s in 0..2 {
                for (_, out) in node.service(now, s) {
                    prop_assert!(packet::is_udx(&out));
                }
            }
        }
        // Time passes: timers of whatever state the streams reached run without panicking.
        for _ in 0..20 {
            now += Duration::from_millis(500);
            for s in 0..2 {
                node.service(now, s);
            }
        }
    }
}

/// Writes `data` on stream 1 of node 0 and reads stream 2 of node 1 (without ending) until all arrived or
/// `limit` of virtual time passed; returns what arrived. `mid` runs once, when a third has arrived.
fn send_while(
    net: &mut Net,
    data: &[u8],
    limit: Duration,
    mut mid: impl FnMut(&mut Net),
) -> Vec<u8> {
    let mut written = 0;
    let mut got = Vec::new();
    let mut done_mid = false;
    net.run_until(limit, |net| {
        if written < data.len() {
            let s = net.nodes[0].ep.stream_mut(1).unwrap().stream_mut();
            written += s.write(&data[written..]);
        }
        got.extend(net.nodes[1].read_all(2));
        if !done_mid && got.len() >= data.len() / 3 {
            done_mid = true;
            mid(net);
        }
        got.len() == data.len()
    });
    got
}

/// The receiver's host changes its address mid-transfer (its socket now sends from and receives on another
/// address; what goes to the old one is lost) and probes, as HyperDHT does on a network change: with
/// migration on, the sender follows it on its first plausible packet from there and the transfer completes,
/// byte-exact.
#[test]
fn a_stream_with_migration_follows_its_peer_to_a_new_address() {
    let (a, b, b2) = (addr(1000), addr(2000), addr(2001));
    let mut net = Net::new(vec![Node::new(&[a]), Node::new(&[b])]);
    connect_pair(&mut net, 1, 2);
    net.nodes[0].ep.set_migration(1, true).unwrap();
    let data: Vec<u8> = (0..1_500_000usize)
        .map(|i| (i * 13 + i / 999) as u8)
        .collect();
    let got = send_while(&mut net, &data, Duration::from_secs(30), |net| {
        net.nodes[1].sockets[0] = b2;
        let now = net.now;
        net.nodes[1].ep.probe_all(now);
    });
    assert!(got == data, "{} of {} bytes arrived", got.len(), data.len());
    assert_eq!(
        net.nodes[0].ep.stream(1).unwrap().stream().remote(),
        Some((2, b2)),
        "the stream follows the peer"
    );
    // What was in flight to the old address is resent at once, not one tail-loss probe at a time (that took
    // 9.6 s of virtual time here) or after an RTO: the whole transfer takes about what it takes unmoved
    // (78 ms).
    let stats = net.nodes[0].ep.stream(1).unwrap().stream().stats();
    assert_eq!(stats.rto_count, 0, "{stats:?}");
    assert!(
        net.elapsed() < Duration::from_millis(500),
        "{:?}",
        net.elapsed()
    );
}

/// An idle connection: the side whose address changed probes ([`Endpoint::probe_all`], what HyperDHT does on a
/// network change); the other side follows, and data written afterwards arrives.
#[test]
fn a_probe_after_a_network_change_moves_an_idle_peer() {
    let (a, b, b2) = (addr(1000), addr(2000), addr(2001));
    let mut net = Net::new(vec![Node::new(&[a]), Node::new(&[b])]);
    connect_pair(&mut net, 1, 2);
    net.nodes[0].ep.set_migration(1, true).unwrap();
    // Some data first, so sequence numbers and acks are not at their start.
    let first: Vec<u8> = (0..100_000usize).map(|i| i as u8).collect();
    assert!(send_while(&mut net, &first, Duration::from_secs(10), |_| {}) == first);
    net.nodes[1].sockets[0] = b2;
    let now = net.now;
    assert_eq!(net.nodes[1].ep.probe_all(now), vec![0]);
    assert!(net.run_until(Duration::from_secs(1), |net| {
        net.nodes[0].ep.stream(1).unwrap().stream().remote() == Some((2, b2))
    }));
    let second: Vec<u8> = (0..200_000usize).map(|i| (i / 7) as u8).collect();
    assert!(send_while(&mut net, &second, Duration::from_secs(10), |_| {}) == second);
}

/// Off (the default, as udx-native): the stream keeps sending to the address it connected to, so data to a
/// peer whose address changed does not arrive.
#[test]
fn without_migration_a_stream_keeps_its_remote_address() {
    let (a, b, b2) = (addr(1000), addr(2000), addr(2001));
    let mut net = Net::new(vec![Node::new(&[a]), Node::new(&[b])]);
    connect_pair(&mut net, 1, 2);
    let data: Vec<u8> = (0..1_500_000usize).map(|i| (i * 13) as u8).collect();
    let got = send_while(&mut net, &data, Duration::from_secs(20), |net| {
        net.nodes[1].sockets[0] = b2;
    });
    assert!(got.len() < data.len());
    assert_eq!(
        net.nodes[0].ep.stream(1).unwrap().stream().remote(),
        Some((2, b))
    );
}

/// Packets from another address that the peer could not have sent (an ack of data never sent, a sequence far
/// from what was acknowledged, another stream's id) never move a stream, migration on or not.
#[test]
fn implausible_packets_from_elsewhere_do_not_move_a_stream() {
    let (a, b, evil) = (addr(1000), addr(2000), addr(6666));
    let mut net = Net::new(vec![Node::new(&[a]), Node::new(&[b])]);
    connect_pair(&mut net, 1, 2);
    net.nodes[0].ep.set_migration(1, true).unwrap();
    let first: Vec<u8> = (0..50_000usize).map(|i| i as u8).collect();
    assert!(send_while(&mut net, &first, Duration::from_secs(10), |_| {}) == first);
    let now = net.now;
    let forged = |seq: u32, ack: u32| {
        let mut out = Vec::new();
        Header {
            type_flags: flags::HEARTBEAT,
            data_offset: 0,
            remote_id: 1,
            recv_window: 1 << 20,
            seq,
            ack,
        }
        .encode(&mut out);
        out
    };
    for d in [
        forged(0, 1_000_000),            // acks far past what was sent
        forged(1 << 20, 0),              // a sequence far ahead
        forged(0u32.wrapping_sub(5), 0), // behind what was acknowledged
        Vec::from(&b"not udx"[..]),
    ] {
        net.nodes[0].handle(now, 0, evil, &d);
        assert_eq!(
            net.nodes[0].ep.stream(1).unwrap().stream().remote(),
            Some((2, b)),
            "moved by {d:?}"
        );
    }
}
