//! A Rust node offering IPv6 addresses (`addresses6`; here `::1`, standing for a global address) and JS
//! hyperdht 6.34 peers, on loopback: a JS client reaches the Rust server and a Rust client reaches a JS
//! server, 1 MiB byte-exact each way, over IPv4 as before (JS sends no `addresses6` and ignores ours).
//! The same with real global addresses in network namespaces: `ipv6_lab` (root).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use holepunch::crypto::KeyPair;
use holepunch::hyperdht::{Connection, HyperDht, HyperDhtOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);
const MIB: usize = 1024 * 1024;

/// hyperdht_peer.js's pattern: byte i is (i * 7 + (i >> 10)) & 0xff.
fn pattern(total: usize) -> Vec<u8> {
    (0..total)
        .map(|i| ((i * 7 + i / 1024) & 0xff) as u8)
        .collect()
}

/// Sends the pattern, ends, and returns what came back.
async fn exchange(conn: Connection, total: usize) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(conn);
    let writer = tokio::spawn(async move {
        wr.write_all(&pattern(total)).await.expect("write");
        wr.shutdown().await.expect("end");
        wr
    });
    let mut got = Vec::new();
    rd.read_to_end(&mut got).await.expect("read");
    let _wr = writer.await.expect("writer");
    got
}

async fn rust_node_with_ipv6(bootstrap: SocketAddr) -> HyperDht {
    let SocketAddr::V4(b) = bootstrap else {
        panic!("v4 bootstrap")
    };
    let dht = HyperDht::bind(HyperDhtOpts {
        bootstrap: vec![b],
        host: Ipv4Addr::LOCALHOST,
        ipv6_addresses: Some(vec![Ipv6Addr::LOCALHOST]),
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

fn js_line(p: &mut interop::JsProcess) -> serde_json::Value {
    let line = tokio::task::block_in_place(|| p.line(STEP));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad json {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_reaches_a_rust_server_offering_ipv6_over_ipv4() {
    let net = interop::JsTestnet::start(5);
    let dht = rust_node_with_ipv6(net.bootstrap[0]).await;
    let kp = KeyPair::from_seed(&[0x61; 32]);
    let mut server = dht.create_server(|_, payload| {
        assert!(payload.addresses6.is_empty(), "a JS client sent addresses6");
        false
    });
    timeout(STEP, server.listen(kp.clone()))
        .await
        .expect("listen in time")
        .expect("listen");
    let bs = net.bootstrap[0].to_string();
    let mut js = interop::node(
        "hyperdht_peer.js",
        &[
            "client",
            &bs,
            &hex::encode(kp.public),
            &hex::encode([0x62u8; 32]),
            &MIB.to_string(),
        ],
    );
    let conn = timeout(STEP, server.accept())
        .await
        .expect("accept in time")
        .expect("a connection");
    let (_, remote) = dht.connection_path(&conn);
    assert!(
        remote.is_some_and(|a| a.is_ipv4()),
        "the stream to the JS client goes to {remote:?}"
    );
    let got = timeout(STEP, exchange(conn, MIB)).await.expect("exchange");
    assert!(
        got == pattern(MIB),
        "the JS bytes differ ({} bytes)",
        got.len()
    );
    let v = js_line(&mut js);
    assert_eq!(v["received"], MIB, "JS client: {v}");
    assert_eq!(v["ok"], true, "JS client: {v}");
    timeout(STEP, server.close()).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_offering_ipv6_reaches_a_js_server_over_ipv4() {
    let net = interop::JsTestnet::start(5);
    let bs = net.bootstrap[0].to_string();
    let mut js = interop::node(
        "hyperdht_peer.js",
        &["server", &bs, &hex::encode([0x63u8; 32]), &MIB.to_string()],
    );
    let v = js_line(&mut js);
    let server_pk = KeyPair::from_seed(&[0x63; 32]).public;
    assert_eq!(v["listening"], hex::encode(server_pk));
    let dht = rust_node_with_ipv6(net.bootstrap[0]).await;
    let kp = KeyPair::from_seed(&[0x64; 32]);
    let conn = timeout(STEP, dht.connect_with(&server_pk, &kp))
        .await
        .expect("connect in time")
        .expect("connect");
    let (_, remote) = dht.connection_path(&conn);
    assert!(
        remote.is_some_and(|a| a.is_ipv4()),
        "the stream to the JS server goes to {remote:?}"
    );
    let got = timeout(STEP, exchange(conn, MIB)).await.expect("exchange");
    assert!(
        got == pattern(MIB),
        "the JS bytes differ ({} bytes)",
        got.len()
    );
    let v = js_line(&mut js);
    assert_eq!(v["received"], MIB, "JS server: {v}");
    assert_eq!(v["ok"], true, "JS server: {v}");
}
