//! HyperDHT servers and connections, Rust <-> JS, over a local testnet (loopback only, every step bounded in
//! time): a Rust server accepts a JS client and a Rust client reaches a JS server (16 MiB byte-exact each way),
//! firewall rejections on both sides, Rust <-> Rust through a JS testnet and through a Rust-only testnet,
//! mutable/immutable values stored by one side and read by the other, and hostile handshake packets.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holepunch::compact_encoding::Encode;
use holepunch::crypto::KeyPair;
use holepunch::dht_rpc::driver::DhtHandle;
use holepunch::dht_rpc::node::{Config, RequestSpec};
use holepunch::hyperdht::constants::{Command, Mode};
use holepunch::hyperdht::messages::Handshake;
use holepunch::hyperdht::{CacheOpts, ServeHyperdht};
use holepunch::hyperdht::{Connection, HyperDht, HyperDhtError, HyperDhtOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);
const MIB16: usize = 16 * 1024 * 1024;

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
            if let Err(e) = wr.write_all(&buf[..n]).await {
                eprintln!("write failed after {sent} bytes: {e}");
                return None;
            }
            sent += n;
        }
        if let Err(e) = wr.shutdown().await {
            eprintln!("shutdown failed: {e}");
        }
        Some(wr)
    });
    let mut received = 0;
    let mut ok = true;
    let mut buf = vec![0u8; 65536];
    let mut expect = vec![0u8; 65536];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("read failed after {received} bytes: {e}");
                return (received, false);
            }
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

fn parse(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad json {line:?}: {e}"))
}

fn js_line(p: &mut interop::JsProcess, t: Duration) -> serde_json::Value {
    parse(&tokio::task::block_in_place(|| p.line(t)))
}

async fn rust_node(bootstrap: SocketAddr) -> HyperDht {
    rust_node_with(bootstrap, true).await
}

async fn rust_node_with(bootstrap: SocketAddr, firewalled: bool) -> HyperDht {
    rust_node_opts(bootstrap, firewalled, false).await
}

async fn rust_node_opts(
    bootstrap: SocketAddr,
    firewalled: bool,
    assume_firewalled: bool,
) -> HyperDht {
    let SocketAddr::V4(b) = bootstrap else {
        panic!("v4 bootstrap")
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: vec![b],
        host: Ipv4Addr::LOCALHOST,
        firewalled,
        assume_firewalled,
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
async fn rust_server_js_client_16mib() {
    let net = interop::JsTestnet::start(5);
    let dht = rust_node(net.bootstrap[0]).await;
    let kp = KeyPair::from_seed(&[0x11; 32]);
    let mut server = dht.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");

    let client_kp = KeyPair::from_seed(&[0x12; 32]);
    let bs = net.bootstrap[0].to_string();
    let mut js = interop::node(
        "hyperdht_peer.js",
        &[
            "client",
            &bs,
            &hex::encode(kp.public),
            &hex::encode([0x12u8; 32]),
            &MIB16.to_string(),
        ],
    );
    let conn = timeout(STEP, server.accept())
        .await
        .expect("accept in time")
        .expect("a connection");
    assert_eq!(conn.remote_public_key(), &client_kp.public);
    let (n, ok) = timeout(STEP, exchange(conn, MIB16))
        .await
        .expect("exchange");
    let v = js_line(&mut js, STEP);
    assert_eq!(
        (n, ok),
        (MIB16, true),
        "Rust server received the JS bytes; JS said {v}"
    );
    assert_eq!(v["received"], MIB16, "JS client: {v}");
    assert_eq!(v["ok"], true, "JS client: {v}");
    assert_eq!(v["remote"], hex::encode(kp.public));
    timeout(STEP, server.close()).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_rust_client_16mib() {
    let net = interop::JsTestnet::start(5);
    let bs = net.bootstrap[0].to_string();
    let mut js = interop::node(
        "hyperdht_peer.js",
        &[
            "server",
            &bs,
            &hex::encode([0x21u8; 32]),
            &MIB16.to_string(),
        ],
    );
    let v = js_line(&mut js, STEP);
    let server_pk = KeyPair::from_seed(&[0x21; 32]).public;
    assert_eq!(v["listening"], hex::encode(server_pk));

    let dht = rust_node(net.bootstrap[0]).await;
    let kp = KeyPair::from_seed(&[0x22; 32]);
    let conn = timeout(STEP, dht.connect_with(&server_pk, &kp))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_eq!(conn.remote_public_key(), &server_pk);
    let (n, ok) = timeout(STEP, exchange(conn, MIB16))
        .await
        .expect("exchange");
    assert_eq!((n, ok), (MIB16, true), "Rust client received the JS bytes");
    let v = js_line(&mut js, STEP);
    assert_eq!(v["received"], MIB16, "JS server: {v}");
    assert_eq!(v["ok"], true, "JS server: {v}");
    assert_eq!(v["remote"], hex::encode(kp.public));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_rejections_both_ways() {
    let net = interop::JsTestnet::start(5);
    let bs = net.bootstrap[0].to_string();
    let rejected = KeyPair::from_seed(&[0x32; 32]);

    // JS server rejecting the Rust client.
    let mut js = interop::node(
        "hyperdht_peer.js",
        &[
            "server",
            &bs,
            &hex::encode([0x31u8; 32]),
            "16",
            &hex::encode(rejected.public),
        ],
    );
    let v = js_line(&mut js, STEP);
    let server_pk = KeyPair::from_seed(&[0x31; 32]).public;
    assert_eq!(v["listening"], hex::encode(server_pk));
    let dht = rust_node(net.bootstrap[0]).await;
    let err = timeout(STEP, dht.connect_with(&server_pk, &rejected))
        .await
        .expect("connect settles in time")
        .expect_err("rejected by the JS firewall");
    assert!(
        matches!(err, HyperDhtError::PeerConnectionFailed),
        "got {err}"
    );
    let v = js_line(&mut js, STEP);
    assert_eq!(v["rejected"], hex::encode(rejected.public));

    // Rust server rejecting a JS client.
    let seen: Arc<Mutex<Vec<[u8; 32]>>> = Arc::default();
    let seen2 = seen.clone();
    let mut server = dht.create_server(move |pk, _| {
        seen2.lock().expect("lock").push(*pk);
        true
    });
    let kp = KeyPair::from_seed(&[0x33; 32]);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let mut client = interop::node(
        "hyperdht_peer.js",
        &[
            "client",
            &bs,
            &hex::encode(kp.public),
            &hex::encode([0x34u8; 32]),
            "16",
        ],
    );
    let v = js_line(&mut client, STEP);
    assert_eq!(v["error"], "PEER_CONNECTION_FAILED", "JS client: {v}");
    let js_pk = KeyPair::from_seed(&[0x34; 32]).public;
    assert!(seen.lock().expect("lock").contains(&js_pk));
    timeout(STEP, server.close()).await.expect("close");
}

async fn rust_pair(bootstrap: SocketAddr) {
    rust_pair_with(bootstrap, true, true).await
}

/// A Rust server and a Rust client (each firewalled or reachable) exchange 2 MiB each way.
async fn rust_pair_with(bootstrap: SocketAddr, server_firewalled: bool, client_firewalled: bool) {
    let a = rust_node_with(bootstrap, server_firewalled).await;
    let b = rust_node_with(bootstrap, client_firewalled).await;
    // A node started firewalled may find out quickly that it is reachable (dht-rpc's quick firewall check
    // succeeds on loopback); one started reachable stays so.
    for (n, fw) in [(&a, server_firewalled), (&b, client_firewalled)] {
        let st = n.handle().state().await.expect("state");
        assert!(fw || !st.firewalled);
    }
    let kp = KeyPair::from_seed(&[0x41; 32]);
    let mut server = a.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let connect = tokio::spawn({
        let b = b.clone();
        async move { b.connect(&kp.public).await }
    });
    let sconn = timeout(STEP, server.accept())
        .await
        .expect("accept in time")
        .expect("conn");
    let cconn = timeout(STEP, connect)
        .await
        .expect("connect in time")
        .expect("join")
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(sconn.remote_public_key(), &b.default_key_pair().public);
    let total = 2 * 1024 * 1024;
    let (s, c) = tokio::join!(exchange(sconn, total), exchange(cconn, total));
    assert_eq!(s, (total, true));
    assert_eq!(c, (total, true));
    timeout(STEP, server.close()).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_through_js_testnet() {
    let net = interop::JsTestnet::start(5);
    rust_pair(net.bootstrap[0]).await;
}

/// `close()` unannounces (signed UNANNOUNCE accepted by the JS nodes): the server is no longer found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_server_is_not_found() {
    let net = interop::JsTestnet::start(5);
    let a = rust_node(net.bootstrap[0]).await;
    let b = rust_node(net.bootstrap[0]).await;
    let kp = KeyPair::from_seed(&[0x81; 32]);
    let mut server = a.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    assert!(!server.relay_addresses().is_empty());
    timeout(STEP, server.close()).await.expect("close");
    let err = timeout(STEP, b.connect(&kp.public))
        .await
        .expect("settles in time")
        .expect_err("closed server");
    assert!(matches!(err, HyperDhtError::PeerNotFound), "got {err}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_through_rust_testnet() {
    let nodes = rust_testnet(5).await;
    let boot = SocketAddr::V4(nodes[0].server_addr());
    rust_pair(boot).await;
}

/// Reachable clients and servers take the direct paths: the server connects to an open client, an open
/// server is connected to at its public address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_reachable_peers() {
    let nodes = rust_testnet(5).await;
    let boot = SocketAddr::V4(nodes[0].server_addr());
    rust_pair_with(boot, true, false).await;
    rust_pair_with(boot, false, true).await;
    rust_pair_with(boot, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutable_and_immutable_values_cross() {
    let net = interop::JsTestnet::start(5);
    let bs = net.bootstrap[0].to_string();
    let dht = rust_node(net.bootstrap[0]).await;

    // JS puts, Rust gets.
    let mut put = interop::node("hyperdht_peer.js", &["put", &bs]);
    let v = js_line(&mut put, STEP);
    let hash: [u8; 32] = hex::decode(v["hash"].as_str().expect("hash"))
        .expect("hex")
        .try_into()
        .expect("32");
    let mpk: [u8; 32] = hex::decode(v["mutablePk"].as_str().expect("pk"))
        .expect("hex")
        .try_into()
        .expect("32");
    let imm = timeout(STEP, dht.immutable_get(&hash))
        .await
        .expect("in time")
        .expect("get");
    assert_eq!(imm.as_deref(), Some(&b"hello from js"[..]));
    let m = timeout(STEP, dht.mutable_get(&mpk))
        .await
        .expect("in time")
        .expect("get")
        .expect("found");
    assert_eq!((m.seq, m.value.as_slice()), (3, &b"mutable from js"[..]));

    // Rust puts, JS gets.
    let hash = timeout(STEP, dht.immutable_put(b"hello from rust"))
        .await
        .expect("in time")
        .expect("put");
    let kp = KeyPair::from_seed(&[0x51; 32]);
    timeout(STEP, dht.mutable_put(&kp, b"mutable from rust", 7))
        .await
        .expect("in time")
        .expect("put");
    let mut get = interop::node(
        "hyperdht_peer.js",
        &["get", &bs, &hex::encode(hash), &hex::encode(kp.public)],
    );
    let v = js_line(&mut get, STEP);
    assert_eq!(v["immutable"], "hello from rust", "{v}");
    assert_eq!(v["mutable"], "mutable from rust", "{v}");
    assert_eq!(v["seq"], 7);

    // Announce / lookup / unannounce round trip through the JS nodes.
    let topic = [0x5a; 32];
    timeout(STEP, dht.announce(&topic, &kp, &[]))
        .await
        .expect("in time")
        .expect("announce");
    let found = timeout(STEP, dht.lookup(&topic))
        .await
        .expect("in time")
        .expect("lookup");
    assert!(found
        .iter()
        .any(|r| r.peers.iter().any(|p| p.public_key == kp.public)));
    timeout(STEP, dht.unannounce(&topic, &kp))
        .await
        .expect("in time")
        .expect("unannounce");
    let found = timeout(STEP, dht.lookup(&topic))
        .await
        .expect("in time")
        .expect("lookup");
    assert!(!found
        .iter()
        .any(|r| r.peers.iter().any(|p| p.public_key == kp.public)));
}

/// Wrong-key, truncated, garbage and replayed handshakes sent straight to a Rust server get no answer (the
/// request times out, as with a JS server), and the server keeps serving a JS client afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handshakes_leave_the_server_serving() {
    let net = interop::JsTestnet::start(5);
    let bs = net.bootstrap[0].to_string();
    let dht = rust_node(net.bootstrap[0]).await;
    let kp = KeyPair::from_seed(&[0x61; 32]);
    let mut server = dht.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let attacker = rust_node(net.bootstrap[0]).await;
    let target = holepunch::crypto::hash(&[&kp.public]);
    let to: SocketAddrV4 = dht.client_addr();

    // A well-formed IK message for another key.
    let other = KeyPair::from_seed(&[0x62; 32]);
    let mut wrong = holepunch::hyperdht::noise_wrap::NoiseWrap::initiator(&other, &other.public)
        .expect("noise");
    let wrong_msg = wrong
        .send(&holepunch::hyperdht::messages::NoisePayload::default())
        .expect("send");
    let mut good =
        holepunch::hyperdht::noise_wrap::NoiseWrap::initiator(&other, &kp.public).expect("noise");
    let good_msg = good
        .send(&holepunch::hyperdht::messages::NoisePayload::default())
        .expect("send");
    let truncated = good_msg[..good_msg.len() / 2].to_vec();
    let mut flipped = good_msg.clone();
    if let Some(b) = flipped.last_mut() {
        *b ^= 1;
    }
    for noise in [wrong_msg, truncated, flipped, vec![0xff; 3]] {
        let value = Handshake {
            mode: Mode::FROM_CLIENT,
            noise,
            peer_address: None,
            relay_address: None,
        }
        .to_bytes();
        let r = timeout(
            STEP,
            attacker.handle().request(
                RequestSpec {
                    token: None,
                    command: Command::PEER_HANDSHAKE.into(),
                    target: Some(target),
                    value: Some(value),
                },
                to,
                Default::default(),
            ),
        )
        .await
        .expect("settles in time");
        assert!(r.is_err(), "a broken handshake got an answer: {r:?}");
    }
    // Undecodable request values are ignored too.
    let r = timeout(
        STEP,
        attacker.handle().request(
            RequestSpec {
                token: None,
                command: Command::PEER_HANDSHAKE.into(),
                target: Some(target),
                value: Some(vec![9, 9]),
            },
            to,
            Default::default(),
        ),
    )
    .await
    .expect("settles in time");
    assert!(r.is_err());

    // The server still serves a JS client.
    let mut js = interop::node(
        "hyperdht_peer.js",
        &[
            "client",
            &bs,
            &hex::encode(kp.public),
            &hex::encode([0x63u8; 32]),
            "100000",
        ],
    );
    let conn = timeout(STEP, server.accept())
        .await
        .expect("accept in time")
        .expect("conn");
    let (n, ok) = timeout(STEP, exchange(conn, 100_000))
        .await
        .expect("exchange");
    assert_eq!((n, ok), (100_000, true));
    let v = js_line(&mut js, STEP);
    assert_eq!(v["ok"], true, "{v}");
}

/// The LAN shortcut, both implementations: a server that acts firewalled (announces no public address, offers
/// holepunching) is reached by a JS client and by a Rust client on the same host through its local address
/// (the client pings it, then connects the stream there; the server's stream connects to the first packet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lan_shortcut_to_a_firewalled_server() {
    let net = interop::JsTestnet::start(5);
    let bs = net.bootstrap[0].to_string();
    let dht = rust_node_opts(net.bootstrap[0], true, true).await;
    let kp = KeyPair::from_seed(&[0x71; 32]);
    let mut server = dht.create_server(|_, _| false);
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");

    let mut js = interop::node(
        "hyperdht_peer.js",
        &[
            "client",
            &bs,
            &hex::encode(kp.public),
            &hex::encode([0x72u8; 32]),
            "1000000",
        ],
    );
    let conn = timeout(STEP, server.accept())
        .await
        .expect("accept in time")
        .expect("conn");
    let (n, ok) = timeout(STEP, exchange(conn, 1_000_000))
        .await
        .expect("exchange");
    let v = js_line(&mut js, STEP);
    assert_eq!((n, ok), (1_000_000, true), "JS said {v}");
    assert_eq!(v["ok"], true, "{v}");

    let client = rust_node_opts(net.bootstrap[0], true, true).await;
    let connect = tokio::spawn({
        let client = client.clone();
        async move { client.connect(&kp.public).await }
    });
    let sconn = timeout(STEP, server.accept())
        .await
        .expect("accept in time")
        .expect("conn");
    let cconn = timeout(STEP, connect)
        .await
        .expect("connect in time")
        .expect("join")
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let (s, c) = tokio::join!(exchange(sconn, 1_000_000), exchange(cconn, 1_000_000));
    assert_eq!(s, (1_000_000, true));
    assert_eq!(c, (1_000_000, true));
    timeout(STEP, server.close()).await.expect("close");
}
