//! NAT holepunching (PEER_HOLEPUNCH rounds) on loopback, Rust <-> JS and Rust <-> Rust, over a JS testnet.
//!
//! Peers bound to 0.0.0.0 cannot take the LAN shortcut here: they advertise the machine's interface addresses,
//! which are reserved or unreachable, so the client must go through the probe and punch rounds (both sides
//! find their NAT "consistent": every DHT node sees the same 127.0.0.1:port). Every step is bounded in time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use holepunch::crypto::KeyPair;
use holepunch::dht_rpc::driver::DhtHandle;
use holepunch::dht_rpc::node::Config;
use holepunch::hyperdht::constants::Firewall;
use holepunch::hyperdht::{CacheOpts, ServeHyperdht};
use holepunch::hyperdht::{Connection, ConnectionPath, HyperDht, HyperDhtOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);
const BYTES: usize = 2 * 1024 * 1024;

fn pattern(start: usize, out: &mut [u8]) {
    for (k, b) in out.iter_mut().enumerate() {
        let i = start + k;
        *b = ((i * 7 + i / 1024) & 0xff) as u8;
    }
}

/// Sends `total` pattern bytes, ends, reads to the end; returns (received, matched the pattern).
async fn exchange(conn: Connection, total: usize) -> (usize, bool) {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let writer = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut sent = 0;
        while sent < total {
            let n = buf.len().min(total - sent);
            pattern(sent, &mut buf[..n]);
            if wr.write_all(&buf[..n]).await.is_err() {
                return None;
            }
            sent += n;
        }
        let _ = wr.shutdown().await;
        Some(wr)
    });
    let mut received = 0;
    let mut ok = true;
    let mut buf = vec![0u8; 65536];
    let mut expect = vec![0u8; 65536];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(n) => n,
            Err(_) => return (received, false),
        };
        if n == 0 {
            break;
        }
        pattern(received, &mut expect[..n]);
        ok &= buf[..n] == expect[..n];
        received += n;
    }
    let _wr = writer.await.expect("writer");
    (received, ok)
}

fn js_line(p: &mut interop::JsProcess, t: Duration) -> serde_json::Value {
    let line = tokio::task::block_in_place(|| p.line(t));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad json {line:?}: {e}"))
}

/// A Rust node on 0.0.0.0 that behaves firewalled (loopback makes every node reachable).
async fn rust_node(bootstrap: SocketAddr) -> HyperDht {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let SocketAddr::V4(b) = bootstrap else {
        panic!("v4 bootstrap")
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: vec![b],
        host: Ipv4Addr::UNSPECIFIED,
        firewalled: true,
        assume_firewalled: true,
        ..HyperDhtOpts::default()
    })
    .await
    .expect("bind");
    timeout(STEP, dht.fully_bootstrapped())
        .await
        .expect("bootstrap in time")
        .expect("bootstrap");
    dht
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_holepunches_to_a_js_server_on_any_address() {
    let net = interop::JsTestnet::start(5);
    rust_client_js_server(net.bootstrap[0], 0x81).await;
}

async fn rust_client_js_server(bootstrap: SocketAddr, seed: u8) {
    let bs = bootstrap.to_string();
    let mut js = interop::node_with(
        "hyperdht_peer.js",
        &["server", &bs, &hex::encode([seed; 32]), &BYTES.to_string()],
        &[("HYPERDHT_HOST", "0.0.0.0")],
    );
    let v = js_line(&mut js, STEP);
    let server_pk = KeyPair::from_seed(&[seed; 32]).public;
    assert_eq!(v["listening"], hex::encode(server_pk));

    let dht = rust_node(bootstrap).await;
    let kp = KeyPair::from_seed(&[seed.wrapping_add(1); 32]);
    let conn = timeout(STEP, dht.connect_with(&server_pk, &kp))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(conn.remote_public_key(), &server_pk);
    let path = dht.connection_path(&conn).0;
    let (n, ok) = timeout(STEP, exchange(conn, BYTES))
        .await
        .expect("exchange");
    assert_eq!((n, ok), (BYTES, true), "Rust client received the JS bytes");
    let v = js_line(&mut js, STEP);
    assert_eq!(v["received"], BYTES, "JS server: {v}");
    assert_eq!(v["ok"], true, "JS server: {v}");
    // On loopback the JS node may have found out it is reachable before the handshake; then it said so and
    // the client rightly connected directly. Otherwise it must have been punched.
    if v["open"] != true {
        assert_eq!(path, ConnectionPath::Holepunched, "JS server: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_holepunches_to_a_rust_server_on_any_address() {
    let net = interop::JsTestnet::start(5);
    js_client_rust_server(net.bootstrap[0], 0x91).await;
}

async fn js_client_rust_server(bootstrap: SocketAddr, seed: u8) {
    let bs = bootstrap.to_string();
    let dht = rust_node(bootstrap).await;
    let kp = KeyPair::from_seed(&[seed; 32]);
    // The firewall callback sees the client's handshake: did it say it is reachable?
    let client_open = Arc::new(AtomicBool::new(false));
    let mut server = dht.create_server({
        let client_open = client_open.clone();
        move |_, payload| {
            client_open.store(payload.firewall == Firewall::OPEN, Ordering::SeqCst);
            false
        }
    });
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let mut js = interop::node_with(
        "hyperdht_peer.js",
        &[
            "client",
            &bs,
            &hex::encode(kp.public),
            &hex::encode([seed.wrapping_add(1); 32]),
            &BYTES.to_string(),
        ],
        &[("HYPERDHT_HOST", "0.0.0.0")],
    );
    let conn = match timeout(STEP, server.accept()).await {
        Ok(Some(c)) => c,
        other => {
            let v = js_line(&mut js, Duration::from_secs(5));
            panic!("no connection ({:?}); JS client said {v}", other.is_ok());
        }
    };
    // A JS client that found out it is reachable says so, and the server connects to it directly.
    if !client_open.load(Ordering::SeqCst) {
        assert_eq!(dht.connection_path(&conn).0, ConnectionPath::Holepunched);
    }
    let (n, ok) = timeout(STEP, exchange(conn, BYTES))
        .await
        .expect("exchange");
    let v = js_line(&mut js, STEP);
    assert_eq!((n, ok), (BYTES, true), "JS said {v}");
    assert_eq!(v["received"], BYTES, "JS client: {v}");
    assert_eq!(v["ok"], true, "JS client: {v}");
    timeout(STEP, server.close()).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_holepunch_on_any_address() {
    let net = interop::JsTestnet::start(5);
    rust_pair(net.bootstrap[0], 0xa1).await;
}

/// The same three through a testnet of Rust DHT nodes: they relay the PEER_HOLEPUNCH rounds of both
/// implementations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holepunch_through_rust_dht_nodes() {
    let nodes = rust_testnet(5).await;
    let boot = SocketAddr::V4(nodes[0].server_addr());
    rust_pair(boot, 0xb1).await;
    rust_client_js_server(boot, 0xb3).await;
    js_client_rust_server(boot, 0xb5).await;
}

/// A testnet of Rust dht-rpc nodes serving hyperdht storage and routing (persistent, unfirewalled).
async fn rust_testnet(size: usize) -> Vec<DhtHandle> {
    let server = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let client = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let SocketAddr::V4(public) = server.local_addr().expect("addr") else {
        panic!("v4")
    };
    let boot = DhtHandle::spawn(Config::bootstrapper(public), server, client).expect("spawn");
    boot.serve_hyperdht(CacheOpts::default())
        .await
        .expect("serve");
    let mut nodes = vec![boot];
    for _ in 1..size {
        let n = DhtHandle::bind(
            Ipv4Addr::LOCALHOST,
            0,
            Config {
                bootstrap: vec![public],
                ephemeral: Some(false),
                firewalled: false,
                ..Config::default()
            },
        )
        .await
        .expect("bind");
        n.serve_hyperdht(CacheOpts::default()).await.expect("serve");
        timeout(STEP, n.bootstrapped())
            .await
            .expect("in time")
            .expect("bootstrapped");
        nodes.push(n);
    }
    nodes
}

async fn rust_pair(bootstrap: SocketAddr, seed: u8) {
    let a = rust_node(bootstrap).await;
    let b = rust_node(bootstrap).await;
    let kp = KeyPair::from_seed(&[seed; 32]);
    let mut server = a.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let connect = tokio::spawn({
        let b = b.clone();
        async move { b.connect(&kp.public).await }
    });
    let sconn = match timeout(STEP, server.accept()).await {
        Ok(Some(c)) => c,
        _ => panic!(
            "no connection; the client: {:?}",
            connect.await.map(|r| r.err())
        ),
    };
    let cconn = timeout(STEP, connect)
        .await
        .expect("connect in time")
        .expect("join")
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(a.connection_path(&sconn).0, ConnectionPath::Holepunched);
    assert_eq!(b.connection_path(&cconn).0, ConnectionPath::Holepunched);
    let (s, c) = tokio::join!(exchange(sconn, BYTES), exchange(cconn, BYTES));
    assert_eq!(s, (BYTES, true));
    assert_eq!(c, (BYTES, true));
    timeout(STEP, server.close()).await.expect("close");
}
