//! The holepuncher (`hyperdht/lib/holepuncher.js`), sans-IO: what to punch, from which socket, when.
//!
//! A [`Holepuncher`] belongs to one connection attempt. It owns the [`Nat`] analysis of its socket, tracks
//! what the remote peer told it in holepunch messages ([`Holepuncher::update_remote`]), and once both sides
//! agreed to punch ([`Holepuncher::punch`]) it emits one-byte "punch" datagrams ([`PunchPacket`]) on a
//! schedule driven by [`Holepuncher::handle_timeout`]:
//!
//! * both consistent (OPEN counts as consistent): every second, ten times, to the remote's verified addresses
//!   (and to unverified ones every fourth round); the responder waits a second first, as the initiator's
//!   "fast open" session already went out;
//! * we consistent, remote random: every 20 ms a packet to the remote host on a random port, up to 1750;
//! * we random, remote consistent (the birthday strategy): open up to 256 sockets, each sending a low-TTL
//!   packet to the remote (opening NAT mappings without reaching its NAT), then cycle through them every
//!   20 ms, up to 1750 packets.
//!
//! The initiator is connected by the first punch packet it receives ([`Holepuncher::on_packet`]): that socket
//! and source are where the UDX stream goes ([`PuncherEvent::Connected`]). The responder answers each punch
//! packet with one of its own; its connection comes from the UDX stream itself (the first stream packet).
//! When a schedule ends without a connection the puncher destroys itself ([`PuncherEvent::Aborted`]).
//!
//! Sockets are numbered: 0 is the puncher's main socket, birthday sockets follow. The driver binds a socket
//! the first time a packet names it.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::constants::Firewall;
use super::nat::Nat;

/// Sockets the birthday strategy opens (`BIRTHDAY_SOCKETS`).
pub const BIRTHDAY_SOCKETS: usize = 256;
/// TTL of "session opening" punches, enough to leave our NAT but not to reach theirs (`HOLEPUNCH_TTL`).
pub const HOLEPUNCH_TTL: u32 = 5;
/// TTL of normal punches (`DEFAULT_TTL`).
pub const DEFAULT_TTL: u32 = 64;
/// The punch datagram: one zero byte (`HOLEPUNCH`).
pub const HOLEPUNCH: [u8; 1] = [0];
/// Rounds of the consistent strategy.
const CONSISTENT_TRIES: u32 = 10;
/// Pause between consistent rounds.
const CONSISTENT_INTERVAL: Duration = Duration::from_secs(1);
/// Packets of the random strategies (about 35 s).
const RANDOM_TRIES: u32 = 1750;
/// Pause between random-strategy packets.
const RANDOM_INTERVAL: Duration = Duration::from_millis(20);
/// Pause after opening the birthday sockets.
const BIRTHDAY_SETTLE: Duration = Duration::from_millis(100);

/// One punch datagram to send: [`HOLEPUNCH`] from socket `socket` to `to`, with TTL [`HOLEPUNCH_TTL`] when
/// `low_ttl`, else [`DEFAULT_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchPacket {
    /// The puncher's socket number (0: main; more: birthday sockets).
    pub socket: usize,
    /// Destination.
    pub to: SocketAddrV4,
    /// Send with a low TTL.
    pub low_ttl: bool,
}

impl PunchPacket {
    /// The TTL to send with.
    pub fn ttl(&self) -> u32 {
        if self.low_ttl {
            HOLEPUNCH_TTL
        } else {
            DEFAULT_TTL
        }
    }
}

/// What the puncher reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuncherEvent {
    /// (Initiator) a punch came through: connect the stream to `addr` through socket `socket`. The other
    /// sockets may be released.
    Connected {
        /// The socket the punch came in on.
        socket: usize,
        /// Its source.
        addr: SocketAddrV4,
    },
    /// The puncher was destroyed without a connection (`onabort`).
    Aborted,
}

/// An address the remote gave us, verified when it echoed our token sent there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddress {
    /// The address.
    pub addr: SocketAddrV4,
    /// Whether the remote proved it receives at this host.
    pub verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Idle,
    Consistent {
        tries: u32,
    },
    RandomProbes {
        remote: SocketAddrV4,
        left: u32,
    },
    Birthday {
        remote: SocketAddrV4,
        next: usize,
        low_ttl_rounds: u32,
        left: u32,
    },
}

/// OPEN punches as CONSISTENT (`coerceFirewall`).
pub fn coerce_firewall(fw: Firewall) -> Firewall {
    if fw == Firewall::OPEN {
        Firewall::CONSISTENT
    } else {
        fw
    }
}

/// Why a client gives up after the probe round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAbort {
    /// A side's NAT kind is still unknown (`HOLEPUNCH_PROBE_TIMEOUT`).
    ProbeTimeout,
    /// Both NATs are random (`HOLEPUNCH_DOUBLE_RANDOMIZED_NATS`).
    DoubleRandomized,
}

/// What the client does after a probe round (`probeRound`'s tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// Probe once more (the remote's kind is unknown or it sent no token, and a retry is left).
    Retry,
    /// Abort with this error.
    Abort(ProbeAbort),
    /// Go on to the punch round.
    Punch,
}

/// The decision at the end of a client probe round.
pub fn probe_verdict(
    remote: Firewall,
    local: Firewall,
    have_token: bool,
    retry: bool,
) -> ProbeVerdict {
    if (remote == Firewall::UNKNOWN || !have_token) && retry {
        return ProbeVerdict::Retry;
    }
    if remote == Firewall::UNKNOWN || local == Firewall::UNKNOWN {
        return ProbeVerdict::Abort(ProbeAbort::ProbeTimeout);
    }
    if remote >= Firewall::RANDOM && local >= Firewall::RANDOM {
        return ProbeVerdict::Abort(ProbeAbort::DoubleRandomized);
    }
    ProbeVerdict::Punch
}

/// One connection attempt's puncher (JS `Holepuncher`).
#[derive(Debug)]
pub struct Holepuncher {
    is_initiator: bool,
    /// The NAT analysis of the main socket.
    pub nat: Nat,
    remote_firewall: Firewall,
    remote_addresses: Vec<RemoteAddress>,
    remote_holepunching: bool,
    punching: bool,
    connected: bool,
    destroyed: bool,
    randomized: bool,
    sockets: usize,
    strategy: Strategy,
    next_at: Option<Instant>,
    out: VecDeque<PunchPacket>,
    events: VecDeque<PuncherEvent>,
    rng: u64,
}

impl Holepuncher {
    /// A puncher for the initiator (client) or responder (server); `remote_firewall` is what the handshake
    /// said, `dht_firewalled` the DHT's own verdict (seeds the [`Nat`]).
    pub fn new(is_initiator: bool, remote_firewall: Firewall, dht_firewalled: bool) -> Self {
        Self::with_seed(
            is_initiator,
            remote_firewall,
            dht_firewalled,
            rand::random::<u64>(),
        )
    }

    /// [`Holepuncher::new`] with a fixed seed for the random ports (tests).
    pub fn with_seed(
        is_initiator: bool,
        remote_firewall: Firewall,
        dht_firewalled: bool,
        seed: u64,
    ) -> Self {
        Self {
            is_initiator,
            nat: Nat::new(dht_firewalled),
            remote_firewall,
            remote_addresses: Vec::new(),
            remote_holepunching: false,
            punching: false,
            connected: false,
            destroyed: false,
            randomized: false,
            sockets: 1,
            strategy: Strategy::Idle,
            next_at: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            rng: seed | 1,
        }
    }

    /// Whether this is the initiator.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }
    /// The remote's firewall kind, as last told.
    pub fn remote_firewall(&self) -> Firewall {
        self.remote_firewall
    }
    /// The remote's addresses, as last told.
    pub fn remote_addresses(&self) -> &[RemoteAddress] {
        &self.remote_addresses
    }
    /// Whether the remote said it punches.
    pub fn remote_holepunching(&self) -> bool {
        self.remote_holepunching
    }
    /// Whether we punch.
    pub fn is_punching(&self) -> bool {
        self.punching
    }
    /// Whether a punch came through (initiator).
    pub fn is_connected(&self) -> bool {
        self.connected
    }
    /// Whether the puncher was destroyed.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }
    /// Whether a random strategy runs (the DHT limits how many run at once).
    pub fn is_randomized(&self) -> bool {
        self.randomized
    }
    /// How many sockets the puncher uses.
    pub fn socket_count(&self) -> usize {
        self.sockets
    }

    /// Takes what the remote said in a holepunch message (`updateRemote`). `verified` is the host our
    /// token was echoed from, if it was.
    pub fn update_remote(
        &mut self,
        punching: bool,
        firewall: Firewall,
        addresses: &[SocketAddrV4],
        verified: Option<std::net::Ipv4Addr>,
    ) {
        let previous = std::mem::take(&mut self.remote_addresses);
        self.remote_addresses = addresses
            .iter()
            .map(|a| RemoteAddress {
                addr: *a,
                verified: verified == Some(*a.ip())
                    || previous.iter().any(|p| p.verified && p.addr.ip() == a.ip()),
            })
            .collect();
        self.remote_firewall = firewall;
        self.remote_holepunching = punching;
    }

    /// Whether the NAT situation looks unpunchable as it is (`_unstable`).
    pub fn is_unstable(&self) -> bool {
        let local = self.nat.firewall();
        (self.remote_firewall >= Firewall::RANDOM && local >= Firewall::RANDOM)
            || local == Firewall::UNKNOWN
    }

    /// `analyze(false)` once the NAT analysis settled: `Some(stable)`, or `None` while it still samples.
    /// (Reopening the socket to get a better NAT, `analyze(true)`, is not done: the answer stays.)
    pub fn analyze(&self) -> Option<bool> {
        self.nat.is_settled().then(|| !self.is_unstable())
    }

    /// A low-TTL packet that opens a NAT session towards `to` (`openSession`).
    pub fn open_session(&mut self, to: SocketAddrV4) {
        self.out.push_back(PunchPacket {
            socket: 0,
            to,
            low_ttl: true,
        });
    }

    /// A normal punch packet to `to` (`ping`).
    pub fn ping(&mut self, to: SocketAddrV4) {
        self.out.push_back(PunchPacket {
            socket: 0,
            to,
            low_ttl: false,
        });
    }

    /// Starts punching (`punch()`); false when there is nothing to punch (no remote addresses, or no
    /// strategy for the pair of NATs without a verified remote address).
    pub fn punch(&mut self, now: Instant) -> bool {
        if self.punching {
            return true;
        }
        if self.destroyed || self.connected || self.remote_addresses.is_empty() {
            return false;
        }
        self.punching = true;
        let local = coerce_firewall(self.nat.firewall());
        let remote = coerce_firewall(self.remote_firewall);
        if local == Firewall::CONSISTENT && remote == Firewall::CONSISTENT {
            self.strategy = Strategy::Consistent { tries: 0 };
            if self.is_initiator {
                self.handle_timeout(now);
            } else {
                // The responder's "fast open" ping already went out: wait a second first.
                self.next_at = Some(now + CONSISTENT_INTERVAL);
            }
            return true;
        }
        let Some(verified) = self
            .remote_addresses
            .iter()
            .find(|a| a.verified)
            .map(|a| a.addr)
        else {
            self.punching = false;
            return false;
        };
        if local == Firewall::CONSISTENT && remote >= Firewall::RANDOM {
            self.randomized = true;
            self.strategy = Strategy::RandomProbes {
                remote: verified,
                left: RANDOM_TRIES,
            };
            self.handle_timeout(now);
            return true;
        }
        if local >= Firewall::RANDOM && remote == Firewall::CONSISTENT {
            self.randomized = true;
            // Open the birthday sockets at once, each with a low-TTL packet.
            while self.sockets < BIRTHDAY_SOCKETS {
                self.out.push_back(PunchPacket {
                    socket: self.sockets,
                    to: verified,
                    low_ttl: true,
                });
                self.sockets += 1;
            }
            self.strategy = Strategy::Birthday {
                remote: verified,
                next: 0,
                low_ttl_rounds: 1,
                left: RANDOM_TRIES,
            };
            self.next_at = Some(now + BIRTHDAY_SETTLE);
            return true;
        }
        self.punching = false;
        false
    }

    /// A punch datagram came in on socket `socket` from `from` (`_onholepunchmessage`).
    pub fn on_packet(&mut self, socket: usize, from: SocketAddrV4) {
        if self.destroyed || socket >= self.sockets {
            return;
        }
        if !self.is_initiator {
            self.out.push_back(PunchPacket {
                socket,
                to: from,
                low_ttl: false,
            });
            return;
        }
        if self.connected {
            return;
        }
        self.connected = true;
        self.punching = false;
        self.strategy = Strategy::Idle;
        self.next_at = None;
        self.randomized = false;
        self.events
            .push_back(PuncherEvent::Connected { socket, addr: from });
    }

    /// When [`Holepuncher::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Runs the schedule up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_at.is_some_and(|t| t > now) {
            return;
        }
        self.next_at = None;
        if !self.punching {
            return;
        }
        match self.strategy {
            Strategy::Idle => {}
            Strategy::Consistent { tries } => {
                if tries >= CONSISTENT_TRIES {
                    self.auto_destroy();
                    return;
                }
                let tries = tries + 1;
                for a in &self.remote_addresses {
                    // Unverified addresses only every fourth round.
                    if !a.verified && tries & 3 != 0 {
                        continue;
                    }
                    self.out.push_back(PunchPacket {
                        socket: 0,
                        to: a.addr,
                        low_ttl: false,
                    });
                }
                self.strategy = Strategy::Consistent { tries };
                self.next_at = Some(now + CONSISTENT_INTERVAL);
            }
            Strategy::RandomProbes { remote, left } => {
                if left == 0 {
                    self.auto_destroy();
                    return;
                }
                let port = self.random_port();
                self.out.push_back(PunchPacket {
                    socket: 0,
                    to: SocketAddrV4::new(*remote.ip(), port),
                    low_ttl: false,
                });
                self.strategy = Strategy::RandomProbes {
                    remote,
                    left: left - 1,
                };
                self.next_at = Some(now + RANDOM_INTERVAL);
            }
            Strategy::Birthday {
                remote,
                mut next,
                mut low_ttl_rounds,
                left,
            } => {
                if left == 0 {
                    self.auto_destroy();
                    return;
                }
                if next >= self.sockets {
                    next = 0;
                    low_ttl_rounds = low_ttl_rounds.saturating_sub(1);
                }
                self.out.push_back(PunchPacket {
                    socket: next,
                    to: remote,
                    low_ttl: low_ttl_rounds > 0,
                });
                self.strategy = Strategy::Birthday {
                    remote,
                    next: next + 1,
                    low_ttl_rounds,
                    left: left - 1,
                };
                self.next_at = Some(now + RANDOM_INTERVAL);
            }
        }
    }

    /// The next punch datagram to send.
    pub fn poll_transmit(&mut self) -> Option<PunchPacket> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PuncherEvent> {
        self.events.pop_front()
    }

    /// Stops punching; reports [`PuncherEvent::Aborted`] unless connected.
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        self.punching = false;
        self.strategy = Strategy::Idle;
        self.next_at = None;
        self.randomized = false;
        self.nat.destroy();
        if !self.connected {
            self.events.push_back(PuncherEvent::Aborted);
        }
    }

    fn auto_destroy(&mut self) {
        if !self.connected {
            self.destroy();
        }
    }

    /// A port in 1000..65536 (`randomPort`), from a xorshift generator.
    fn random_port(&mut self) -> u16 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let span = 64_536u64;
        u16::try_from(1000 + x % span).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().expect("addr")
    }

    fn consistent(p: &mut Holepuncher, public: SocketAddrV4) {
        for i in 1..=3 {
            p.nat.add(
                public,
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, i), 49737),
            );
        }
        assert_eq!(p.nat.firewall(), Firewall::CONSISTENT);
    }

    /// A consistent NAT (endpoint-independent mapping, address-dependent filtering) in front of one socket:
    /// the mapping is fixed; inbound packets pass once the inside socket sent to that remote host (with any
    /// TTL that leaves the NAT).
    struct ConsistentNat {
        public: SocketAddrV4,
        opened: Vec<Ipv4Addr>,
    }

    impl ConsistentNat {
        fn outbound(&mut self, to: SocketAddrV4) {
            if !self.opened.contains(to.ip()) {
                self.opened.push(*to.ip());
            }
        }
        fn inbound(&self, from: SocketAddrV4) -> bool {
            self.opened.contains(from.ip())
        }
    }

    /// Runs two punchers behind consistent NATs on a virtual clock until the initiator connects or the
    /// time runs out. Packets are delivered 10 ms after they are sent. Returns the connection time.
    fn run_pair(
        client: &mut Holepuncher,
        server: &mut Holepuncher,
        nats: &mut [ConsistentNat; 2],
        start: Instant,
        limit: Duration,
        server_drops_all: bool,
    ) -> Option<(Duration, PuncherEvent)> {
        let mut now = start;
        // (deliver_at, to_side, from_public)
        let mut wire: Vec<(Instant, usize, SocketAddrV4)> = Vec::new();
        let latency = Duration::from_millis(10);
        while now < start + limit {
            for (side, p) in [(0usize, &mut *client), (1, &mut *server)] {
                p.handle_timeout(now);
                while let Some(t) = p.poll_transmit() {
                    let nat = &mut nats[side];
                    nat.outbound(t.to);
                    // The packet reaches the other side if it is addressed to its public address.
                    let other = 1 - side;
                    if t.to == nats[other].public {
                        wire.push((now + latency, other, nats[side].public));
                    }
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = wire.drain(..).partition(|w| w.0 <= now);
            wire = later;
            for (_, to, from) in due {
                if !nats[to].inbound(from) || (to == 1 && server_drops_all) {
                    continue;
                }
                if to == 0 {
                    client.on_packet(0, from);
                } else {
                    server.on_packet(0, from);
                }
            }
            if let Some(ev) = client.poll_event() {
                return Some((now - start, ev));
            }
            now += Duration::from_millis(5);
        }
        None
    }

    #[test]
    fn consistent_pair_punches_through() {
        let start = Instant::now();
        let (cp, sp) = (a("198.18.1.1:4000"), a("198.18.2.1:5000"));
        let mut client = Holepuncher::with_seed(true, Firewall::UNKNOWN, true, 1);
        let mut server = Holepuncher::with_seed(false, Firewall::UNKNOWN, true, 2);
        consistent(&mut client, cp);
        consistent(&mut server, sp);
        // Probe round: the client opens a session to the server (low TTL) ...
        client.open_session(sp);
        // ... and both learn the other's addresses, verified by the token echo.
        server.update_remote(false, client.nat.firewall(), &[cp], Some(*cp.ip()));
        client.update_remote(true, server.nat.firewall(), &[sp], Some(*sp.ip()));
        assert_eq!(client.analyze(), Some(true));
        assert!(server.punch(start));
        assert!(client.punch(start));
        let mut nats = [
            ConsistentNat {
                public: cp,
                opened: vec![],
            },
            ConsistentNat {
                public: sp,
                opened: vec![],
            },
        ];
        let (after, ev) = run_pair(
            &mut client,
            &mut server,
            &mut nats,
            start,
            Duration::from_secs(20),
            false,
        )
        .expect("an event");
        assert_eq!(
            ev,
            PuncherEvent::Connected {
                socket: 0,
                addr: sp
            }
        );
        // The client's first punch opens its NAT, the server's (after its one second wait) gets through,
        // or the client's second one does once the server's NAT is open.
        assert!(after <= Duration::from_millis(1100), "took {after:?}");
        assert!(client.is_connected());
        assert!(!client.is_punching());
        // The connected initiator ignores later packets and has nothing more to send.
        client.on_packet(0, sp);
        assert_eq!(client.poll_event(), None);
        client.handle_timeout(start + Duration::from_secs(60));
        assert_eq!(client.poll_transmit(), None);
    }

    #[test]
    fn consistent_punch_gives_up_after_ten_rounds() {
        let start = Instant::now();
        let (cp, sp) = (a("198.18.1.1:4000"), a("198.18.2.1:5000"));
        let mut client = Holepuncher::with_seed(true, Firewall::CONSISTENT, true, 1);
        let mut server = Holepuncher::with_seed(false, Firewall::CONSISTENT, true, 2);
        consistent(&mut client, cp);
        consistent(&mut server, sp);
        client.update_remote(true, Firewall::CONSISTENT, &[sp], Some(*sp.ip()));
        assert!(client.punch(start));
        let mut nats = [
            ConsistentNat {
                public: cp,
                opened: vec![],
            },
            ConsistentNat {
                public: sp,
                opened: vec![],
            },
        ];
        // The server never punches back: the client aborts after ten rounds, one second apart.
        let (after, ev) = run_pair(
            &mut client,
            &mut server,
            &mut nats,
            start,
            Duration::from_secs(30),
            true,
        )
        .expect("an event");
        assert_eq!(ev, PuncherEvent::Aborted);
        assert_eq!(after, Duration::from_secs(10));
        assert!(client.is_destroyed());
    }

    #[test]
    fn unverified_addresses_every_fourth_round() {
        let start = Instant::now();
        let mut p = Holepuncher::with_seed(true, Firewall::CONSISTENT, true, 1);
        consistent(&mut p, a("198.18.1.1:4000"));
        p.update_remote(
            true,
            Firewall::CONSISTENT,
            &[a("198.18.2.1:5000"), a("198.18.3.1:6000")],
            Some(Ipv4Addr::new(198, 18, 2, 1)),
        );
        assert!(p.punch(start));
        let mut per_round = Vec::new();
        for i in 0..10u64 {
            p.handle_timeout(start + Duration::from_secs(i));
            let mut n = 0;
            while p.poll_transmit().is_some() {
                n += 1;
            }
            per_round.push(n);
        }
        assert_eq!(per_round, vec![1, 1, 1, 2, 1, 1, 1, 2, 1, 1]);
    }

    #[test]
    fn destroy_aborts_once() {
        let mut p = Holepuncher::with_seed(true, Firewall::CONSISTENT, true, 1);
        p.destroy();
        p.destroy();
        assert_eq!(p.poll_event(), Some(PuncherEvent::Aborted));
        assert_eq!(p.poll_event(), None);
        assert!(!p.punch(Instant::now()));
        assert!(p.nat.is_settled());
    }

    #[test]
    fn responder_answers_punches() {
        let mut p = Holepuncher::with_seed(false, Firewall::CONSISTENT, true, 1);
        p.on_packet(0, a("198.18.1.1:4000"));
        assert_eq!(
            p.poll_transmit(),
            Some(PunchPacket {
                socket: 0,
                to: a("198.18.1.1:4000"),
                low_ttl: false
            })
        );
        assert_eq!(p.poll_event(), None);
    }

    #[test]
    fn random_remote_gets_random_ports() {
        let start = Instant::now();
        let mut p = Holepuncher::with_seed(true, Firewall::RANDOM, true, 7);
        consistent(&mut p, a("198.18.1.1:4000"));
        // Without a verified address there is no random strategy.
        p.update_remote(true, Firewall::RANDOM, &[a("198.18.2.1:0")], None);
        assert!(!p.punch(start));
        p.update_remote(
            true,
            Firewall::RANDOM,
            &[a("198.18.2.1:0")],
            Some(Ipv4Addr::new(198, 18, 2, 1)),
        );
        assert!(p.punch(start));
        assert!(p.is_randomized());
        let mut ports = Vec::new();
        for i in 0..100u64 {
            p.handle_timeout(start + Duration::from_millis(20 * i));
            while let Some(t) = p.poll_transmit() {
                assert_eq!(*t.to.ip(), Ipv4Addr::new(198, 18, 2, 1));
                assert!(t.to.port() >= 1000);
                ports.push(t.to.port());
            }
        }
        assert_eq!(ports.len(), 100);
        ports.sort_unstable();
        ports.dedup();
        assert!(ports.len() > 90);
    }

    #[test]
    fn birthday_opens_sockets_with_low_ttl() {
        let start = Instant::now();
        let mut p = Holepuncher::with_seed(true, Firewall::CONSISTENT, true, 7);
        for i in 1..=4u16 {
            p.nat.add(
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 4000 + i),
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 1000 + i),
            );
        }
        assert_eq!(p.nat.firewall(), Firewall::RANDOM);
        let remote = a("198.18.2.1:5000");
        p.update_remote(true, Firewall::CONSISTENT, &[remote], Some(*remote.ip()));
        assert!(p.punch(start));
        let opened: Vec<_> = std::iter::from_fn(|| p.poll_transmit()).collect();
        assert_eq!(opened.len(), BIRTHDAY_SOCKETS - 1);
        assert!(opened.iter().all(|t| t.low_ttl && t.to == remote));
        assert_eq!(p.socket_count(), BIRTHDAY_SOCKETS);
        // Keep-alive: the first cycle over all sockets with low TTL, then normal.
        let mut t = start + BIRTHDAY_SETTLE;
        let mut sent = Vec::new();
        for _ in 0..(BIRTHDAY_SOCKETS + 2) {
            p.handle_timeout(t);
            sent.extend(std::iter::from_fn(|| p.poll_transmit()));
            t += RANDOM_INTERVAL;
        }
        assert_eq!(sent.len(), BIRTHDAY_SOCKETS + 2);
        assert!(sent[..BIRTHDAY_SOCKETS].iter().all(|t| t.low_ttl));
        assert!(!sent[BIRTHDAY_SOCKETS].low_ttl);
        assert_eq!(sent[BIRTHDAY_SOCKETS].socket, 0);
        // A punch on a birthday socket connects there.
        p.on_packet(77, remote);
        assert_eq!(
            p.poll_event(),
            Some(PuncherEvent::Connected {
                socket: 77,
                addr: remote
            })
        );
    }

    #[test]
    fn probe_times_out_when_sampling_ends_without_a_verdict() {
        let mut p = Holepuncher::with_seed(true, Firewall::UNKNOWN, true, 1);
        // Two nodes answered, the others did not.
        p.nat.add(
            a("198.18.1.1:4000"),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 1),
        );
        p.nat.add(
            a("198.18.1.1:4000"),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 1),
        );
        assert_eq!(p.analyze(), None, "still sampling");
        p.nat.finish_sampling();
        assert_eq!(p.analyze(), Some(false), "our NAT is unknown: unstable");
        p.update_remote(false, Firewall::CONSISTENT, &[a("198.18.2.1:5000")], None);
        assert_eq!(
            probe_verdict(p.remote_firewall(), p.nat.firewall(), true, false),
            ProbeVerdict::Abort(ProbeAbort::ProbeTimeout)
        );
        // And a remote that never says what it is times out as well, after one retry.
        let mut q = Holepuncher::with_seed(true, Firewall::UNKNOWN, true, 1);
        consistent(&mut q, a("198.18.1.1:4000"));
        q.update_remote(false, Firewall::UNKNOWN, &[], None);
        assert_eq!(
            probe_verdict(q.remote_firewall(), q.nat.firewall(), true, true),
            ProbeVerdict::Retry
        );
        assert_eq!(
            probe_verdict(q.remote_firewall(), q.nat.firewall(), true, false),
            ProbeVerdict::Abort(ProbeAbort::ProbeTimeout)
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Sample(u8, u16, u8),
        Remote(bool, u64, Vec<(u8, u16)>, Option<u8>),
        Punch,
        Packet(usize, u8, u16),
        Advance(u16),
        Destroy,
        OpenSession(u8, u16),
        Freeze,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<u8>(), any::<u16>(), any::<u8>()).prop_map(|(h, p, f)| Op::Sample(
                h % 3,
                p % 4,
                f
            )),
            (
                any::<bool>(),
                0u64..6,
                proptest::collection::vec((any::<u8>(), any::<u16>()), 0..4),
                proptest::option::of(any::<u8>())
            )
                .prop_map(|(p, f, a, v)| Op::Remote(p, f, a, v)),
            Just(Op::Punch),
            (0usize..300, any::<u8>(), any::<u16>()).prop_map(|(s, h, p)| Op::Packet(s, h, p)),
            any::<u16>().prop_map(Op::Advance),
            Just(Op::Destroy),
            (any::<u8>(), any::<u16>()).prop_map(|(h, p)| Op::OpenSession(h, p)),
            Just(Op::Freeze),
        ]
    }

    fn ip(h: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 1, h)
    }

    proptest::proptest! {
        /// Whatever the remote says and the network delivers, the puncher neither panics nor punches after
        /// it connected or was destroyed, and reports at most one final event.
        #[test]
        fn puncher_survives_any_sequence(
            initiator in proptest::bool::ANY,
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let start = Instant::now();
            let mut now = start;
            let mut p = Holepuncher::with_seed(initiator, Firewall::UNKNOWN, true, 3);
            let mut finals = 0;
            for op in ops {
                match op {
                    Op::Sample(h, port, from) => p.nat.add(
                        SocketAddrV4::new(ip(h), 4000 + port),
                        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, from), 1),
                    ),
                    Op::Remote(punching, fw, addrs, verified) => {
                        let addrs: Vec<_> =
                            addrs.iter().map(|(h, port)| SocketAddrV4::new(ip(*h % 4), *port)).collect();
                        p.update_remote(punching, Firewall(fw), &addrs, verified.map(|h| ip(h % 4)));
                    }
                    Op::Punch => {
                        let _ = p.punch(now);
                    }
                    Op::Packet(s, h, port) => p.on_packet(s, SocketAddrV4::new(ip(h), port)),
                    Op::Advance(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        p.handle_timeout(now);
                    }
                    Op::Destroy => p.destroy(),
                    Op::OpenSession(h, port) => p.open_session(SocketAddrV4::new(ip(h), port)),
                    Op::Freeze => p.nat.freeze(),
                }
                let done = p.is_connected() || p.is_destroyed();
                while let Some(t) = p.poll_transmit() {
                    proptest::prop_assert!(t.socket < BIRTHDAY_SOCKETS);
                }
                while let Some(ev) = p.poll_event() {
                    finals += 1;
                    proptest::prop_assert!(matches!(ev, PuncherEvent::Aborted) || initiator);
                }
                if done {
                    proptest::prop_assert!(!p.is_punching());
                    p.handle_timeout(now + Duration::from_secs(3600));
                    proptest::prop_assert_eq!(p.poll_timeout(), None);
                }
                proptest::prop_assert!(finals <= 1);
            }
        }
    }

    #[test]
    fn probe_verdicts() {
        const UNKNOWN: Firewall = Firewall::UNKNOWN;
        const OPEN: Firewall = Firewall::OPEN;
        const CONSISTENT: Firewall = Firewall::CONSISTENT;
        const RANDOM: Firewall = Firewall::RANDOM;
        assert_eq!(
            probe_verdict(UNKNOWN, CONSISTENT, true, true),
            ProbeVerdict::Retry
        );
        assert_eq!(
            probe_verdict(CONSISTENT, CONSISTENT, false, true),
            ProbeVerdict::Retry
        );
        assert_eq!(
            probe_verdict(UNKNOWN, CONSISTENT, true, false),
            ProbeVerdict::Abort(ProbeAbort::ProbeTimeout)
        );
        assert_eq!(
            probe_verdict(CONSISTENT, UNKNOWN, true, false),
            ProbeVerdict::Abort(ProbeAbort::ProbeTimeout)
        );
        assert_eq!(
            probe_verdict(RANDOM, RANDOM, true, false),
            ProbeVerdict::Abort(ProbeAbort::DoubleRandomized)
        );
        assert_eq!(
            probe_verdict(RANDOM, CONSISTENT, true, false),
            ProbeVerdict::Punch
        );
        assert_eq!(
            probe_verdict(CONSISTENT, OPEN, false, false),
            ProbeVerdict::Punch
        );
    }
}
