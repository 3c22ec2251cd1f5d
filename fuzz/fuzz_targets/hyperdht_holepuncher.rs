#![no_main]
//! Drives the sans-IO holepuncher (and its NAT analysis) with what arbitrary bytes say the network and the
//! remote peer did: NAT samples, holepunch messages (firewall kinds, addresses, verification), punches on
//! any socket number, timers. It must never panic nor ask for a socket it does not have, and must stay quiet
//! once connected or destroyed.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use holepunch::hyperdht::constants::Firewall;
use holepunch::hyperdht::holepuncher::{Holepuncher, BIRTHDAY_SOCKETS};
use libfuzzer_sys::fuzz_target;

fn addr(b: &[u8]) -> SocketAddrV4 {
    let g = |i: usize| b.get(i).copied().unwrap_or(0);
    SocketAddrV4::new(
        Ipv4Addr::new(198, 18, g(0) % 4, g(1) % 4),
        u16::from_le_bytes([g(2), g(3) % 4]),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let start = Instant::now();
    let mut now = start;
    let mut p = Holepuncher::with_seed(
        first & 1 == 1,
        Firewall(u64::from(first >> 1) % 5),
        first & 2 == 0,
        7,
    );
    while let Some((&op, tail)) = rest.split_first() {
        let arg = tail.get(..6).unwrap_or(tail);
        rest = tail.get(6..).unwrap_or(&[]);
        match op % 8 {
            0 => p.nat.add(addr(arg), addr(arg.get(2..).unwrap_or(&[]))),
            1 => {
                let n = usize::from(arg.first().copied().unwrap_or(0) % 4);
                let addrs: Vec<_> = arg.chunks(2).take(n).map(addr).collect();
                let verified = arg
                    .get(5)
                    .filter(|v| *v & 1 == 1)
                    .map(|v| Ipv4Addr::new(198, 18, v % 4, 0));
                p.update_remote(
                    op & 8 != 0,
                    Firewall(u64::from(op >> 4) % 5),
                    &addrs,
                    verified,
                );
            }
            2 => {
                let _ = p.punch(now);
            }
            3 => p.on_packet(
                usize::from(arg.first().copied().unwrap_or(0)),
                addr(arg.get(1..).unwrap_or(&[])),
            ),
            4 => {
                now += Duration::from_millis(u64::from(u16::from_le_bytes([
                    arg.first().copied().unwrap_or(0),
                    arg.get(1).copied().unwrap_or(0),
                ])));
                p.handle_timeout(now);
            }
            5 => p.destroy(),
            6 => p.open_session(addr(arg)),
            _ => p.nat.finish_sampling(),
        }
        let done = p.is_connected() || p.is_destroyed();
        while let Some(t) = p.poll_transmit() {
            assert!(t.socket < BIRTHDAY_SOCKETS && t.socket < p.socket_count());
        }
        while p.poll_event().is_some() {}
        if done {
            assert!(!p.is_punching());
            p.handle_timeout(now + Duration::from_secs(3600));
            assert!(p.poll_timeout().is_none());
        }
    }
});
