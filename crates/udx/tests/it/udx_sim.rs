//! Deterministic simulated-network tests of the sans-IO UDX stream: two `Stream`s exchange datagrams through
//! a link model (delay, jitter, loss, duplication, reordering, bandwidth with a bounded queue, MTU) driven by a
//! virtual clock and a seeded RNG. No sockets, no real time, no sleeps; every test is bounded in virtual time.

#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use holepunch_udx::packet::{self, flags, Header};
use holepunch_udx::{Stream, StreamConfig, StreamError, StreamEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One direction of the network.
#[derive(Clone, Debug)]
struct Link {
    delay: Duration,
    jitter: Duration,
    loss: f64,
    duplicate: f64,
    /// Probability of an extra random delay of up to `2 * delay`, which reorders packets.
    reorder: f64,
    /// Bottleneck rate in bytes per second (`None`: unlimited).
    bandwidth: Option<u64>,
    /// Longest queueing delay before tail drop at the bottleneck.
    max_queue: Duration,
    /// Path MTU: datagrams with `len + 28 > mtu` are dropped.
    mtu: usize,
    /// `(period, pause)`: the receiving end stops reading its socket for `pause` at the start of every
    /// `period` (a process descheduled on a loaded machine): what arrives meanwhile is delivered, in order, when
    /// the pause ends.
    receiver_pauses: Option<(Duration, Duration)>,
    /// `(start, end, capacity)`: the receiving end reads nothing between these virtual times (a process or
    /// the link's softirq descheduled once): the first `capacity` datagrams arriving meanwhile are delivered, in
    /// order, at `end` (a socket buffer's worth), the rest are dropped.
    blackout: Option<(Duration, Duration, usize)>,
    blackout_held: usize,
    busy_until: Duration,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            bandwidth: Some(100_000_000),
            max_queue: Duration::from_millis(100),
            mtu: 1500,
            receiver_pauses: None,
            blackout: None,
            blackout_held: 0,
            busy_until: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
struct Peer {
    stream: Stream,
    /// Bytes the application will write in total.
    to_write: u64,
    written: u64,
    /// Call `finish` once everything is written.
    finish: bool,
    /// Read incoming bytes (false simulates a stalled application).
    reading: bool,
    received: u64,
    /// The seed of the byte pattern the *remote* writes, to verify what we read.
    remote_pattern: u8,
    pattern: u8,
    remote_ended: bool,
    closed: Option<Option<StreamError>>,
    messages: Vec<Vec<u8>>,
    remote_changed: u32,
    writable_events: u32,
}

impl Peer {
    fn new(stream: Stream, pattern: u8, remote_pattern: u8) -> Self {
        Peer {
            stream,
            to_write: 0,
            written: 0,
            finish: false,
            reading: true,
            received: 0,
            remote_pattern,
            pattern,
            remote_ended: false,
            closed: None,
            messages: Vec::new(),
            remote_changed: 0,
            writable_events: 0,
        }
    }
}

fn pattern_byte(seed: u8, i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 11) as u8) ^ seed
}

type Filter = Box<dyn FnMut(usize, &[u8]) -> bool>;

struct Sim {
    base: Instant,
    now: Duration,
    rng: StdRng,
    peers: [Peer; 2],
    /// links[0]: peer 0 -> peer 1, links[1]: peer 1 -> peer 0.
    links: [Link; 2],
    /// Which peer owns an address (several addresses may lead to one peer after change_remote).
    addrs: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<(Duration, u64, usize, usize)>>,
    payloads: HashMap<u64, (SocketAddr, Vec<u8>)>,
    counter: u64,
    /// Datagrams delivered per destination address.
    delivered_to: HashMap<SocketAddr, u64>,
    /// Drop datagrams for which this returns true (peer index of sender, datagram).
    filter: Option<Filter>,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// When the bytes read by either peer last grew, and the longest virtual time without such growth while
    /// a run was still going (a stall: e.g. waiting for a retransmission timeout).
    last_progress: Duration,
    max_gap: Duration,
    /// Datagrams the links dropped (random loss, a full bottleneck queue), per sending peer.
    drops: [u64; 2],
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const A_ID: u32 = 1;
const B_ID: u32 = 2;

impl Sim {
    fn new(seed: u64, ab: Link, ba: Link) -> Self {
        Self::with_config(
            seed,
            ab,
            ba,
            StreamConfig::default(),
            StreamConfig::default(),
        )
    }

    fn with_config(seed: u64, ab: Link, ba: Link, ca: StreamConfig, cb: StreamConfig) -> Self {
        // UDX_SIM_SEED_OFFSET shifts every seed, to sweep more scenarios by hand; the default runs are fixed.
        let seed = seed.wrapping_add(
            std::env::var("UDX_SIM_SEED_OFFSET")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        );
        let base = Instant::now();
        let mut a = Stream::new(A_ID, ca, base);
        let mut b = Stream::new(B_ID, cb, base);
        a.connect(B_ID, addr(2000), base);
        b.connect(A_ID, addr(1000), base);
        let mut addrs = HashMap::new();
        addrs.insert(addr(1000), 0);
        addrs.insert(addr(2000), 1);
        Sim {
            base,
            now: Duration::ZERO,
            rng: StdRng::seed_from_u64(seed),
            peers: [Peer::new(a, 0x11, 0x22), Peer::new(b, 0x22, 0x11)],
            links: [ab, ba],
            addrs,
            queue: BinaryHeap::new(),
            payloads: HashMap::new(),
            counter: 0,
            delivered_to: HashMap::new(),
            filter: None,
            out: Vec::with_capacity(64 * 1500),
            buf: vec![0; 256 * 1024],
            last_progress: Duration::ZERO,
            max_gap: Duration::ZERO,
            drops: [0; 2],
        }
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn send_datagram(&mut self, from: usize, dest: SocketAddr, d: Vec<u8>) {
        if let Some(f) = self.filter.as_mut() {
            if f(from, &d) {
                return;
            }
        }
        let Some(&to) = self.addrs.get(&dest) else {
            return;
        };
        let link = &mut self.links[from];
        if d.len() + 28 > link.mtu {
            return;
        }
        if self.rng.gen_bool(link.loss) {
            self.drops[from] += 1;
            return;
        }
        let copies = if self.rng.gen_bool(link.duplicate) {
            2
        } else {
            1
        };
        let mut depart = self.now;
        if let Some(bw) = link.bandwidth {
            let start = link.busy_until.max(self.now);
            if start - self.now > link.max_queue {
                self.drops[from] += 1;
                return; // tail drop
            }
            let tx = Duration::from_nanos((d.len() as u64 + 28) * 1_000_000_000 / bw);
            link.busy_until = start + tx;
            depart = link.busy_until;
        }
        for _ in 0..copies {
            let mut at = depart + link.delay;
            if !link.jitter.is_zero() {
                at += link.jitter.mul_f64(self.rng.gen::<f64>());
            }
            if link.reorder > 0.0 && self.rng.gen_bool(link.reorder) {
                at += (link.delay * 2).mul_f64(self.rng.gen::<f64>());
            }
            if let Some((period, pause)) = link.receiver_pauses {
                let phase = Duration::from_nanos((at.as_nanos() % period.as_nanos()) as u64);
                if phase < pause {
                    at += pause - phase;
                }
            }
            if let Some((start, end, capacity)) = link.blackout {
                if at >= start && at < end {
                    if link.blackout_held >= capacity {
                        self.drops[from] += 1;
                        continue;
                    }
                    link.blackout_held += 1;
                    at = end;
                }
            }
            self.counter += 1;
            self.payloads.insert(self.counter, (dest, d.clone()));
            self.queue.push(Reverse((at, self.counter, to, from)));
        }
    }

    /// Application work and transmissions for one peer.
    fn pump_peer(&mut self, i: usize) {
        let now = self.instant();
        // Events.
        while let Some(ev) = self.peers[i].stream.poll_event() {
            let p = &mut self.peers[i];
            match ev {
                StreamEvent::Readable => {}
                StreamEvent::Writable => p.writable_events += 1,
                StreamEvent::RemoteEnded => p.remote_ended = true,
                StreamEvent::Message(m) => p.messages.push(m),
                StreamEvent::RemoteChanged => p.remote_changed += 1,
                StreamEvent::Closed { error } => p.closed = Some(error),
            }
        }
        // Reading.
        if self.peers[i].reading {
            loop {
                let n = self.peers[i].stream.read(&mut self.buf);
                if n == 0 {
                    break;
                }
                let p = &mut self.peers[i];
                for (k, &b) in self.buf[..n].iter().enumerate() {
                    let off = p.received + k as u64;
                    assert_eq!(
                        b,
                        pattern_byte(p.remote_pattern, off),
                        "peer {i}: wrong byte at offset {off}"
                    );
                }
                p.received += n as u64;
            }
        }
        // Writing.
        loop {
            let p = &mut self.peers[i];
            if p.written >= p.to_write {
                break;
            }
            let n = ((p.to_write - p.written) as usize)
                .min(self.buf.len())
                .min(p.stream.write_capacity());
            if n == 0 {
                break;
            }
            for k in 0..n {
                self.buf[k] = pattern_byte(p.pattern, p.written + k as u64);
            }
            let w = p.stream.write(&self.buf[..n]);
            p.written += w as u64;
            if w < n {
                break;
            }
        }
        {
            let p = &mut self.peers[i];
            if p.finish && p.written == p.to_write {
                p.stream.finish();
            }
        }
        // Transmit.
        loop {
            self.out.clear();
            let Some(t) = self.peers[i].stream.poll_transmit(now, &mut self.out, 64) else {
                break;
            };
            assert_eq!(t.len, self.out.len());
            assert!(t.segment_size > 0 && t.segment_size <= 1500 - 28);
            let out = std::mem::take(&mut self.out);
            let mut chunks = out.chunks(t.segment_size).peekable();
            while let Some(c) = chunks.next() {
                if chunks.peek().is_some() {
                    assert_eq!(c.len(), t.segment_size);
                }
                assert!(packet::is_udx(c));
                self.send_datagram(i, t.destination, c.to_vec());
            }
            self.out = out;
        }
    }

    fn pump(&mut self) {
        // Twice, so that reads that reopen the window get their ack out in the same instant.
        for _ in 0..2 {
            self.pump_peer(0);
            self.pump_peer(1);
        }
    }

    /// Runs until `done` holds (true) or virtual time passes `limit` or nothing can happen any more (false).
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let mut read_so_far = self.peers[0].received + self.peers[1].received;
        self.last_progress = self.now;
        loop {
            self.pump();
            let read = self.peers[0].received + self.peers[1].received;
            if read != read_so_far {
                read_so_far = read;
                self.max_gap = self.max_gap.max(self.now - self.last_progress);
                self.last_progress = self.now;
            }
            if done(self) {
                return true;
            }
            let mut next: Option<Duration> = self.queue.peek().map(|Reverse((t, ..))| *t);
            for p in &self.peers {
                if let Some(t) = p.stream.poll_timeout() {
                    let d = t.saturating_duration_since(self.base);
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
            let Some(next) = next else {
                return false;
            };
            if next > limit {
                return false;
            }
            if next > self.now {
                self.now = next;
            }
            let now = self.instant();
            while let Some(Reverse((t, id, to, from))) = self.queue.peek().copied() {
                if t > self.now {
                    break;
                }
                self.queue.pop();
                let Some((dest, d)) = self.payloads.remove(&id) else {
                    continue;
                };
                *self.delivered_to.entry(dest).or_default() += 1;
                let src = if from == 0 { addr(1000) } else { addr(2000) };
                self.peers[to].stream.handle_datagram(now, src, &d);
            }
            for p in &mut self.peers {
                if let Some(t) = p.stream.poll_timeout() {
                    if t <= now {
                        p.stream.handle_timeout(now);
                    }
                }
            }
        }
    }
}

const MIB: u64 = 1024 * 1024;

fn transfer(sim: &mut Sim, a_bytes: u64, b_bytes: u64, limit_secs: u64) {
    sim.peers[0].to_write = a_bytes;
    sim.peers[1].to_write = b_bytes;
    let ok = sim.run_until(Duration::from_secs(limit_secs), |s| {
        s.peers[1].received == a_bytes && s.peers[0].received == b_bytes
    });
    assert!(
        ok,
        "transfer incomplete at {:?}: b got {}/{a_bytes}, a got {}/{b_bytes}; a {:?} b {:?}",
        sim.now,
        sim.peers[1].received,
        sim.peers[0].received,
        sim.peers[0].stream.stats(),
        sim.peers[1].stream.stats()
    );
}

#[test]
fn clean_8mib_each_way() {
    for dir in 0..2 {
        let mut sim = Sim::new(1, Link::default(), Link::default());
        let (a, b) = if dir == 0 { (8 * MIB, 0) } else { (0, 8 * MIB) };
        transfer(&mut sim, a, b, 60);
        let st = sim.peers[dir].stream.stats();
        eprintln!("clean 8 MiB: {:?} virtual, {st:?}", sim.now);
        // 100 MB/s bottleneck, 20 ms RTT: must not crawl.
        assert!(sim.now < Duration::from_secs(10), "took {:?}", sim.now);
        assert_eq!(st.rto_count, 0, "{st:?}");
        assert!(st.srtt >= Duration::from_millis(20), "{st:?}");
    }
}

#[test]
fn loss_5_percent() {
    let link = Link {
        loss: 0.05,
        ..Link::default()
    };
    for dir in 0..2 {
        let mut sim = Sim::new(5 + dir as u64, link.clone(), link.clone());
        let (a, b) = if dir == 0 { (8 * MIB, 0) } else { (0, 8 * MIB) };
        transfer(&mut sim, a, b, 600);
        assert!(sim.peers[dir].stream.stats().packets_retransmitted > 0);
    }
}

#[test]
fn loss_20_percent() {
    let link = Link {
        loss: 0.20,
        ..Link::default()
    };
    for dir in 0..2 {
        let mut sim = Sim::new(20 + dir as u64, link.clone(), link.clone());
        let (a, b) = if dir == 0 { (8 * MIB, 0) } else { (0, 8 * MIB) };
        transfer(&mut sim, a, b, 1200);
        let st = sim.peers[dir].stream.stats();
        eprintln!("20% loss, 8 MiB: {:?} virtual, {st:?}", sim.now);
        assert!(st.packets_retransmitted > 0);
    }
}

#[test]
fn reordering_and_duplication() {
    let link = Link {
        reorder: 0.1,
        duplicate: 0.1,
        jitter: Duration::from_millis(3),
        ..Link::default()
    };
    let mut sim = Sim::new(7, link.clone(), link);
    transfer(&mut sim, 4 * MIB, 0, 300);
}

#[test]
fn both_directions_at_once() {
    let link = Link {
        loss: 0.01,
        ..Link::default()
    };
    let mut sim = Sim::new(3, link.clone(), link);
    transfer(&mut sim, 8 * MIB, 8 * MIB, 300);
}

#[test]
fn half_close_each_way() {
    for first in 0..2 {
        let mut sim = Sim::new(11, Link::default(), Link::default());
        sim.peers[first].to_write = 100_000;
        sim.peers[first].finish = true;
        let other = 1 - first;
        let ok = sim.run_until(Duration::from_secs(30), |s| s.peers[other].remote_ended);
        assert!(ok);
        // END surfaces only after every byte before it.
        assert_eq!(sim.peers[other].received, 100_000);
        assert!(sim.peers[first].closed.is_none() && sim.peers[other].closed.is_none());
        // The other side can still write, then ends too; both close cleanly.
        sim.peers[other].to_write = 50_000;
        sim.peers[other].finish = true;
        let ok = sim.run_until(Duration::from_secs(60), |s| {
            s.peers[0].closed.is_some() && s.peers[1].closed.is_some()
        });
        assert!(
            ok,
            "did not close: {:?} {:?}",
            sim.peers[0].closed, sim.peers[1].closed
        );
        assert_eq!(sim.peers[first].received, 50_000);
        assert!(sim.peers[first].remote_ended);
        assert_eq!(sim.peers[0].closed, Some(None));
        assert_eq!(sim.peers[1].closed, Some(None));
        // After the linger both are gone.
        let ok = sim.run_until(sim.now + Duration::from_secs(4), |s| {
            s.peers[0].stream.is_closed() && s.peers[1].stream.is_closed()
        });
        assert!(ok);
    }
}

#[test]
fn half_close_with_loss() {
    let link = Link {
        loss: 0.1,
        ..Link::default()
    };
    let mut sim = Sim::new(12, link.clone(), link);
    sim.peers[0].to_write = 300_000;
    sim.peers[0].finish = true;
    sim.peers[1].to_write = 200_000;
    sim.peers[1].finish = true;
    let ok = sim.run_until(Duration::from_secs(300), |s| {
        s.peers[0].closed.is_some() && s.peers[1].closed.is_some()
    });
    assert!(ok);
    assert_eq!(sim.peers[1].received, 300_000);
    assert_eq!(sim.peers[0].received, 200_000);
}

#[test]
fn destroy_resets_remote() {
    let mut sim = Sim::new(13, Link::default(), Link::default());
    sim.peers[0].to_write = 4 * MIB;
    let ok = sim.run_until(Duration::from_secs(30), |s| s.peers[1].received > MIB);
    assert!(ok);
    sim.peers[0].stream.destroy();
    sim.peers[0].to_write = sim.peers[0].written;
    let ok = sim.run_until(Duration::from_secs(30), |s| {
        s.peers[0].closed.is_some() && s.peers[1].closed.is_some()
    });
    assert!(ok);
    assert_eq!(sim.peers[0].closed, Some(None));
    assert_eq!(sim.peers[1].closed, Some(Some(StreamError::Reset)));
    assert!(sim.peers[0].stream.is_closed());
    // Nothing further is sent by either.
    let mut out = Vec::new();
    let now = sim.instant();
    assert!(sim.peers[0]
        .stream
        .poll_transmit(now, &mut out, 8)
        .is_none());
    assert!(sim.peers[1]
        .stream
        .poll_transmit(now, &mut out, 8)
        .is_none());
}

#[test]
fn change_remote_mid_transfer() {
    let mut sim = Sim::new(17, Link::default(), Link::default());
    // Peer 1 also becomes reachable at a second address (a new path found by holepunching).
    sim.addrs.insert(addr(2001), 1);
    sim.addrs.insert(addr(1001), 0);
    sim.peers[0].to_write = 8 * MIB;
    sim.peers[1].to_write = MIB;
    let ok = sim.run_until(Duration::from_secs(30), |s| s.peers[1].received > 2 * MIB);
    assert!(ok);
    let now = sim.instant();
    sim.peers[0].stream.change_remote(B_ID, addr(2001), now);
    sim.peers[1].stream.change_remote(A_ID, addr(1001), now);
    let before_new = sim.delivered_to.get(&addr(2001)).copied().unwrap_or(0);
    assert_eq!(before_new, 0);
    transfer(&mut sim, 8 * MIB, MIB, 120);
    assert_eq!(sim.peers[0].remote_changed, 1);
    assert_eq!(sim.peers[1].remote_changed, 1);
    assert_eq!(sim.peers[0].stream.remote(), Some((B_ID, addr(2001))));
    assert!(sim.delivered_to.get(&addr(2001)).copied().unwrap_or(0) > 1000);
}

#[test]
fn mtu_probing_reaches_link_mtu() {
    // A slower link, so that the transfer lasts the ten round trips the search needs.
    let link = Link {
        mtu: 1400,
        bandwidth: Some(10_000_000),
        ..Link::default()
    };
    let mut sim = Sim::new(19, link.clone(), link);
    transfer(&mut sim, 4 * MIB, 0, 60);
    // 1200 + 32k, the largest step that fits 1400.
    assert_eq!(sim.peers[0].stream.stats().mtu, 1392);

    let link = Link {
        bandwidth: Some(10_000_000),
        ..Link::default()
    };
    let mut sim = Sim::new(19, link.clone(), link);
    transfer(&mut sim, 4 * MIB, 0, 60);
    assert_eq!(sim.peers[0].stream.stats().mtu, 1500);
    assert_eq!(sim.peers[0].stream.max_message_len(), 1500 - 48);
}

#[test]
fn mtu_stays_at_base_when_probes_are_dropped() {
    let mut sim = Sim::new(23, Link::default(), Link::default());
    // Drop every padded datagram (MTU probes), as a peer that never acks probes.
    sim.filter = Some(Box::new(|_, d| d.len() > 3 && d[3] != 0));
    transfer(&mut sim, 2 * MIB, 0, 120);
    let st = sim.peers[0].stream.stats();
    assert_eq!(st.mtu, 1200, "{st:?}");
    assert_eq!(sim.peers[0].stream.max_message_len(), 1200 - 48);
}

#[test]
fn messages() {
    let mut sim = Sim::new(29, Link::default(), Link::default());
    let now = sim.instant();
    let max = sim.peers[0].stream.max_message_len();
    assert_eq!(max, 1152);
    assert!(matches!(
        sim.peers[0].stream.send_message(&vec![0; max + 1]),
        Err(StreamError::MessageTooLarge { .. })
    ));
    for i in 0..100u32 {
        let m = i.to_le_bytes().repeat(1 + i as usize % 50);
        sim.peers[0].stream.send_message(&m).unwrap();
    }
    sim.peers[1].stream.send_message(b"pong").unwrap();
    let _ = now;
    let ok = sim.run_until(Duration::from_secs(5), |s| {
        s.peers[1].messages.len() == 100 && s.peers[0].messages.len() == 1
    });
    assert!(ok);
    for (i, m) in sim.peers[1].messages.iter().enumerate() {
        assert_eq!(m, &(i as u32).to_le_bytes().repeat(1 + i % 50));
    }
    assert_eq!(sim.peers[0].messages[0], b"pong");
    // Messages do not consume sequence numbers: a stream transfer still works after them.
    transfer(&mut sim, MIB, 0, 30);
}

#[test]
fn zero_receive_window_recovery() {
    let cfg = StreamConfig {
        recv_window_max: 64 * 1024,
        ..StreamConfig::default()
    };
    let mut sim = Sim::with_config(
        31,
        Link::default(),
        Link::default(),
        StreamConfig::default(),
        cfg,
    );
    sim.peers[1].reading = false;
    sim.peers[0].to_write = 2 * MIB;
    // The sender fills the window and stalls.
    let ok = sim.run_until(Duration::from_secs(10), |s| {
        s.peers[1].stream.readable_len() >= 64 * 1024
            && s.peers[0].stream.stats().inflight_packets == 0
    });
    assert!(ok);
    let stalled_at = sim.now;
    // Stay stalled for a while: zero-window probes, no data.
    let ok = sim.run_until(stalled_at + Duration::from_secs(5), |_| false);
    assert!(!ok);
    assert!(sim.peers[1].stream.readable_len() < 64 * 1024 + 2 * 1500);
    let st = sim.peers[0].stream.stats();
    assert!(st.zero_window_probes >= 1, "{st:?}");
    assert!(sim.peers[0].closed.is_none());
    // The reader resumes: everything arrives.
    sim.peers[1].reading = true;
    transfer(&mut sim, 2 * MIB, 0, 120);
}

#[test]
fn zero_window_recovers_through_probe_alone() {
    // Same stall, but the proactive window update after read is lost: the zero-window probe must recover.
    let cfg = StreamConfig {
        recv_window_max: 32 * 1024,
        ..StreamConfig::default()
    };
    let mut sim = Sim::with_config(
        37,
        Link::default(),
        Link::default(),
        StreamConfig::default(),
        cfg,
    );
    sim.peers[1].reading = false;
    sim.peers[0].to_write = 512 * 1024;
    let ok = sim.run_until(Duration::from_secs(10), |s| {
        s.peers[1].stream.readable_len() >= 32 * 1024
            && s.peers[0].stream.stats().inflight_packets == 0
    });
    assert!(ok);
    sim.peers[1].reading = true;
    // Drop the next pure acks from peer 1 until a heartbeat reaches it.
    let mut dropping = true;
    sim.filter = Some(Box::new(move |from, d| {
        if from == 0 && d.len() >= 20 && d[2] & flags::HEARTBEAT != 0 {
            dropping = false;
        }
        from == 1 && dropping
    }));
    transfer(&mut sim, 512 * 1024, 0, 120);
    assert!(sim.peers[0].stream.stats().zero_window_probes >= 1);
}

#[test]
fn keepalive_heartbeats_when_idle() {
    let cfg = StreamConfig {
        keepalive: Some(Duration::from_secs(1)),
        ..StreamConfig::default()
    };
    let mut sim = Sim::with_config(
        41,
        Link::default(),
        Link::default(),
        cfg,
        StreamConfig::default(),
    );
    let mut heartbeats = 0u32;
    let counter = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let c2 = counter.clone();
    sim.filter = Some(Box::new(move |from, d| {
        if let Ok((h, _)) = Header::decode(d) {
            if from == 0 && h.has(flags::HEARTBEAT) {
                c2.set(c2.get() + 1);
            }
        }
        false
    }));
    let ok = sim.run_until(Duration::from_millis(5500), |_| false);
    assert!(!ok);
    heartbeats += counter.get();
    assert_eq!(heartbeats, 5);
    // Each heartbeat was answered with an ack (B's packets received by A).
    assert!(sim.peers[0].stream.stats().packets_received >= 5);
}

#[test]
fn timeout_closes_stream() {
    let mut sim = Sim::new(43, Link::default(), Link::default());
    sim.peers[0].to_write = 100_000;
    let ok = sim.run_until(Duration::from_secs(5), |s| s.peers[1].received > 10_000);
    assert!(ok);
    // The path dies.
    sim.links[0].loss = 1.0;
    sim.links[1].loss = 1.0;
    let ok = sim.run_until(Duration::from_secs(3600), |s| s.peers[0].closed.is_some());
    assert!(ok);
    assert_eq!(sim.peers[0].closed, Some(Some(StreamError::TimedOut)));
    assert!(sim.peers[0].stream.stats().rto_count >= 6);
}

#[test]
fn sequence_numbers_wrap() {
    let ca = StreamConfig {
        initial_seq: u32::MAX - 500,
        ..StreamConfig::default()
    };
    let cb = StreamConfig {
        initial_ack: u32::MAX - 500,
        ..StreamConfig::default()
    };
    let link = Link {
        loss: 0.02,
        ..Link::default()
    };
    let mut sim = Sim::with_config(47, link.clone(), link, ca, cb);
    transfer(&mut sim, 4 * MIB, 0, 300);
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    /// Real datagrams of a short exchange (data, acks with SACKs, END, a message), to mutate.
    fn sample_datagrams() -> Vec<Vec<u8>> {
        let link = Link {
            loss: 0.1,
            ..Link::default()
        };
        let mut sim = Sim::new(99, link.clone(), link);
        let captured = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let c2 = captured.clone();
        sim.filter = Some(Box::new(move |_, d| {
            if c2.borrow().len() < 400 {
                c2.borrow_mut().push(d.to_vec());
            }
            false
        }));
        sim.peers[0].stream.send_message(b"hello").unwrap();
        sim.peers[0].to_write = 200_000;
        sim.peers[0].finish = true;
        sim.run_until(Duration::from_secs(30), |s| s.peers[1].remote_ended);
        let v = captured.borrow().clone();
        v
    }

    fn live_stream(now: Instant) -> Stream {
        let mut s = Stream::new(B_ID, StreamConfig::default(), now);
        s.connect(A_ID, addr(1000), now);
        let _ = s.write(&[7u8; 30_000]);
        s
    }

    fn drive(s: &mut Stream, now: Instant) {
        let mut out = Vec::new();
        for _ in 0..100 {
            out.clear();
            if s.poll_transmit(now, &mut out, 16).is_none() {
                break;
            }
        }
        let mut buf = [0u8; 2048];
        while s.read(&mut buf) > 0 {}
        while s.poll_event().is_some() {}
        if let Some(t) = s.poll_timeout() {
            s.handle_timeout(t);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_datagrams(ds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 1..20)) {
            let now = Instant::now();
            let mut s = live_stream(now);
            for (i, d) in ds.iter().enumerate() {
                let _ = Header::decode(d);
                let mut d = d.clone();
                if d.len() >= 8 && i % 2 == 0 {
                    // Make half of them reach the stream logic.
                    d[0] = 0xff;
                    d[1] = 1;
                    d[4..8].copy_from_slice(&B_ID.to_le_bytes());
                }
                let t = now + Duration::from_millis(i as u64 * 50);
                s.handle_datagram(t, addr(1000), &d);
                drive(&mut s, t);
            }
        }

        #[test]
        fn mutated_and_truncated_datagrams(
            picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>(), 0usize..1600, 0u8..4), 1..60)
        ) {
            thread_local! {
                static SAMPLES: Vec<Vec<u8>> = sample_datagrams();
            }
            let samples = SAMPLES.with(|s| s.clone());
            prop_assert!(!samples.is_empty());
            let now = Instant::now();
            let mut s = live_stream(now);
            for (i, (which, pos, byte, cut, mode)) in picks.into_iter().enumerate() {
                let mut d = which.get(&samples).clone();
                // Address everything to our stream, as the driver would route it.
                if d.len() >= 8 {
                    d[4..8].copy_from_slice(&B_ID.to_le_bytes());
                }
                match mode {
                    0 => d.truncate(cut),
                    1 if !d.is_empty() => { let p = pos.index(d.len()); d[p] = byte; }
                    2 if d.len() > 4 => { let p = 2 + pos.index(d.len() - 2).min(18); if p < d.len() { d[p] ^= byte | 1; } }
                    _ => {}
                }
                let t = now + Duration::from_millis(i as u64 * 7);
                s.handle_datagram(t, addr(1000), &d);
                drive(&mut s, t);
            }
        }
    }
}

/// A narrow bottleneck (2 MB/s, 40 ms RTT, 50 ms of queue then tail drop): BBR must use most of it and not
/// collapse through the drops.
#[test]
fn bbr_fills_a_narrow_bottleneck() {
    let link = Link {
        delay: Duration::from_millis(20),
        bandwidth: Some(2_000_000),
        max_queue: Duration::from_millis(50),
        ..Link::default()
    };
    let mut sim = Sim::new(53, link.clone(), link);
    transfer(&mut sim, 8 * MIB, 0, 120);
    let secs = sim.now.as_secs_f64();
    let goodput = 8.0 * MIB as f64 / secs;
    let st = sim.peers[0].stream.stats();
    eprintln!("bottleneck: {secs:.2}s, {goodput:.0} B/s, {st:?}");
    assert!(goodput > 0.7 * 2_000_000.0, "goodput {goodput:.0} B/s");
    assert!(st.bbr_state >= 2, "{st:?}");
}

/// Everything at once, both directions, with half-close at the end.
#[test]
fn hostile_network_both_ways_with_end() {
    let link = Link {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        jitter: Duration::from_millis(5),
        ..Link::default()
    };
    let mut sim = Sim::new(59, link.clone(), link);
    for p in &mut sim.peers {
        p.to_write = 2 * MIB;
        p.finish = true;
    }
    let ok = sim.run_until(Duration::from_secs(600), |s| {
        s.peers[0].closed.is_some() && s.peers[1].closed.is_some()
    });
    assert!(
        ok,
        "{:?} {:?}",
        sim.peers[0].stream.stats(),
        sim.peers[1].stream.stats()
    );
    for p in &sim.peers {
        assert_eq!(p.received, 2 * MIB);
        assert!(p.remote_ended);
        assert_eq!(p.closed, Some(None));
    }
}

/// A write beyond the high watermark (256 KiB + send window) is cut short; Writable comes once acks drain it.
#[test]
fn backpressure_and_writable() {
    let mut sim = Sim::new(61, Link::default(), Link::default());
    sim.peers[1].reading = false;
    let big = vec![0u8; 4 << 20];
    let cap = sim.peers[0].stream.write_capacity();
    let n = sim.peers[0].stream.write(&big);
    assert_eq!(n, cap);
    assert!(n < big.len() && n >= 256 * 1024, "{n}");
    assert_eq!(sim.peers[0].stream.write(&big), 0);
    let ok = sim.run_until(Duration::from_secs(10), |s| s.peers[0].writable_events > 0);
    assert!(ok);
    assert!(sim.peers[0].stream.write_capacity() > 0);
    assert!(sim.peers[0].stream.unacked_len() < n);
}

/// A slow path with sub-millisecond delay: BBR's bandwidth-delay product rounds to 0 packets, which libudx
/// copies into cwnd when fast recovery ends. The stream must not stall there.
#[test]
fn slow_submillisecond_path_with_loss_does_not_stall() {
    for seed in 0..4 {
        let link = Link {
            delay: Duration::from_micros(200),
            bandwidth: Some(300_000),
            max_queue: Duration::from_millis(30),
            loss: 0.03,
            ..Link::default()
        };
        let mut sim = Sim::new(67 + seed, link.clone(), link);
        transfer(&mut sim, MIB, 0, 300);
    }
}

/// Loopback-like: 100 µs delay, a fast link with a short queue, and drops. RTTs round to 0 or 1 ms here, the
/// regime where BBR's millisecond arithmetic is at its coarsest.
#[test]
fn loopback_like_path_with_drops() {
    for seed in 0..3 {
        let link = Link {
            delay: Duration::from_micros(100),
            jitter: Duration::from_micros(300),
            bandwidth: Some(400_000_000),
            max_queue: Duration::from_millis(1),
            loss: 0.01,
            ..Link::default()
        };
        let mut sim = Sim::new(71 + seed, link.clone(), link);
        transfer(&mut sim, 16 * MIB, 4 * MIB, 120);
    }
}

/// A transfer of `MIB_N` MiB one way over a path with `loss` random loss each way (data and acks), as
/// `benches/udx-loss.sh` measures with iptables. Returns the sender's stats, the virtual time taken and the
/// longest virtual time without progress.
fn lossy_transfer(
    link: &Link,
    loss: f64,
    seed: u64,
    mib: u64,
) -> (holepunch_udx::StreamStats, Duration, Duration) {
    let link = Link {
        loss,
        ..link.clone()
    };
    let mut sim = Sim::new(seed, link.clone(), link);
    transfer(&mut sim, mib * MIB, 0, 600);
    (sim.peers[0].stream.stats(), sim.now, sim.max_gap)
}

/// A veth-like path: 50 µs each way, 400 MB/s, 2 ms of queue.
fn veth_like() -> Link {
    Link {
        delay: Duration::from_micros(50),
        bandwidth: Some(400_000_000),
        max_queue: Duration::from_millis(2),
        ..Link::default()
    }
}

/// A LAN-like path: 1 ms each way, 100 MB/s, 5 ms of queue.
fn lan_like() -> Link {
    Link {
        delay: Duration::from_millis(1),
        bandwidth: Some(100_000_000),
        max_queue: Duration::from_millis(5),
        ..Link::default()
    }
}

/// Random loss (5% and 10% each way, data and acks alike) must neither stall the transfer nor make BBR back
/// off: RACK and the probes repair every loss without a retransmission timeout (libudx's 1 s minimum), no
/// progress gap comes anywhere near one, and goodput stays close to the lossless run's, in virtual time.
#[test]
fn random_loss_recovers_without_rto_stalls() {
    const MIB_N: u64 = 8;
    let (_, lossless, _) = lossy_transfer(&lan_like(), 0.0, 120, MIB_N);
    for loss in [0.05, 0.10] {
        for seed in 0..3 {
            let (st, t, gap) = lossy_transfer(&lan_like(), loss, 121 + seed, MIB_N);
            let ctx = format!("LAN-like, {loss} loss, seed {seed}: {t:?}, max gap {gap:?}, {st:?}");
            assert_eq!(st.rto_count, 0, "{ctx}");
            assert!(gap < Duration::from_millis(100), "{ctx}");
            // Lossless: about 90 ms; the 40% floor of the issue is far below what recovery achieves.
            assert!(
                t.as_secs_f64() < lossless.as_secs_f64() / 0.7,
                "{ctx}; lossless {lossless:?}"
            );
            assert!(st.packets_retransmitted > 0, "{ctx}");
        }
    }
    // Sub-millisecond RTT, where whole-millisecond send times tie: a retransmission sent in the same
    // millisecond as newer packets must not look older than them (else it is declared lost again at once).
    for loss in [0.05, 0.10] {
        for seed in 0..2 {
            let (st, t, gap) = lossy_transfer(&veth_like(), loss, 131 + seed, MIB_N);
            let ctx =
                format!("veth-like, {loss} loss, seed {seed}: {t:?}, max gap {gap:?}, {st:?}");
            assert_eq!(st.rto_count, 0, "{ctx}");
            assert!(gap < Duration::from_millis(100), "{ctx}");
            let goodput = (MIB_N * MIB) as f64 / t.as_secs_f64();
            assert!(goodput > 100e6, "{ctx}: {goodput:.0} B/s");
        }
    }
}

/// The ack that reopens a closed receive window is a single datagram; when it is lost, the sender's
/// zero-window probe must find the open window within milliseconds, not after a 1 s RTO (libudx's first
/// zero-window probe waits one RTO).
#[test]
fn lost_window_update_is_probed_quickly() {
    let mut sim = Sim::new(141, lan_like(), lan_like());
    sim.peers[1].reading = false;
    sim.peers[0].to_write = 8 * MIB;
    let full = holepunch_udx::DEFAULT_RWND_MAX as usize - 1500;
    let ok = sim.run_until(Duration::from_secs(10), |s| {
        s.peers[1].stream.readable_len() >= full && s.peers[0].stream.stats().inflight_packets == 0
    });
    assert!(ok, "{:?}", sim.peers[0].stream.stats());
    // Drop the receiver's next datagram: the ack announcing the reopened window.
    let mut dropped = false;
    sim.filter = Some(Box::new(move |from, _| {
        if from == 1 && !dropped {
            dropped = true;
            return true;
        }
        false
    }));
    sim.peers[1].reading = true;
    let t0 = sim.now;
    let ok = sim.run_until(Duration::from_secs(600), |s| s.peers[1].received == 8 * MIB);
    let st = sim.peers[0].stream.stats();
    assert!(ok, "{st:?}");
    assert!(st.zero_window_probes >= 1, "{st:?}");
    assert_eq!(st.rto_count, 0, "{st:?}");
    assert!(
        sim.now - t0 < Duration::from_millis(300),
        "{:?} after reading resumed, max gap {:?}, {st:?}",
        sim.now - t0,
        sim.max_gap
    );
}

/// One run as `benches/udx-loss.sh` makes it: the receiver ends its (empty) direction at once, the sender writes
/// `mib` MiB and ends; the run is over when both streams closed (both ENDs acknowledged). Random `loss` each way.
/// Returns both ends' stats, when the last byte arrived, when both had closed, and the longest gap in between
/// without progress.
fn bench_shaped_run(
    link: &Link,
    loss: f64,
    seed: u64,
    mib: u64,
) -> (
    [holepunch_udx::StreamStats; 2],
    Duration,
    Duration,
    Duration,
) {
    let link = Link {
        loss,
        ..link.clone()
    };
    let mut sim = Sim::new(seed, link.clone(), link);
    sim.peers[1].finish = true;
    sim.peers[0].to_write = mib * MIB;
    sim.peers[0].finish = true;
    let ok = sim.run_until(Duration::from_secs(600), |s| {
        s.peers[1].received == mib * MIB
    });
    assert!(ok, "{loss} loss, seed {seed}: transfer incomplete");
    let last_byte = sim.now;
    let gap = sim.max_gap;
    let ok = sim.run_until(Duration::from_secs(600), |s| {
        s.peers[0].closed.is_some() && s.peers[1].closed.is_some()
    });
    let stats = [sim.peers[0].stream.stats(), sim.peers[1].stream.stats()];
    assert!(ok, "{loss} loss, seed {seed}: did not close: {stats:?}");
    assert_eq!(sim.peers[0].closed, Some(None));
    assert_eq!(sim.peers[1].closed, Some(None));
    (stats, last_byte, sim.now, gap)
}

/// The bench's runs end when the receiver's stream closed. Its END went out at the very start, before it had any
/// RTT sample (it sends no data, so it never gets one): when that END or its acknowledgement was lost, libudx (and
/// we) waited for the 1 s initial RTO, a stall at the tail of a transfer shorter than that. No run at 1%, 5% or
/// 10% loss may need a retransmission timeout on either side, and closing may take only a few RTTs after the last
/// byte.
#[test]
fn random_loss_bench_runs_close_without_rto() {
    for (name, link, rtt) in [
        ("veth-like", veth_like(), Duration::from_micros(100)),
        ("LAN-like", lan_like(), Duration::from_millis(2)),
    ] {
        for loss in [0.01, 0.05, 0.10] {
            for seed in 0..8 {
                let (st, last_byte, closed, gap) = bench_shaped_run(&link, loss, 151 + seed, 4);
                let ctx = format!(
                    "{name}, {loss} loss, seed {seed}: last byte at {last_byte:?}, closed at {closed:?}, \
                     max gap {gap:?}; sender {:?}; receiver {:?}",
                    st[0], st[1]
                );
                assert_eq!(st[0].rto_count, 0, "{ctx}");
                assert_eq!(st[1].rto_count, 0, "{ctx}");
                assert!(gap < Duration::from_millis(50), "{ctx}");
                // A lost END, or ack of it, is repaired by a probe: a few probe timeouts (>= 4 ms each).
                assert!(
                    closed - last_byte < Duration::from_millis(60).max(rtt * 20),
                    "{ctx}"
                );
            }
        }
    }
}

/// The receiver's END, sent at the start before it has any RTT sample, is lost: it must not wait for the 1 s
/// initial RTO to resend it (the transfer itself is over in a fraction of that). It is resent once the sender
/// has sent twice the receive window (4 MiB) without acknowledging it.
#[test]
fn lost_early_end_of_a_receive_only_stream_is_resent_quickly() {
    let mut sim = Sim::new(161, lan_like(), lan_like());
    let mut dropped = false;
    sim.filter = Some(Box::new(move |from, d| {
        // The receiver's first datagram carrying END.
        if from == 1 && !dropped && d.len() >= 3 && d[2] & 0b0000_0010 != 0 {
            dropped = true;
            return true;
        }
        false
    }));
    sim.peers[1].finish = true;
    sim.peers[0].to_write = 16 * MIB;
    sim.peers[0].finish = true;
    let ok = sim.run_until(Duration::from_secs(60), |s| s.peers[1].received == 16 * MIB);
    assert!(ok);
    let last_byte = sim.now;
    let ok = sim.run_until(Duration::from_secs(60), |s| {
        s.peers[0].closed.is_some() && s.peers[1].closed.is_some()
    });
    let st = [sim.peers[0].stream.stats(), sim.peers[1].stream.stats()];
    let ctx = format!(
        "last byte at {last_byte:?}, closed at {:?}: {st:?}",
        sim.now
    );
    assert!(ok, "{ctx}");
    assert_eq!(sim.peers[1].closed, Some(None), "{ctx}");
    assert_eq!(st[1].rto_count, 0, "{ctx}");
    assert_eq!(st[1].packets_retransmitted, 1, "{ctx}");
    // 16 MiB at 100 MB/s: about 170 ms; closing takes an RTT or two more.
    assert!(last_byte < Duration::from_millis(400), "{ctx}");
    assert!(sim.now - last_byte < Duration::from_millis(10), "{ctx}");
}

/// A receiver that stops for 10 ms every 50 ms (descheduled on a loaded machine) while 1% of the datagrams are
/// lost: acks stop for longer than the probe timeout, so probes go out while the packets they resend are only
/// delayed. The ack of such a delayed original must not count as the ack of the probe (sent after everything
/// else in flight), or RACK marks the whole window lost: the benches saw a thousand spurious retransmissions at
/// once. Retransmissions stay close to the datagrams actually lost.
#[test]
fn delayed_acks_after_probes_cause_no_spurious_retransmissions() {
    for seed in 0..4 {
        let link = Link {
            loss: 0.01,
            receiver_pauses: Some((Duration::from_millis(50), Duration::from_millis(10))),
            ..lan_like()
        };
        let mut sim = Sim::new(171 + seed, link.clone(), link);
        transfer(&mut sim, 32 * MIB, 0, 600);
        let st = sim.peers[0].stream.stats();
        let lost = sim.drops[0];
        let ctx = format!(
            "seed {seed}: {lost} data datagrams lost, {:?}, max gap {:?}, {st:?}",
            sim.now, sim.max_gap
        );
        assert!(st.probes > 0, "{ctx}");
        assert!(
            st.packets_retransmitted <= lost + u64::from(st.probes) + lost / 2,
            "{ctx}"
        );
        assert_eq!(st.rto_count, 0, "{ctx}");
    }
}

/// A receiver that stalls (40 ms every 150 ms, from the very start: before the sender has any RTT sample)
/// under random loss: when the one ack for a burst that waited out the stall is lost, nothing else would come
/// back. Before an RTT sample libudx (and we) had no probe, only the 1 s initial RTO: ~0.9 s stalls at the start
/// at 10% loss. No RTO now, and no gap much beyond the stall itself plus a probe timeout.
#[test]
fn receiver_stalls_under_loss_need_no_rto() {
    for loss in [0.01, 0.05, 0.10] {
        for seed in 0..3 {
            let link = Link {
                loss,
                delay: Duration::from_micros(500),
                bandwidth: Some(400_000_000),
                max_queue: Duration::from_millis(5),
                receiver_pauses: Some((Duration::from_millis(150), Duration::from_millis(40))),
                ..Link::default()
            };
            let mut sim = Sim::new(181 + seed, link.clone(), link);
            transfer(&mut sim, 32 * MIB, 0, 600);
            let st = sim.peers[0].stream.stats();
            let ctx = format!(
                "{loss} loss, seed {seed}: {:?}, max gap {:?}, {st:?}",
                sim.now, sim.max_gap
            );
            assert_eq!(st.rto_count, 0, "{ctx}");
            assert!(sim.max_gap < Duration::from_millis(40 + 220), "{ctx}");
            // 32 MiB at 400 MB/s is 85 ms, plus the stalls at 0 and 150 ms.
            assert!(sim.now < Duration::from_millis(400), "{ctx}");
        }
    }
}

/// A veth-like path with a 0.1 ms round trip (50 µs each way, 400 MB/s, 2 ms of queue). libudx's millisecond
/// clock rounds every RTT here to 0 or 1 ms: delivery-rate samples over an interval that rounds to 0 are
/// discarded and BBR's 1.25x probing phase lasts a clock tick. With the microsecond clock BBR takes a rate
/// sample from nearly every ack, probes once per gain cycle of 8 min-RTTs, and its estimate matches the link.
#[test]
fn bbr_keeps_rate_samples_and_probes_on_a_tenth_of_a_millisecond_link() {
    let link = veth_like();
    let mut sim = Sim::new(191, link.clone(), link);
    transfer(&mut sim, 32 * MIB, 0, 60);
    let st = sim.peers[0].stream.stats();
    let acks = sim.peers[0].stream.stats().packets_received;
    let ctx = format!("{:?}: {acks} acks, {st:?}", sim.now);
    assert_eq!(st.bbr_state, 2, "probe-bw: {ctx}");
    assert_eq!(st.rto_count, 0, "{ctx}");
    // Nearly every ack yields a sample (those of the first round trip have none).
    assert!(st.bandwidth_samples * 10 >= acks * 9, "{ctx}");
    // 32 MiB at ~400 MB/s take ~85 ms: hundreds of 0.1 ms round trips, a probe every 8 of them.
    assert!(st.bandwidth_probes >= 20, "{ctx}");
    // The estimate is the link's payload rate (400 MB/s of datagrams, 1500 bytes with 48 of headers).
    let payload_rate = 400e6 * 1452.0 / 1500.0;
    let bw = st.bandwidth_bytes_per_sec as f64;
    assert!(
        bw > 0.85 * payload_rate && bw < 1.15 * payload_rate,
        "{bw:.0} B/s: {ctx}"
    );
    let goodput = (32 * MIB) as f64 / sim.now.as_secs_f64();
    assert!(goodput > 0.75 * payload_rate, "{goodput:.0} B/s: {ctx}");
}

/// A 200 ms blackout of both directions (both processes, or the link's softirq, descheduled on a loaded
/// machine: a socket buffer's worth of datagrams arrives when it ends, the rest is lost), with 1% random loss
/// each way, on the 0.1 ms veth-like path: no retransmission timeout, and once datagrams flow again BBR's
/// bandwidth estimate and the goodput are back within a few milliseconds. The acks that arrive at once after
/// the blackout open the whole window: it must go out paced, not as one burst into the link's queue (the
/// pacing tokens of a window-limited sender do not pile up while it waits).
#[test]
fn bbr_recovers_quickly_after_an_ack_blackout_with_loss() {
    const BLACKOUT_HELD: usize = 100;
    for seed in 0..3 {
        let link = Link {
            loss: 0.01,
            ..veth_like()
        };
        let blackout = (Duration::from_millis(50), Duration::from_millis(250));
        let link = Link {
            blackout: Some((blackout.0, blackout.1, BLACKOUT_HELD)),
            ..link
        };
        let mut sim = Sim::new(201 + seed, link.clone(), link);
        sim.peers[0].to_write = 1024 * MIB;
        // Steady state first.
        assert!(sim.run_until(Duration::from_secs(10), |s| s.now
            >= Duration::from_millis(30)));
        let (t0, r0) = (sim.now, sim.peers[1].received);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.now >= blackout.0));
        let before_rate = (sim.peers[1].received - r0) as f64 / (sim.now - t0).as_secs_f64();
        let bw_before = sim.peers[0].stream.stats().bandwidth_bytes_per_sec as f64;
        let mut bw_low = f64::MAX;
        let mut bw_back_at = None;
        assert!(sim.run_until(Duration::from_secs(10), |s| {
            let bw = s.peers[0].stream.stats().bandwidth_bytes_per_sec as f64;
            if s.now > blackout.1 {
                bw_low = bw_low.min(bw);
                if bw_back_at.is_none() && bw >= 0.8 * bw_before {
                    bw_back_at = Some(s.now);
                }
            }
            s.now >= blackout.1 + Duration::from_millis(10)
        }));
        let (t1, r1) = (sim.now, sim.peers[1].received);
        assert!(sim.run_until(Duration::from_secs(10), |s| {
            s.now >= blackout.1 + Duration::from_millis(40)
        }));
        let after_rate = (sim.peers[1].received - r1) as f64 / (sim.now - t1).as_secs_f64();
        let st = sim.peers[0].stream.stats();
        let ctx = format!(
            "seed {seed}: before {before_rate:.0} B/s (estimate {bw_before:.0}), 10-40 ms after the blackout \
             {after_rate:.0} B/s, estimate low {bw_low:.0} back at {bw_back_at:?}; {st:?}"
        );
        assert_eq!(st.rto_count, 0, "{ctx}");
        let back = bw_back_at.expect(&ctx) - blackout.1;
        assert!(back < Duration::from_millis(10), "{ctx}");
        assert!(after_rate > 0.7 * before_rate, "{ctx}");
    }
}

/// The path slows to a tenth of its rate for 200 ms (a competing flow, or the forwarding CPU busy elsewhere),
/// with 1% random loss each way, on the 0.1 ms veth-like path. BBR's windowed-max estimate follows it down after
/// 10 round trips; when the path is fast again, only the gain cycle's 1.25x probing phases find the bandwidth
/// again: ten of them to climb back 10x. With a millisecond clock each phase lasted at least a tick (a cycle at
/// least 8 ms); at the path's 0.1 ms time scale the estimate is back within a few milliseconds.
#[test]
fn bbr_climbs_back_quickly_after_the_path_slowed_down() {
    for seed in 0..3 {
        let link = Link {
            loss: 0.01,
            ..veth_like()
        };
        let mut sim = Sim::new(211 + seed, link.clone(), link);
        sim.peers[0].to_write = 1024 * MIB;
        assert!(sim.run_until(Duration::from_secs(10), |s| s.now
            >= Duration::from_millis(50)));
        let bw_before = sim.peers[0].stream.stats().bandwidth_bytes_per_sec as f64;
        sim.links[0].bandwidth = Some(40_000_000);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.now
            >= Duration::from_millis(250)));
        let bw_slow = sim.peers[0].stream.stats().bandwidth_bytes_per_sec as f64;
        sim.links[0].bandwidth = veth_like().bandwidth;
        let fast_again = sim.now;
        let mut back_at = None;
        assert!(sim.run_until(Duration::from_secs(10), |s| {
            let bw = s.peers[0].stream.stats().bandwidth_bytes_per_sec as f64;
            if back_at.is_none() && bw >= 0.8 * bw_before {
                back_at = Some(s.now);
            }
            back_at.is_some() || s.now >= fast_again + Duration::from_millis(100)
        }));
        let st = sim.peers[0].stream.stats();
        let ctx = format!(
            "seed {seed}: estimate {bw_before:.0} B/s before, {bw_slow:.0} when slow, back to 80% at {back_at:?} \
             (fast again at {fast_again:?}); {st:?}"
        );
        assert!(bw_slow < 0.2 * bw_before, "{ctx}");
        assert_eq!(st.rto_count, 0, "{ctx}");
        let back = back_at.expect(&ctx) - fast_again;
        assert!(back < Duration::from_millis(15), "{ctx}");
    }
}
