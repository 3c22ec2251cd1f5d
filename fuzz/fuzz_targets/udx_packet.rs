//! Feeds arbitrary bytes to the UDX header decoder and, split into datagrams, to a live connected Stream
//! (with time advancing and transmissions polled in between): nothing may panic.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use holepunch::udx::packet::{destination_id, is_udx, Header};
use holepunch::udx::{Stream, StreamConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((h, rest)) = Header::decode(data) {
        let _ = h.payload(rest);
        let _ = h.sack_ranges(rest).count();
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(&out[..], &data[..20]);
    }
    let _ = is_udx(data);
    let _ = destination_id(data);

    // A relay stream rewrites and accounts whatever arrives.
    {
        let start = Instant::now();
        let mut relay = Stream::new(7, StreamConfig::default(), start);
        let _ = relay.relay_to();
        let mut d = data.to_vec();
        if d.len() >= 8 {
            d[4..8].copy_from_slice(&7u32.to_le_bytes());
        }
        let _ = relay.relay_datagram(start, &mut d, 3);
        let _ = relay.poll_event();
    }

    let start = Instant::now();
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut s = Stream::new(7, StreamConfig::default(), start);
    s.connect(3, peer, start);
    let _ = s.write(&[1u8; 5000]);
    let mut now = start;
    let mut out = Vec::new();
    // Input: [len: u8][advance ms: u8][datagram bytes...]*; datagrams get our id patched in so they reach the
    // stream logic instead of being filtered out.
    let mut rest = data;
    while let [len, adv, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (d, r) = tail.split_at(len);
        rest = r;
        let mut d = d.to_vec();
        if d.len() >= 8 {
            d[0] = 0xff;
            d[1] = 1;
            d[4..8].copy_from_slice(&7u32.to_le_bytes());
        }
        now += Duration::from_millis(u64::from(*adv) * 20);
        s.handle_datagram(now, peer, &d);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        for _ in 0..64 {
            out.clear();
            if s.poll_transmit(now, &mut out, 16).is_none() {
                break;
            }
        }
        let mut buf = [0u8; 4096];
        while s.read(&mut buf) > 0 {}
        while s.poll_event().is_some() {}
        let _ = s.write(&d);
    }
});
