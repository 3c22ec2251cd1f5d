//! UDX streams over IPv6 (`::1`): a transfer both ways between two IPv6 sockets, and a stream moved from an
//! IPv4 path to an IPv6 one with data in flight (what hyperdht does when a Rust peer offers a direct IPv6
//! path, `crates/dht/src/hyperdht/ipv6.rs`). The MTU of an IPv6 path leaves room for the bigger header.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use holepunch_udx::{Udx, UdxSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Generous: only a hang fails the test.
const LIMIT: Duration = Duration::from_secs(60);

fn data(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

fn v6_loopback() -> SocketAddr {
    SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0)
}

fn v4_loopback() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_runs_over_ipv6_both_ways() {
    let a = UdxSocket::bind(v6_loopback()).await.expect("bind ::1");
    let b = UdxSocket::bind(v6_loopback()).await.expect("bind ::1");
    let x = a.create_stream(1).expect("x");
    let y = b.create_stream(2).expect("y");
    x.connect(2, b.local_addr()).expect("x -> b");
    y.connect(1, a.local_addr()).expect("y -> a");
    assert_eq!(x.remote(), Some((2, b.local_addr())));
    assert!(b.local_addr().is_ipv6());
    let (to_y, to_x) = (data(4 << 20, 1), data(1 << 20, 2));
    let (wx, wy) = (to_y.clone(), to_x.clone());
    let (xs, ys) = (&x, &y);
    let ((), (), got_y, got_x) = timeout(LIMIT, async {
        tokio::join!(
            async move {
                let mut w = xs;
                w.write_all(&wx).await.expect("x writes");
                w.shutdown().await.expect("x ends");
            },
            async move {
                let mut w = ys;
                w.write_all(&wy).await.expect("y writes");
                w.shutdown().await.expect("y ends");
            },
            async {
                let mut got = Vec::new();
                (&y).read_to_end(&mut got).await.expect("y reads");
                got
            },
            async {
                let mut got = Vec::new();
                (&x).read_to_end(&mut got).await.expect("x reads");
                got
            },
        )
    })
    .await
    .expect("in time");
    assert!(got_y == to_y, "x -> y differs ({} bytes)", got_y.len());
    assert!(got_x == to_x, "y -> x differs ({} bytes)", got_x.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_moves_from_ipv4_to_ipv6_with_data_in_flight() {
    // Each side: one instance with an IPv4 socket and an IPv6 socket, as a hyperdht node has.
    let (ua, ub) = (Udx::new(), Udx::new());
    let a4 = ua.bind(v4_loopback()).await.expect("bind");
    let a6 = ua.bind(v6_loopback()).await.expect("bind");
    let b4 = ub.bind(v4_loopback()).await.expect("bind");
    let b6 = ub.bind(v6_loopback()).await.expect("bind");
    let x = ua.create_stream(1).expect("x");
    let y = ub.create_stream(2).expect("y");
    x.connect_via(&a4, 2, b4.local_addr()).expect("x over v4");
    y.connect_via(&b4, 1, a4.local_addr()).expect("y over v4");
    // y follows x to whichever socket and address its packets come from (hyperdht's server firewall).
    y.set_firewall(|_, _| holepunch_udx::FirewallVerdict::Connect { remote_id: 1 })
        .expect("firewall");
    // ... and x accepts y's packets still on the IPv4 path while y follows.
    x.set_firewall(|_, _| holepunch_udx::FirewallVerdict::Accept)
        .expect("firewall");
    let sent = data(2 << 20, 3);
    let (half, rest) = sent.split_at(sent.len() / 2);
    (&x).write_all(half).await.expect("write over v4");
    x.change_remote_via(&a6, 2, b6.local_addr())
        .expect("move to v6");
    (&x).write_all(rest).await.expect("write over v6");
    (&x).shutdown().await.expect("end");
    let mut got = Vec::new();
    timeout(LIMIT, (&y).read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert!(
        got == sent,
        "the bytes differ ({} of {})",
        got.len(),
        sent.len()
    );
    assert_eq!(x.remote(), Some((2, b6.local_addr())));
    assert_eq!(
        y.remote(),
        Some((1, a6.local_addr())),
        "y followed x onto the IPv6 path"
    );
    assert_eq!(y.local_addr(), Some(b6.local_addr()));
}
