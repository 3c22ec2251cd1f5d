//! The direct IPv6 path between two Rust peers (not in the JS stack, which sends no `addresses6`).
//!
//! The DHT stays IPv4, as in the JS. Connections add an IPv6 path: a node whose host has direct IPv6
//! addresses ([`is_direct_ipv6`]) binds one more UDX socket of its instance, on `[::]:0` (lazily, at its
//! first handshake with such addresses), and lists those addresses with that socket's port in `addresses6`
//! of its Noise payload. A client always lists them; a server only answers with them when the client listed
//! some, so a JS client gets the same answer as before, byte for byte.
//!
//! When both payloads list IPv6 addresses, the two sides check the path with probes on their IPv6 sockets
//! (datagrams that are not UDX packets, so they reach the socket's raw queue, read by a task of this
//! module): the server sends a few probes to the client's addresses when it answers the handshake (which
//! opens a stateful IPv6 firewall in front of it for the client's probes, as a holepunch does), the client
//! sends probes to the server's addresses until one is echoed. The first echo names the server address
//! the client connects its stream to, through its IPv6 socket; the server's stream follows the client's
//! first IPv6 packet there. A server that would connect to a reachable client at once waits for the
//! client's first packet instead (up to [`SERVER_WAIT`], then it connects over IPv4 as before), so the
//! connection it hands out is on its final path. A server whose IPv4 puncher gives up (two random-port
//! NATs) still waits [`AFTER_ABORT`] for the client over IPv6. The client prefers IPv6: when the IPv4 path is ready first it still waits up to
//! [`V6_GRACE`] for an echo (RFC 8305's "Happy Eyeballs" delay, the other way round).
//!
//! A probe is `hp6?` + a 16-byte nonce, its echo `hp6!` + the same nonce (the same size: an echo is no
//! amplification). Which addresses count as direct: see [`is_direct_ipv6`]; of a peer's list, only direct
//! addresses are probed, at most [`MAX_PROBED`] ([`probe_targets`]), so a handshake cannot aim our probes
//! at our own loopback or at many hosts.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::udx::{FirewallVerdict, Udx, UdxSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A probe: this tag, then a 16-byte nonce.
const PROBE: &[u8; 4] = b"hp6?";
/// A probe's echo: this tag, then the probe's nonce.
const ECHO: &[u8; 4] = b"hp6!";
/// Bytes of a probe or an echo.
pub const PROBE_LEN: usize = 4 + 16;
/// When the client sends its probes, from the moment it starts (then it gives up).
const PROBE_TIMES_MS: [u64; 7] = [0, 50, 150, 300, 500, 800, 1200];
/// How long the client waits for an echo after its last probe.
const PROBE_LAST_WAIT: Duration = Duration::from_millis(800);
/// When the server sends its probes (which open its firewall for the client's), from its answer.
const OPEN_TIMES_MS: [u64; 3] = [0, 100, 400];
/// How long the client still waits for the IPv6 path once the IPv4 path is ready.
pub const V6_GRACE: Duration = Duration::from_millis(500);
/// How long a reachable server whose client offered IPv6 waits for the client's first packet (which
/// tells the path it chose) before it connects the stream to the client over IPv4: longer than
/// [`V6_GRACE`], after which a client that waits to be reached stops waiting for IPv6.
pub const SERVER_WAIT: Duration = Duration::from_millis(1000);
/// How long a server whose client offered IPv6 still waits for the client's first packet after its
/// puncher gave up on IPv4 (longer than the client's probing).
pub const AFTER_ABORT: Duration = Duration::from_secs(3);

/// A datagram on the IPv6 socket, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMessage {
    /// A probe to echo.
    Probe([u8; 16]),
    /// The echo of one of our probes.
    Echo([u8; 16]),
}

impl ProbeMessage {
    /// Decodes a datagram (`None`: not a probe or an echo).
    pub fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() != PROBE_LEN {
            return None;
        }
        let (tag, rest) = buf.split_at(4);
        let nonce: [u8; 16] = rest.try_into().ok()?;
        if tag == PROBE {
            Some(Self::Probe(nonce))
        } else if tag == ECHO {
            Some(Self::Echo(nonce))
        } else {
            None
        }
    }

    /// The datagram.
    pub fn encode(&self) -> [u8; PROBE_LEN] {
        let (tag, nonce) = match self {
            Self::Probe(n) => (PROBE, n),
            Self::Echo(n) => (ECHO, n),
        };
        let mut out = [0u8; PROBE_LEN];
        out[..4].copy_from_slice(tag);
        out[4..].copy_from_slice(nonce);
        out
    }
}

/// Whether a host's IPv6 address can carry a direct path to a peer elsewhere: global scope as the kernel
/// gives it. Not loopback, unspecified, multicast, link-local (`fe80::/10`: needs a scope id, only reaches
/// the link), site-local (`fec0::/10`), unique-local (`fc00::/7`: private networks, like IPv4's 10/8, and
/// the peer's ULA may be another site's), IPv4-mapped or -compatible. The documentation range
/// `2001:db8::/32` counts: it is global in scope, no real network routes it (a peer offering one costs a
/// probe that goes nowhere), and the lab (`tests/ipv6/run`) uses it.
pub fn is_direct_ipv6(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    let link_local = (s[0] & 0xffc0) == 0xfe80;
    let site_local = (s[0] & 0xffc0) == 0xfec0;
    let unique_local = (s[0] & 0xfe00) == 0xfc00;
    let v4_embedded = s[..5].iter().all(|x| *x == 0) && (s[5] == 0 || s[5] == 0xffff);
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || link_local
        || site_local
        || unique_local
        || v4_embedded)
}

/// The host's direct IPv6 addresses ([`is_direct_ipv6`]), each once, in interface order.
pub fn direct_addresses() -> Vec<Ipv6Addr> {
    let mut out = Vec::new();
    for (_, ip) in crate::dht_rpc::interfaces::snapshot() {
        if let IpAddr::V6(a) = ip {
            if is_direct_ipv6(&a) && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// At most this many of a peer's addresses are probed (a handshake could list any number).
pub const MAX_PROBED: usize = 4;

/// The peer's addresses worth probing: direct ones ([`is_direct_ipv6`]; loopback too when we offer
/// loopback ourselves, as tests on one host do), not port 0, each once, at most [`MAX_PROBED`]. A peer
/// listing our own loopback or link addresses cannot make us send probes there.
pub fn probe_targets(theirs: &[SocketAddrV6], ours: &[SocketAddrV6]) -> Vec<SocketAddrV6> {
    let loopback_ok = ours.iter().any(|a| a.ip().is_loopback());
    let mut out: Vec<SocketAddrV6> = Vec::new();
    for a in theirs {
        let usable = is_direct_ipv6(a.ip()) || (loopback_ok && a.ip().is_loopback());
        if usable && a.port() != 0 && !out.iter().any(|o| o.ip() == a.ip() && o.port() == a.port())
        {
            out.push(SocketAddrV6::new(*a.ip(), a.port(), 0, 0));
        }
        if out.len() == MAX_PROBED {
            break;
        }
    }
    out
}

type Waiters = Arc<Mutex<HashMap<[u8; 16], oneshot::Sender<SocketAddrV6>>>>;

/// A node's IPv6 socket and the task answering probes on it.
pub(crate) struct V6Path {
    socket: UdxSocket,
    waiters: Waiters,
    reader: JoinHandle<()>,
}

impl Drop for V6Path {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl std::fmt::Debug for V6Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V6Path")
            .field("socket", &self.socket.local_addr())
            .finish_non_exhaustive()
    }
}

impl V6Path {
    /// Binds `[::]:0` in `udx` and starts answering probes.
    pub(crate) async fn bind(udx: &Udx) -> io::Result<Arc<Self>> {
        let socket = udx
            .bind(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::UNSPECIFIED,
                0,
                0,
                0,
            )))
            .await?;
        let waiters: Waiters = Arc::default();
        let reader = tokio::spawn(read_loop(socket.clone(), waiters.clone()));
        tracing::debug!("ipv6: socket bound at {}", socket.local_addr());
        Ok(Arc::new(Self {
            socket,
            waiters,
            reader,
        }))
    }

    /// The socket.
    pub(crate) fn socket(&self) -> &UdxSocket {
        &self.socket
    }

    /// `ips` with the socket's port.
    pub(crate) fn addresses(&self, ips: &[Ipv6Addr]) -> Vec<SocketAddrV6> {
        let port = self.socket.local_addr().port();
        ips.iter()
            .map(|ip| SocketAddrV6::new(*ip, port, 0, 0))
            .collect()
    }

    /// The server's side: a few probes to the client's addresses, in the background (their echoes are
    /// ignored). They open a stateful firewall in front of us for the client's probes.
    pub(crate) fn open_towards(&self, theirs: &[SocketAddrV6]) {
        let socket = self.socket.clone();
        let theirs = theirs.to_vec();
        let msg = ProbeMessage::Probe(rand::random()).encode();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for at in OPEN_TIMES_MS {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                for a in &theirs {
                    let _ = socket.send_to(&msg, SocketAddr::V6(*a)).await;
                }
            }
        });
    }

    /// The client's side: probes `theirs` until one echoes; the address that echoed, or `None` when none
    /// did in time.
    pub(crate) async fn probe(&self, theirs: &[SocketAddrV6]) -> Option<SocketAddrV6> {
        if theirs.is_empty() {
            return None;
        }
        let nonce: [u8; 16] = rand::random();
        let (tx, mut rx) = oneshot::channel();
        self.waiters.lock().ok()?.insert(nonce, tx);
        let msg = ProbeMessage::Probe(nonce).encode();
        let start = tokio::time::Instant::now();
        let sending = async {
            for at in PROBE_TIMES_MS {
                tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                for a in theirs {
                    if let Err(e) = self.socket.send_to(&msg, SocketAddr::V6(*a)).await {
                        tracing::debug!("ipv6: probe to {a}: {e}");
                    }
                }
            }
            tokio::time::sleep(PROBE_LAST_WAIT).await;
        };
        let found = tokio::select! {
            r = &mut rx => r.ok(),
            () = sending => None,
        };
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(&nonce);
        }
        tracing::debug!("ipv6: probes to {theirs:?}: {found:?}");
        found
    }
}

/// Where a client's stream goes: the socket (`None`: the DHT's) and the server's address.
pub(crate) type Path = Option<(Option<UdxSocket>, SocketAddr)>;

/// The client's choice between the IPv4 path (`v4`: the direct address, LAN shortcut or holepunch hyperdht
/// finds) and the IPv6 path: the IPv6 path when a probe is echoed before `v4` is ready, or within
/// [`V6_GRACE`] after, or at all when `v4` failed; else `v4`'s answer.
pub(crate) async fn prefer<E>(
    path: &V6Path,
    theirs: &[SocketAddrV6],
    v4: impl Future<Output = Result<Path, E>>,
) -> Result<Path, E> {
    let probe = path.probe(theirs);
    tokio::pin!(probe);
    tokio::pin!(v4);
    let v6 = |a: SocketAddrV6| Ok(Some((Some(path.socket().clone()), SocketAddr::V6(a))));
    tokio::select! {
        biased;
        found = &mut probe => match found {
            Some(a) => v6(a),
            None => v4.await,
        },
        r = &mut v4 => {
            let found = match &r {
                Ok(_) => tokio::time::timeout(V6_GRACE, &mut probe).await.ok().flatten(),
                Err(_) => probe.await,
            };
            match found {
                Some(a) => v6(a),
                None => r,
            }
        }
    }
}

/// The client stream's side of a move to the IPv6 path (its firewall asks [`Pin::verdict`] first).
#[derive(Debug, Default)]
pub(crate) struct Pin(AtomicU8);

impl Pin {
    /// The stream is about to move to (or connect over) the IPv6 path.
    pub(crate) fn moving(&self) {
        self.0.store(1, Ordering::Release);
    }

    /// The stream is on the IPv6 path.
    pub(crate) fn pinned(&self) {
        self.0.store(2, Ordering::Release);
    }

    /// While moving, packets are held (until the move is done); once moved, packets from elsewhere (the
    /// server's on the IPv4 path, before it follows us) are the stream's own and do not move it back.
    /// `None`: not moving to IPv6, the firewall decides as before.
    pub(crate) fn verdict(&self) -> Option<FirewallVerdict> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(FirewallVerdict::Hold),
            2 => Some(FirewallVerdict::Accept),
            _ => None,
        }
    }
}

/// A server stream's firewall when the client may come over IPv6: its first IPv6 packet connects (or
/// moves) the stream there; after that every packet from elsewhere is the stream's own (the client's
/// retransmits on the IPv4 path) and is accepted without moving it back. Before any IPv6 packet,
/// `otherwise` decides.
pub(crate) fn server_verdict(
    on_v6: &AtomicBool,
    from: SocketAddr,
    remote_id: u32,
    otherwise: impl FnOnce() -> FirewallVerdict,
) -> FirewallVerdict {
    if from.is_ipv6() {
        if on_v6.swap(true, Ordering::AcqRel) {
            FirewallVerdict::Accept
        } else {
            FirewallVerdict::Connect { remote_id }
        }
    } else if on_v6.load(Ordering::Acquire) {
        FirewallVerdict::Accept
    } else {
        otherwise()
    }
}

/// Answers probes and hands echoes to their waiters, until the socket fails or the task is aborted.
async fn read_loop(socket: UdxSocket, waiters: Waiters) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("ipv6: socket read failed: {e}");
                return;
            }
        };
        let SocketAddr::V6(from6) = from else {
            continue;
        };
        match ProbeMessage::decode(&buf[..n]) {
            Some(ProbeMessage::Probe(nonce)) => {
                let echo = ProbeMessage::Echo(nonce).encode();
                let _ = socket.send_to(&echo, from).await;
            }
            Some(ProbeMessage::Echo(nonce)) => {
                let waiter = waiters.lock().ok().and_then(|mut w| w.remove(&nonce));
                if let Some(tx) = waiter {
                    let _ = tx.send(from6);
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_addresses_are_global_in_scope() {
        let direct = |s: &str| is_direct_ipv6(&s.parse().expect("v6"));
        assert!(direct("2a01:4f8::1"));
        assert!(direct("2001:db8::a"));
        for not in [
            "::1",
            "::",
            "fe80::1",
            "fec0::1",
            "fd00::2",
            "fc00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
        ] {
            assert!(!direct(not), "{not}");
        }
    }

    #[test]
    fn server_streams_follow_the_first_ipv6_packet_and_stay() {
        let on = AtomicBool::new(false);
        let v4: SocketAddr = "198.18.0.20:4000".parse().expect("v4");
        let v6: SocketAddr = "[2001:db8::b]:5000".parse().expect("v6");
        let connect = || FirewallVerdict::Connect { remote_id: 3 };
        assert_eq!(server_verdict(&on, v4, 3, connect), connect());
        assert_eq!(server_verdict(&on, v6, 3, connect), connect());
        assert_eq!(server_verdict(&on, v4, 3, connect), FirewallVerdict::Accept);
        assert_eq!(server_verdict(&on, v6, 3, connect), FirewallVerdict::Accept);
        let pin = Pin::default();
        assert_eq!(pin.verdict(), None);
        pin.moving();
        assert_eq!(pin.verdict(), Some(FirewallVerdict::Hold));
        pin.pinned();
        assert_eq!(pin.verdict(), Some(FirewallVerdict::Accept));
    }

    #[test]
    fn only_direct_addresses_of_the_peer_are_probed_and_few() {
        let a = |s: &str| s.parse::<SocketAddrV6>().expect("v6");
        let ours = [a("[2001:db8::a]:5000")];
        let theirs = [
            a("[::1]:22"),
            a("[fe80::1]:53"),
            a("[ff02::1]:9"),
            a("[2001:db8::b]:0"),
            a("[2001:db8::b]:6000"),
            a("[2001:db8::b]:6000"),
        ];
        assert_eq!(probe_targets(&theirs, &ours), vec![a("[2001:db8::b]:6000")]);
        let many: Vec<SocketAddrV6> = (1..=9)
            .map(|i| SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i), 7, 0, 0))
            .collect();
        assert_eq!(probe_targets(&many, &ours).len(), MAX_PROBED);
        // Tests on one host offer ::1 themselves.
        assert_eq!(
            probe_targets(&[a("[::1]:7")], &[a("[::1]:8")]),
            vec![a("[::1]:7")]
        );
    }

    #[test]
    fn probes_round_trip_and_other_bytes_are_not_probes() {
        let n = [7u8; 16];
        for m in [ProbeMessage::Probe(n), ProbeMessage::Echo(n)] {
            assert_eq!(ProbeMessage::decode(&m.encode()), Some(m));
        }
        assert_eq!(ProbeMessage::decode(b"hp6?"), None);
        assert_eq!(ProbeMessage::decode(&[0xff; PROBE_LEN]), None);
        assert_eq!(ProbeMessage::decode(&[]), None);
    }
}
