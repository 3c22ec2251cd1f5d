//! Wire vectors captured from a real udx-native peer, and a core-level exchange with it: a minimal blocking
//! driver runs our sans-IO `Stream` over a loopback UDP socket against `tests/interop/js/udx_capture.js`.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use holepunch::udx::packet::{flags, Header};
use holepunch::udx::{Stream, StreamConfig, StreamEvent};

/// Runs the exchange; returns every datagram udx-native sent us and the lines the JS side printed.
fn exchange() -> (Vec<Vec<u8>>, Vec<String>, Stream) {
    run_against_node(None, 0)
}

/// The blocking mini-driver: runs `js/udx_capture.js [mode]`; when `upload > 0`, writes that many bytes and
/// finishes, otherwise answers the remote END with "world", a "pong" message and our END.
fn run_against_node(mode: Option<&str>, upload: usize) -> (Vec<Vec<u8>>, Vec<String>, Stream) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let port_arg = port.to_string();
    let mut args = vec![port_arg.as_str()];
    args.extend(mode);
    let mut child = interop::node("udx_capture.js", &args);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    let chunk = vec![0x5au8; 64 * 1024];
    let mut uploaded = 0usize;
    let config = StreamConfig {
        linger: Duration::ZERO,
        ..StreamConfig::default()
    };
    let mut stream = Stream::new(9, config, start);
    let mut captured = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let mut received = Vec::new();
    let mut answered = false;
    while Instant::now() < deadline && !stream.is_closed() {
        let now = Instant::now();
        let wait = stream
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(50))
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        sock.set_read_timeout(Some(wait)).unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let d = &buf[..n];
            if captured.len() < 64 {
                captured.push(d.to_vec());
            }
            if !stream.is_connected() {
                stream.connect(5, from, Instant::now());
            }
            stream.handle_datagram(Instant::now(), from, d);
        }
        let now = Instant::now();
        if stream.poll_timeout().is_some_and(|t| t <= now) {
            stream.handle_timeout(now);
        }
        while let Some(ev) = stream.poll_event() {
            if ev == StreamEvent::RemoteEnded && !answered && upload == 0 {
                answered = true;
                assert_eq!(stream.write(b"world"), 5);
                stream.send_message(b"pong").unwrap();
                stream.finish();
            }
        }
        while stream.is_connected() && uploaded < upload {
            let n = stream.write(&chunk[..chunk.len().min(upload - uploaded)]);
            if n == 0 {
                break;
            }
            uploaded += n;
            if uploaded == upload {
                stream.finish();
            }
        }
        loop {
            let n = stream.read(&mut buf);
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        loop {
            out.clear();
            let Some(t) = stream.poll_transmit(Instant::now(), &mut out, 16) else {
                break;
            };
            for c in out.chunks(t.segment_size) {
                sock.send_to(c, t.destination).unwrap();
            }
        }
    }
    if upload == 0 && mode.is_none() {
        assert_eq!(received, b"hello");
    }
    // No timeout before the harness: bounded generously now.
    let (_, output) = child.finish(Duration::from_secs(600));
    let lines = output;
    (captured, lines, stream)
}

/// What udx-native 1.21.3 (libudx) sent in this exchange, captured once by `udx_native_exchange_and_vectors`.
const NATIVE_MESSAGE: [u8; 23] = [
    0xff, 0x01, 0x08, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, b'm', b's', b'g',
];
const NATIVE_DATA_END: [u8; 25] = [
    0xff, 0x01, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o',
];
/// The "final state" ack libudx sends once its END is acked (seq 1, nothing of ours received yet).
const NATIVE_FINAL_ACK: [u8; 20] = [
    0xff, 0x01, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];
/// Its ack of our DATA|END.
const NATIVE_ACK: [u8; 20] = [
    0xff, 0x01, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00,
];

#[test]
fn udx_native_exchange_and_vectors() {
    let (captured, lines, stream) = exchange();
    assert!(stream.is_closed());
    assert_eq!(lines, vec!["message:pong", "data:world", "end", "close"]);
    let expected: Vec<&[u8]> = vec![
        &NATIVE_MESSAGE,
        &NATIVE_DATA_END,
        &NATIVE_FINAL_ACK,
        &NATIVE_ACK,
    ];
    assert_eq!(
        captured, expected,
        "udx-native sent something else: {captured:02x?}"
    );
}

/// Our Stream in udx-native's place (local id 5, remote 9) sends the same bytes.
#[test]
fn we_send_what_udx_native_sends() {
    let t = Instant::now();
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut s = Stream::new(5, StreamConfig::default(), t);
    s.connect(9, remote, t);
    s.send_message(b"msg").unwrap();
    s.write(b"hello");
    s.finish();
    let mut out = Vec::new();
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(out, NATIVE_MESSAGE);
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(out, NATIVE_DATA_END);
    out.clear();
    assert!(s.poll_transmit(t, &mut out, 8).is_none());
    // The remote acks our DATA|END (its seq 0, ack 1, no data): END acked -> the final-state ack.
    let ack = Header {
        type_flags: 0,
        data_offset: 0,
        remote_id: 5,
        recv_window: 4 << 20,
        seq: 0,
        ack: 1,
    };
    let mut d = Vec::new();
    ack.encode(&mut d);
    s.handle_datagram(t, remote, &d);
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(out, NATIVE_FINAL_ACK);
    // Its DATA|END arrives: acked with seq 1, ack 1, then both sides ended and the stream closes.
    let data = Header {
        type_flags: flags::DATA | flags::END,
        data_offset: 0,
        remote_id: 5,
        recv_window: 4 << 20,
        seq: 0,
        ack: 1,
    };
    d.clear();
    data.encode(&mut d);
    d.extend_from_slice(b"world");
    s.handle_datagram(t, remote, &d);
    // Read first, as udx-native's JS side takes data at once (its advertised window never shrinks; ours is
    // 4 MiB minus unread bytes).
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf), 5);
    assert_eq!(&buf[..5], b"world");
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(out, NATIVE_ACK);
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(
        events,
        vec![
            StreamEvent::Readable,
            StreamEvent::RemoteEnded,
            StreamEvent::Closed { error: None }
        ]
    );
    // Closed, but lingering: a retransmitted END (our ack was lost) is acked again, for 3 s.
    assert!(!s.is_closed());
    s.handle_datagram(t, remote, &d);
    out.clear();
    s.poll_transmit(t, &mut out, 8).unwrap();
    assert_eq!(out, NATIVE_ACK);
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(3)));
    // Our re-ack was lost as well: the remote's RTO backed off, so its next retransmission comes after twice
    // the gap. One at 2.5 s keeps the stream until 2.5 + 2 * 2.5 s (+ one RTO of 1 s).
    let t2 = t + Duration::from_millis(2500);
    s.handle_datagram(t2, remote, &d);
    out.clear();
    s.poll_transmit(t2, &mut out, 8).unwrap();
    assert_eq!(out, NATIVE_ACK);
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_millis(8500)));
    s.handle_timeout(t + Duration::from_secs(3));
    assert!(!s.is_closed());
    s.handle_timeout(t + Duration::from_millis(8500));
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
    s.handle_datagram(t, remote, &d);
    assert!(s.poll_transmit(t, &mut out, 8).is_none());
}

/// Hand-made out-of-order data into udx-native: its acks carry SACK ranges laid out as libudx does.
#[test]
fn udx_native_sack_vectors() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut child = interop::node("udx_capture.js", &[&port.to_string(), "sack"]);
    let mut buf = [0u8; 2048];
    let (n, node) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &NATIVE_MESSAGE[..]);
    let packet = |seq: u32, type_flags: u8, payload: &[u8]| {
        let mut d = Vec::new();
        Header {
            type_flags,
            data_offset: 0,
            remote_id: 5,
            recv_window: 4 << 20,
            seq,
            ack: 0,
        }
        .encode(&mut d);
        d.extend_from_slice(payload);
        d
    };
    let mut acks = Vec::new();
    for (seq, f, p) in [
        (0, flags::DATA, &b"a"[..]),
        (2, flags::DATA, b"c"),
        (4, flags::DATA, b"e"),
        (5, flags::END, b""),
        (1, flags::DATA, b"b"),
        (3, flags::DATA, b"d"),
    ] {
        sock.send_to(&packet(seq, f, p), node).unwrap();
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        acks.push(buf[..n].to_vec());
    }
    let ack = |type_flags: u8, ack: u32, sacks: &[(u32, u32)]| {
        let mut d = Vec::new();
        Header {
            type_flags,
            data_offset: 0,
            remote_id: 9,
            recv_window: 4 << 20,
            seq: 0,
            ack,
        }
        .encode(&mut d);
        for &(a, b) in sacks {
            holepunch::udx::packet::encode_sack_range(&mut d, a, b);
        }
        d
    };
    let expected = vec![
        ack(0, 1, &[]),
        ack(flags::SACK, 1, &[(2, 3)]),
        ack(flags::SACK, 1, &[(2, 3), (4, 5)]),
        ack(flags::SACK, 1, &[(2, 3), (4, 6)]),
        ack(flags::SACK, 3, &[(4, 6)]),
        ack(0, 6, &[]),
    ];
    assert_eq!(acks, expected, "{acks:02x?}");
    // Our Stream acks the same datagrams with the same bytes.
    let t = Instant::now();
    let mut s = Stream::new(5, StreamConfig::default(), t);
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    s.connect(9, remote, t);
    let mut ours = Vec::new();
    let mut out = Vec::new();
    let mut rb = [0u8; 16];
    for (seq, f, p) in [
        (0, flags::DATA, &b"a"[..]),
        (2, flags::DATA, b"c"),
        (4, flags::DATA, b"e"),
        (5, flags::END, b""),
        (1, flags::DATA, b"b"),
        (3, flags::DATA, b"d"),
    ] {
        let mut d = packet(seq, f, p);
        d[4..8].copy_from_slice(&5u32.to_le_bytes());
        s.handle_datagram(t, remote, &d);
        while s.read(&mut rb) > 0 {}
        out.clear();
        s.poll_transmit(t, &mut out, 8).unwrap();
        ours.push(out.clone());
    }
    let mut expected_ours = expected.clone();
    for d in &mut expected_ours {
        d[4..8].copy_from_slice(&9u32.to_le_bytes());
    }
    assert_eq!(ours, expected_ours);
    // udx-native got "abcde" and the END, and ends its side too: ack its END so that it closes.
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let (h, _) = Header::decode(&buf[..n]).unwrap();
    assert!(h.has(flags::END), "{h:?}");
    let mut fin = Vec::new();
    Header {
        type_flags: 0,
        data_offset: 0,
        remote_id: 5,
        recv_window: 4 << 20,
        seq: 6,
        ack: h.seq.wrapping_add(1),
    }
    .encode(&mut fin);
    sock.send_to(&fin, node).unwrap();
    // No timeout before the harness: bounded generously now.
    let (_, output) = child.finish(Duration::from_secs(600));
    let text = output.join("\n");
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .collect();
    assert_eq!(data, "abcde");
    assert!(text.lines().any(|l| l == "end"), "{text}");
}

/// Our MTU probes (zero padding in the data offset) are understood and acked by udx-native: over loopback the
/// search climbs to 1500. udx-native itself never probes (see the module docs of `udx::stream`).
#[test]
fn udx_native_acks_our_mtu_probes() {
    let (_, lines, stream) = run_against_node(Some("sink"), 4 << 20);
    assert!(stream.is_closed());
    assert_eq!(stream.stats().mtu, 1500, "{:?}", stream.stats());
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("total:{} mtu:1200", 4 << 20)),
        "{lines:?}"
    );
}

/// udx-native sending into our zero receive window: it stops, probes with HEARTBEATs (libudx zero-window
/// probes), and resumes once we read; every byte arrives.
#[test]
fn udx_native_respects_our_zero_window() {
    const N: usize = 1 << 20;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut child = interop::node(
        "udx_capture.js",
        &[&port.to_string(), &format!("source:{N}")],
    );
    let start = Instant::now();
    let config = StreamConfig {
        recv_window_max: WINDOW as u32,
        linger: Duration::ZERO,
        ..StreamConfig::default()
    };
    let mut stream = Stream::new(9, config, start);
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let mut received = 0usize;
    let mut heartbeats = 0u32;
    let mut max_unread = 0usize;
    let mut answered = false;
    // We read nothing until udx-native has probed our full window: a wall-clock stall raced the node process's
    // start-up on a loaded machine (no probe yet when the stall ended).
    const WINDOW: usize = 64 * 1024;
    while Instant::now() < start + Duration::from_secs(20) && !stream.is_closed() {
        let now = Instant::now();
        let wait = stream
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(20))
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        sock.set_read_timeout(Some(wait)).unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            // A HEARTBEAT while our window is (all but a packet) full is a zero-window probe.
            if Header::decode(&buf[..n]).is_ok_and(|(h, _)| h.has(flags::HEARTBEAT))
                && stream.readable_len() + 1500 >= WINDOW
            {
                heartbeats += 1;
            }
            if !stream.is_connected() {
                stream.connect(5, from, Instant::now());
            }
            stream.handle_datagram(Instant::now(), from, &buf[..n]);
        }
        let now = Instant::now();
        if stream.poll_timeout().is_some_and(|t| t <= now) {
            stream.handle_timeout(now);
        }
        max_unread = max_unread.max(stream.readable_len());
        if heartbeats >= 1 {
            loop {
                let n = stream.read(&mut buf);
                if n == 0 {
                    break;
                }
                assert!(buf[..n].iter().all(|&b| b == 0x5a));
                received += n;
            }
        }
        while let Some(ev) = stream.poll_event() {
            if ev == StreamEvent::RemoteEnded && !answered {
                answered = true;
                stream.finish();
            }
        }
        loop {
            out.clear();
            let Some(t) = stream.poll_transmit(Instant::now(), &mut out, 16) else {
                break;
            };
            for c in out.chunks(t.segment_size) {
                sock.send_to(c, t.destination).unwrap();
            }
        }
    }
    // No timeout before the harness: bounded generously now.
    let (_, output) = child.finish(Duration::from_secs(600));
    assert_eq!(received, N);
    // The sender stopped at our window (plus what was in flight when it closed).
    assert!(max_unread < WINDOW + 32 * 1500, "{max_unread}");
    assert!(heartbeats >= 1, "no zero-window probe seen");
    assert!(stream.is_closed());
    let text = output.join("\n");
    assert!(text.lines().any(|l| l == "close"), "{text}");
}
