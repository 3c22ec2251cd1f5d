//! Edge cases of the sans-IO `Stream` checked packet by packet against what libudx puts on the wire (no peer:
//! datagrams are made by hand and the stream's answers decoded): the first data packet's header, SACK range
//! caps, END after earlier data, heartbeats and DESTROY, change_remote with data in flight, and blind relaying.
//! The captures from a real udx-native peer are in the interop tests (`tests/interop/tests/it/udx_vectors.rs`).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use holepunch_udx::packet::{self, flags, Header};
use holepunch_udx::{Stream, StreamConfig, StreamEvent};

#[test]
fn header_of_a_local_peer_is_what_libudx_writes() {
    // What our Stream puts on the wire for its first data packet, byte for byte.
    let t = Instant::now();
    let mut s = Stream::new(5, StreamConfig::default(), t);
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    s.connect(9, remote, t);
    s.write(b"hello");
    s.finish();
    let mut out = Vec::new();
    let tx = s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(tx.len, 25);
    let (h, rest) = Header::decode(&out).unwrap();
    assert_eq!(h.type_flags, flags::DATA | flags::END);
    assert_eq!(h.payload(rest), Some(&b"hello"[..]));
}

fn raw(seq: u32, type_flags: u8, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    Header {
        type_flags,
        data_offset: 0,
        remote_id: 5,
        recv_window: 4 << 20,
        seq,
        ack,
    }
    .encode(&mut d);
    d.extend_from_slice(payload);
    d
}

fn connected() -> (Stream, Instant, SocketAddr) {
    let t = Instant::now();
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut s = Stream::new(5, StreamConfig::default(), t);
    s.connect(9, remote, t);
    (s, t, remote)
}

/// SACK ranges are scanned upwards from the cumulative ack as libudx does, up to
/// [`packet::MAX_SACK_RANGES`] (libudx: 50; libudx reads them all); when they run out, the last 16 report the
/// highest received ranges (the packets sent last, which RACK needs). The ack fits the base MTU over IPv6.
#[test]
fn sack_ranges_lowest_first_then_highest() {
    let (mut s, t, remote) = connected();
    // Fewer holes than ranges: all of them, lowest first.
    for seq in (1..60u32).step_by(2) {
        s.handle_datagram(t, remote, &raw(seq, flags::DATA, 0, b"x"));
    }
    let mut out = Vec::new();
    s.poll_transmit(t, &mut out, 8).unwrap();
    let (h, rest) = Header::decode(&out).unwrap();
    let ranges: Vec<_> = h.sack_ranges(rest).collect();
    let want: Vec<_> = (0..30u32).map(|i| (1 + 2 * i, 2 + 2 * i)).collect();
    assert_eq!(ranges, want);

    // 200 holes: 125 lowest, then the 16 highest, from the top down.
    for seq in (61..400u32).step_by(2) {
        s.handle_datagram(t, remote, &raw(seq, flags::DATA, 0, b"x"));
    }
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert!(out.len() <= packet::MTU_BASE - packet::IPV6_HEADER_OVERHEAD + packet::HEADER_LEN);
    let (h, rest) = Header::decode(&out).unwrap();
    assert!(h.has(flags::SACK));
    assert_eq!(h.ack, 0);
    let ranges: Vec<_> = h.sack_ranges(rest).collect();
    assert_eq!(ranges.len(), packet::MAX_SACK_RANGES);
    let low = packet::MAX_SACK_RANGES - 16;
    for (i, &(a, b)) in ranges[..low].iter().enumerate() {
        assert_eq!((a, b), (1 + 2 * i as u32, 2 + 2 * i as u32));
    }
    for (k, &(a, b)) in ranges[low..].iter().enumerate() {
        assert_eq!((a, b), (399 - 2 * k as u32, 400 - 2 * k as u32));
    }
}

/// END received before earlier data surfaces only once every byte before it arrived; duplicates are acked
/// again and not delivered twice.
#[test]
fn end_waits_for_earlier_data_and_duplicates_are_dropped() {
    let (mut s, t, remote) = connected();
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    s.handle_datagram(t, remote, &raw(3, flags::END, 0, b""));
    s.handle_datagram(t, remote, &raw(1, flags::DATA, 0, b"b"));
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.read(&mut buf), 0);
    s.handle_datagram(t, remote, &raw(0, flags::DATA, 0, b"a"));
    s.handle_datagram(t, remote, &raw(0, flags::DATA, 0, b"a"));
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(s.poll_event(), Some(StreamEvent::Readable));
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.read(&mut buf), 2);
    assert_eq!(&buf[..2], b"ab");
    s.handle_datagram(t, remote, &raw(2, flags::DATA, 0, b"c"));
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    let (h, _) = Header::decode(&out).unwrap();
    assert_eq!(h.ack, 4);
    assert_eq!(s.poll_event(), Some(StreamEvent::Readable));
    assert_eq!(s.poll_event(), Some(StreamEvent::RemoteEnded));
    assert_eq!(s.read(&mut buf), 1);
    // A late duplicate after END: still acked (ack 4), nothing delivered.
    s.handle_datagram(t, remote, &raw(1, flags::DATA, 0, b"b"));
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    let (h, _) = Header::decode(&out).unwrap();
    assert_eq!(h.ack, 4);
    assert_eq!(s.read(&mut buf), 0);
}

/// A HEARTBEAT is answered with an ack and nothing else of it is processed; a DESTROY closes with Reset.
#[test]
fn heartbeat_and_destroy() {
    let (mut s, t, remote) = connected();
    let mut out = Vec::new();
    s.handle_datagram(t, remote, &raw(0, flags::HEARTBEAT, 0, b""));
    let tx = s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(tx.len, 20);
    assert!(s.poll_transmit(t, &mut out, 8).is_none());
    s.handle_datagram(t, remote, &raw(0, flags::DESTROY, 0, b""));
    assert_eq!(
        s.poll_event(),
        Some(StreamEvent::Closed {
            error: Some(holepunch_udx::StreamError::Reset)
        })
    );
    assert!(s.is_closed());
    out.clear();
    assert!(s.poll_transmit(t, &mut out, 8).is_none());
    // Datagrams for a closed stream are ignored.
    s.handle_datagram(t, remote, &raw(0, flags::DATA, 0, b"late"));
    assert!(s.poll_transmit(t, &mut out, 8).is_none());
    assert_eq!(s.poll_event(), None);
}

/// change_remote: packets sent before keep their destination and remote id on retransmit (libudx stores them
/// per packet); new packets go to the new remote; RemoteChanged once everything before the change is acked.
#[test]
fn change_remote_keeps_inflight_on_old_path() {
    let (mut s, t, old) = connected();
    let new: SocketAddr = "127.0.0.1:10".parse().unwrap();
    s.write(&[1u8; 3000]);
    let mut out = Vec::new();
    let tx = s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(tx.destination, old);
    let n_old = tx.len.div_ceil(tx.segment_size);
    assert_eq!(n_old, 3);
    s.change_remote(11, new, t);
    s.write(&[2u8; 100]);
    out.clear();
    let tx = s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(tx.destination, new);
    let (h, _) = Header::decode(&out).unwrap();
    assert_eq!((h.remote_id, h.seq), (11, 3));
    // Nothing acked: a probe (200 ms without an RTT sample) resends the oldest packet, to the old remote with
    // the old id.
    let (tx, later) = loop {
        let later = s.poll_timeout().unwrap();
        assert!(later <= t + Duration::from_millis(1001));
        s.handle_timeout(later);
        out.clear();
        if let Some(tx) = s.poll_transmit(later, &mut out, 8) {
            break (tx, later);
        }
    };
    assert_eq!(later, t + Duration::from_millis(200));
    assert_eq!(s.stats().probes, 1);
    assert_eq!(tx.destination, old);
    let (h, _) = Header::decode(&out).unwrap();
    assert_eq!((h.remote_id, h.seq), (9, 0));
    assert_eq!(s.poll_event(), None);
    // The new remote acks everything: the change completes.
    s.handle_datagram(later, new, &raw(0, 0, 4, b""));
    assert_eq!(s.poll_event(), Some(StreamEvent::RemoteChanged));
    assert_eq!(s.stats().inflight_packets, 0);
}

/// Blind relaying (libudx `udx_stream_relay_to`, used by blind-relay servers): A talks to relay stream R1, B to
/// R2, the relay pairs them, and A and B end up with one end-to-end stream.
#[test]
fn relay_pairs_two_streams() {
    use std::collections::VecDeque;
    let base = Instant::now();
    let a_addr: SocketAddr = "127.0.0.1:1001".parse().unwrap();
    let b_addr: SocketAddr = "127.0.0.1:1002".parse().unwrap();
    let r_addr: SocketAddr = "127.0.0.1:1003".parse().unwrap();
    let mut a = Stream::new(1, StreamConfig::default(), base);
    let mut b = Stream::new(2, StreamConfig::default(), base);
    let mut r1 = Stream::new(10, StreamConfig::default(), base);
    let mut r2 = Stream::new(20, StreamConfig::default(), base);
    a.connect(10, r_addr, base);
    b.connect(20, r_addr, base);
    r1.connect(1, a_addr, base);
    r2.connect(2, b_addr, base);
    r1.relay_to().unwrap();
    r2.relay_to().unwrap();
    assert_eq!(
        r1.relay_to(),
        Err(holepunch_udx::StreamError::AlreadyRelaying)
    );
    assert_eq!(r1.write(b"x"), 0);

    let total = 1 << 20;
    let mut written = 0usize;
    let mut got = 0usize;
    let chunk = vec![0xabu8; 1 << 16];
    let mut buf = vec![0u8; 1 << 16];
    // (deliver at, destination address, datagram)
    let mut net: VecDeque<(Duration, SocketAddr, Vec<u8>)> = VecDeque::new();
    let delay = Duration::from_millis(5);
    let mut vt = Duration::ZERO;
    let mut out = Vec::new();
    let mut relayed = 0u32;
    while vt < Duration::from_secs(30) && !(a.is_closed() && b.is_closed()) {
        let now = base + vt;
        while written < total {
            let n = a.write(&chunk[..chunk.len().min(total - written)]);
            if n == 0 {
                break;
            }
            written += n;
            if written == total {
                a.finish();
            }
        }
        loop {
            let n = b.read(&mut buf);
            if n == 0 {
                break;
            }
            got += n;
        }
        while let Some(ev) = b.poll_event() {
            if ev == StreamEvent::RemoteEnded {
                b.finish();
            }
        }
        while a.poll_event().is_some() {}
        for s in [&mut a, &mut b] {
            loop {
                out.clear();
                let Some(t) = s.poll_transmit(now, &mut out, 16) else {
                    break;
                };
                for c in out.chunks(t.segment_size) {
                    net.push_back((vt + delay, t.destination, c.to_vec()));
                }
            }
        }
        // Next event.
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .map(|t| t.saturating_duration_since(base))
            .chain(net.front().map(|(t, ..)| *t))
            .min();
        let Some(next) = next else { break };
        vt = vt.max(next);
        let now = base + vt;
        while net.front().is_some_and(|(t, ..)| *t <= vt) {
            let Some((_, to, mut d)) = net.pop_front() else {
                break;
            };
            if to == r_addr {
                // The relay: route by destination id, forward to the paired stream's remote.
                let id = holepunch_udx::packet::destination_id(&d);
                let (relay, pair_remote) = match id {
                    Some(10) => (&mut r1, r2.remote()),
                    Some(20) => (&mut r2, r1.remote()),
                    _ => continue,
                };
                let (pair_id, pair_addr) = pair_remote.unwrap();
                if relay.relay_datagram(now, &mut d, pair_id) {
                    relayed += 1;
                    net.push_back((vt + delay, pair_addr, d));
                }
            } else if to == a_addr {
                a.handle_datagram(now, r_addr, &d);
            } else if to == b_addr {
                b.handle_datagram(now, r_addr, &d);
            }
        }
        for s in [&mut a, &mut b] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
    }
    assert_eq!(got, total);
    assert!(
        a.is_closed() && b.is_closed(),
        "{:?} {:?}",
        a.stats(),
        b.stats()
    );
    assert!(relayed > 700);
    assert!(!r1.is_closed() && !r2.is_closed());

    // A DESTROY through the relay closes the relay stream it passes and reaches the other side.
    let mut d = Vec::new();
    Header {
        type_flags: flags::DESTROY,
        data_offset: 0,
        remote_id: 10,
        recv_window: 0,
        seq: 12345,
        ack: 0,
    }
    .encode(&mut d);
    assert!(r1.relay_datagram(base, &mut d, 2));
    assert_eq!(holepunch_udx::packet::destination_id(&d), Some(2));
    assert_eq!(
        r1.poll_event(),
        Some(StreamEvent::Closed {
            error: Some(holepunch_udx::StreamError::Reset)
        })
    );
    assert!(!r1.relay_datagram(base, &mut d, 2));
    // The driver destroys the streams relaying to a closed one; a relay sends no DESTROY of its own.
    r2.destroy();
    assert!(r2.is_closed());
    assert!(r2.poll_transmit(base, &mut out, 8).is_none());
}
